"""Read the parts of an ELF file that the glibc checker needs, and nothing else.

This is the one module that parses ELF (like auditwheel's elfutils.py). It reads what the
dynamic loader reads, the way glibc's ld.so reads it: the file header, the program headers,
the dynamic segment found at the last PT_DYNAMIC's address (elf/dl-load.c), the last entry of
each tag (elf/get-dynamic-info.h), and the tables those entries point at through the PT_LOAD
mapping (dynamic symbols, hash tables, .gnu.version, version needs and definitions followed
through their `next` links as elf/dl-version.c does, relocations, notes). Section headers are
only a fallback for the dynamic-symbol count; where they and the dynamic segment disagree, the
dynamic segment wins. `require_intact` refuses, as ElfError, what the loader refuses or
crashes on in those structures, so that `check` never calls such a file ok.

Work, memory and output are bounded by the input: version records walked by the file size
(and MAX_VERSION_RECORDS), decoded names by a multiple of it, symbols by what fits in it.

It uses `struct` over an mmap instead of pyelftools. Measured on 400 host libraries:
auditwheel's pyelftools scan of the version-need table alone takes ~1.3 ms per library; this
reader, for every table the checker needs, ~0.25 ms (bench/bench_check.py has the whole run).
Every offset and count is checked against the file size, every walk is bounded, and every
malformation raises `ElfError` with one line saying what is wrong; nothing else escapes.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar, overload

_T = TypeVar("_T")


class ElfError(Exception):
    """The file is not ELF, or is truncated or malformed; the message says what and where."""


# e_type
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
# p_type / p_flags
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_TLS = 1, 2, 3, 4, 7
PT_GNU_STACK, PT_GNU_RELRO, PT_GNU_PROPERTY = 0x6474E551, 0x6474E552, 0x6474E553
PF_X, PF_W, PF_R = 1, 2, 4
# d_tag
DT_NULL, DT_NEEDED, DT_PLTRELSZ, DT_PLTGOT, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 2, 3, 4, 5, 6
DT_RELA, DT_RELASZ, DT_RELAENT, DT_STRSZ, DT_SYMENT, DT_SONAME, DT_RPATH = 7, 8, 9, 10, 11, 14, 15
DT_REL, DT_RELSZ, DT_RELENT, DT_PLTREL, DT_TEXTREL, DT_JMPREL = 17, 18, 19, 20, 22, 23
DT_RUNPATH, DT_FLAGS, DT_RELRSZ, DT_RELR = 29, 30, 35, 36
DT_ANDROID_RELR = 0x6FFFE000
DT_GNU_HASH, DT_VERSYM, DT_FLAGS_1 = 0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFB
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_X86_64_PLT, DT_X86_64_PLTSZ, DT_X86_64_PLTENT = 0x70000000, 0x70000001, 0x70000003
DF_TEXTREL, DF_STATIC_TLS = 0x4, 0x10
DF_1_NODELETE, DF_1_PIE = 0x8, 0x08000000
VER_FLG_BASE, VER_FLG_WEAK = 0x1, 0x2
SHT_DYNSYM = 11
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
STT_TLS = 6
NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002

# e_machine numbers -> the names targets.py uses (pyelftools' spelling).
MACHINES = {
    3: "EM_386",
    8: "EM_MIPS",
    20: "EM_PPC",
    21: "EM_PPC64",
    22: "EM_S390",
    40: "EM_ARM",
    62: "EM_X86_64",
    183: "EM_AARCH64",
    243: "EM_RISCV",
    258: "EM_LOONGARCH",
}

_HOST_LITTLE = sys.byteorder == "little"
_ELFOSABI_GNU = 3
_MIN_PAGE = 4096  # the smallest page size of any target; ld.so checks p_align against it
# Address space the PT_LOAD segments of one file may span: 1 TiB. ld.so maps the whole span
# at once (elf/dl-map-segments.h); far past any machine's memory the kernel refuses the
# mapping, so a p_memsz of terabytes is corruption, not a library (the largest real ones
# span a few GB).
_MAX_MAPPED_SPAN = 1 << 40
# Version records (vernaux, verdef) one file may hold, all chains together. The .gnu.version
# index is 15 bits (vna_other & 0x7fff, elf/dl-version.c), so a file can give at most 32767
# versions a meaning; a real library has a few dozen. Past this cap the file is refused as
# malformed instead of being walked: it bounds the work, the memory and the report (each need
# is one line of check's output) whatever the chains do.
MAX_VERSION_RECORDS = 1 << 15
# Bytes of symbol and version names decoded per file: 8 x the file size + 1 MiB. Names live in
# DT_STRTAB once; a linker's suffix merging lets names share bytes, so a real file decodes
# about its string table's size. A crafted one whose thousands of names are each a different
# suffix of one long string would decode n^2 bytes (a 264 KB file, gigabytes); it is refused.
_NAME_BUDGET_FACTOR, _NAME_BUDGET_FLOOR = 8, 1 << 20
# DT_PLTREL values the loader accepts: x86-64 and AArch64 define ELF_MACHINE_NO_REL, so
# elf/get-dynamic-info.h asserts DT_PLTREL == DT_RELA there (sysdeps/*/dl-machine.h).
_PLTREL_ALLOWED = {"EM_X86_64": (DT_RELA,), "EM_AARCH64": (DT_RELA,)}
# Machines whose loader never writes into the dynamic section (DL_RO_DYN_SECTION in their
# sysdeps/*/ldsodefs.h before glibc 2.35); on the others it must be writable.
_READ_ONLY_DYNAMIC = frozenset({"EM_MIPS", "EM_RISCV"})
_TAG_NAMES = {
    DT_RELA: "DT_RELA",
    DT_RELAENT: "DT_RELAENT",
    DT_REL: "DT_REL",
    DT_RELENT: "DT_RELENT",
    DT_RELASZ: "DT_RELASZ",
    DT_RELSZ: "DT_RELSZ",
    DT_PLTREL: "DT_PLTREL",
    DT_JMPREL: "DT_JMPREL",
    DT_PLTRELSZ: "DT_PLTRELSZ",
    DT_PLTGOT: "DT_PLTGOT",
}


class Segment(NamedTuple):
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int


class VersionNeed(NamedTuple):
    """One vernaux: `name` (GLIBC_2.17) needed from `file` (libc.so.6), `index` = vna_other."""

    file: str
    name: str
    flags: int
    index: int  # type: ignore[assignment]  # shadows tuple.index; the ELF name, kept

    @property
    def weak(self) -> bool:
        return bool(self.flags & VER_FLG_WEAK)


class VersionDef(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index; the ELF name, kept
    flags: int
    name: str


class UndefinedSymbol(NamedTuple):
    """A dynamic symbol this file imports; `version`/`file` come from .gnu.version (or None).

    A tuple, not a dataclass: a big C++ library imports thousands of these.
    """

    name: str
    weak: bool
    version: str | None
    file: str | None


class cached_property(Generic[_T]):
    """functools.cached_property without its per-access lock (Python <= 3.11 takes an RLock
    on every access, which cost 2 µs x thousands of reads per run). Non-data descriptor: after
    the first read the value sits in the instance __dict__ and is found there directly."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> cached_property[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...

    def __get__(self, obj: object, owner: type | None = None) -> _T | cached_property[_T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


class _Layout:
    """The struct formats of one (class, byte order) combination."""

    def __init__(self, is64: bool, little: bool) -> None:
        e = "<" if little else ">"
        if is64:
            self.ehdr = struct.Struct(e + "HHIQQQIHHHHHH")
            self.phdr = struct.Struct(e + "IIQQQQQQ")
            self.shdr = struct.Struct(e + "IIQQQQIIQQ")
            self.dyn = struct.Struct(e + "qQ")
            self.sym = struct.Struct(e + "IBBHQQ")
            self.rela = struct.Struct(e + "QQq")
            self.rel = struct.Struct(e + "QQ")
        else:
            self.ehdr = struct.Struct(e + "HHIIIIIHHHHHH")
            self.phdr = struct.Struct(e + "IIIIIIII")
            self.shdr = struct.Struct(e + "IIIIIIIIII")
            self.dyn = struct.Struct(e + "iI")
            self.sym = struct.Struct(e + "IIIBBH")
            self.rela = struct.Struct(e + "IIi")
            self.rel = struct.Struct(e + "II")
        self.u16 = struct.Struct(e + "H")
        self.u32 = struct.Struct(e + "I")
        self.verneed = struct.Struct(e + "HHIII")
        self.vernaux = struct.Struct(e + "IHHII")
        self.verdef = struct.Struct(e + "HHHHIII")
        self.verdaux = struct.Struct(e + "II")
        self.note = struct.Struct(e + "III")
        self.prop = struct.Struct(e + "II")
        self.hash = struct.Struct(e + "II")  # DT_HASH: nbucket, nchain
        self.gnu_hash = struct.Struct(e + "III")  # nbuckets, symoffset, bloom_size


_LAYOUTS = {
    (is64, little): _Layout(is64, little) for is64 in (False, True) for little in (False, True)
}
# A st_info byte -> 1 if its binding is STB_GNU_UNIQUE: lets bytes.translate scan all symbols.
_new_tuple = tuple.__new__  # builds an UndefinedSymbol without NamedTuple's Python __new__
_UNIQUE_TABLE = bytes(1 if b >> 4 == STB_GNU_UNIQUE else 0 for b in range(256))


class ElfFile:
    """An ELF image in memory. Cheap to build: each table is read on first use."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        self.size = len(data)
        if self.size < 16 or data[:4] != b"\x7fELF":
            raise ElfError("not an ELF file")
        ei_class, ei_data, ei_version = data[4], data[5], data[6]
        if ei_class not in (1, 2):
            raise ElfError(f"unknown ELF class {ei_class} (EI_CLASS must be 1 or 2)")
        if ei_data not in (1, 2):
            raise ElfError(f"unknown byte order {ei_data} (EI_DATA must be 1 or 2)")
        if ei_version != 1:
            raise ElfError(f"unknown ELF version {ei_version} in e_ident")
        self.is64 = ei_class == 2
        self.bits = 64 if self.is64 else 32
        self.little = ei_data == 1
        self.osabi, self.abiversion = data[7], data[8]
        self.layout = _LAYOUTS[(self.is64, self.little)]
        (
            self.type,
            self.machine_number,
            self._e_version,
            _entry,
            self._phoff,
            self._shoff,
            self.flags,
            _ehsize,
            phentsize,
            phnum,
            shentsize,
            self._shnum,
            _shstrndx,
        ) = self._unpack(self.layout.ehdr, 16, "the ELF header")
        self.machine = MACHINES.get(self.machine_number) or f"EM_{self.machine_number}"
        if phnum == 0xFFFF:  # PN_XNUM: the real count is in section 0's sh_info
            first = self._section_headers(shentsize, limit=1)
            if not first:
                raise ElfError(
                    "e_phnum is PN_XNUM (0xffff) but there is no section header 0 "
                    "holding the real count"
                )
            phnum = first[0][7]
        if phnum and phentsize != self.layout.phdr.size:
            raise ElfError(f"e_phentsize is {phentsize}, expected {self.layout.phdr.size}")
        self._phnum = phnum
        self._shentsize = shentsize

    # -- bounded primitives -------------------------------------------------------------
    def _unpack(self, st: struct.Struct, offset: int, what: str) -> tuple[Any, ...]:
        if offset < 0 or offset + st.size > self.size:
            raise ElfError(
                f"{what} at file offset {offset:#x} runs past the end of the file "
                f"({self.size} bytes): truncated or corrupt"
            )
        return st.unpack_from(self.data, offset)

    def _slice(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ElfError(
                f"{what} ({size} bytes at file offset {offset:#x}) runs past the end "
                f"of the file ({self.size} bytes): truncated or corrupt"
            )
        return self.data[offset : offset + size]

    def _section_headers(self, shentsize: int, limit: int | None = None) -> list[tuple[Any, ...]]:
        count = self._shnum if limit is None else limit
        if not self._shoff or not count:
            return []
        if shentsize != self.layout.shdr.size:
            raise ElfError(f"e_shentsize is {shentsize}, expected {self.layout.shdr.size}")
        if count * shentsize > self.size:
            raise ElfError(f"e_shnum {count} section headers cannot fit in the file")
        return [
            self._unpack(self.layout.shdr, self._shoff + i * shentsize, "a section header")
            for i in range(count)
        ]

    # -- program headers and the address space -------------------------------------------
    def require_intact(self) -> None:
        """Raise ElfError when a PT_LOAD segment's file part runs past the end of the file (a
        copy that stopped early): the loader maps it all the same and the process dies of
        SIGBUS when it touches the missing pages, so it is malformed input, not a library.
        Then everything `require_loadable` refuses, which the loader refuses too."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.offset + seg.filesz > self.size:
                raise ElfError(
                    f"a PT_LOAD segment ({seg.filesz} bytes at file offset "
                    f"{seg.offset:#x}) runs past the end of the file ({self.size} "
                    "bytes): truncated or corrupt"
                )
        self.require_loadable()

    @cached_property
    def segments(self) -> list[Segment]:
        if not self._phnum:
            return []
        st = self.layout.phdr
        if self._phnum * st.size > self.size:
            raise ElfError(f"e_phnum {self._phnum} program headers cannot fit in the file")
        raw = self._slice(self._phoff, self._phnum * st.size, "the program headers")
        if self.is64:
            return [
                _new_tuple(Segment, (p_type, p_flags, off, vaddr, filesz, memsz, align))
                for p_type, p_flags, off, vaddr, _paddr, filesz, memsz, align in st.iter_unpack(raw)
            ]
        return [
            _new_tuple(Segment, (p_type, p_flags, off, vaddr, filesz, memsz, align))
            for p_type, off, vaddr, _paddr, filesz, memsz, p_flags, align in st.iter_unpack(raw)
        ]

    def segment(self, p_type: int) -> Segment | None:
        for seg in self.segments:
            if seg.type == p_type:
                return seg
        return None

    @cached_property
    def _loads(self) -> list[Segment]:
        """PT_LOAD segments, last first: ld.so maps them in order with MAP_FIXED
        (elf/dl-map-segments.h), so where two overlap the later one is what memory holds."""
        return [s for s in reversed(self.segments) if s.type == PT_LOAD]

    def _offset_of(self, addr: int, size: int, what: str) -> int:
        """File offset of `size` bytes at address `addr`, inside one PT_LOAD's file part.

        ld.so reaches every dynamic table through its address once the PT_LOAD segments are
        mapped (D_PTR(map, l_info[...]) = l_addr + d_ptr, elf/get-dynamic-info.h), never
        through section headers or p_offset; this is that mapping, bounds-checked."""
        for seg in self._loads:
            if seg.vaddr <= addr and addr + size <= seg.vaddr + seg.filesz:
                offset = seg.offset + (addr - seg.vaddr)
                if offset + size > self.size:
                    break
                if not seg.flags & PF_R:
                    raise ElfError(
                        f"{what} (at address {addr:#x}) lies in a PT_LOAD segment "
                        "without PF_R: the loader cannot read it; corrupt"
                    )
                return offset
        raise ElfError(
            f"{what} ({size} bytes at address {addr:#x}) lies outside the file's "
            "loadable segments: truncated or corrupt"
        )

    def require_loadable(self) -> None:
        """Raise ElfError for what glibc's loader refuses in the headers before it reads a
        single dynamic entry (elf/dl-load.c, open_verify and _dl_map_object_from_fd): an ABI
        version without ELFOSABI_GNU, nonzero e_ident padding, an e_version other than
        EV_CURRENT, a PT_LOAD whose p_align is not page-aligned or whose p_vaddr and p_offset
        disagree modulo p_align, PT_LOAD segments out of order or overlapping or spanning
        more than _MAX_MAPPED_SPAN, a PT_GNU_RELRO outside them, a shared library without
        PT_LOAD; then locates the dynamic segment as ld.so does (`dynamic`)
        and applies elf/get-dynamic-info.h's assertions. The page size is the smallest any
        target uses (4 KiB): a larger runtime page only refuses more."""
        if any(self.data[9:16]):
            raise ElfError(
                "nonzero padding in e_ident (bytes 9-15): glibc's loader refuses the file"
            )
        if self.abiversion and self.osabi != _ELFOSABI_GNU:
            raise ElfError(
                f"EI_ABIVERSION {self.abiversion} with EI_OSABI {self.osabi}: glibc "
                "accepts an ABI version only with ELFOSABI_GNU (3) and refuses the "
                'file ("ELF file ABI version invalid", VALID_ELF_ABIVERSION in '
                "sysdeps/unix/sysv/linux/ldsodefs.h)"
            )
        if self._e_version != 1:
            raise ElfError(
                f"e_version is {self._e_version}, not EV_CURRENT (1): glibc's "
                "loader refuses the file"
            )
        mask = (1 << self.bits) - 1
        previous_end = low = high = -1
        relro = None
        for seg in self.segments:
            if seg.type == PT_GNU_RELRO:
                relro = seg
            if seg.type != PT_LOAD:
                continue
            if seg.align & (_MIN_PAGE - 1):
                raise ElfError(
                    f"a PT_LOAD's p_align {seg.align:#x} is not page-aligned: "
                    "glibc's loader refuses it (\"ELF load command alignment not "
                    'page-aligned")'
                )
            if (seg.vaddr - seg.offset) & mask & ((seg.align - 1) & mask):
                raise ElfError(
                    f"a PT_LOAD's p_vaddr {seg.vaddr:#x} and p_offset "
                    f"{seg.offset:#x} disagree modulo p_align {seg.align:#x}: "
                    "glibc's loader refuses it (\"ELF load command address/offset "
                    'not properly aligned")'
                )
            if seg.vaddr < previous_end:
                raise ElfError(
                    f"PT_LOAD segments out of order or overlapping (the one at "
                    f"{seg.vaddr:#x} starts before {previous_end:#x}, where the one "
                    "before it ends): the gABI wants them ascending, and "
                    "_dl_map_segments (elf/dl-map-segments.h) maps the span from "
                    "the first to the last and zero-fills over the others; corrupt"
                )
            previous_end = high = seg.vaddr + max(seg.memsz, seg.filesz)
            if low < 0:
                low = seg.vaddr & ~(_MIN_PAGE - 1)
        if high >= 0:
            if high - low > min(_MAX_MAPPED_SPAN, mask):
                raise ElfError(
                    f"the PT_LOAD segments span {high - low:#x} bytes of address "
                    f"space (more than {min(_MAX_MAPPED_SPAN, mask):#x}): glibc's "
                    'loader cannot map them ("cannot map zero-fill pages" or '
                    '"failed to map segment"); corrupt'
                )
            if relro is not None:  # _dl_protect_relro (elf/dl-reloc.c): the last, truncated
                start = relro.vaddr & ~(_MIN_PAGE - 1)
                end = (relro.vaddr + relro.memsz) & ~(_MIN_PAGE - 1)
                if start != end and not low <= start <= end <= _round_up(high, _MIN_PAGE):
                    raise ElfError(
                        f"PT_GNU_RELRO ({relro.memsz:#x} bytes at "
                        f"{relro.vaddr:#x}) reaches outside the mapped "
                        "segments: glibc's loader fails (\"cannot apply additional "
                        'memory protection after relocation"); corrupt'
                    )
        if self.type == ET_DYN and not self._loads:
            raise ElfError(
                "no PT_LOAD segment: glibc's loader refuses the file (\"object file "
                'has no loadable segments")'
            )
        tags = self._tags
        if DT_PLTREL in tags and tags[DT_PLTREL] not in _PLTREL_ALLOWED.get(
            self.machine, (DT_REL, DT_RELA)
        ):
            raise ElfError(
                f"DT_PLTREL is {tags[DT_PLTREL]}, which this machine's loader "
                "does not accept (elf/get-dynamic-info.h asserts on it)"
            )
        for table, entsize_tag, entsize in (
            (DT_RELA, DT_RELAENT, self.layout.rela.size),
            (DT_REL, DT_RELENT, self.layout.rel.size),
        ):
            if table in tags and tags.get(entsize_tag) != entsize:
                raise ElfError(
                    f"{_TAG_NAMES[table]} without {_TAG_NAMES[entsize_tag]} = "
                    f"{entsize}: glibc's loader aborts on an assertion "
                    "(elf/get-dynamic-info.h)"
                )
        # _ELF_DYNAMIC_DO_RELOC (elf/dynamic-link.h) and elf_machine_runtime_setup read these
        # entries without checking that they exist, then the tables they locate.
        for present, required in (
            (DT_RELA, DT_RELASZ),
            (DT_REL, DT_RELSZ),
            (DT_PLTREL, DT_JMPREL),
            (DT_PLTREL, DT_PLTRELSZ),
            (DT_JMPREL, DT_PLTGOT),
        ):
            if present in tags and required not in tags:
                raise ElfError(
                    f"{_TAG_NAMES[present]} without {_TAG_NAMES[required]}: "
                    "glibc's loader reads the missing entry and crashes; corrupt"
                )
        for table, size_tag in ((DT_RELA, DT_RELASZ), (DT_REL, DT_RELSZ), (DT_JMPREL, DT_PLTRELSZ)):
            if table in tags and tags.get(size_tag):
                self._offset_of(tags[table], tags[size_tag], _TAG_NAMES[table])
        users = [t for t in (DT_HASH, DT_GNU_HASH, DT_RELA, DT_REL, DT_JMPREL) if t in tags]
        for table in (DT_SYMTAB, DT_STRTAB):
            if users and table not in tags:
                name = "DT_SYMTAB" if table == DT_SYMTAB else "DT_STRTAB"
                raise ElfError(
                    f"a hash table or relocations but no {name}: glibc's loader "
                    f"reads l_info[{name}] without checking it (do_lookup_x in "
                    "elf/dl-lookup.c, elf/do-rel.h) and crashes; corrupt"
                )
        if DT_VERSYM in tags and not (DT_VERNEED in tags or DT_VERDEF in tags):
            raise ElfError(
                "DT_VERSYM without version needs or definitions: glibc's loader "
                "then has no l_versions table and crashes indexing it for every "
                "relocated symbol (elf/do-rel.h); corrupt"
            )
        if (DT_VERNEED in tags or DT_VERDEF in tags) and DT_VERSYM not in tags:
            raise ElfError(
                "version needs or definitions without DT_VERSYM: glibc's loader "
                "reads l_info[DT_VERSYM] unchecked (_dl_check_map_versions, "
                "elf/dl-version.c) and crashes; corrupt"
            )
        if DT_GNU_HASH in tags:
            _ = self._gnu_hash_header  # its assertion on the Bloom filter size, the tables
        if DT_HASH in tags:
            at = self._offset_of(tags[DT_HASH], 8, "DT_HASH")
            nbucket, nchain = self.layout.hash.unpack_from(self.data, at)
            self._offset_of(tags[DT_HASH], 8 + 4 * (nbucket + nchain), "the DT_HASH table")
        # Strings the loader reads while loading: the dependencies (elf/dl-deps.c), DT_SONAME
        # (compared by _dl_map_object with each later name), the search paths.
        _ = self.needed, self.rpath, self.runpath, self._last_string(DT_SONAME)

    # -- the dynamic segment --------------------------------------------------------------
    @cached_property
    def _dynamic_segment(self) -> Segment | None:
        """The PT_DYNAMIC ld.so uses: the LAST one, since _dl_map_object_from_fd (elf/dl-load.c)
        sets l->l_ld for every PT_DYNAMIC it meets (and refuses one with p_filesz 0, as
        bullseye's glibc 2.31 does). One with p_vaddr 0 leaves l_ld 0, which
        the loader treats as no dynamic section at all."""
        chosen = None
        for seg in self.segments:
            if seg.type == PT_DYNAMIC:
                if seg.filesz == 0:  # checked per header, as the loop in dl-load.c does
                    raise ElfError(
                        "a PT_DYNAMIC with p_filesz 0: glibc's loader refuses the "
                        'file ("object file has no dynamic section")'
                    )
                chosen = seg
        return chosen if chosen is not None and chosen.vaddr else None

    @cached_property
    def dynamic(self) -> list[tuple[int, int]]:
        """(d_tag, d_val) pairs as ld.so reads them, up to DT_NULL; [] for a static file.

        ld.so finds the entries at PT_DYNAMIC's p_vaddr in the mapped segments (l->l_ld,
        elf/dl-load.c) and elf_get_dynamic_info walks them up to DT_NULL, whatever p_filesz
        says; so does this, inside the PT_LOAD holding that address (its zero-filled tail
        reads as DT_NULL). A p_offset that disagrees with the address is refused: no linker
        writes one, and a reader that believes p_offset (readelf, this module until issue 11)
        sees another table than the loader does. At most one entry per 8/16 file bytes."""
        seg = self._dynamic_segment
        if seg is None:
            return []
        st = self.layout.dyn
        for load in self._loads:
            if load.vaddr <= seg.vaddr < load.vaddr + max(load.memsz, load.filesz):
                break
        else:
            raise ElfError(
                f"PT_DYNAMIC's address {seg.vaddr:#x} is in no PT_LOAD segment: "
                "the loader cannot find the dynamic section"
            )
        if not load.flags & PF_R or (
            not load.flags & PF_W and self.machine not in _READ_ONLY_DYNAMIC
        ):
            raise ElfError(
                "the dynamic section lies in a PT_LOAD segment without PF_R|PF_W: "
                "glibc's loader writes the relocated addresses into it "
                "(elf_get_dynamic_info, ADJUST_DYN_INFO) and crashes; corrupt"
            )
        start = load.offset + (seg.vaddr - load.vaddr)
        if seg.offset != start:
            raise ElfError(
                f"PT_DYNAMIC's p_offset {seg.offset:#x} disagrees with its address "
                f"{seg.vaddr:#x}, which the loading segment puts at file offset "
                f"{start:#x}: corrupt"
            )
        file_end = min(load.offset + load.filesz, self.size)
        zero_tail = load.memsz > load.filesz  # the loader maps zeros there
        out: list[tuple[int, int]] = []
        # Fast path: the entries inside p_filesz, where every real file ends them.
        pos = start + min(seg.filesz, max(0, file_end - start)) // st.size * st.size
        for tag, val in st.iter_unpack(self.data[start:pos]):
            if tag == DT_NULL:
                return out
            out.append((tag, val))
        while True:  # past p_filesz, as far as the loader would read
            if pos + st.size > file_end:
                if zero_tail and pos >= load.offset + load.filesz:
                    break  # reads as DT_NULL
                raise ElfError(
                    "the dynamic section runs past its segment without a DT_NULL "
                    "entry: truncated or corrupt"
                )
            tag, val = st.unpack_from(self.data, pos)
            if tag == DT_NULL:
                break
            out.append((tag, val))
            pos += st.size
        return out

    @cached_property
    def _tags(self) -> dict[int, int]:
        """The value of each tag as ld.so keeps it: the LAST entry of a tag wins, because
        elf_get_dynamic_info (elf/get-dynamic-info.h) stores `info[tag] = dyn` for every
        entry. DT_NEEDED, which the loader walks entry by entry (elf/dl-deps.c), is read
        apart (`needed`)."""
        return dict(self.dynamic)

    def has_tag(self, tag: int) -> bool:
        return tag in self._tags

    def tag(self, tag: int, default: int = 0) -> int:
        return self._tags.get(tag, default)

    @cached_property
    def has_dynamic(self) -> bool:
        return bool(self.dynamic)

    @cached_property
    def _strtab(self) -> tuple[int, int]:
        if DT_STRTAB not in self._tags:
            raise ElfError("the dynamic segment has no DT_STRTAB")
        size = self._tags.get(DT_STRSZ, 0)
        return self._offset_of(self._tags[DT_STRTAB], size, "the dynamic string table"), size

    def string(self, offset: int) -> str:
        return self._string_bytes(offset).decode("utf-8", "backslashreplace")

    def _string_bytes(self, offset: int) -> bytes:
        """The NUL-terminated string at `offset` in DT_STRTAB (found by address). ld.so reads
        up to the NUL whatever DT_STRSZ says; a string that leaves DT_STRSZ is refused here
        as corrupt (stricter, never more lenient). Charged to the name budget."""
        start, size = self._strtab
        if offset < 0 or offset >= size:
            raise ElfError(f"string offset {offset:#x} is outside DT_STRTAB ({size} bytes)")
        end = self.data.find(b"\0", start + offset, start + size)
        if end < 0:
            raise ElfError("a string in DT_STRTAB is not NUL-terminated")
        self._name_bytes += end - start - offset
        if self._name_bytes > _NAME_BUDGET_FACTOR * self.size + _NAME_BUDGET_FLOOR:
            self._charge_names(0)  # raises
        return self.data[start + offset : end]

    _name_bytes = 0

    def _charge_names(self, length: int) -> None:
        """Count `length` bytes of names decoded; past _NAME_BUDGET_FACTOR x the file size
        (+ _NAME_BUDGET_FLOOR) the file is refused, so names cost memory linear in its size."""
        self._name_bytes += length
        if self._name_bytes > _NAME_BUDGET_FACTOR * self.size + _NAME_BUDGET_FLOOR:
            raise ElfError(
                f"the file's names add up to more than {_NAME_BUDGET_FACTOR} times "
                f"its size ({self.size} bytes): its strings overlap as no linker "
                "writes them; corrupt"
            )

    @cached_property
    def needed(self) -> list[str]:
        """Every DT_NEEDED in order: elf/dl-deps.c walks the dynamic entries for each one."""
        return [self.string(val) for t, val in self.dynamic if t == DT_NEEDED]

    def _last_string(self, tag: int) -> str | None:
        return self.string(self._tags[tag]) if tag in self._tags else None

    @cached_property
    def rpath(self) -> str | None:
        """DT_RPATH as ld.so uses it: the last entry (l_info[DT_RPATH]); the loader ignores
        it when DT_RUNPATH is present (elf/get-dynamic-info.h), which the caller decides."""
        return self._last_string(DT_RPATH)

    @cached_property
    def runpath(self) -> str | None:
        """DT_RUNPATH, the last entry (l_info[DT_RUNPATH])."""
        return self._last_string(DT_RUNPATH)

    @cached_property
    def dt_flags(self) -> int:
        return self.tag(DT_FLAGS)

    @cached_property
    def dt_flags_1(self) -> int:
        return self.tag(DT_FLAGS_1)

    # -- dynamic symbols ------------------------------------------------------------------
    @cached_property
    def symbol_count(self) -> int:
        """Number of .dynsym entries, from the hash tables ld.so reads (_dl_setup_hash,
        elf/dl-lookup.c: DT_GNU_HASH, else DT_HASH): the larger count when both are there, so
        that a table shortened by corruption hides no symbol; the section header only when
        the file has neither. Never more entries than the file can hold (`_dynsym`)."""
        counts = []
        if DT_GNU_HASH in self._tags:  # every symbol from symoffset on is in one chain
            counts.append(self._gnu_hash_count())
        if DT_HASH in self._tags:
            off = self._offset_of(self._tags[DT_HASH], 8, "DT_HASH")
            counts.append(self.layout.hash.unpack_from(self.data, off)[1])  # nchain
        if counts:
            return max(counts)
        symtab = self._tags.get(DT_SYMTAB)
        for sh in self._section_headers(self._shentsize):
            if sh[1] == SHT_DYNSYM and sh[3] == symtab and sh[9]:
                return int(sh[5] // sh[9])
        return 0

    @cached_property
    def _gnu_hash_header(self) -> tuple[int, int, int, int]:
        """(file offset, nbuckets, symoffset, file offset of the buckets) of DT_GNU_HASH.

        _dl_setup_hash (elf/dl-lookup.c) asserts that the Bloom filter's word count is a
        power of two; a file that fails it aborts the loader, so it is malformed here."""
        off = self._offset_of(self._tags[DT_GNU_HASH], 16, "DT_GNU_HASH")
        nbuckets, symoffset, bloom_size = self.layout.gnu_hash.unpack_from(self.data, off)
        if bloom_size & (bloom_size - 1) or (nbuckets and not bloom_size):
            raise ElfError(
                f"DT_GNU_HASH's Bloom filter has {bloom_size} words, not a power "
                "of two: glibc's loader aborts on an assertion (_dl_setup_hash) or, "
                "for 0, reads past the filter (do_lookup_x)"
            )
        size = 16 + bloom_size * (8 if self.is64 else 4) + 4 * nbuckets
        self._offset_of(self._tags[DT_GNU_HASH], size, "the DT_GNU_HASH table")
        return off, nbuckets, symoffset, off + size - 4 * nbuckets

    def _gnu_hash_count(self) -> int:
        """Highest symbol index reachable through DT_GNU_HASH, plus one. The chain walk reads
        one 4-byte word per step, each inside the file, so it ends within size/4 steps."""
        u32, data, size = self.layout.u32, self.data, self.size
        _off, nbuckets, symoffset, buckets_at = self._gnu_hash_header  # they are in the file
        buckets = array("I", data[buckets_at : buckets_at + 4 * nbuckets])
        if self.little != _HOST_LITTLE:
            buckets.byteswap()
        last = max(buckets, default=0)
        if last == 0:
            return symoffset
        if last < symoffset:
            raise ElfError("a GNU hash bucket points below the first hashed symbol")
        chain_at = buckets_at + 4 * nbuckets
        index = last
        while True:
            at = chain_at + 4 * (index - symoffset)
            if at + 4 > size:
                self._unpack(u32, at, "the GNU hash chain")  # raises: the walk left the file
            index += 1
            if u32.unpack_from(data, at)[0] & 1:
                return index

    @cached_property
    def _dynsym(self) -> tuple[int, int]:
        """(file offset, count) of the dynamic symbol table."""
        count = self.symbol_count
        if not count or DT_SYMTAB not in self._tags:
            return 0, 0
        entsize = self.layout.sym.size
        if self._tags.get(DT_SYMENT, entsize) != entsize:
            raise ElfError(f"DT_SYMENT is {self._tags[DT_SYMENT]}, expected {entsize}")
        if count * entsize > self.size:
            raise ElfError(f"{count} dynamic symbols cannot fit in the file")
        start = self._offset_of(self._tags[DT_SYMTAB], count * entsize, "the dynamic symbols")
        if any(self.data[start : start + entsize]):
            raise ElfError(
                "dynamic symbol 0 is not the null symbol the gABI requires: "
                "DT_SYMTAB points at something else than a symbol table; corrupt"
            )
        return start, count

    def _symbol(self, index: int) -> tuple[str, int, int]:
        """(name, st_info, st_shndx) of dynamic symbol `index`."""
        start, count = self._dynsym
        if not 0 <= index < count:
            raise ElfError(f"symbol index {index} is outside the {count} dynamic symbols")
        fields = self._unpack(self.layout.sym, start + index * self.layout.sym.size, "a symbol")
        if self.is64:
            name, info, _other, shndx, _value, _size = fields
        else:
            name, _value, _size, info, _other, shndx = fields
        return self.string(name), info, shndx

    def symbol_name(self, index: int) -> str:
        return self._symbol(index)[0]

    def _column(self, field_offset: int) -> bytes:
        """One byte of every dynamic symbol (e.g. st_info), as one bytes object: a strided
        slice of the file (`_dynsym` checked that the table fits), not a copy of the table."""
        start, count = self._dynsym
        entsize = self.layout.sym.size
        return self.data[start + field_offset : start + count * entsize : entsize]

    @cached_property
    def undefined_symbols(self) -> list[UndefinedSymbol]:
        """Every imported symbol with its binding and version (index 0 is the null symbol).

        At most one per symbol-table entry, and the table must fit in the file (`_dynsym`):
        a file of N bytes yields at most N/24 symbols (N/16 for 32-bit), whose names together
        stay within the name budget (_NAME_BUDGET_FACTOR). The columns and tables are read
        with C-level slices and copies, so that only the imports cost Python work."""
        start, count = self._dynsym
        if count < 2:
            return []
        entsize = self.layout.sym.size
        end = start + count * entsize
        data = self.data
        shndx_at, info_at = (6, 4) if self.is64 else (14, 12)
        low = data[start + shndx_at : end : entsize]  # st_shndx, one byte column each
        high = data[start + shndx_at + 1 : end : entsize]
        infos = data[start + info_at : end : entsize]
        names_at = self._words(start, end)  # st_name is word 0 of each entry
        stride = entsize // 4
        versions = self._version_of_index
        versym = self._versym_offset(count)
        if versym is not None:
            versym_table = array("H", data[versym : versym + 2 * count])
            if self.little != _HOST_LITTLE:
                versym_table.byteswap()
        str_start, str_size = self._strtab
        strtab = data[str_start : str_start + str_size]
        out = []
        names = 0  # bytes of names decoded, held under the name budget as they grow
        budget = _NAME_BUDGET_FACTOR * self.size + _NAME_BUDGET_FLOOR - self._name_bytes
        index = low.find(0, 1)
        while index >= 0:  # C-speed scan: only st_shndx == SHN_UNDEF (0) reaches Python
            if not high[index]:
                info = infos[index]
                if info & 0xF == STT_TLS:
                    self._imports_tls = True
                bind = info >> 4
                if bind != STB_LOCAL:  # st_name 0 is the name "", which ld.so looks up
                    name_off = names_at[index * stride]
                    name_end = strtab.find(0, name_off)
                    if name_end < 0:  # also when st_name is past DT_STRSZ
                        raise ElfError(f"the name of symbol {index} is outside DT_STRTAB")
                    names += name_end - name_off
                    if names > budget:
                        self._charge_names(names)  # raises
                    name = strtab[name_off:name_end].decode("utf-8", "backslashreplace")
                    version = file = None
                    if versym is not None:
                        ndx = versym_table[index] & 0x7FFF
                        if ndx > 1:
                            known = versions.get(ndx)
                            if known is None:
                                raise ElfError(
                                    f"symbol {name} has version index {ndx}, which no "
                                    "version need or definition declares"
                                )
                            version, file = known
                    out.append(_new_tuple(UndefinedSymbol, (name, bind == STB_WEAK, version, file)))
            index = low.find(0, index + 1)
        self._charge_names(names)
        return out

    def _words(self, start: int, end: int) -> array[int]:
        """The file's bytes start..end (inside it) as 32-bit words in host order."""
        words = array("I", self.data[start:end])
        if self.little != _HOST_LITTLE:
            words.byteswap()
        return words

    @property
    def uses_tls(self) -> bool:
        """Has its own TLS block (PT_TLS) or imports a TLS symbol. Without either there can be
        no TLS relocation, so the relocation tables need not be scanned for them."""
        if self.segment(PT_TLS) is not None:
            return True
        self.undefined_symbols  # noqa: B018 - sets _imports_tls while scanning
        return self._imports_tls

    _imports_tls = False

    @cached_property
    def has_gnu_unique(self) -> bool:
        """Any STB_GNU_UNIQUE symbol (it keeps the library from ever being unloaded)."""
        if not self._dynsym[1]:
            return False
        info = self._column(4 if self.is64 else 12)
        return 1 in info.translate(_UNIQUE_TABLE)

    # -- symbol versions ------------------------------------------------------------------
    def _versym_offset(self, count: int) -> int | None:
        if DT_VERSYM not in self._tags:
            return None
        return self._offset_of(self._tags[DT_VERSYM], 2 * count, ".gnu.version")

    def _version_records(
        self, addr_tag: int, record: struct.Struct, what: str
    ) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """(address, fields) of each record of a DT_VERNEED/DT_VERDEF chain, as
        _dl_check_map_versions (elf/dl-version.c) walks it: from the tag's address through
        each record's `next` (its last field) until a zero, in the mapped address space.
        DT_VERNEEDNUM/DT_VERDEFNUM are not consulted: the loader never reads them."""
        yield from self._chain(self._tags[addr_tag], record, what)

    def _chain(
        self, addr: int, record: struct.Struct, what: str
    ) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """Records linked by a relative `next` (the last field) from `addr`, each bounds-
        checked, loop-checked and charged to the file's record budget (`_charge_records`)."""
        mask = (1 << self.bits) - 1
        seen: set[int] = set()
        data, size, unpack = self.data, record.size, record.unpack_from
        loads = self._loads
        while True:
            if addr in seen:
                raise ElfError(f"the {what} records form a loop")
            seen.add(addr)
            self._records_walked += 1
            if self._records_walked > self._record_limit:
                self._charge_records(what)  # raises
            seg = loads[0] if len(loads) == 1 else None  # inline _offset_of's common case
            if (
                seg is not None
                and seg.flags & PF_R
                and seg.vaddr <= addr
                and addr + size <= seg.vaddr + seg.filesz
                and seg.offset + (addr - seg.vaddr) + size <= self.size
            ):
                fields = unpack(data, seg.offset + (addr - seg.vaddr))
            else:
                fields = unpack(data, self._offset_of(addr, size, f"a {what} record"))
            yield addr, fields
            if not fields[-1]:
                return
            addr = (addr + fields[-1]) & mask  # pointer arithmetic wraps, as in the loader

    @cached_property
    def _record_limit(self) -> int:
        return min(MAX_VERSION_RECORDS, self.size // 16)

    _records_walked = 0

    def _charge_records(self, what: str) -> None:
        """Count one version record walked. A file holds at most size/16 of them (each
        verneed, vernaux and verdef takes 16 bytes or more) and at most MAX_VERSION_RECORDS;
        chains that walk more share records or loop, which no linker writes."""
        if self._records_walked > self._record_limit:
            raise ElfError(
                f"the version records ({what}) walk more entries than the file "
                f"can hold ({self._record_limit} in {self.size} bytes): the chains "
                "loop or share entries; corrupt"
            )

    @cached_property
    def version_needs(self) -> list[VersionNeed]:
        """Every vernaux of DT_VERNEED, in chain order (readelf -V's "Version needs"), read
        as _dl_check_map_versions (elf/dl-version.c) reads them: the first verneed must have
        vn_version 1 ("unsupported version of Verneed record"); each verneed's vernaux are
        followed through vna_next until it is zero and vn_cnt is ignored, so is
        DT_VERNEEDNUM. Identical entries are reported once (the loader checks them alike).

        The loader finds a needed version by vna_hash, comparing the name only when the
        hashes match (match_symbol): a non-weak need whose vna_hash is not the ELF hash of
        its name can never be found, so the loader refuses it ("version not found") and it
        is an ElfError here, whatever the name says."""
        if DT_VERNEED not in self._tags:
            return []
        lay = self.layout
        out: dict[VersionNeed, None] = {}
        mask = (1 << self.bits) - 1
        vernaux, unpack_aux = lay.vernaux, lay.vernaux.unpack_from
        data, offset_of, hashes = self.data, self._offset_of, _ELF_HASHES
        first = True
        for addr, (version, _cnt, file_off, aux, _next) in self._version_records(
            DT_VERNEED, lay.verneed, "version need"
        ):
            if first and version != 1:
                raise ElfError(
                    f"unsupported version {version} of the first Verneed record "
                    "(glibc's loader accepts only 1)"
                )
            first = False
            file = self.string(file_off)
            aux_addr = (addr + aux) & mask
            seen: set[int] = set()
            while True:  # _chain, inlined: this loop runs for every need of every file
                if aux_addr in seen:
                    raise ElfError(f"the version need entry of {file} records form a loop")
                seen.add(aux_addr)
                self._records_walked += 1
                if self._records_walked > self._record_limit:
                    self._charge_records(f"version need entry of {file}")  # raises
                vna_hash, flags, other, name_off, aux_next = unpack_aux(
                    data,
                    offset_of(aux_addr, vernaux.size, f"a version need entry of {file} record"),
                )
                raw = self._string_bytes(name_off)
                name = raw.decode("utf-8", "backslashreplace")
                if not flags & VER_FLG_WEAK and vna_hash != (hashes.get(raw) or _elf_hash(raw)):
                    raise ElfError(
                        f"the version need {name} (from {file}) has vna_hash "
                        f"{vna_hash:#x}, not its name's ELF hash "
                        f"{_elf_hash(raw):#x}: glibc's loader looks versions up "
                        "by hash and refuses it; corrupt"
                    )
                out[_new_tuple(VersionNeed, (file, name, flags, other))] = None
                if not aux_next:
                    break
                aux_addr = (aux_addr + aux_next) & mask
        return list(out)

    @cached_property
    def version_defs(self) -> list[VersionDef]:
        """Every verdef of DT_VERDEF, named by the verdaux at vd_aux (the loader reads it
        whatever vd_cnt says), through vd_next as elf/dl-version.c walks them."""
        if DT_VERDEF not in self._tags:
            return []
        lay = self.layout
        out: dict[VersionDef, None] = {}
        for addr, (_ver, flags, ndx, _cnt, _hash, aux, _next) in self._version_records(
            DT_VERDEF, lay.verdef, "version definition"
        ):
            aux_at = self._offset_of(
                (addr + aux) & ((1 << self.bits) - 1), lay.verdaux.size, "a verdaux entry"
            )
            name_off, _ = lay.verdaux.unpack_from(self.data, aux_at)
            out[VersionDef(ndx, flags, self.string(name_off))] = None
        return list(out)

    @cached_property
    def _version_of_index(self) -> dict[int, tuple[str, str | None]]:
        """.gnu.version index -> (version name, needed file or None for a definition), filled
        in the loader's order (elf/dl-version.c): the needs in chain order, a later one
        overwriting an earlier one's index, then the definitions except VER_FLG_BASE, which
        overwrite needs of the same index."""
        out: dict[int, tuple[str, str | None]] = {}
        for need in self.version_needs:
            out[need.index & 0x7FFF] = (need.name, need.file)
        for d in self.version_defs:
            if not d.flags & VER_FLG_BASE:
                out[d.index & 0x7FFF] = (d.name, None)
        return out

    # -- relocations ----------------------------------------------------------------------
    def _relocation_tables(self) -> Iterator[tuple[int, int, struct.Struct]]:
        """(file offset, size, entry format) of DT_RELA, DT_REL and DT_JMPREL, each inside
        the file (`_offset_of`)."""
        lay = self.layout
        tables = [(DT_RELA, DT_RELASZ, True), (DT_REL, DT_RELSZ, False)]
        if DT_JMPREL in self._tags:
            tables.append((DT_JMPREL, DT_PLTRELSZ, self.tag(DT_PLTREL, DT_RELA) == DT_RELA))
        for addr_tag, size_tag, is_rela in tables:
            if addr_tag not in self._tags or not self._tags.get(size_tag):
                continue
            st = lay.rela if is_rela else lay.rel
            size = self._tags[size_tag]
            size -= size % st.size
            yield self._offset_of(self._tags[addr_tag], size, "a relocation table"), size, st

    @cached_property
    def _reloc_columns(self) -> list[tuple[int, struct.Struct, bytes]]:
        """(file offset, entry format, low byte of every entry's r_type) of each table. One
        strided slice of the file per table: no copy of the table, no per-entry loop."""
        r_info = 8 if self.is64 else 4
        low_byte = r_info if self.little else r_info + (7 if self.is64 else 3)
        return [
            (offset, st, self.data[offset + low_byte : offset + size : st.size])
            for offset, size, st in self._relocation_tables()
        ]

    def _type_positions(
        self, offset: int, st: struct.Struct, column: bytes, rtype: int
    ) -> Iterator[tuple[int, int]]:
        """(entry index, r_info) of the entries whose r_type is `rtype`: bytes.find picks the
        entries whose r_type has its low byte, and each one's whole r_info decides (r_type
        is r_info's low 32 bits in ELF64, its low byte in ELF32)."""
        type_mask = 0xFFFFFFFF if self.is64 else 0xFF
        if rtype > type_mask:
            return
        low, data, size = rtype & 0xFF, self.data, st.size
        pos = column.find(low)
        while pos >= 0:
            info = st.unpack_from(data, offset + pos * size)[1]
            if info & type_mask == rtype:
                yield pos, info
            pos = column.find(low, pos + 1)

    def relocation_types_among(self, wanted: frozenset[int]) -> frozenset[int]:
        """Which of the `wanted` r_type values the dynamic relocations use."""
        found: set[int] = set()
        for offset, st, column in self._reloc_columns:
            for rtype in wanted - found:
                if next(self._type_positions(offset, st, column, rtype), None) is not None:
                    found.add(rtype)
        return frozenset(found)

    def relocations_of(self, wanted: frozenset[int]) -> list[tuple[int, int]]:
        """(r_type, symbol index) of the dynamic relocations whose type is in `wanted`."""
        shift = 32 if self.is64 else 8
        out = []
        for offset, st, column in self._reloc_columns:
            for rtype in wanted:
                for _index, info in self._type_positions(offset, st, column, rtype):
                    out.append((rtype, info >> shift))
        return sorted(out)

    def plt_addends_nonzero(self, jump_slot: int) -> bool:
        """Any JUMP_SLOT relocation with a non-zero addend (x86-64 `-z mark-plt`)."""
        if DT_JMPREL not in self._tags or self.tag(DT_PLTREL, DT_RELA) != DT_RELA:
            return False
        st = self.layout.rela
        size = self.tag(DT_PLTRELSZ)
        size -= size % st.size
        raw = self._slice(
            self._offset_of(self._tags[DT_JMPREL], size, "DT_JMPREL"), size, "DT_JMPREL"
        )
        if not any(self._addend_column(raw)):  # the usual case: no Python-level loop
            return False
        mask = (1 << (32 if self.is64 else 8)) - 1
        return any(
            info & mask == jump_slot and addend for _off, info, addend in st.iter_unpack(raw)
        )

    def _addend_column(self, raw: bytes) -> array[int]:
        words = array("q" if self.is64 else "i", raw)
        if self.little != _HOST_LITTLE:
            words.byteswap()
        return words[2::3]

    # -- notes ----------------------------------------------------------------------------
    @cached_property
    def x86_isa_needed(self) -> int | None:
        """GNU_PROPERTY_X86_ISA_1_NEEDED bits (1 baseline, 2 v2, 4 v3, 8 v4), or None."""
        segments = [s for s in self.segments if s.type == PT_GNU_PROPERTY]
        segments = segments or [s for s in self.segments if s.type == PT_NOTE]
        for seg in segments:
            for name, ntype, desc in self._notes(seg):
                if name == b"GNU\0" and ntype == NT_GNU_PROPERTY_TYPE_0:
                    value = self._property(desc, GNU_PROPERTY_X86_ISA_1_NEEDED)
                    if value is not None:
                        return value
        return None

    def _notes(self, seg: Segment) -> Iterator[tuple[bytes, int, bytes]]:
        raw = self._slice(seg.offset, seg.filesz, "a note segment")
        align = 8 if seg.align == 8 else 4
        pos = 0
        while pos + 12 <= len(raw):
            namesz, descsz, ntype = self.layout.note.unpack_from(raw, pos)
            name_at = pos + 12
            desc_at = _round_up(name_at + namesz, align)
            end = desc_at + descsz
            if end > len(raw):
                raise ElfError("a note runs past the end of its segment")
            yield raw[name_at : name_at + namesz], ntype, raw[desc_at:end]
            pos = _round_up(end, align)

    def _property(self, desc: bytes, wanted: int) -> int | None:
        pos, align = 0, 8 if self.is64 else 4
        while pos + 8 <= len(desc):
            ptype, size = self.layout.prop.unpack_from(desc, pos)
            if pos + 8 + size > len(desc):
                raise ElfError("a GNU property runs past the end of its note")
            if ptype == wanted and size >= 4:
                return int(self.layout.u32.unpack_from(desc, pos + 8)[0])
            pos = _round_up(pos + 8 + size, align)
        return None


_ELF_HASHES: dict[bytes, int] = {}


def _elf_hash(name: bytes) -> int:
    """The SysV ELF hash of a version name (_dl_elf_hash, sysdeps/generic/dl-hash.h), as
    vna_hash and vd_hash hold it; memoized, since a few dozen names recur in every file."""
    value = _ELF_HASHES.get(name)
    if value is None:
        value = 0
        for byte in name:
            value = (value << 4) + byte
            high = value & 0xF0000000
            if high:
                value ^= high >> 24
            value &= ~high & 0xFFFFFFFF
        if len(_ELF_HASHES) < 4096:
            _ELF_HASHES[name] = value
    return value


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


_SCRIPT_STARTS = (b"/*", b"GROUP", b"INPUT", b"OUTPUT_FORMAT", b"SEARCH_DIR", b"AS_NEEDED")


def describe_non_elf(head: bytes) -> str:
    """Why a file that does not start with the ELF magic is not ELF, as precisely as we can."""
    if not head:
        return "empty file, not an ELF library"
    stripped = head.lstrip()
    if stripped.startswith(_SCRIPT_STARTS):
        return (
            "a linker script, not an ELF library (the real library is the file it names, "
            "e.g. libc.so -> libc.so.6)"
        )
    if head.startswith(b"!<arch>"):
        return "a static archive (.a), not a shared library"
    return "not an ELF file (no \\x7fELF magic)"


class _MappedElf:
    """The context manager `open_elf` returns: maps the file on entry, unmaps it on exit.
    A class, not @contextmanager: `check` opens every file it reads, and a generator-based
    context manager costs several Python calls more per file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> ElfFile:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size < 16:
                head = os.read(fd, 16)
                raise ElfError(
                    describe_non_elf(head)
                    if head[:4] != b"\x7fELF"
                    else f"truncated ELF file ({size} bytes)"
                )
            self.data = data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            if data[:4] != b"\x7fELF":
                raise ElfError(describe_non_elf(data[:64]))
            return ElfFile(data)
        except BaseException:
            data.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.data.close()


def open_elf(path: Path) -> _MappedElf:
    """Map `path` read-only and parse its header: `with open_elf(path) as elf:`; the mapping
    is closed when the block ends. Raises ElfError or OSError."""
    return _MappedElf(path)
