"""Read the parts of an ELF file that the glibc checker needs, and nothing else.

This is the one module that parses ELF (like auditwheel's elfutils.py). It reads what the
dynamic loader reads: the file header, the program headers, the dynamic segment and the tables
it points at (dynamic symbols, .gnu.version, version needs/definitions, relocations, notes).
Section headers are only a fallback for the dynamic-symbol count.

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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple


class ElfError(Exception):
    """The file is not ELF, or is truncated or malformed; the message says what and where."""


# e_type
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
# p_type / p_flags
PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_TLS = 1, 2, 3, 4, 7
PT_GNU_STACK, PT_GNU_PROPERTY = 0x6474E551, 0x6474E553
PF_X, PF_W, PF_R = 1, 2, 4
# d_tag
DT_NULL, DT_NEEDED, DT_PLTRELSZ, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 2, 4, 5, 6
DT_RELA, DT_RELASZ, DT_RELAENT, DT_STRSZ, DT_SYMENT, DT_SONAME, DT_RPATH = 7, 8, 9, 10, 11, 14, 15
DT_REL, DT_RELSZ, DT_RELENT, DT_PLTREL, DT_TEXTREL, DT_JMPREL = 17, 18, 19, 20, 22, 23
DT_RUNPATH, DT_FLAGS, DT_RELRSZ, DT_RELR = 29, 30, 35, 36
DT_ANDROID_RELR = 0x6FFFE000
DT_GNU_HASH, DT_VERSYM, DT_FLAGS_1 = 0x6FFFFEF5, 0x6FFFFFF0, 0x6FFFFFFB
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_X86_64_PLT, DT_X86_64_PLTSZ, DT_X86_64_PLTENT = 0x70000000, 0x70000001, 0x70000003
DF_TEXTREL, DF_STATIC_TLS = 0x4, 0x10
DF_1_NODELETE, DF_1_PIE = 0x8, 0x08000000
VER_FLG_WEAK = 0x2
SHT_DYNSYM = 11
STB_LOCAL, STB_GLOBAL, STB_WEAK, STB_GNU_UNIQUE = 0, 1, 2, 10
STT_TLS = 6
NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002

# e_machine numbers -> the names targets.py uses (pyelftools' spelling).
MACHINES = {3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390",
            40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV",
            258: "EM_LOONGARCH"}

_HOST_LITTLE = sys.byteorder == "little"
_MAX_WALK = 1 << 16   # more version records than any real library has: a loop, not a file
_MAX_CHAIN = 1 << 22  # a longer GNU hash chain is corruption, not a library


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
    index: int

    @property
    def weak(self) -> bool:
        return bool(self.flags & VER_FLG_WEAK)


class VersionDef(NamedTuple):
    index: int
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


class cached_property:  # noqa: N801 - named like functools' one, which it replaces
    """functools.cached_property without its per-access lock (Python <= 3.11 takes an RLock
    on every access, which cost 2 µs x thousands of reads per run). Non-data descriptor: after
    the first read the value sits in the instance __dict__ and is found there directly."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
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


_LAYOUTS = {(is64, little): _Layout(is64, little) for is64 in (False, True)
            for little in (False, True)}
