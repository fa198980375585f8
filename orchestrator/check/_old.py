"""`build.py check`: will these ELF files load with dlopen on glibc X.Y, and if not, why?

The policy lives here; ELF reading is elffile.py, glibc's symbol database is abilist.py (zig's
abilists), and the data the rules use (ceilings, markers, hints) is resources/policy.json.
What each rule catches and why it is a violation or only a warning is in
shared/notes/checks.md; in short, a *violation* makes the loader refuse the file (or makes it
crash) on some glibc >= the target, a *warning* is a risk that depends on the host or machine.

`check_paths` never raises for a bad input file: it goes into `Report.errors` (exit 2).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import abilist
from .elffile import (
    DF_1_NODELETE,
    DF_1_PIE,
    DF_STATIC_TLS,
    DF_TEXTREL,
    DT_ANDROID_RELR,
    DT_GNU_HASH,
    DT_HASH,
    DT_RELR,
    DT_TEXTREL,
    DT_X86_64_PLT,
    DT_X86_64_PLTENT,
    DT_X86_64_PLTSZ,
    ET_CORE,
    ET_DYN,
    ET_EXEC,
    ET_REL,
    PF_X,
    PT_GNU_STACK,
    PT_LOAD,
    PT_TLS,
    ElfError,
    ElfFile,
    open_elf,
)
from .errors import BadInput, UsageError
from .glibc import GlibcVersion
from .targets import TARGETS, Target, by_elf_machine

DEFAULT_POLICY = Path(__file__).resolve().parent / "resources" / "policy.json"

# Dynamic relocation types, per e_machine: initial-exec TLS (static TLS), TLS descriptors,
# and the PLT slot. ELF facts (psABI documents), not policy.
_TLS_IE = {"EM_X86_64": {18, 23}, "EM_386": {14, 37}, "EM_AARCH64": {1030}, "EM_ARM": {19},
           "EM_PPC64": {73}, "EM_RISCV": {10, 11}, "EM_S390": {56}}
# Only x86's TLS descriptors had the loader bugs (BZ #31372, #31501); on aarch64 they are the
# default TLS dialect and fine.
_TLSDESC = {"EM_X86_64": {36}, "EM_386": {41}}
_X86_64_JUMP_SLOT = 7
_BIG_ENDIAN_TARGETS = {"s390x-linux-gnu"}
# e_flags the target's ABI requires: (mask, value, what it means).
_EFLAGS = {"arm-linux-gnueabihf": (0x400, 0x400, "the hard-float ABI (EF_ARM_ABI_FLOAT_HARD)"),
           "riscv64-linux-gnu": (0x6, 0x4, "the lp64d double-float ABI")}
_VERSION_NODE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*?)_(\d+(?:\.\d+)*)$")
_LIST_LIMIT = 12  # names shown per line group in text before "+N more"
# zig target -> (symbol, version) -> libraries having that version node (None: not glibc's).
# Shared by all files of a run: most libraries import the same few hundred symbols.
_HAVING: dict[str, dict[tuple[str, str], tuple[str, ...] | None]] = {}


# -- results ---------------------------------------------------------------------------------
class Finding:
    """One violation or warning. `text` explains the group, `hint` is about this symbol."""

    __slots__ = ("kind", "symbol", "version", "library", "text", "hint")

    def __init__(self, kind: str, text: str, symbol: str | None = None,
                 version: str | None = None, library: str | None = None,
                 hint: str = "") -> None:
        self.kind, self.text, self.hint = kind, text, hint
        self.symbol, self.version, self.library = symbol, version, library

    @property
    def message(self) -> str:
        head = ""
        if self.symbol:
            head = f"{self.symbol}@{self.version}: " if self.version else f"{self.symbol}: "
        return head + self.text + (f" ({self.hint})" if self.hint else "")

    def to_json(self) -> dict:
        return {"kind": self.kind, "symbol": self.symbol, "version": self.version,
                "library": self.library, "message": self.message}

    def __repr__(self) -> str:
        return f"Finding({self.kind!r}, {self.message!r})"


@dataclass
class FileReport:
    path: str
    arch: str | None = None
    required: dict[str, str] = field(default_factory=dict)
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    min_glibc: str | None = None   # lowest glibc it loads on; None: no glibc version does
    needed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def kinds(self) -> set[str]:
        return {f.kind for f in self.violations}

    def to_json(self) -> dict:
        return {"path": self.path, "ok": self.ok, "arch": self.arch, "required": self.required,
                "violations": [f.to_json() for f in self.violations],
                "warnings": [f.to_json() for f in self.warnings],
                "min_glibc": self.min_glibc, "needed": self.needed,
                "unresolved": self.unresolved}


@dataclass
class InputError:
    path: str
    message: str

    def to_json(self) -> dict:
        return {"path": self.path, "message": self.message}


@dataclass
class Report:
    glibc: GlibcVersion
    files: list[FileReport] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(f.ok for f in self.files)

    @property
    def exit_code(self) -> int:
        """0 all within the target, 1 a violation, 2 an input that could not be analysed."""
        if self.errors:
            return 2
        return 0 if self.ok else 1

    def to_json(self) -> dict:
        return {"glibc": str(self.glibc), "ok": self.ok,
                "files": [f.to_json() for f in self.files],
                "errors": [e.to_json() for e in self.errors]}

    def to_junit(self) -> str:
        """JUnit XML, the report format CI systems (GitLab, Jenkins, Azure, GitHub actions)
        show natively: one test case per file, a failure per violating file, an error per
        input that could not be analysed, warnings as the case's output."""
        from xml.etree import ElementTree as ET

        suite_name = f"glibc {self.glibc} compatibility"
        failures = sum(not f.ok for f in self.files)
        counts = {"tests": str(len(self.files) + len(self.errors)), "failures": str(failures),
                  "errors": str(len(self.errors))}
        suites = ET.Element("testsuites", name="glibc-build check", **counts)
        suite = ET.SubElement(suites, "testsuite", name=suite_name, **counts)
        for report in self.files:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=report.path)
            lines: list[str] = []
            _render_file(report, self.glibc, lines)
            if not report.ok:
                failure = ET.SubElement(case, "failure", type="glibc-compatibility", message=(
                    f"{len(report.violations)} violation(s) for glibc {self.glibc}; lowest "
                    f"glibc it loads on: {report.min_glibc or 'none'}"))
                failure.text = "\n".join(lines)
            elif report.warnings:
                ET.SubElement(case, "system-out").text = "\n".join(lines)
        for err in self.errors:
            case = ET.SubElement(suite, "testcase", classname=suite_name, name=err.path)
            ET.SubElement(case, "error", type="unreadable", message=err.message)
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    def render_text(self, *, with_errors: bool = True) -> str:
        """The readable report; `with_errors=False` leaves the unreadable inputs out (the CLI
        prints those as `error:` lines on stderr)."""
        lines: list[str] = []
        for report in self.files:
            _render_file(report, self.glibc, lines)
        failing = sum(not f.ok for f in self.files)
        lines.append(f"checked {len(self.files)} file{'s' * (len(self.files) != 1)} against "
                     f"glibc {self.glibc}: {len(self.files) - failing} ok, {failing} failing"
                     + (f", {len(self.errors)} could not be analysed" if self.errors else ""))
        if with_errors:
            lines.extend(f"error: {err.path}: {err.message}" for err in self.errors)
        return "\n".join(lines)


