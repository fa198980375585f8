"""Backends build the crate's cdylibs; one file each. They share `BuildContext` and return
the `.so` files cargo produced, which the build then checks and copies out."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..cargo import Crate
from ..glibc import GlibcVersion
from ..targets import Target

# Fewer sections kept, fewer glibc symbols needed: every backend links with it.
GC_SECTIONS = ["-C", "link-arg=-Wl,--gc-sections"]


@dataclass
class BuildContext:
    crate: Crate
    target: Target
    glibc: GlibcVersion
    profile: str                  # release | debug
    features: str | None = None
    recipe: str | None = None     # docker backend: recipe name or path
    rustflags: list[str] = field(default_factory=list)  # added to the user's RUSTFLAGS
    # (--gc-sections and the path remapping, set by the build)
    env: dict[str, str] = field(default_factory=dict)   # extra environment for cargo


def backend(name: str) -> Callable[[BuildContext], list[Path]]:
    """The `build` function of a backend module, imported only when used."""
    module = importlib.import_module(f"{__name__}.{name}")
    return module.build
