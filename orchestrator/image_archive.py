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
from collections import deque
from pathlib import Path
from typing import IO

from .digest import sha256_file
from .errors import BadInput, UnsafeArchive
from .layers import BoundedTarInfo, LayerApplier, TarRecordRefused, apply_verified_layer, short
from .rootdest import host_debian_arch, move_into_place, prepare_dest, remove_tree

MAX_JSON_BYTES = 16 * 2**20  # manifests and configs are small; a huge one is not an image
MAX_INDEXES = 64  # nested image indexes read for one image (a multi-platform image has 1-2)
MAX_INDEX_DEPTH = 4
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_OCI_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


class _ArchiveFiles:
    """Files of an image archive (folder or tar) by their relative name, never escaping it."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if archive.is_dir():
            return
        try:
            self._tar = tarfile.open(archive, "r:*", tarinfo=BoundedTarInfo)
            for member in self._tar.getmembers():
                self._members[posixpath.normpath(member.name).lstrip("/")] = member
        except (tarfile.TarError, EOFError, OSError, TarRecordRefused) as exc:
            self.close()
            raise BadInput(
                f"{archive} is neither a folder nor a readable tar archive "
                f"({str(exc)[:200]}); pass a `docker save` tarball or an OCI image "
                "layout"
            ) from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _safe_name(self, name: str) -> str:
        """NAME inside the archive; absolute names, `..` and NUL bytes are refused."""
        clean = posixpath.normpath(name)
        if "\0" in name:
            raise UnsafeArchive(
                f"{self.archive}: the image refers to {short(name)}, which holds "
                "a NUL byte; the archive is malformed"
            )
        if name.startswith("/") or clean == ".." or clean.startswith("../"):
            raise UnsafeArchive(
                f"{self.archive}: the image refers to {short(name)}, outside "
                "the archive; refusing it"
            )
        return clean

    def _member(self, name: str) -> tarfile.TarInfo | None:
        """A tar member, following symlinks inside the archive (Docker 25+ links layer.tar)."""
        for _ in range(16):
            member = self._members.get(name)
            if member is None or not member.issym():
                return member
            name = self._safe_name(posixpath.join(posixpath.dirname(name), member.linkname))
        raise UnsafeArchive(f"{self.archive}: symlink loop at {short(name)}")

    def exists(self, name: str) -> bool:
        name = self._safe_name(name)
        if self._tar is None:
            return self._path(name).is_file()
        member = self._member(name)
        return member is not None and member.isfile()

    def _path(self, name: str) -> Path:
        path = (self.archive / name).resolve()
        if not path.is_relative_to(self.archive.resolve()):
            raise UnsafeArchive(
                f"{self.archive}: {short(name)} leads outside the layout; refusing it"
            )
        return path

    def open(self, name: str) -> IO[bytes]:
        name = self._safe_name(name)
        if self._tar is None:
            path = self._path(name)
            if not path.is_file():
                raise UnsafeArchive(
                    f"{self.archive}: {short(name)} is missing; the image is incomplete"
                )
            return open(path, "rb")
        member = self._member(name)
        handle = self._tar.extractfile(member) if member is not None and member.isfile() else None
        if handle is None:
            raise UnsafeArchive(
                f"{self.archive}: {short(name)} is missing; the image is incomplete"
            )
        return handle

    def read_json(self, name: str, digest: str | None = None) -> object:
        with self.open(name) as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise UnsafeArchive(f"{self.archive}: {short(name)} is larger than a manifest can be")
        if digest is not None and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise UnsafeArchive(
                f"{self.archive}: {short(name)} does not match its digest "
                f"{digest}; the archive is corrupt or was tampered with"
            )
        try:
            return json.loads(data)
        except ValueError as exc:  # also int() of a number longer than 4300 digits
            raise UnsafeArchive(
                f"{self.archive}: {short(name)} is not valid JSON ({str(exc)[:200]})"
            ) from None
        except RecursionError:  # `[[[[...` nested deeper than the parser recurses
            raise UnsafeArchive(
                f"{self.archive}: {short(name)} nests too deeply to be a manifest"
            ) from None


def json_type(value: object) -> str:
    """How a JSON value is called in a message ("a list", "a string"...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else "a string"


def json_object(value: object, what: str, archive: Path) -> dict[str, object]:
    """VALUE if it is a JSON object; else bad input naming WHAT (image-spec's JSON types)."""
    if not isinstance(value, dict):
        raise UnsafeArchive(
            f"{archive}: {what} is {json_type(value)}, not a JSON object; the archive is malformed"
        )
    return value


def json_list(value: object, what: str, archive: Path) -> list[object]:
    if not isinstance(value, list):
        raise UnsafeArchive(
            f"{archive}: {what} is {json_type(value)}, not a JSON list; the archive is malformed"
        )
    return value


def optional_object(
    parent: dict[str, object], key: str, what: str, archive: Path
) -> dict[str, object]:
    """PARENT[KEY] as an object; a missing key or null is an empty one."""
    value = parent.get(key)
    return {} if value is None else json_object(value, what, archive)


def checked_digest(digest: object, archive: Path) -> str:
    """DIGEST if it is a sha256 digest string, the only algorithm this tool reads."""
    if not isinstance(digest, str) or _DIGEST.match(digest) is None:
        raise UnsafeArchive(
            f"{archive}: unsupported or malformed digest "
            f"{short(str(digest), 80)} (only sha256 is read)"
        )
    return digest


def blob_name(digest: object, archive: Path) -> str:
    """The layout path of a blob (image-layout.md: blobs/<alg>/<encoded>)."""
    return "blobs/sha256/" + checked_digest(digest, archive).removeprefix("sha256:")


def diff_ids(config: object, layer_count: int, archive: Path) -> list[str]:
    """The config's rootfs.diff_ids: a list of sha256 digests, one per manifest layer."""
    rootfs = json_object(config, "the image config", archive).get("rootfs")
    if rootfs is None:
        raise UnsafeArchive(f"{archive}: the image config has no rootfs.diff_ids")
    found = json_list(
        json_object(rootfs, "the config's rootfs", archive).get("diff_ids"),
        "the config's rootfs.diff_ids",
        archive,
    )
    if len(found) != layer_count:
        raise UnsafeArchive(
            f"{archive}: the config lists {len(found)} layer digests but the "
            f"manifest {layer_count} layers; the archive is inconsistent"
        )
    return [checked_digest(diff_id, archive) for diff_id in found]


def docker_save_entry(manifest: object, archive: Path) -> tuple[str, list[str]]:
    """(Config, Layers) of the one image in a `docker save` manifest.json."""
    images = json_list(manifest, "manifest.json", archive)
    if not images:
        raise UnsafeArchive(f"{archive}: manifest.json lists no image")
    if len(images) > 1:
        tags = ", ".join(str(entry.get("RepoTags")) for entry in images if isinstance(entry, dict))
        raise BadInput(
            f"{archive} holds {len(images)} images ({short(tags, 200)}); "
            "`docker save` just the one to use"
        )
    entry = json_object(images[0], "the image in manifest.json", archive)
    config, layers = entry.get("Config"), entry.get("Layers")
    if (
        not isinstance(config, str)
        or not isinstance(layers, list)
        or not all(isinstance(name, str) for name in layers)
    ):
        raise UnsafeArchive(
            f"{archive}: manifest.json has no Config and Layers (a name and a list of names)"
        )
    return config, [str(name) for name in layers]


def _docker_save_layers(files: _ArchiveFiles) -> list[tuple[str, str | None, str]]:
    """(layer file, blob digest if known, diff_id) bottom to top, from manifest.json."""
    config_name, layers = docker_save_entry(files.read_json("manifest.json"), files.archive)
    stem = posixpath.basename(config_name).removesuffix(".json")
    config_digest = f"sha256:{stem}" if re.fullmatch(r"[0-9a-f]{64}", stem) else None
    config = files.read_json(config_name, config_digest)
    result = []
    for name, diff_id in zip(layers, diff_ids(config, len(layers), files.archive)):
        match = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", name)
        result.append((name, f"sha256:{match.group(1)}" if match else None, diff_id))
    return result


def _wanted(descriptor: dict[str, object], arch: str, archive: Path) -> bool:
    """Is DESCRIPTOR (image-spec descriptor.md) a linux/ARCH image, not an attestation?"""
    annotations = optional_object(descriptor, "annotations", "a descriptor's annotations", archive)
    if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return False
    platform_ = optional_object(descriptor, "platform", "a descriptor's platform", archive)
    return platform_.get("architecture") in (None, arch) and platform_.get("os") in (None, "linux")


def _pick_manifest(files: _ArchiveFiles, descriptors: list[object], arch: str) -> dict[str, object]:
    """The image manifest for linux/ARCH, walking nested indexes; attestations are skipped.

    Each nested index is read once (a layout is a DAG: a thousand descriptors naming the same
    index cost one read), at most MAX_INDEXES of them and MAX_INDEX_DEPTH deep.
    """
    seen: set[str] = set()
    candidates: dict[str, dict[str, object]] = {}
    level = deque((descriptor, 0) for descriptor in descriptors)
    while level:
        descriptor, depth = level.popleft()
        if not isinstance(descriptor, dict) or not _wanted(descriptor, arch, files.archive):
            continue
        digest = checked_digest(descriptor.get("digest"), files.archive)
        if descriptor.get("mediaType") not in _OCI_INDEX_TYPES:
            candidates.setdefault(digest, descriptor)
            continue
        if digest in seen:
            continue
        seen.add(digest)
        if depth >= MAX_INDEX_DEPTH or len(seen) > MAX_INDEXES:
            raise UnsafeArchive(
                f"{files.archive}: image indexes nest too deeply or are too "
                f"many (more than {MAX_INDEXES}, {MAX_INDEX_DEPTH} deep)"
            )
        index = json_object(
            files.read_json(blob_name(digest, files.archive), digest),
            f"the image index {digest}",
            files.archive,
        )
        nested = json_list(index.get("manifests", []), f"the manifests of {digest}", files.archive)
        level.extend((child, depth + 1) for child in nested)
    if len(candidates) != 1:
        what = "no" if not candidates else f"{len(candidates)}"
        raise BadInput(
            f"{files.archive}: the OCI layout has {what} linux/{arch} image "
            "manifests; it must hold exactly one"
        )
    return next(iter(candidates.values()))


def _oci_layers(files: _ArchiveFiles, arch: str) -> list[tuple[str, str | None, str]]:
    index = json_object(files.read_json("index.json"), "index.json", files.archive)
    descriptor = _pick_manifest(
        files, json_list(index.get("manifests"), "index.json's manifests", files.archive), arch
    )
    digest = checked_digest(descriptor.get("digest"), files.archive)
    manifest = json_object(
        files.read_json(blob_name(digest, files.archive), digest),
        "the image manifest",
        files.archive,
    )
    config = json_object(manifest.get("config"), "the image manifest's config", files.archive)
    layers = json_list(manifest.get("layers"), "the image manifest's layers", files.archive)
    config_digest = checked_digest(config.get("digest"), files.archive)
    config_data = files.read_json(blob_name(config_digest, files.archive), config_digest)
    result: list[tuple[str, str | None, str]] = []
    for layer, diff_id in zip(layers, diff_ids(config_data, len(layers), files.archive)):
        layer = json_object(layer, "a layer descriptor", files.archive)
        layer_digest = checked_digest(layer.get("digest"), files.archive)
        if "zstd" in str(layer.get("mediaType", "")):
            raise BadInput(
                f"{files.archive}: layer {layer_digest} is zstd-compressed, which "
                "this tool does not read; save the image uncompressed or "
                "gzip-compressed"
            )
        result.append((blob_name(layer_digest, files.archive), layer_digest, diff_id))
    return result


def unpack_image(
    archive: Path, dest: Path, *, arch: str | None = None, source: str | None = None
) -> None:
    """Unpack a `docker save` tarball or OCI layout (folder or tar) into DEST, verified.

    SOURCE marks the finished DEST (rootdest.move_into_place) for a later run to recognise.
    """

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
            raise BadInput(
                f"{archive} is neither a `docker save` archive (no manifest.json) "
                "nor an OCI image layout (no index.json)"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        with LayerApplier(staging) as applier:
            for number, (name, blob_digest, diff_id) in enumerate(layers, 1):
                label = f"{archive.name}: layer {number}/{len(layers)} ({short(name, 80)})"
                with files.open(name) as stream:
                    apply_verified_layer(
                        applier, stream, label, blob_digest=blob_digest, diff_id=diff_id
                    )
        move_into_place(staging, dest, source=source)
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
