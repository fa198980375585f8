"""Issue 15, the pure parts of provenance: ELF objects read from bytes made here, the index's
answers, cargo's package ids and messages, and what each crate costs in glibc."""

from __future__ import annotations

import json
import os
import struct
import time

import pytest

from orchestrator import provenance as p
from orchestrator.check.report import CrateRef, FileReport, Finding
from orchestrator.glibc import GlibcVersion

pytestmark = pytest.mark.unit
V = GlibcVersion.of


def elf_object(
    *,
    undefined=("getrandom",),
    weak=(),
    defined=("deep_fn",),
    relocs=(),
    stack_flags: int | None = 0,
    machine: int = 62,
) -> bytes:
    """A minimal ELF64 little-endian relocatable object (gABI layout): .text, .rela.text,
    optionally .note.GNU-stack with `stack_flags`, .symtab, .strtab, .shstrtab."""
    names = [".text", ".rela.text", ".symtab", ".strtab", ".shstrtab"]
    if stack_flags is not None:
        names.append(".note.GNU-stack")
    shstr = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    name_at = {n: shstr.index(n.encode() + b"\0") for n in names}
    strtab = b"\0"
    symbols = [struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0)]
    for name, bind, shndx in (
        [(n, 1, 1) for n in defined] + [(n, 1, 0) for n in undefined] + [(n, 2, 0) for n in weak]
    ):
        symbols.append(struct.pack("<IBBHQQ", len(strtab), bind << 4, 0, shndx, 0, 0))
        strtab += name.encode() + b"\0"
    symtab = b"".join(symbols)
    text = b"\xc3" * 16
    rela = b"".join(struct.pack("<QQq", 0, (1 << 32) | t, 0) for t in relocs)
    bodies = [text, rela, symtab, strtab, shstr] + ([b""] if stack_flags is not None else [])
    offset = 64
    layout = []
    for body in bodies:
        layout.append(offset)
        offset += len(body)
    shoff = offset
    # sections: 0 null, 1 .text, 2 .rela.text, 3 .symtab, 4 .strtab, 5 .shstrtab, [6 stack]
    headers = [
        struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack("<IIQQQQIIQQ", name_at[".text"], 1, 6, 0, layout[0], len(text), 0, 0, 16, 0),
        struct.pack(
            "<IIQQQQIIQQ", name_at[".rela.text"], 4, 0x40, 0, layout[1], len(rela), 3, 1, 8, 24
        ),
        struct.pack(
            "<IIQQQQIIQQ", name_at[".symtab"], 2, 0, 0, layout[2], len(symtab), 4, 1, 8, 24
        ),
        struct.pack("<IIQQQQIIQQ", name_at[".strtab"], 3, 0, 0, layout[3], len(strtab), 0, 0, 1, 0),
        struct.pack(
            "<IIQQQQIIQQ", name_at[".shstrtab"], 3, 0, 0, layout[4], len(shstr), 0, 0, 1, 0
        ),
    ]
    if stack_flags is not None:
        headers.append(
            struct.pack(
                "<IIQQQQIIQQ",
                name_at[".note.GNU-stack"],
                1,
                stack_flags,
                0,
                layout[5],
                0,
                0,
                0,
                1,
                0,
            )
        )
    ehdr = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + struct.pack(
            "<HHIQQQIHHHHHH", 1, machine, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(headers), 5
        )
    )
    return ehdr + b"".join(bodies) + b"".join(headers)


def facts(data: bytes) -> p.ObjectFacts:
    return p.read_object(memoryview(data))[1]


# -- reading objects ---------------------------------------------------------------------------
def test_object_symbols_strong_weak_and_defined():
    got = facts(elf_object(undefined=("getrandom", "fcntl64@GLIBC_2.28"), weak=("statx",)))
    assert got.undefined == {"getrandom", "fcntl64"}  # a .symver'd name without its version
    assert got.weak == {"statx"} and got.defined == {"deep_fn"}
    assert got.exec_stack is None and not got.static_tls and not got.text_relocations


