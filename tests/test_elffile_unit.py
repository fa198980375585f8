"""Unit tests of elffile on hand-built ELF images, and the tiny builder that makes them:
64-bit little-endian ET_DYN images made byte by byte.

Everything sits in one PT_LOAD mapped at BASE (file offset 0 -> address BASE), so that an
address and a file offset differ, as they do in real libraries: a reader that confuses the
two reads the wrong bytes. Version records, symbols and dynamic entries are packed with
`struct` exactly as the System V gABI and glibc's <elf.h> lay them out; tests may then
corrupt any byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from orchestrator.elffile import MAX_VERSION_RECORDS, ElfError, ElfFile

BASE = 0x10000
PAGE = 0x1000
HEADER_ROOM = 0x100  # ELF header (64 bytes) and up to 3 program headers (56 bytes each)

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 4, 5, 6
DT_RELA, DT_STRSZ, DT_SYMENT, DT_SONAME = 7, 10, 11, 14
DT_GNU_HASH, DT_VERSYM = 0x6FFFFEF5, 0x6FFFFFF0
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = (
    0x6FFFFFFC,
    0x6FFFFFFD,
    0x6FFFFFFE,
    0x6FFFFFFF,
)
VER_FLG_BASE, VER_FLG_WEAK = 1, 2

VERNEED = struct.Struct("<HHIII")  # vn_version, vn_cnt, vn_file, vn_aux, vn_next
VERNAUX = struct.Struct("<IHHII")  # vna_hash, vna_flags, vna_other, vna_name, vna_next
VERDEF = struct.Struct("<HHHHIII")  # vd_version, _flags, _ndx, _cnt, _hash, _aux, _next
VERDAUX = struct.Struct("<II")  # vda_name, vda_next
SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
DYN = struct.Struct("<qQ")
PHDR = struct.Struct("<IIQQQQQQ")
EHDR = struct.Struct("<4sBBBBB7sHHIQQQIHHHHHH")


def elf_hash(name: bytes) -> int:
    """The System V gABI's elf_hash, which vna_hash and vd_hash hold."""
    value = 0
    for byte in name:
        value = ((value << 4) + byte) & 0xFFFFFFFF
        value = (value ^ (value & 0xF0000000) >> 24) & 0x0FFFFFFF
    return value


@dataclass
class Phdr:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int = PAGE
    flags: int = 6

    def pack(self) -> bytes:
        return PHDR.pack(
            self.type,
            self.flags,
            self.offset,
            self.vaddr,
            self.vaddr,
            self.filesz,
            self.memsz,
            self.align,
        )


