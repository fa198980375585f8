"""Roots unpacked from image archives: `docker save` tarballs and OCI image layouts.

A `docker save` tarball holds manifest.json + config + layer tars; an OCI image layout
(image-spec image-layout.md) holds oci-layout + index.json + blobs/, as a folder or a tar.
Every blob is checked against its digest, and layers are applied by layers.py, which never
writes outside the destination. Everything is unpacked into a staging folder beside DEST and
renamed into place (rootdest.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from .digest import sha256_file
from .errors import BadInput, UnsafeArchive
from .rootdest import host_debian_arch, move_into_place, prepare_dest, remove_tree

MAX_JSON_BYTES = 16 * 2**20  # manifests and configs are small; a huge one is not an image
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_OCI_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json")


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

    def open(self, name: str) -> IO[bytes]:
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
    prepare_dest(dest)
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
        move_into_place(staging, dest)
    except BaseException:
        if staging is not None:
            remove_tree(staging)
        raise
    finally:
        files.close()


def archive_key(archive: Path) -> str:
    """Content hash of an archive; for a layout folder its index (blobs are addressed by it)."""
    if not archive.is_dir():
        return sha256_file(archive)
    digest = hashlib.sha256()
    for name in ("index.json", "manifest.json"):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + b"\0" + (archive / name).read_bytes())
    return digest.hexdigest()


def is_layout_folder(path: Path) -> bool:
    return (path / "oci-layout").is_file() or (path / "manifest.json").is_file()


def is_image_archive(path: Path) -> bool:
    """A file (tar of either format) or a layout folder; a plain root folder is not one."""
    return path.is_file() or (path.is_dir() and is_layout_folder(path))
