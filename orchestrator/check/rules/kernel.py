"""The kernel floor and the x86-64 ISA level of a platform, read statically from the file.

An old system is more than an old glibc: CentOS 7 runs Linux 3.10, which has no getrandom
(3.17) or statx (4.11). A call the kernel lacks fails with ENOSYS at run time: the file loads,
the call fails. So a call newer than the floor is a warning (a violation under --strict); a call
made by Rust code that has a fallback for ENOSYS is a note. Sources of the facts: system call
-> first kernel, resources/syscalls.json (man-pages' syscalls(2)); glibc wrapper -> system call
and the Rust fallbacks, resources/kernel_calls.json.

What is read, and the bound on the work:

* imported glibc wrappers (getrandom@GLIBC_2.25, statx, ...): from the dynamic symbols;
* x86_64 and aarch64 call sites that pass a constant to `syscall()` (x86_64: `mov edi, IMM`
  before `call`/`jmp` to syscall's PLT entry or GOT slot; aarch64: `mov w0/x0, #IMM` before
  `bl`/`b` to its PLT entry), inline `syscall` / `svc #0` with a constant in eax / x8, and
  `madvise` with a constant advice in edx / w2. Candidate sites are found by their bytes in the
  executable sections (at most MAX_CODE_BYTES of them), at most MAX_SITES sites are decoded,
  each with capstone over at most WINDOW bytes before it: the cost is linear in the code size
  and bounded whatever the file holds. A number that is not a constant in that window (passed
  in from elsewhere) is not judged;
* the x86-64 ISA level from GNU_PROPERTY_X86_ISA_1_NEEDED (elffile.x86_isa_needed).

Rust's fallbacks (`from_rust_crate`): a call site inside a function whose mangled name's crate is
one with a fallback for that call (std: statx, copy_file_range, getrandom, pidfd_open, clone3;
the getrandom crate: getrandom) is a note. That needs the symbol table (.symtab; cargo keeps it
unless `strip = true`). Without one, a call std has a fallback for in a file with std's panic
location strings ("library/std/src/") is a note that says it was attributed by those strings;
anything else is a warning. An imported wrapper with a weak reference is a note (the code
checks for it before the call); a strong one is a warning.
"""

from __future__ import annotations

import bisect
import re
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

from ...elffile import ElfFile
from ...syscalls import KernelCalls, KernelVersion, kernel_calls
from ...syscalls import table as syscall_table
from ..report import NOTE, VIOLATION, WARNING, Finding
from .context import Context

MAX_CODE_BYTES = 32 << 20  # executable bytes searched for call sites
MAX_SITES = 4096  # call sites decoded
MAX_SYMBOLS = 1 << 21  # entries read per symbol table
WINDOW = 48  # bytes decoded before a site (x86 instructions are <= 15 bytes)

SYSCALL_NUMBER = {"x86_64": "edi", "aarch64": "x0"}  # syscall(long number, ...)
INLINE_NUMBER = {"x86_64": "eax", "aarch64": "x8"}
MADVISE_ADVICE = {"x86_64": "edx", "aarch64": "x2"}  # madvise(addr, length, advice)
_FAMILIES = {
    "edi": frozenset({"edi", "rdi", "di", "dil"}),
    "eax": frozenset({"eax", "rax", "ax", "al"}),
    "edx": frozenset({"edx", "rdx", "dx", "dl"}),
    "x0": frozenset({"x0", "w0"}),
    "x8": frozenset({"x8", "w8"}),
    "x2": frozenset({"x2", "w2"}),
}
_V0_CRATE = re.compile(r"C(?:s[0-9A-Za-z]*_)?(\d+)")
_LEGACY = re.compile(r"_ZN(\d+)")

