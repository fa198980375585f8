"""`build.py cache`: what the tool keeps between runs, how big it is, when a build last used it;
`cache prune` removes what no recent build used.

Kept: the cache folder's entries (roots, loaders, zig wrappers, the docker backend's cargo
home...), the Docker images it built, and the target folder of each (target, glibc, backend)
in the crates it built. Builds record what they used in `last-use.json` in the cache; an entry
never recorded counts as used when it was last modified.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import locked, write_atomically
from .paths import cache_root

LAST_USE = "last-use.json"
DAY = 86400.0
# Cache subfolders -> what their entries are (each entry is one subfolder or file of them).
KINDS = {
    "debootstrap": "root made by debootstrap",
    "images": "root unpacked from an image archive",
    "loader": "test loader for a root",
    "zig-wrappers": "zig wrapper scripts",
    "docker-cargo-home": "crates fetched for the docker backend",
    "docker-zig-cache": "zig's cache in docker builds",
    "abilists": "zig's glibc symbol database, parsed",
    "platforms": "the platform presets table, parsed",
    "keyrings": "pinned GPG keyring",
    "build-tools": "tools built for the tests",
}
# Never pruned: the record itself, and lock files other processes may hold.
KEEP = frozenset({LAST_USE, "locks", f".{LAST_USE}.lock"})


@dataclass(frozen=True)
class Entry:
    """One thing kept: where, what it is, its size, and when a build last used it."""

    path: Path
    kind: str
    size: int
    last_use: float


def size_of(path: Path) -> int:
    """Bytes under `path` (symlinks not followed; a file that vanishes counts as 0)."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except OSError:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _record_path(root: Path) -> Path:
    return root / LAST_USE


def read_uses(root: Path | None = None) -> dict[str, float]:
    """path -> last use (seconds since the epoch), as builds recorded them."""
    try:
        data = json.loads(_record_path(root or cache_root()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))}


def record_use(paths: Iterable[Path], now: float | None = None, root: Path | None = None) -> None:
    """Note that a build used `paths` (cache entries, target folders) now."""
    base = root or cache_root()
    try:
        base.mkdir(parents=True, exist_ok=True)
        with locked(base / f".{LAST_USE}.lock"):
            uses = read_uses(base)
            stamp = time.time() if now is None else now
            uses.update({str(Path(p).absolute()): stamp for p in paths})
            write_atomically(_record_path(base), json.dumps(uses, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only cache still builds; only pruning loses precision


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def entries(root: Path | None = None, uses: Mapping[str, float] | None = None) -> list[Entry]:
    """Everything kept in the cache folder, and the target folders builds recorded."""
    base = root or cache_root()
    uses = read_uses(base) if uses is None else uses
    found: list[Entry] = []
    if base.is_dir():
        for folder in sorted(base.iterdir()):
            if folder.name in KEEP or folder.name.startswith("."):
                continue
            kind = KINDS.get(folder.name, folder.name)
            children = (
                sorted(p for p in folder.iterdir() if not p.name.startswith("."))
                if folder.is_dir() and not folder.is_symlink()
                else [folder]
            )
            for child in children:
                last = uses.get(str(child.absolute()), _mtime(child))
                found.append(Entry(child, kind, size_of(child), last))
    for path_text, last in sorted(uses.items()):
        path = Path(path_text)
        if path.parent.name == "glibc-build" and path.is_dir() and not path.is_relative_to(base):
            found.append(
                Entry(path, "cargo target folder (target, glibc, backend)", size_of(path), last)
            )
    return found


def docker_images() -> list[dict[str, Any]]:
    """The images this tool built (labelled), when a Docker engine answers; else none."""
    try:
        from .engine import LABEL, client

        images = client().images.list(filters={"label": LABEL})
    except Exception:  # noqa: BLE001 - no engine, no docker package: nothing to list
        return []
    return [
        {"tags": list(image.tags), "size": int(image.attrs.get("Size", 0)), "id": image.short_id}
        for image in images
    ]


def stale(found: list[Entry], older_than_days: float, now: float) -> list[Entry]:
    """The entries no build used within `older_than_days`."""
    return [e for e in found if now - e.last_use > older_than_days * DAY]


def remove(entry: Entry) -> None:
    if entry.path.is_dir() and not entry.path.is_symlink():
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        entry.path.unlink(missing_ok=True)


def listing(found: list[Entry], images: list[dict[str, Any]], now: float) -> str:
    """The table `build.py cache` prints."""
    lines = [f"cache: {cache_root()}"]
    for e in found:
        age = (now - e.last_use) / DAY
        lines.append(f"  {human(e.size):>10}  used {age:5.1f} days ago  {e.kind}: {e.path}")
    for image in images:
        name = ", ".join(image["tags"]) or image["id"]
        lines.append(f"  {human(image['size']):>10}  docker image {name}")
    total = sum(e.size for e in found) + sum(i["size"] for i in images)
    lines.append(
        f"total {human(total)}; `build.py cache prune` removes what no build used in "
        "30 days (docker images: `docker image prune -a --filter "
        "label=org.glibc-build`)"
    )
    return "\n".join(lines)


def run_cache(action: str, older_than: float, dry_run: bool, json_output: bool) -> int:
    now = time.time()
    found = entries()
    if action == "list":
        images = docker_images()
        if json_output:
            from . import jsonout

            jsonout.emit(
                {
                    "cache": str(cache_root()),
                    "entries": [
                        {
                            "path": str(e.path),
                            "kind": e.kind,
                            "size": e.size,
                            "last_use": e.last_use,
                        }
                        for e in found
                    ],
                    "docker_images": images,
                }
            )
        else:
            print(listing(found, images, now))
        return 0
    old = stale(found, older_than, now)
    for entry in old:
        if not dry_run:
            remove(entry)
        print(f"{'would remove' if dry_run else 'removed'} {human(entry.size):>10}  {entry.path}")
    print(
        f"{'would free' if dry_run else 'freed'} {human(sum(e.size for e in old))} "
        f"({len(old)} of {len(found)} entries unused for {older_than:g} days)"
    )
    return 0