def test_initial_exec_tls_and_text_relocations_in_code():
    assert facts(elf_object(relocs=(22,))).static_tls  # R_X86_64_GOTTPOFF
    assert facts(elf_object(relocs=(23,))).static_tls  # R_X86_64_TPOFF32
    assert not facts(elf_object(relocs=(2, 4))).static_tls  # PC32, PLT32
    assert facts(elf_object(relocs=(11,))).text_relocations  # R_X86_64_32S
    assert not facts(elf_object(relocs=(22,), machine=183)).static_tls  # aarch64 numbers


def test_executable_stack_from_the_gnu_stack_note():
    assert "asks for an executable stack" in facts(elf_object(stack_flags=0x4)).exec_stack
    assert "no .note.GNU-stack" in facts(elf_object(stack_flags=None)).exec_stack


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"BC\xc0\xde" + b"\0" * 80, "not an ELF object"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 57, "no section headers"),
    ],
)
def test_unreadable_objects_say_why(data, needle):
    with pytest.raises(p.ObjectError, match=needle):
        p.read_object(memoryview(data))


def test_object_without_symbol_table_is_refused():
    data = bytearray(elf_object())
    # Turn the .symtab header (section 3) into SHT_PROGBITS: no symbol table left.
    shoff = struct.unpack_from("<Q", data, 40)[0]
    struct.pack_into("<I", data, shoff + 3 * 64 + 4, 1)
    with pytest.raises(p.ObjectError, match="no symbol table"):
        p.read_object(memoryview(bytes(data)))


def test_truncated_object_is_an_object_error_not_a_crash():
    data = elf_object()
    with pytest.raises(p.ObjectError):
        p.read_object(memoryview(data[:-10]))


# -- cargo's record -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "package_id, expected",
    [
        ("registry+https://github.com/rust-lang/crates.io-index#libc@0.2.191", ("libc", "0.2.191")),
        ("path+file:///w/deep-entropy#0.1.7", ("deep-entropy", "0.1.7")),
        ("path+file:///w/plugin#prov-plugin@0.3.0", ("prov-plugin", "0.3.0")),
        (
            "libc 0.2.150 (registry+https://github.com/rust-lang/crates.io-index)",
            ("libc", "0.2.150"),
        ),
    ],
)
def test_package_ids_old_and_new(package_id, expected):
    assert p.parse_package_id(package_id) == expected


def test_message_log_keeps_rlibs_and_static_libraries_only(tmp_path):
    log = p.MessageLog()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "1d1e-native.o").write_bytes(b"")
    (out_dir / "libnative.a").write_bytes(b"")
    (out_dir / "native.c").write_bytes(b"")
    for message in [
        {
            "reason": "compiler-artifact",
            "package_id": "path+file:///w/deep-entropy#0.1.7",
            "filenames": ["/t/libdeep_entropy.rlib", "/t/deps/libdeep_entropy-1.rmeta"],
        },
        {
            "reason": "compiler-artifact",
            "package_id": "path+file:///w/p#prov-plugin@0.3.0",
            "filenames": ["/t/libprov_plugin.so"],
        },
        {
            "reason": "build-script-executed",
            "package_id": "path+file:///w/c#plug-c@0.1.0",
            "out_dir": str(out_dir),
        },
        {"reason": "compiler-message", "package_id": "x"},
    ]:
        log.feed(json.dumps(message))
    log.feed("not json")
    assert [(u.crate, u.version, u.path.name) for u in log.units] == [
        ("deep-entropy", "0.1.7", "libdeep_entropy.rlib"),
        ("plug-c", "0.1.0", "1d1e-native.o"),
        ("plug-c", "0.1.0", "libnative.a"),
    ]


# -- the index ------------------------------------------------------------------------------------
DEEP = p.Origin("deep-entropy", "0.1.7", "deep_entropy-3bb3.deep_entropy.b525-cgu.0.rcgu.o")
STD_O = p.Origin(p.STD, "1.95.0", "std-d123.std.e282-cgu.0.rcgu.o")


