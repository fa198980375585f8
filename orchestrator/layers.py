"""Apply image layers (tar streams) onto a folder without ever writing outside it.

Rules (OCI image-spec layer.md; umoci's oci/layer/tar_extract.go):
- Layers are applied bottom to top, in place, each checked against its digests as it streams,
  so the bytes checked are the bytes written (the caller unpacks into a staging folder and
  throws it away when a digest does not match).
- `.wh.NAME` removes NAME of *lower* layers; `.wh..wh..opq` empties its folder of lower-layer
  content wherever it appears in the layer. A per-layer set of touched paths (umoci's
  upperPaths) keeps whiteouts from removing entries of their own layer. Whiteout files are
  never written.
- A member name that is absolute or holds `..` or a NUL byte is refused. Every folder on the
  way to an entry is opened with O_NOFOLLOW relative to its parent's descriptor, so no write,
  removal or link ever goes through a symlink: a layer planting `dir -> /somewhere` and then
  writing `dir/file` (in the same or a later layer) is refused instead.
- Symlink targets are clamped to the root (`clamp_link_target`): the kernel resolves an
  absolute target against the host's `/` and lets `..` climb above DEST, so a verbatim
  `usr/lib/libc.so.6 -> ../../../../lib/libc.so.6` or `lib64 -> /lib` would lead the root's
  own loader to the build machine's files. Each target is rewritten to the relative path the
  root's own system would reach (`/` is the root, `..` stops there).
- Hard links only to regular files already unpacked inside the destination. Device nodes and
  FIFOs are skipped, owners are not applied, setuid/setgid bits are dropped, sizes are capped.

Resource bounds, per layer of N bytes: PAX and GNU long-name records are capped at 1 MiB each
and at MAX_SPECIAL_CHAIN in a row (Go's archive/tar caps them the same way:
https://github.com/golang/go/blob/master/src/archive/tar/common.go, maxSpecialFileSize);
global PAX headers are read and ignored as Go's reader does, so no per-member work grows with
them; sparse members (whose holes would expand a tiny layer into gigabytes) are refused; the
set of paths a layer touched is a trie, one node per distinct path component, and tarfile's
list of members read is emptied as the walk goes. So, whatever the layer's size after
decompression, peak memory stays under 16 MiB plus ~512 bytes per path component the layer
names, and at most 2 directory opens are made per component (tests/test_layers.py checks
both with tracemalloc and counted calls); bytes written are capped by max_bytes. Names in
messages are shortened to MAX_NAME_IN_MESSAGE characters.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import math
import os
import stat
import tarfile
from types import TracebackType
from typing import IO

from .errors import UnsafeArchive

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
DEFAULT_MAX_BYTES = 64 * 2**30  # a decompression bomb stops here, not at a full disk
MAX_DEPTH = 200  # deeper names are an attack on the walkers (recursion, descriptors)
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

MAX_SPECIAL_RECORD = 1 << 20  # PAX / GNU long-name record; Go's maxSpecialFileSize
MAX_SPECIAL_CHAIN = 8  # such records before one member (3 are ever needed: PAX, name, link)
MAX_NAME_IN_MESSAGE = 120  # characters of a member name quoted in an error
MAX_MTIME = 2.0**40  # seconds either side of 1970 (~35,000 years); time_t holds far more
_SPECIAL_RECORDS = {
    tarfile.XHDTYPE: "PAX header",
    tarfile.SOLARIS_XHDTYPE: "PAX header",
    tarfile.XGLTYPE: "global PAX header",
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link name",
}
_CHAIN_ATTR = "_glibc_build_special_chain"

Parts = tuple[str, ...]
_Trie = dict[str, "_Trie"]


def short(name: str, limit: int = MAX_NAME_IN_MESSAGE) -> str:
    """NAME quoted for a message and cut to LIMIT characters: a 50 MB name is no one-line error."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name)} characters)"


