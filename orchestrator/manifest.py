"""`build-manifest.json`: what went into a release and what came out, beside the artifacts.

No absolute paths and no wall-clock time, so two reproducible builds also give the same
manifest; anyone can rebuild from the recorded inputs and compare sha256 values.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from . import __version__
from .digest import sha256_file

MANIFEST_NAME = "build-manifest.json"
SCHEMA = 1


def rustc_version_verbose(crate_dir: Path) -> str:
    """`rustc -vV` as cargo would run it for the crate (a rust-toolchain.toml there counts)."""
    try:
        return subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True,
                              cwd=crate_dir).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unknown ({exc})"


def artifact_entries(files: list[Path]) -> list[dict]:
    return [{"name": f.name, "size": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(files)]


def render(data: dict) -> str:
    """The manifest's text: stable key order, so equal builds give equal manifests."""
    body = {"schema": SCHEMA, "tool": {"name": "glibc-build", "version": __version__}, **data}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"
