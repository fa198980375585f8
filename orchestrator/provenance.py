"""Which crate brought each finding, and what each crate costs in glibc.

The check sees one linked library; the build saw every package that went into it. cargo's JSON
messages (https://doc.rust-lang.org/cargo/reference/external-tools.html#json-messages) say
which rlib and which build-script OUT_DIR belong to which package; the archives' own ELF
objects say which undefined symbols, TLS relocations and stack notes each brought. From those
this module builds an index (`ProvenanceIndex`), ties the checker's findings to crates
(`annotate`), and computes the lowest glibc the file would need without each crate
(`crate_costs`, a pure function).

Objects are read with struct over memory (like elffile.py: pyelftools is ~10x slower on the
tens of thousands of symbols of an rlib); ar archives with arpy. Work is bounded per archive
and per object. An object counts only when it defines a symbol the library's own .symtab
still has: `--gc-sections` drops the rest, and stale rlibs of earlier builds never match.
Where no object can tell (rlibs of LLVM bitcode under LTO, objects without a symbol table),
the answer is "provenance unavailable" and why, never a guess.

Wiring (the check and the build call these; nothing here changes how they run):
    for_crate_dir(report, crate_dir, remedy_for)   `check --crate-dir`: the crate's last build
    MessageLog().feed(line) ; for_build(report, log.units, crate_dir, triple, remedy_for)
    report_json(annotated, extra) / report_text(annotated, extra)  `crates` in JSON, text lines
    crate_costs(needs, crates_of, floor, target)  the pure cost function
`remedy_for(crate_name) -> str | None` is the known-crates table's lookup (known_crates.py).
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import re
import struct
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from .abilist import SymbolTable
from .check.report import CrateRef, FileReport, Finding, Report
from .glibc import OLDEST_GLIBC, GlibcVersion, split_version_node

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

STD = "Rust std"  # the name the standard library's objects go by
STD_NOTE = "fixed by building with this tool (build.py --glibc X.Y), not by your code"
UNAVAILABLE = "provenance unavailable"
# Bounds: more members, or a bigger object, than any real rlib has is not worth the time.
MAX_MEMBERS = 1 << 16
MAX_OBJECT_BYTES = 1 << 30
MAX_SYMBOLS = 1 << 22
ONE_RUN_SECONDS = 600  # rlibs of one crate name this close in time come from one cargo run

# ELF constants (the System V gABI, https://www.sco.com/developers/gabi/latest/ch4.intro.html).
SHT_SYMTAB, SHT_RELA, SHT_REL = 2, 4, 9
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_SECTION, STT_FILE = 3, 4
EM_X86_64, EM_AARCH64 = 62, 183
# Object-file (static) relocations that make code initial-exec or local-exec TLS, per the
# psABIs: x86-64 (https://gitlab.com/x86-psABIs/x86-64-ABI) R_X86_64_GOTTPOFF, TPOFF32;
# aarch64 (https://github.com/ARM-software/abi-aa, aaelf64) TLSIE_* and TLSLE_*.
STATIC_TLS_RELOCS = {
    EM_X86_64: frozenset({22, 23}),
    EM_AARCH64: frozenset(
        {539, 540, 541, 542, 543, 544, 545, 546, 547, 548, 549, 550, 551, 552, 553, 554}
    ),
}
# Absolute relocations in code: in a shared library they become text relocations (x86-64:
# R_X86_64_64, R_X86_64_32, R_X86_64_32S).
TEXTREL_RELOCS = {EM_X86_64: frozenset({1, 10, 11})}
BITCODE_ONLY = (
    "rlib of LLVM bitcode only (LTO: -C linker-plugin-lto): what it references is "
    "known only to the linker; build without LTO for provenance"
)
BITCODE_MAGICS = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")  # raw LLVM bitcode, bitcode wrapper


# -- data --------------------------------------------------------------------------------------
class Origin(NamedTuple):
    """One object of one crate: `object` is the ar member (a Rust codegen unit, a C object)."""

    crate: str
    version: str
    object: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.crate, "version": self.version, "object": self.object}


@dataclass(frozen=True)
class Unit:
    """An archive or object file that cargo built for one package (or the Rust std)."""

    crate: str
    version: str
    path: Path


@dataclass(frozen=True)
class Unavailable:
    """A crate (or a whole build) whose objects cannot say what they bring, and why."""

    crate: str
    version: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.crate, "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class ObjectFacts:
    """What one relocatable object brings to a link."""

    undefined: frozenset[str]  # strong references
    defined: frozenset[str]
    weak: frozenset[str] = frozenset()  # weak references (resolved at run time, if at all)
    static_tls: bool = False
    exec_stack: str | None = None  # why the object asks for an executable stack
    text_relocations: bool = False


# Findings about the whole file that objects can explain (the rules' kinds, check/rules/loader.py).
FLAG_KINDS = frozenset({"static-tls", "exec-stack", "textrel"})


@dataclass(frozen=True)
class ProvenanceIndex:
    """symbol -> the objects that reference it; objects with static TLS, an executable stack or
    text relocations; crates whose objects could not tell."""

    symbols: Mapping[str, tuple[Origin, ...]] = field(default_factory=dict)
    weak_symbols: Mapping[str, tuple[Origin, ...]] = field(default_factory=dict)
    static_tls: tuple[Origin, ...] = ()
    exec_stack: tuple[Origin, ...] = ()
    text_relocations: tuple[Origin, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    note: str | None = None  # a caveat on the whole index (a stripped library)
    weak_in_library: frozenset[str] = frozenset()  # the library's weak undefined symbols

    def origins_of(self, symbol: str) -> tuple[Origin, ...]:
        """The objects with a strong reference to `symbol`; the weak ones only when the
        library's own reference is weak (one strong reference makes the link's strong: then
        an object that cannot be read, LTO bitcode, holds it, not a weak referrer)."""
        strong = self.symbols.get(symbol, ())
        if strong or symbol not in self.weak_in_library:
            return strong
        return self.weak_symbols.get(symbol, ())

    def origins_for(self, kind: str, symbol: str | None) -> tuple[Origin, ...]:
        """The objects behind one finding (by its kind and symbol)."""
        if symbol:
            return self.origins_of(symbol)
        return {
            "static-tls": self.static_tls,
            "exec-stack": self.exec_stack,
            "textrel": self.text_relocations,
        }.get(kind, ())

    def why_unavailable(self, kind: str, symbol: str | None) -> str | None:
        """For a finding the index ties to no object: why (None when it is not one the
        objects could have told)."""
        if kind not in FLAG_KINDS and not symbol:
            return None
        if self.origins_for(kind, symbol):
            return None
        if self.unavailable:
            by_reason: dict[str, list[str]] = {}
            for item in self.unavailable:
                by_reason.setdefault(item.reason, []).append(item.crate)
            return f"{UNAVAILABLE}: " + "; ".join(
                f"{', '.join(crates[:6])}{' ...' if len(crates) > 6 else ''}: {reason}"
                for reason, crates in by_reason.items()
            )
        what = symbol or kind
        return (
            f"{UNAVAILABLE}: no object of the build that was linked in references {what} "
            "(the linker or a library added it)"
        )


# -- ELF relocatable objects -------------------------------------------------------------------
class ObjectError(Exception):
    """An archive member that is not a readable ELF object; the message says why."""


def _layout(data: memoryview) -> tuple[str, bool]:
    if len(data) < 64 or bytes(data[:4]) != b"\x7fELF":
        raise ObjectError("not an ELF object")
    if data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ObjectError("unknown ELF class or byte order")
    return ("<" if data[5] == 1 else ">"), data[4] == 2


def read_object(data: memoryview) -> tuple[int, ObjectFacts]:
    """(e_machine, facts) of one ELF file held in memory; raises ObjectError. Section headers
    and the symbol table are bounded by the data's size."""
    e, is64 = _layout(data)
    size = len(data)
    if is64:
        ehdr, shdr = struct.Struct(e + "HHIQQQIHHHHHH"), struct.Struct(e + "IIQQQQIIQQ")
        sym, rela, rel = (
            struct.Struct(e + "IBBHQQ"),
            struct.Struct(e + "QQq"),
            struct.Struct(e + "QQ"),
        )
    else:
        ehdr, shdr = struct.Struct(e + "HHIIIIIHHHHHH"), struct.Struct(e + "IIIIIIIIII")
        sym, rela, rel = (
            struct.Struct(e + "IIIBBH"),
            struct.Struct(e + "IIi"),
            struct.Struct(e + "II"),
        )
    (
        _type,
        machine,
        _v,
        _entry,
        _phoff,
        shoff,
        _flags,
        _ehsize,
        _phentsize,
        _phnum,
        shentsize,
        shnum,
        shstrndx,
    ) = ehdr.unpack_from(data, 16)
    if not shoff or not shnum:
        raise ObjectError("no section headers")
    if shentsize != shdr.size or shoff + shnum * shentsize > size:
        raise ObjectError("section headers run past the end of the object")
    sections = [shdr.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    # (name, type, flags, addr, offset, size, link, info, align, entsize)

    def body(index: int) -> memoryview:
        if index >= len(sections):
            raise ObjectError(f"section index {index} out of range")
        offset, length = sections[index][4], sections[index][5]
        if offset + length > size:
            raise ObjectError(f"section {index} runs past the end of the object")
        return data[offset : offset + length]

    def cstring(table: memoryview, offset: int) -> str:
        end = offset
        limit = len(table)
        while end < limit and table[end]:
            end += 1
        return bytes(table[offset:end]).decode("utf-8", "replace")

    names = body(shstrndx) if shstrndx < len(sections) else memoryview(b"")
    symtab = next((i for i, s in enumerate(sections) if s[1] == SHT_SYMTAB), None)
    if symtab is None:
        raise ObjectError("no symbol table (stripped)")
    table = body(symtab)
    strtab = body(sections[symtab][6])
    count = len(table) // sym.size
    if count > MAX_SYMBOLS:
        raise ObjectError(f"{count} symbols, more than this tool reads ({MAX_SYMBOLS})")
    undefined: set[str] = set()
    weak: set[str] = set()
    defined: set[str] = set()
    table = table[: count * sym.size]
    for entry in sym.iter_unpack(table):
        if is64:
            st_name, info, _other, shndx = entry[0], entry[1], entry[2], entry[3]
        else:
            st_name, info, _other, shndx = entry[0], entry[3], entry[4], entry[5]
        bind, kind = info >> 4, info & 0xF
        if not st_name or bind == STB_LOCAL or kind in (STT_SECTION, STT_FILE):
            continue
        name = cstring(strtab, st_name).split("@", 1)[0]  # .symver'd names
        if shndx != SHN_UNDEF:
            defined.add(name)
        else:
            (weak if bind == STB_WEAK else undefined).add(name)
    tls_types = STATIC_TLS_RELOCS.get(machine, frozenset())
    textrel_types = TEXTREL_RELOCS.get(machine, frozenset())
    static_tls = text_relocations = False
    exec_stack: str | None = "no .note.GNU-stack section (GNU ld then makes the stack executable)"
    for header in sections:
        if cstring(names, header[0]) == ".note.GNU-stack":
            exec_stack = (
                "its .note.GNU-stack asks for an executable stack"
                if header[2] & SHF_EXECINSTR
                else None
            )
    for header in sections:
        if header[1] not in (SHT_RELA, SHT_REL) or header[7] >= len(sections):
            continue
        if not sections[header[7]][2] & SHF_EXECINSTR:
            continue  # relocations of data and debug sections: neither TLS code nor text
        st = rela if header[1] == SHT_RELA else rel
        offset, length = header[4], header[5] - header[5] % st.size
        if offset + length > size:
            raise ObjectError("a relocation section runs past the end of the object")
        mask = 0xFFFFFFFF if is64 else 0xFF
        types = {entry[1] & mask for entry in st.iter_unpack(data[offset : offset + length])}
        static_tls = static_tls or bool(types & tls_types)
        text_relocations = text_relocations or bool(types & textrel_types)
    return machine, ObjectFacts(
        undefined=frozenset(undefined),
        defined=frozenset(defined),
        weak=frozenset(weak - undefined),
        static_tls=static_tls,
        exec_stack=exec_stack,
        text_relocations=text_relocations,
    )


def library_symbols(path: Path) -> frozenset[str] | None:
    """Every symbol name the linked library's .symtab has (locals too); None when stripped."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            e, is64 = _layout(view)
            ehdr = struct.Struct(e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"))
            shdr = struct.Struct(e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII"))
            sym = struct.Struct(e + ("IBBHQQ" if is64 else "IIIBBH"))
            fields = ehdr.unpack_from(view, 16)
            shoff, shentsize, shnum = fields[5], fields[10], fields[11]
            if not shoff or shentsize != shdr.size or shoff + shnum * shentsize > len(view):
                return None
            sections = [shdr.unpack_from(view, shoff + i * shentsize) for i in range(shnum)]
            found = next((s for s in sections if s[1] == SHT_SYMTAB), None)
            if found is None or found[6] >= len(sections):
                return None
            strtab = sections[found[6]]
            strings = bytes(view[strtab[4] : strtab[4] + strtab[5]])
            start, length = found[4], found[5] - found[5] % sym.size
            names: set[str] = set()
            for entry in sym.iter_unpack(view[start : start + length]):
                offset = entry[0]
                if offset:
                    end = strings.find(b"\0", offset)
                    names.add(
                        strings[offset : end if end >= 0 else None].decode("utf-8", "replace")
                    )
            return frozenset(names)
        except (struct.error, ObjectError):
            return None
        finally:
            del view


def weak_references(library: Path) -> frozenset[str]:
    """The undefined symbols the linked library references weakly (elffile.py's reader)."""
    from .elffile import ElfError, open_elf

    try:
        with open_elf(library) as elf:
            return frozenset(name for name, weak, _node, _file in elf.undefined_symbols if weak)
    except (ElfError, OSError, ValueError):
        return frozenset()


# -- archives ------------------------------------------------------------------------------------
def archive_members(path: Path) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each member of an ar archive (GNU and BSD variants, the
    format rustc and cc's `ar` write; https://www.freebsd.org/cgi/man.cgi?query=ar&sektion=5),
    read with arpy; at most MAX_MEMBERS."""
    import arpy

    with arpy.Archive(str(path)) as archive:
        for count, header in enumerate(archive.infolist()):
            if count >= MAX_MEMBERS:
                raise ObjectError(f"more than {MAX_MEMBERS} members")
            yield header.name.decode("utf-8", "replace"), header.file_offset, header.size


def unit_objects(unit: Unit) -> Iterator[tuple[str, memoryview | str]]:
    """(member name, its bytes or why they cannot be read) of a unit's ELF members; rustc's
    `lib.rmeta` metadata member is skipped. A lone object is its own member."""
    data = memoryview(unit.path.read_bytes())
    if bytes(data[:8]) != b"!<arch>\n":
        yield unit.path.name, data
        return
    for name, offset, size in archive_members(unit.path):
        if name.endswith(".rmeta") or offset + size > len(data):
            continue
        if size > MAX_OBJECT_BYTES:
            yield name, f"{size} bytes, more than this tool reads"
            continue
        yield name, data[offset : offset + size]


# -- cargo's record of the build -----------------------------------------------------------------
def parse_package_id(package_id: str) -> tuple[str, str]:
    """(name, version) of a cargo package id, in the spec form `source#name@version` (or
    `source#version` when the name is the path's last part; cargo >= 1.77,
    https://doc.rust-lang.org/cargo/reference/pkgid-spec.html) or the older `name version
    (source)`."""
    if "#" in package_id:
        source, _, tail = package_id.rpartition("#")
        if "@" in tail:
            name, _, version = tail.partition("@")
            return name, version
        return source.rstrip("/").rsplit("/", 1)[-1], tail
    parts = package_id.split(" ")
    return (parts[0], parts[1]) if len(parts) >= 2 else (package_id, "")


class MessageLog:
    """Collects the units of a build from cargo's JSON messages, one line at a time (hook
    `feed` beside CargoOutput.stdout_line): every rlib/staticlib of a compiler-artifact, and
    every .a/.o in the OUT_DIR of a build-script-executed message."""

    def __init__(self) -> None:
        self.units: list[Unit] = []

    def feed(self, line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return
        reason = message.get("reason")
        if reason not in ("compiler-artifact", "build-script-executed"):
            return
        name, version = parse_package_id(str(message.get("package_id", "")))
        if reason == "compiler-artifact":
            for filename in message.get("filenames") or ():
                if filename.endswith((".rlib", ".a")):
                    self.units.append(Unit(crate=name, version=version, path=Path(filename)))
        elif message.get("out_dir"):
            linked = (
                [str(x) for x in message.get("linked_libs") or ()],
                [str(x) for x in message.get("linked_paths") or ()],
            )
            self.units += out_dir_units(Path(message["out_dir"]), name, version, linked)


def linked_archives(libs: Iterable[str], search: Iterable[str]) -> list[Path]:
    """The static libraries a build script told cargo to link: `rustc-link-lib` values
    (`[KIND[:MODIFIERS]=]NAME[:RENAME]`) found as lib<NAME>.a in its `rustc-link-search`
    folders (`[KIND=]PATH`); https://doc.rust-lang.org/cargo/reference/build-scripts.html"""
    folders = [Path(entry.split("=", 1)[1] if "=" in entry else entry) for entry in search]
    found: list[Path] = []
    for spec in libs:
        kind, _, name = spec.rpartition("=")
        if kind.split(":", 1)[0] not in ("", "static"):
            continue  # dylib, framework: not linked into the library
        name = name.split(":", 1)[0]
        for folder in folders:
            archive = folder / f"lib{name}.a"
            if archive.is_file() and archive not in found:
                found.append(archive)
                break
    return found


def _script_output(out_dir: Path) -> tuple[list[str], list[str]] | None:
    """(link-lib values, link-search values) from the `output` file cargo keeps beside a
    build script's OUT_DIR; None when it is not there."""
    try:
        text = (out_dir.parent / "output").read_text(errors="replace")
    except OSError:
        return None
    libs, search = [], []
    for line in text.splitlines():
        key, _, value = line.replace("cargo::", "cargo:", 1).partition("=")
        if key == "cargo:rustc-link-lib":
            libs.append(value)
        elif key == "cargo:rustc-link-search":
            search.append(value)
    return libs, search


def out_dir_units(
    out_dir: Path, crate: str, version: str, linked: tuple[list[str], list[str]] | None = None
) -> list[Unit]:
    """The static libraries a build script (the cc crate) linked: those it named to cargo
    (`linked`: link-lib and link-search values, from cargo's message or its `output` file),
    else every .a and .o under its OUT_DIR."""
    if not out_dir.is_dir():
        return []
    named = linked_archives(*linked) if linked else []
    if not named:
        named = [p for p in sorted(out_dir.rglob("*")) if p.suffix in (".a", ".o") and p.is_file()]
    return [Unit(crate=crate, version=version, path=p) for p in named]


def _manifest_package(manifest: Path) -> tuple[str, str] | None:
    """(name, version) from a Cargo.toml, following `version.workspace = true` up the tree."""
    try:
        data = tomllib.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    package = data.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        return None
    version = package.get("version", "0.0.0")
    if isinstance(version, dict):  # inherited from the workspace
        version = "?"
        for folder in manifest.parent.parents:
            root = folder / "Cargo.toml"
            if root.is_file():
                try:
                    shared = tomllib.loads(root.read_text()).get("workspace", {})
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                    continue
                inherited = shared.get("package", {}).get("version")
                if isinstance(inherited, str):
                    version = inherited
                    break
    return package["name"], str(version)


def _package_of_source(source: Path) -> tuple[str, str] | None:
    for folder in source.parents:
        manifest = folder / "Cargo.toml"
        if manifest.is_file():
            return _manifest_package(manifest)
    return None


def _first_source(depinfo: Path, output_name: str) -> str | None:
    """The first source file of a dep-info (Makefile-style) file's rule for `output_name`."""
    try:
        lines = depinfo.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        head, sep, sources = line.partition(": ")
        if sep and head.endswith(output_name) and sources.split():
            return sources.split()[0].replace("\\ ", " ")
    return None


def _source_package(source: str | None, workspace_root: Path) -> tuple[str, str] | None:
    if source is None:
        return None
    path = Path(source)
    return _package_of_source(path if path.is_absolute() else workspace_root / path)


def _newest_per_crate(rlibs: Iterable[Path]) -> list[Path]:
    """Of several lib<crate>-<hash>.rlib of one crate name (earlier builds, other features),
    those of the last cargo run that built it (two versions of one crate are built in one
    run; an rlib older by more than ONE_RUN_SECONDS is an earlier build's). `build_index`
    drops unlinked objects anyway when the library has a .symtab."""
    by_crate: dict[str, list[tuple[float, Path]]] = {}
    for rlib in rlibs:
        try:
            mtime = rlib.stat().st_mtime
        except OSError:
            continue
        by_crate.setdefault(rlib.name[3:].rsplit("-", 1)[0], []).append((mtime, rlib))
    kept = []
    for found in by_crate.values():
        last = max(mtime for mtime, _ in found)
        kept += [rlib for mtime, rlib in found if mtime >= last - ONE_RUN_SECONDS]
    return sorted(kept)


def target_dir_units(artifact_dir: Path, workspace_root: Path) -> list[Unit]:
    """The units of the last build in `artifact_dir` (target/<triple>/<profile>), without
    cargo's messages: each rlib's package from the first source file of its dep-info file
    (deps/<crate>-<hash>.d, paths relative to the workspace root), each build script's OUT_DIR
    (build/<package>-<hash>/out) under the package its folder names. Stale rlibs of earlier
    builds are dropped later, by the library's own symbols (`build_index`)."""
    units: list[Unit] = []
    deps = artifact_dir / "deps"
    versions: dict[str, set[str]] = {}  # package name -> versions seen in this build
    for rlib in _newest_per_crate(deps.glob("lib*.rlib")):
        stem = rlib.name[3 : -len(".rlib")]
        package = _source_package(_first_source(deps / f"{stem}.d", rlib.name), workspace_root)
        if package is None:
            units.append(Unit(crate=stem.rsplit("-", 1)[0], version="", path=rlib))
            continue
        versions.setdefault(package[0], set()).add(package[1])
        units.append(Unit(crate=package[0], version=package[1], path=rlib))
    # Build scripts are compiled for the host: under target/<profile>/build with --target.
    build_dirs = [artifact_dir / "build", artifact_dir.parent.parent / artifact_dir.name / "build"]
    for depinfo in sorted(d for b in build_dirs for d in b.glob("*/build_script_build-*.d")):
        package = _source_package(_first_source(depinfo, depinfo.stem), workspace_root)
        if package is not None:
            versions.setdefault(package[0], set()).add(package[1])
    for out in sorted((artifact_dir / "build").glob("*/out")):
        name = out.parent.name.rsplit("-", 1)[0]
        known = versions.get(name, set())
        units += out_dir_units(
            out, name, next(iter(known)) if len(known) == 1 else "", _script_output(out)
        )
    return units


def std_units(sysroot: Path, triple: str, release: str) -> list[Unit]:
    """The Rust standard library's rlibs for `triple`, named as one crate (STD)."""
    folder = sysroot / "lib" / "rustlib" / triple / "lib"
    return [Unit(crate=STD, version=release, path=p) for p in sorted(folder.glob("*.rlib"))]


# -- the index -----------------------------------------------------------------------------------
_MAP_MEMBER = re.compile(r"([^\s()]+\.(?:rlib|a))\(([^()]+)\)")
_MAP_OBJECT = re.compile(r"([^\s()]+\.o)(?=:\(|\s|$)")


def linked_members(map_text: str) -> frozenset[str]:
    """The archive members and object files (by name) a linker map file lists as linked in:
    lld's `-Wl,-Map=FILE` (each kept input section as `archive(member):(section)`), or GNU
    ld's, of which only the part after "Linker script and memory map" counts (its "Discarded
    input sections" come before). Rust members carry their crate's hash in their names; C
    members are matched by name alone."""
    marker = "Linker script and memory map"
    if marker in map_text:
        map_text = map_text.split(marker, 1)[1]
    found = {member for _archive, member in _MAP_MEMBER.findall(map_text)}
    without_members = _MAP_MEMBER.sub(" ", map_text)
    found.update(Path(path).name for path in _MAP_OBJECT.findall(without_members))
    return frozenset(found)


class UnitFacts(NamedTuple):
    """The readable objects of one archive, and why none could be read (None: some could)."""

    objects: tuple[tuple[str, ObjectFacts], ...]
    problem: str | None


@functools.lru_cache(maxsize=4096)
def unit_facts(path: Path, identity: tuple[int, int, int, int]) -> UnitFacts:
    """Every ELF object of the archive (or object) at `path`; `identity` (device, inode,
    size, mtime) keys the cache, so that the std rlibs and a workspace's dependencies are
    read once for all the libraries of a run."""
    objects: list[tuple[str, ObjectFacts]] = []
    bitcode = 0
    unreadable: str | None = None
    try:
        members = list(unit_objects(Unit(crate="", version="", path=path)))
    except (OSError, ValueError, ObjectError) as exc:
        return UnitFacts((), f"cannot read {path.name} ({exc})")
    for name, data in members:
        if isinstance(data, str):
            unreadable = f"{name}: {data}"
            continue
        if bytes(data[:4]) in BITCODE_MAGICS:
            bitcode += 1
            continue
        try:
            objects.append((name, read_object(data)[1]))
        except (ObjectError, struct.error) as exc:
            if bytes(data[:4]) == b"\x7fELF":
                unreadable = f"{name}: {exc}"
    if objects:
        return UnitFacts(tuple(objects), None)
    if bitcode:
        return UnitFacts((), BITCODE_ONLY)
    return UnitFacts((), unreadable)


def build_index(
    units: Iterable[Unit], library: Path | None = None, map_members: frozenset[str] | None = None
) -> ProvenanceIndex:
    """Read every unit's objects; keep those linked into `library`: the members its linker map
    lists (`map_members`, from `linked_members`), else those defining a symbol the library's
    .symtab has. Without either (a stripped library, no map), every object counts, and the
    index says so."""
    linked = library_symbols(library) if library is not None else None
    weak_in_library = weak_references(library) if library is not None else frozenset()
    note = None
    if library is not None and linked is None and map_members is None:
        note = (
            f"{library.name} has no .symtab (stripped; zig strips release builds), so "
            "every object of the build counts, also any the link dropped"
        )
    symbols: dict[str, list[Origin]] = {}
    weak_symbols: dict[str, list[Origin]] = {}
    tls: list[Origin] = []
    stack: list[Origin] = []
    textrel: list[Origin] = []
    unavailable: dict[tuple[str, str], str] = {}
    seen: set[tuple[int, int]] = set()
    for unit in units:
        try:
            st = os.stat(unit.path)
        except OSError as exc:
            unavailable.setdefault(
                (unit.crate, unit.version), f"cannot read {unit.path.name} ({exc.strerror or exc})"
            )
            continue
        if (st.st_dev, st.st_ino) in seen:  # deps/lib*.rlib and its uplifted hard link
            continue
        seen.add((st.st_dev, st.st_ino))
        read = unit_facts(unit.path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        if read.problem:
            unavailable.setdefault((unit.crate, unit.version), read.problem)
        for name, facts in read.objects:
            if map_members is not None:
                if name not in map_members:
                    continue
            elif linked is not None and linked.isdisjoint(facts.defined):
                continue
            origin = Origin(unit.crate, unit.version, name)
            for symbol in facts.undefined:
                symbols.setdefault(symbol, []).append(origin)
            for symbol in facts.weak:
                weak_symbols.setdefault(symbol, []).append(origin)
            if facts.static_tls:
                tls.append(origin)
            if facts.exec_stack and unit.crate != STD:
                stack.append(origin)
            if facts.text_relocations:
                textrel.append(origin)
    return ProvenanceIndex(
        symbols={s: tuple(sorted(set(o))) for s, o in symbols.items()},
        weak_symbols={s: tuple(sorted(set(o))) for s, o in weak_symbols.items()},
        static_tls=tuple(sorted(set(tls))),
        exec_stack=tuple(sorted(set(stack))),
        text_relocations=tuple(sorted(set(textrel))),
        unavailable=tuple(Unavailable(c, v, r) for (c, v), r in sorted(unavailable.items())),
        note=note,
        weak_in_library=weak_in_library,
    )


# -- what each crate costs -----------------------------------------------------------------------
class CrateCost(NamedTuple):
    """A crate that holds the file above the target, and the lowest glibc without it (None:
    still no glibc, for another reason)."""

    crate: str
    symbols: tuple[str, ...]
    without: GlibcVersion | None


Needs = Mapping[str, "GlibcVersion | None"]


def lowest_without(
    removed: str, needs: Needs, crates_of: Mapping[str, Collection[str]], floor: GlibcVersion | None
) -> GlibcVersion | None:
    """The lowest glibc the file needs once crate `removed` is gone: the highest need of the
    symbols something else still references (a symbol of unknown provenance stays), and at
    least `floor` (the file's needs that no symbol explains). None: no glibc version serves."""
    if floor is None:
        return None
    lowest = floor
    for symbol, need in needs.items():
        users = crates_of.get(symbol) or ()
        if users and all(user == removed for user in users):
            continue
        if need is None:
            return None
        if need > lowest:
            lowest = need
    return lowest


def crate_costs(
    needs: Needs,
    crates_of: Mapping[str, Collection[str]],
    floor: GlibcVersion | None,
    target: GlibcVersion,
) -> list[CrateCost]:
    """Each crate referencing a symbol above `target` (or one no glibc has), with the lowest
    glibc the file would need without it; the crates whose removal helps most come first."""
    above: dict[str, list[str]] = {}
    for symbol, need in needs.items():
        if need is None or need > target:
            for crate in set(crates_of.get(symbol) or ()):
                above.setdefault(crate, []).append(symbol)
    costs = [
        CrateCost(crate, tuple(sorted(symbols)), lowest_without(crate, needs, crates_of, floor))
        for crate, symbols in above.items()
    ]

    def order(cost: CrateCost) -> tuple[bool, tuple[int, ...], str]:
        return (cost.without is None, cost.without.parts if cost.without else (), cost.crate)

    return sorted(costs, key=order)


def symbol_needs(
    findings: Iterable[Finding], first_version: Callable[[str], GlibcVersion | None]
) -> dict[str, GlibcVersion | None]:
    """symbol -> the glibc it needs, from a file's violations: a version node above the target
    (version-too-new), the first glibc having an unversioned symbol (symbol-too-new, via
    `first_version`), None for symbols no glibc can serve (glibc-private, no-such-version).
    Other findings (a library missing from DT_NEEDED, C++ runtime needs) are no glibc level."""
    needs: dict[str, GlibcVersion | None] = {}
    for finding in findings:
        symbol = finding.symbol
        if not symbol:
            continue
        if finding.kind == "version-too-new" and finding.version:
            numbers = split_version_node(finding.version)[1]
            needs[symbol] = GlibcVersion.of(numbers) if numbers else None
        elif finding.kind == "symbol-too-new":
            needs[symbol] = first_version(symbol)
        elif finding.kind in ("glibc-private", "no-such-version"):
            needs[symbol] = None
    return needs


def file_floor(
    needs: Needs,
    min_glibc: GlibcVersion | None,
    target: GlibcVersion,
    other_violations: bool = False,
) -> GlibcVersion | None:
    """What the file needs whatever crates go: its non-symbol requirements are unknown here
    but at most min(target, its lowest glibc) unless the symbols cannot explain that lowest
    glibc, which then stands (a DT_RELR, a marker, an unused version need...). A file no glibc
    loads stays so when no symbol explains it, or when `other_violations` (violations tied to
    no symbol) might."""
    if min_glibc is None:
        if other_violations or all(n is not None for n in needs.values()):
            return None
        return OLDEST_GLIBC
    explained = OLDEST_GLIBC
    for need in needs.values():
        if need is not None and need > explained:
            explained = need
    if explained < min_glibc:
        return min_glibc
    return target if target < min_glibc else min_glibc


# -- findings and reports ------------------------------------------------------------------------
RemedyFor = Callable[[str], "str | None"]


@dataclass(frozen=True)
class FileProvenance:
    """What provenance adds to one file's report."""

    costs: tuple[CrateCost, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    note: str | None = None
    remedies: Mapping[str, str] = field(default_factory=dict)
    reasons: Mapping[tuple[str, str | None], str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "costs": [
                {
                    "crate": c.crate,
                    "symbols": list(c.symbols),
                    "without": None if c.without is None else str(c.without),
                }
                for c in self.costs
            ],
            "unavailable": [u.to_json() for u in self.unavailable],
            "remedies": dict(self.remedies),
            "note": self.note,
        }


def _first_version_in(table: SymbolTable | None) -> Callable[[str], GlibcVersion | None]:
    def first(name: str) -> GlibcVersion | None:
        providers = table.providers(name) if table is not None else None
        if not providers:
            return None
        return min(
            (GlibcVersion.of(v[0]) for v in providers.values() if v),
            key=lambda v: v.parts,
            default=None,
        )

    return first


def annotate_file(
    file: FileReport,
    index: ProvenanceIndex,
    target: GlibcVersion,
    table: SymbolTable | None = None,
    remedy_for: RemedyFor | None = None,
) -> tuple[FileReport, FileProvenance]:
    """A FileReport whose findings carry their crates (`Finding.crates`), and the costs of each
    crate; `table`: glibc's symbols (abilist.SymbolTable) for unversioned symbols' first
    version."""
    reasons: dict[tuple[str, str | None], str] = {}

    def tag(findings: list[Finding]) -> list[Finding]:
        out = []
        for finding in findings:
            origins = index.origins_for(finding.kind, finding.symbol)
            if origins:
                finding = finding._replace(
                    crates=tuple(CrateRef(o.crate, o.version, o.object) for o in origins)
                )
            else:
                why = index.why_unavailable(finding.kind, finding.symbol)
                if why:
                    reasons[(finding.kind, finding.symbol)] = why
            out.append(finding)
        return out

    violations, warnings = tag(list(file.violations)), tag(list(file.warnings))
    needs = symbol_needs(violations, _first_version_in(table))
    crates_of = {s: {o.crate for o in index.origins_of(s)} for s in needs}
    min_glibc = GlibcVersion.of(file.min_glibc) if file.min_glibc else None
    others = any(not f.symbol and f.kind not in FLAG_KINDS for f in violations)
    costs = crate_costs(needs, crates_of, file_floor(needs, min_glibc, target, others), target)
    named = {c.name for f in violations + warnings for c in f.crates}
    remedies = {}
    if remedy_for is not None:
        for crate in sorted(named):
            remedy = remedy_for(crate)
            if remedy:
                remedies[crate] = remedy
    return (
        replace(file, violations=violations, warnings=warnings),
        FileProvenance(
            costs=tuple(costs),
            unavailable=index.unavailable,
            note=index.note,
            remedies=remedies,
            reasons=reasons,
        ),
    )


def annotate(
    report: Report,
    indexes: Mapping[str, ProvenanceIndex],
    remedy_for: RemedyFor | None = None,
    table_for: Callable[[str], SymbolTable | None] | None = None,
) -> tuple[Report, dict[str, FileProvenance]]:
    """The report with each finding tied to a symbol or an object carrying its crates, and per
    file (by its shown path) the crate costs; files without an index are left as they are.
    `table_for(arch)`: glibc's symbol table for a file's architecture (optional)."""
    files = []
    extra: dict[str, FileProvenance] = {}
    for file in report.files:
        index = indexes.get(file.path)
        if index is None:
            files.append(file)
            continue
        table = table_for(file.arch) if table_for is not None and file.arch else None
        annotated, extra[file.path] = annotate_file(file, index, report.glibc, table, remedy_for)
        files.append(annotated)
    return replace(report, files=files), extra


def provenance_lines(file: FileReport, extra: FileProvenance, indent: str = "     ") -> list[str]:
    """`_provenance_lines`, wrapped at the report's width (check/render.py's fill)."""
    from .check.render import fill

    out: list[str] = []
    for line in _provenance_lines(file, extra, indent):
        wrapped = fill(line, indent)
        out.append(wrapped[0])
        out.extend("  " + more for more in wrapped[1:])
    return out


def _provenance_lines(file: FileReport, extra: FileProvenance, indent: str) -> list[str]:
    """Text for one file: `getrandom ← deep-entropy 0.1.7 (deep_entropy…rcgu.o)` per symbol,
    the crates' costs, remedies and what could not be told."""
    lines: list[str] = []
    seen: set[tuple[str, str | None]] = set()
    for finding in list(file.violations) + list(file.warnings):
        key = (finding.kind, finding.symbol)
        if key in seen:
            continue
        seen.add(key)
        what = finding.symbol or f"[{finding.kind}]"
        if finding.crates:
            lines.append(f"{indent}{what} \u2190 {crates_text(finding.crates)}")
        elif key in extra.reasons:
            lines.append(f"{indent}{what}: {extra.reasons[key]}")
    for cost in extra.costs:
        if cost.crate == STD:
            count = len(cost.symbols)
            lines.append(
                f"{indent}{STD} brings {count} of these symbol{'s' * (count != 1)}: {STD_NOTE}"
            )
            continue
        where = (
            f"would load on {cost.without}"
            if cost.without is not None
            else "would still load on no glibc"
        )
        lines.append(f"{indent}without {cost.crate} this file {where}")
    for crate, remedy in sorted(extra.remedies.items()):
        lines.append(f"{indent}{crate}: {remedy}")
    if extra.note:
        lines.append(f"{indent}note: {extra.note}")
    return lines


def crates_text(crates: Iterable[CrateRef], per_crate: int = 2, most: int = 4) -> str:
    """`deep-entropy 0.1.7 (deep_entropy…rcgu.o), Rust std 1.95.0 (std…rcgu.o)`: each crate
    once, with its first objects."""
    objects: dict[tuple[str, str], list[str]] = {}
    for crate in crates:
        objects.setdefault((crate.name, crate.version), []).append(short_object(crate.object))
    parts = []
    for (name, version), names in list(objects.items())[:most]:
        more = f" +{len(names) - per_crate}" if len(names) > per_crate else ""
        parts.append(
            f"{name} {short_version(version)}".strip() + f" ({', '.join(names[:per_crate])}{more})"
        )
    hidden = len(objects) - most
    return ", ".join(parts) + (f" (+{hidden} more crates)" if hidden > 0 else "")


def short_version(version: str, keep: int = 16) -> str:
    """0.6.1+5.3.0-1-ge13ca993e8… -> 0.6.1+5.3.0-1-ge…: build metadata can be a git hash."""
    return version if len(version) <= keep else version[: keep - 1] + "\u2026"


def short_object(name: str, keep: int = 14) -> str:
    """deep_entropy-3bb3….deep_entropy.b525…-cgu.0.rcgu.o -> deep_entropy…rcgu.o"""
    if len(name) <= 2 * keep + 1:
        return name
    head = name.split("-", 1)[0].split(".", 1)[0][:keep]
    tail = name.rsplit(".", 2)
    return f"{head}\u2026{'.'.join(tail[-2:]) if len(tail) >= 2 else name[-keep:]}"


def report_json(report: Report, extra: Mapping[str, FileProvenance]) -> dict[str, Any]:
    """The report's JSON with `crates` on each finding that has them and `provenance` on
    each file that has an index."""
    data: dict[str, Any] = report.to_json()
    for file, shown in zip(report.files, data["files"]):
        for key in ("violations", "warnings"):
            for finding, out in zip(getattr(file, key), shown[key]):
                if finding.crates:
                    out["crates"] = [c.to_json() for c in finding.crates]
                    remedies = extra[file.path].remedies if file.path in extra else {}
                    named = {c.name: remedies[c.name] for c in finding.crates if c.name in remedies}
                    if named:
                        out["remedies"] = named
                reason = (
                    extra[file.path].reasons.get((finding.kind, finding.symbol))
                    if file.path in extra
                    else None
                )
                if reason:
                    out["provenance"] = reason
        if file.path in extra:
            shown["provenance"] = extra[file.path].to_json()
    return data


# -- a crate folder's last build -----------------------------------------------------------------
def artifact_dir_of(library: Path, target_dir: Path) -> Path | None:
    """The folder (target/<triple>/<profile> or target/<profile>) whose build made `library`:
    the library itself is in it, or a file there has its exact bytes (a copy in dist/)."""
    try:
        resolved = library.resolve()
        if resolved.is_relative_to(target_dir.resolve()):
            folder = resolved.parent
            return folder.parent if folder.name == "deps" else folder
        size = library.stat().st_size
        content = None
        for candidate in (
            sorted(target_dir.glob(f"*/{library.name}"))
            + sorted(target_dir.glob(f"*/*/{library.name}"))
            + sorted(  # build.py's, per glibc:
                target_dir.glob(f"glibc-build/*/*/*/{library.name}")
            )
        ):
            if candidate.stat().st_size != size:
                continue
            if content is None:
                content = library.read_bytes()
            if candidate.read_bytes() == content:
                return candidate.parent
    except OSError:
        return None
    return None


def triple_of(artifact_dir: Path, target_dir: Path, host: str) -> str:
    """target/<triple>/<profile> -> triple; target/<profile> -> the host's."""
    try:
        relative = artifact_dir.resolve().relative_to(target_dir.resolve())
    except ValueError:
        return host
    if relative.parts[:1] == ("glibc-build",):  # build.py's target/glibc-build/<key>/...
        relative = Path(*relative.parts[2:])
    return relative.parts[0] if len(relative.parts) >= 2 else host


def _rustc_facts(crate_dir: Path) -> tuple[str, str]:
    """(release, host triple) from `rustc -vV` as cargo would run it for the crate."""
    from . import toolchain

    facts = dict(
        line.split(": ", 1)
        for line in toolchain.version_verbose(crate_dir).splitlines()
        if ": " in line
    )
    return facts.get("release", ""), facts.get("host", "")


def _table_for(arch: str) -> SymbolTable | None:
    from . import abilist
    from .targets import TARGETS

    for target in TARGETS.values():
        if target.arch == arch:
            return abilist.symbol_table(target.zig)
    return None


def for_crate_dir(
    report: Report, crate_dir: Path, remedy_for: RemedyFor | None = None
) -> tuple[Report, dict[str, FileProvenance], list[str]]:
    """`check --crate-dir`: the report annotated from the crate's last build in its target
    folder, the provenance of each file, and one line for each file that build did not make.
    A crate folder cargo cannot read raises BadInput (exit 2), like a build would."""
    from . import toolchain
    from .cargo import locate

    crate = locate(crate_dir)
    release, host = _rustc_facts(crate.root.resolve())
    sysroot = toolchain.sysroot(crate.root.resolve())
    messages: list[str] = []
    indexes: dict[str, ProvenanceIndex] = {}
    units_of: dict[Path, list[Unit]] = {}
    for file in report.files:
        library = Path(file.path)
        artifacts = artifact_dir_of(library, crate.target_dir)
        if artifacts is None:
            messages.append(
                f"{file.path}: not made by the last build in {crate.target_dir} "
                "(another build, target or profile); reporting it without "
                "provenance (build it again, or give its own --crate-dir)"
            )
            continue
        if artifacts not in units_of:
            units = target_dir_units(artifacts, crate.workspace_root)
            if sysroot:
                units += std_units(
                    Path(sysroot), triple_of(artifacts, crate.target_dir, host), release
                )
            units_of[artifacts] = units
        indexes[file.path] = build_index(units_of[artifacts], library)
    annotated, extra = annotate(report, indexes, remedy_for, _table_for)
    return annotated, extra, messages


def for_build(
    report: Report,
    units: Iterable[Unit],
    crate_dir: Path,
    triple: str,
    remedy_for: RemedyFor | None = None,
    map_files: Mapping[str, Path] | None = None,
) -> tuple[Report, dict[str, FileProvenance]]:
    """After a build: the report annotated from the build's own record (`MessageLog.units`,
    fed cargo's JSON lines as they stream) and the Rust std rlibs of `triple`. `map_files`:
    report path -> the linker map of that library (`-C link-arg=-Wl,-Map=FILE`), which says
    exactly which objects were linked even when the library is stripped."""
    from . import toolchain

    release, _host = _rustc_facts(crate_dir.resolve())
    sysroot = toolchain.sysroot(crate_dir.resolve())
    std = std_units(Path(sysroot), triple, release) if sysroot else []
    units = list(units)
    indexes = {}
    for file in report.files:
        map_file = (map_files or {}).get(file.path)
        members = None
        if map_file is not None:
            try:
                members = linked_members(map_file.read_text(errors="replace"))
            except OSError:
                members = None
        indexes[file.path] = build_index(
            same_folder(Path(file.path), units) + std, Path(file.path), members
        )
    return annotate(report, indexes, remedy_for, _table_for)


def same_folder(library: Path, units: Iterable[Unit]) -> list[Unit]:
    """The units built beside `library` (target/<triple>/<profile>/...): with --target, the
    build dependencies cargo compiles for the host (target/<profile>/) are never linked into
    it. All units when none is beside it (a library copied elsewhere)."""
    units = list(units)
    folder = library.resolve().parent
    beside = [u for u in units if u.path.resolve().is_relative_to(folder)]
    return beside or units


def report_text(report: Report, extra: Mapping[str, FileProvenance]) -> str:
    """The provenance section printed after the check's own report (one block per file)."""
    blocks = []
    for file in report.files:
        if file.path in extra:
            lines = provenance_lines(file, extra[file.path])
            if lines:
                blocks.append(f"provenance of {file.path}:\n" + "\n".join(lines))
    return "\n".join(blocks)
