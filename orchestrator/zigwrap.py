"""Linker and C-compiler wrapper around `zig cc`, the way cargo-zigbuild's src/zig.rs does it.

rustc and the cc crate call a compiler named by an environment variable with gcc-style
arguments; zig needs a few of them rewritten. The rewrites are data (`RULES`), with two
readers: this file, run once per link or C file on the host, and `sh_wrapper`, which writes
the same rules as a POSIX sh script for images that may have no Python 3 (the docker backend's
zig recipes). This file is standard-library only and started with `python -I -S` by the
scripts that `backends/zig.py` writes:

    zigwrap.py MODE ZIG_TARGET ZIG [ARGS...]     MODE is cc, c++, ar or ranlib

Links run from `/`: zig compiles its support code (libunwind, glibc's nonshared objects) on the
first link and records the working directory in their debug info, so linking from the crate's
folder would put that folder in the library. Relative paths are made absolute first, and a link
without `-o` (autoconf's first test: `cc conftest.c`) gets `-o $PWD/a.out`, so its default
output lands where the compiler was called from, never in `/`.

Build scripts and proc-macros run on the build machine, so they must link for it, not for the
target glibc (https://github.com/rust-lang/cargo/issues/9453: with host == target, cargo gives
both the target's `linker`). With `--target`, cargo puts host artifacts under
`target/<profile>/` and the target's under `target/<triple>/<profile>/`; the wrapper tells them
apart by the output path when the script sets ZIGWRAP_RUST_TARGET, and links host artifacts
with ZIGWRAP_HOST_CC / ZIGWRAP_HOST_CXX (the machine's `cc`, as cargo would without us), or
with zig for its default glibc when the machine has no compiler.
"""

from __future__ import annotations

import os
import sys

MODES = ("cc", "c++", "ar", "ranlib")


class Rule:
    """One argument rewrite. The first rule that matches an argument decides its fate.

    A plain class, not a dataclass or NamedTuple: this file runs on every compile and link,
    and importing `typing` or `dataclasses` would cost more than the rewriting itself."""

    __slots__ = ("why", "match", "text", "suffix", "becomes", "edits", "target")

    def __init__(
        self,
        why: str,
        match: str,
        text: str,
        *,
        suffix: str = "",
        becomes: str | None = None,
        edits: tuple[tuple[str, str], ...] = (),
        target: str = "",
    ) -> None:
        self.why = why
        self.match = match  # "equals" | "prefix" | "prefix+suffix"
        self.text = text  # the whole argument, or its beginning
        self.suffix = suffix  # prefix+suffix: how it ends, trailing "/" ignored
        self.becomes = becomes  # the new argument; None drops it...
        self.edits = edits  # ...unless these substring edits apply instead
        self.target = target  # only when the zig target starts with this


RULES: tuple[Rule, ...] = (
    Rule(
        "rustc passes it since 1.80; zig's lld driver rejects it",
        "equals",
        "-Wl,--no-undefined-version",
    ),
    Rule("rustc's self-contained rust-lld: zig links with its own lld", "equals", "-fuse-ld=lld"),
    Rule("zig gets its own -target", "prefix", "--target="),
    Rule(
        "rust-lld's folder (rustc's self-contained linker)", "prefix+suffix", "-B", suffix="gcc-ld"
    ),
    Rule("zig ships libunwind, not libgcc_s", "equals", "-lgcc_s", becomes="-lunwind"),
    Rule(
        "LLVM's names for aarch64 CPU features differ from gcc's",
        "prefix",
        "-march=",
        edits=(("armv8-a", "generic+v8a"), ("simd", "neon")),
        target="aarch64",
    ),
)
# Any of these makes a call a compile, not a link.
NOT_A_LINK = ("-c", "-E", "-S", "-M", "-MM")
LINK_CWD = "/"
DEFAULT_OUTPUT = "a.out"
# Set by the wrapper scripts: the Rust target triple, and the host's C and C++ compilers.
RUST_TARGET_VAR = "ZIGWRAP_RUST_TARGET"
HOST_COMPILER_VARS = {"cc": "ZIGWRAP_HOST_CC", "c++": "ZIGWRAP_HOST_CXX"}
# Arguments for every target compile and link, one a line (a target sysroot's -idirafter, -L).
TARGET_ARGS_VAR = "ZIGWRAP_TARGET_ARGS"


def matches(rule: Rule, arg: str, zig_target: str) -> bool:
    if not zig_target.startswith(rule.target):
        return False
    if rule.match == "equals":
        return arg == rule.text
    if rule.match == "prefix":
        return arg.startswith(rule.text)
    return arg.startswith(rule.text) and arg.rstrip("/").endswith(rule.suffix)


