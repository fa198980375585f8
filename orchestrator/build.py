"""The main job: build a crate's cdylibs for an old glibc, check them, put them in --out.

backend -> check -> (prove on a real root) -> (rebuild elsewhere and compare) -> copy out +
manifest -> report. Only libraries that pass every requested stage are copied to --out, so
that folder never holds a file that would fail to load on the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cargo, logger, manifest, reproducible, targets
from .backends import BuildContext, BuildResult, backend
from .errors import BadInput, CheckFailed, LoadRefused, NotReproducible, UsageError
from .files import staged
from .glibc import GlibcVersion, require_for_build
from .syscalls import KernelVersion

if TYPE_CHECKING:
    from .recipe import Recipe

DEFAULT_GLIBC = "2.17"
# Keys a crate may set in [package.metadata.glibc-build]; command-line flags win over them.
SETTINGS = ("glibc", "target", "backend", "recipe", "profile", "features", "verify-on",
            "verify-reproducible", "kernel", "verify-call", "strict", "host-libraries",
            "system-packages", "system-suite", "image-packages")


@dataclass(frozen=True)
class BuildOptions:
    """What the command line said; None means "not given" (a crate default may apply)."""

    crate_dir: Path
    glibc: str | None = None
    target: str | None = None
    backend: str | None = None
    recipe: str | None = None
    profile: str | None = None
    package: str | None = None
    features: str | None = None
    out: Path | None = None
    verify_on: Path | None = None
    verify_reproducible: bool | None = None
    system_packages: tuple[str, ...] | None = None
    system_suite: str | None = None
    json_output: bool = False
    kernel: str | None = None        # a kernel floor X.Y, simulated by --verify-on
    verify_call: str | None = None   # `int SYMBOL(void)` called after --verify-on loads
    strict: bool | None = None
    host_libraries: str | None = None


@dataclass(frozen=True)
class BuildRequest:
    """Validated options, after crate defaults were applied."""

    crate: cargo.Crate
    glibc: GlibcVersion
    target: targets.Target
    backend: str
    recipe: Recipe | None         # docker backend: loaded (a bad recipe fails before building)
    profile: str
    features: str | None
    out: Path
    verify_on: Path | None        # as the user named it (a root folder or an image archive)
    verify_root: Path | None      # the root folder it resolved to (archives are unpacked once)
    verify_reproducible: bool
    json_output: bool
    kernel: KernelVersion | None = None   # simulated under --verify-on (seccomp)
    verify_call: str | None = None
    strict: bool = False                      # check: see check_paths
    host_libraries: frozenset[str] | None = None
    system_packages: tuple[str, ...] = ()   # zig backend: a target sysroot (sysroot.py)
    system_suite: str | None = None


def _check_cli_values(options: BuildOptions) -> None:
    """Fail fast on bad flag values, before cargo is even asked about the crate."""
    target = targets.lookup(options.target or targets.DEFAULT_TARGET)
    if options.glibc is not None:
        require_for_build(GlibcVersion.parse(options.glibc), target)
    if options.kernel is not None:
        KernelVersion.parse(options.kernel)


def _setting(crate: cargo.Crate, key: str, kinds: tuple[type, ...]) -> tuple[object, Path]:
    """A crate setting of the right type (TOML gives floats for `2.30`), and where it was set."""
    value, origin = crate.settings.get(key, (None, crate.manifest.parent))
    if value is not None and (not isinstance(value, kinds) or value == ""):
        wanted = " or ".join({str: "a string", bool: "true or false", list: "a list of strings"}
                             [kind] for kind in kinds)
        raise UsageError(f"{key} = {value!r} in [package.metadata.{cargo.SETTINGS_KEY}] of "
                         f"{origin / 'Cargo.toml'} must be {wanted}"
                         + ('; quote versions: glibc = "2.30"' if key == "glibc" else ""))
    return value, origin


def resolve(options: BuildOptions, crate: cargo.Crate) -> BuildRequest:
    """Command-line flags, else the crate's [package.metadata.glibc-build], else defaults.

    Paths in settings are relative to the Cargo.toml that set them, as cargo's own are.
    """
    unknown = sorted(set(crate.settings) - set(SETTINGS))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in [package.metadata.{cargo.SETTINGS_KEY}] "
                         f"of {crate.manifest}; known keys: {', '.join(SETTINGS)}")

    def pick(flag: object, key: str, kinds: tuple[type, ...] = (str,)) -> tuple[object, str]:
        if flag is not None:
            return flag, f"--{key}"
        value = _setting(crate, key, kinds)[0]
        return value, f"{key} in [package.metadata.{cargo.SETTINGS_KEY}]"

    target_name, _ = pick(options.target, "target")
    target = targets.lookup(str(target_name or targets.DEFAULT_TARGET))
    glibc_text, glibc_source = pick(options.glibc, "glibc")
    glibc = require_for_build(
        GlibcVersion.parse(str(glibc_text or DEFAULT_GLIBC), what=glibc_source), target,
        glibc_source)
    chosen, backend_source = pick(options.backend, "backend")
    recipe: object = options.recipe
    if recipe is None and options.backend != "zig":  # the crate's recipe goes with its docker
        recipe, origin = _setting(crate, "recipe", (str,))
        if recipe and str(recipe).endswith(".toml"):
            recipe = str(origin / str(recipe))
    chosen = chosen or ("docker" if recipe else "zig")
    if chosen not in ("zig", "docker"):
        raise UsageError(f"{backend_source} {chosen!r} is not a backend; use zig or docker")
    if recipe and chosen != "docker":
        raise UsageError("--recipe only applies to --backend docker; drop it or add "
                         "--backend docker")
    if chosen == "docker" and not recipe:
        raise UsageError("--backend docker needs --recipe NAME (see recipes/)")
    profile, profile_source = pick(options.profile, "profile")
    if profile not in (None, "release", "debug"):
        raise UsageError(f"{profile_source} {profile!r} is not a profile; use release or debug")
    features, _ = pick(options.features, "features", (str, list))
    if isinstance(features, list):
        features = ",".join(str(f) for f in features)
    verify_on: Path | None = options.verify_on
    if verify_on is None:
        value, origin = _setting(crate, "verify-on", (str,))
        verify_on = origin / str(value) if value else None
    repro, _ = pick(options.verify_reproducible, "verify-reproducible", (bool,))
    packages_value, packages_source = pick(options.system_packages, "system-packages", (list,))
    system_packages = list(packages_value) if isinstance(packages_value, (list, tuple)) else []
    if not all(isinstance(p, str) and p for p in system_packages):
        raise UsageError(f"{packages_source} must be a list of Debian package names")
    system_suite, _ = pick(options.system_suite, "system-suite")
    if system_packages and chosen != "zig":
        raise UsageError(f"{packages_source} applies to the zig backend; with docker, put the "
                         "packages in the image: image-packages = [...] in "
                         f"[package.metadata.{cargo.SETTINGS_KEY}]")
    kernel_text, kernel_source = pick(options.kernel, "kernel")
    kernel = KernelVersion.parse(str(kernel_text), what=kernel_source) if kernel_text else None
    verify_call, _ = pick(options.verify_call, "verify-call")
    strict, _ = pick(options.strict, "strict", (bool,))
    host_text, _ = pick(options.host_libraries, "host-libraries", (str, list))
    if isinstance(host_text, list):
        host_text = ",".join(str(name) for name in host_text)
    from .check import parse_host_libraries

    host_libraries = parse_host_libraries(str(host_text)) if host_text else None
    out = options.out or options.crate_dir / "dist"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it is made if missing)")
    verify_root = None
    if verify_on is not None:
        from .rootfs import resolve_root

        verify_root = resolve_root(verify_on)  # a bad root fails now, not after the build
        _check_verify(verify_root, target, kernel, verify_call)
    elif verify_call:
        raise UsageError("--verify-call needs --verify-on ROOT: the call runs in that root")
    loaded = None
    if recipe:
        from .recipe import load_recipe

        loaded = load_recipe(str(recipe))
        image_packages, _ = _setting(crate, "image-packages", (list,))
        if image_packages:
            if not all(isinstance(p, str) and p and not p.startswith("-")
                       for p in image_packages):  # type: ignore[attr-defined]
                raise UsageError(f"image-packages in [package.metadata.{cargo.SETTINGS_KEY}] "
                                 "must be a list of package names")
            loaded = replace(loaded, image_packages=tuple(image_packages))  # type: ignore[arg-type]
    return BuildRequest(
        crate=crate, glibc=glibc, target=target, backend=str(chosen),
        recipe=loaded, profile=str(profile or "release"),
        features=str(features) if features else None, out=out,
        verify_on=verify_on, verify_root=verify_root, verify_reproducible=bool(repro),
        json_output=options.json_output, kernel=kernel,
        verify_call=str(verify_call) if verify_call else None, strict=bool(strict),
        host_libraries=host_libraries,
        system_packages=tuple(str(p) for p in system_packages),
        system_suite=str(system_suite) if system_suite else None)


def _check_verify(root: Path, target: targets.Target, kernel: KernelVersion | None,
                  call: object) -> None:
    """Refuse what --verify-on could not do (a bad symbol, a floor below the root's glibc)
    before the build, not after it."""
    import re

    from .prove import check_kernel_floor, inspect_root, kernel_filter

    if call and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(call)):
        raise UsageError(f"--verify-call {call!r} is not a symbol name")
    if kernel is not None:
        kernel_filter(kernel, target)
        check_kernel_floor(inspect_root(root, target), kernel)


def copy_out(built: Sequence[Path], out: Path, texts: dict[str, str]) -> list[Path]:
    """Put the libraries and `texts` (the manifest) in `out`: each is staged under a temporary
    name first and renamed only once all are written, so `out` never holds half a file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot make this folder ({exc.strerror}); give a "
                       "folder you can write") from None
    with contextlib.ExitStack() as stack:
        for src in built:
            tmp = stack.enter_context(staged(out / src.name, src.stat().st_mode & 0o777))
            shutil.copyfile(src, tmp)
        for name, text in texts.items():
            stack.enter_context(staged(out / name)).write_text(text, encoding="utf-8")
    return [out / src.name for src in built]