TEXT = {
    "unread": (
        "could not read the code for system call sites ({why}); the kernel floor was "
        "judged by the imported glibc wrappers only"
    ),
    "call": (
        "{call} (Linux {first}) has no fallback here; on {on} it fails with "
        "ENOSYS (the file loads, the call fails); keep a fallback for ENOSYS or raise the "
        "kernel floor"
    ),
    "wrapper": (
        "imports glibc's {symbol}, a wrapper of {call} (Linux {first}); on {on} "
        "glibc's wrapper returns ENOSYS (the file loads, the call fails)"
    ),
    "weak-wrapper": (
        "weak reference to glibc's {symbol}, a wrapper of {call} (Linux {first}): "
        "the code can do without it; on {on} the call gives ENOSYS"
    ),
    "fallback": (
        "{call} (Linux {first}) is called by {crate}, which falls back when the kernel "
        "answers ENOSYS ({on} lacks it){how}"
    ),
    "madvise": (
        "madvise advice {advice} (Linux {first}) fails with EINVAL on {on}; "
        "check the result and fall back (e.g. MADV_DONTNEED)"
    ),
    "isa": (
        "marked as needing x86-64-v{level} (GNU_PROPERTY_X86_ISA_1_NEEDED), above "
        "{where}'s x86-64-v{allowed}: glibc refuses to load it on the CPUs it allows (\"CPU "
        'ISA level is lower than required"); build for x86-64-v{allowed}'
    ),
}


class KernelNeed(NamedTuple):
    """A system call the file makes (`fallback`: Rust code that copes with ENOSYS): what the
    loads-on matrix judges each preset's kernel by."""

    call: str
    kernel: KernelVersion
    fallback: bool


class IsaNeed(NamedTuple):
    """The x86-64 level the file's property note asks for (1..4)."""

    level: int


class Site(NamedTuple):
    """A constant passed to a system call at `address`; `what`: syscall, inline or madvise."""

    what: str
    address: int
    value: int


# -- the pattern matcher -----------------------------------------------------------------------
def _disassembler(arch: str) -> object:
    import capstone

    if arch == "x86_64":
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    return md


_MD: dict[str, object] = {}


