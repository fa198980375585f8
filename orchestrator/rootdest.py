"""Where a root goes: DEST checks, the staging folder it is made in, and the host it is for.

Both kinds of root (debootstrap copies, unpacked image archives) are made in a temporary folder
beside DEST and renamed into it, so an interrupted run leaves nothing half-made, and DEST is
only ever a missing or empty folder before: a root is never mixed into someone's files.
"""

from __future__ import annotations

import errno
import os
import platform
import shutil
import sys
from pathlib import Path

from .elffile import ElfError, open_elf
from .errors import BadInput
from .targets import by_elf_machine

# Extended attribute on a finished DEST naming what was put there (an image's content hash, a
# debootstrap cache key), so that a second run of the same request can tell it is already done.
SOURCE_XATTR = "user.glibc-build.root-source"


def prepare_dest(dest: Path) -> None:
    """DEST may be missing or an empty folder; anything else would be silently mixed into."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BadInput(f"{dest} exists and is not a folder; choose a new DEST")
    if dest.is_dir() and any(dest.iterdir()):
        raise not_empty(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)


def not_empty(dest: Path) -> BadInput:
    return BadInput(f"{dest} exists and is not empty; remove it or choose a new DEST")


def move_into_place(staging: Path, dest: Path, *, source: str | None = None) -> None:
    """Rename the finished STAGING folder to DEST (missing or empty), marking it with SOURCE.

    Another process may fill DEST between our check and the rename; rename(2) then fails with
    ENOTEMPTY/EEXIST, which is DEST being taken (bad input), not a bug.
    """
    os.chmod(staging, 0o755)  # mkdtemp made it 0700; a root's / is world-readable
    if source is not None:
        try:
            os.setxattr(staging, SOURCE_XATTR, source.encode(), follow_symlinks=False)
        except OSError:
            pass  # a file system without user xattrs: the root is still good, only unmarked
    try:
        if dest.is_dir() and not dest.is_symlink():
            dest.rmdir()  # checked empty by prepare_dest
        os.rename(staging, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise not_empty(dest) from None
        raise


def dest_source(dest: Path) -> str | None:
    """What move_into_place marked DEST with, or None (unmarked, missing, no xattrs)."""
    try:
        return os.getxattr(dest, SOURCE_XATTR, follow_symlinks=False).decode(errors="replace")
    except OSError:
        return None


def remove_tree(path: Path) -> None:
    """Remove a half-made root. shutil.rmtree never follows the symlinks a root is full of."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def host_debian_arch() -> str:
    """The Debian architecture of this machine: Target.debian_arch of the running interpreter.

    The interpreter's own ELF header says what this host runs natively (uname's machine name
    would need a second table of names); platform.machine() is the fallback for the odd case.
    """
    try:
        with open_elf(Path(os.path.realpath(sys.executable))) as elf:
            target = by_elf_machine(elf.machine)
    except (OSError, ValueError, ElfError):
        target = None
    return target.debian_arch if target is not None else platform.machine()