# A st_info byte -> 1 if its binding is STB_GNU_UNIQUE: lets bytes.translate scan all symbols.
_new_tuple = tuple.__new__   # builds an UndefinedSymbol without NamedTuple's Python __new__
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
        (self.type, self.machine_number, _version, _entry, self._phoff, self._shoff, self.flags,
         _ehsize, phentsize, phnum, shentsize, self._shnum, _shstrndx) = self._unpack(
            self.layout.ehdr, 16, "the ELF header")
        self.machine = MACHINES.get(self.machine_number, f"EM_{self.machine_number}")
        if phnum == 0xFFFF:   # PN_XNUM: the real count is in section 0's sh_info
            first = self._section_headers(shentsize, limit=1)
            if not first:
                raise ElfError("e_phnum is PN_XNUM (0xffff) but there is no section header 0 "
                               "holding the real count")
            phnum = first[0][7]
        if phnum and phentsize != self.layout.phdr.size:
            raise ElfError(f"e_phentsize is {phentsize}, expected {self.layout.phdr.size}")
        self._phnum = phnum
        self._shentsize = shentsize

    # -- bounded primitives -------------------------------------------------------------
    def _unpack(self, st: struct.Struct, offset: int, what: str) -> tuple:
        if offset < 0 or offset + st.size > self.size:
            raise ElfError(f"{what} at file offset {offset:#x} runs past the end of the file "
                           f"({self.size} bytes): truncated or corrupt")
        return st.unpack_from(self.data, offset)

    def _slice(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ElfError(f"{what} ({size} bytes at file offset {offset:#x}) runs past the end "
                           f"of the file ({self.size} bytes): truncated or corrupt")
        return self.data[offset:offset + size]

    def _section_headers(self, shentsize: int, limit: int | None = None) -> list[tuple]:
        count = self._shnum if limit is None else limit
        if not self._shoff or not count:
            return []
        if shentsize != self.layout.shdr.size:
            raise ElfError(f"e_shentsize is {shentsize}, expected {self.layout.shdr.size}")
        if count * shentsize > self.size:
            raise ElfError(f"e_shnum {count} section headers cannot fit in the file")
        return [self._unpack(self.layout.shdr, self._shoff + i * shentsize, "a section header")
                for i in range(count)]

    # -- program headers and the address space -------------------------------------------
    def require_intact(self) -> None:
        """Raise ElfError when a PT_LOAD segment's file part runs past the end of the file (a
        copy that stopped early): the loader maps it all the same and the process dies of
        SIGBUS when it touches the missing pages, so it is malformed input, not a library."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.offset + seg.filesz > self.size:
                raise ElfError(f"a PT_LOAD segment ({seg.filesz} bytes at file offset "
                               f"{seg.offset:#x}) runs past the end of the file ({self.size} "
                               "bytes): truncated or corrupt")

    @cached_property
    def segments(self) -> list[Segment]:
        if not self._phnum:
            return []
        st = self.layout.phdr
        if self._phnum * st.size > self.size:
            raise ElfError(f"e_phnum {self._phnum} program headers cannot fit in the file")
        out = []
        for i in range(self._phnum):
            fields = self._unpack(st, self._phoff + i * st.size, "a program header")
            if self.is64:
                p_type, p_flags, off, vaddr, _paddr, filesz, memsz, align = fields
            else:
                p_type, off, vaddr, _paddr, filesz, memsz, p_flags, align = fields
            out.append(Segment(p_type, p_flags, off, vaddr, filesz, memsz, align))
        return out

    def segment(self, p_type: int) -> Segment | None:
        for seg in self.segments:
            if seg.type == p_type:
                return seg
        return None

    @cached_property
    def _loads(self) -> list[Segment]:
        return [s for s in self.segments if s.type == PT_LOAD]

    def _offset_of(self, addr: int, size: int, what: str) -> int:
        """File offset of `size` bytes at address `addr`, inside one PT_LOAD's file part."""
        for seg in self._loads:
            if seg.vaddr <= addr and addr + size <= seg.vaddr + seg.filesz:
                offset = seg.offset + (addr - seg.vaddr)
                if offset + size > self.size:
                    break
                return offset
        raise ElfError(f"{what} ({size} bytes at address {addr:#x}) lies outside the file's "
                       "loadable segments: truncated or corrupt")

    # -- the dynamic segment --------------------------------------------------------------
    @cached_property
    def dynamic(self) -> list[tuple[int, int]]:
        """(d_tag, d_val) pairs of PT_DYNAMIC up to DT_NULL; [] for a static file."""
        seg = self.segment(PT_DYNAMIC)
        if seg is None:
            return []
        st = self.layout.dyn
        raw = self._slice(seg.offset, seg.filesz - seg.filesz % st.size, "the dynamic segment")
        out = []
        for tag, val in st.iter_unpack(raw):
            if tag == DT_NULL:
                break
            out.append((tag, val))
        return out

    @cached_property
    def _tags(self) -> dict[int, int]:
        """First value of each tag (the loader keeps one per tag; DT_NEEDED is read apart)."""
        tags: dict[int, int] = {}
        for tag, val in self.dynamic:
            tags.setdefault(tag, val)
        return tags

    def has_tag(self, tag: int) -> bool:
        return tag in self._tags

    def tag(self, tag: int, default: int = 0) -> int:
        return self._tags.get(tag, default)

    @property
    def has_dynamic(self) -> bool:
        return bool(self.dynamic)

    @cached_property
    def _strtab(self) -> tuple[int, int]:
        if DT_STRTAB not in self._tags:
            raise ElfError("the dynamic segment has no DT_STRTAB")
        size = self._tags.get(DT_STRSZ, 0)
        return self._offset_of(self._tags[DT_STRTAB], size, "the dynamic string table"), size

    def string(self, offset: int) -> str:
        start, size = self._strtab
        if offset < 0 or offset >= size:
            raise ElfError(f"string offset {offset:#x} is outside DT_STRTAB ({size} bytes)")
        end = self.data.find(b"\0", start + offset, start + size)
        if end < 0:
            raise ElfError("a string in DT_STRTAB is not NUL-terminated")
        return self.data[start + offset:end].decode("utf-8", "backslashreplace")

    def _strings_of(self, tag: int) -> list[str]:
        return [self.string(val) for t, val in self.dynamic if t == tag]

    @cached_property
    def needed(self) -> list[str]:
        return self._strings_of(DT_NEEDED)

    @cached_property
    def soname(self) -> str | None:
        names = self._strings_of(DT_SONAME)
        return names[0] if names else None

    @cached_property
    def rpath(self) -> str | None:
        names = self._strings_of(DT_RPATH)
        return ":".join(names) if names else None

    @cached_property
    def runpath(self) -> str | None:
        names = self._strings_of(DT_RUNPATH)
        return ":".join(names) if names else None

    @property
    def dt_flags(self) -> int:
        return self.tag(DT_FLAGS)

    @property
    def dt_flags_1(self) -> int:
        return self.tag(DT_FLAGS_1)

    # -- dynamic symbols ------------------------------------------------------------------
    @cached_property
    def symbol_count(self) -> int:
        """Number of .dynsym entries: DT_HASH's nchain, the GNU hash chains, or the section."""
        u32 = self.layout.u32
        if DT_HASH in self._tags:
            off = self._offset_of(self._tags[DT_HASH], 8, "DT_HASH")
            return self._unpack(u32, off + 4, "DT_HASH")[0]
        if DT_GNU_HASH in self._tags:   # every symbol from symoffset on is in one chain
            return self._gnu_hash_count()
        symtab = self._tags.get(DT_SYMTAB)
        for sh in self._section_headers(self._shentsize):
            if sh[1] == SHT_DYNSYM and sh[3] == symtab and sh[9]:
                return sh[5] // sh[9]
        return 0

    def _gnu_hash_count(self) -> int:
        """Highest symbol index reachable through DT_GNU_HASH, plus one."""
        u32 = self.layout.u32
        off = self._offset_of(self._tags[DT_GNU_HASH], 16, "DT_GNU_HASH")
        nbuckets, symoffset, bloom_size = (self._unpack(u32, off + 4 * i, "DT_GNU_HASH")[0]
                                           for i in range(3))
        buckets_at = off + 16 + bloom_size * (8 if self.is64 else 4)
        buckets = array("I", self._slice(buckets_at, 4 * nbuckets, "the GNU hash buckets"))
        if self.little != _HOST_LITTLE:
            buckets.byteswap()
        last = max(buckets, default=0)
        if last == 0:
            return symoffset
        if last < symoffset:
            raise ElfError("a GNU hash bucket points below the first hashed symbol")
        chain_at = buckets_at + 4 * nbuckets
        index = last
        while index - last < _MAX_CHAIN:
            value = self._unpack(u32, chain_at + 4 * (index - symoffset), "the GNU hash chain")[0]
            index += 1
            if value & 1:
                return index
        raise ElfError("a GNU hash chain does not end")

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
        return self._offset_of(self._tags[DT_SYMTAB], count * entsize, "the dynamic symbols"), count

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
        """One byte of every dynamic symbol (e.g. st_info), as one bytes object."""
        start, count = self._dynsym
        entsize = self.layout.sym.size
        table = self._slice(start, count * entsize, "the dynamic symbols")
        return table[field_offset::entsize]

    @cached_property
    def undefined_symbols(self) -> list[UndefinedSymbol]:
        """Every imported symbol with its binding and version (index 0 is the null symbol)."""
        start, count = self._dynsym
        if count < 2:
            return []
        entsize = self.layout.sym.size
        table = self._slice(start, count * entsize, "the dynamic symbols")
        shndx_at, info_at = (6, 4) if self.is64 else (14, 12)
        low, high = table[shndx_at::entsize], table[shndx_at + 1::entsize]
        versions = self._version_of_index
        versym = self._versym_offset(count)
        if versym is not None:
            versym_table = array("H", self._slice(versym, 2 * count, ".gnu.version"))
            if self.little != _HOST_LITTLE:
                versym_table.byteswap()
        u32 = self.layout.u32
        str_start, str_size = self._strtab
        str_end = str_start + str_size
        data = self.data
        out = []
        index = low.find(0, 1)
        while index >= 0:   # C-speed scan: only st_shndx == SHN_UNDEF (0) reaches Python
            if high[index] == 0:
                base = index * entsize
                info = table[base + info_at]
                bind = info >> 4
                name_off = u32.unpack_from(table, base)[0]
                if info & 0xF == STT_TLS:
                    self._imports_tls = True
                if name_off and bind != STB_LOCAL:
                    end = data.find(b"\0", str_start + name_off, str_end)
                    if name_off >= str_size or end < 0:
                        raise ElfError(f"the name of symbol {index} is outside DT_STRTAB")
                    name = data[str_start + name_off:end].decode("utf-8", "backslashreplace")
                    version = file = None
                    if versym is not None:
                        ndx = versym_table[index] & 0x7FFF
                        if ndx > 1:
                            if ndx not in versions:
                                raise ElfError(f"symbol {name} has version index {ndx}, which no "
                                               "version need or definition declares")
                            version, file = versions[ndx]
                    out.append(_new_tuple(UndefinedSymbol, (name, bind == STB_WEAK, version,
                                                            file)))
            index = low.find(0, index + 1)
        return out

    @property
    def uses_tls(self) -> bool:
        """Has its own TLS block (PT_TLS) or imports a TLS symbol. Without either there can be
        no TLS relocation, so the relocation tables need not be scanned for them."""
        if self.segment(PT_TLS) is not None:
            return True
        self.undefined_symbols   # noqa: B018 - sets _imports_tls while scanning
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

    def _version_records(self, addr_tag: int, num_tag: int, record: struct.Struct,
                         what: str) -> Iterator[tuple[int, tuple]]:
        """(offset, fields) of each record in a DT_VERNEED/DT_VERDEF chain, bounds- and
        loop-checked: both chains link records by a `next` offset, the last field."""
        offset = self._offset_of(self._tags[addr_tag], record.size, what)
        remaining = self._tags.get(num_tag, _MAX_WALK)
        seen: set[int] = set()
        while remaining > 0:
            if offset in seen or len(seen) > _MAX_WALK:
                raise ElfError(f"the {what} records form a loop")
            seen.add(offset)
            fields = self._unpack(record, offset, f"a {what} record")
            yield offset, fields
            remaining -= 1
            if not fields[-1]:
                break
            offset += fields[-1]

    @cached_property
    def version_needs(self) -> list[VersionNeed]:
        """Every vernaux of DT_VERNEED, in file order (readelf -V's "Version needs")."""
        if DT_VERNEED not in self._tags:
            return []
        lay = self.layout
        out: list[VersionNeed] = []
        for offset, (_ver, cnt, file_off, aux, _next) in self._version_records(
                DT_VERNEED, DT_VERNEEDNUM, lay.verneed, "version need"):
            file = self.string(file_off)
            aux_offset = offset + aux
            aux_seen: set[int] = set()
            for _ in range(cnt):
                if aux_offset in aux_seen:
                    raise ElfError(f"the version need entries of {file} form a loop")
                aux_seen.add(aux_offset)
                _hash, flags, other, name_off, aux_next = self._unpack(
                    lay.vernaux, aux_offset, "a vernaux entry")
                out.append(VersionNeed(file, self.string(name_off), flags, other))
                if not aux_next:
                    break
                aux_offset += aux_next
        return out

    @cached_property
    def version_defs(self) -> list[VersionDef]:
        """Every verdef of DT_VERDEF (the first verdaux names it)."""
        if DT_VERDEF not in self._tags:
            return []
        lay = self.layout
        out: list[VersionDef] = []
        for offset, (_ver, flags, ndx, cnt, _hash, aux, _next) in self._version_records(
                DT_VERDEF, DT_VERDEFNUM, lay.verdef, "version definition"):
            if cnt:
                name_off, _ = self._unpack(lay.verdaux, offset + aux, "a verdaux entry")
                out.append(VersionDef(ndx, flags, self.string(name_off)))
        return out

    @cached_property
    def _version_of_index(self) -> dict[int, tuple[str, str | None]]:
        """.gnu.version index -> (version name, needed file or None for a definition)."""
        out: dict[int, tuple[str, str | None]] = {
            d.index & 0x7FFF: (d.name, None) for d in self.version_defs}
        for need in self.version_needs:
            out[need.index & 0x7FFF] = (need.name, need.file)
        return out

    # -- relocations ----------------------------------------------------------------------
    def _relocation_tables(self) -> Iterator[tuple[bytes, bool]]:
        """(raw entries, is_rela) of DT_RELA, DT_REL and DT_JMPREL."""
        lay = self.layout
        tables = [(DT_RELA, DT_RELASZ, True), (DT_REL, DT_RELSZ, False)]
        if DT_JMPREL in self._tags:
            tables.append((DT_JMPREL, DT_PLTRELSZ, self.tag(DT_PLTREL, DT_RELA) == DT_RELA))
        for addr_tag, size_tag, is_rela in tables:
            if addr_tag not in self._tags or not self._tags.get(size_tag):
                continue
            entsize = (lay.rela if is_rela else lay.rel).size
            size = self._tags[size_tag]
            size -= size % entsize
            offset = self._offset_of(self._tags[addr_tag], size, "a relocation table")
            yield self._slice(offset, size, "a relocation table"), is_rela

    def _types_column(self, raw: bytes, is_rela: bool) -> array | bytes:
        """r_type of every entry, without a Python-level loop."""
        entsize = (self.layout.rela if is_rela else self.layout.rel).size
        if not self.is64:   # r_info = sym << 8 | type: the type is one byte
            return raw[(4 if self.little else 7)::entsize]
        words = array("I", raw)
        if self.little != _HOST_LITTLE:
            words.byteswap()
        return words[(2 if self.little else 3)::entsize // 4]

    @cached_property
    def _reloc_columns(self) -> list[tuple[bytes, bool, bytes, int]]:
        """(raw table, is_rela, r_type column as bytes, bytes per type) of each table."""
        out = []
        for raw, is_rela in self._relocation_tables():
            column = self._types_column(raw, is_rela)
            if isinstance(column, array):
                out.append((raw, is_rela, column.tobytes(), column.itemsize))
            else:
                out.append((raw, is_rela, column, 1))
        return out

    def _type_positions(self, column: bytes, width: int, rtype: int) -> Iterator[int]:
        """Entry indexes whose r_type is `rtype`, found with bytes.find (no per-entry loop)."""
        if width == 1 and rtype > 0xFF:
            return
        needle = rtype.to_bytes(width, sys.byteorder)
        pos = column.find(needle)
        while pos >= 0:
            if pos % width == 0:
                yield pos // width
            pos = column.find(needle, pos + 1)

    def relocation_types_among(self, wanted: frozenset[int]) -> frozenset[int]:
        """Which of the `wanted` r_type values the dynamic relocations use."""
        found = set()
        for _raw, _is_rela, column, width in self._reloc_columns:
            for rtype in wanted - found:
                if next(self._type_positions(column, width, rtype), None) is not None:
                    found.add(rtype)
        return frozenset(found)

    def relocations_of(self, wanted: frozenset[int]) -> list[tuple[int, int]]:
        """(r_type, symbol index) of the dynamic relocations whose type is in `wanted`."""
        shift = 32 if self.is64 else 8
        out = []
        for raw, is_rela, column, width in self._reloc_columns:
            st = self.layout.rela if is_rela else self.layout.rel
            for rtype in wanted:
                for index in self._type_positions(column, width, rtype):
                    out.append((rtype, st.unpack_from(raw, index * st.size)[1] >> shift))
        return sorted(out)

    def plt_addends_nonzero(self, jump_slot: int) -> bool:
        """Any JUMP_SLOT relocation with a non-zero addend (x86-64 `-z mark-plt`)."""
        if DT_JMPREL not in self._tags or self.tag(DT_PLTREL, DT_RELA) != DT_RELA:
            return False
        st = self.layout.rela
        size = self.tag(DT_PLTRELSZ)
        size -= size % st.size
        raw = self._slice(self._offset_of(self._tags[DT_JMPREL], size, "DT_JMPREL"), size,
                          "DT_JMPREL")
        if not any(self._addend_column(raw)):   # the usual case: no Python-level loop
            return False
        mask = (1 << (32 if self.is64 else 8)) - 1
        return any(info & mask == jump_slot and addend
                   for _off, info, addend in st.iter_unpack(raw))

    def _addend_column(self, raw: bytes) -> array:
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
            yield raw[name_at:name_at + namesz], ntype, raw[desc_at:end]
            pos = _round_up(end, align)

    def _property(self, desc: bytes, wanted: int) -> int | None:
        pos, align = 0, 8 if self.is64 else 4
        while pos + 8 <= len(desc):
            ptype, size = self.layout.prop.unpack_from(desc, pos)
            if pos + 8 + size > len(desc):
                raise ElfError("a GNU property runs past the end of its note")
            if ptype == wanted and size >= 4:
                return self.layout.u32.unpack_from(desc, pos + 8)[0]
            pos = _round_up(pos + 8 + size, align)
        return None


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


_SCRIPT_STARTS = (b"/*", b"GROUP", b"INPUT", b"OUTPUT_FORMAT", b"SEARCH_DIR", b"AS_NEEDED")


def describe_non_elf(head: bytes) -> str:
    """Why a file that does not start with the ELF magic is not ELF, as precisely as we can."""
    if not head:
        return "empty file, not an ELF library"
    stripped = head.lstrip()
    if stripped.startswith(_SCRIPT_STARTS):
        return ("a linker script, not an ELF library (the real library is the file it names, "
                "e.g. libc.so -> libc.so.6)")
    if head.startswith(b"!<arch>"):
        return "a static archive (.a), not a shared library"
    return "not an ELF file (no \\x7fELF magic)"


@contextmanager
def open_elf(path: Path) -> Iterator[ElfFile]:
    """Map `path` read-only and parse its header. Raises ElfError or OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < 16:
            head = os.read(fd, 16)
            raise ElfError(describe_non_elf(head) if head[:4] != b"\x7fELF"
                           else f"truncated ELF file ({size} bytes)")
        data = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        if data[:4] != b"\x7fELF":
            raise ElfError(describe_non_elf(data[:64]))
        yield ElfFile(data)
    finally:
        data.close()


def is_elf(path: Path) -> bool:
    """Cheap sniff (4 bytes) used when searching folders."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False
