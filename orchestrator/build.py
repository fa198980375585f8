"""The main job: build a crate's cdylibs for an old glibc, check them, put them in --out.

backend -> check -> (prove on a real root) -> (rebuild elsewhere and compare) -> copy out +
manifest -> report. Only libraries that pass every requested stage are copied to --out, so
that folder never holds a file that would fail to load on the target.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import cargo, ci, jsonout, logger, manifest, progress, reproducible, targets
from .backends import BuildContext, BuildResult, backend
from .caches import record_use
from .errors import (
    BadInput,
    CheckFailed,
    LoadRefused,
    NotReproducible,
    OrchestratorError,
    ToolchainError,
    UsageError,
)
from .glibc import GlibcVersion, require_for_build
from .glibc_arg import platform_named, target_and_glibc
from .outdir import publish, require_usable
from .syscalls import KernelVersion

if TYPE_CHECKING:
    from .check import Report
    from .platforms import Platform
    from .provenance import FileProvenance
    from .recipe import Recipe

DEFAULT_GLIBC = "2.17"
# Keys a crate may set in [package.metadata.glibc-build]; command-line flags win over them.
SETTINGS = (
    "glibc",
    "target",
    "backend",
    "recipe",
    "profile",
    "features",
    "verify-on",
    "verify-reproducible",
    "kernel",
    "verify-call",
    "strict",
    "host-libraries",
    "system-packages",
    "system-suite",
    "image-packages",
    "split-debug",
)


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
    kernel: str | None = None  # a kernel floor X.Y, simulated by --verify-on
    verify_call: str | None = None  # `int SYMBOL(void)` called after --verify-on loads
    strict: bool | None = None
    host_libraries: str | None = None
    # cargo's own conventions (issue 14)
    manifest_path: Path | None = None
    release: bool = False
    target_dir: Path | None = None
    locked: bool = False
    frozen: bool = False
    offline: bool = False
    all_features: bool = False
    no_default_features: bool = False
    verbose: int = 0
    quiet: bool = False
    cargo_args: tuple[str, ...] = ()  # everything after `--`
    split_debug: bool | None = None  # debug info in LIB.debug beside LIB (splitdebug.py)


@dataclass(frozen=True)
class BuildRequest:
    """Validated options, after crate defaults were applied."""

    crate: cargo.Crate
    glibc: GlibcVersion
    target: targets.Target
    backend: str
    recipe: Recipe | None  # docker backend: loaded (a bad recipe fails before building)
    profile: str
    features: str | None
    out: Path
    verify_on: Path | None  # as the user named it (a root folder or an image archive)
    verify_root: Path | None  # the root folder it resolved to (archives are unpacked once)
    verify_reproducible: bool
    json_output: bool
    kernel: KernelVersion | None = None  # simulated under --verify-on (seccomp)
    verify_call: str | None = None
    strict: bool = False  # check: see check_paths
    host_libraries: frozenset[str] | None = None
    system_packages: tuple[str, ...] = ()  # zig backend: a target sysroot (sysroot.py)
    system_suite: str | None = None
    platform: str = ""  # names the default --out folder: glibc-2.17, centos-7
    preset: Platform | None = None  # a named platform: its C++, kernel and ISA facts checked
    target_dir: Path | None = None  # cargo's target folder for this (target, glibc, backend)
    cargo_args: tuple[str, ...] = ()  # passed to `cargo build` as they are
    split_debug: bool = False  # splitdebug.py


def choose_platform(text: str, target: targets.Target, what: str = "--glibc") -> Platform:
    """A glibc version or a platform preset (`centos-7`) the build can serve."""
    platform = platform_named(text, what)
    named = f"{what} {text}: its glibc" if platform.name != f"glibc-{platform.glibc}" else what
    require_for_build(platform.glibc, target, named)
    return platform


def _check_cli_values(options: BuildOptions) -> None:
    """Fail fast on bad flag values, before cargo is even asked about the crate."""
    triple, glibc, source = target_and_glibc(options.target, options.glibc)
    target = targets.lookup(triple or targets.DEFAULT_TARGET)
    if glibc is not None:
        choose_platform(glibc, target, source)
    if options.release and options.profile not in (None, "release"):
        raise UsageError(
            f"--release and --profile {options.profile} contradict each other; give one of them"
        )
    if options.verbose and options.quiet:
        raise UsageError("-v and -q contradict each other; give one of them")
    if options.kernel is not None:
        KernelVersion.parse(options.kernel)
    cargo_flags(options)
    if options.out is not None:
        require_usable(options.out)
    if (
        options.target_dir is not None
        and options.target_dir.exists()
        and not options.target_dir.is_dir()
    ):
        raise UsageError(
            f"--target-dir {options.target_dir} is a file; give a folder (it is made if missing)"
        )


def _toml(path: Path) -> dict[str, Any]:
    """A TOML file cargo already read (so it parses), or {} when it cannot be read now."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - older Pythons only
        import tomli as tomllib
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


