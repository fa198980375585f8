"""Zig backend: cargo on the host, linked (and C parts compiled) by `zig cc` for an old glibc.

zig links against stub libraries generated for the exact glibc version asked for
(`-target x86_64-linux-gnu.2.17`), so the output can only bind symbol versions that existed
then. No Docker, no sysroot.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from .. import cargo, logger, reproducible, toolchain
from ..files import write_atomically
from ..paths import cache_dir
from ..reproducible import REMAP_FLAG
from ..targets import Target
from ..zig import zig_binary, zig_version
from ..zigwrap import HOST_COMPILER_VARS, MODES, RUST_TARGET_VAR, TARGET_ARGS_VAR
from . import BuildContext, BuildResult, Toolchain, cmake

ZIGWRAP = Path(__file__).resolve().parent.parent / "zigwrap.py"


def zig_target(ctx: BuildContext) -> str:
    return f"{ctx.target.zig}.{ctx.glibc}"


def write_wrappers(ctx: BuildContext, target_args: tuple[str, ...] = ()) -> dict[str, Path]:
    """Write `cc`, `c++`, `ar` and `ranlib` scripts that run zigwrap.py; return their paths.

    Their folder is named by a hash of their content, so the paths stay the same from one run
    to the next: cargo and the cc crate rebuild everything when the linker or CC path changes.
    The scripts name the Rust target and the machine's own compilers, with which zigwrap links
    build scripts and proc-macros for the machine instead of the target glibc.
    """
    zig = str(zig_binary())
    host = host_link_env(ctx.target.rust)
    if target_args:
        host[TARGET_ARGS_VAR] = "\n".join(target_args)
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in host.items())
    scripts = {
        mode: "#!/bin/sh\n"
        + exports
        + "exec "
        + shlex.join([sys.executable, "-I", "-S", str(ZIGWRAP), mode, zig_target(ctx), zig])
        + ' "$@"\n'
        for mode in MODES
    }
    key = hashlib.sha256("".join(scripts.values()).encode()).hexdigest()[:16]
    folder = cache_dir("zig-wrappers", key)
    paths = {}
    for mode, text in scripts.items():
        path = folder / f"zig-{mode}"
        if not path.is_file() or path.read_text() != text:
            write_atomically(path, text, 0o755)  # a concurrent build never runs half a script
        paths[mode] = path
    return paths


def host_link_env(rust_target: str) -> dict[str, str]:
    """zigwrap's variables for host links: the target triple and the machine's `cc`/`c++`
    (rustc's default linker), empty when missing (zigwrap then links with zig)."""
    env = {RUST_TARGET_VAR: rust_target}
    for mode, name in HOST_COMPILER_VARS.items():
        env[name] = shutil.which(mode) or ""
    return env


def compiler_env(target: Target, tools: Mapping[str, str]) -> dict[str, str]:
    """zig as the target's linker and as the cc crate's CC/CXX/AR/RANLIB; `tools` maps zigwrap's
    modes (cc, c++, ar, ranlib) to the wrapper to run. The docker backend's zig recipes get the
    same variables, naming the image's wrappers."""
    triple = target.env_suffix
    return {
        f"CARGO_TARGET_{triple.upper()}_LINKER": tools["cc"],
        f"CC_{triple}": tools["cc"],
        f"CXX_{triple}": tools["c++"],
        f"AR_{triple}": tools["ar"],
        f"RANLIB_{triple}": tools["ranlib"],
    }


def build_env(
    ctx: BuildContext, wrappers: dict[str, Path], host_env: Mapping[str, str]
) -> dict[str, str]:
    """The variables this backend sets for cargo (on top of `host_env`, the user's)."""
    env = compiler_env(ctx.target, {mode: str(path) for mode, path in wrappers.items()})
    cxxstdlib = f"CXXSTDLIB_{ctx.target.env_suffix}"
    if cxxstdlib not in host_env:
        env[cxxstdlib] = "c++"  # zig ships libc++, not libstdc++
    env.update(ctx.env)
    return env


def build(ctx: BuildContext) -> BuildResult:
    """Build every cdylib of the crate; return the .so files cargo made and how."""
    version = zig_version()
    logger.step(
        f"building {', '.join(ctx.crate.packages)} with zig {version} for "
        f"glibc {ctx.glibc} ({ctx.target.rust}, {ctx.profile})"
    )
    host_env = dict(os.environ)
    root = None
    if ctx.system_packages:
        from ..debian import archive
        from ..sysroot import compiler_args, make_sysroot, pkg_config_env

        root = make_sysroot(
            ctx.system_suite or archive().default_suite, ctx.target, ctx.system_packages
        )
    wrappers = write_wrappers(ctx, tuple(compiler_args(root)) if root else ())
    ours = build_env(ctx, wrappers, host_env)
    toolchain_file = cmake.write_toolchain_file(ctx.target, wrappers, root.path if root else None)
    for name, value in cmake.cmake_env(
        ctx.target, toolchain_file, cmake.tool_binaries(), host_env
    ).items():
        ours.setdefault(name, value)
    if root is not None:
        ours.update(pkg_config_env(root))
    flags = cargo.hand_over_rustflags(
        ctx.crate.root.resolve(),
        ctx.target.rust,
        {**host_env, **ours},
        [*ctx.rustflags, *reproducible.remap_rustflags(ctx.path_remaps)],
    )
    ours.update(flags.env)
    subcommand, *args = cargo.build_args(
        ctx.crate.manifest, ctx.crate.packages, ctx.target.rust, ctx.profile, ctx.features
    )
    cmd = [cargo.cargo_binary(), subcommand, *flags.args, *args, *ctx.cargo_args]
    artifacts = cargo.run_build(cmd, env={**host_env, **ours}, cwd=ctx.crate.root)
    return BuildResult(
        artifacts=tuple(artifacts),
        rustflags=tuple(f for f in flags.flags if not f.startswith(REMAP_FLAG)),
        path_remaps=ctx.path_remaps,
        env=ours,
        toolchain=Toolchain(rustc=toolchain.version_verbose(ctx.crate.root), zig=version),
        system_packages=root.manifest_entry() if root else None,
    )