def _render_file(report: FileReport, glibc: GlibcVersion, lines: list[str]) -> None:
    arch = f" ({report.arch})" if report.arch else ""
    if report.ok:
        need = report.required.get("GLIBC")
        lines.append(f"ok   {report.path}{arch}: loads on glibc {glibc}"
                     + (f" (needs {need})" if need else ""))
    else:
        count = len(report.violations)
        lines.append(f"FAIL {report.path}{arch}: {count} violation{'s' * (count != 1)} "
                     f"for glibc {glibc}")
    if report.required:
        lines.append("     needs: " + ", ".join(f"{ns} {v}" for ns, v in report.required.items()))
    if not report.ok:
        lowest = report.min_glibc or "none (see below)"
        lines.append(f"     lowest glibc it can load on: {lowest}")
    for title, findings in (("", report.violations), ("warning: ", report.warnings)):
        for (kind, version, library, text), group in _grouped(findings):
            where = " ".join(x for x in (version, f"from {library}" if library else "") if x)
            symbols = sorted(f.symbol for f in group if f.symbol)
            head = f"  {title}[{kind}]" + (f" {where}" if where else "")
            if symbols:
                head += f": {len(symbols)} symbol{'s' * (len(symbols) != 1)}"
                lines.append(head)
                lines.extend(_wrap(symbols, "       "))
            else:
                lines.append(head)
            lines.extend(_fill(text, "       "))
            for f in sorted(group, key=lambda f: f.symbol or ""):
                if f.hint:
                    lines.extend(_fill(f"{f.symbol}: {f.hint}", "       "))
    if report.unresolved:
        shown = ", ".join(report.unresolved[:_LIST_LIMIT])
        more = len(report.unresolved) - _LIST_LIMIT
        lines.append(f"  info: {len(report.unresolved)} undefined symbol"
                     f"{'s' * (len(report.unresolved) != 1)} glibc does not provide (a DT_NEEDED "
                     f"library or the host must): {shown}" + (f" (+{more} more)" if more > 0
                                                              else ""))


def _grouped(findings: list[Finding]) -> list[tuple[tuple, list[Finding]]]:
    """Findings of one kind, version, library and text together; kinds in order of first
    appearance, the highest version first within a kind."""
    groups: dict[tuple, list[Finding]] = {}
    kind_order: dict[str, int] = {}
    for f in findings:
        kind_order.setdefault(f.kind, len(kind_order))
        groups.setdefault((f.kind, f.version, f.library, f.text), []).append(f)

    def order(item: tuple[tuple, list[Finding]]) -> tuple:
        kind, version, _library, _text = item[0]
        numbers = _split_node(version)[1] if version else None
        return (kind_order[kind], tuple(-n for n in _key(numbers)) if numbers else ())

    return sorted(groups.items(), key=order)


def _fill(text: str, indent: str, width: int = 100) -> list[str]:
    """Greedy word wrap (textwrap is ~10x slower, and a report can have thousands of these)."""
    out, line = [], indent
    for word in text.split():
        if line != indent and len(line) + 1 + len(word) > width:
            out.append(line)
            line = indent + word
        else:
            line += word if line == indent else " " + word
    out.append(line)
    return out


def _wrap(words: list[str], indent: str, width: int = 100) -> list[str]:
    out, line = [], indent
    for word in words:
        piece = word if line == indent else ", " + word
        if len(line) + len(piece) > width and line != indent:
            out.append(line + ",")
            line = indent + word
        else:
            line += piece
    out.append(line)
    return out