@dataclass
class ElfBuilder:
    body: bytearray = field(default_factory=lambda: bytearray(HEADER_ROOM))
    strings: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    dynamic: list[tuple[int, int]] = field(default_factory=list)

    def string(self, text: str | bytes) -> int:
        """Offset of `text` in the dynamic string table (appended)."""
        raw = text.encode() if isinstance(text, str) else text
        offset = len(self.strings)
        self.strings += raw + b"\0"
        return offset

    def place(self, data: bytes, align: int = 8) -> int:
        """Append `data` to the image; return its address."""
        self.body += bytes(-len(self.body) % align)
        offset = len(self.body)
        self.body += data
        return BASE + offset

    def verneed(
        self, needs: list[tuple[str, list[tuple[str, int, int]]]], cnt: int | None = None
    ) -> int:
        """A DT_VERNEED chain: [(file, [(name, flags, vna_other)])]; records contiguous."""
        raw = bytearray()
        for i, (file, auxes) in enumerate(needs):
            size = VERNEED.size + VERNAUX.size * len(auxes)
            last = i == len(needs) - 1
            raw += VERNEED.pack(
                1,
                len(auxes) if cnt is None else cnt,
                self.string(file),
                VERNEED.size,
                0 if last else size,
            )
            for j, (name, flags, other) in enumerate(auxes):
                raw += VERNAUX.pack(
                    elf_hash(name.encode()),
                    flags,
                    other,
                    self.string(name),
                    0 if j == len(auxes) - 1 else VERNAUX.size,
                )
        return self.place(bytes(raw), 4)

    def verdef(self, defs: list[tuple[str, int, int]]) -> int:
        """A DT_VERDEF chain: [(name, flags, vd_ndx)], one verdaux each."""
        raw = bytearray()
        size = VERDEF.size + VERDAUX.size
        for i, (name, flags, ndx) in enumerate(defs):
            raw += VERDEF.pack(
                1,
                flags,
                ndx,
                1,
                elf_hash(name.encode()),
                VERDEF.size,
                0 if i == len(defs) - 1 else size,
            )
            raw += VERDAUX.pack(self.string(name), 0)
        return self.place(bytes(raw), 4)

    def symbols(
        self, names: list[str], versions: list[int] | None = None, undefined: bool = True
    ) -> None:
        """A .dynsym with a null symbol then `names` (global functions, undefined), a DT_HASH
        that counts them and, given `versions`, a .gnu.version."""
        raw = bytearray(SYM.size)
        for name in names:
            raw += SYM.pack(self.string(name), 0x12, 0, 0 if undefined else 7, 0, 0)
        self.dynamic.append((DT_SYMTAB, self.place(bytes(raw))))
        self.dynamic.append((DT_SYMENT, SYM.size))
        count = len(names) + 1
        self.dynamic.append(
            (DT_HASH, self.place(struct.pack(f"<II{1 + count}I", 1, count, *([0] * (1 + count)))))
        )
        if versions is not None:
            self.dynamic.append((DT_VERSYM, self.place(struct.pack(f"<{count}H", 0, *versions), 2)))

    def finish(
        self,
        *,
        extra_phdrs: tuple[Phdr, ...] = (),
        dyn_null: bool = True,
        load_memsz_extra: int = 0,
        tweak_dynamic_phdr: dict[str, int] | None = None,
    ) -> bytearray:
        """The image: string table, then the dynamic section (DT_STRTAB/DT_STRSZ first), then
        the headers: PT_LOAD over everything, PT_DYNAMIC, and `extra_phdrs` after them."""
        strtab = self.place(bytes(self.strings), 1)
        entries = [(DT_STRTAB, strtab), (DT_STRSZ, len(self.strings)), *self.dynamic]
        if dyn_null:
            entries.append((DT_NULL, 0))
        dyn_raw = b"".join(DYN.pack(t, v) for t, v in entries)
        dyn_addr = self.place(dyn_raw)
        size = len(self.body)
        dynamic = Phdr(PT_DYNAMIC, dyn_addr - BASE, dyn_addr, len(dyn_raw), len(dyn_raw))
        for key, value in (tweak_dynamic_phdr or {}).items():
            setattr(dynamic, key, value)
        phdrs = [Phdr(PT_LOAD, 0, BASE, size, size + load_memsz_extra), dynamic, *extra_phdrs]
        out = self.body
        out[0 : EHDR.size] = EHDR.pack(
            b"\x7fELF",
            2,
            1,
            1,
            0,
            0,
            bytes(7),
            3,
            62,
            1,
            0,
            EHDR.size,
            0,
            0,
            EHDR.size,
            PHDR.size,
            len(phdrs),
            64,
            0,
            0,
        )
        for i, ph in enumerate(phdrs):
            out[EHDR.size + i * PHDR.size : EHDR.size + (i + 1) * PHDR.size] = ph.pack()
        return out


def dynamic_blob(entries: list[tuple[int, int]]) -> bytes:
    return b"".join(DYN.pack(t, v) for t, v in [*entries, (DT_NULL, 0)])


# -- the tests ------------------------------------------------------------------------------
pytestmark = pytest.mark.unit


def glibc_lib(
    *needs: tuple[str, int, int],
    symbols: tuple[str, ...] = ("puts",),
    versions: tuple[int, ...] = (2,),
) -> ElfBuilder:
    """A library needing `needs` (name, flags, vna_other) from libc.so.6."""
    b = ElfBuilder()
    b.dynamic.append((DT_NEEDED, b.string("libc.so.6")))
    b.symbols(list(symbols), list(versions))
    b.dynamic.append((DT_VERNEED, b.verneed([("libc.so.6", list(needs))])))
    return b


def loaded(image: bytes | bytearray) -> ElfFile:
    elf = ElfFile(bytes(image))
    elf.require_intact()
    return elf


