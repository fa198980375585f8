#!/usr/bin/env python3
"""Generate orchestrator/resources/syscalls.json: system call -> first kernel, number per arch.

Sources (Debian packages; their versions are written into the JSON):
- man-pages' syscalls(2) table, "System call / Kernel / Notes" (manpages-dev:
  /usr/share/man/man2/syscalls.2.gz), and madvise(2)'s "MADV_X (since Linux A.B)" items;
- the kernel's UAPI headers (linux-libc-dev): asm/unistd_64.h for x86_64; for aarch64,
  asm-generic/unistd.h expanded by the C preprocessor with the defines of the kernel's
  arch/arm64/include/uapi/asm/unistd.h (64-bit, no compat); MADV_* values from
  asm-generic/mman-common.h (used by both architectures).

    python3 tools/gen_syscalls.py [--out FILE] [--check]

`--check` compares with the committed file instead of writing (exit 1 when it differs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "orchestrator" / "resources" / "syscalls.json"

MAN_SYSCALLS = Path("/usr/share/man/man2/syscalls.2.gz")
MAN_MADVISE = Path("/usr/share/man/man2/madvise.2.gz")
INCLUDE = Path("/usr/include")
X86_64_UNISTD = INCLUDE / "x86_64-linux-gnu" / "asm" / "unistd_64.h"
GENERIC_UNISTD = INCLUDE / "asm-generic" / "unistd.h"
MMAN_COMMON = INCLUDE / "asm-generic" / "mman-common.h"

# arch/arm64/include/uapi/asm/unistd.h (Linux 6.1) before it includes asm-generic/unistd.h.
ARM64_DEFINES = (
    "__BITS_PER_LONG 64",
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
)

_ROW = re.compile(r"^\\fB(?P<name>\w+)\\fP\(2\)\t(?P<kernel>[\d.; ]*)(?:\t(?P<notes>.*))?$")
_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)?\b")
_NR = re.compile(r"^#define __NR_(\w+)\s+(\w+)\s*$", re.M)
_ADVICE = re.compile(r'^\.BR? (MADV_\w+)(?: " \(since Linux (\d+\.\d+(?:\.\d+)?)\)")?$')
_MADV_VALUE = re.compile(r"^#define (MADV_\w+)\s+(\d+)", re.M)


# Macros of the headers that are not system calls.
_NOT_CALLS = {"syscalls", "arch_specific_syscall"}


class GenError(Exception):
    pass


def package_version(package: str) -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise GenError(f"package {package} is not installed (apt-get install {package})") from exc
    return out.stdout.strip()


def read_man(path: Path) -> list[str]:
    if not path.is_file():
        raise GenError(f"{path} is missing (apt-get install manpages-dev)")
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()


def _plain(text: str) -> str:
    """Troff markup out of a notes cell: `\\fBsocketcall\\fP(2)` -> `socketcall(2)`."""
    return re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").strip()


def _first_version(text: str) -> str:
    """The earliest kernel a cell names: `2.6; 2.4.18` (backported) -> 2.4.18; for an empty
    cell, the notes (pread64: 'Added as "pread" in 2.2; renamed "pread64" in 2.6') -> 2.2."""
    versions: list[str] = _VERSION.findall(text)
    if not versions:
        return ""
    return min(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


def syscalls_table(lines: list[str]) -> dict[str, dict[str, str]]:
    """Rows of the syscalls(2) table (tbl between .TS and .TE); T{ ... T} cells span lines."""
    rows: dict[str, dict[str, str]] = {}
    inside = False
    pending: str | None = None
    block: list[str] = []
    for line in lines:
        if line.startswith(".TS"):
            inside = True
            continue
        if line.startswith(".TE"):
            inside = False
            continue
        if not inside or line.startswith('.\\"'):
            continue
        if pending is not None:
            if line.startswith("T}"):
                rows[pending]["notes"] = _plain(" ".join(block))
                pending, block = None, []
            else:
                block.append(line)
            continue
        match = _ROW.match(line)
        if not match:
            continue
        name, kernel, notes = match["name"], match["kernel"], match["notes"] or ""
        rows.setdefault(name, {"kernel": kernel})
        if notes == "T{":
            pending, block = name, []
        elif notes:
            rows[name]["notes"] = _plain(notes)
    for row in rows.values():
        row["kernel"] = _first_version(row["kernel"] or row.get("notes", ""))
    if len(rows) < 300:
        raise GenError(f"only {len(rows)} rows read from syscalls(2): has its layout changed?")
    return rows


def _resolve_numbers(defines: dict[str, str]) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for name, value in defines.items():
        seen = 0
        while not value.isdigit() and seen < 5:  # __NR_fcntl -> __NR3264_fcntl -> 25
            value = defines.get(value.removeprefix("__NR_"), value)
            seen += 1
        if value.isdigit() and name not in _NOT_CALLS and not name.startswith("3264"):
            numbers[name] = int(value)
    return numbers


def x86_64_numbers() -> dict[str, int]:
    if not X86_64_UNISTD.is_file():
        raise GenError(f"{X86_64_UNISTD} is missing (apt-get install linux-libc-dev)")
    return _resolve_numbers(dict(_NR.findall(X86_64_UNISTD.read_text())))


def _cpp(source: str, include_dirs: list[str]) -> str:
    """The macros `source` defines, expanded by the C preprocessor (no system headers)."""
    command = ["cpp", "-dM", "-P", "-nostdinc"]
    for directory in include_dirs:
        command += ["-I", directory]
    try:
        return subprocess.run(
            [*command, "-"], input=source, check=True, capture_output=True, text=True
        ).stdout
    except OSError as exc:
        raise GenError("the C preprocessor `cpp` is missing (apt-get install cpp)") from exc
    except subprocess.CalledProcessError as exc:
        raise GenError(f"cpp failed on {GENERIC_UNISTD}: {exc.stderr.strip()}") from exc


def aarch64_numbers() -> dict[str, int]:
    if not GENERIC_UNISTD.is_file():
        raise GenError(f"{GENERIC_UNISTD} is missing (apt-get install linux-libc-dev)")
    source = "".join(f"#define {define}\n" for define in ARM64_DEFINES)
    source += "#include <asm-generic/unistd.h>\n"
    with tempfile.TemporaryDirectory() as arch_dir:
        # arm64's asm/bitsperlong.h: __BITS_PER_LONG 64 (above), then the generic header.
        (Path(arch_dir) / "asm").mkdir()
        (Path(arch_dir) / "asm" / "bitsperlong.h").write_text(
            "#include <asm-generic/bitsperlong.h>\n"
        )
        out = _cpp(source, [arch_dir, str(INCLUDE)])
    defines = {}
    for match in re.finditer(r"^#define __NR(3264)?_(\w+) (\w+)$", out, re.M):
        prefix = "3264" if match[1] else ""
        defines[prefix + match[2]] = match[3].replace("__NR3264_", "__NR_3264")
    return _resolve_numbers(defines)


def madvise_table(lines: list[str], madvise_kernel: str) -> dict[str, dict[str, object]]:
    """MADV_* items of madvise(2); those without "(since Linux ...)" came with madvise itself."""
    values = dict(_MADV_VALUE.findall(MMAN_COMMON.read_text()))
    table: dict[str, dict[str, object]] = {}
    previous = ""
    for line in lines:
        match = _ADVICE.match(line)
        if match and previous == ".TP" and match[1] not in table:
            entry: dict[str, object] = {"kernel": match[2] or madvise_kernel}
            if match[1] in values:
                entry["value"] = int(values[match[1]])
            table[match[1]] = entry
        previous = line
    if "MADV_FREE" not in table:
        raise GenError("MADV_FREE not found in madvise(2): has its layout changed?")
    return table


def generate() -> dict[str, object]:
    rows = syscalls_table(read_man(MAN_SYSCALLS))
    numbers = {"x86_64": x86_64_numbers(), "aarch64": aarch64_numbers()}
    names = sorted(set(rows) | set(numbers["x86_64"]) | set(numbers["aarch64"]))
    syscalls: dict[str, dict[str, object]] = {}
    for name in names:
        entry: dict[str, object] = {"kernel": rows.get(name, {}).get("kernel") or None}
        per_arch = {arch: table[name] for arch, table in numbers.items() if name in table}
        if per_arch:
            entry["numbers"] = per_arch
        if rows.get(name, {}).get("notes"):
            entry["notes"] = rows[name]["notes"]
        syscalls[name] = entry
    return {
        "_about": "Generated by tools/gen_syscalls.py; do not edit. kernel: the first mainline "
        "Linux with the call, from man-pages' syscalls(2) table (null: in the "
        "headers but not in that table). numbers: per architecture, from the "
        "kernel's UAPI headers. madvise: advice -> first kernel, from madvise(2).",
        "sources": {
            "syscalls(2)": f"man-pages {package_version('manpages-dev')} "
            "(Debian manpages-dev), https://man7.org/linux/man-pages/man2/"
            "syscalls.2.html",
            "madvise(2)": f"man-pages {package_version('manpages-dev')} "
            "(Debian manpages-dev), https://man7.org/linux/man-pages/man2/"
            "madvise.2.html",
            "x86_64": f"asm/unistd_64.h of linux-libc-dev {package_version('linux-libc-dev')}",
            "aarch64": f"asm-generic/unistd.h of linux-libc-dev "
            f"{package_version('linux-libc-dev')}, with the defines of "
            "arch/arm64/include/uapi/asm/unistd.h",
            "madvise values": f"asm-generic/mman-common.h of linux-libc-dev "
            f"{package_version('linux-libc-dev')}",
        },
        "architectures": sorted(numbers),
        "syscalls": syscalls,
        "madvise": madvise_table(read_man(MAN_MADVISE), rows["madvise"]["kernel"]),
    }


def render(data: dict[str, object]) -> str:
    return json.dumps(data, indent=1, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--check", action="store_true", help="compare with --out instead of writing it"
    )
    args = parser.parse_args(argv)
    try:
        text = render(generate())
    except GenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        if not same:
            print(
                f"error: {args.out} differs from what the installed packages give; run "
                "tools/gen_syscalls.py",
                file=sys.stderr,
            )
        return 0 if same else 1
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
