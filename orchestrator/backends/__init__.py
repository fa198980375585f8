"""Backends build the crate's cdylibs; one file each. They take a `BuildContext` and return a
`BuildResult`: the `.so` files cargo produced and what produced them (flags, environment,
toolchain), which the build checks, copies out and records in the manifest as it is."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..cargo import Crate
from ..glibc import GlibcVersion
from ..targets import Target

if TYPE_CHECKING:
    from ..recipe import Recipe

# Fewer sections kept, fewer glibc symbols needed: every backend links with it.
GC_SECTIONS = ("-C", "link-arg=-Wl,--gc-sections")


@dataclass(frozen=True)
class BuildContext:
    """A backend's inputs (build them with keywords)."""

    crate: Crate
    target: Target
    glibc: GlibcVersion
    profile: str  # release | debug
    features: str | None = None
    recipe: Recipe | None = None  # docker backend: the loaded recipe
    # Added to the user's RUSTFLAGS by every backend (GC_SECTIONS).
    rustflags: tuple[str, ...] = GC_SECTIONS
    # (host folder, fixed name) pairs for --remap-path-prefix and -ffile-prefix-map, most
    # general first; a backend that moves the build elsewhere maps its own folders instead.
    path_remaps: tuple[tuple[str, str], ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for cargo
    # zig backend: Debian packages for a target sysroot (sysroot.py), from this suite.
    system_packages: tuple[str, ...] = ()
    system_suite: str | None = None  # None: debian.py's default suite (data)
    cargo_args: tuple[str, ...] = ()  # the user's own cargo flags (--locked, after `--`...)


@dataclass(frozen=True)
class Toolchain:
    """What compiled and linked: enough to name the same toolchain again."""

    rustc: str  # `rustc -vV`
    zig: str | None = None  # zig backend: `zig version`
    recipe: str | None = None  # docker backend: the recipe's name...
    recipe_sha256: str | None = None  # ...its digest (recipe file and template)...
    image: str | None = None  # ...and the image it built, tagged by a content hash


@dataclass(frozen=True)
class BuildResult:
    """What a backend built and how (build it with keywords)."""

    artifacts: tuple[Path, ...]
    # The flags rustc was given, the user's and ours, in cargo's order; without the path
    # remapping, which names this machine's folders (it is in `path_remaps`). Flags from
    # target.'cfg(...)' tables are joined by cargo itself and not listed.
    rustflags: tuple[str, ...]
    path_remaps: tuple[tuple[str, str], ...]
    env: Mapping[str, str]  # the variables set for cargo on top of the user's environment
    toolchain: Toolchain
    # The target sysroot's suite and packages (name, version, sha256), when one was used.
    system_packages: Mapping[str, Any] | None = None


def backend(name: str) -> Callable[[BuildContext], BuildResult]:
    """The `build` function of a backend module, imported only when used."""
    module = importlib.import_module(f"{__name__}.{name}")
    build: Callable[[BuildContext], BuildResult] = module.build
    return build
