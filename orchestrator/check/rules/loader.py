"""Loader hazards: what makes glibc's loader refuse a file, or the file break, beyond its
symbols: executable stack (elf/dl-load.c, refused from 2.41), packed relocations (DT_RELR,
elf/dl-version.c's GLIBC_ABI_DT_RELR check), DT_TEXTREL, hash tables, x86-64 PLT marking,
static TLS (elf/dl-tls.c's surplus), TLS descriptors, page alignment, x86 ISA levels
(sysdeps/x86/dl-prop.h), search paths and unloading."""

from __future__ import annotations

from ...elffile import (
    DF_1_NODELETE,
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
    PF_X,
    PT_GNU_STACK,
    PT_LOAD,
    PT_TLS,
    ElfFile,
)
from ...targets import by_elf_machine
from ..render import LIST_LIMIT
from ..report import VIOLATION, WARNING, Finding
from .context import Context, Items, needs

R_X86_64_JUMP_SLOT = 7
PAGE_64K = 0x10000

TEXT = {
    "no-stack-header": (
        "no PT_GNU_STACK program header, so the loader assumes an executable "
        'stack on {arch}: glibc >= {refused} refuses to dlopen it ("cannot '
        'enable executable stack"), older glibc makes every thread stack '
        "executable; link with -z noexecstack"
    ),
    "exec-stack": (
        "PT_GNU_STACK asks for an executable stack: glibc >= {refused} refuses to "
        'dlopen it ("cannot enable executable stack"), older glibc makes every '
        "thread stack executable; usually an assembly object without a "
        '.note.GNU-stack section: add `.section .note.GNU-stack,"",@progbits` to it, '
        "or link with -z noexecstack"
    ),
    "textrel": (
        "DT_TEXTREL: the loader must write into the code to relocate it; SELinux "
        "(execmod) and hardened systems refuse that, and the pages cannot be shared; "
        "some C or assembly object was built without -fPIC: rebuild it with -fPIC and "
        "link with -z text to find it"
    ),
    "relr-too-new": (
        "DT_RELR packed relocations need glibc {first} (target {glibc}): older "
        "glibc ignores them silently and the library crashes on first use"
        "{no_marker}; link without -z pack-relative-relocs"
    ),
    "relr-no-marker-either": (
        "; there is no GLIBC_ABI_DT_RELR need either, so glibc >= {first} refuses it too"
    ),
    "relr-no-marker": (
        "DT_RELR without a GLIBC_ABI_DT_RELR version need: glibc >= {first} "
        'refuses it ("DT_RELR without GLIBC_ABI_DT_RELR dependency"); old lld '
        "`--pack-dyn-relocs=relr` does this; link with -z pack-relative-relocs "
        "(GNU ld >= 2.38, lld >= 15) or without packed relocations"
    ),
    "gnu-hash-only": (
        "only DT_GNU_HASH, which glibc < {first} cannot read; link with --hash-style=both"
    ),
    "mark-plt": (
        "x86-64 PLT marking (-z mark-plt: DT_X86_64_PLT or JUMP_SLOT addends): glibc < "
        "{first} adds the addend and jumps to a wrong address; link without -z "
        "mark-plt"
    ),
    "static-tls": (
        "uses the initial-exec TLS model ({names}; {size} bytes of its own TLS): a "
        "library loaded with dlopen must then fit into glibc's static TLS surplus "
        "(about {surplus} bytes shared by all such libraries, tunable "
        'glibc.rtld.optional_static_tls), else dlopen fails with "cannot allocate '
        'memory in static TLS block"; compile with -ftls-model=global-dynamic '
        "(jemalloc/mimalloc: disable_initial_exec_tls)"
    ),
    "tlsdesc": (
        "uses TLS descriptors (-mtls-dialect=gnu2); glibc before {fixed} has known bugs "
        "in them (BZ #31372, #31501); compile C code with -mtls-dialect=gnu if you see "
        "TLS crashes"
    ),
    "page-alignment": (
        "PT_LOAD at {vaddr:#x} (offset {offset:#x}, align {align:#x}) is not 64 "
        "KiB-aligned: kernels with 64K pages (RHEL/CentOS {arch}) refuse it "
        '("ELF load command address/offset not page-aligned"); link with -z '
        "max-page-size=65536"
    ),
    "x86-isa-level": (
        "marked as needing x86-64-v{level} (GNU_PROPERTY_X86_ISA_1_NEEDED): glibc "
        '>= {refused} refuses to load it on older CPUs ("CPU ISA level is lower '
        'than required"); build for the default x86-64 level unless every target '
        "CPU has it"
    ),
    "search-path": (
        "DT_{tag} entry {entry!r} is not relative to $ORIGIN: every target machine "
        "will search that folder for dependencies (it may not exist, or someone else "
        "may control it); use $ORIGIN-relative paths or none (patchelf "
        "--remove-rpath)"
    ),
    "nodelete": (
        "DF_1_NODELETE: dlclose never unloads the library (plugin reloading will not "
        "work); it comes from -z nodelete or a polyfill"
    ),
    "gnu-unique": (
        "STB_GNU_UNIQUE symbols: glibc never unloads the library; they come from C++ "
        "inline/template statics, compile with -fno-gnu-unique to avoid them"
    ),
}


def check_loader_hazards(elf: ElfFile, ctx: Context) -> Items:
    yield from check_stack(elf, ctx)
    yield from check_relocations(elf, ctx)
    yield from check_tls(elf, ctx)
    yield from check_segments(elf, ctx)
    yield from check_paths_and_unloading(elf, ctx)