def context(request: BuildRequest, crate: cargo.Crate) -> BuildContext:
    """The backend's inputs, with the path remapping that makes the output reproducible."""
    remaps = reproducible.path_remaps(crate, os.environ)
    return BuildContext(crate=crate, target=request.target, glibc=request.glibc,
                        profile=request.profile, features=request.features,
                        recipe=request.recipe, path_remaps=remaps,
                        env=reproducible.environment(crate, request.target, os.environ, remaps),
                        system_packages=request.system_packages,
                        system_suite=request.system_suite)


def rebuild_elsewhere(request: BuildRequest, ctx: BuildContext, scratch: Path) -> BuildResult:
    """Build the same sources again from a copy at another depth, into their own target dir."""
    crate = request.crate
    skip = {crate.target_dir, crate.workspace_root / "target", crate.root.resolve() / "dist",
            request.out.resolve()}

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n == ".git" or Path(folder, n) in skip]

    copy_root = scratch / "a" / "second" / "checkout" / crate.source_root.name
    shutil.copytree(crate.source_root, copy_root, symlinks=True, ignore=ignore)
    member = copy_root / crate.manifest.parent.relative_to(crate.source_root)
    target_dir = copy_root / crate.workspace_root.relative_to(crate.source_root) / "target"
    second = replace(cargo.locate(member), packages=crate.packages, target_dir=target_dir)
    ctx2 = context(request, second)
    env = dict(ctx2.env, CARGO_TARGET_DIR=str(target_dir))  # never the first build's
    if "SOURCE_DATE_EPOCH" in ctx.env:  # the copy is not in git: keep the first build's time
        env["SOURCE_DATE_EPOCH"] = ctx.env["SOURCE_DATE_EPOCH"]
    return backend(request.backend)(replace(ctx2, env=env))


