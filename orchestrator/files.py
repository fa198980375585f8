"""Writing files so that nothing half-written is ever seen, and locks between processes.

Every stage that leaves a file behind (libraries in --out, the manifest, reports, wrapper
scripts, the loader, downloads) writes it under a temporary name in the same folder and renames
it into place (rename(2) is atomic within one file system); a failure removes the temporary
file and reports one line naming the path, or the folder when its disk is full.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import BadInput

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def cannot_write(path: Path, exc: OSError) -> BadInput:
    """The one-line error for a failed write: a full disk names the folder (the disk failed,
    not the input), anything else names the file."""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL:
        return BadInput(
            f"{path.parent} is full ({reason}) while writing {path.name}; free "
            "some space there or use a folder on another disk"
        )
    return BadInput(f"{path}: cannot write it ({reason}); give a path in a folder you can write")


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a finished `tmp` onto `path` and make the rename survive a power cut (the
    folder's entry is synced too, as rename(2) alone does not promise)."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def staged(path: Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside `path`; renamed onto it when the block ends without error."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(mode)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write a whole file; a reader sees the old file or the new one, never a part."""
    with staged(path, mode) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


@contextlib.contextmanager
def locked(lock_path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an flock on `lock_path` (released by the kernel even if we are killed).

    `on_wait` is called once if another process holds it, before waiting.
    """
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise cannot_write(lock_path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