def constant_before(code: bytes, base: int, site: int, arch: str, register: str) -> int | None:
    """The constant last put into `register` (e.g. edi, x8) before the instruction at `site`,
    in `code` loaded at `base`; None when the window holds no such `mov`/`xor`, another write
    to it, or a branch first (the value then comes from elsewhere).

    x86 instructions have no fixed start: the window is decoded from the earliest offset whose
    instructions end exactly at `site` (decoding resynchronises within a few instructions)."""
    import capstone

    md = _MD.get(arch) or _MD.setdefault(arch, _disassembler(arch))
    assert isinstance(md, capstone.Cs)
    end = site - base
    if end <= 0 or end > len(code):
        return None
    insns: list[capstone.CsInsn] = []
    if arch == "x86_64":
        starts = range(max(0, end - WINDOW), end)
    else:  # fixed 4-byte instructions: eight of them
        starts = range(end - min(32, end // 4 * 4), end, 4)
    for start in starts:
        decoded = list(md.disasm(code[start:end], base + start))
        if decoded and decoded[-1].address + decoded[-1].size == site:
            insns = decoded
            break
    family = _FAMILIES[register]
    for insn in reversed(insns):
        if any(
            insn.group(g)
            for g in (
                capstone.CS_GRP_JUMP,
                capstone.CS_GRP_CALL,
                capstone.CS_GRP_RET,
                capstone.CS_GRP_INT,
            )
        ):
            return None
        written = {insn.reg_name(r) for r in insn.regs_access()[1]}
        if not written & family:
            continue
        ops = insn.operands
        if insn.mnemonic in ("mov", "movz") and len(ops) == 2 and ops[1].type == 2:  # IMM
            return int(ops[1].imm) & 0xFFFFFFFFFFFFFFFF
        if (
            insn.mnemonic == "xor"
            and len(ops) == 2
            and ops[0].type == ops[1].type == 1
            and ops[0].reg == ops[1].reg
        ):
            return 0
        return None
    return None


# -- finding the sites ---------------------------------------------------------------------------
class Code(NamedTuple):
    sections: list[tuple[int, bytes]]  # (address, bytes) of executable sections
    stubs: dict[int, str]  # PLT entry address -> imported function
    slots: dict[int, str]  # GOT slot address -> imported function
    functions: list[tuple[int, int, str]]  # (start, end, mangled name), sorted; [] if stripped


def read_code(elf: ElfFile, arch: str, wanted: frozenset[str]) -> Code:
    """Executable sections, the PLT entries and GOT slots of `wanted` imports, and the
    function symbols (.symtab). pyelftools reads the section headers; the tables themselves
    are read with struct (pyelftools parses a relocation in ~20 us, and a big C++ library has
    hundreds of thousands). A 64-bit little-endian file (x86_64, aarch64)."""
    import io

    from elftools.elf.elffile import ELFFile

    data = elf.data
    # mmap is file-like (read, seek); pyelftools moves its position, so searches pass start 0
    stream: Any = io.BytesIO(data) if isinstance(data, bytes) else data
    ef = ELFFile(stream)
    headers = [section.header for section in ef.iter_sections()]
    names = [section.name for section in ef.iter_sections()]
    sections: list[tuple[int, bytes]] = []
    plts: list[tuple[int, bytes]] = []
    budget = MAX_CODE_BYTES
    slots: dict[int, str] = {}
    functions: list[tuple[int, int, str]] = []

    def raw(header: Any) -> bytes:
        if header["sh_type"] == "SHT_NOBITS":
            return b""
        return bytes(data[header["sh_offset"] : header["sh_offset"] + header["sh_size"]])

    def table(index: int) -> tuple[bytes, bytes]:
        """A symbol table's entries and its string table."""
        if not 0 < index < len(headers) or headers[index]["sh_type"] not in (
            "SHT_DYNSYM",
            "SHT_SYMTAB",
        ):
            return b"", b""
        link = headers[index]["sh_link"]
        strings = raw(headers[link]) if 0 < link < len(headers) else b""
        return raw(headers[index])[: MAX_SYMBOLS * 24], strings

    for index, (header, name) in enumerate(zip(headers, names)):
        kind = header["sh_type"]
        if kind == "SHT_PROGBITS" and header["sh_flags"] & 0x4 and budget > 0:  # SHF_EXECINSTR
            code = raw(header)[:budget]
            budget -= len(code)
            (plts if name.startswith(".plt") else sections).append((header["sh_addr"], code))
        elif kind == "SHT_RELA":
            symbols, strings = table(header["sh_link"])
            indices = {
                i: sym for i, sym in enumerate(_symbol_names(symbols, strings, wanted)) if sym
            }
            if not indices:
                continue
            entries = raw(header)
            for offset, info, _addend in struct.iter_unpack(
                "<QQq", entries[: len(entries) // 24 * 24]
            ):
                sym = indices.get(info >> 32)
                if sym:
                    slots[offset] = sym
        elif kind == "SHT_SYMTAB":
            symbols, strings = table(index)
            for st_name, info, _other, _shndx, value, size in struct.iter_unpack(
                "<IBBHQQ", symbols[: len(symbols) // 24 * 24]
            ):
                if info & 0xF == 2 and value and st_name:  # STT_FUNC
                    end = strings.find(b"\0", st_name)
                    functions.append(
                        (
                            value,
                            value + max(size, 1),
                            strings[st_name : end if end >= 0 else None].decode(errors="replace"),
                        )
                    )
    functions.sort()
    stubs: dict[int, str] = {}
    for addr, code in plts:
        stubs.update(plt_stubs(code, addr, arch, slots))
    return Code(sections=sections, stubs=stubs, slots=slots, functions=functions)


def _symbol_names(symbols: bytes, strings: bytes, wanted: frozenset[str]) -> list[str | None]:
    """Per symbol index, its name when it is one of `wanted`, else None."""
    targets = {name.encode() + b"\0": name for name in wanted}
    out: list[str | None] = []
    for (st_name,) in struct.iter_unpack("<I20x", symbols[: len(symbols) // 24 * 24]):
        out.append(
            next((name for key, name in targets.items() if strings.startswith(key, st_name)), None)
        )
    return out


def plt_stubs(data: bytes, addr: int, arch: str, slots: dict[int, str]) -> dict[int, str]:
    """PLT entry address -> the import whose GOT slot it jumps through (x86_64: `jmp [rip+d]`,
    preceded by endbr64 in .plt.sec; aarch64: `adrp x16, page; ldr x17, [x16, #off]`)."""
    import capstone

    md = _MD.get(arch) or _MD.setdefault(arch, _disassembler(arch))
    assert isinstance(md, capstone.Cs)
    stubs: dict[int, str] = {}
    previous: list[capstone.CsInsn] = []
    for insn in md.disasm(data, addr):
        if (
            arch == "x86_64"
            and insn.mnemonic == "jmp"
            and insn.operands
            and insn.operands[0].type == 3
            and insn.reg_name(insn.operands[0].mem.base) == "rip"
        ):
            slot = insn.address + insn.size + insn.operands[0].mem.disp
            if slot in slots:
                start = (
                    previous[-1].address
                    if previous and previous[-1].mnemonic == "endbr64"
                    else insn.address
                )
                stubs[start] = slots[slot]
        elif (
            arch == "aarch64"
            and insn.mnemonic == "ldr"
            and previous
            and previous[-1].mnemonic == "adrp"
            and len(insn.operands) == 2
        ):
            page = previous[-1].operands[1].imm
            slot = page + insn.operands[1].mem.disp
            if slot in slots:
                stubs[previous[-1].address] = slots[slot]
        previous = [*previous[-1:], insn]
    return stubs


_X86_CALL = re.compile(rb"(?=([\xe8\xe9])(.{4}))", re.DOTALL)
_X86_INDIRECT = re.compile(rb"(?=\xff([\x15\x25])(.{4}))", re.DOTALL)
_X86_SYSCALL = re.compile(rb"(?=\x0f\x05)")


def call_sites(code: Code, arch: str) -> Iterator[tuple[str, int, bytes, int]]:
    """(import name or "inline", site address, section bytes, section address), at most
    MAX_SITES in all."""
    count = 0
    for base, data in code.sections:
        for address, name in _sites_in(data, base, code, arch):
            count += 1
            if count > MAX_SITES:
                return
            yield name, address, data, base


def _sites_in(data: bytes, base: int, code: Code, arch: str) -> Iterator[tuple[int, str]]:
    if arch == "x86_64":
        for match in _X86_CALL.finditer(data):
            target = (
                base + match.start() + 5 + int.from_bytes(match.group(2), "little", signed=True)
            )
            if target in code.stubs:
                yield base + match.start(), code.stubs[target]
        for match in _X86_INDIRECT.finditer(data):
            slot = base + match.start() + 6 + int.from_bytes(match.group(2), "little", signed=True)
            if slot in code.slots:
                yield base + match.start(), code.slots[slot]
        for match in _X86_SYSCALL.finditer(data):
            yield base + match.start(), "inline"
        return
    words = memoryview(data)[: len(data) // 4 * 4].cast("I")
    for index, word in enumerate(words):
        if word == 0xD4000001:  # svc #0
            yield base + 4 * index, "inline"
        elif word & 0x7C000000 == 0x14000000:  # b / bl imm26
            offset = (word & 0x3FFFFFF) << 2
            if offset & (1 << 27):
                offset -= 1 << 28
            target = base + 4 * index + offset
            if target in code.stubs:
                yield base + 4 * index, code.stubs[target]


def constant_sites(code: Code, arch: str) -> Iterator[Site]:
    for name, address, data, base in call_sites(code, arch):
        what = {"syscall": "syscall", "madvise": "madvise", "inline": "inline"}.get(name)
        if what is None:
            continue
        register = {"syscall": SYSCALL_NUMBER, "madvise": MADVISE_ADVICE, "inline": INLINE_NUMBER}[
            what
        ][arch]
        value = constant_before(data, base, address, arch, register)
        if value is not None:
            yield Site(what, address, value)


# -- who made the call ---------------------------------------------------------------------------
def crate_of(mangled: str) -> str | None:
    """The crate a Rust symbol belongs to: `_ZN3std2fs...` (legacy) or `_RNv...Cs..._3std`
    (v0); None for other symbols."""
    if mangled.startswith("_ZN"):
        match = _LEGACY.match(mangled)
        if match:
            length = int(match.group(1))
            return mangled[match.end() : match.end() + length] or None
        return None
    if mangled.startswith("_R"):
        match = _V0_CRATE.search(mangled, 2)
        if match:
            length = int(match.group(1))
            start = match.end() + (mangled[match.end() : match.end() + 1] == "_")
            return mangled[start : start + length] or None
    return None


def function_at(functions: list[tuple[int, int, str]], address: int) -> str | None:
    index = bisect.bisect_right(functions, (address, 1 << 64, "")) - 1
    if index >= 0 and functions[index][0] <= address < functions[index][1]:
        return functions[index][2]
    return None


def fallback_crate(
    call: str, function: str | None, stripped: bool, has_std_markers: bool, calls: KernelCalls
) -> tuple[str, str] | None:
    """(crate, how it was decided) when the call is made by a Rust crate with a fallback for
    it; None: no known fallback (a warning)."""
    if function is not None:
        crate = crate_of(function)
        if crate is not None and call in calls.rust_fallbacks.get(crate, frozenset()):
            return f"Rust's {crate}" if crate == "std" else f"the {crate} crate", ""
        return None
    if stripped and has_std_markers and call in calls.rust_fallbacks.get("std", frozenset()):
        return (
            "Rust's std",
            "; the file has no symbol table, so this is attributed to std by "
            "its panic-location strings",
        )
    return None


# -- the rule ------------------------------------------------------------------------------------
def check_kernel(elf: ElfFile, ctx: Context) -> Iterator[Finding | KernelNeed | IsaNeed]:
    """Kernel needs (always, for the loads-on matrix) and findings against the floor."""
    if elf.machine == "EM_X86_64" and elf.is64:
        isa = elf.x86_isa_needed
        level = isa.bit_length() if isa else 1
        yield IsaNeed(level)
        if ctx.isa is not None and level > ctx.isa:
            yield Finding(
                "isa-level",
                TEXT["isa"].format(
                    level=level, allowed=ctx.isa, where=ctx.platform_name or "the target"
                ),
                severity=VIOLATION,
            )
    calls = kernel_calls()
    known = syscall_table()
    floor = ctx.kernel
    on = (
        f"{ctx.platform_name}'s {floor}"
        if ctx.platform_name and ctx.floor_from_platform
        else f"Linux {floor}"
    )
    severity = VIOLATION if ctx.strict else WARNING
    wrappers = calls.wrappers
    for symbol in elf.undefined_symbols:
        if symbol.name not in wrappers:
            continue  # nearly every symbol: one dict lookup
        call = wrappers[symbol.name]
        first = known.syscalls[call].kernel
        if first is None:
            continue
        yield KernelNeed(call, first, symbol.weak)
        if floor is not None and first > floor:
            text = TEXT["weak-wrapper" if symbol.weak else "wrapper"].format(
                symbol=symbol.name, call=call, first=first, on=on
            )
            yield Finding(
                "kernel-wrapper",
                text,
                symbol=symbol.name,
                version=symbol.version,
                severity=NOTE if symbol.weak else severity,
            )
    arch = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}.get(elf.machine)
    if arch is None or not elf.is64 or not ctx.scan_code:
        return
    try:
        code = read_code(elf, arch, frozenset({"syscall", "madvise"}))
    except Exception as exc:  # noqa: BLE001 - pyelftools on a crafted file: one warning
        yield Finding(
            "kernel-unread",
            TEXT["unread"].format(why=f"{type(exc).__name__}: {exc}"[:200]),
            severity=WARNING,
        )
        return
    stripped = not code.functions
    markers = stripped and any(elf.data.find(m, 0) >= 0 for m in calls.rust_std_markers)
    reported: set[tuple[str, bool]] = set()
    for site in constant_sites(code, arch):
        if site.what == "madvise":
            advice = next((n for n, v in known.madvise_values.items() if v == site.value), None)
            first = known.madvise.get(advice) if advice else None
            if advice and first and floor is not None and first > floor:
                yield Finding(
                    "kernel-madvise",
                    TEXT["madvise"].format(advice=advice, first=first, on=on),
                    symbol=advice,
                    severity=severity,
                )
            continue
        name = known.by_number[arch].get(site.value)
        first = known.syscalls[name].kernel if name else None
        if name is None or first is None:
            continue
        decided = fallback_crate(
            name, function_at(code.functions, site.address), stripped, markers, calls
        )
        yield KernelNeed(name, first, decided is not None)
        if floor is None or first <= floor or (name, decided is None) in reported:
            continue
        reported.add((name, decided is None))  # one finding per call and verdict
        if decided is not None:
            crate, how = decided
            yield Finding(
                "kernel-fallback",
                TEXT["fallback"].format(call=name, first=first, crate=crate, on=on, how=how),
                symbol=name,
                severity=NOTE,
            )
        else:
            yield Finding(
                "kernel-syscall",
                TEXT["call"].format(call=name, first=first, on=on),
                symbol=name,
                severity=severity,
            )