def run_build(options: BuildOptions) -> int:
    _check_cli_values(options)
    crate = cargo.locate(options.crate_dir, options.package)
    request = resolve(options, crate)
    ctx = context(request, crate)
    result = backend(request.backend)(ctx)
    built = list(result.artifacts)

    from .check import check_paths

    plural = "y" if len(built) == 1 else "ies"
    logger.step(f"checking {len(built)} librar{plural} against glibc {request.glibc}")
    report = check_paths(built, request.glibc, request.target, strict=request.strict,
                         host_libraries=request.host_libraries)
    logger.console().print(report.render_text(), markup=False, highlight=False)
    summary: dict[str, Any] = {
        "ok": report.ok, "glibc": str(request.glibc), "target": request.target.rust,
        "backend": request.backend, "artifacts": [], "manifest": None, "check": report.to_json()}
    failure: Exception | None = None
    if not report.ok:
        failure = CheckFailed(f"the built librar{plural} {'needs' if len(built) == 1 else 'need'} "
                              f"more than glibc {request.glibc} "
                              f"(see the report above); nothing was copied to {request.out}; "
                              f"the files are in {built[0].parent}")
    loads, verify = None, None
    if failure is None and request.verify_on is not None:
        loads, failure, verify = prove(request, built)
        summary["verify_load"], summary["verify"] = loads, verify
    if failure is None and request.verify_reproducible:
        failure = verify_reproducible(request, ctx, built)
        summary["reproducible"] = failure is None
    if failure is None:
        text = manifest.render(manifest.data(
            crate=request.crate, target=request.target.rust, glibc=str(request.glibc),
            backend=request.backend, profile=request.profile, result=result,
            artifacts=manifest.artifact_entries(built), check=report.to_json(), loads=loads,
            verify=verify))
        artifacts = copy_out(built, request.out, {manifest.MANIFEST_NAME: text})
        summary["artifacts"] = [str(p) for p in artifacts]
        summary["manifest"] = str(request.out / manifest.MANIFEST_NAME)
        for path in artifacts:
            logger.info(f"-> {path}")
    summary["ok"] = failure is None
    if request.json_output:
        print(json.dumps(summary, indent=2))
    if failure is not None:
        raise failure
    return 0


