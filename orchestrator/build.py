"""The main job: build a crate's cdylibs for an old glibc, check them, put them in --out.

recipe/render/fetch (docker only) -> backend -> check -> copy out -> report. Only libraries
that pass the check are copied to --out, so that folder never holds a file that would fail
to load on the target.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import cargo, logger, targets
from .abilist import newest_glibc
from .backends import BuildContext, backend
from .errors import CheckFailed, UsageError
from .glibc import GlibcVersion

DEFAULT_GLIBC = "2.17"


@dataclass(frozen=True)
class BuildRequest:
    crate_dir: Path
    glibc: GlibcVersion
    target: targets.Target
    backend: str
    recipe: str | None
    profile: str
    package: str | None
    features: str | None
    out: Path
    json_output: bool

    @classmethod
    def from_cli(cls, *, crate_dir: Path, glibc: str | None, target: str | None,
                 backend: str | None, recipe: str | None, profile: str | None,
                 package: str | None, features: str | None, out: Path | None,
                 json_output: bool) -> BuildRequest:
        """Validate what the user typed; every bad value is a UsageError naming the option."""
        tgt = targets.lookup(target or targets.DEFAULT_TARGET)
        version = validate_glibc(GlibcVersion.parse(glibc or DEFAULT_GLIBC), tgt)
        chosen_backend = backend or ("docker" if recipe else "zig")
        if recipe and chosen_backend != "docker":
            raise UsageError("--recipe only applies to --backend docker; drop it or add "
                             "--backend docker")
        if chosen_backend == "docker" and not recipe:
            raise UsageError("--backend docker needs --recipe NAME (see recipes/)")
        return cls(crate_dir=crate_dir, glibc=version, target=tgt, backend=chosen_backend,
                   recipe=recipe, profile=profile or "release", package=package,
                   features=features, out=out or crate_dir / "dist", json_output=json_output)


def validate_glibc(version: GlibcVersion, target: targets.Target) -> GlibcVersion:
    """Refuse versions Rust cannot target or zig's glibc database does not know."""
    if version < target.glibc_floor:
        raise UsageError(f"--glibc {version} is older than {target.glibc_floor}, the oldest glibc "
                         f"Rust's std supports on {target.rust}; use {target.glibc_floor} or newer")
    newest = newest_glibc()
    if version > newest:
        raise UsageError(f"--glibc {version} is newer than the newest glibc this tool knows "
                         f"({newest}); use {newest} or older")
    return version


def copy_out(files: list[Path], out: Path) -> list[Path]:
    """Copy each file into `out` through a temporary name, so `out` never holds half a file."""
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for src in files:
        dest = out / src.name
        fd, tmp = tempfile.mkstemp(prefix=f".{src.name}.", dir=out)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        copied.append(dest)
    return copied


def run_build(request: BuildRequest) -> int:
    crate = cargo.locate(request.crate_dir, request.package)
    ctx = BuildContext(crate=crate, target=request.target, glibc=request.glibc,
                       profile=request.profile, features=request.features,
                       recipe=request.recipe)
    built = backend(request.backend)(ctx)

    from .check import check_paths

    logger.step(f"checking {len(built)} librar{'y' if len(built) == 1 else 'ies'} against "
                f"glibc {request.glibc}")
    report = check_paths(built, request.glibc, request.target)
    logger.console().print(report.render_text(), markup=False, highlight=False)
    artifacts = copy_out(built, request.out) if report.ok else []
    for path in artifacts:
        logger.info(f"-> {path}")
    if request.json_output:
        print(json.dumps({
            "ok": report.ok, "glibc": str(request.glibc), "target": request.target.rust,
            "backend": request.backend, "artifacts": [str(p) for p in artifacts],
            "check": report.to_json(),
        }, indent=2))
    if not report.ok:
        raise CheckFailed(f"the built librar{'y' if len(built) == 1 else 'ies'} need more than "
                          f"glibc {request.glibc} (see the report above); nothing was copied to "
                          f"{request.out}; the files are in {built[0].parent}")
    return 0
