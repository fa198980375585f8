"""File digests: the one sha256 helper that downloads, images, manifests and roots share."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (sources and toolchains run to hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