def test_tables_are_found_by_address_not_by_file_offset():
    """Every table sits at file offset = address - BASE: read by address, the names come out
    right; read as if addresses were offsets they would be outside the 1 KB file."""
    elf = loaded(glibc_lib(("GLIBC_2.2.5", 0, 2)).finish())
    assert elf.size < BASE
    assert elf.needed == ["libc.so.6"]
    assert [(n.file, n.name, n.index) for n in elf.version_needs] == [
        ("libc.so.6", "GLIBC_2.2.5", 2)
    ]
    assert [(s.name, s.version, s.file) for s in elf.undefined_symbols] == [
        ("puts", "GLIBC_2.2.5", "libc.so.6")
    ]


def load_end(image: bytearray) -> int:
    return BASE + len(image)


def append_to_load(image: bytearray, data: bytes) -> int:
    """Append `data` to the image inside its (first) PT_LOAD; return its address."""
    image += bytes(-len(image) % 8)
    addr = load_end(image)
    image += data
    struct.pack_into("<QQ", image, EHDR.size + 32, len(image), len(image))
    return addr


def add_phdr(image: bytearray, ph: Phdr) -> None:
    phnum = struct.unpack_from("<H", image, 56)[0]
    at = EHDR.size + phnum * PHDR.size
    assert at + PHDR.size <= HEADER_ROOM
    image[at : at + PHDR.size] = ph.pack()
    struct.pack_into("<H", image, 56, phnum + 1)