def prove(request: BuildRequest, built: list[Path]
          ) -> tuple[list[dict[str, Any]], Exception | None, dict[str, Any]]:
    """Load every library with the real dynamic loader of the --verify-on root (with only the
    system calls of --kernel, calling --verify-call), and say what that proved."""
    from .prove import Proof, inspect_root, verify_load

    assert request.verify_root is not None
    root = request.verify_root
    root_glibc = inspect_root(root, request.target).glibc
    simulated = f", on a simulated Linux {request.kernel}" if request.kernel else ""
    logger.step(f"loading {len(built)} librar{'y' if len(built) == 1 else 'ies'} with glibc "
                f"{root_glibc or '(unknown version)'} of {request.verify_on}{simulated}")
    results = verify_load(root, built, call=request.verify_call, target=request.target,
                          kernel=request.kernel)
    loads = []
    for result in results:
        logger.info(f"{result.lib.name}: {'loaded' if result.ok else 'REFUSED'} "
                    f"{result.message}".rstrip())
        for line in result.output.rstrip().splitlines() if result.output.strip() else []:
            logger.info(f"  | {line}")
        entry: dict[str, Any] = {"name": result.lib.name, "ok": result.ok,
                                 "message": result.message}
        if request.verify_call:
            entry["returned"] = result.returned
        if request.kernel is not None:
            entry["denied"] = result.denied
        loads.append(entry)
    proof = Proof(root_glibc=root_glibc, kernel=request.kernel, called=request.verify_call,
                  target_glibc=str(request.glibc))
    refused = [r for r in results if not r.ok]
    if refused:
        return loads, LoadRefused(f"{refused[0].lib.name} does not load on "
                                  f"{request.verify_on}: {refused[0].message}"), proof.to_json()
    for line in proof.lines():
        logger.info(line)
    return loads, None, proof.to_json()


def verify_reproducible(request: BuildRequest, ctx: BuildContext,
                        built: list[Path]) -> Exception | None:
    logger.step("building a second time from another folder to compare the bytes")
    scratch = Path(tempfile.mkdtemp(prefix="glibc-build-repro-"))
    try:
        differences = reproducible.compare(built,
                                           rebuild_elsewhere(request, ctx, scratch).artifacts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not differences:
        logger.info("reproducible: both builds are byte-identical")
        return None
    lines = [f"{d.name}: sections that differ: {', '.join(d.sections)}" for d in differences]
    details = "\n".join(lines + [d.diffoscope for d in differences if d.diffoscope])
    return NotReproducible(f"{differences[0].name} differs between two builds from different "
                           "folders; something embeds a path, a time or randomness (see the "
                           "sections below)", details=details)
