"""Docker backend: cargo inside the recipe's old-distro image, linked against its real glibc
(or, for zig recipes, against zig's stubs for the target glibc).

Recipes describe the image; this backend owns the build's environment in it (`container_env`):
the cargo home kept between runs (mounted at /cargo), PATH to the host's Rust, the zig wrappers
as compilers for the target glibc, and --gc-sections (every backend's). The crate's workspace
is bind-mounted at /build. Recipes with `toolchain.rust = "host"` get the host's Rust
toolchain read-only at `toolchain.rust_mount`, so an air-gapped image needs no Rust download;
the others bring their own. Crates are fetched on the host first and the container builds
`--offline`, so it needs no network either. cargo runs as the invoking user, so the output is
theirs; the container is removed on success, error and Ctrl-C alike.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import cargo, engine, logger, reproducible, toolchain
from ..errors import ToolchainError, UsageError
from ..glibc import GlibcVersion
from ..paths import cache_dir
from ..targets import Target
from ..zigwrap import MODES, RUST_TARGET_VAR
from . import BuildContext, BuildResult, Toolchain
from .zig import compiler_env

if TYPE_CHECKING:
    from ..recipe import Recipe

WORKSPACE = PurePosixPath("/build")
CARGO_HOME = "/cargo"  # the cargo home kept between runs is mounted here
ZIG_CACHE = "/tmp/zig-cache"  # zig recipes: zig's global cache, kept between runs
DEFAULT_RUST_MOUNT = "/opt/rust"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fetch_crates(ctx: BuildContext, host_rust: Path, cargo_home: Path) -> None:
    """Download the crate's dependencies on the host into the container's cargo home."""
    env = dict(os.environ, CARGO_HOME=str(cargo_home))
    proc = subprocess.run(
        [str(host_rust / "bin" / "cargo"), "fetch", "--manifest-path", str(ctx.crate.manifest)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise ToolchainError(
            "cargo fetch failed on the host (the container builds offline); cargo's last lines:",
            details=cargo.tail_lines(proc.stderr),
        )


def rust_mount(recipe: Recipe) -> str | None:
    """Where the host's Rust is mounted, for recipes that use it (`toolchain.rust = "host"`)."""
    if recipe.toolchain.get("rust") != "host":
        return None
    return recipe.toolchain.get("rust_mount", DEFAULT_RUST_MOUNT)


def uses_zig(recipe: Recipe) -> bool:
    """A zig recipe: its image has zigwrap's wrappers (zig-cc, zig-c++, zig-ar, zig-ranlib)."""
    return "zig" in recipe.toolchain


def container_rustflags(recipe: Recipe, ours: Sequence[str]) -> list[str]:
    """The image's flags (its recipe's RUSTFLAGS: the linker it has), then `ours` (every
    backend's: GC_SECTIONS)."""
    return recipe.env.get("RUSTFLAGS", "").split() + list(ours)


def container_remaps(recipe: Recipe, target_dir: PurePosixPath) -> tuple[tuple[str, str], ...]:
    """The path remapping for the container's folders, in `reproducible.path_remaps`' order."""
    mount = rust_mount(recipe)
    remaps = [(mount, reproducible.SYSROOT_AS)] if mount else []
    remaps += [
        (str(WORKSPACE), reproducible.WORKSPACE_AS),
        (str(target_dir), reproducible.TARGET_DIR_AS),
    ]
    return tuple(remaps)


