"""`build-manifest.json`: what went into a release and what came out, beside the artifacts.

No absolute paths and no wall-clock time, so two reproducible builds also give the same
manifest; anyone can rebuild from the recorded inputs and compare sha256 values.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from . import __version__
from .digest import sha256_file
from .files import write_atomically

MANIFEST_NAME = "build-manifest.json"
SCHEMA = 1


@functools.cache
def rustc_version_verbose() -> str:
    try:
        return subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unknown ({exc})"


def artifact_entries(files: list[Path]) -> list[dict]:
    return [{"name": f.name, "size": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(files)]


def write(out: Path, data: dict) -> Path:
    """Write the manifest into `out`."""
    body = {"schema": SCHEMA, "tool": {"name": "glibc-build", "version": __version__}, **data}
    path = out / MANIFEST_NAME
    write_atomically(path, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path
