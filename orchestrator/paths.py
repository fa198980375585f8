"""Where things are: the repository, rsrc/, the cache, the packaged resources; and what
counts as a URL rather than a local path. Every module asks here, so each default has one
owner.

The cache follows the XDG Base Directory Specification
(https://specifications.freedesktop.org/basedir-spec/latest/): `$XDG_CACHE_HOME/glibc-build`,
`~/.cache/glibc-build` when that is unset, empty or relative (the spec calls a relative
path invalid); `GLIBC_BUILD_CACHE` overrides both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
RESOURCES_DIR = PACKAGE_DIR / "resources"  # shipped with the code: policy.json, loader.c
DEFAULT_RSRC = REPO / "rsrc"  # downloaded sources and the keys that vouch for them
CACHE_ENV = "GLIBC_BUILD_CACHE"
CACHE_NAME = "glibc-build"

URL_SCHEMES = ("http", "https", "file")


def is_url(text: str) -> bool:
    """A source, key or mirror given as a URL we can fetch (http, https, file), not a path."""
    return urlsplit(text).scheme in URL_SCHEMES


def cache_root(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The cache folder the environment names (nothing is created)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else (home or Path.home()) / ".cache"
    return base / CACHE_NAME


def cache_dir(*parts: str) -> Path:
    """The cache folder (or a subfolder of it, one per user of the cache), created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
