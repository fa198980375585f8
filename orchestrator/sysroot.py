"""A target sysroot of system packages: the headers, libraries and pkg-config files of Debian
packages (`--system-package libasound2-dev`), for crates whose build scripts look for a system
library with pkg-config (alsa-sys, libudev-sys, openssl-sys without `vendored`).

The packages come from a fixed, named suite (debian.py verifies them), never from the build
machine, and glibc's own packages are skipped: zig's glibc for the target stays the only libc,
so the sysroot adds libraries, not a second glibc. Absolute symlinks in the packages
(`libz.so -> /lib/x86_64-linux-gnu/libz.so.1`) are rewritten to stay inside the sysroot, so
nothing of the build machine is linked. A sysroot is cached by suite, architecture and package
set, made in a temporary folder and renamed into place whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import debian, logger
from .errors import BadInput, ToolchainError
from .files import locked
from .paths import cache_dir
from .targets import Target

RECORD = "sysroot.json"
# Debian's multiarch tuples (https://wiki.debian.org/Multiarch/Tuples) by Rust target.
MULTIARCH = {
    "x86_64-unknown-linux-gnu": "x86_64-linux-gnu",
    "aarch64-unknown-linux-gnu": "aarch64-linux-gnu",
    "i686-unknown-linux-gnu": "i386-linux-gnu",
}


@dataclass(frozen=True)
class Sysroot:
    path: Path
    suite: str
    multiarch: str
    packages: tuple[dict[str, str], ...]  # name, version, sha256 of each package unpacked

    def manifest_entry(self) -> dict[str, Any]:
        """What the build manifest records: the suite and every package by version and hash."""
        return {"suite": self.suite, "packages": [dict(p) for p in self.packages]}


def sysroot_key(suite: str, debian_arch: str, names: Iterable[str]) -> str:
    text = json.dumps([suite, debian_arch, sorted(set(names)), debian.archive().mirror])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# --- unpacking (pure but for the files it writes) ------------------------------------------


def ar_members(data: bytes) -> dict[str, bytes]:
    """The members of a .deb, an ar(5) archive: `!<arch>\\n`, then 60-byte headers."""
    if not data.startswith(b"!<arch>\n"):
        raise BadInput("not a Debian package (no ar header)")
    members, offset = {}, 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        members[name] = data[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size & 1)
    return members


def inside(root: Path, member: str) -> PurePosixPath | None:
    """A member path relative to the root, or None when it would leave it."""
    parts = [p for p in PurePosixPath(member).parts if p not in ("", ".", "/")]
    if any(p == ".." for p in parts):
        return None
    return PurePosixPath(*parts) if parts else None


def link_inside(link: PurePosixPath, target: str) -> str | None:
    """A symlink's target made relative and kept inside the sysroot (None: it would leave)."""
    if target.startswith("/"):
        resolved = PurePosixPath(os.path.normpath(target.lstrip("/") or "."))
    else:
        resolved = PurePosixPath(os.path.normpath(str(link.parent / target)))
    if str(resolved).startswith(".."):
        return None
    return os.path.relpath(str(resolved), str(link.parent) or ".")


def unpack_deb(deb: Path, root: Path) -> None:
    """The data.tar.* of a .deb into `root`: files, folders and symlinks only (no devices,
    no set-id bits), every path and link kept inside `root`."""
    members = ar_members(deb.read_bytes())
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise BadInput(f"{deb.name}: no data.tar in this Debian package")
    payload = members[data_name]
    if data_name.endswith(".zst"):
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise ToolchainError(
                f"{deb.name} is compressed with zstd; install the zstandard package to unpack it"
            ) from None
        payload = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
        for member in tar:
            rel = inside(root, member.name)
            if rel is None:
                continue
            dest = root / rel
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                dest.unlink(missing_ok=True)
                with open(dest, "wb") as out:
                    shutil.copyfileobj(source, out)
                dest.chmod(member.mode & 0o755)
            elif member.issym() or member.islnk():
                if member.islnk():
                    target_rel = inside(root, member.linkname)
                    target = f"/{target_rel}" if target_rel else None
                else:
                    target = member.linkname
                new = link_inside(rel, target) if target else None
                if new is None:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_symlink() or dest.exists():
                    dest.unlink()
                dest.symlink_to(new)