def dynamic_entries(image: bytearray) -> list[tuple[int, int, int]]:
    """(file offset, tag, value) of the first PT_DYNAMIC's entries."""
    start, size = (PHDR.unpack_from(image, EHDR.size + PHDR.size)[i] for i in (2, 5))
    return [
        (start + i * DYN.size, *DYN.unpack_from(image, start + i * DYN.size))
        for i in range(size // DYN.size)
    ]


def test_dynamic_p_offset_that_disagrees_with_its_address_is_refused():
    """ld.so reads PT_DYNAMIC at p_vaddr; a p_offset pointing elsewhere (one byte changed)
    made the old reader parse other bytes. Refused, never read from p_offset."""
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    dyn_offset = PHDR.unpack_from(image, EHDR.size + PHDR.size)[2]
    struct.pack_into("<Q", image, EHDR.size + PHDR.size + 8, dyn_offset + 1)
    with pytest.raises(ElfError, match="p_offset"):
        loaded(image)


def test_the_last_pt_dynamic_is_the_one_ld_so_uses():
    """_dl_map_object_from_fd sets l_ld for each PT_DYNAMIC: the last one is used."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish()
    tags = {tag: value for _at, tag, value in dynamic_entries(image)}
    second = dynamic_blob(
        [
            (DT_STRTAB, tags[DT_STRTAB]),
            (DT_STRSZ, tags[DT_STRSZ]),
            (DT_NEEDED, b.strings.index(b"GLIBC_2.2.5")),
        ]
    )
    addr = append_to_load(image, second)
    add_phdr(image, Phdr(PT_DYNAMIC, addr - BASE, addr, len(second), len(second)))
    elf = loaded(image)
    assert elf.needed == ["GLIBC_2.2.5"]  # the second PT_DYNAMIC's only DT_NEEDED
    assert elf.version_needs == []  # it has no DT_VERNEED


def test_pt_dynamic_outside_every_load_segment_is_refused():
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish(
        tweak_dynamic_phdr={"vaddr": 0x900000, "offset": 0x900000 - BASE}
    )
    with pytest.raises(ElfError, match="in no PT_LOAD"):
        loaded(image)


def test_last_dt_verneed_wins():
    """elf/get-dynamic-info.h stores info[tag] = dyn for every entry: the last one counts."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic.append((DT_VERNEED, b.verneed([("libc.so.6", [("GLIBC_2.36", 0, 2)])])))
    elf = loaded(b.finish())
    assert [n.name for n in elf.version_needs] == ["GLIBC_2.36"]
    assert elf.undefined_symbols[0].version == "GLIBC_2.36"


def test_vna_next_chain_is_followed_past_vn_cnt():
    """_dl_check_map_versions follows vna_next and ignores vn_cnt (elf/dl-version.c)."""
    b = glibc_lib(
        ("GLIBC_2.2.5", 0, 2), ("GLIBC_2.36", 0, 3), symbols=("puts", "x"), versions=(2, 3)
    )
    b2 = ElfBuilder(body=b.body, strings=b.strings, dynamic=b.dynamic[:-1])
    b2.dynamic.append(
        (
            DT_VERNEED,
            b2.verneed([("libc.so.6", [("GLIBC_2.2.5", 0, 2), ("GLIBC_2.36", 0, 3)])], cnt=1),
        )
    )
    b2.dynamic.append((DT_VERNEEDNUM, 0))  # not read by the loader either
    elf = loaded(b2.finish())
    assert [n.name for n in elf.version_needs] == ["GLIBC_2.2.5", "GLIBC_2.36"]


def test_vernaux_pointing_outside_the_segments_is_refused():
    b = glibc_lib(("GLIBC_2.2.5", 0, 2), ("GLIBC_2.3", 0, 3))
    image = b.finish()
    vn = next(v for t, v in b.dynamic if t == DT_VERNEED) - BASE
    struct.pack_into("<I", image, vn + VERNEED.size + 12, 0xFFFFFFF0)  # vna_next
    with pytest.raises(ElfError, match="outside the file's loadable segments"):
        _ = loaded(image).version_needs


def elf32_with_vernaux(aux_next: tuple[int, int]) -> bytearray:
    """A 32-bit library with one verneed and two vernaux whose vna_next are `aux_next`."""
    ehdr = struct.Struct("<4sBBBBB7sHHIIIIIHHHHHH")
    phdr = struct.Struct("<IIIIIIII")
    dyn = struct.Struct("<iI")
    body = bytearray(0x100)
    strings = b"\0libc.so.6\0GLIBC_2.0\0GLIBC_2.1\0"
    str_addr = BASE + len(body)
    body += strings + bytes(-len(strings) % 4)
    vn_addr = BASE + len(body)
    body += VERNEED.pack(1, 2, 1, VERNEED.size, 0)
    body += VERNAUX.pack(elf_hash(b"GLIBC_2.0"), 0, 2, 11, aux_next[0])
    body += VERNAUX.pack(elf_hash(b"GLIBC_2.1"), 0, 3, 21, aux_next[1])
    dyn_addr = BASE + len(body)
    raw = b"".join(
        dyn.pack(t, v)
        for t, v in [
            (DT_NEEDED, 1),
            (DT_STRTAB, str_addr),
            (DT_STRSZ, len(strings)),
            (DT_VERNEED, vn_addr),
            (DT_VERSYM, str_addr),
            (DT_NULL, 0),
        ]
    )
    body += raw
    size = len(body)
    body[0 : ehdr.size] = ehdr.pack(
        b"\x7fELF",
        1,
        1,
        1,
        0,
        0,
        bytes(7),
        3,
        3,
        1,
        0,
        ehdr.size,
        0,
        0,
        ehdr.size,
        phdr.size,
        2,
        40,
        0,
        0,
    )
    body[ehdr.size : ehdr.size + phdr.size] = phdr.pack(PT_LOAD, 0, BASE, BASE, size, size, 6, PAGE)
    body[ehdr.size + phdr.size : ehdr.size + 2 * phdr.size] = phdr.pack(
        PT_DYNAMIC, dyn_addr - BASE, dyn_addr, dyn_addr, len(raw), len(raw), 6, 4
    )
    return body


def test_vernaux_loop_is_refused():
    """vna_next is unsigned, but 32-bit addresses wrap (ld.so's pointer arithmetic): the
    second entry's vna_next of 2^32 - 16 points back at the first, a loop the loader would
    walk forever."""
    assert [n.name for n in loaded(elf32_with_vernaux((16, 0))).version_needs] == [
        "GLIBC_2.0",
        "GLIBC_2.1",
    ]
    with pytest.raises(ElfError, match="form a loop"):
        _ = loaded(elf32_with_vernaux((16, (1 << 32) - 16))).version_needs


def test_vna_hash_that_is_not_the_names_hash_is_refused_unless_weak():
    """match_symbol (elf/dl-version.c) compares vna_hash first: a renamed need with the old
    hash is never found, so the loader refuses it whatever its name says."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish()
    aux = next(v for t, v in b.dynamic if t == DT_VERNEED) - BASE + VERNEED.size
    struct.pack_into("<I", image, aux, elf_hash(b"GLIBC_2.36"))
    with pytest.raises(ElfError, match="vna_hash"):
        _ = loaded(image).version_needs
    struct.pack_into("<H", image, aux + 4, VER_FLG_WEAK)
    assert [n.weak for n in loaded(image).version_needs] == [True]


def test_unsupported_verneed_version_is_refused():
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish()
    struct.pack_into("<H", image, next(v for t, v in b.dynamic if t == DT_VERNEED) - BASE, 2)
    with pytest.raises(ElfError, match="unsupported version 2"):
        _ = loaded(image).version_needs


def test_shared_aux_chains_are_bounded_by_the_file_size():
    """1000 verneeds sharing one 1000-entry vernaux chain: a million entries from a 40 KB
    file. The walk stops at size/16 records with an ElfError instead."""
    b = ElfBuilder()
    b.dynamic.append((DT_NEEDED, b.string("libc.so.6")))
    b.symbols([], [])
    names = [b.string(f"V_{i}") for i in range(1000)]
    file_off = b.string("libc.so.6")
    first = BASE + len(b.body) + (-len(b.body) % 8)
    aux_addr = first + 16 * 1000  # vn_aux is unsigned: the shared chain follows the records
    recs = b"".join(
        VERNEED.pack(1, 1000, file_off, aux_addr - (first + 16 * i), 0 if i == 999 else 16)
        for i in range(1000)
    )
    assert b.place(recs) == first
    aux_raw = b"".join(
        VERNAUX.pack(elf_hash(f"V_{i}".encode()), 0, 2, off, 0 if i == 999 else VERNAUX.size)
        for i, off in enumerate(names)
    )
    assert b.place(aux_raw) == aux_addr
    b.dynamic.append((DT_VERNEED, first))
    elf = loaded(b.finish())
    with pytest.raises(ElfError, match="more entries than the file can hold"):
        _ = elf.version_needs
    assert elf._records_walked <= elf.size // 16 + 1 <= MAX_VERSION_RECORDS


def test_identical_needs_are_reported_once():
    b = ElfBuilder()
    b.dynamic.append((DT_NEEDED, b.string("libc.so.6")))
    b.symbols(["puts"], [2])
    b.dynamic.append(
        (
            DT_VERNEED,
            b.verneed(
                [("libc.so.6", [("GLIBC_2.2.5", 0, 2)]), ("libc.so.6", [("GLIBC_2.2.5", 0, 2)])]
            ),
        )
    )
    assert len(loaded(b.finish()).version_needs) == 1


def test_definitions_overwrite_needs_of_the_same_index():
    """elf/dl-version.c fills l_versions from the needs, then from the definitions."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic.append((DT_VERDEF, b.verdef([("libx.so", VER_FLG_BASE, 1), ("MINE_1", 0, 2)])))
    elf = loaded(b.finish())
    assert [(d.name, d.index) for d in elf.version_defs] == [("libx.so", 1), ("MINE_1", 2)]
    assert [(s.version, s.file) for s in elf.undefined_symbols] == [("MINE_1", None)]


def test_truncated_tables_are_refused():
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    for at, tag, _value in dynamic_entries(image):  # DT_STRSZ of 3: names fall outside
        if tag == DT_STRSZ:
            struct.pack_into("<Q", image, at + 8, 3)
    with pytest.raises(ElfError, match="DT_STRTAB"):
        _ = loaded(image).needed
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    for at, tag, _value in dynamic_entries(image):  # a need past the end of the PT_LOAD
        if tag == DT_VERNEED:
            struct.pack_into("<Q", image, at + 8, load_end(image) - 4)
    with pytest.raises(ElfError, match="outside the file's loadable segments"):
        _ = loaded(image).version_needs
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    for at, tag, _value in dynamic_entries(image):  # .gnu.version cut by the segment end
        if tag == DT_VERSYM:
            struct.pack_into("<Q", image, at + 8, load_end(image) - 2)
    with pytest.raises(ElfError, match=".gnu.version"):
        _ = loaded(image).undefined_symbols


def test_dynamic_section_without_dt_null_is_refused_unless_zero_filled():
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    with pytest.raises(ElfError, match="without a DT_NULL"):
        loaded(b.finish(dyn_null=False))
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    assert loaded(b.finish(dyn_null=False, load_memsz_extra=64)).needed == ["libc.so.6"]


def test_load_segment_misalignment_and_header_padding_are_refused():
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    bad = bytearray(image)
    struct.pack_into("<Q", bad, EHDR.size + 48, 0x800)  # PT_LOAD p_align
    with pytest.raises(ElfError, match="not page-aligned"):
        loaded(bad)
    bad = bytearray(image)
    bad[12] = 1
    with pytest.raises(ElfError, match="padding"):
        loaded(bad)


def test_rela_without_relaent_is_refused():
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic.append((DT_RELA, BASE))
    with pytest.raises(ElfError, match="DT_RELAENT"):
        loaded(b.finish())


def test_gnu_hash_bloom_size_must_be_a_power_of_two():
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic.append((DT_GNU_HASH, b.place(struct.pack("<IIII", 1, 1, 3, 6) + bytes(32))))
    with pytest.raises(ElfError, match="power of two"):
        loaded(b.finish())


def test_names_that_overlap_beyond_the_budget_are_refused():
    """Thousands of symbols named by different suffixes of one long string would decode
    n^2 bytes; the reader stops at 8 x the file size + 1 MiB."""
    b = ElfBuilder()
    long_name = b.string("x" * 20000)
    b.symbols([], [])
    count = 2000
    raw = bytearray(SYM.size)
    for i in range(count):
        raw += SYM.pack(long_name + i, 0x12, 0, 0, 0, 0)
    b.dynamic = [
        (DT_SYMTAB, b.place(bytes(raw))),
        (DT_SYMENT, SYM.size),
        (DT_HASH, b.place(struct.pack("<II", 1, count + 1) + bytes(4 * (count + 2)))),
    ]
    elf = loaded(b.finish())
    assert elf.size * 8 + (1 << 20) < count * 19000
    with pytest.raises(ElfError, match="names add up"):
        _ = elf.undefined_symbols


def test_tables_in_unreadable_or_dynamic_in_read_only_segments_are_refused():
    """ld.so reads the tables from the mapped segments and, on x86-64 before glibc 2.35,
    writes the relocated addresses back into the dynamic section (ADJUST_DYN_INFO)."""
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    struct.pack_into("<I", image, EHDR.size + 4, 4)  # PT_LOAD: PF_R only
    with pytest.raises(ElfError, match="PF_W"):
        loaded(image)
    struct.pack_into("<I", image, EHDR.size + 4, 0)  # PT_LOAD: no access at all
    with pytest.raises(ElfError, match="PF_R"):
        loaded(image)


def test_hash_table_without_symtab_is_refused():
    """do_lookup_x (elf/dl-lookup.c) dereferences l_info[DT_SYMTAB] for every object with a
    hash table: without one, ld.so crashes (a DT_SYMTAB entry changed into DT_HASH)."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic = [(DT_HASH if t == DT_SYMTAB else t, v) for t, v in b.dynamic]
    with pytest.raises(ElfError, match="no DT_SYMTAB"):
        loaded(b.finish())


def test_load_segments_spanning_terabytes_are_refused():
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    struct.pack_into("<Q", image, EHDR.size + 40, 0x10102464C457F)  # PT_LOAD p_memsz
    with pytest.raises(ElfError, match="span"):
        loaded(image)


def test_abi_version_without_gnu_osabi_is_refused():
    """VALID_ELF_ABIVERSION: a nonzero EI_ABIVERSION only with ELFOSABI_GNU."""
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish()
    image[8] = 1
    with pytest.raises(ElfError, match="ABI version"):
        loaded(image)
    image[7] = 3
    assert loaded(image).abiversion == 1


def test_pltrel_without_jmprel_is_refused():
    """_ELF_DYNAMIC_DO_RELOC (elf/dynamic-link.h) reads l_info[DT_JMPREL] whenever
    DT_PLTREL is there (a DT_JMPREL entry overwritten by a copy of another entry)."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic += [(20, DT_RELA), (2, 24)]  # DT_PLTREL = DT_RELA, DT_PLTRELSZ
    with pytest.raises(ElfError, match="DT_PLTREL without DT_JMPREL"):
        loaded(b.finish())


def test_version_needs_without_versym_are_refused():
    """_dl_check_map_versions reads l_info[DT_VERSYM] unchecked once it found a version."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic = [
        (DT_SONAME if t == DT_VERSYM else t, 1 if t == DT_VERSYM else v) for t, v in b.dynamic
    ]
    with pytest.raises(ElfError, match="without DT_VERSYM"):
        loaded(b.finish())


def test_relro_outside_the_mapped_segments_is_refused():
    """_dl_protect_relro mprotects the last PT_GNU_RELRO's pages: outside the mapping, the
    loader fails after relocation."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish(extra_phdrs=(Phdr(0x6474E552, 0, BASE, PAGE, PAGE, 1),))
    assert loaded(image).needed == ["libc.so.6"]
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish(extra_phdrs=(Phdr(0x6474E552, 0, 0x10102464C457F, PAGE, PAGE, 1),))
    with pytest.raises(ElfError, match="PT_GNU_RELRO"):
        loaded(image)


def test_symtab_pointing_at_another_table_is_refused():
    """A DT_SYMTAB moved onto another table (a DT_GNU_HASH entry turned into DT_SYMTAB):
    symbol 0 is not the gABI's null symbol, so these are not symbols."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic.append((DT_SYMTAB, next(v for t, v in b.dynamic if t == DT_HASH)))
    with pytest.raises(ElfError, match="null symbol"):
        _ = loaded(b.finish()).undefined_symbols


def test_pt_dynamic_with_no_file_size_is_refused():
    image = glibc_lib(("GLIBC_2.2.5", 0, 2)).finish(tweak_dynamic_phdr={"filesz": 0})
    with pytest.raises(ElfError, match="no dynamic section"):
        loaded(image)


def test_overlapping_load_segments_are_refused():
    """A p_memsz grown over the next PT_LOAD: ld.so's zero-fill maps over it."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    image = b.finish(extra_phdrs=(Phdr(PT_LOAD, 0, BASE + PAGE, 16, 16),))
    assert loaded(image).needed == ["libc.so.6"]
    struct.pack_into("<Q", image, EHDR.size + 40, 2 * PAGE)  # first PT_LOAD's p_memsz
    with pytest.raises(ElfError, match="overlapping"):
        loaded(image)


def test_versym_without_version_tables_is_refused():
    """Without needs or definitions ld.so has no l_versions, yet indexes it for every
    relocated symbol once DT_VERSYM is there (a DT_VERNEED entry turned into DT_VERSYM)."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    b.dynamic = [(DT_VERSYM, v) if t == DT_VERNEED else (t, v) for t, v in b.dynamic]
    with pytest.raises(ElfError, match="DT_VERSYM without version needs"):
        loaded(b.finish())


def test_relocation_types_compare_the_whole_r_type():
    """The types are found through the low byte of r_type; an entry whose r_type only shares
    that byte with a wanted one (6 and 0x10406 against R_AARCH64_TLS_TPREL64, 0x406) is not
    a match, and each match reports its symbol (r_info >> 32)."""
    b = glibc_lib(("GLIBC_2.2.5", 0, 2))
    rela = struct.Struct("<QQq")  # r_offset, r_info, r_addend
    entries = [(5 << 32) | 6, (7 << 32) | 0x10406, (9 << 32) | 0x406]
    table = b"".join(rela.pack(BASE, info, 0) for info in entries)
    b.dynamic += [(DT_RELA, b.place(table)), (8, len(table)), (9, rela.size)]  # RELASZ, RELAENT
    elf = loaded(b.finish())
    assert elf.relocation_types_among(frozenset({0x406, 0x506, 0x10407})) == {0x406}
    assert elf.relocations_of(frozenset({0x406, 6})) == [(6, 5), (0x406, 9)]
    assert elf.relocations_of(frozenset({0x10406})) == [(0x10406, 7)]
