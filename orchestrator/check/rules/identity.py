"""Is the file for the target at all: class, byte order, machine, ABI flags, OSABI and ABI
version (glibc's elf/dl-load.c `open_verify`, elf/dl-load.c's checks of EI_OSABI and
EI_ABIVERSION against LIBC_ABI_MAX), and is it a library dlopen can load (e_type, DF_1_PIE,
PT_DYNAMIC)."""

from __future__ import annotations

from ...elffile import ElfFile
from ...targets import Target
from ..discover import ElfKind, elf_kind
from ..report import NO_GLIBC, Finding
from .context import Context, Items, needs

TEXT = {
    "machine": (
        'the file is for {machine}, not {want} ({rust}): the loader refuses it ("wrong '
        'ELF class" or "invalid ELF header"); build it with --target {rust}'
    ),
    "class": (
        "the file is {bits}-bit, {arch} needs {want}-bit (ELFCLASS); the loader refuses it "
        '("wrong ELF class"); build it for {rust}'
    ),
    "endian": "the file is {have}-endian, {arch} is {want}-endian; build it for {rust}",
    "eflags": (
        "e_flags {flags:#x} lack {meaning} that {rust} uses: the loader refuses it; build "
        "it for that target"
    ),
    "osabi": (
        "EI_OSABI is {osabi}, glibc loads only SYSV (0) and GNU/Linux (3) objects; the file "
        "was built for another OS"
    ),
    "abi-unknown": (
        "EI_ABIVERSION {abi} is newer than any glibc ABI this tool knows: the loader "
        'refuses it ("ELF file ABI version invalid")'
    ),
    "abi-too-new": (
        "EI_ABIVERSION {abi} needs glibc {first} (target {glibc}): older loaders "
        'refuse it ("ELF file ABI version invalid"); it comes from features such as '
        "absolute symbols (ABSOLUTE) in the link; {rebuild}"
    ),
    "object": (
        "a relocatable object (.o), not a linked library: dlopen cannot load it; link it "
        'into a shared library (crate-type = ["cdylib"])'
    ),
    "other-type": "ELF type {type} (not a shared object): dlopen cannot load it",
    "executable": (
        "a position-dependent executable (ET_EXEC), not a shared library: dlopen "
        'refuses it ("cannot dynamically load executable"); build a cdylib '
        '(crate-type = ["cdylib"])'
    ),
    "pie": (
        "a PIE executable (DF_1_PIE), not a shared library: glibc >= {first} refuses to "
        'dlopen it ("cannot dynamically load position-independent executable", BZ '
        '#24323); build a cdylib (crate-type = ["cdylib"]), not a bin'
    ),
    "no-dynamic": (
        "no dynamic section (PT_DYNAMIC): a static executable or a broken link, "
        "dlopen cannot load it; build a cdylib"
    ),
}
_OSABI_SYSV, _OSABI_GNU = 0, 3


def arch_matches(elf: ElfFile, target: Target) -> bool:
    """Machine, class and byte order are the target's (its symbols can be judged)."""
    return (
        elf.machine == target.elf_machine
        and elf.bits == target.elf_class
        and elf.little == target.little_endian
    )


def check_identity(elf: ElfFile, ctx: Context) -> Items:
    target = ctx.target
    if elf.machine != target.elf_machine:
        yield NO_GLIBC
        yield Finding(
            "wrong-architecture",
            TEXT["machine"].format(machine=elf.machine, want=target.elf_machine, rust=target.rust),
        )
        return
    if elf.bits != target.elf_class:
        yield NO_GLIBC
        yield Finding(
            "wrong-architecture",
            TEXT["class"].format(
                bits=elf.bits, arch=ctx.arch, want=target.elf_class, rust=target.rust
            ),
        )
    if elf.little != target.little_endian:
        yield NO_GLIBC
        yield Finding(
            "wrong-architecture",
            TEXT["endian"].format(
                have="little" if elf.little else "big",
                arch=ctx.arch,
                want="little" if target.little_endian else "big",
                rust=target.rust,
            ),
        )
    rule = target.required_eflags
    if rule is not None and elf.flags & rule.mask != rule.value:
        yield NO_GLIBC
        yield Finding(
            "wrong-abi",
            TEXT["eflags"].format(flags=elf.flags, meaning=rule.meaning, rust=target.rust),
        )
    if elf.osabi not in (_OSABI_SYSV, _OSABI_GNU):
        yield NO_GLIBC
        yield Finding("wrong-osabi", TEXT["osabi"].format(osabi=elf.osabi))
    elif elf.abiversion:
        first = ctx.policy.loader.abi_versions.get(str(elf.abiversion))
        if first is None:
            yield NO_GLIBC
            yield Finding("abi-version", TEXT["abi-unknown"].format(abi=elf.abiversion))
            return
        yield needs(first)
        if ctx.above(first):
            yield Finding(
                "abi-version",
                TEXT["abi-too-new"].format(
                    abi=elf.abiversion, first=first, glibc=ctx.glibc, rebuild=ctx.rebuild_advice
                ),
            )


def is_dynamic_object(elf: ElfFile) -> bool:
    """Is there anything dynamic to check (not an object file or a static executable)?"""
    return elf_kind(elf) in _LINKED and elf.has_dynamic


_LINKED = (ElfKind.SHARED_LIBRARY, ElfKind.PIE_EXECUTABLE, ElfKind.EXECUTABLE)


def check_file_type(elf: ElfFile, ctx: Context) -> Items:
    kind = elf_kind(elf)
    if kind is ElfKind.OBJECT:
        yield NO_GLIBC
        yield Finding("not-a-library", TEXT["object"])
        return
    if kind not in _LINKED:
        yield NO_GLIBC
        yield Finding("not-a-library", TEXT["other-type"].format(type=elf.type))
        return
    if kind is ElfKind.EXECUTABLE:
        yield NO_GLIBC
        yield Finding("not-a-library", TEXT["executable"])
    elif kind is ElfKind.PIE_EXECUTABLE:
        yield NO_GLIBC
        yield Finding(
            "pie-executable", TEXT["pie"].format(first=ctx.policy.loader.pie_dlopen_refused_from)
        )
    if not elf.has_dynamic:
        yield NO_GLIBC
        yield Finding("not-a-library", TEXT["no-dynamic"])