# --- making one --------------------------------------------------------------------------------


def make_sysroot(suite: str, target: Target, names: Iterable[str]) -> Sysroot:
    """The cached sysroot of `names` (and their dependencies) from Debian `suite`."""
    wanted = sorted(set(names))
    debian.check_names(suite, wanted)
    multiarch = MULTIARCH.get(target.rust)
    if multiarch is None:
        raise BadInput(f"--system-package is not supported for {target.rust} yet")
    key = sysroot_key(suite, target.debian_arch, wanted)
    folder = cache_dir("sysroots")
    path = folder / key
    if (path / RECORD).is_file():
        return _load(path)
    with locked(folder / f".{key}.lock"):
        if (path / RECORD).is_file():
            return _load(path)
        logger.step(
            f"making a sysroot of {', '.join(wanted)} from Debian {suite} "
            f"({target.debian_arch}; cached in {folder})"
        )
        with tempfile.TemporaryDirectory(dir=cache_dir("debian"), prefix=".work-") as work:
            index = debian.packages_index(suite, target.debian_arch, Path(work))
            packages = debian.closure(
                wanted,
                index,
                debian.archive().provided_by_zig,
                where=f"Debian {suite} ({debian.archive().component}, {target.debian_arch})",
            )
            staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{key}."))
            try:
                for package in packages:
                    unpack_deb(debian.fetch_deb(package), staging)
                record = {
                    "suite": suite,
                    "multiarch": multiarch,
                    "packages": [
                        {"name": p.name, "version": p.version, "sha256": p.sha256} for p in packages
                    ],
                }
                (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
                os.replace(staging, path)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    logger.info(f"sysroot: {len(packages)} packages from Debian {suite}")
    return _load(path)


def _load(path: Path) -> Sysroot:
    record = json.loads((path / RECORD).read_text())
    return Sysroot(
        path=path,
        suite=record["suite"],
        multiarch=record["multiarch"],
        packages=tuple(record["packages"]),
    )


# --- pointing the tools at it ----------------------------------------------------------------


def pkg_config_env(sysroot: Sysroot) -> dict[str, str]:
    """pkg-config looks in the sysroot only (PKG_CONFIG_LIBDIR replaces its default path,
    an empty PKG_CONFIG_PATH drops the user's) and prefixes its -I/-L with the sysroot
    (pkg-config(1), "ENVIRONMENT VARIABLES")."""
    root = sysroot.path
    libdirs = [
        root / "usr" / "lib" / sysroot.multiarch / "pkgconfig",
        root / "usr" / "lib" / "pkgconfig",
        root / "usr" / "share" / "pkgconfig",
    ]
    return {
        "PKG_CONFIG_SYSROOT_DIR": str(root),
        "PKG_CONFIG_LIBDIR": os.pathsep.join(str(d) for d in libdirs),
        "PKG_CONFIG_PATH": "",
        "PKG_CONFIG_ALLOW_CROSS": "1",
    }


def compiler_args(sysroot: Sysroot) -> list[str]:
    """For zig: the sysroot's headers searched after zig's libc headers (-idirafter, so its
    glibc-free include folder never shadows the target's libc), its libraries for linking."""
    root, ma = sysroot.path, sysroot.multiarch
    return [
        "-idirafter",
        str(root / "usr" / "include" / ma),
        "-idirafter",
        str(root / "usr" / "include"),
        f"-L{root / 'usr' / 'lib' / ma}",
        f"-L{root / 'lib' / ma}",
        f"-L{root / 'usr' / 'lib'}",
    ]
