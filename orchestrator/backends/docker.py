"""Docker backend: cargo inside the recipe's old-distro image, linked against its real glibc
(or, for zig recipes, against zig's stubs for the target glibc).

The crate's workspace is bind-mounted at /build and a cargo home kept between runs at the
recipe's CARGO_HOME (default /cargo). Recipes with `toolchain.rust = "host"` get the host's Rust
toolchain read-only at `toolchain.rust_mount`, so an air-gapped image needs no Rust download;
the others bring their own. Crates are fetched on the host first and the container builds
`--offline`, so it needs no network either. cargo runs as the invoking user, so the output is
theirs; the container is removed on success, error and Ctrl-C alike.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

from .. import cargo, engine, logger, reproducible
from ..cache import cache_dir
from ..errors import ToolchainError
from . import BuildContext

WORKSPACE = PurePosixPath("/build")
DEFAULT_CARGO_HOME = "/cargo"
DEFAULT_RUST_MOUNT = "/opt/rust"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_toolchain(crate_dir: Path) -> Path:
    sysroot = reproducible.rustc_sysroot(crate_dir)
    if not sysroot or not (Path(sysroot) / "bin" / "cargo").is_file():
        raise ToolchainError("no Rust toolchain with cargo found on this machine (`rustc --print "
                             "sysroot`); install one with rustup, then run again")
    return Path(sysroot)


def fetch_crates(ctx: BuildContext, toolchain: Path, cargo_home: Path) -> None:
    """Download the crate's dependencies on the host into the container's cargo home."""
    env = dict(os.environ, CARGO_HOME=str(cargo_home))
    proc = subprocess.run([str(toolchain / "bin" / "cargo"), "fetch", "--manifest-path",
                           str(ctx.crate.manifest)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError("cargo fetch failed on the host (the container builds offline); "
                             "cargo's last lines:", details=cargo.tail_lines(proc.stderr))


def our_rustflags(ctx: BuildContext, recipe_env: dict[str, str], rust_mount: str | None,
                  target_dir: PurePosixPath) -> list[str]:
    """The recipe's flags and ours, with host path remaps swapped for container ones."""
    ours = [f for f in ctx.rustflags if not f.startswith("--remap-path-prefix")]
    remaps = [(str(WORKSPACE), reproducible.WORKSPACE_AS),
              (str(target_dir), reproducible.TARGET_DIR_AS)]
    if rust_mount:
        remaps.insert(0, (rust_mount, reproducible.SYSROOT_AS))
    return recipe_env.get("RUSTFLAGS", "").split() + ours + reproducible.remap_rustflags(remaps)


def container_env(ctx: BuildContext, recipe, target_dir: PurePosixPath) -> dict[str, str]:
    """The recipe's environment, with what this backend must own set on top of it."""
    env = {k: v for k, v in recipe.env.items() if k != "RUSTFLAGS"}
    env.setdefault("CARGO_HOME", DEFAULT_CARGO_HOME)
    env.update({
        "HOME": "/tmp",
        "CARGO_TARGET_DIR": str(target_dir),
        "CARGO_INCREMENTAL": "0",
        "ZIG_TARGET_GLIBC": str(ctx.glibc),  # zig recipes link for the target, not the base
    })
    if "SOURCE_DATE_EPOCH" in ctx.env:
        env["SOURCE_DATE_EPOCH"] = ctx.env["SOURCE_DATE_EPOCH"]
    return env


def build(ctx: BuildContext) -> list[Path]:
    from ..image import build_image
    from ..recipe import load_recipe

    recipe = load_recipe(str(ctx.recipe))
    ref = build_image(recipe, ctx.glibc)
    toolchain = host_toolchain(ctx.crate.root.resolve())  # fetches crates, for any recipe
    rust_mount = (recipe.toolchain.get("rust_mount", DEFAULT_RUST_MOUNT)
                  if recipe.toolchain.get("rust") == "host" else None)
    cargo_home = cache_dir("docker-cargo-home")
    fetch_crates(ctx, toolchain, cargo_home)

    # The source root (workspace and path dependencies) is mounted at /build.
    member = ctx.crate.manifest.parent.relative_to(ctx.crate.source_root)
    workspace = WORKSPACE / ctx.crate.workspace_root.relative_to(ctx.crate.source_root)
    target_dir = workspace / "target" / f"glibc-build-{recipe.name}"
    subcommand, *args = cargo.build_args(ctx.crate, ctx.target.rust, ctx.profile, ctx.features)
    args[args.index("--manifest-path") + 1] = str(WORKSPACE / member / "Cargo.toml")
    env = container_env(ctx, recipe, target_dir)
    if rust_mount and "PATH" not in env:
        env["PATH"] = f"{rust_mount}/bin:{SYSTEM_PATH}"
    # The user's flags are read on the host (the container sees the workspace's
    # .cargo/config.toml, not the host's cargo home); handed over the same way as on the host.
    flag_env, flag_args = cargo.hand_over_rustflags(
        ctx.crate.root.resolve(), ctx.target.rust, dict(os.environ),
        our_rustflags(ctx, recipe.env, rust_mount, target_dir))
    env.update(flag_env)
    # The image's ENV RUSTFLAGS (the recipe's) would override every config file in the
    # container; they are in `our_rustflags` already, so the variable itself goes.
    cmd = ["env", "-u", "RUSTFLAGS", "cargo", subcommand, *flag_args, *args, "--offline"]
    volumes = {
        str(ctx.crate.source_root): {"bind": str(WORKSPACE), "mode": "rw"},
        str(cargo_home): {"bind": env["CARGO_HOME"], "mode": "rw"},
    }
    if rust_mount:
        volumes[str(toolchain)] = {"bind": rust_mount, "mode": "ro"}
    if "ZIG_GLOBAL_CACHE_DIR" in env:  # zig builds libunwind & co. once, not on every run
        volumes[str(cache_dir("docker-zig-cache", recipe.name))] = {
            "bind": env["ZIG_GLOBAL_CACHE_DIR"], "mode": "rw"}
    links_for = (f"zig, glibc {ctx.glibc}" if "zig" in recipe.toolchain
                 else f"its glibc {recipe.glibc}")
    logger.step(f"building {', '.join(ctx.crate.packages)} in {ref} ({links_for}, "
                f"{ctx.target.rust}, {ctx.profile})")
    built = run_in_container(ref, cmd, env, volumes, workdir=str(WORKSPACE / member),
                             label=f"cargo in {ref}")
    return [ctx.crate.source_root / PurePosixPath(p).relative_to(WORKSPACE) for p in built]


def run_in_container(image: str, cmd: list[str], env: dict[str, str], volumes: dict,
                     *, workdir: str, label: str) -> list[Path]:
    """Run a cargo JSON build in a fresh container; return the artifact paths it reported."""
    client = engine.client()
    container = client.containers.create(
        image, cmd, environment=env, volumes=volumes, working_dir=workdir,
        user=f"{os.getuid()}:{os.getgid()}", labels={engine.LABEL: "1"}, detach=True)
    output = cargo.CargoOutput(cmd, label)
    try:
        container.start()
        for out, err in container.attach(stdout=True, stderr=True, stream=True, logs=True,
                                         demux=True):
            if out:
                output.feed("out", out.decode(errors="replace"))
            if err:
                output.feed("err", err.decode(errors="replace"))
        status = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    return output.finish(status)