def test_weak_referrers_count_only_where_the_library_is_weak_too():
    index = p.ProvenanceIndex(
        symbols={"getrandom": (DEEP,)},
        weak_symbols={"getrandom": (STD_O,), "statx": (STD_O,)},
        weak_in_library=frozenset({"statx"}),
    )
    assert index.origins_of("getrandom") == (DEEP,)
    assert index.origins_of("statx") == (STD_O,)
    lto = p.ProvenanceIndex(weak_symbols={"getrandom": (STD_O,)})
    assert lto.origins_of("getrandom") == ()  # std's weak reference did not make it strong


def test_flag_findings_and_unavailable_reasons():
    index = p.ProvenanceIndex(static_tls=(DEEP,))
    assert index.origins_for("static-tls", None) == (DEEP,)
    assert index.why_unavailable("static-tls", None) is None
    assert index.why_unavailable("relr", None) is None  # not a finding objects could tell
    assert "no object of the build" in index.why_unavailable("version-too-new", "getrandom")
    lto = p.ProvenanceIndex(
        unavailable=(
            p.Unavailable("deep-entropy", "0.1.7", p.BITCODE_ONLY),
            p.Unavailable("middle", "0.2.0", p.BITCODE_ONLY),
        )
    )
    why = lto.why_unavailable("symbol-too-new", "getrandom")
    assert why.startswith(p.UNAVAILABLE) and "deep-entropy, middle: rlib of LLVM bitcode" in why


# -- what each crate costs ------------------------------------------------------------------------
NEEDS = {
    "getrandom": V("2.25"),
    "fcntl64": V("2.28"),
    "memfd_create": V("2.27"),
    "mystery": V("2.26"),
}
CRATES = {
    "getrandom": {"deep-entropy"},
    "fcntl64": {"plugin-c"},
    "memfd_create": {"plugin-c", "deep-entropy"},
}


def test_lowest_without_one_crate():
    floor = V("2.17")
    assert p.lowest_without("plugin-c", NEEDS, CRATES, floor) == V("2.27")  # shared stays
    assert p.lowest_without("nobody", NEEDS, CRATES, floor) == V("2.28")
    only_deep = {"getrandom": V("2.25")}
    assert p.lowest_without("deep-entropy", only_deep, CRATES, floor) == V("2.17")
    assert p.lowest_without("deep-entropy", only_deep, CRATES, V("2.36")) == V("2.36")
    assert p.lowest_without("deep-entropy", only_deep, CRATES, None) is None
    # A symbol of unknown provenance (`mystery`) is never assumed away.
    assert p.lowest_without("x", {"mystery": V("2.26")}, {}, floor) == V("2.26")


def test_crate_costs_best_first_and_no_glibc_symbols():
    needs = {"getrandom": V("2.25"), "fcntl64": V("2.28"), "__libc_x": None}
    crates = {"getrandom": {"deep-entropy"}, "fcntl64": {"plugin-c"}, "__libc_x": {"evil"}}
    costs = p.crate_costs(needs, crates, V("2.17"), V("2.17"))
    # Only without `evil` can the file load at all: it comes first.
    assert costs[0] == p.CrateCost("evil", ("__libc_x",), V("2.28"))
    assert [c.crate for c in costs[1:]] == ["deep-entropy", "plugin-c"]
    assert all(c.without is None for c in costs[1:])  # __libc_x stays
    # Needs at or below the target cost nothing.
    assert p.crate_costs({"getrandom": V("2.25")}, crates, V("2.25"), V("2.28")) == []


def test_symbol_needs_from_findings():
    findings = [
        Finding("version-too-new", "t", symbol="fcntl64", version="GLIBC_2.28"),
        Finding("symbol-too-new", "t", symbol="getrandom"),
        Finding("glibc-private", "t", symbol="_dl_x", version="GLIBC_PRIVATE"),
        Finding("missing-library", "t", symbol="dlopen"),
        Finding("textrel", "t"),
    ]
    needs = p.symbol_needs(findings, {"getrandom": V("2.25")}.get)
    assert needs == {"fcntl64": V("2.28"), "getrandom": V("2.25"), "_dl_x": None}