def apply(rule: Rule, arg: str) -> str | None:
    if rule.edits:
        for old, new in rule.edits:
            arg = arg.replace(old, new)
        return arg
    return rule.becomes


def rewrite(arg: str, zig_target: str) -> str | None:
    """One argument, rewritten for zig; None drops it."""
    for rule in RULES:
        if matches(rule, arg, zig_target):
            return apply(rule, arg)
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
    return "@" + os.path.abspath(path)


def is_link(args: list[str]) -> bool:
    return not set(NOT_A_LINK).intersection(args)


def names_output(args: list[str]) -> bool:
    """Whether the arguments choose the output (`-o FILE`, `-oFILE`) or may do so in an @file."""
    return any(arg.startswith(("-o", "@")) for arg in args)


def has_input(args: list[str]) -> bool:
    """Whether there is something to compile or link (`-` is standard input); `cc -v` or
    `cc -print-file-name=...` have none, and no output either."""
    return any(arg == "-" or not arg.startswith("-") for arg in args)


def default_output(args: list[str]) -> list[str]:
    """`-o a.out` for a link that names no output (made absolute before the link moves)."""
    if names_output(args) or not has_input(args):
        return []
    return ["-o", DEFAULT_OUTPUT]


def output_path(args: list[str]) -> str | None:
    """The `-o` of a link, looked for in rustc's @file too."""
    previous = ""
    for arg in args:
        if previous == "-o":
            return arg
        if arg.startswith("-o") and len(arg) > 2:
            return arg[2:]
        if arg.startswith("@") and os.path.isfile(arg[1:]):
            with open(arg[1:], encoding="utf-8") as handle:
                found = output_path(handle.read().split("\n"))
            if found is not None:
                return found
        previous = arg
    return None


def links_for_host(args: list[str], rust_target: str) -> bool:
    """A build script or proc-macro: its output is not under `target/<rust_target>/`."""
    out = output_path(args)
    if not rust_target or out is None:
        return False
    return f"/{rust_target}/" not in "/" + os.path.abspath(out) + "/"


def host_zig_target(zig_target: str) -> str:
    """A host artifact's zig target when the machine has no compiler: the same architecture
    with zig's default glibc (no version suffix), which an older machine than the target runs."""
    return zig_target.split(".", 1)[0]


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
    args = argv[4:]
    if mode in ("cc", "c++") and is_link(args):
        args = args + default_output(args)
        if links_for_host(args, os.environ.get(RUST_TARGET_VAR, "")):
            host_compiler = os.environ.get(HOST_COMPILER_VARS[mode], "")
            if host_compiler:  # as rustc called it: the machine's cc is rustc's default
                os.execv(host_compiler, [host_compiler, *args])
            zig_target = host_zig_target(zig_target)
    cmd = command(mode, zig_target, zig, args)
    if mode in ("cc", "c++"):
        cmd += [arg for arg in os.environ.get(TARGET_ARGS_VAR, "").split("\n") if arg]
    if mode in ("cc", "c++") and is_link(cmd):
        cmd = cmd[:4] + absolute(cmd[4:])  # zig's own words (mode, target) are not paths
        os.chdir(LINK_CWD)
    os.execv(cmd[0], cmd)


# --- The same rules as a POSIX sh script, for images without Python 3 --------------------


def _q(text: str) -> str:
    import shlex  # only when writing a script, not on every link

    return shlex.quote(text)


def _sh_rule(rule: Rule) -> list[str]:
    """`rule` as sh lines inside `rewrite()` ($1 the argument, $trimmed without trailing /)."""
    if rule.edits:
        lines = ["new=$1"]
        for old, new in rule.edits:  # Python's str.replace, left to right, in sh
            lines += [
                "rest=$new; new=",
                f'while :; do case "$rest" in *{_q(old)}*) '
                f"new=$new${{rest%%{_q(old)}*}}{_q(new)}; rest=${{rest#*{_q(old)}}} ;; "
                "*) new=$new$rest; break ;; esac; done",
            ]
        action = lines + ["return 0"]
    elif rule.becomes is None:
        action = ["return 1"]
    else:
        action = [f"new={_q(rule.becomes)}; return 0"]
    if rule.match == "equals":
        pattern = _q(rule.text)
    else:
        pattern = _q(rule.text) + "*"
    body = "; ".join(action)
    if rule.match == "prefix+suffix":
        body = f'case "$trimmed" in *{_q(rule.suffix)}) {body} ;; esac'
    line = f'case "$1" in {pattern}) {body} ;; esac'
    if rule.target:
        line = f'case "$target" in {_q(rule.target)}*) {line} ;; esac'
    return [f"  # {rule.why}", "  " + line]


