"""Where things are: the repository, rsrc/, the cache, the packaged resources; and what
counts as a URL rather than a local path. Every module asks here, so each default has one
owner.

Run from a clone, the data (recipes/, dockerfiles/, rsrc/keys/) is the repository's own.
Installed from the wheel, the same tree is package data under `orchestrator/_data/` (mapped
there by pyproject.toml's `force-include`), found beside this module: installers unpack a
wheel into plain files (the binary distribution format,
https://packaging.python.org/en/latest/specifications/binary-distribution-format/), and a
zipped package could not hand a path to docker or gpg anyway. Downloads then go to the user's
cache, never into site-packages.

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

CACHE_ENV = "GLIBC_BUILD_CACHE"
CACHE_NAME = "glibc-build"
PACKAGED_DATA = "_data"  # the wheel's copy of the repository's data folders


def package_dir() -> Path:
    """The `orchestrator` package as a folder, in a clone and in an installed wheel alike.
    (Not importlib.resources: importing it costs every run of build.py ~8 ms, and
    for a package of plain files it answers the same path.)"""
    return Path(__file__).resolve().parent


def data_root(package: Path) -> Path:
    """Where recipes/, dockerfiles/ and rsrc/keys/ are: the package data of an installed
    wheel, else the clone the package sits in."""
    packaged = package / PACKAGED_DATA
    return packaged if packaged.is_dir() else package.parent


def is_installed(package: Path) -> bool:
    """True for an installed wheel (its data is packaged), False in a clone."""
    return (package / PACKAGED_DATA).is_dir()


PACKAGE_DIR = package_dir()
INSTALLED = is_installed(PACKAGE_DIR)
# The clone, or in a wheel the package-data folder laid out like it (importers that join
# "recipes" or "dockerfiles" onto REPO find them either way).
REPO = data_root(PACKAGE_DIR)
RESOURCES_DIR = PACKAGE_DIR / "resources"  # shipped with the code: policy.json, loader.c
RECIPES_DIR = REPO / "recipes"
TEMPLATES_DIR = REPO / "dockerfiles"
KEYS_DIR = REPO / "rsrc" / "keys"  # pinned public keys, committed (see rsrc/README.md)
SCHEMAS_DIR = RESOURCES_DIR / "schemas"  # JSON Schemas of every JSON output

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


def default_rsrc(
    installed: bool, repo: Path, environ: Mapping[str, str] | None = None, home: Path | None = None
) -> Path:
    """Where downloaded sources go by default: rsrc/ in a clone (beside its keys/), the
    user's cache once installed (site-packages is not the user's to write into)."""
    if installed:
        return cache_root(environ, home) / "rsrc"
    return repo / "rsrc"


DEFAULT_RSRC = default_rsrc(INSTALLED, REPO)  # downloaded sources (and, in a clone, keys/)
