"""Zig backend: cargo on the host, linked (and C parts compiled) by `zig cc` for an old glibc.

zig links against stub libraries generated for the exact glibc version asked for
(`-target x86_64-linux-gnu.2.17`), so the output can only bind symbol versions that existed
then. No Docker, no sysroot.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from pathlib import Path

from .. import cargo, logger
from ..cache import cache_dir
from ..files import write_atomically
from ..zig import zig_binary, zig_version
from . import BuildContext

ZIGWRAP = Path(__file__).resolve().parent.parent / "zigwrap.py"


def zig_target(ctx: BuildContext) -> str:
    return f"{ctx.target.zig}.{ctx.glibc}"


def write_wrappers(ctx: BuildContext) -> dict[str, Path]:
    """Write `cc`, `c++`, `ar` and `ranlib` scripts that run zigwrap.py; return their paths.

    Their folder is named by a hash of their content, so the paths stay the same from one run
    to the next: cargo and the cc crate rebuild everything when the linker or CC path changes.
    """
    zig = str(zig_binary())
    scripts = {
        mode: "#!/bin/sh\nexec " + shlex.join([sys.executable, "-I", "-S", str(ZIGWRAP), mode,
                                               zig_target(ctx), zig]) + ' "$@"\n'
        for mode in ("cc", "c++", "ar", "ranlib")
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


def build_env(ctx: BuildContext, wrappers: dict[str, Path]) -> dict[str, str]:
    """The environment for cargo: zig as linker and as the cc crate's CC/CXX/AR for the target."""
    env = dict(os.environ)
    triple = ctx.target.env_suffix
    env[f"CARGO_TARGET_{triple.upper()}_LINKER"] = str(wrappers["cc"])
    env[f"CC_{triple}"] = str(wrappers["cc"])
    env[f"CXX_{triple}"] = str(wrappers["c++"])
    env[f"AR_{triple}"] = str(wrappers["ar"])
    env[f"RANLIB_{triple}"] = str(wrappers["ranlib"])
    env.setdefault(f"CXXSTDLIB_{triple}", "c++")  # zig ships libc++, not libstdc++
    env.update(ctx.env)
    return env


def build(ctx: BuildContext) -> list[Path]:
    """Build every cdylib of the crate; return the .so files cargo made."""
    logger.step(f"building {', '.join(ctx.crate.packages)} with zig {zig_version()} for "
                f"glibc {ctx.glibc} ({ctx.target.rust}, {ctx.profile})")
    env = build_env(ctx, write_wrappers(ctx))
    flag_env, flag_args = cargo.hand_over_rustflags(ctx.crate.root.resolve(), ctx.target.rust,
                                                    env, ctx.rustflags)
    env.update(flag_env)
    subcommand, *args = cargo.build_args(ctx.crate, ctx.target.rust, ctx.profile, ctx.features)
    cmd = [cargo.cargo_binary(), subcommand, *flag_args, *args]
    return cargo.run_build(cmd, env=env, cwd=ctx.crate.root)
