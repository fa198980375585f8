"""Apply image layers (tar streams) onto a folder without ever writing outside it.

Rules (OCI image-spec layer.md; umoci's oci/layer/tar_extract.go; shared/notes/supply.md §5):
- Layers are applied bottom to top, in place, each checked against its digests as it streams,
  so the bytes checked are the bytes written (the caller unpacks into a staging folder and
  throws it away when a digest does not match).
- `.wh.NAME` removes NAME of *lower* layers; `.wh..wh..opq` empties its folder of lower-layer
  content wherever it appears in the layer. A per-layer set of touched paths (umoci's
  upperPaths) keeps whiteouts from removing entries of their own layer. Whiteout files are
  never written.
- A member name that is absolute or holds `..` is refused. Every folder on the way to an entry
  is opened with O_NOFOLLOW relative to its parent's descriptor, so no write, removal or link
  ever goes through a symlink: a layer planting `dir -> /somewhere` and then writing `dir/file`
  (in the same or a later layer) is refused instead. Symlinks are created verbatim (a root
  needs `lib64 -> /lib/...`); readers of the root resolve them against it (prove.py).
- Hard links only to regular files already unpacked inside the destination. Device nodes and
  FIFOs are skipped, owners are not applied, setuid/setgid bits are dropped, sizes are capped.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import tarfile
from types import TracebackType
from typing import BinaryIO

from .errors import UnsafeArchive

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
DEFAULT_MAX_BYTES = 64 * 2**30  # a decompression bomb stops here, not at a full disk
MAX_DEPTH = 200  # deeper names are an attack on the walkers (recursion, descriptors)
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Parts = tuple[str, ...]


def member_parts(name: str, label: str, what: str = "member") -> Parts:
    """The path components of a member name; absolute names and `..` are refused."""
    if name.startswith("/"):
        raise UnsafeArchive(f"{label}: {what} {name!r} is an absolute path; refusing an archive "
                            "that would write outside its destination")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if len(parts) > MAX_DEPTH:
        raise UnsafeArchive(f"{label}: {what} {name[:80]!r}... is nested more than {MAX_DEPTH} "
                            "folders deep; refusing it")
    if ".." in parts:
        raise UnsafeArchive(f"{label}: {what} {name!r} climbs out with `..`; refusing an "
                            "archive that would write outside its destination")
    return parts


class LayerApplier:
    """Applies layers onto DEST through directory descriptors (use as a context manager)."""

    def __init__(self, dest: os.PathLike | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dest = os.fspath(dest)
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self.skipped: list[str] = []  # device nodes and FIFOs, for the curious
        self._root_fd = os.open(self.dest, _DIR_FLAGS)

    def __enter__(self) -> LayerApplier:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # -- one layer ---------------------------------------------------------------------------
    def apply(self, stream: BinaryIO, label: str) -> None:
        """Apply one uncompressed tar layer, read front to back (no seeking)."""
        upper: set[Parts] = set()  # paths this layer wrote, and their ancestors
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    self._entry(tar, member, upper, label)
        except tarfile.TarError as exc:
            raise UnsafeArchive(f"{label}: not a valid tar layer ({exc})") from None
        except EOFError:
            raise UnsafeArchive(f"{label}: the layer is truncated") from None

    def _entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo, upper: set[Parts],
               label: str) -> None:
        parts = member_parts(member.name, label)
        if not parts:  # the root folder itself: only its type matters, and it must stay a folder
            if not member.isdir():
                raise UnsafeArchive(f"{label}: member {member.name!r} would replace the root "
                                    "folder itself; refusing it")
            return
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member.name, upper, label)
            return
        if member.ischr() or member.isblk() or member.isfifo():
            self.skipped.append(member.name)
            return
        parent_fd = self._open_dir(parts[:-1], label, member.name, create=True)
        try:
            if member.isdir():
                self._make_dir(parent_fd, base, member)
            elif member.isreg():
                self._write_file(parent_fd, base, tar, member, label)
            elif member.issym():
                if not member.linkname:
                    raise UnsafeArchive(f"{label}: symlink {member.name!r} has an empty target")
                self._clear(parent_fd, base)
                os.symlink(member.linkname, base, dir_fd=parent_fd)
            elif member.islnk():
                self._hard_link(parent_fd, parts, member, label)
            else:
                raise UnsafeArchive(f"{label}: member {member.name!r} has an unsupported type "
                                    f"{member.type!r}")
        except OSError as exc:
            raise UnsafeArchive(f"{label}: cannot unpack {member.name!r}: "
                                f"{exc.strerror or exc}") from None
        finally:
            os.close(parent_fd)
        for depth in range(1, len(parts) + 1):
            upper.add(parts[:depth])

    # -- walking without following symlinks ---------------------------------------------------
    def _open_dir(self, parts: Parts, label: str, name: str, *, create: bool) -> int:
        """A descriptor of folder PARTS under DEST; -1 if missing and not CREATE."""
        fd = os.dup(self._root_fd)
        for depth, part in enumerate(parts, 1):
            try:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        return -1
                    os.mkdir(part, 0o755, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                self._refuse_walk(fd, part, parts[:depth], name, label, exc)
            finally:
                os.close(fd)
            fd = child
        return fd

    @staticmethod
    def _refuse_walk(fd: int, part: str, prefix: Parts, name: str, label: str,
                     exc: OSError) -> None:
        where = "/".join(prefix)
        try:
            info = os.lstat(part, dir_fd=fd)
        except OSError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            target = os.readlink(part, dir_fd=fd)
            raise UnsafeArchive(f"{label}: {name!r} would be written through the symlink "
                                f"{where} -> {target}; refusing an archive that could write "
                                "outside its destination") from None
        if exc.errno in (errno.ENOTDIR, errno.EEXIST) or info is not None:
            raise UnsafeArchive(f"{label}: {name!r} needs {where} to be a folder, but it is "
                                "not; the layer is malformed") from None
        raise UnsafeArchive(f"{label}: cannot open {where} for {name!r}: {exc.strerror}") \
            from None

    # -- entry kinds ---------------------------------------------------------------------------
    @staticmethod
    def _clear(parent_fd: int, base: str) -> None:
        """Remove whatever is at BASE (a lower layer's file, link or folder), never following."""
        try:
            info = os.lstat(base, dir_fd=parent_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            _remove_tree_at(parent_fd, base)
        else:
            os.unlink(base, dir_fd=parent_fd)

    def _make_dir(self, parent_fd: int, base: str, member: tarfile.TarInfo) -> None:
        mode = (member.mode & 0o1777) | 0o700  # we must be able to write into it later
        try:
            info = os.lstat(base, dir_fd=parent_fd)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISDIR(info.st_mode):  # dir over dir: metadata only
            self._clear(parent_fd, base)
            os.mkdir(base, 0o700, dir_fd=parent_fd)
        fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def _write_file(self, parent_fd: int, base: str, tar: tarfile.TarFile,
                    member: tarfile.TarInfo, label: str) -> None:
        if self.bytes_written + member.size > self.max_bytes:
            raise UnsafeArchive(f"{label}: the image unpacks to more than {self.max_bytes} "
                                "bytes; refusing it")
        self._clear(parent_fd, base)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        try:
            source = tar.extractfile(member)
            if source is not None:
                for block in iter(lambda: source.read(_CHUNK), b""):
                    _write_all(fd, block)
            os.fchmod(fd, (member.mode & 0o777) | 0o600)  # no setuid/setgid from an image
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)
        self.bytes_written += member.size

    def _hard_link(self, parent_fd: int, parts: Parts, member: tarfile.TarInfo,
                   label: str) -> None:
        target = member_parts(member.linkname, label, f"hard link target of {member.name!r}")
        if not target:
            raise UnsafeArchive(f"{label}: hard link {member.name!r} points at the root folder")
        if target == parts:
            return
        target_fd = self._open_dir(target[:-1], label, member.linkname, create=False)
        try:
            try:
                info = None if target_fd < 0 else os.lstat(target[-1], dir_fd=target_fd)
            except FileNotFoundError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                raise UnsafeArchive(f"{label}: hard link {member.name!r} -> {member.linkname!r}"
                                    ": the target is not a regular file already unpacked; "
                                    "refusing it")
            self._clear(parent_fd, parts[-1])
            os.link(target[-1], parts[-1], src_dir_fd=target_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
        finally:
            if target_fd >= 0:
                os.close(target_fd)

    # -- whiteouts -----------------------------------------------------------------------------
    def _whiteout(self, parts: Parts, name: str, upper: set[Parts], label: str) -> None:
        base = parts[-1]
        folder = parts[:-1]
        if base != OPAQUE_WHITEOUT:
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
                raise UnsafeArchive(f"{label}: whiteout {name!r} names no valid entry")
        dir_fd = self._open_dir(folder, label, name, create=False)
        if dir_fd < 0:
            return  # nothing below to hide
        try:
            if base == OPAQUE_WHITEOUT:
                for child in os.listdir(dir_fd):
                    self._purge(dir_fd, child, folder + (child,), upper)
            else:
                self._purge(dir_fd, hidden, folder + (hidden,), upper)
        finally:
            os.close(dir_fd)

    def _purge(self, dir_fd: int, base: str, path: Parts, upper: set[Parts]) -> None:
        """Remove lower-layer content at PATH, keeping whatever this layer wrote under it."""
        try:
            info = os.lstat(base, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if path not in upper:
            self._clear(dir_fd, base)
            return
        if not stat.S_ISDIR(info.st_mode):
            return
        child_fd = os.open(base, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            for child in os.listdir(child_fd):
                self._purge(child_fd, child, path + (child,), upper)
        finally:
            os.close(child_fd)


def _remove_tree_at(parent_fd: int, base: str) -> None:
    """rmtree relative to a descriptor, never following a symlink (works on Python 3.9)."""
    fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for child in os.listdir(fd):
            if stat.S_ISDIR(os.lstat(child, dir_fd=fd).st_mode):
                _remove_tree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(base, dir_fd=parent_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- digests while streaming ---------------------------------------------------------------
class _HashingReader:
    """Reads through to RAW and hashes every byte that passes."""

    def __init__(self, raw: BinaryIO, prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix
        self.hash = hashlib.sha256(prefix)
        self.size = len(prefix)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:  # already hashed: replayed, at most SIZE bytes at a time
            cut = len(self._prefix) if size is None or size < 0 else size
            data, self._prefix = self._prefix[:cut], self._prefix[cut:]
            return data
        data = self._raw.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end: the digest covers the whole blob, tar padding included."""
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def apply_verified_layer(applier: LayerApplier, raw: BinaryIO, label: str, *,
                         blob_digest: str | None, diff_id: str | None) -> None:
    """Apply a layer blob (plain or gzip tar), checking its blob digest and its diff_id.

    The check ends the layer, so a mismatch is found after writing: callers unpack into a
    staging folder and remove it on error, which is cheaper than reading every layer twice.
    """
    head = raw.read(6)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise UnsafeArchive(f"{label}: the layer is zstd-compressed, which this tool does not "
                            "read; save the image uncompressed or gzip-compressed")
    compressed = _HashingReader(raw, prefix=head)
    if head.startswith(b"\x1f\x8b"):
        plain = _HashingReader(gzip.GzipFile(fileobj=compressed, mode="rb"))  # type: ignore[arg-type]
    else:
        plain = compressed
    try:
        applier.apply(plain, label)  # type: ignore[arg-type]
        plain.drain()
        compressed.drain()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UnsafeArchive(f"{label}: cannot read the layer ({exc})") from None
    if blob_digest is not None and compressed.digest() != blob_digest:
        raise UnsafeArchive(f"{label}: the layer's digest is {compressed.digest()}, not "
                            f"{blob_digest} as the manifest says; the archive is corrupt or "
                            "was tampered with")
    if diff_id is not None and plain.digest() != diff_id:
        raise UnsafeArchive(f"{label}: the unpacked layer's digest is {plain.digest()}, not "
                            f"{diff_id} as the image config says; the archive is corrupt or "
                            "was tampered with")
