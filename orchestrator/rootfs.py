"""Old-glibc roots to prove plugins in: made by debootstrap, or unpacked from an image archive.

A root is only ever *read* by verify-load (its own dynamic loader runs the test loader with
`--library-path`), so no chroot, mount or container is needed once it exists. Roots are slow
to make, so both kinds are cached (see cache.py); everything is built in a temporary folder
beside its final place and renamed into it, so an interrupted run leaves nothing half-made.

Image archives: a `docker save` tarball (manifest.json + config + layer tars) or an OCI image
layout (oci-layout + index.json + blobs/), as a folder or a tar. Every blob is checked against
its digest, and layers are applied by layers.py, which never writes outside the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from .cache import cache_dir
from .digest import sha256_file
from .errors import BadInput, ToolchainError, UnsafeArchive, UsageError
from .files import locked
from .logger import info, step

DEFAULT_MIRROR_HINT = "http://deb.debian.org/debian"
ARCHIVE_MIRROR = "http://archive.debian.org/debian"
MAX_JSON_BYTES = 16 * 2**20  # manifests and configs are small; a huge one is not an image
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_HOST_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "i386": "i386",
                     "armv7l": "armhf", "ppc64le": "ppc64el", "riscv64": "riscv64",
                     "s390x": "s390x"}
_OCI_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json")


# -- helpers shared by both kinds of root --------------------------------------------------
def _prepare_dest(dest: Path) -> None:
    """DEST may be missing or an empty folder; anything else would be silently mixed into."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BadInput(f"{dest} exists and is not a folder; choose a new DEST")
    if dest.is_dir() and any(dest.iterdir()):
        raise BadInput(f"{dest} exists and is not empty; remove it or choose a new DEST")
    dest.parent.mkdir(parents=True, exist_ok=True)


def _move_into_place(staging: Path, dest: Path) -> None:
    os.chmod(staging, 0o755)  # mkdtemp made it 0700; a root's / is world-readable
    if dest.is_dir():
        dest.rmdir()  # checked empty by _prepare_dest
    os.rename(staging, dest)


def _remove_tree(path: Path) -> None:
    """Remove a half-made root. shutil.rmtree never follows the symlinks a root is full of."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def _unmount_below(path: Path) -> None:
    """Undo mounts a killed debootstrap left in its target (/proc, /sys) before removing it."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(path.resolve())
    points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
              for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p == prefix or p.startswith(prefix + "/")),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def host_debian_arch() -> str:
    return _HOST_DEBIAN_ARCH.get(platform.machine(), platform.machine())


# -- debootstrap -----------------------------------------------------------------------------
def _debootstrap_scripts() -> Path:
    base = os.environ.get("DEBOOTSTRAP_DIR") or "/usr/share/debootstrap"
    return Path(base) / "scripts"


def _check_debootstrap(suite: str, arch: str) -> str:
    """Fail early, with what to do, on each reason debootstrap could not work here."""
    binary = shutil.which("debootstrap")
    if binary is None:
        raise ToolchainError("debootstrap is not installed; install it (`apt-get install "
                             "debootstrap` on Debian/Ubuntu) or pass an image archive instead "
                             "(`rootfs --image`, `--image`)")
    if os.geteuid() != 0:
        raise ToolchainError("debootstrap must run as root (it unpacks packages with their "
                             "owners and runs their scripts in a chroot); run this as root, or "
                             "make the root elsewhere and pass a folder or an image archive "
                             "(`docker save`) instead")
    scripts = _debootstrap_scripts()
    if scripts.is_dir() and not (scripts / suite).exists():
        known = sorted(p.name for p in scripts.iterdir() if "." not in p.name)
        raise UsageError(f"debootstrap does not know the suite {suite!r}; known suites: "
                         f"{', '.join(known)}")
    if arch != host_debian_arch():
        raise UsageError(f"debootstrap can only make {host_debian_arch()} roots on this "
                         f"machine, not {arch}; for {arch} pass an image archive of an {arch} "
                         "image (`rootfs --image`)")
    return binary


def _debootstrap_key(suite: str, arch: str, variant: str, include: tuple[str, ...],
                     mirror: str | None) -> str:
    key = f"{suite}-{arch}-{variant}"
    if include or mirror:
        extra = json.dumps([sorted(include), mirror or ""]).encode()
        key += "-" + hashlib.sha256(extra).hexdigest()[:12]
    return key


def _explain_debootstrap_failure(suite: str, mirror: str | None, log: str) -> None:
    """Turn debootstrap's last words into the error the user can act on."""
    tail = "\n".join(log.strip().splitlines()[-25:])
    where = mirror or DEFAULT_MIRROR_HINT
    if "Failed getting release file" in log or "Release signed by unknown key" in log:
        raise UsageError(f"debootstrap could not get suite {suite!r} from {where}: it is not "
                         f"on that mirror (end-of-life Debian suites are on {ARCHIVE_MIRROR}) "
                         "or the mirror is unreachable; pass --mirror URL of one that has it",
                         details=tail)
    raise ToolchainError(f"debootstrap failed making the {suite} root", details=tail)