BUILTIN_PROFILES = ("release", "debug", "dev", "test", "bench")


def require_profile(profile: str, crate: cargo.Crate, source: str) -> None:
    """A custom profile must be defined ([profile.NAME] in the workspace's Cargo.toml or a
    cargo config file), else cargo would fail after the setup; cargo's rule:
    https://doc.rust-lang.org/cargo/reference/profiles.html#custom-profiles"""
    if profile in BUILTIN_PROFILES:
        return
    tables = [_toml(crate.workspace_root / "Cargo.toml"), *cargo._configs(crate.root.resolve())]
    if any(isinstance(t.get("profile"), dict) and profile in t["profile"] for t in tables):
        return
    raise UsageError(
        f"{source} {profile}: no [profile.{profile}] in "
        f"{crate.workspace_root / 'Cargo.toml'} or a cargo config; define it "
        '(inherits = "release") or use release or debug'
    )


# Flags the build sets itself: after `--` they would fight ours (-> the option to use instead).
OWN_CARGO_FLAGS = {
    "--target": "--target",
    "--manifest-path": "--manifest-path or CRATE_DIR",
    "--message-format": None,
    "--profile": "--profile",
    "--release": "--release",
    "--target-dir": "--target-dir",
    "--package": "--package",
    "-p": "--package",
    "--artifact-dir": "--out",
    "--out-dir": "--out",
}


def cargo_flags(options: BuildOptions) -> tuple[str, ...]:
    """cargo's own flags the build passes on as they are, then everything after `--`."""
    switches = (
        ("--locked", options.locked),
        ("--frozen", options.frozen),
        ("--offline", options.offline),
        ("--all-features", options.all_features),
        ("--no-default-features", options.no_default_features),
        ("--quiet", options.quiet),
    )
    args = [flag for flag, on in switches if on] + ["--verbose"] * options.verbose
    for arg in options.cargo_args:
        name = arg.split("=", 1)[0]
        if name in OWN_CARGO_FLAGS or (name.startswith("-p") and not name.startswith("--")):
            instead = OWN_CARGO_FLAGS.get(name, "--package")
            raise UsageError(
                f"`-- {arg}`: build.py sets {name} for cargo itself; "
                + (
                    f"use build.py's {instead} instead"
                    if instead
                    else "drop it (the build reads cargo's JSON messages)"
                )
            )
    return (*args, *options.cargo_args)


def crate_folder(options: BuildOptions) -> Path:
    """CRATE_DIR or --manifest-path, as cargo takes them: a folder, or its Cargo.toml."""
    if options.manifest_path is not None:
        path = options.manifest_path
        if path.name != "Cargo.toml" or path.is_dir():
            raise UsageError(
                f"--manifest-path {path} is not a Cargo.toml; give the path of a crate's Cargo.toml"
            )
        if not path.is_file():
            raise BadInput(
                f"--manifest-path {path}: no such file; give the path of a crate's Cargo.toml"
            )
        return path.parent
    path = options.crate_dir
    if path.name == "Cargo.toml" and path.is_file():
        return path.parent
    if path.is_file():
        raise BadInput(
            f"{path}: not a folder or a Cargo.toml; give the folder that holds Cargo.toml"
        )
    return path


def out_folder_name(platform: str, profile: str) -> str:
    """The default --out folder under dist/: the platform (`glibc-2.17`, `centos-7`), and the
    profile when it is not release (`glibc-2.17-debug`), so no build replaces another's."""
    name = platform.replace(",", "+")
    if profile == "release":
        return name
    return f"{name}-{'debug' if profile == 'dev' else profile}"