def member_parts(name: str, label: str, what: str = "member") -> Parts:
    """The path components of a member name; absolute names, `..` and NUL bytes are refused."""
    if "\0" in name:
        raise UnsafeArchive(
            f"{label}: {what} {short(name)} holds a NUL byte, which no file name "
            "can; the layer is malformed"
        )
    if name.startswith("/"):
        raise UnsafeArchive(
            f"{label}: {what} {short(name)} is an absolute path; refusing an "
            "archive that would write outside its destination"
        )
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if len(parts) > MAX_DEPTH:
        raise UnsafeArchive(
            f"{label}: {what} {short(name, 80)} is nested more than {MAX_DEPTH} "
            "folders deep; refusing it"
        )
    if ".." in parts:
        raise UnsafeArchive(
            f"{label}: {what} {short(name)} climbs out with `..`; refusing an "
            "archive that would write outside its destination"
        )
    return parts


def clamp_link_target(link: Parts, target: str) -> str:
    """The target of the symlink at LINK (its parts in the root), kept inside the root.

    The target is resolved as the root's own system sees it: an absolute target starts at the
    root, and `..` at the root stays there (as `/..` is `/`). The result is relative and
    normal: some `..` (never more than LINK's folder is deep, and every folder above a link
    is a real folder: the applier never walks through a symlink) and then plain names. Each
    link in the root being of that form, any chain of them that the kernel follows stays
    inside the root. `x/..` is simplified by name, as `realpath -m` does; when x is itself a
    symlink the kernel would have gone elsewhere, but still somewhere inside the root.
    """
    folder = list(link[:-1])
    resolved = [] if target.startswith("/") else list(folder)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(part)
    common = 0
    while common < min(len(folder), len(resolved)) and folder[common] == resolved[common]:
        common += 1
    return "/".join([".."] * (len(folder) - common) + resolved[common:]) or "."


def clamp_tree_links(root: str | os.PathLike[str]) -> int:
    """Rewrite every symlink under ROOT with clamp_link_target; the number rewritten.

    For a root this tool did not unpack (a debootstrap copy keeps `lib64/ld-linux-x86-64.so.2
    -> /lib/...`). The walk never descends through a symlink; ROOT must be a folder no one else
    writes to (a staging folder).
    """
    top = os.fspath(root)
    rewritten = 0
    for folder, dirs, files in os.walk(top):  # followlinks=False: links are listed, not entered
        where = tuple(os.path.relpath(folder, top).split(os.sep)) if folder != top else ()
        for name in dirs + files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                continue
            target = os.readlink(path)
            clamped = clamp_link_target(where + (name,), target)
            if clamped != target:
                os.unlink(path)
                os.symlink(clamped, path)
                rewritten += 1
    return rewritten


def check_member_metadata(member: tarfile.TarInfo, label: str) -> None:
    """Refuse what no file can carry: a NaN or far-out mtime, a NUL byte in a link target."""
    if not (math.isfinite(member.mtime) and abs(member.mtime) <= MAX_MTIME):
        raise UnsafeArchive(
            f"{label}: member {short(member.name)} has the modification time "
            f"{short(str(member.mtime), 40)}, which is no time a file can have; "
            "the layer is malformed"
        )
    if "\0" in member.linkname:
        raise UnsafeArchive(
            f"{label}: the link target of {short(member.name)} holds a NUL "
            "byte; the layer is malformed"
        )