def debootstrap_root(suite: str, *, arch: str = "amd64", variant: str = "minbase",
                     include: tuple[str, ...] = (), mirror: str | None = None) -> Path:
    """The cached root of SUITE (made by debootstrap on first use); never modify it."""
    # These names become a cache folder name: nothing but plain words may pass.
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", suite):
        raise UsageError(f"{suite!r} is not a suite name (e.g. bullseye, buster, focal)")
    if not re.fullmatch(r"[a-z0-9]+", arch):
        raise UsageError(f"{arch!r} is not a Debian architecture (e.g. amd64, arm64)")
    if variant not in ("minbase", "buildd", "fakechroot"):
        raise UsageError(f"debootstrap has no variant {variant!r}; use minbase, buildd or "
                         "fakechroot")
    for package in include:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", package):
            raise UsageError(f"--include: {package!r} is not a Debian package name")
    if mirror is not None and not re.match(r"(https?|file):/", mirror):
        raise UsageError(f"--mirror {mirror!r} is not a URL (http://, https:// or file:/)")
    base = cache_dir("debootstrap")
    key = _debootstrap_key(suite, arch, variant, tuple(include), mirror)
    final = base / key
    if final.is_dir():
        return final
    binary = _check_debootstrap(suite, arch)
    with locked(base / f".{key}.lock"):
        if final.is_dir():  # made by another process while we waited
            return final
        step(f"making a {suite} {arch} root with debootstrap (first use; it is cached in "
             f"{base})")
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.partial-", dir=base))
        try:
            command = [binary, f"--variant={variant}", f"--arch={arch}"]
            if include:
                command.append("--include=" + ",".join(include))
            command += [suite, str(staging)]
            if mirror:
                command.append(mirror)
            proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace")
            if proc.returncode != 0:
                log = proc.stdout + proc.stderr
                with contextlib.suppress(OSError):
                    log += (staging / "debootstrap" / "debootstrap.log").read_text(
                        errors="replace")[-4000:]
                _explain_debootstrap_failure(suite, mirror, log)
            # The downloaded .debs are not part of the root and only take space.
            archives = staging / "var" / "cache" / "apt" / "archives"
            for deb in archives.glob("*.deb"):
                deb.unlink()
            _move_into_place(staging, final)
        except BaseException:
            _unmount_below(staging)
            _remove_tree(staging)
            raise
    info(f"root ready: {final}")
    return final