def container_env(
    recipe: Recipe,
    *,
    target: Target,
    glibc: GlibcVersion,
    target_dir: PurePosixPath,
    source_date_epoch: str | None,
) -> dict[str, str]:
    """The recipe's environment (its image's), with what this backend owns set on top of it:
    the cargo home it mounts, PATH to the host's Rust it mounts, the zig wrappers as compilers
    for the target glibc (not the image's own), and the build's settings."""
    env = {k: v for k, v in recipe.env.items() if k != "RUSTFLAGS"}  # handed over separately
    env.update(
        {
            "HOME": "/tmp",
            "CARGO_HOME": CARGO_HOME,
            "CARGO_TARGET_DIR": str(target_dir),
            "CARGO_INCREMENTAL": "0",
        }
    )
    mount = rust_mount(recipe)
    if mount:
        path = recipe.env.get("PATH", SYSTEM_PATH)
        if f"{mount}/bin" not in path.split(":"):
            path = f"{mount}/bin:{path}"
        env["PATH"] = path
    if uses_zig(recipe):
        env.update(compiler_env(target, {mode: f"zig-{mode}" for mode in MODES}))
        env[f"CXXSTDLIB_{target.env_suffix}"] = "c++"  # zig ships libc++, not libstdc++
        env["ZIG_TARGET_GLIBC"] = str(glibc)  # zig links for the target, not the base
        env["ZIG_GLOBAL_CACHE_DIR"] = ZIG_CACHE
        env[RUST_TARGET_VAR] = target.rust  # build scripts link for the image, not the target
    if source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = source_date_epoch
    return env


def overridden(recipe: Recipe, env: dict[str, str]) -> list[str]:
    """The recipe's [env] keys that `container_env` set otherwise (a recipe written before
    the backend owned them): the image keeps the recipe's value, the build gets ours."""
    return sorted(
        key
        for key, value in recipe.env.items()
        if key != "RUSTFLAGS" and env.get(key, value) != value
    )


def build(ctx: BuildContext) -> BuildResult:
    from ..image import build_image

    recipe = ctx.recipe
    if recipe is None:  # build.resolve refuses --backend docker without --recipe
        raise UsageError("--backend docker needs --recipe NAME (see recipes/)")
    ref = build_image(recipe, ctx.glibc)
    host_rust = toolchain.rust_with_cargo(ctx.crate.root.resolve())  # fetches crates, any recipe
    mount = rust_mount(recipe)
    cargo_home = cache_dir("docker-cargo-home")
    fetch_crates(ctx, host_rust, cargo_home)

    # The source root (workspace and path dependencies) is mounted at /build.
    member = ctx.crate.manifest.parent.relative_to(ctx.crate.source_root)
    workspace = WORKSPACE / ctx.crate.workspace_root.relative_to(ctx.crate.source_root)
    target_dir = workspace / "target" / f"glibc-build-{recipe.name}-glibc-{ctx.glibc}"
    subcommand, *args = cargo.build_args(
        WORKSPACE / member / "Cargo.toml",
        ctx.crate.packages,
        ctx.target.rust,
        ctx.profile,
        ctx.features,
    )
    env = container_env(
        recipe,
        target=ctx.target,
        glibc=ctx.glibc,
        target_dir=target_dir,
        source_date_epoch=ctx.env.get("SOURCE_DATE_EPOCH"),
    )
    for key in overridden(recipe, env):
        logger.warn(
            f"recipe {recipe.name}: [env] {key} is set by the docker backend for the "
            f"build ({env[key]}); drop it from {recipe.path.name}"
        )
    remaps = container_remaps(recipe, target_dir)
    # The user's flags are read on the host (the container sees the workspace's
    # .cargo/config.toml, not the host's cargo home); handed over the same way as on the host.
    flags = cargo.hand_over_rustflags(
        ctx.crate.root.resolve(),
        ctx.target.rust,
        dict(os.environ),
        container_rustflags(recipe, ctx.rustflags) + reproducible.remap_rustflags(remaps),
    )
    env.update(flags.env)
    # The image's ENV RUSTFLAGS (the recipe's) would override every config file in the
    # container; they are in `container_rustflags` already, so the variable itself goes.
    cmd = [
        "env",
        "-u",
        "RUSTFLAGS",
        "cargo",
        subcommand,
        *flags.args,
        *args,
        "--offline",
        *(arg for arg in ctx.cargo_args if arg != "--offline"),
    ]
    volumes = {
        str(ctx.crate.source_root): {"bind": str(WORKSPACE), "mode": "rw"},
        str(cargo_home): {"bind": CARGO_HOME, "mode": "rw"},
    }
    if mount:
        volumes[str(host_rust)] = {"bind": mount, "mode": "ro"}
    if uses_zig(recipe):  # zig builds libunwind & co. once, not on every run
        volumes[str(cache_dir("docker-zig-cache", recipe.name))] = {"bind": ZIG_CACHE, "mode": "rw"}
    links_for = f"zig, glibc {ctx.glibc}" if uses_zig(recipe) else f"its glibc {recipe.glibc}"
    logger.step(
        f"building {', '.join(ctx.crate.packages)} in {ref} ({links_for}, "
        f"{ctx.target.rust}, {ctx.profile})"
    )
    built = run_in_container(
        ref, cmd, env, volumes, workdir=str(WORKSPACE / member), label=f"cargo in {ref}"
    )
    rustc = toolchain.version_verbose(ctx.crate.root) if mount else image_rustc_version(ref, env)
    return BuildResult(
        artifacts=tuple(
            ctx.crate.source_root / PurePosixPath(p).relative_to(WORKSPACE) for p in built
        ),
        rustflags=tuple(f for f in flags.flags if not f.startswith(reproducible.REMAP_FLAG)),
        path_remaps=remaps,
        env=env,
        toolchain=Toolchain(
            rustc=rustc, recipe=recipe.name, recipe_sha256=recipe.digest(), image=ref
        ),
    )