# -- policy ----------------------------------------------------------------------------------
def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=8)
def load_policy(path: Path | None = None) -> dict:
    """policy.json, with `path` (a user's --policy FILE) merged over it."""
    policy = json.loads(DEFAULT_POLICY.read_text())
    if path is None:
        return policy
    try:
        override = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"--policy {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"--policy {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise BadInput(f"--policy {path}: not valid JSON ({exc})") from None
    if not isinstance(override, dict):
        raise BadInput(f"--policy {path}: must hold one JSON object (see "
                       f"{DEFAULT_POLICY} for the keys)")
    merged = _merge(policy, override)
    try:
        _validate_policy(merged)
    except UsageError as exc:
        raise BadInput(f"--policy {path}: {exc.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput(f"--policy {path}: a key has the wrong shape ({type(exc).__name__}: "
                       f"{exc}); compare with {DEFAULT_POLICY}") from None
    return merged


_DOTTED = re.compile(r"^\d+(\.\d+)*$")
_TYPE_NAMES = {dict: "a JSON object", list: "a JSON array", str: "a string", int: "an integer"}


def _typed(value: object, kind: type, where: str) -> Any:
    """`value` if it is a `kind` (bool is not an int here), else UsageError naming the key."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{where} must be {_TYPE_NAMES[kind]}, not {json.dumps(value)[:60]}; "
                         f"compare with {DEFAULT_POLICY}")
    return value


def _item(table: dict, key: str, kind: type, where: str) -> Any:
    """table[key], which must exist and be a `kind`."""
    if key not in table:
        raise UsageError(f"{where}.{key} is missing; compare with {DEFAULT_POLICY}")
    return _typed(table[key], kind, f"{where}.{key}")


def _strings(value: object, where: str) -> list[str]:
    for index, item in enumerate(_typed(value, list, where)):
        _typed(item, str, f"{where}[{index}]")
    return value  # type: ignore[return-value]


def _string_map(value: object, where: str) -> dict[str, str]:
    for key, item in _typed(value, dict, where).items():
        _typed(item, str, f"{where}.{key}")
    return value  # type: ignore[return-value]


def _glibc(table: dict, key: str, where: str) -> None:
    GlibcVersion.parse(_item(table, key, str, where), what=f"{where}.{key}")


def _validate_policy(policy: dict) -> None:
    """Check the type of every key the checker reads, so a bad override fails here with one
    line naming the key, before any file is read (the rules index into it unguarded)."""
    runtime = _item(policy, "cxx_runtime", dict, "policy")
    namespaces = _string_map(_item(runtime, "namespaces", dict, "cxx_runtime"),
                             "cxx_runtime.namespaces")
    for index, entry in enumerate(_item(runtime, "ceilings", list, "cxx_runtime")):
        where = f"cxx_runtime.ceilings[{index}]"
        _typed(entry, dict, where)
        _glibc(entry, "glibc", where)
        if "reference" in entry:
            _item(entry, "reference", str, where)
        per_arch = _item(entry, "arch", dict, where) if "arch" in entry else {}
        overrides = [(where, entry)] + [
            (f"{where}.arch.{arch}", _typed(values, dict, f"{where}.arch.{arch}"))
            for arch, values in per_arch.items()]
        for place, values in overrides:
            for ns in namespaces:
                if ns in values and not _DOTTED.match(_item(values, ns, str, place)):
                    raise UsageError(f"{place}.{ns} {values[ns]!r} is not a version such as "
                                     "3.4.19")
    for name, marker in _item(policy, "markers", dict, "policy").items():
        if name.startswith("_"):
            continue
        where = f"markers.{name}"
        _typed(marker, dict, where)
        _glibc(marker, "glibc", where)
        _item(marker, "why", str, where)
        _item(marker, "fix", str, where)
    loader = _item(policy, "loader", dict, "policy")
    for key in ("relr_glibc", "execstack_refused_from", "pie_dlopen_refused_from",
                "gnu_hash_from", "tlsdesc_fixed_in", "x86_64_plt_addend_ignored_from"):
        _glibc(loader, key, "loader")
    if _item(loader, "static_tls_surplus_bytes", int, "loader") < 0:
        raise UsageError("loader.static_tls_surplus_bytes must not be negative")
    for key in ("stack_not_executable_by_default", "page_size_64k_targets"):
        _strings(_item(loader, key, list, "loader"), f"loader.{key}")
    for key, value in _string_map(_item(loader, "abi_versions", dict, "loader"),
                                  "loader.abi_versions").items():
        if not key.startswith("_"):
            GlibcVersion.parse(value, what=f"loader.abi_versions.{key}")
    _string_map(_item(policy, "glibc_libraries", dict, "policy"), "glibc_libraries")
    _string_map(_item(policy, "loaders", dict, "policy"), "loaders")
    not_in_db = _item(policy, "glibc_libraries_not_in_database", dict, "policy")
    _strings(_item(not_in_db, "sonames", list, "glibc_libraries_not_in_database"),
             "glibc_libraries_not_in_database.sonames")
    needed = _item(policy, "needed", dict, "policy")
    _strings(_item(needed, "allowed", list, "needed"), "needed.allowed")
    _string_map(_item(needed, "forbidden", dict, "needed"), "needed.forbidden")
    _string_map(_item(policy, "symbol_hints", dict, "policy"), "symbol_hints")
    merged = _item(policy, "merged_into_libc", dict, "policy")
    _glibc(merged, "glibc", "merged_into_libc")
    _strings(_item(merged, "sonames", list, "merged_into_libc"), "merged_into_libc.sonames")


def read_host_symbols(path: Path) -> frozenset[str]:
    """One symbol per line; `#` starts a comment; blank lines are skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        raise BadInput(f"--host-symbols {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"--host-symbols {path}: cannot read it ({exc.strerror})") from None
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(name for name in names if name)


# -- finding the files -----------------------------------------------------------------------
def _collect(paths: Iterable[Path], errors: list[InputError]) -> list[tuple[str, Path]]:
    """(shown path, path) of every file to check: named files as given, folders searched."""
    out: list[tuple[str, Path]] = []
    for path in paths:
        shown = str(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            errors.append(InputError(shown, "no such file or directory"))
            continue
        except OSError as exc:
            errors.append(InputError(shown, f"cannot read it ({exc.strerror})"))
            continue
        if stat.S_ISDIR(st.st_mode):
            errors_before = len(errors)
            found = _search(path, errors)
            if not found and len(errors) == errors_before:
                errors.append(InputError(shown, "no ELF shared objects or executables in this "
                                                "folder"))
            out.extend((str(p), p) for p in found)
        elif stat.S_ISREG(st.st_mode):
            out.append((shown, path))
        else:
            errors.append(InputError(shown, "not a regular file or folder"))
    return out


def _search(folder: Path, errors: list[InputError]) -> list[Path]:
    """ELF files under `folder`, sorted; a file reached by several symlinks is listed once
    (by its real name when that is inside the folder).

    A subfolder or file that cannot be read goes into `errors`: a CI gate must not pass
    because a library it was pointed at was silently skipped. Dangling symlinks are skipped
    (a lib folder often has `libfoo.so` dev links to packages that are not installed).
    """
    problems: list[InputError] = []

    def unreadable(exc: OSError, fallback: Path, what: str) -> None:
        where = exc.filename if isinstance(exc.filename, str) else str(fallback)
        problems.append(InputError(where, f"cannot read {what} ({exc.strerror or exc})"))

    regular: list[Path] = []
    links: list[Path] = []
    for root, dirs, files in os.walk(folder,
                                     onerror=lambda exc: unreadable(exc, folder, "this folder")):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            (links if path.is_symlink() else regular).append(path)
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []
    for path in regular + links:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue   # a dangling symlink: nothing to check
        except OSError as exc:
            unreadable(exc, path, "it")
            continue
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode) or key in seen:
            continue
        seen.add(key)
        try:
            loadable = _is_loadable_elf(path)
        except OSError as exc:
            unreadable(exc, path, "it")
            continue
        if loadable:
            out.append(path)
    out.sort()
    errors.extend(sorted(problems, key=lambda err: err.path))
    return out


def _is_loadable_elf(path: Path) -> bool:
    """ELF executable or shared object (object files and core dumps in a folder are skipped;
    a malformed ELF file is kept so that it is reported). Raises OSError when unreadable."""
    with open(path, "rb") as handle:
        head = handle.read(20)
    if head[:4] != b"\x7fELF":
        return False
    if len(head) < 18 or head[5] not in (1, 2):
        return True
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return e_type not in (ET_REL, ET_CORE)


# -- the entry point -------------------------------------------------------------------------
def check_paths(paths: list[Path], glibc: GlibcVersion, target: Target | None = None,
                host_symbols: frozenset[str] = frozenset(),
                policy_path: Path | None = None) -> Report:
    """Check every ELF file named or found under `paths` against `glibc`.

    `target`: the expected architecture (None: each file's own). Raises only for bad options
    (UsageError/BadInput); a bad file goes into `Report.errors`.
    """
    policy = load_policy(policy_path)
    newest = abilist.newest_glibc()
    if glibc > newest or glibc < GlibcVersion(2, 0):
        raise UsageError(f"--glibc {glibc} is outside zig's glibc database (2.0 to {newest}); "
                         "pick a version in that range")
    report = Report(glibc)
    done: dict[tuple[int, int, int, int], FileReport] = {}   # hard links are checked once
    for shown, path in _collect(paths, report.errors):
        try:
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if identity in done:
                same = done[identity]
                report.files.append(dataclasses.replace(
                    same, path=shown, required=dict(same.required),
                    violations=list(same.violations), warnings=list(same.warnings),
                    unresolved=list(same.unresolved), needed=list(same.needed)))
                continue
            with open_elf(path) as elf:
                elf.require_intact()
                report.files.append(_FileCheck(elf, shown, glibc, target, host_symbols,
                                               policy).run())
            done[identity] = report.files[-1]
        except ElfError as exc:
            report.errors.append(InputError(shown, str(exc)))
        except _Unsupported as exc:
            report.errors.append(InputError(shown, str(exc)))
        except OSError as exc:
            report.errors.append(InputError(shown, f"cannot read it ({exc.strerror or exc})"))
        except ValueError as exc:   # mmap of an odd file; never a traceback for a bad input
            report.errors.append(InputError(shown, f"cannot read it ({exc})"))
    return report


class _Unsupported(Exception):
    """An ELF file for an architecture without a glibc target here: cannot be judged."""


# -- the rules -------------------------------------------------------------------------------
def _key(version: str) -> tuple[int, ...]:
    return abilist.version_key(version)


def _split_node(node: str) -> tuple[str, str | None]:
    """`GLIBCXX_3.4.30` -> ("GLIBCXX", "3.4.30"); `GLIBC_PRIVATE` -> ("GLIBC_PRIVATE", None)."""
    match = _VERSION_NODE.match(node)
    return (match.group(1), match.group(2)) if match else (node, None)


class _FileCheck:
    """All rules for one file; fills a FileReport."""

    def __init__(self, elf: ElfFile, shown: str, glibc: GlibcVersion, target: Target | None,
                 host_symbols: frozenset[str], policy: dict) -> None:
        self.elf, self.glibc, self.host, self.policy = elf, glibc, host_symbols, policy
        self.t = (glibc.major, glibc.minor)
        self.tstr = str(glibc)
        self.report = FileReport(shown)
        own = by_elf_machine(elf.machine)
        if own is not None and elf.machine == "EM_X86_64" and not elf.is64:
            own = None   # x32
        self.target = target or own
        if self.target is None:
            known = ", ".join(sorted({t.rust.split("-")[0] for t in TARGETS.values()}))
            raise _Unsupported(f"{elf.bits}-bit {elf.machine} file: not an architecture with a "
                               f"glibc target here ({known}); pass --target to check it against "
                               "one anyway")
        self.zig = self.target.zig
        self.report.arch = self.target.rust.split("-")[0]
        self.floor = "2.0"
        self.blocked = False           # something no glibc version can satisfy
        self.min_parts: list[str] = []

    # helpers
    def violation(self, kind: str, text: str, **kw: str | None) -> None:
        self.report.violations.append(Finding(kind, text, **kw))  # type: ignore[arg-type]

    def warning(self, kind: str, text: str, **kw: str | None) -> None:
        self.report.warnings.append(Finding(kind, text, **kw))  # type: ignore[arg-type]

    def needs(self, version: str) -> None:
        """The file cannot load below `version`."""
        self.min_parts.append(version)

    def above(self, version: str) -> bool:
        return _key(version) > self.t

    def rebuild_advice(self) -> str:
        return (f"rebuild with `build.py --glibc {self.tstr}` (zig links against glibc "
                f"{self.tstr} stubs) or inside a glibc-{self.tstr} image")

    def run(self) -> FileReport:
        elf, report = self.elf, self.report
        matches = self.check_identity()
        if not self.check_file_type():
            return self.finish()
        report.needed = elf.needed
        if matches:
            self.table = abilist.symbol_table(self.zig)
            self.floor = self.table.floor
            self.check_symbols_and_versions()
        else:
            self.check_versions_only()
        self.check_needed()
        self.check_loader_hazards()
        return self.finish()

    def finish(self) -> FileReport:
        if self.blocked:
            self.report.min_glibc = None
        else:
            self.report.min_glibc = max([self.floor, *self.min_parts], key=_key)
        return self.report

    # 1. identity -------------------------------------------------------------------------
    def check_identity(self) -> bool:
        """Class, byte order, machine, ABI flags, OSABI. False: wrong architecture."""
        elf, tgt = self.elf, self.target
        arch = self.report.arch
        if elf.machine != tgt.elf_machine:
            self.blocked = True
            self.violation("wrong-architecture",
                           f"the file is for {elf.machine}, not {tgt.elf_machine} ({tgt.rust}): "
                           f"the loader refuses it (\"wrong ELF class\" or \"invalid ELF "
                           f"header\"); build it with --target {tgt.rust}")
            return False
        ok = True
        if elf.bits != tgt.elf_class:
            self.blocked, ok = True, False
            self.violation("wrong-architecture",
                           f"the file is {elf.bits}-bit, {arch} needs {tgt.elf_class}-bit "
                           "(ELFCLASS); the loader refuses it (\"wrong ELF class\"); build it "
                           f"for {tgt.rust}")
        want_little = self.zig not in _BIG_ENDIAN_TARGETS
        if elf.little != want_little:
            self.blocked, ok = True, False
            self.violation("wrong-architecture",
                           f"the file is {'little' if elf.little else 'big'}-endian, {arch} is "
                           f"{'little' if want_little else 'big'}-endian; build it for "
                           f"{tgt.rust}")
        if self.zig in _EFLAGS:
            mask, value, what = _EFLAGS[self.zig]
            if elf.flags & mask != value:
                self.blocked = True
                self.violation("wrong-abi",
                               f"e_flags {elf.flags:#x} lack {what} that {tgt.rust} uses: the "
                               "loader refuses it; build it for that target")
        if elf.osabi not in (0, 3):
            self.blocked = True
            self.violation("wrong-osabi",
                           f"EI_OSABI is {elf.osabi}, glibc loads only SYSV (0) and GNU/Linux "
                           "(3) objects; the file was built for another OS")
        elif elf.abiversion:
            first = self.policy["loader"]["abi_versions"].get(str(elf.abiversion))
            if first is None:
                self.blocked = True
                self.violation("abi-version",
                               f"EI_ABIVERSION {elf.abiversion} is newer than any glibc ABI "
                               "this tool knows: the loader refuses it (\"ELF file ABI version "
                               "invalid\")")
            else:
                self.needs(first)
                if self.above(first):
                    self.violation("abi-version",
                                   f"EI_ABIVERSION {elf.abiversion} needs glibc {first} "
                                   f"(target {self.tstr}): older loaders refuse it (\"ELF file "
                                   "ABI version invalid\"); it comes from features such as "
                                   "absolute symbols (ABSOLUTE) in the link; "
                                   + self.rebuild_advice())
        return ok

    # 2. what kind of file ----------------------------------------------------------------
    def check_file_type(self) -> bool:
        """False when there is nothing dynamic to check (object file, static executable)."""
        elf = self.elf
        if elf.type == ET_REL:
            self.blocked = True
            self.violation("not-a-library",
                           "a relocatable object (.o), not a linked library: dlopen cannot "
                           "load it; link it into a shared library (crate-type = [\"cdylib\"])")
            return False
        if elf.type not in (ET_DYN, ET_EXEC):
            self.blocked = True
            self.violation("not-a-library",
                           f"ELF type {elf.type} (not a shared object): dlopen cannot load it")
            return False
        if elf.type == ET_EXEC:
            self.blocked = True
            self.violation("not-a-library",
                           "a position-dependent executable (ET_EXEC), not a shared library: "
                           "dlopen refuses it (\"cannot dynamically load executable\"); build a "
                           "cdylib (crate-type = [\"cdylib\"])")
        elif elf.dt_flags_1 & DF_1_PIE:
            first = self.policy["loader"]["pie_dlopen_refused_from"]
            self.blocked = True
            self.violation("pie-executable",
                           f"a PIE executable (DF_1_PIE), not a shared library: glibc >= {first} "
                           "refuses to dlopen it (\"cannot dynamically load position-independent "
                           "executable\", BZ #24323); build a cdylib (crate-type = [\"cdylib\"]), "
                           "not a bin")
        if not elf.has_dynamic:
            self.blocked = True
            self.violation("not-a-library",
                           "no dynamic section (PT_DYNAMIC): a static executable or a broken "
                           "link, dlopen cannot load it; build a cdylib")
            return False
        return True

    # 3. symbols and version needs --------------------------------------------------------
    def _glibc_sonames(self) -> dict[str, str]:
        libs = dict(self.policy["glibc_libraries"])
        libs.pop("_about", None)
        loader = self.policy["loaders"].get(self.zig)
        if loader:
            libs["ld"] = loader
        return libs

    def check_symbols_and_versions(self) -> None:
        elf, table, t = self.elf, self.table.symbols, self.t
        sonames = self._glibc_sonames()
        covered = set(sonames.values())
        needed = set(elf.needed)
        available = {"c", "ld"} | {lib for lib, so in sonames.items() if so in needed}
        host = self.host
        hints = self.policy["symbol_hints"]
        uses: dict[tuple[str | None, str], list[tuple[str, bool]]] = {}
        unresolved = self.report.unresolved
        judged_files = covered & needed   # others: need-without-needed, or not glibc's
        node_versions: dict[str, str | None] = {}   # node -> its version if <= target
        having_memo = _HAVING.setdefault(self.zig, {})
        for name, weak, node, vfile in elf.undefined_symbols:
            if node is not None:
                users = uses.get((vfile, node))
                if users is None:
                    uses[(vfile, node)] = [(name, weak)]
                else:
                    users.append((name, weak))
                if weak or vfile not in judged_files:
                    continue
                if node in node_versions:
                    version = node_versions[node]
                else:
                    version = node[6:] if node.startswith("GLIBC_") else ""
                    if not version[:1].isdigit() or _key(version) > t:
                        version = None   # judged per version need below
                    node_versions[node] = version
                if version is None:
                    continue
                memo_key = (name, version)
                if memo_key in having_memo:
                    having = having_memo[memo_key]
                else:
                    providers = table.get(name)
                    having = having_memo[memo_key] = None if providers is None else tuple(
                        lib for lib, versions in providers.items() if version in versions)
                if having is None:
                    unresolved.append(f"{name}@{node}")
                elif not having:
                    self.blocked = True
                    others = ", ".join(f"{name}@GLIBC_{v} ({sonames.get(lib, lib)})"
                                       for lib, vs in table[name].items() for v in vs)
                    self.violation("no-such-version",
                                   f"glibc never had this symbol version on {self.report.arch} "
                                   f"(it has {others}): the loader fails with \"undefined "
                                   "symbol\"; the file was edited (patchelf) or linked against "
                                   "wrong stubs; " + self.rebuild_advice(),
                                   symbol=name, version=node, library=vfile)
                elif not any(lib in available for lib in having):
                    lib = having[0]
                    self.missing_library(name, node, sonames.get(lib, lib), hints.get(name, ""))
                continue
            if weak or name in host:
                continue
            providers = table.get(name)
            if providers is None:
                unresolved.append(name)
                continue
            self.check_unversioned(name, providers, available, sonames, hints.get(name, ""))
        self.check_version_needs(uses, needed)

    def check_unversioned(self, name: str, providers: dict[str, list[str]],
                          available: set[str], sonames: dict[str, str], hint: str) -> None:
        """An unversioned reference binds to any version glibc has; does the target have one
        in a library the file loads?"""
        t = self.t
        first_available = None     # earliest version in a library the file loads
        missing_lib = None         # a library not loaded that has it at or below the target
        earliest = None
        for lib, versions in providers.items():
            first = versions[0]
            if earliest is None or _key(first) < _key(earliest[1]):
                earliest = (lib, first)
            if lib in available:
                if first_available is None or _key(first) < _key(first_available):
                    first_available = first
            elif _key(first) <= t and missing_lib is None:
                missing_lib = lib
        if first_available is not None:
            self.needs(first_available)
            if _key(first_available) <= t:
                return
        if missing_lib is not None:
            self.missing_library(name, None, sonames.get(missing_lib, missing_lib), hint)
            return
        assert earliest is not None
        lib, first = earliest
        self.needs(first)
        self.violation("symbol-too-new",
                       f"undefined and unversioned, but glibc only has it from {first} "
                       f"({sonames.get(lib, lib)}); target {self.tstr}: the loader fails with "
                       "\"undefined symbol\" on older glibc. The link did not bind a version "
                       "(stub or linker script); avoid the function or "
                       + self.rebuild_advice() + self.other_providers_note(sonames),
                       symbol=name, version=None, library=sonames.get(lib, lib), hint=hint)

    def other_providers_note(self, sonames: dict[str, str]) -> str:
        """An unversioned reference may also bind to a non-glibc library the file loads."""
        glibc = set(sonames.values()) | set(
            self.policy["glibc_libraries_not_in_database"]["sonames"])
        others = [n for n in self.elf.needed if n not in glibc]
        if not others:
            return ""
        return (f" (unless {', '.join(others[:3])}{' ...' if len(others) > 3 else ''} defines "
                "it: then name it in --host-symbols)")

    def missing_library(self, name: str, node: str | None, soname: str, hint: str) -> None:
        merged = self.policy["merged_into_libc"]
        moved = (f" (it moved into libc only in {merged['glibc']})"
                 if soname in merged["sonames"] else "")
        self.violation("missing-library",
                       f"on glibc {self.tstr} it lives in {soname}{moved}, which is not in "
                       f"DT_NEEDED: the load fails with \"undefined symbol\" unless the host "
                       f"program happens to load {soname}; link with -l{_short(soname)} "
                       f"(zig's glibc {self.tstr} stubs add it) or " + self.rebuild_advice(),
                       symbol=name, version=node, library=soname, hint=hint)

    def check_version_needs(self, uses: dict[tuple[str | None, str], list[tuple[str, bool]]],
                            needed: set[str]) -> None:
        """Every vernaux: the namespace ceilings, markers, GLIBC_PRIVATE, unused needs."""
        required: dict[str, str] = {}
        hints = self.policy["symbol_hints"]
        missing_files: list[str] = []
        for need in self.elf.version_needs:
            ns, version = _split_node(need.name)
            if version is not None and (ns not in required
                                        or _key(version) > _key(required[ns])):
                required[ns] = version
            users = uses.get((need.file, need.name), [])
            if need.file not in needed and need.file not in missing_files:
                missing_files.append(need.file)
            if ns == "GLIBC" and version is not None:
                self.glibc_need(need, version, users, hints)
            elif need.name == "GLIBC_PRIVATE":
                self.blocked = True
                text = ("a glibc-internal symbol: GLIBC_PRIVATE changes with every glibc build, "
                        "so the file loads only with the exact glibc it was linked against; do "
                        "not call glibc internals (rebuild without them)")
                for name, _weak in users or [(None, False)]:
                    self.violation("glibc-private", text, symbol=name, version=need.name,
                                   library=need.file)
            elif need.name.startswith("GLIBC_ABI_"):
                self.marker_need(need.name, need.file)
            elif ns == "GLIBC" or need.name.startswith("GLIBC_"):
                self.blocked = True
                self.violation("unknown-version",
                               f"{need.name} is no glibc version this tool knows: the loader "
                               f"fails with \"version `{need.name}' not found\"; "
                               + self.rebuild_advice(), version=need.name, library=need.file)
            elif version is not None and ns in self.cxx_ceilings:
                self.cxx_need(need.name, ns, version, need.file, users)
            elif not users:
                self.unused_need(need.name, need.file)
        # GLIBC first, then the other namespaces alphabetically.
        self.report.required = dict(sorted(required.items(),
                                           key=lambda item: (item[0] != "GLIBC", item[0])))
        for file in missing_files:
            self.blocked = True
            self.violation("version-need-without-needed",
                           f"the file has version needs on {file}, which is not in DT_NEEDED: "
                           "glibc's loader aborts with an assertion (\"needed != NULL\"); "
                           "patchelf --remove-needed/--replace-needed leaves this behind; put "
                           f"{file} back in DT_NEEDED or relink", library=file)

    def glibc_need(self, need, version: str, users: list[tuple[str, bool]],
                   hints: dict) -> None:
        hard_users = [n for n, weak in users if not weak]
        if not need.weak or hard_users:
            self.needs(version)
        if not self.above(version):
            if not users:
                self.unused_need(need.name, need.file)
            return
        text = (f"needs glibc {version}, target {self.tstr}: the file was built or linked "
                f"against a newer glibc, and older loaders fail with \"version `{need.name}' not "
                f"found\"; " + self.rebuild_advice())
        if not users:
            if need.weak:
                return self.unused_need(need.name, need.file)
            self.violation("version-too-new",
                           f"no symbol uses this version need, but the loader still requires "
                           f"it (glibc {version}, target {self.tstr}): it is typically left by "
                           "`patchelf --clear-symbol-version`; remove the need or "
                           + self.rebuild_advice(), version=need.name, library=need.file)
            return
        moved = self.moved_hints(version)
        for name, weak in users:
            if need.weak and weak:
                self.warning("weak-version-need",
                             f"weak version need (VER_FLG_WEAK) for a weak symbol: glibc "
                             f"< {version} loads the file and leaves the symbol NULL; make "
                             "sure the code checks it", symbol=name, version=need.name,
                             library=need.file)
            else:
                origin = moved(name)
                hint = hints.get(name, "")
                if weak:
                    hint = ("a weak reference, but its version need is not weak (no linker sets "
                            "VER_FLG_WEAK), so the loader still requires " + need.name
                            + (f"; {hint}" if hint else ""))
                self.violation("version-too-new", text + (
                    f"; these moved from {origin} into libc in {version}: a link against glibc "
                    f">= {version} binds the libc versions, zig's glibc {self.tstr} stubs bind "
                    f"{origin}" if origin else ""), symbol=name, version=need.name,
                    library=need.file, hint=hint)

    def moved_hints(self, version: str):
        """For symbols of the 2.34 merge: the library they lived in before (database)."""
        merged = self.policy["merged_into_libc"]
        table = getattr(self, "table", None)
        if table is None or version != merged["glibc"]:
            return lambda name: ""
        sonames = self._glibc_sonames()

        def origin(name: str) -> str:
            for lib in table.providers(name) or {}:
                soname = sonames.get(lib, lib)
                if soname in merged["sonames"]:
                    return soname
            return ""

        return origin

    def marker_need(self, node: str, file: str) -> None:
        marker = self.policy["markers"].get(node)
        if not isinstance(marker, dict):
            self.blocked = True
            self.violation("unknown-marker",
                           f"{node} is a glibc ABI marker this tool does not know: no glibc it "
                           "knows provides it, so loaders fail with \"version not found\"; "
                           "check the linker flags that added it", version=node, library=file)
            return
        first = marker["glibc"]
        self.needs(first)
        if self.above(first):
            self.violation("marker-too-new",
                           f"{marker['why']}: the marker exists only from glibc {first} "
                           f"(target {self.tstr}), older loaders fail with \"version `{node}' "
                           f"not found\"; {marker['fix']}", version=node, library=file)

    @functools.cached_property
    def cxx_ceilings(self) -> dict[str, tuple[str, str]]:
        """namespace -> (highest version allowed, reference distro) for the target glibc."""
        runtime = self.policy["cxx_runtime"]
        chosen = None
        for entry in sorted(runtime["ceilings"], key=lambda e: _key(e["glibc"])):
            if chosen is None or _key(entry["glibc"]) <= self.t:
                chosen = entry
        if chosen is None:
            return {}
        values = dict(chosen)
        values.update(chosen.get("arch", {}).get(self.zig, {}))
        return {ns: (values[ns], chosen.get("reference", f"glibc {chosen['glibc']}"))
                for ns in runtime["namespaces"] if ns in values}

    def cxx_need(self, node: str, ns: str, version: str, file: str,
                 users: list[tuple[str, bool]]) -> None:
        ceiling, reference = self.cxx_ceilings[ns]
        if _key(version) <= _key(ceiling):
            if not users:
                self.unused_need(node, file)
            return
        runtime = self.policy["cxx_runtime"]["namespaces"].get(ns, file)
        fix = ("link libgcc statically (-static-libgcc) or build with zig (compiler-rt)"
               if ns == "GCC" else
               "build the C++ code in a glibc-" + self.tstr + " image (its own libstdc++), "
               "link it with -static-libstdc++, or build with zig (static libc++)")
        text = (f"needs {runtime} {ns} {version}, but {reference}, the reference for glibc "
                f"{self.tstr}, has at most {ns}_{ceiling}: the loader fails with \"version "
                f"`{node}' not found\"; {fix}")
        for name, _weak in users or [(None, False)]:
            self.violation("cxx-too-new", text, symbol=name, version=node, library=file)

    def unused_need(self, node: str, file: str) -> None:
        self.warning("unused-version-need",
                     "no symbol uses this version need; it is harmless at this version but "
                     "still checked by the loader (left by patchelf --clear-symbol-version or "
                     "a version script)", version=node, library=file)

    def check_versions_only(self) -> None:
        """Wrong architecture: still report what the version needs say."""
        needed = set(self.elf.needed)
        uses: dict[tuple[str | None, str], list[tuple[str, bool]]] = {}
        for name, weak, node, vfile in self.elf.undefined_symbols:
            if node is not None:
                uses.setdefault((vfile, node), []).append((name, weak))
        self.check_version_needs(uses, needed)

    # 4. DT_NEEDED ------------------------------------------------------------------------
    def check_needed(self) -> None:
        rules = self.policy["needed"]
        allowed = set(rules["allowed"])
        forbidden = {k: v for k, v in rules["forbidden"].items() if not k.startswith("_")}
        not_in_db = set(self.policy["glibc_libraries_not_in_database"]["sonames"])
        for name in self.elf.needed:
            if "/" in name:
                self.violation("path-in-needed",
                               f"DT_NEEDED {name!r} contains a '/': the loader opens exactly "
                               "that path, which will not exist on other machines (old ld.bfd "
                               "writes it when a library without DT_SONAME is linked by path); "
                               "give the dependency a soname (-Wl,-soname,NAME) or link it with "
                               "-L DIR -lNAME", library=name)
                continue
            pattern = next((p for p in forbidden if fnmatch.fnmatchcase(name, p)), None)
            if pattern is not None:
                self.violation("forbidden-needed", f"needs {name}: {forbidden[pattern]}",
                               library=name)
            elif name not in allowed and name not in not_in_db:
                self.warning("needed-library",
                             f"needs {name}, which is not part of glibc or the C/C++ runtime: "
                             f"it must be installed on every target machine, in a build made "
                             f"for glibc <= {self.tstr}; link it statically if you can",
                             library=name)

    # 5. loader hazards -------------------------------------------------------------------
    def check_loader_hazards(self) -> None:
        self.check_stack()
        self.check_relocations()
        self.check_tls()
        self.check_segments()
        self.check_paths_and_unloading()

    def check_stack(self) -> None:
        loader = self.policy["loader"]
        refused = loader["execstack_refused_from"]
        stack = self.elf.segment(PT_GNU_STACK)
        fix = ("usually an assembly object without a .note.GNU-stack section: add "
               "`.section .note.GNU-stack,\"\",@progbits` to it, or link with -z noexecstack")
        if stack is None:
            if self.zig in loader["stack_not_executable_by_default"]:
                return
            self.violation("exec-stack",
                           f"no PT_GNU_STACK program header, so the loader assumes an executable "
                           f"stack on {self.report.arch}: glibc >= {refused} refuses to dlopen "
                           f"it (\"cannot enable executable stack\"), older glibc makes every "
                           f"thread stack executable; link with -z noexecstack")
        elif stack.flags & PF_X:
            self.violation("exec-stack",
                           f"PT_GNU_STACK asks for an executable stack: glibc >= {refused} "
                           "refuses to dlopen it (\"cannot enable executable stack\"), older "
                           f"glibc makes every thread stack executable; {fix}")

    def check_relocations(self) -> None:
        elf, loader = self.elf, self.policy["loader"]
        if elf.has_tag(DT_TEXTREL) or elf.dt_flags & DF_TEXTREL:
            self.violation("textrel",
                           "DT_TEXTREL: the loader must write into the code to relocate it; "
                           "SELinux (execmod) and hardened systems refuse that, and the pages "
                           "cannot be shared; some C or assembly object was built without "
                           "-fPIC: rebuild it with -fPIC and link with -z text to find it")
        if elf.has_tag(DT_RELR) or elf.has_tag(DT_ANDROID_RELR):
            first = loader["relr_glibc"]
            marker = any(n.name == "GLIBC_ABI_DT_RELR" for n in elf.version_needs)
            self.needs(first)
            if self.above(first):
                self.violation("relr",
                               f"DT_RELR packed relocations need glibc {first} (target "
                               f"{self.tstr}): older glibc ignores them silently and the "
                               "library crashes on first use"
                               + ("" if marker else "; there is no GLIBC_ABI_DT_RELR need "
                                  f"either, so glibc >= {first} refuses it too")
                               + "; link without -z pack-relative-relocs")
            elif not marker:
                self.violation("relr",
                               "DT_RELR without a GLIBC_ABI_DT_RELR version need: glibc >= "
                               f"{first} refuses it (\"DT_RELR without GLIBC_ABI_DT_RELR "
                               "dependency\"); old lld `--pack-dyn-relocs=relr` does this; link "
                               "with -z pack-relative-relocs (GNU ld >= 2.38, lld >= 15) or "
                               "without packed relocations")
        if elf.has_tag(DT_GNU_HASH) and not elf.has_tag(DT_HASH):
            first = loader["gnu_hash_from"]
            self.needs(first)
            if self.above(first):
                self.violation("gnu-hash-only",
                               f"only DT_GNU_HASH, which glibc < {first} cannot read; link with "
                               "--hash-style=both")
        if elf.machine == "EM_X86_64":
            first = loader["x86_64_plt_addend_ignored_from"]
            marked = (elf.has_tag(DT_X86_64_PLT) or elf.has_tag(DT_X86_64_PLTSZ)
                      or elf.has_tag(DT_X86_64_PLTENT))
            if self.above(first) and (marked or elf.plt_addends_nonzero(_X86_64_JUMP_SLOT)):
                self.needs(first)
                self.violation("mark-plt",
                               f"x86-64 PLT marking (-z mark-plt: DT_X86_64_PLT or JUMP_SLOT "
                               f"addends): glibc < {first} adds the addend and jumps to a wrong "
                               "address; link without -z mark-plt")

    def check_tls(self) -> None:
        elf, loader = self.elf, self.policy["loader"]
        ie_types = frozenset(_TLS_IE.get(elf.machine, ()))
        tlsdesc = frozenset(_TLSDESC.get(elf.machine, ()))
        types = elf.relocation_types_among(ie_types | tlsdesc) if elf.uses_tls else frozenset()
        uses_ie = bool(types & ie_types)
        if uses_ie or elf.dt_flags & DF_STATIC_TLS:
            tls = elf.segment(PT_TLS)
            size = tls.memsz if tls else 0
            names = sorted({(elf.symbol_name(sym) if sym else "") or "(its own TLS block)"
                            for _t, sym in elf.relocations_of(ie_types)} if uses_ie else set())
            surplus = loader["static_tls_surplus_bytes"]
            what = ("uses the initial-exec TLS model ("
                    + (", ".join(names[:_LIST_LIMIT]) if names else "DF_STATIC_TLS")
                    + f"; {size} bytes of its own TLS): a library loaded with dlopen must then "
                    f"fit into glibc's static TLS surplus (about {surplus} bytes shared by all "
                    "such libraries, tunable glibc.rtld.optional_static_tls), else dlopen fails "
                    "with \"cannot allocate memory in static TLS block\"; compile with "
                    "-ftls-model=global-dynamic (jemalloc/mimalloc: disable_initial_exec_tls)")
            if size > surplus:
                self.violation("static-tls", what)
            else:
                self.warning("static-tls", what)
        fixed = loader["tlsdesc_fixed_in"]
        if types & tlsdesc and self.above(fixed):
            self.warning("tlsdesc",
                         f"uses TLS descriptors (-mtls-dialect=gnu2); glibc before {fixed} has "
                         "known bugs in them (BZ #31372, #31501); compile C code with "
                         "-mtls-dialect=gnu if you see TLS crashes")

    def check_segments(self) -> None:
        elf, loader = self.elf, self.policy["loader"]
        if self.zig in loader["page_size_64k_targets"]:
            page = 0x10000
            for seg in elf.segments:
                if seg.type != PT_LOAD:
                    continue
                if (seg.vaddr - seg.offset) % page or seg.align % page:
                    self.violation("page-alignment",
                                   f"PT_LOAD at {seg.vaddr:#x} (offset {seg.offset:#x}, align "
                                   f"{seg.align:#x}) is not 64 KiB-aligned: kernels with 64K "
                                   f"pages (RHEL/CentOS {self.report.arch}) refuse it (\"ELF load "
                                   "command address/offset not page-aligned\"); link with "
                                   "-z max-page-size=65536")
                    break
        if elf.machine == "EM_X86_64":
            isa = elf.x86_isa_needed
            if isa and isa & ~1:
                level = isa.bit_length()   # 2 -> v2, 4 -> v3, 8 -> v4
                self.warning("x86-isa-level",
                             f"marked as needing x86-64-v{level} "
                             "(GNU_PROPERTY_X86_ISA_1_NEEDED): glibc >= 2.33 refuses to load it "
                             "on older CPUs (\"CPU ISA level is lower than required\"); build "
                             "for the default x86-64 level unless every target CPU has it")

    def check_paths_and_unloading(self) -> None:
        elf = self.elf
        for tag, value in (("RUNPATH", elf.runpath), ("RPATH", elf.rpath)):
            if value is None:
                continue
            for entry in value.split(":"):
                if entry.startswith(("$ORIGIN", "${ORIGIN}")):
                    continue
                shown = entry or "(empty: the current directory)"
                self.warning("search-path",
                             f"DT_{tag} entry {shown!r} is not relative to $ORIGIN: every "
                             "target machine will search that folder for dependencies (it may "
                             "not exist, or someone else may control it); use $ORIGIN-relative "
                             "paths or none (patchelf --remove-rpath)", library=entry)
        if elf.dt_flags_1 & DF_1_NODELETE:
            self.warning("nodelete",
                         "DF_1_NODELETE: dlclose never unloads the library (plugin reloading "
                         "will not work); it comes from -z nodelete or a polyfill")
        if elf.has_gnu_unique:
            self.warning("gnu-unique",
                         "STB_GNU_UNIQUE symbols: glibc never unloads the library; they come "
                         "from C++ inline/template statics, compile with -fno-gnu-unique to "
                         "avoid them")


def _short(soname: str) -> str:
    """libpthread.so.0 -> pthread (for an -l flag)."""
    base = soname.split(".so", 1)[0]
    return base[3:] if base.startswith("lib") else base