class TarRecordRefused(Exception):
    """A tar extension record over the limits; re-raised with the layer's label."""


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile's member reader, with Go's limits on the records it reads whole into memory.

    tarfile reads a PAX or GNU long-name record in one piece, whatever its header claims, and
    follows a chain of them by recursion; both are checked here, from the record's header,
    before its body is read. Global PAX headers are skipped, as Go's reader does (it returns
    them as entries and never applies them), so they cannot make each later member costlier.
    """

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        kind = _SPECIAL_RECORDS.get(self.type)
        if kind is None:
            return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]
        if self.size > MAX_SPECIAL_RECORD:
            raise TarRecordRefused(
                f"a {kind} record of {self.size} bytes, more than "
                f"{MAX_SPECIAL_RECORD} (as Go's archive/tar allows); "
                "refusing it"
            )
        depth: int = getattr(tarfile_, _CHAIN_ATTR, 0)
        if depth >= MAX_SPECIAL_CHAIN:
            raise TarRecordRefused(
                f"more than {MAX_SPECIAL_CHAIN} PAX/GNU extension records "
                "before one member; refusing it"
            )
        setattr(tarfile_, _CHAIN_ATTR, depth + 1)
        try:
            if self.type == tarfile.XGLTYPE:
                return self._skip_global_header(tarfile_)
            return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]
        except ValueError as exc:  # int() of a PAX length or sparse map that is no number
            raise TarRecordRefused(f"a malformed {kind} record ({str(exc)[:200]})") from None
        finally:
            setattr(tarfile_, _CHAIN_ATTR, depth)

    def _skip_global_header(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        assert tarfile_.fileobj is not None
        tarfile_.fileobj.read(-(-self.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
        try:
            return self.fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            raise tarfile.ReadError(str(exc)) from None  # not the end of the layer


class _Touched:
    """The paths a layer wrote and their ancestors, as a trie of plain dicts.

    One node per distinct path component (a set of every ancestor tuple would cost
    O(depth**2) per entry); `nodes` counts them, for the resource-bound tests.
    """

    def __init__(self) -> None:
        self._root: _Trie = {}
        self.nodes = 0

    def add(self, parts: Parts) -> None:
        node = self._root
        for part in parts:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
                self.nodes += 1
            node = child

    def __contains__(self, parts: Parts) -> bool:
        node = self._root
        for part in parts:
            child = node.get(part)
            if child is None:
                return False
            node = child
        return True


class LayerApplier:
    """Applies layers onto DEST through directory descriptors (use as a context manager)."""

    def __init__(self, dest: os.PathLike[str] | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dest = os.fspath(dest)
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self._root_fd = os.open(self.dest, _DIR_FLAGS)

    def __enter__(self) -> LayerApplier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # -- one layer ---------------------------------------------------------------------------
    def apply(self, stream: IO[bytes], label: str) -> None:
        """Apply one uncompressed tar layer, read front to back (no seeking)."""
        upper = _Touched()  # paths this layer wrote, and their ancestors
        try:
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=BoundedTarInfo) as tar:
                for member in tar:
                    self._entry(tar, member, upper, label)
                    # Stream mode keeps every member read (O(entries)); the walk needs none.
                    tar.members.clear()  # type: ignore[attr-defined]
        except TarRecordRefused as exc:
            raise UnsafeArchive(f"{label}: {exc}") from None
        except tarfile.TarError as exc:
            raise UnsafeArchive(f"{label}: not a valid tar layer ({str(exc)[:200]})") from None
        except EOFError:
            raise UnsafeArchive(f"{label}: the layer is truncated") from None

    def _entry(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, upper: _Touched, label: str
    ) -> None:
        parts = member_parts(member.name, label)
        if not parts:  # the root folder itself: only its type matters, and it must stay a folder
            if not member.isdir():
                raise UnsafeArchive(
                    f"{label}: member {short(member.name)} would replace the "
                    "root folder itself; refusing it"
                )
            return
        check_member_metadata(member, label)
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, member.name, upper, label)
            return
        if member.ischr() or member.isblk() or member.isfifo():
            return  # a root for loading libraries needs no device nodes
        if member.issparse():
            raise UnsafeArchive(
                f"{label}: member {short(member.name)} is a sparse file, whose "
                "holes would expand a small layer without bound; image layers "
                "hold none, refusing it"
            )
        parent_fd = self._open_dir(parts[:-1], label, member.name, create=True)
        try:
            if member.isdir():
                self._make_dir(parent_fd, base, member)
            elif member.isreg():
                self._write_file(parent_fd, base, tar, member, label)
            elif member.issym():
                if not member.linkname:
                    raise UnsafeArchive(
                        f"{label}: symlink {short(member.name)} has an empty target"
                    )
                self._clear(parent_fd, base)
                os.symlink(clamp_link_target(parts, member.linkname), base, dir_fd=parent_fd)
            elif member.islnk():
                self._hard_link(parent_fd, parts, member, label)
            else:
                raise UnsafeArchive(
                    f"{label}: member {short(member.name)} has an unsupported type {member.type!r}"
                )
        except OSError as exc:
            raise UnsafeArchive(
                f"{label}: cannot unpack {short(member.name)}: {exc.strerror or exc}"
            ) from None
        finally:
            os.close(parent_fd)
        upper.add(parts)

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
    def _refuse_walk(
        fd: int, part: str, prefix: Parts, name: str, label: str, exc: OSError
    ) -> None:
        where = "/".join(prefix)
        try:
            info = os.lstat(part, dir_fd=fd)
        except OSError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            target = os.readlink(part, dir_fd=fd)
            raise UnsafeArchive(
                f"{label}: {short(name)} would be written through the symlink "
                f"{short(where)} -> {short(target)}; refusing an archive that "
                "could write outside its destination"
            ) from None
        if exc.errno in (errno.ENOTDIR, errno.EEXIST) or info is not None:
            raise UnsafeArchive(
                f"{label}: {short(name)} needs {short(where)} to be a folder, "
                "but it is not; the layer is malformed"
            ) from None
        raise UnsafeArchive(
            f"{label}: cannot open {short(where)} for {short(name)}: {exc.strerror}"
        ) from None

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

    def _write_file(
        self, parent_fd: int, base: str, tar: tarfile.TarFile, member: tarfile.TarInfo, label: str
    ) -> None:
        if self.bytes_written + member.size > self.max_bytes:
            raise UnsafeArchive(
                f"{label}: the image unpacks to more than {self.max_bytes} bytes; refusing it"
            )
        self._clear(parent_fd, base)
        fd = os.open(
            base,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent_fd,
        )
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

    def _hard_link(self, parent_fd: int, parts: Parts, member: tarfile.TarInfo, label: str) -> None:
        target = member_parts(member.linkname, label, f"hard link target of {short(member.name)}")
        if not target:
            raise UnsafeArchive(
                f"{label}: hard link {short(member.name)} points at the root folder"
            )
        if target == parts:
            return
        target_fd = self._open_dir(target[:-1], label, member.linkname, create=False)
        try:
            try:
                info = None if target_fd < 0 else os.lstat(target[-1], dir_fd=target_fd)
            except FileNotFoundError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                raise UnsafeArchive(
                    f"{label}: hard link {short(member.name)} -> "
                    f"{short(member.linkname)}: the target is not a regular "
                    "file already unpacked; refusing it"
                )
            self._clear(parent_fd, parts[-1])
            os.link(
                target[-1],
                parts[-1],
                src_dir_fd=target_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        finally:
            if target_fd >= 0:
                os.close(target_fd)

    # -- whiteouts -----------------------------------------------------------------------------
    def _whiteout(self, parts: Parts, name: str, upper: _Touched, label: str) -> None:
        base = parts[-1]
        folder = parts[:-1]
        if base != OPAQUE_WHITEOUT:
            hidden = base[len(WHITEOUT_PREFIX) :]
            if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
                raise UnsafeArchive(f"{label}: whiteout {short(name)} names no valid entry")
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

    def _purge(self, dir_fd: int, base: str, path: Parts, upper: _Touched) -> None:
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
        view = view[os.write(fd, view) :]


# -- digests while streaming ---------------------------------------------------------------
class _HashingReader:
    """Reads through to RAW and hashes every byte that passes."""

    def __init__(self, raw: IO[bytes], prefix: bytes = b"") -> None:
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


def apply_verified_layer(
    applier: LayerApplier,
    raw: IO[bytes],
    label: str,
    *,
    blob_digest: str | None,
    diff_id: str | None,
) -> None:
    """Apply a layer blob (plain or gzip tar), checking its blob digest and its diff_id.

    The check ends the layer, so a mismatch is found after writing: callers unpack into a
    staging folder and remove it on error, which is cheaper than reading every layer twice.
    """
    head = raw.read(6)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise UnsafeArchive(
            f"{label}: the layer is zstd-compressed, which this tool does not "
            "read; save the image uncompressed or gzip-compressed"
        )
    compressed = _HashingReader(raw, prefix=head)
    if head.startswith(b"\x1f\x8b"):
        plain = _HashingReader(gzip.GzipFile(fileobj=compressed, mode="rb"))  # type: ignore[call-overload]
    else:
        plain = compressed
    try:
        applier.apply(plain, label)  # type: ignore[arg-type]
        plain.drain()
        compressed.drain()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UnsafeArchive(f"{label}: cannot read the layer ({exc})") from None
    if blob_digest is not None and compressed.digest() != blob_digest:
        raise UnsafeArchive(
            f"{label}: the layer's digest is {compressed.digest()}, not "
            f"{blob_digest} as the manifest says; the archive is corrupt or "
            "was tampered with"
        )
    if diff_id is not None and plain.digest() != diff_id:
        raise UnsafeArchive(
            f"{label}: the unpacked layer's digest is {plain.digest()}, not "
            f"{diff_id} as the image config says; the archive is corrupt or "
            "was tampered with"
        )
