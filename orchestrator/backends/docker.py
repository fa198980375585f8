"""Docker backend: cargo inside the recipe's old-distro image, linked against its real glibc.

The crate's workspace is bind-mounted at /build, the host's Rust toolchain read-only at
/opt/rust (so an air-gapped image needs no Rust download), and a cargo home kept between runs
at /cargo. Crates are fetched on the host first and the container builds `--offline`, so the
container needs no network either. cargo runs as the invoking user, so the output is theirs;
the container is removed on success, error and Ctrl-C alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from pathlib import Path, PurePosixPath

from .. import cargo, engine, logger, reproducible
from ..cache import cache_dir
from ..errors import ToolchainError
from . import BuildContext

WORKSPACE = PurePosixPath("/build")
TOOLCHAIN = PurePosixPath("/opt/rust")
CARGO_HOME = PurePosixPath("/cargo")
PATH = f"{TOOLCHAIN}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def host_toolchain() -> Path:
    sysroot = reproducible.rustc_sysroot()
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


def container_rustflags(ctx: BuildContext, recipe_env: dict[str, str]) -> list[str]:
    """Recipe flags, then the user's, then ours; host path remaps swapped for container ones."""
    recipe_flags = recipe_env.get("RUSTFLAGS", "").split()
    user = cargo.user_rustflags(ctx.crate.root.resolve(), ctx.target.rust, dict(os.environ))
    ours = [f for f in ctx.rustflags if not f.startswith("--remap-path-prefix")]
    remaps = reproducible.remap_rustflags([(str(TOOLCHAIN), reproducible.SYSROOT_AS),
                                           (str(WORKSPACE), reproducible.WORKSPACE_AS)])
    return recipe_flags + user + ours + remaps


def build(ctx: BuildContext) -> list[Path]:
    from ..image import build_image
    from ..recipe import load_recipe

    recipe = load_recipe(str(ctx.recipe))
    ref = build_image(recipe, ctx.glibc)
    toolchain = host_toolchain()
    cargo_home = cache_dir("docker-cargo-home")
    fetch_crates(ctx, toolchain, cargo_home)

    member = ctx.crate.manifest.parent.relative_to(ctx.crate.workspace_root)
    target_dir = WORKSPACE / "target" / f"glibc-build-{recipe.name}"
    args = cargo.build_args(ctx.crate, ctx.target.rust, ctx.profile, ctx.features)
    args[args.index("--manifest-path") + 1] = str(WORKSPACE / member / "Cargo.toml")
    cmd = ["cargo", *args, "--offline"]
    env = {k: v for k, v in recipe.env.items() if k != "RUSTFLAGS"}
    env.update({
        "HOME": "/tmp", "PATH": PATH, "CARGO_HOME": str(CARGO_HOME),
        "CARGO_TARGET_DIR": str(target_dir), "CARGO_INCREMENTAL": "0",
        "CARGO_ENCODED_RUSTFLAGS": cargo.encode_rustflags(container_rustflags(ctx, recipe.env)),
    })
    if "SOURCE_DATE_EPOCH" in ctx.env:
        env["SOURCE_DATE_EPOCH"] = ctx.env["SOURCE_DATE_EPOCH"]
    logger.step(f"building {', '.join(ctx.crate.packages)} in {ref} (glibc {recipe.glibc}, "
                f"{ctx.target.rust}, {ctx.profile})")
    built = run_in_container(ref, cmd, env, {
        str(ctx.crate.workspace_root): {"bind": str(WORKSPACE), "mode": "rw"},
        str(toolchain): {"bind": str(TOOLCHAIN), "mode": "ro"},
        str(cargo_home): {"bind": str(CARGO_HOME), "mode": "rw"},
    }, workdir=str(WORKSPACE / member), label=f"cargo in {ref}")
    return [ctx.crate.workspace_root / PurePosixPath(p).relative_to(WORKSPACE) for p in built]


def run_in_container(image: str, cmd: list[str], env: dict[str, str], volumes: dict,
                     *, workdir: str, label: str) -> list[Path]:
    """Run a cargo JSON build in a fresh container; return the artifact paths it reported."""
    client = engine.client()
    container = client.containers.create(
        image, cmd, environment=env, volumes=volumes, working_dir=workdir,
        user=f"{os.getuid()}:{os.getgid()}", labels={engine.LABEL: "1"}, detach=True)
    tail: deque[str] = deque(maxlen=cargo.ERROR_TAIL_LINES)
    artifacts: list[Path] = []
    try:
        container.start()
        pending = {"out": "", "err": ""}
        for out, err in container.attach(stdout=True, stderr=True, stream=True, logs=True,
                                         demux=True):
            if out:
                pending["out"] += out.decode(errors="replace")
                *lines, pending["out"] = pending["out"].split("\n")
                for line in lines:
                    artifacts += cargo.cdylib_files(line)
            if err:
                text = err.decode(errors="replace")
                sys.stderr.write(text)
                sys.stderr.flush()
                pending["err"] += text
                *lines, pending["err"] = pending["err"].split("\n")
                tail.extend(lines)
        artifacts += cargo.cdylib_files(pending["out"])
        tail.append(pending["err"])
        status = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    return cargo.check_finished(status, artifacts, tail, cmd, label)