def _container(
    image: str,
    cmd: list[str],
    env: dict[str, str],
    volumes: dict[str, dict[str, str]],
    workdir: str,
) -> Any:
    """A fresh container as the invoking user, labelled so that a leftover one can be found.

    Named by us before it exists: a Ctrl-C or SIGTERM that lands while the engine is creating
    it (the call has not returned, so no handle to remove) still removes it by that name."""
    import uuid

    from docker.errors import DockerException

    client = engine.client()
    name = f"glibc-build-{uuid.uuid4().hex[:16]}"
    try:
        return client.containers.create(
            image,
            cmd,
            name=name,
            environment=env,
            volumes=volumes,
            working_dir=workdir,
            user=f"{os.getuid()}:{os.getgid()}",
            labels={engine.LABEL: "1"},
            detach=True,
        )
    except BaseException:
        try:
            client.api.remove_container(name, force=True)
        except DockerException:  # never made (the create failed), or gone already
            pass
        raise


def image_rustc_version(image: str, env: dict[str, str]) -> str:
    """`rustc -vV` of an image's own Rust (recipes that do not mount the host's)."""
    from docker.errors import APIError

    container = _container(image, ["rustc", "-vV"], env, {}, "/")
    try:
        container.start()
        status = container.wait()["StatusCode"]
        text = container.logs(stdout=True, stderr=False).decode(errors="replace").strip()
    except APIError as exc:  # no rustc on the image's PATH: the engine cannot start it
        return f"unknown (`rustc -vV` in {image}: {getattr(exc, 'explanation', exc)})"
    finally:
        container.remove(force=True)
    return text if status == 0 else f"unknown (`rustc -vV` in {image} exited {status})"


def run_in_container(
    image: str,
    cmd: list[str],
    env: dict[str, str],
    volumes: dict[str, dict[str, str]],
    *,
    workdir: str,
    label: str,
) -> list[Path]:
    """Run a cargo JSON build in a fresh container; return the artifact paths it reported."""
    container = _container(image, cmd, env, volumes, workdir)
    output = cargo.CargoOutput(cmd, label)
    try:
        container.start()
        for out, err in container.attach(
            stdout=True, stderr=True, stream=True, logs=True, demux=True
        ):
            if out:
                output.feed("out", out.decode(errors="replace"))
            if err:
                output.feed("err", err.decode(errors="replace"))
        status = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    return output.finish(status)