def sh_wrapper(mode: str, zig: str, target: str) -> list[str]:
    """The lines of a POSIX sh wrapper doing what `main` does, rules from `RULES`.

    `target` is the zig target as sh text (it may expand a variable, e.g.
    `x86_64-linux-gnu.${ZIG_TARGET_GLIBC:-2.17}`); a `cc` wrapper becomes `c++` when it is
    called by a name ending in `++` (one script, two links).
    """
    if mode in ("ar", "ranlib"):
        return ["#!/bin/sh", f'exec {_q(zig)} {mode} "$@"']
    lines = [
        "#!/bin/sh",
        "# zig cc/c++ for rustc and the cc crate; generated from orchestrator/zigwrap.py's RULES.",
        'mode=cc; case "$0" in *++) mode=c++ ;; esac',
        f'target="{target}"',
        "rewrite() {  # $1 -> $new; status 1 drops the argument",
        "  trimmed=$1",
        '  while :; do case "$trimmed" in */) trimmed=${trimmed%/} ;; *) break ;; esac; done',
    ]
    for rule in RULES:
        lines += _sh_rule(rule)
    not_a_link = "|".join(_q(a) for a in NOT_A_LINK)
    lines += [
        "  new=$1",
        "}",
        "absolute() {  # $1 (the argument before) $2 -> $abs, as zigwrap.absolute does",
        "  abs=$2",
        '  case "$1" in -o|-L) case "$2" in \'\'|/*) ;; *) abs=$PWD/$2 ;; esac; return 0 ;; esac',
        '  case "$2" in',
        "    -L/*|-L) ;;",
        "    -L*) abs=-L$PWD/${2#-L} ;;",
        "    ''|-*|/*) ;;",
        '    *) if [ -e "$2" ]; then abs=$PWD/$2; fi ;;',
        "  esac",
        "}",
        "respond() {  # rustc's @file, one argument a line: rewritten in place",
        "  previous=",
        '  while IFS= read -r line || [ -n "$line" ]; do',
        '    if rewrite "$line"; then absolute "$previous" "$new"; '
        "printf '%s\\n' \"$abs\"; previous=$abs; fi",
        '  done < "$1" > "$1.zigwrap" && mv -f "$1.zigwrap" "$1"',
        "}",
        "link=yes; named=no; inputs=no",
        f'for arg do case "$arg" in {not_a_link}) link=no ;; esac',
        '  case "$arg" in -o*|@*) named=yes ;; -) inputs=yes ;; -*) ;; *) inputs=yes ;; esac',
        "done",
        "# a build script or proc-macro (output not under target/<triple>/) links for the",
        "# machine: zig's default glibc, as zigwrap.host_command does without a host compiler",
        f'if [ $link = yes ] && [ -n "${{{RUST_TARGET_VAR}:-}}" ]; then',
        "  out=; previous=",
        "  for arg do",
        '    case "$previous" in -o) out=$arg ;; esac',
        '    case "$arg" in',
        "      -o?*) out=${arg#-o} ;;",
        '      @*) if [ -f "${arg#@}" ]; then prev=; while IFS= read -r line || '
        '[ -n "$line" ]; do case "$prev" in -o) out=$line ;; esac; prev=$line; '
        'done < "${arg#@}"; fi ;;',
        "    esac",
        "    previous=$arg",
        "  done",
        f'  case "$out" in \'\') ;; */"${RUST_TARGET_VAR}"/*) ;; *) target=${{target%%.*}} ;; esac',
        "fi",
        "# a link naming no output writes a.out where it was called (zigwrap.default_output)",
        "if [ $link = yes ] && [ $named = no ] && [ $inputs = yes ]; then "
        f'set -- "$@" -o {_q(DEFAULT_OUTPUT)}; fi',
        "previous=",
        "for arg do",
        "  shift",
        '  case "$arg" in',
        '    @*) if [ -f "${arg#@}" ]; then respond "${arg#@}" || exit 1; '
        'absolute \'\' "${arg#@}"; set -- "$@" "@$abs"; previous=@$abs; continue; '
        "fi ;;",
        "  esac",
        '  rewrite "$arg" || continue',
        '  if [ $link = yes ]; then absolute "$previous" "$new"; new=$abs; fi',
        '  set -- "$@" "$new"; previous=$new',
        "done",
        "if [ $link = yes ]; then cd " + _q(LINK_CWD) + " || exit 1; fi",
        f'exec {_q(zig)} "$mode" -target "$target" "$@"',
    ]
    return lines


if __name__ == "__main__":
    main(sys.argv)
