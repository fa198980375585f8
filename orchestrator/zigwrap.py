"""Linker and C-compiler wrapper around `zig cc`, the way cargo-zigbuild's src/zig.rs does it.

rustc and the cc crate call a compiler named by an environment variable with gcc-style
arguments; zig needs a few of them rewritten. This file runs once per link or C file, so it is
standard-library only and started with `python -I -S` by the scripts that `backends/zig.py`
writes:

    zigwrap.py MODE ZIG_TARGET ZIG [ARGS...]     MODE is cc, c++, ar or ranlib
"""

from __future__ import annotations

import os
import sys

# Arguments zig does not understand, dropped outright.
_DROP = {
    "-Wl,--no-undefined-version",  # rustc passes it since 1.80; zig's lld driver rejects it
    "-fuse-ld=lld",                # rustc's self-contained rust-lld: zig links with its own lld
}


def rewrite(arg: str, zig_target: str) -> str | None:
    """One argument, rewritten for zig; None drops it."""
    if arg in _DROP or arg.startswith("--target="):  # zig gets its own -target
        return None
    if arg.startswith("-B") and arg.rstrip("/").endswith("gcc-ld"):  # rust-lld's folder
        return None
    if arg == "-lgcc_s":
        return "-lunwind"  # zig ships libunwind, not libgcc_s
    if arg.startswith("-march=") and zig_target.startswith("aarch64"):
        return arg.replace("armv8-a", "generic+v8a").replace("simd", "neon")
    return arg


def _rewrite_response_file(arg: str, zig_target: str) -> str:
    """rustc passes long argument lists in an @file, one argument a line: rewrite it in place."""
    path = arg[1:]
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    kept = [new for line in lines if (new := rewrite(line, zig_target)) is not None]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept))
    return arg


def command(mode: str, zig_target: str, zig: str, args: list[str]) -> list[str]:
    """The zig command line for one wrapper call."""
    if mode in ("ar", "ranlib"):
        return [zig, mode, *args]
    out = [zig, mode, "-target", zig_target]
    for arg in args:
        if arg.startswith("@") and os.path.isfile(arg[1:]):
            out.append(_rewrite_response_file(arg, zig_target))
        elif (new := rewrite(arg, zig_target)) is not None:
            out.append(new)
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 4:
        sys.stderr.write("usage: zigwrap.py MODE ZIG_TARGET ZIG [ARGS...]\n")
        raise SystemExit(2)
    mode, zig_target, zig = argv[1:4]
    cmd = command(mode, zig_target, zig, argv[4:])
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
