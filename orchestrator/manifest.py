"""`build-manifest.json`: what went into a release and what came out, beside the artifacts.

No absolute paths and no wall-clock time, so two reproducible builds also give the same
manifest; anyone can rebuild from the recorded inputs and compare sha256 values. What it says
about the build comes from the backend's `BuildResult` as it is, never worked out again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .backends import BuildResult, Toolchain
from .cargo import Crate
from .digest import sha256_file

MANIFEST_NAME = "build-manifest.json"
SCHEMA = 1


def artifact_entries(files: Iterable[Path]) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "size": f.stat().st_size, "sha256": sha256_file(f)} for f in sorted(files)
    ]


def toolchain_entry(toolchain: Toolchain) -> dict[str, Any]:
    """The toolchain's identity: rustc, and zig or the recipe with the image it made."""
    entry: dict[str, Any] = {"rustc": toolchain.rustc}
    if toolchain.zig is not None:
        entry["zig"] = toolchain.zig
    if toolchain.recipe is not None:
        entry["recipe"] = {
            "name": toolchain.recipe,
            "sha256": toolchain.recipe_sha256,
            "image": toolchain.image,
        }
    return entry


def data(
    *,
    crate: Crate,
    target: str,
    glibc: str,
    backend: str,
    profile: str,
    result: BuildResult,
    artifacts: Sequence[dict[str, Any]],
    check: dict[str, Any],
    loads: list[dict[str, Any]] | None,
    verify: dict[str, Any] | None = None,
    platform: str | None = None,
    loads_on: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The manifest's content. `artifacts` are `artifact_entries(result.artifacts)`; `check`
    is the report's JSON (file paths are cut to their names); `verify` is what --verify-on
    proved (prove.Proof.to_json: the root's glibc, the kernel floor, what was called, what
    was proven by loading and what only by reading the file); `platform` the target platform
    (a preset name or glibc-X.Y); `loads_on` each library's loads-on matrix by file name
    (loads_on.LoadsOn.to_json), recorded on its artifact entry."""
    files = [{**entry, "path": Path(entry["path"]).name} for entry in check.get("files", [])]
    extra: dict[str, Any] = (
        {"system_packages": dict(result.system_packages)}
        if result.system_packages is not None
        else {}
    )
    if platform is not None:
        extra["platform"] = platform
    matrices = loads_on or {}
    artifacts = [
        {**entry, "loads_on": matrices[entry["name"]]} if entry["name"] in matrices else entry
        for entry in artifacts
    ]
    return {
        **extra,
        "crate": {
            "name": crate.packages[0],
            "packages": list(crate.packages),
            "version": crate.version,
        },
        "target": target,
        "glibc": glibc,
        "backend": backend,
        "profile": profile,
        "toolchain": toolchain_entry(result.toolchain),
        "rustflags": list(result.rustflags),
        "source_date_epoch": result.env.get("SOURCE_DATE_EPOCH"),
        "cargo_lock_sha256": sha256_file(crate.lockfile) if crate.lockfile else None,
        "artifacts": list(artifacts),
        "check": {"ok": check["ok"], "files": files},
        "verify_load": loads,
        "verify": verify,
    }


def render(data: dict[str, Any]) -> str:
    """The manifest's text: stable key order, so equal builds give equal manifests."""
    body = {"schema": SCHEMA, "tool": {"name": "glibc-build", "version": __version__}, **data}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"