def test_file_floor():
    target = V("2.17")
    needs = {"getrandom": V("2.25")}
    assert p.file_floor(needs, V("2.25"), target) == target
    # The symbols cannot explain 2.36 (a DT_RELR, say): it stays whatever crate goes.
    assert p.file_floor(needs, V("2.36"), target) == V("2.36")
    assert p.file_floor(needs, None, target) is None
    assert p.file_floor({"_dl_x": None}, None, target) == p.OLDEST_GLIBC
    assert p.file_floor({"_dl_x": None}, None, target, other_violations=True) is None


# -- findings and text ----------------------------------------------------------------------------
def test_annotate_names_the_crate_and_its_cost():
    findings = [
        Finding("symbol-too-new", "not in 2.17", symbol="getrandom", library="libc.so.6"),
        Finding("static-tls", "initial-exec"),
    ]
    file = FileReport(
        path="libprov_plugin.so", arch="x86_64", violations=findings, min_glibc="2.25"
    )
    index = p.ProvenanceIndex(symbols={"getrandom": (DEEP,)}, static_tls=(DEEP,))

    class Table:
        def providers(self, name):
            return {"c": ["2.25"]} if name == "getrandom" else None

    annotated, extra = p.annotate_file(
        file, index, V("2.17"), Table(), {"deep-entropy": "use getrandom 0.2"}.get
    )
    assert annotated.violations[0].crates == (CrateRef("deep-entropy", "0.1.7", DEEP.object),)
    assert annotated.violations[0].to_json()["crates"] == [
        {"name": "deep-entropy", "version": "0.1.7", "object": DEEP.object}
    ]
    assert extra.costs == (p.CrateCost("deep-entropy", ("getrandom",), V("2.17")),)
    assert extra.remedies == {"deep-entropy": "use getrandom 0.2"}
    text = "\n".join(p.provenance_lines(annotated, extra))
    assert "getrandom \u2190 deep-entropy 0.1.7 (deep_entropy\u2026rcgu.o)" in text
    assert "without deep-entropy this file would load on 2.17" in text
    assert "deep-entropy: use getrandom 0.2" in text


def test_short_object_names():
    assert p.short_object(DEEP.object) == "deep_entropy\u2026rcgu.o"
    assert p.short_object("1d1e-native.o") == "1d1e-native.o"


def test_linked_archives_are_those_the_build_script_named(tmp_path):
    out = tmp_path / "out"
    (out / "build" / "lib").mkdir(parents=True)
    for name in ("libjemalloc.a", "libjemalloc_pic.a"):
        (out / "build" / "lib" / name).write_bytes(b"!<arch>\n")
    (out / "libfoo.a").write_bytes(b"!<arch>\n")
    (out / "libz.a").write_bytes(b"!<arch>\n")
    search = [f"native={out / 'build' / 'lib'}", str(out)]
    assert p.linked_archives(["static=jemalloc_pic"], search) == [
        out / "build" / "lib" / "libjemalloc_pic.a"
    ]
    assert p.linked_archives(["static:+whole-archive=foo", "dylib=z", "foo:renamed"], search) == [
        out / "libfoo.a"
    ]
    units = p.out_dir_units(out, "tikv-jemalloc-sys", "0.6.1", (["static=jemalloc_pic"], search))
    assert [u.path.name for u in units] == ["libjemalloc_pic.a"]
    # Nothing named (or found): every archive and object of OUT_DIR.
    assert len(p.out_dir_units(out, "x", "1", None)) == 4


