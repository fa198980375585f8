"""Docker images for recipes: the base (pulled, or made locally for air-gapped machines) and
the recipe's own image, tagged by a hash of everything that went into it so that an
unchanged recipe is never built twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from . import engine, logger, progress
from .digest import sha256_file
from .errors import ToolchainError
from .glibc import GlibcVersion
from .paths import DEFAULT_RSRC

if TYPE_CHECKING:
    import docker

    from .recipe import Recipe

REPOSITORY = "glibc-build"
LOG_TAIL = 30


def _exists(client: docker.DockerClient, ref: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        image_id: str | None = client.images.get(ref).id
        return image_id
    except ImageNotFound:
        return None


def _tar_root(root: Path, dest: Path) -> None:
    """A root folder as a tar for `docker import`: owners, modes and links kept as they are."""
    with tarfile.open(dest, "w") as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry)  # tarfile itself skips sockets


def import_root(root: Path, ref: str) -> str:
    """Import a root folder into the engine as image `ref` (what `docker import` does)."""
    client = engine.client()
    logger.step(f"importing {root} into the Docker engine as {ref}")
    repository, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    with tempfile.TemporaryDirectory(prefix="glibc-build-import-") as tmp:
        archive = Path(tmp) / "root.tar"
        _tar_root(root, archive)
        with progress.stage(None, "imported"):
            client.api.import_image_from_file(
                str(archive),
                repository=repository,
                tag=tag,
                changes=[f"LABEL {engine.LABEL}.base=1"],
            )
    image_id = _exists(client, ref)
    if image_id is None:
        raise ToolchainError(f"importing {root} as {ref} left no image; see `docker images`")
    return image_id


def ensure_base(recipe: Recipe, *, base_archive: Path | None = None) -> str:
    """The recipe's FROM image id: already in the engine, pulled, or made locally.

    Made locally from `base_archive` (a `docker save` or OCI archive) when given, else from a
    debootstrap root when the recipe says how (`[base] debootstrap = {...}`).
    """
    client = engine.client()
    ref = recipe.base_image
    if base_archive is None:
        found = _exists(client, ref)
        if found:
            return found
    from docker.errors import APIError

    if base_archive is None:
        try:
            with progress.stage(f"pulling {ref}", "pulled"):
                pulled = client.images.pull(ref).id
            if pulled is None:
                raise ToolchainError(f"pulling {ref} gave no image id; see `docker images`")
            return pulled
        except APIError as exc:
            pull_error = str(getattr(exc, "explanation", exc) or exc)
            if not recipe.debootstrap:
                raise ToolchainError(
                    f"base image {ref} of recipe {recipe.name} is not in the Docker engine and "
                    f"cannot be pulled ({pull_error}); load it (`docker load -i FILE`) or make it "
                    f"from an image archive: build.py image --recipe {recipe.name} "
                    "--base-archive FILE"
                ) from None
            logger.info(f"cannot pull {ref}; making it locally with debootstrap")
    from . import rootfs

    if base_archive is not None:
        with tempfile.TemporaryDirectory(prefix="glibc-build-base-") as tmp:
            rootfs.unpack_image(base_archive, Path(tmp) / "root")
            return import_root(Path(tmp) / "root", ref)
    assert recipe.debootstrap is not None  # the pull failed without it: raised above
    spec = dict(recipe.debootstrap)
    root = rootfs.debootstrap_root(
        spec["suite"],
        arch=spec.get("arch", "amd64"),
        variant=spec.get("variant", "minbase"),
        include=tuple(spec.get("include", ())),
        mirror=spec.get("mirror"),
    )
    return import_root(root, ref)


def image_ref(recipe: Recipe, dockerfile: str, sources: list[Path], base_id: str) -> str:
    """`glibc-build/<recipe>:<hash>`: the hash covers the Dockerfile, every source and the base."""
    digest = hashlib.sha256(dockerfile.encode())
    digest.update(base_id.encode())
    # fetch_sources has just checked each file against its pinned sha256: no second read of
    # a toolchain tarball on every build. Files verified by signature alone are hashed here.
    pinned = {s.filename: s.sha256 for s in recipe.sources if s.sha256}
    for source in sorted(sources):
        digest.update(source.name.encode())
        digest.update((pinned.get(source.name) or sha256_file(source)).encode())
    return f"{REPOSITORY}/{recipe.name}:{digest.hexdigest()[:16]}"


def _context(dockerfile: str, sources: list[Path], dest: Path) -> None:
    """A deterministic build context: fixed owners and times, sources under rsrc/."""

    def add(tar: tarfile.TarFile, name: str, data: BinaryIO, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        tar.addfile(info, data)

    with tarfile.open(dest, "w") as tar:
        body = dockerfile.encode()
        add(tar, "Dockerfile", io.BytesIO(body), len(body))
        for source in sorted(sources):
            with open(source, "rb") as handle:
                add(tar, f"rsrc/{source.name}", handle, source.stat().st_size)


def build_image(
    recipe: Recipe,
    glibc: GlibcVersion,
    *,
    rsrc: Path | None = None,
    offline: bool = False,
    mirrors: tuple[str, ...] = (),
    base_archive: Path | None = None,
    deadline: float | None = None,
) -> str:
    """Make sure the recipe's image exists; return its reference. Builds only what changed."""
    from .fetch import fetch_sources
    from .render import render_dockerfile

    dockerfile = render_dockerfile(recipe, glibc)  # refuses a base newer than `glibc`
    sources = (
        fetch_sources(
            recipe, rsrc or DEFAULT_RSRC, offline=offline, mirrors=mirrors, deadline=deadline
        )
        if recipe.sources
        else []
    )
    base_id = ensure_base(recipe, base_archive=base_archive)
    ref = image_ref(recipe, dockerfile, sources, base_id)
    client = engine.client()
    if _exists(client, ref):
        return ref
    logger.step(f"building image {ref} from recipe {recipe.name}")
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=LOG_TAIL)
    with tempfile.TemporaryDirectory(prefix="glibc-build-context-") as tmp:
        archive = Path(tmp) / "context.tar"
        _context(dockerfile, sources, archive)
        with open(archive, "rb") as context:
            events = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=ref,
                rm=True,
                forcerm=True,
                decode=True,
                labels={engine.LABEL: "1", f"{engine.LABEL}.recipe": recipe.name},
            )
            for event in events:
                for line in event.get("stream", "").splitlines():
                    tail.append(line)
                    if line.strip():
                        logger.info(line)
                if "error" in event:
                    tail.append(event["error"])
                    last = (event["error"].strip().splitlines() or ["unknown error"])[-1]
                    raise ToolchainError(
                        f"the image of recipe {recipe.name} failed to build: "
                        f"{last}; its last log lines:",
                        details="\n".join(tail),
                    )
    if not _exists(client, ref):
        raise ToolchainError(
            f"the image build for recipe {recipe.name} ended without an image",
            details="\n".join(tail),
        )
    logger.info(f"image built in {progress.elapsed_text(time.monotonic() - started)}")
    return ref
