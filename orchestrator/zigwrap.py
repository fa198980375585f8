"""Linker and C-compiler wrapper around `zig cc`, the way cargo-zigbuild's src/zig.rs does it.

rustc and the cc crate call a compiler named by an environment variable with gcc-style
arguments; zig needs a few of them rewritten. This file runs once per link or C file, so it is
standard-library only and started with `python -I -S` by the scripts that `backends/zig.py`
writes:

    zigwrap.py MODE ZIG_TARGET ZIG [ARGS...]     MODE is cc, c++, ar or ranlib

Links run from `/`: zig compiles its support code (libunwind, glibc's nonshared objects) on the
first link and records the working directory in their debug info, so linking from the crate's
folder would put that folder in the library. Relative paths are made absolute first.
"""

from __future__ import annotations

import os
import sys

# Arguments zig does not understand, dropped outright.
_DROP = {
    "-Wl,--no-undefined-version",  # rustc passes it since 1.80; zig's lld driver rejects it
    "-fuse-ld=lld",                # rustc's self-contained rust-lld: zig links with its own lld
}
# Any of these makes a call a compile, not a link.
_NOT_A_LINK = {"-c", "-E", "-S", "-M", "-MM"}
LINK_CWD = "/"


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


def absolute(args: list[str]) -> list[str]:
    """Relative paths among link arguments made absolute, so the link can run elsewhere."""
    out, previous = [], ""
    for arg in args:
        if previous in ("-o", "-L") and arg and not os.path.isabs(arg):
            arg = os.path.abspath(arg)
        elif arg.startswith("-L") and len(arg) > 2 and not os.path.isabs(arg[2:]):
            arg = "-L" + os.path.abspath(arg[2:])
        elif arg and not arg.startswith("-") and not os.path.isabs(arg) and os.path.exists(arg):
            arg = os.path.abspath(arg)
        out.append(arg)
        previous = arg
    return out


def _rewrite_response_file(arg: str, zig_target: str) -> str:
    """rustc passes long argument lists in an @file, one argument a line: rewrite it in place."""
    path = arg[1:]
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    kept = [new for line in lines if (new := rewrite(line, zig_target)) is not None]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(absolute(kept)))
    return os.path.abspath(path)


def is_link(args: list[str]) -> bool:
    return not _NOT_A_LINK.intersection(args)


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
    if mode in ("cc", "c++") and is_link(cmd):
        cmd = absolute(cmd)
        os.chdir(LINK_CWD)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