def build_target_dir(
    base: Path, target: targets.Target, platform_glibc: GlibcVersion, backend_name: str
) -> Path:
    """cargo's target folder for one (target, glibc, backend): switching glibc reuses each
    one's objects and never mixes them (the same crate linked for another glibc)."""
    return base / "glibc-build" / f"{target.rust}-glibc-{platform_glibc}-{backend_name}"


def _setting(crate: cargo.Crate, key: str, kinds: tuple[type, ...]) -> tuple[object, Path]:
    """A crate setting of the right type (TOML gives floats for `2.30`), and where it was set."""
    value, origin = crate.settings.get(key, (None, crate.manifest.parent))
    if value is not None and (not isinstance(value, kinds) or value == ""):
        wanted = " or ".join(
            {str: "a string", bool: "true or false", list: "a list of strings"}[kind]
            for kind in kinds
        )
        raise UsageError(
            f"{key} = {value!r} in [package.metadata.{cargo.SETTINGS_KEY}] of "
            f"{origin / 'Cargo.toml'} must be {wanted}"
            + ('; quote versions: glibc = "2.30"' if key == "glibc" else "")
        )
    return value, origin


def resolve(options: BuildOptions, crate: cargo.Crate) -> BuildRequest:
    """Command-line flags, else the crate's [package.metadata.glibc-build], else defaults.

    Paths in settings are relative to the Cargo.toml that set them, as cargo's own are.
    """
    unknown = sorted(set(crate.settings) - set(SETTINGS))
    if unknown:
        raise UsageError(
            f"unknown key {unknown[0]!r} in [package.metadata.{cargo.SETTINGS_KEY}] "
            f"of {crate.manifest}; known keys: {', '.join(SETTINGS)}"
        )

    flags = {
        "glibc": options.glibc,
        "target": options.target,
        "backend": options.backend,
        "recipe": options.recipe,
        "profile": options.profile,
        "features": options.features,
        "verify-on": options.verify_on,
        "verify-reproducible": options.verify_reproducible,
        "kernel": options.kernel,
        "verify-call": options.verify_call,
        "strict": options.strict,
        "host-libraries": options.host_libraries,
    }
    for key, said in crate.conflicts.items():
        if flags.get(key) is None and not (key == "profile" and options.release):
            raise UsageError(
                f"the cdylibs differ in {key} of [package.metadata."
                f"{cargo.SETTINGS_KEY}] ({said}); settle it with --{key}, or "
                "build them one at a time with --package NAME"
            )

    def pick(flag: object, key: str, kinds: tuple[type, ...] = (str,)) -> tuple[object, str]:
        if flag is not None:
            return flag, f"--{key}"
        value = _setting(crate, key, kinds)[0]
        return value, f"{key} in [package.metadata.{cargo.SETTINGS_KEY}]"

    target_text, _ = pick(options.target, "target")
    glibc_text, glibc_source = pick(options.glibc, "glibc")
    target_name, glibc_text, glibc_source = target_and_glibc(
        str(target_text) if target_text else None,
        str(glibc_text) if glibc_text else None,
        glibc_source,
    )
    target = targets.lookup(target_name or targets.DEFAULT_TARGET)
    platform = choose_platform(glibc_text or DEFAULT_GLIBC, target, glibc_source)
    glibc = platform.glibc
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
        raise UsageError(
            "--recipe only applies to --backend docker; drop it or add --backend docker"
        )
    if chosen == "docker" and not recipe:
        raise UsageError("--backend docker needs --recipe NAME (see recipes/)")
    profile, profile_source = pick(options.profile, "profile")
    if options.release and profile not in (None, "release"):
        raise UsageError(
            f"--release and --profile {profile} contradict each other; give one of them"
        )
    if profile:
        require_profile(str(profile), crate, profile_source)
    features, _ = pick(options.features, "features", (str, list))
    if isinstance(features, list):
        features = ",".join(str(f) for f in features)
    verify_on: Path | None = options.verify_on
    if verify_on is None:
        value, origin = _setting(crate, "verify-on", (str,))
        verify_on = origin / str(value) if value else None
    repro, _ = pick(options.verify_reproducible, "verify-reproducible", (bool,))
    split_debug, _ = pick(options.split_debug, "split-debug", (bool,))
    if split_debug:  # a missing objcopy is named before cargo runs
        from .splitdebug import objcopy

        objcopy()
    packages_value, packages_source = pick(options.system_packages, "system-packages", (list,))
    system_packages = list(packages_value) if isinstance(packages_value, (list, tuple)) else []
    if not all(isinstance(p, str) and p for p in system_packages):
        raise UsageError(f"{packages_source} must be a list of Debian package names")
    system_suite, _ = pick(options.system_suite, "system-suite")
    if system_packages and chosen != "zig":
        raise UsageError(
            f"{packages_source} applies to the zig backend; with docker, put the "
            "packages in the image: image-packages = [...] in "
            f"[package.metadata.{cargo.SETTINGS_KEY}]"
        )
    kernel_text, kernel_source = pick(options.kernel, "kernel")
    kernel = KernelVersion.parse(str(kernel_text), what=kernel_source) if kernel_text else None
    verify_call, _ = pick(options.verify_call, "verify-call")
    strict, _ = pick(options.strict, "strict", (bool,))
    host_text, _ = pick(options.host_libraries, "host-libraries", (str, list))
    if isinstance(host_text, list):
        host_text = ",".join(str(name) for name in host_text)
    from .check import parse_host_libraries

    host_libraries = parse_host_libraries(str(host_text)) if host_text else None
    folder = out_folder_name(platform.name, str(profile or "release"))
    out = options.out or crate.root / "dist" / folder
    require_usable(out)
    base = options.target_dir.absolute() if options.target_dir is not None else crate.target_dir
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
            if not all(isinstance(p, str) and p and not p.startswith("-") for p in image_packages):  # type: ignore[attr-defined]
                raise UsageError(
                    f"image-packages in [package.metadata.{cargo.SETTINGS_KEY}] "
                    "must be a list of package names"
                )
            loaded = replace(loaded, image_packages=tuple(image_packages))  # type: ignore[arg-type]
    return BuildRequest(
        crate=crate,
        glibc=glibc,
        target=target,
        backend=str(chosen),
        recipe=loaded,
        profile=str(profile or "release"),
        features=str(features) if features else None,
        out=out,
        verify_on=verify_on,
        verify_root=verify_root,
        verify_reproducible=bool(repro),
        json_output=options.json_output,
        kernel=kernel,
        verify_call=str(verify_call) if verify_call else None,
        strict=bool(strict),
        host_libraries=host_libraries,
        system_packages=tuple(str(p) for p in system_packages),
        system_suite=str(system_suite) if system_suite else None,
        platform=folder,
        preset=None if platform.bare else platform,
        target_dir=build_target_dir(base, target, glibc, str(chosen)),
        cargo_args=cargo_flags(options),
        split_debug=bool(split_debug),
    )


