"""--out holds exactly one passing build: its libraries, its manifest, nothing written before.

The order makes every moment safe to zip: the new files are staged under temporary names and
renamed in (rename(2) is atomic within one file system), the manifest is written last and lists
every file the tool wrote there, then the files the earlier manifest listed that this build did
not write are removed. Files the tool never wrote are left alone and named in a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, UsageError
from .files import staged

MANIFEST_NAME = "build-manifest.json"  # the one name manifest.py writes; kept equal by a test


@dataclass(frozen=True)
class Published:
    """What `publish` did to --out."""

    artifacts: tuple[Path, ...]  # the libraries, at their place in --out
    removed: tuple[str, ...]  # names an earlier build wrote that this one did not
    foreign: tuple[str, ...]  # names the tool never wrote (left alone)


def require_usable(out: Path, what: str = "--out") -> None:
    """Refuse an --out that could not take the build, before cargo runs: a file, a folder under
    a file, a folder nobody may write, or a manifest name that is taken by a folder."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{what} {out} is a file; give a folder (it is made if missing)")
        if not os.access(out, os.W_OK | os.X_OK):
            raise BadInput(
                f"{what} {out}: cannot write in this folder (permission denied); give "
                "a folder you can write"
            )
        manifest = out / MANIFEST_NAME
        if manifest.exists() and not manifest.is_file():
            raise BadInput(
                f"{what} {out}: {manifest}: cannot write it (it is a folder); remove "
                "it or give another --out"
            )
        return
    for ancestor in out.parents:
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            raise UsageError(
                f"{what} {out}: {ancestor} is a file, not a folder; give a folder path"
            )
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise BadInput(
                f"{what} {out}: cannot make it in {ancestor} (permission denied); "
                "give a folder you can write"
            )
        return


def written_before(out: Path) -> list[str]:
    """The file names the manifest already in `out` says the tool wrote there: its `files`, or
    the names of its `artifacts` (manifests of the first version). Names only, never paths."""
    try:
        data = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    names = data.get("files")
    if not isinstance(names, list):
        names = [a.get("name") for a in data.get("artifacts") or () if isinstance(a, dict)]
    return [
        n
        for n in names
        if isinstance(n, str) and n not in ("", ".", "..", MANIFEST_NAME) and "/" not in n
    ]


def publish(
    out: Path,
    built: Sequence[Path],
    manifest_text: Callable[[list[str]], str],
    extra: Mapping[str, str | bytes] | None = None,
) -> Published:
    """Put `built`, the `extra` files (name -> content: an SBOM) and the manifest
    (`manifest_text(names of the files written)`) in `out`, then remove what the earlier build
    wrote and this one did not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"--out {out}: cannot make this folder ({exc.strerror}); give a folder you can write"
        ) from None
    before = written_before(out)
    extra = extra or {}
    names = sorted([*(src.name for src in built), *extra])
    with contextlib.ExitStack() as stack:  # renamed in only once every file is written
        for src in built:
            tmp = stack.enter_context(staged(out / src.name, src.stat().st_mode & 0o777))
            shutil.copyfile(src, tmp)
        for name, content in extra.items():
            tmp = stack.enter_context(staged(out / name))
            if isinstance(content, str):
                tmp.write_text(content, encoding="utf-8")
            else:
                tmp.write_bytes(content)
    with staged(out / MANIFEST_NAME) as tmp:
        tmp.write_text(manifest_text(names), encoding="utf-8")
    removed = []
    for name in before:
        stale = out / name
        if name not in names and (stale.is_file() or stale.is_symlink()):
            stale.unlink(missing_ok=True)
            removed.append(name)
    ours = {*names, MANIFEST_NAME}
    foreign = sorted(
        entry.name
        for entry in out.iterdir()
        if entry.name not in ours and not entry.name.startswith(".")
    )
    libraries = sorted(src.name for src in built)
    return Published(
        artifacts=tuple(out / name for name in libraries),
        removed=tuple(removed),
        foreign=tuple(foreign),
    )