def test_units_beside_the_library_and_the_last_run_of_each_crate(tmp_path):
    release = tmp_path / "target" / "x86_64-unknown-linux-gnu" / "release"
    host = tmp_path / "target" / "release"
    mine = p.Unit(crate="deep-entropy", version="0.1.7", path=release / "deps" / "libd-1.rlib")
    build_dep = p.Unit(crate="cc", version="1.11.1", path=host / "deps" / "libcc-2.rlib")
    assert p.same_folder(release / "libprov_plugin.so", [mine, build_dep]) == [mine]
    assert p.same_folder(tmp_path / "dist" / "libprov_plugin.so", [mine, build_dep]) == [
        mine,
        build_dep,
    ]
    deps = release / "deps"
    deps.mkdir(parents=True)
    old, new, other = (
        deps / "libserde-aaaa.rlib",
        deps / "libserde-bbbb.rlib",
        deps / "liblibc-cccc.rlib",
    )
    for path, age in ((old, 86400), (new, 0), (other, 86400)):
        path.write_bytes(b"!<arch>\n")
        os.utime(path, (time.time() - age, time.time() - age))
    assert p._newest_per_crate([old, new, other]) == [other, new]


def ar_archive(members: dict[str, bytes]) -> bytes:
    """A GNU ar archive (ar(5): `!<arch>\\n`, then 60-byte headers, members padded to even)."""
    out = b"!<arch>\n"
    for name, data in members.items():
        out += (f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n").encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return out


def test_index_from_an_archive_kept_by_the_linker_map(tmp_path):
    rlib = tmp_path / "libdeep_entropy-3bb3.rlib"
    rlib.write_bytes(
        ar_archive(
            {
                "lib.rmeta": b"rust",
                "a.rcgu.o": elf_object(),
                "b.rcgu.o": elf_object(undefined=("memfd_create",)),
            }
        )
    )
    unit = p.Unit(crate="deep-entropy", version="0.1.7", path=rlib)
    index = p.build_index([unit])
    assert index.origins_of("getrandom") == (p.Origin("deep-entropy", "0.1.7", "a.rcgu.o"),)
    assert index.origins_of("memfd_create")
    lld_map = (
        "  VMA  LMA  Size Align Out In Symbol\n"
        f"  1000 1000 2a 16 {rlib}(a.rcgu.o):(.text.fill)\n"
        "  1000 1000 0 1 <internal>:(.dynsym)\n"
    )
    kept = p.build_index([unit], map_members=p.linked_members(lld_map))
    assert kept.origins_of("getrandom") and not kept.origins_of("memfd_create")


def test_gnu_ld_map_discarded_sections_do_not_count():
    text = (
        "Archive member included to satisfy reference by file (symbol)\n"
        "/t/libx.rlib(b.rcgu.o)  /t/liby.rlib(y.o) (sym)\n"
        "Discarded input sections\n .text.z 0x0 0x10 /t/libx.rlib(c.rcgu.o)\n"
        "Linker script and memory map\n .text 0x1000 0x2a /t/libx.rlib(a.rcgu.o)\n"
        " .text 0x1100 0x10 /t/build/out/native.o\n"
    )
    assert p.linked_members(text) == {"a.rcgu.o", "native.o"}


def test_bitcode_only_archives_are_unavailable_not_guessed(tmp_path):
    rlib = tmp_path / "libdeep_entropy-0f41.rlib"
    rlib.write_bytes(ar_archive({"lib.rmeta": b"rust", "x.rcgu.o": b"BC\xc0\xde" + b"\0" * 32}))
    index = p.build_index([p.Unit(crate="deep-entropy", version="0.1.7", path=rlib)])
    assert index.unavailable == (p.Unavailable("deep-entropy", "0.1.7", p.BITCODE_ONLY),)
    assert index.origins_of("getrandom") == ()
    assert "LLVM bitcode" in index.why_unavailable("symbol-too-new", "getrandom")


@pytest.mark.unit
def test_known_crate_remedy_names_the_advice_and_the_features():
    from orchestrator.known_crates import remedy

    said = remedy("tikv_jemalloc_sys")  # crates.io treats - and _ alike
    assert said is not None and "disable_initial_exec_tls" in said
    assert said.endswith("(--features tikv-jemallocator/disable_initial_exec_tls)")
    assert remedy("serde") is None