def copy_root(source: Path, dest: Path) -> None:
    """Copy a cached root to DEST (cp -a: keeps symlinks, modes and /dev nodes as they are)."""
    _prepare_dest(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        proc = subprocess.run(["cp", "-a", "--", f"{source}/.", str(staging)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"copying {source} to {dest} failed",
                                 details=proc.stderr[-2000:])
        _move_into_place(staging, dest)
    except BaseException:
        _remove_tree(staging)
        raise


# -- image archives: reading the two formats -------------------------------------------------
class _ArchiveFiles:
    """Files of an image archive (folder or tar) by their relative name, never escaping it."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if archive.is_dir():
            return
        try:
            self._tar = tarfile.open(archive, "r:*")
            for member in self._tar.getmembers():
                self._members[posixpath.normpath(member.name).lstrip("/")] = member
        except (tarfile.TarError, EOFError, OSError) as exc:
            self.close()
            raise BadInput(f"{archive} is neither a folder nor a readable tar archive ({exc}); "
                           "pass a `docker save` tarball or an OCI image layout") from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _safe_name(self, name: str) -> str:
        clean = posixpath.normpath(name)
        if name.startswith("/") or clean == ".." or clean.startswith("../"):
            raise UnsafeArchive(f"{self.archive}: the image refers to {name!r}, outside the "
                                "archive; refusing it")
        return clean

    def _member(self, name: str) -> tarfile.TarInfo | None:
        """A tar member, following symlinks inside the archive (Docker 25+ links layer.tar)."""
        for _ in range(16):
            member = self._members.get(name)
            if member is None or not member.issym():
                return member
            name = self._safe_name(posixpath.join(posixpath.dirname(name), member.linkname))
        raise UnsafeArchive(f"{self.archive}: symlink loop at {name!r}")

    def exists(self, name: str) -> bool:
        name = self._safe_name(name)
        if self._tar is None:
            return self._path(name).is_file()
        member = self._member(name)
        return member is not None and member.isfile()

    def _path(self, name: str) -> Path:
        path = (self.archive / name).resolve()
        if not path.is_relative_to(self.archive.resolve()):
            raise UnsafeArchive(f"{self.archive}: {name!r} leads outside the layout; refusing it")
        return path

    def open(self, name: str) -> BinaryIO:
        name = self._safe_name(name)
        if self._tar is None:
            path = self._path(name)
            if not path.is_file():
                raise UnsafeArchive(f"{self.archive}: {name} is missing; the image is incomplete")
            return open(path, "rb")
        member = self._member(name)
        handle = self._tar.extractfile(member) if member is not None and member.isfile() \
            else None
        if handle is None:
            raise UnsafeArchive(f"{self.archive}: {name} is missing; the image is incomplete")
        return handle

    def read_json(self, name: str, digest: str | None = None) -> object:
        with self.open(name) as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise UnsafeArchive(f"{self.archive}: {name} is larger than a manifest can be")
        if digest is not None and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise UnsafeArchive(f"{self.archive}: {name} does not match its digest {digest}; "
                                "the archive is corrupt or was tampered with")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise UnsafeArchive(f"{self.archive}: {name} is not valid JSON ({exc})") from None


def _blob_name(digest: object, archive: Path) -> str:
    match = _DIGEST.match(digest) if isinstance(digest, str) else None
    if match is None:
        raise UnsafeArchive(f"{archive}: unsupported or malformed digest {digest!r} (only "
                            "sha256 is read)")
    return f"blobs/sha256/{match.group(1)}"


def _diff_ids(config: object, layer_count: int, archive: Path) -> list[str]:
    try:
        diff_ids = config["rootfs"]["diff_ids"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise UnsafeArchive(f"{archive}: the image config has no rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != layer_count:
        raise UnsafeArchive(f"{archive}: the config lists {len(diff_ids)} layer digests but the "
                            f"manifest {layer_count} layers; the archive is inconsistent")
    for diff_id in diff_ids:
        _blob_name(diff_id, archive)
    return diff_ids


def _docker_save_layers(files: _ArchiveFiles) -> list[tuple[str, str | None, str]]:
    """(layer file, blob digest if known, diff_id) bottom to top, from manifest.json."""
    manifest = files.read_json("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise UnsafeArchive(f"{files.archive}: manifest.json lists no image")
    if len(manifest) > 1:
        tags = ", ".join(str(entry.get("RepoTags")) for entry in manifest
                         if isinstance(entry, dict))
        raise BadInput(f"{files.archive} holds {len(manifest)} images ({tags}); `docker save` "
                       "just the one to use")
    entry = manifest[0]
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or \
            not isinstance(entry.get("Layers"), list):
        raise UnsafeArchive(f"{files.archive}: manifest.json has no Config and Layers")
    config_name: str = entry["Config"]
    stem = posixpath.basename(config_name).removesuffix(".json")
    config_digest = f"sha256:{stem}" if re.fullmatch(r"[0-9a-f]{64}", stem) else None
    config = files.read_json(config_name, config_digest)
    layers: list[str] = entry["Layers"]
    diff_ids = _diff_ids(config, len(layers), files.archive)
    result = []
    for name, diff_id in zip(layers, diff_ids):
        match = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", str(name))
        result.append((str(name), f"sha256:{match.group(1)}" if match else None, diff_id))
    return result


def _pick_manifest(files: _ArchiveFiles, descriptors: list, arch: str, depth: int = 0) -> dict:
    """The image manifest for linux/ARCH, walking nested indexes; attestations are skipped."""
    if depth > 4:
        raise UnsafeArchive(f"{files.archive}: image indexes nest too deeply")
    candidates = []
    for descriptor in descriptors:
        if not isinstance(descriptor, dict):
            continue
        annotations = descriptor.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        platform_ = descriptor.get("platform") or {}
        if platform_.get("architecture") not in (None, arch) or \
                platform_.get("os") not in (None, "linux"):
            continue
        if descriptor.get("mediaType") in _OCI_INDEX_TYPES:
            index = files.read_json(_blob_name(descriptor.get("digest"), files.archive),
                                    descriptor.get("digest"))
            manifests = index.get("manifests") if isinstance(index, dict) else None
            with contextlib.suppress(BadInput):
                candidates.append(_pick_manifest(files, manifests or [], arch, depth + 1))
            continue
        candidates.append(descriptor)
    if len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)}"
        raise BadInput(f"{files.archive}: the OCI layout has {what} linux/{arch} image "
                       "manifests; it must hold exactly one")
    return candidates[0]


def _oci_layers(files: _ArchiveFiles, arch: str) -> list[tuple[str, str | None, str]]:
    index = files.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise UnsafeArchive(f"{files.archive}: index.json lists no manifests")
    descriptor = _pick_manifest(files, index["manifests"], arch)
    manifest = files.read_json(_blob_name(descriptor.get("digest"), files.archive),
                               descriptor.get("digest"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list) or \
            not isinstance(manifest.get("config"), dict):
        raise UnsafeArchive(f"{files.archive}: the image manifest has no config and layers")
    config_digest = manifest["config"].get("digest")
    config = files.read_json(_blob_name(config_digest, files.archive), config_digest)
    diff_ids = _diff_ids(config, len(manifest["layers"]), files.archive)
    result = []
    for layer, diff_id in zip(manifest["layers"], diff_ids):
        digest = layer.get("digest") if isinstance(layer, dict) else None
        media_type = str(layer.get("mediaType", "")) if isinstance(layer, dict) else ""
        if "zstd" in media_type:
            raise BadInput(f"{files.archive}: layer {digest} is zstd-compressed, which this "
                           "tool does not read; save the image uncompressed or gzip-compressed")
        result.append((_blob_name(digest, files.archive), digest, diff_id))
    return result


def unpack_image(archive: Path, dest: Path, *, arch: str | None = None) -> None:
    """Unpack a `docker save` tarball or OCI layout (folder or tar) into DEST, verified."""
    from .layers import LayerApplier, apply_verified_layer

    if not archive.exists():
        raise BadInput(f"{archive}: no such image archive")
    _prepare_dest(dest)
    arch = arch or host_debian_arch()
    files = _ArchiveFiles(archive)
    staging: Path | None = None
    try:
        if files.exists("manifest.json"):
            layers = _docker_save_layers(files)
        elif files.exists("index.json"):
            layers = _oci_layers(files, arch)
        else:
            raise BadInput(f"{archive} is neither a `docker save` archive (no manifest.json) "
                           "nor an OCI image layout (no index.json)")
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        with LayerApplier(staging) as applier:
            for number, (name, blob_digest, diff_id) in enumerate(layers, 1):
                label = f"{archive.name}: layer {number}/{len(layers)} ({name})"
                with files.open(name) as stream:
                    apply_verified_layer(applier, stream, label, blob_digest=blob_digest,
                                         diff_id=diff_id)
        _move_into_place(staging, dest)
    except BaseException:
        if staging is not None:
            _remove_tree(staging)
        raise
    finally:
        files.close()


def _archive_key(archive: Path) -> str:
    """Content hash of an archive; for a layout folder its index (blobs are addressed by it)."""
    if not archive.is_dir():
        return sha256_file(archive)
    digest = hashlib.sha256()
    for name in ("index.json", "manifest.json"):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + b"\0" + (archive / name).read_bytes())
    return digest.hexdigest()


def _is_layout_folder(path: Path) -> bool:
    return (path / "oci-layout").is_file() or (path / "manifest.json").is_file()


def is_image_archive(path: Path) -> bool:
    """A file (tar of either format) or a layout folder; a plain root folder is not one."""
    return path.is_file() or (path.is_dir() and _is_layout_folder(path))


def resolve_root(root_or_archive: Path) -> Path:
    """A root folder as is; an image archive (or layout folder) unpacked once into the cache."""
    path = Path(root_or_archive)
    if not path.exists():
        raise BadInput(f"{path}: no such root folder or image archive")
    if path.is_dir() and not _is_layout_folder(path):
        return path
    base = cache_dir("images")
    key = _archive_key(path)[:32]
    final = base / key
    if final.is_dir():
        return final
    with locked(base / f".{key}.lock"):
        if not final.is_dir():
            step(f"unpacking image {path} (first use; cached in {base})")
            unpack_image(path, final)
    return final


# -- the rootfs command ----------------------------------------------------------------------
def run_rootfs(*, suite: str | None, image: Path | None, dest: Path, arch: str | None,
               variant: str, include: str | None, mirror: str | None) -> int:
    """`build.py rootfs`: a root in DEST, from debootstrap (via the cache) or an image."""
    if (suite is None) == (image is None):
        raise UsageError("pass exactly one of --debootstrap SUITE or --image ARCHIVE")
    _prepare_dest(dest)  # before a slow debootstrap, not after
    if suite is not None:
        packages = tuple(p for p in (include or "").replace(" ", ",").split(",") if p)
        root = debootstrap_root(suite, arch=arch or host_debian_arch(), variant=variant,
                                include=packages, mirror=mirror)
        step(f"copying the {suite} root to {dest}")
        copy_root(root, dest)
    elif image is not None:
        if not image.exists():
            raise BadInput(f"--image {image}: no such file or folder")
        step(f"unpacking {image} into {dest}")
        unpack_image(image, dest, arch=arch)
    info(f"root ready: {dest}")
    return 0
