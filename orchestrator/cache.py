"""Where slow things are kept between runs: debootstrap roots, the loader, unpacked images.

`GLIBC_BUILD_CACHE` overrides the location; otherwise `$XDG_CACHE_HOME/glibc-build`
(default `~/.cache/glibc-build`). Each user of the cache takes its own subfolder.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a subfolder of it), created on demand."""
    base = os.environ.get("GLIBC_BUILD_CACHE")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "glibc-build"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