def _check_verify(
    root: Path, target: targets.Target, kernel: KernelVersion | None, call: object
) -> None:
    """Refuse what --verify-on could not do (a bad symbol, a floor below the root's glibc)
    before the build, not after it."""
    import re

    from .prove import check_kernel_floor, inspect_root, kernel_filter

    if call and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(call)):
        raise UsageError(f"--verify-call {call!r} is not a symbol name")
    if kernel is not None:
        kernel_filter(kernel, target)
        check_kernel_floor(inspect_root(root, target), kernel)


def context(request: BuildRequest, crate: cargo.Crate) -> BuildContext:
    """The backend's inputs, with the path remapping that makes the output reproducible."""
    remaps = reproducible.path_remaps(crate, os.environ)
    env = reproducible.environment(crate, request.target, os.environ, remaps)
    env["CARGO_TARGET_DIR"] = str(crate.target_dir)
    from . import splitdebug

    if request.split_debug:  # DWARF to split off, and a build-id to tie it by
        env.update(splitdebug.profile_env(request.profile))
    return BuildContext(
        crate=crate,
        target=request.target,
        glibc=request.glibc,
        profile=request.profile,
        features=request.features,
        recipe=request.recipe,
        path_remaps=remaps,
        env=env,
        system_packages=request.system_packages,
        system_suite=request.system_suite,
        cargo_args=request.cargo_args,
        rustflags=splitdebug.rustflags(request.split_debug),
    )


