"""`build.py rootfs` and `resolve_root`: the entry points that give verify-load a root.

A root comes from debootstrap (debootstrap.py, cached) or from an image archive
(image_archive.py); this module picks one, guards DEST, and caches unpacked archives.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .debootstrap import copy_root, debootstrap_key, debootstrap_root
from .errors import BadInput, UsageError
from .files import locked
from .image_archive import archive_key, is_image_archive, is_layout_folder, unpack_image
from .logger import info, step
from .paths import cache_dir
from .rootdest import dest_source, host_debian_arch, prepare_dest

__all__ = [
    "copy_root",
    "debootstrap_root",
    "is_image_archive",
    "resolve_root",
    "run_rootfs",
    "unpack_image",
]


def resolve_root(root_or_archive: Path) -> Path:
    """A root folder as is; an image archive (or layout folder) unpacked once into the cache."""
    path = Path(root_or_archive)
    if not path.exists():
        raise BadInput(f"{path}: no such root folder or image archive")
    if path.is_dir() and not is_layout_folder(path):
        return path
    base = cache_dir("images")
    key = archive_key(path)[:32]
    final = base / key
    if final.is_dir():
        return final
    with locked(base / f".{key}.lock"):
        if not final.is_dir():
            step(f"unpacking image {path} (first use; cached in {base})")
            unpack_image(path, final)
    return final


# -- the rootfs command ----------------------------------------------------------------------
def _dest_lock(dest: Path) -> Path:
    """The lock of one DEST, in the cache: nothing is left beside the user's folder."""
    where = os.path.abspath(dest)
    return cache_dir("locks") / f"rootfs-{hashlib.sha256(where.encode()).hexdigest()[:32]}.lock"


def _already_there(dest: Path, source: str) -> bool:
    """Is DEST a finished root of SOURCE (marked by move_into_place)?"""
    return dest.is_dir() and not dest.is_symlink() and dest_source(dest) == source


def run_rootfs(
    *,
    suite: str | None,
    image: Path | None,
    dest: Path,
    arch: str | None,
    variant: str,
    include: str | None,
    mirror: str | None,
) -> int:
    """`build.py rootfs`: a root in DEST, from debootstrap (via the cache) or an image.

    Two runs into one DEST take turns on a lock: the second finds DEST taken and exits 2
    ("not empty"), or 0 when the first put the very root it asked for there.
    """
    if (suite is None) == (image is None):
        raise UsageError("pass exactly one of --debootstrap SUITE or --image ARCHIVE")
    packages = tuple(p for p in (include or "").replace(" ", ",").split(",") if p)
    arch = arch or host_debian_arch()
    if suite is not None:
        source = "debootstrap:" + debootstrap_key(suite, arch, variant, packages, mirror)
    elif image is not None:
        if not image.exists():
            raise BadInput(f"--image {image}: no such file or folder")
        source = f"image:{archive_key(image)}:{arch}"
    if _already_there(dest, source):
        info(f"root ready: {dest} (already made from the same source)")
        return 0
    prepare_dest(dest)  # before a slow debootstrap, not after
    root = (
        debootstrap_root(suite, arch=arch, variant=variant, include=packages, mirror=mirror)
        if suite is not None
        else None
    )
    with locked(_dest_lock(dest)):
        if _already_there(dest, source):  # another run made it while we waited
            info(f"root ready: {dest} (made by another run from the same source)")
            return 0
        prepare_dest(dest)
        if root is not None:
            step(f"copying the {suite} root to {dest}")
            copy_root(root, dest, source_id=source)
        elif image is not None:
            step(f"unpacking {image} into {dest}")
            unpack_image(image, dest, arch=arch, source=source)
    info(f"root ready: {dest}")
    return 0