def check_stack(elf: ElfFile, ctx: Context) -> Items:
    loader = ctx.policy.loader
    refused = loader.execstack_refused_from
    stack = elf.segment(PT_GNU_STACK)
    if stack is None:
        if ctx.target.zig not in loader.stack_not_executable_by_default:
            yield Finding(
                "exec-stack", TEXT["no-stack-header"].format(arch=ctx.arch, refused=refused)
            )
    elif stack.flags & PF_X:
        yield Finding("exec-stack", TEXT["exec-stack"].format(refused=refused))


def check_relocations(elf: ElfFile, ctx: Context) -> Items:
    loader = ctx.policy.loader
    if elf.has_tag(DT_TEXTREL) or elf.dt_flags & DF_TEXTREL:
        yield Finding("textrel", TEXT["textrel"])
    if elf.has_tag(DT_RELR) or elf.has_tag(DT_ANDROID_RELR):
        first = loader.relr_glibc
        marker = any(n.name == "GLIBC_ABI_DT_RELR" for n in elf.version_needs)
        yield needs(first)
        if ctx.above(first):
            no_marker = "" if marker else TEXT["relr-no-marker-either"].format(first=first)
            yield Finding(
                "relr",
                TEXT["relr-too-new"].format(first=first, glibc=ctx.glibc, no_marker=no_marker),
            )
        elif not marker:
            yield Finding("relr", TEXT["relr-no-marker"].format(first=first))
    if elf.has_tag(DT_GNU_HASH) and not elf.has_tag(DT_HASH):
        first = loader.gnu_hash_from
        yield needs(first)
        if ctx.above(first):
            yield Finding("gnu-hash-only", TEXT["gnu-hash-only"].format(first=first))
    if elf.machine == "EM_X86_64":
        first = loader.x86_64_plt_addend_ignored_from
        marked = (
            elf.has_tag(DT_X86_64_PLT)
            or elf.has_tag(DT_X86_64_PLTSZ)
            or elf.has_tag(DT_X86_64_PLTENT)
        )
        if ctx.above(first) and (marked or elf.plt_addends_nonzero(R_X86_64_JUMP_SLOT)):
            yield needs(first)
            yield Finding("mark-plt", TEXT["mark-plt"].format(first=first))


def check_tls(elf: ElfFile, ctx: Context) -> Items:
    loader = ctx.policy.loader
    own = by_elf_machine(elf.machine)  # relocation numbers are the file's machine's
    ie_types = own.tls_initial_exec_relocs if own else frozenset()
    tlsdesc = own.tls_descriptor_relocs if own else frozenset()
    types = elf.relocation_types_among(ie_types | tlsdesc) if elf.uses_tls else frozenset()
    uses_ie = bool(types & ie_types)
    if uses_ie or elf.dt_flags & DF_STATIC_TLS:
        tls = elf.segment(PT_TLS)
        size = tls.memsz if tls else 0
        names = sorted(
            {
                (elf.symbol_name(sym) if sym else "") or "(its own TLS block)"
                for _t, sym in elf.relocations_of(ie_types)
            }
            if uses_ie
            else set()
        )
        surplus = loader.static_tls_surplus_bytes
        what = TEXT["static-tls"].format(
            names=", ".join(names[:LIST_LIMIT]) if names else "DF_STATIC_TLS",
            size=size,
            surplus=surplus,
        )
        yield Finding("static-tls", what, severity=VIOLATION if size > surplus else WARNING)
    fixed = loader.tlsdesc_fixed_in
    if types & tlsdesc and ctx.above(fixed):
        yield Finding("tlsdesc", TEXT["tlsdesc"].format(fixed=fixed), severity=WARNING)


def check_segments(elf: ElfFile, ctx: Context) -> Items:
    loader = ctx.policy.loader
    if ctx.target.zig in loader.page_size_64k_targets:
        for seg in elf.segments:
            if seg.type != PT_LOAD:
                continue
            if (seg.vaddr - seg.offset) % PAGE_64K or seg.align % PAGE_64K:
                yield Finding(
                    "page-alignment",
                    TEXT["page-alignment"].format(
                        vaddr=seg.vaddr, offset=seg.offset, align=seg.align, arch=ctx.arch
                    ),
                )
                break
    if elf.machine == "EM_X86_64":
        isa = elf.x86_isa_needed
        if isa and isa & ~1:
            yield Finding(
                "x86-isa-level",
                TEXT["x86-isa-level"].format(
                    level=isa.bit_length(),  # 2 -> v2, 4 -> v3, 8 -> v4
                    refused=loader.x86_isa_level_refused_from,
                ),
                severity=WARNING,
            )


def check_paths_and_unloading(elf: ElfFile, ctx: Context) -> Items:
    for tag, value in (("RUNPATH", elf.runpath), ("RPATH", elf.rpath)):
        if value is None:
            continue
        for entry in value.split(":"):
            if entry.startswith(("$ORIGIN", "${ORIGIN}")):
                continue
            shown = entry or "(empty: the current directory)"
            yield Finding(
                "search-path",
                TEXT["search-path"].format(tag=tag, entry=shown),
                library=entry,
                severity=WARNING,
            )
    if elf.dt_flags_1 & DF_1_NODELETE:
        yield Finding("nodelete", TEXT["nodelete"], severity=WARNING)
    if elf.has_gnu_unique:
        yield Finding("gnu-unique", TEXT["gnu-unique"], severity=WARNING)