def rebuild_elsewhere(request: BuildRequest, ctx: BuildContext, scratch: Path) -> BuildResult:
    """Build the same sources again from a copy at another depth, into their own target dir."""
    crate = request.crate
    skip = {
        crate.target_dir,
        crate.workspace_root / "target",
        crate.root.resolve() / "dist",
        request.out.resolve(),
    }
    if request.target_dir is not None:  # the base of every per-glibc target folder
        skip.add(request.target_dir.parent.parent)

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
    return build_stage(request, replace(ctx2, env=env), "the second build (--verify-reproducible)")


def last_error(details: str) -> str:
    """cargo's own last error among its last lines (the whole output was streamed already)."""
    lines = [line.strip() for line in details.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return (errors or lines or [""])[-1]


def build_stage(
    request: BuildRequest, ctx: BuildContext, stage: str = "the build stage"
) -> BuildResult:
    """The backend's build; a cargo failure becomes one line naming the stage, then cargo's
    own last error, not its tail again (cargo's output was shown as it ran)."""
    try:
        return backend(request.backend)(ctx)
    except ToolchainError as exc:
        if not exc.message.endswith("cargo's last lines:"):
            raise
        said = exc.message.removesuffix("; cargo's last lines:")
        raise ToolchainError(
            f"{stage} failed ({request.backend} backend): {said}: {last_error(exc.details)}"
        ) from None


def run_build(options: BuildOptions) -> int:
    summary: dict[str, Any] = {}
    try:
        return _run_build(options, summary)
    except OrchestratorError as exc:
        if options.json_output:
            jsonout.emit(jsonout.failure(exc.message, exc.exit_code, summary))
        raise


def _run_build(options: BuildOptions, summary: dict[str, Any]) -> int:
    """The build; `summary` fills up as it goes (the JSON of a failure says what was known)."""
    _check_cli_values(options)
    crate = cargo.locate(crate_folder(options), options.package)
    request = resolve(options, crate)
    summary.update(
        {
            "schema": jsonout.SCHEMA,
            "ok": False,
            "glibc": str(request.glibc),
            "platform": request.platform,
            "target": request.target.rust,
            "backend": request.backend,
            "artifacts": [],
            "manifest": None,
        }
    )  # "check" once it ran
    assert request.target_dir is not None
    crate = replace(crate, target_dir=request.target_dir)
    request = replace(request, crate=crate)
    ctx = context(request, crate)
    messages: list[str] = []  # cargo's JSON lines, read only when a finding needs its crate
    with progress.stage(None, "built"), cargo.listening(messages.append):
        result = build_stage(request, ctx)  # the backend says what it builds
    built = list(result.artifacts)

    from .check import check_paths

    plural = "y" if len(built) == 1 else "ies"
    with progress.stage(
        f"checking {len(built)} librar{plural} against glibc {request.glibc}", "checked"
    ):
        report = check_paths(
            built,
            request.glibc,
            request.target,
            strict=request.strict,
            host_libraries=request.host_libraries,
            platform=request.preset,
            kernel=request.kernel,
        )
    from .check.render import report_text
    from .provenance import report_json
    from .provenance import report_text as provenance_text

    report, extra = attribute(request, report, messages)
    text = report_text(report, for_build=True)
    attributed = provenance_text(report, extra)
    text += "\n" + attributed if attributed else ""
    if not logger.console().quiet:
        logger.console().print(text, markup=False, highlight=False)
    elif not report.ok:  # -q: errors only, and a failed check's report is part of its error
        sys.stderr.write(text + "\n")
    summary["check"] = jsonout.with_schema(report_json(report, extra))  # as `check --json`
    matrices = {
        Path(file.path).name: file.loads_on.to_json()
        for file in report.files
        if file.loads_on is not None
    }
    try:
        ci.append_step_summary(loads_on_summary(request.platform, matrices))
    except OSError as exc:  # the job summary is extra: the build goes on without it
        logger.warn(f"$GITHUB_STEP_SUMMARY: cannot append the loads-on table ({exc.strerror})")
    failure: OrchestratorError | None = None
    if not report.ok:
        failure = CheckFailed(
            f"the built librar{plural} {'needs' if len(built) == 1 else 'need'} "
            f"more than glibc {request.glibc} "
            f"(see the report above); nothing was copied to {request.out}; "
            f"the files are in {built[0].parent}"
        )
    loads, verify = None, None
    if failure is None and request.verify_on is not None:
        loads, failure, verify = prove(request, built)
        summary["verify_load"], summary["verify"] = loads, verify
    if failure is None and request.verify_reproducible:
        failure = verify_reproducible(request, ctx, built)
        summary["reproducible"] = failure is None
    if failure is not None:
        raise failure

    def manifest_text(files: list[str]) -> str:
        data = manifest.data(
            crate=request.crate,
            target=request.target.rust,
            glibc=str(request.glibc),
            backend=request.backend,
            profile=request.profile,
            result=result,
            artifacts=manifest.artifact_entries(built),
            check=report.to_json(),
            loads=loads,
            verify=verify,
            platform=request.platform,
            loads_on=matrices,
        )
        return manifest.render({**data, "sbom": sbom_name, "files": files})

    debug_files: dict[str, bytes] = {}
    if request.split_debug:  # ship the stripped copies; their .debug files beside them
        from .splitdebug import split_all

        built, debug_files = split_all(built)
    sbom = sbom_file(request, result, built)  # of the libraries as shipped
    sbom_name = next(iter(sbom), None)
    published = publish(request.out, built, manifest_text, {**debug_files, **sbom})
    summary["artifacts"] = [str(p) for p in published.artifacts]
    summary["manifest"] = str(request.out / manifest.MANIFEST_NAME)
    for path in published.artifacts:
        logger.info(f"-> {path}")
    if published.removed:
        logger.info(
            f"removed from {request.out} what an earlier build put there and this one "
            f"did not: {', '.join(published.removed)}"
        )
    if published.foreign:
        logger.warn(
            f"{request.out} also holds files this tool did not write (left alone): "
            f"{', '.join(published.foreign)}"
        )
    record_use(used_paths(request, result))
    summary["ok"] = True
    if request.json_output:
        jsonout.emit(summary)
    return 0


def loads_on_summary(platform: str, matrices: Mapping[str, Mapping[str, Any]]) -> str:
    """The GitHub job summary's "loads on" table: each library, the presets it loads on, and
    why not on the others (loads_on.LoadsOn.to_json by file name)
    (https://docs.github.com/en/actions/using-workflows/workflow-commands-for-github-actions#adding-a-job-summary)."""
    rows = [
        [
            name,
            ", ".join(matrix.get("ok") or ()) or "none of the presets",
            "; ".join(f"{preset}: {why}" for preset, why in (matrix.get("not") or {}).items()),
        ]
        for name, matrix in sorted(matrices.items())
    ]
    return f"### glibc-build: loads on (built for {platform})\n\n" + ci.markdown_table(
        ["library", "loads on", "not on"], rows
    )


def attribute(
    request: BuildRequest, report: Report, messages: list[str]
) -> tuple[Report, dict[str, FileProvenance]]:
    """The report with each finding tied to the crate that brought it (provenance.py), from
    cargo's JSON messages of this build, and the known remedy of that crate
    (known_crates.py). Only when there is a finding to attribute: a clean build pays
    nothing."""
    if not any(file.violations or file.warnings for file in report.files):
        return report, {}
    from .known_crates import remedy
    from .provenance import MessageLog, for_build

    log = MessageLog()
    for line in messages:
        log.feed(line)
    units = [unit for unit in log.units if unit.path.exists()]  # docker: paths in its container
    return for_build(report, units, request.crate.root, request.target.rust, remedy_for=remedy)


def full_metadata(crate: cargo.Crate) -> dict[str, Any]:
    """`cargo metadata` with dependencies, for the licenses in the SBOM; offline (the build
    fetched what it needs), and {} when cargo cannot answer so (a docker build fetched them in
    its container): the SBOM then lists the packages without licenses."""
    import json
    import subprocess

    proc = subprocess.run(
        [
            cargo.cargo_binary(),
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
            str(crate.manifest),
        ],
        capture_output=True,
        text=True,
        cwd=crate.workspace_root,
    )
    if proc.returncode != 0:
        return {}
    try:
        meta = json.loads(proc.stdout)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def sbom_file(request: BuildRequest, result: BuildResult, built: list[Path]) -> dict[str, bytes]:
    """{sbom.cdx.json: its bytes}: the CycloneDX SBOM of this build (sbom.py), or {} when the
    workspace has no Cargo.lock to list."""
    from .digest import sha256_file
    from .sbom import SBOM_NAME, BuiltLibrary, make_sbom

    lock = request.crate.lockfile
    if lock is None:
        return {}
    tools = manifest.toolchain_entry(result.toolchain)
    toolchain = {name: value for name, value in tools.items() if isinstance(value, str)}
    epoch = result.env.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH") or "0"
    return {
        SBOM_NAME: make_sbom(
            cargo_lock=lock,
            cargo_metadata=full_metadata(request.crate),
            toolchain=toolchain,
            libraries=[BuiltLibrary(name=f.name, sha256=sha256_file(f)) for f in built],
            source_date_epoch=int(epoch) if epoch.isdigit() else 0,
        )
    }


def used_paths(request: BuildRequest, result: BuildResult) -> list[Path]:
    """What this build used of the kept things, for `build.py cache prune`: its target folder
    and the cache entries its environment, root and checker point into."""
    from .paths import cache_root

    root = cache_root().absolute()
    used = [request.target_dir] if request.target_dir is not None else []
    pointed = [Path(v) for v in result.env.values() if v.startswith("/")]
    if request.verify_root is not None:
        pointed.append(request.verify_root.absolute())
    for path in pointed:
        if path.is_relative_to(root) and len(path.relative_to(root).parts) >= 2:
            used.append(root.joinpath(*path.relative_to(root).parts[:2]))
    kinds = [
        "abilists",
        *(["loader"] if request.verify_root else []),
        *(["docker-cargo-home", "docker-zig-cache"] if request.backend == "docker" else []),
    ]
    for kind in kinds:
        if (root / kind).is_dir():
            used.extend((root / kind).iterdir())
    return used


def prove(
    request: BuildRequest, built: list[Path]
) -> tuple[list[dict[str, Any]], OrchestratorError | None, dict[str, Any]]:
    """Load every library with the real dynamic loader of the --verify-on root (with only the
    system calls of --kernel, calling --verify-call), and say what that proved."""
    from .prove import Proof, inspect_root, verify_load

    assert request.verify_root is not None
    root = request.verify_root
    root_glibc = inspect_root(root, request.target).glibc
    simulated = f", on a simulated Linux {request.kernel}" if request.kernel else ""
    logger.step(
        f"loading {len(built)} librar{'y' if len(built) == 1 else 'ies'} with glibc "
        f"{root_glibc or '(unknown version)'} of {request.verify_on}{simulated}"
    )
    with progress.stage(None, "loaded"):
        results = verify_load(
            root, built, call=request.verify_call, target=request.target, kernel=request.kernel
        )
    loads = []
    for result in results:
        logger.info(
            f"{result.lib.name}: {'loaded' if result.ok else 'REFUSED'} {result.message}".rstrip()
        )
        for line in result.output.rstrip().splitlines() if result.output.strip() else []:
            logger.info(f"  | {line}")
        entry: dict[str, Any] = {
            "name": result.lib.name,
            "ok": result.ok,
            "message": result.message,
        }
        if request.verify_call:
            entry["returned"] = result.returned
        if request.kernel is not None:
            entry["denied"] = result.denied
        loads.append(entry)
    proof = Proof(
        root_glibc=root_glibc,
        kernel=request.kernel,
        called=request.verify_call,
        target_glibc=str(request.glibc),
    )
    refused = [r for r in results if not r.ok]
    if refused:
        return (
            loads,
            LoadRefused(
                f"{refused[0].lib.name} does not load on {request.verify_on}: {refused[0].message}"
            ),
            proof.to_json(),
        )
    for line in proof.lines():
        logger.info(line)
    return loads, None, proof.to_json()


def verify_reproducible(
    request: BuildRequest, ctx: BuildContext, built: list[Path]
) -> OrchestratorError | None:
    logger.step("building a second time from another folder to compare the bytes")
    scratch = Path(tempfile.mkdtemp(prefix="glibc-build-repro-"))
    try:
        with progress.stage(None, "built again"):
            second = rebuild_elsewhere(request, ctx, scratch).artifacts
        differences = reproducible.compare(built, second)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not differences:
        logger.info("reproducible: both builds are byte-identical")
        return None
    lines = [f"{d.name}: sections that differ: {', '.join(d.sections)}" for d in differences]
    details = "\n".join(lines + [d.diffoscope for d in differences if d.diffoscope])
    return NotReproducible(
        f"{differences[0].name} differs between two builds from different "
        "folders; something embeds a path, a time or randomness (see the "
        "sections below)",
        details=details,
    )
