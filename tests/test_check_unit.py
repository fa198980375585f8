"""Fast tests of the checker's pure parts: versions, policy, requirements, rendering,
discovery and target facts. No compiler, no network: milliseconds each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.check import DEFAULT_POLICY, ElfKind, FileReport, Finding, Report, elf_kind
from orchestrator.check.discover import collect
from orchestrator.check.policy import load_policy, merge, parse_policy
from orchestrator.check.render import fill, grouped, report_json, report_text, wrap_list
from orchestrator.check.report import NO_GLIBC, WARNING, InputError, Requirement, lowest_glibc
from orchestrator.errors import BadInput, UsageError
from orchestrator.glibc import (
    OLDEST_GLIBC,
    GlibcVersion,
    require_for_build,
    require_for_check,
    split_version_node,
)
from orchestrator.targets import TARGETS, by_elf_machine, lookup

pytestmark = pytest.mark.unit
V = GlibcVersion.of


# -- versions ----------------------------------------------------------------------------
def test_versions_order_by_number_not_text():
    assert V("2.2.5") < V("2.17") < V("2.34")
    assert "2.2.5" > "2.17"  # what comparing the strings would say
    assert sorted(map(V, ["2.34", "2.2.5", "2.17", "2.3"])) == [
        V("2.2.5"),
        V("2.3"),
        V("2.17"),
        V("2.34"),
    ]
    assert max(["2.14", "2.2.5", "2.3.4"], key=V) == "2.14"


def test_versions_tie_on_trailing_zeros_and_keep_their_spelling():
    assert V("2.17") == V("2.17.0") == GlibcVersion(2, 17)
    assert hash(V("2.17.0")) == hash(GlibcVersion(2, 17))
    assert not V("2.17") < V("2.17.0") and V("2.17") <= V("2.17.0")
    assert str(V("2.2.5")) == "2.2.5" and str(V("3.4.30")) == "3.4.30"
    assert str(V("11.0")) == "11.0"
    assert len({V("2.17"), GlibcVersion(2, 17), V("2.17.0")}) == 1


def test_glibc_version_keeps_its_api():
    version = GlibcVersion.parse(" 2.17.0 ")
    assert (version.major, version.minor, str(version)) == (2, 17, "2.17")
    assert GlibcVersion(2, 2, 5).parts == (2, 2, 5) and GlibcVersion(2, 2, 5).minor == 2
    assert GlibcVersion(2, 17) > GlibcVersion(2, 2, 5)
    assert repr(GlibcVersion(2, 2, 5)) == "GlibcVersion(2, 2, 5)"
    with pytest.raises(AttributeError):
        version.parts = (3, 0)  # type: ignore[misc]


@pytest.mark.parametrize("text", ["2", "2.x", "2.17.1", "", "two.seventeen", "2..17", "-2.17"])
def test_bad_glibc_text_names_the_option(text: str):
    with pytest.raises(UsageError, match=r"^--policy-key .* is not a glibc version"):
        GlibcVersion.parse(text, what="--policy-key")


@pytest.mark.parametrize("text", ["", "2.", ".2", "2.x", "v2.17", "GLIBC_2.17"])
def test_bad_dotted_version_is_a_value_error(text: str):
    with pytest.raises(ValueError):
        V(text)


def test_version_nodes_split_into_namespace_and_version():
    assert split_version_node("GLIBCXX_3.4.30") == ("GLIBCXX", "3.4.30")
    assert split_version_node("GLIBC_2.2.5") == ("GLIBC", "2.2.5")
    assert split_version_node("GLIBC_PRIVATE") == ("GLIBC_PRIVATE", None)
    assert split_version_node("GLIBC_ABI_DT_RELR") == ("GLIBC_ABI_DT_RELR", None)


def test_glibc_ranges_of_check_and_build_differ_on_purpose():
    x86_64, riscv = lookup("x86_64-unknown-linux-gnu"), lookup("riscv64gc-unknown-linux-gnu")
    assert require_for_check(GlibcVersion(2, 5)) == GlibcVersion(2, 5)
    assert require_for_check(OLDEST_GLIBC) == OLDEST_GLIBC
    with pytest.raises(UsageError, match="older than 2.17, the oldest glibc Rust"):
        require_for_build(GlibcVersion(2, 5), x86_64)
    with pytest.raises(UsageError, match="^--glibc 2.26 is older than 2.27"):
        require_for_build(GlibcVersion(2, 26), riscv)
    assert require_for_build(GlibcVersion(2, 27), riscv) == GlibcVersion(2, 27)
    with pytest.raises(UsageError, match="outside zig's glibc database"):
        require_for_check(GlibcVersion(1, 9))
    with pytest.raises(UsageError, match="^glibc = 9.0 is newer than the newest"):
        require_for_build(GlibcVersion(9, 0), x86_64, "glibc =")
    with pytest.raises(UsageError, match="outside zig's glibc database"):
        require_for_check(GlibcVersion(9, 0))


# -- requirements -> lowest glibc ---------------------------------------------------------
def test_lowest_glibc_is_the_highest_requirement():
    needs = [Requirement(V("2.14")), Requirement(V("2.2.5")), Requirement(V("2.3.4"))]
    assert lowest_glibc(needs, V("2.2.5")) == V("2.14")
    assert str(lowest_glibc([Requirement(V("2.2.5"))], OLDEST_GLIBC)) == "2.2.5"
    assert lowest_glibc([], V("2.17")) == V("2.17")  # nothing needed: the floor


def test_one_unmeetable_requirement_means_no_glibc():
    assert (
        lowest_glibc([Requirement(V("2.34")), NO_GLIBC, Requirement(V("2.41"))], OLDEST_GLIBC)
        is None
    )


# -- policy -------------------------------------------------------------------------------
def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    return path


def test_default_policy_loads_into_typed_values():
    policy = load_policy()
    assert policy.loader.relr_glibc == V("2.36")
    assert policy.loader.x86_isa_level_refused_from == V("2.33")
    assert policy.loader.static_tls_surplus_bytes == 1664
    assert policy.markers["GLIBC_ABI_DT_RELR"].glibc == V("2.36")
    assert "_about" not in policy.markers and "_about" not in policy.glibc_libraries
    assert policy.glibc_sonames("x86_64-linux-gnu")["ld"] == "ld-linux-x86-64.so.2"
    assert policy.merged_into_libc.glibc == V("2.34")
    with pytest.raises(TypeError):
        policy.symbol_hints["x"] = "y"  # type: ignore[index]


def test_cxx_ceiling_is_the_greatest_entry_at_or_below_the_target():
    runtime = load_policy().cxx_runtime
    ceilings = runtime.ceilings_for(V("2.18"), "x86_64-linux-gnu")
    assert ceilings["GLIBCXX"] == (V("3.4.19"), "CentOS 7 (GCC 4.8.5)")
    assert runtime.ceilings_for(V("2.17"), "aarch64-linux-gnu")["GCC"][0] == V("4.7.0")
    assert runtime.ceilings_for(V("2.0"), "x86_64-linux-gnu")["GLIBCXX"][0] == V("3.4.8")


def test_user_policy_merges_key_by_key(tmp_path: Path):
    policy = load_policy(
        write(tmp_path, {"loader": {"relr_glibc": "2.40"}, "symbol_hints": {"memcpy": "mine"}})
    )
    assert policy.loader.relr_glibc == V("2.40")
    assert policy.loader.gnu_hash_from == V("2.5")  # the rest of `loader` kept
    assert policy.symbol_hints["memcpy"] == "mine"
    assert "fcntl64" in policy.symbol_hints
    assert merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 3}, "d": [2]}) == {
        "a": {"b": 3, "c": 2},
        "d": [2],
    }


@pytest.mark.parametrize(
    "override, key",
    [
        ({"loader": {"relr_glibc": "soon"}}, "loader.relr_glibc"),
        ({"loader": {"x86_isa_level_refused_from": 2.33}}, "loader.x86_isa_level_refused_from"),
        ({"loader": {"static_tls_surplus_bytes": -1}}, "loader.static_tls_surplus_bytes"),
        (
            {"cxx_runtime": {"ceilings": [{"glibc": "2.17", "GCC": "new"}]}},
            "cxx_runtime.ceilings[0].GCC",
        ),
        ({"markers": {"GLIBC_ABI_X": {"glibc": "2.40", "why": "w"}}}, "markers.GLIBC_ABI_X.fix"),
        ({"needed": {"allowed": "libc.so.6"}}, "needed.allowed"),
    ],
)
def test_bad_user_policy_names_the_key(tmp_path: Path, override: dict, key: str):
    path = write(tmp_path, override)
    with pytest.raises(BadInput) as caught:
        load_policy(path)
    assert caught.value.message.startswith(f"--policy {path}: ")
    assert key in caught.value.message


def test_bad_policy_files(tmp_path: Path):
    with pytest.raises(BadInput, match="no such file"):
        load_policy(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_policy(tmp_path / "broken.json")
    with pytest.raises(BadInput, match="must hold one JSON object"):
        load_policy(write(tmp_path, ["loader"]))
    with pytest.raises(UsageError, match=r"policy\.loader is missing"):
        parse_policy(
            {k: v for k, v in json.loads(DEFAULT_POLICY.read_text()).items() if k != "loader"}
        )


# -- rendering ----------------------------------------------------------------------------
def findings() -> list[Finding]:
    text = "needs glibc newer than the target"
    return [
        Finding("version-too-new", text, "b_sym", "GLIBC_2.28", "libc.so.6"),
        Finding("textrel", "DT_TEXTREL"),
        Finding("version-too-new", text, "a_sym", "GLIBC_2.28", "libc.so.6", "a hint"),
        Finding("version-too-new", text, "c_sym", "GLIBC_2.34", "libc.so.6"),
    ]


def test_findings_group_by_kind_then_newest_version_first():
    groups = grouped(findings())
    assert [(kind, version) for (kind, version, _lib, _text), _ in groups] == [
        ("version-too-new", "GLIBC_2.34"),
        ("version-too-new", "GLIBC_2.28"),
        ("textrel", None),
    ]
    assert [f.symbol for f in groups[1][1]] == ["b_sym", "a_sym"]


def test_finding_message_and_json():
    finding = findings()[2]
    assert finding.message == "a_sym@GLIBC_2.28: needs glibc newer than the target (a hint)"
    assert Finding("x", "t", "sym").message == "sym: t"
    assert finding.to_json() == {
        "kind": "version-too-new",
        "symbol": "a_sym",
        "version": "GLIBC_2.28",
        "library": "libc.so.6",
        "message": finding.message,
        "symbols_omitted": 0,
    }
    assert "severity" not in finding.to_json()


def test_text_report_of_a_failing_file():
    warning = Finding("nodelete", "DF_1_NODELETE", severity=WARNING)
    file = FileReport(
        path="lib.so",
        arch="x86_64",
        required={"GLIBC": "2.34"},
        violations=findings(),
        warnings=[warning],
        min_glibc="2.34",
        unresolved=[f"u{i}" for i in range(14)],
    )
    report = Report(GlibcVersion(2, 17), [file], [InputError("bad.so", "truncated")])
    assert report.exit_code == 2 and not report.ok
    assert report_text(report).splitlines() == [
        "FAIL: checked 1 file against glibc 2.17: 0 ok, 1 failing, 1 could not be analysed",
        "  FAIL lib.so (x86_64): lowest glibc it can load on: 2.34 (needs GLIBC 2.34)",
        "",
        "[version-too-new] 3 symbols",
        "  GLIBC_2.34 from libc.so.6: c_sym",
        "  GLIBC_2.28 from libc.so.6: a_sym, b_sym",
        "  why: needs glibc newer than the target",
        "  a_sym: a hint",
        "",
        "[textrel]",
        "  why: DT_TEXTREL",
        "",
        "warning: [nodelete]",
        "  why: DF_1_NODELETE",
        "info: 14 undefined symbols glibc does not provide (a DT_NEEDED library or the host "
        "must): u0, u1,",
        "       u2, u3, u4, u5, u6, u7, u8, u9, u10, u11 (+2 more)",
        "error: bad.so: truncated",
    ]
    assert report_json(report)["files"][0]["min_glibc"] == "2.34"


def test_wrapping_keeps_lines_within_100_columns():
    lines = fill("word " * 60, "   ")
    assert len(lines) > 2 and all(len(line) <= 100 for line in lines)
    names = wrap_list([f"symbol_{i:03d}" for i in range(40)], "  ")
    assert all(len(line) <= 100 for line in names) and names[0].endswith(",")


# -- discovery ----------------------------------------------------------------------------
def elf_header(e_type: int, *, little: bool = True) -> bytes:
    order = "little" if little else "big"
    return (
        b"\x7fELF\x02"
        + (b"\x01" if little else b"\x02")
        + b"\x01"
        + bytes(9)
        + e_type.to_bytes(2, order)
        + bytes(46)
    )


def test_elf_kind_from_the_header(tmp_path: Path):
    cases = {
        "lib.so": (elf_header(3), ElfKind.SHARED_LIBRARY),
        "exe": (elf_header(2), ElfKind.EXECUTABLE),
        "obj.o": (elf_header(1), ElfKind.OBJECT),
        "core": (elf_header(4), ElfKind.CORE),
        "big.so": (elf_header(3, little=False), ElfKind.SHARED_LIBRARY),
        "short": (b"\x7fELF\x02", ElfKind.MALFORMED),
        "text.txt": (b"hello", ElfKind.NOT_ELF),
    }
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert elf_kind(tmp_path / name) is kind, name
    assert ElfKind.SHARED_LIBRARY.loadable and not ElfKind.PIE_EXECUTABLE.loadable
    assert ElfKind.EXECUTABLE.checked and not ElfKind.OBJECT.checked


def test_folder_search_skips_objects_and_lists_a_file_once(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "libreal.so.1").write_bytes(elf_header(3))
    (tmp_path / "libreal.so").symlink_to("sub/libreal.so.1")
    (tmp_path / "dangling.so").symlink_to("nowhere.so")
    (tmp_path / "obj.o").write_bytes(elf_header(1))
    (tmp_path / "notes.txt").write_text("not ELF")
    errors: list[InputError] = []
    assert collect([tmp_path], errors) == [
        (str(tmp_path / "sub" / "libreal.so.1"), tmp_path / "sub" / "libreal.so.1")
    ]
    assert errors == []
    empty = tmp_path / "empty"
    empty.mkdir()
    collect([empty, tmp_path / "missing"], errors)
    assert [e.message for e in errors] == [
        "no ELF shared objects or executables in this folder",
        "no such file or directory",
    ]


# -- target facts -------------------------------------------------------------------------
def test_target_facts():
    x86_64 = lookup("x86_64-unknown-linux-gnu")
    assert x86_64.ld_so_names == ("ld-linux-x86-64.so.2",)
    assert x86_64.tls_initial_exec_relocs == {18, 23} and x86_64.tls_descriptor_relocs == {36}
    assert x86_64.little_endian and x86_64.debian_arch == "amd64" and x86_64.arch == "x86_64"
    assert not lookup("s390x-unknown-linux-gnu").little_endian
    arm = lookup("armv7-unknown-linux-gnueabihf")
    assert arm.required_eflags is not None and arm.required_eflags.value == 0x400
    assert arm.ld_so_names[0] == "ld-linux-armhf.so.3"
    assert by_elf_machine("EM_386") is lookup("i686-unknown-linux-gnu")
    assert all(t.ld_so_names and t.tls_initial_exec_relocs for t in TARGETS.values())
    assert {t.debian_arch for t in TARGETS.values()} >= {"amd64", "arm64", "i386", "armhf"}


def test_policy_loaders_agree_with_target_ld_so_names():
    loaders = load_policy().loaders
    for target in TARGETS.values():
        assert loaders[target.zig] == target.ld_so_names[0], target.rust


# -- rules over small data: issue 11 (host libraries, undefined versions, bounds) ------------
def _fake_table():
    from orchestrator.abilist import SymbolTable

    return SymbolTable(
        "unit-x86_64-fake",
        {
            "log2": {"m": ["2.2.5", "2.29"]},
            "sqrt": {"m": ["2.2.5"]},
            "dlopen": {"dl": ["2.2.5"], "c": ["2.34"]},
            "memcpy": {"c": ["2.2.5", "2.14"]},
            "puts": {"c": ["2.2.5"]},
        },
        ("2.2.5", "2.14", "2.17", "2.29", "2.34"),
    )


FAKE_TABLE = _fake_table()


def _ctx(glibc: str = "2.17", **kw):
    from orchestrator.check.rules.context import Context

    return Context.make(
        target=lookup("x86_64-unknown-linux-gnu"),
        glibc=V(glibc),
        policy=load_policy(),
        table=FAKE_TABLE,
        **kw,
    )


def _elf(undefined=(), needs=(), needed=("libc.so.6",)):
    from types import SimpleNamespace

    from orchestrator.elffile import UndefinedSymbol, VersionNeed

    return SimpleNamespace(
        needed=list(needed),
        undefined_symbols=[UndefinedSymbol(name, False, None, None) for name in undefined],
        version_needs=[
            VersionNeed(file, name, flags, 2 + i) for i, (file, name, flags) in enumerate(needs)
        ],
    )


def _run(rule, elf, ctx):
    items = list(rule(elf, ctx))
    findings = [i for i in items if isinstance(i, Finding)]
    requirements = [i for i in items if isinstance(i, Requirement)]
    return findings, lowest_glibc(requirements, OLDEST_GLIBC)


def test_missing_libm_is_a_warning_that_states_the_host_condition():
    from orchestrator.check.rules.existence import check_existence

    findings, lowest = _run(check_existence, _elf(["log2", "puts"]), _ctx())
    [finding] = findings
    assert (finding.kind, finding.severity, finding.library) == (
        "missing-library",
        WARNING,
        "libm.so.6",
    )
    assert "only in a host process that already has libm.so.6 loaded" in finding.message
    assert lowest == V("2.2.5")  # it loads on the target, given that host


def test_strict_missing_libm_needs_no_glibc_and_libdl_needs_2_34():
    from orchestrator.check.rules.existence import check_existence

    findings, lowest = _run(check_existence, _elf(["log2"]), _ctx(strict=True))
    assert [f.severity for f in findings] == ["violation"] and lowest is None
    assert "--strict" in findings[0].message
    findings, lowest = _run(check_existence, _elf(["dlopen"]), _ctx(strict=True))
    assert [f.library for f in findings] == ["libdl.so.2"] and lowest == V("2.34")
    assert "moved into libc only in 2.34" in findings[0].message
    assert _run(check_existence, _elf(["dlopen"]), _ctx("2.34", strict=True)) == ([], V("2.34"))


def test_named_host_libraries_settle_a_missing_library():
    from orchestrator.check.rules.existence import check_existence

    assert _run(check_existence, _elf(["sqrt"]), _ctx(host_libraries=frozenset({"libm.so.6"}))) == (
        [],
        V("2.2.5"),
    )
    findings, lowest = _run(
        check_existence, _elf(["sqrt"]), _ctx(host_libraries=frozenset({"libdl.so.2"}))
    )
    assert [f.severity for f in findings] == ["violation"] and lowest is None
    assert "--host-libraries does not name it" in findings[0].message


def test_host_has_is_unknown_false_under_strict_and_named_when_listed():
    assert _ctx().host_has("libm.so.6") is None
    assert _ctx(strict=True).host_has("libm.so.6") is False
    named = _ctx(strict=True, host_libraries=frozenset({"libm.so.6"}))
    assert named.host_has("libm.so.6") is True and named.host_has("libdl.so.2") is False


def test_parse_host_libraries():
    from orchestrator.check import parse_host_libraries

    assert parse_host_libraries("libm.so.6, libdl.so.2") == {"libm.so.6", "libdl.so.2"}
    for bad in ("", "libm.so.6,", "/lib/libm.so.6", "lib m"):
        with pytest.raises(BadInput, match="--host-libraries"):
            parse_host_libraries(bad)


@pytest.mark.parametrize("node", ["GLIBC_2.99", "GLIBC_2.17.5", "GLIBC_2.0", "GLIBC_2.19"])
def test_a_glibc_version_the_target_never_defined_is_a_violation(node: str):
    from orchestrator.check.rules.versions import check_version_needs

    findings, lowest = _run(check_version_needs, _elf(needs=[("libc.so.6", node, 0)]), _ctx())
    assert [(f.kind, f.version, f.severity) for f in findings] == [
        ("unknown-version", node, "violation")
    ]
    assert lowest is None and "every glibc" in findings[0].message


def test_a_defined_glibc_version_is_judged_as_before():
    from orchestrator.check.rules.versions import check_version_needs

    elf = _elf(needs=[("libc.so.6", "GLIBC_2.14", 0), ("libc.so.6", "GLIBC_2.29", 0)])
    findings, lowest = _run(check_version_needs, elf, _ctx())
    assert {f.kind for f in findings if f.severity == "violation"} == {"version-too-new"}
    assert {f.version for f in findings if f.severity == "violation"} == {"GLIBC_2.29"}
    assert lowest == V("2.29")


def test_a_name_glibc_never_used_on_its_library_is_a_violation_elsewhere_reported():
    from orchestrator.check.rules.versions import check_version_needs, other_version_needs

    elf = _elf(
        needs=[
            ("libc.so.6", "GLIBC-2.36", 0),
            ("libasound.so.2", "ALSA_0.9", 0),
            ("libstdc++.so.6", "GLIBCXX_3.4", 0),
            ("libssl.so.3", "OPENSSL_3.0", 0),
            ("libasound.so.2", "ALSA_0.9.0rc4", 0),
        ],
        needed=("libc.so.6", "libasound.so.2", "libstdc++.so.6", "libssl.so.3"),
    )
    findings, lowest = _run(check_version_needs, elf, _ctx())
    assert [(f.kind, f.version) for f in findings if f.severity == "violation"] == [
        ("unknown-version", "GLIBC-2.36")
    ]
    assert lowest is None
    assert other_version_needs(elf, _ctx()) == {
        "libasound.so.2": ["ALSA_0.9", "ALSA_0.9.0rc4"],
        "libssl.so.3": ["OPENSSL_3.0"],
    }


def test_libxcrypt_needs_are_reported_not_judged():
    """libcrypt.so.1 is libxcrypt on current systems (XCRYPT_2.0): glibc's own libcrypt
    (removed in 2.39) is not in zig's database, so its needs are not judged by name."""
    from orchestrator.check.rules.versions import check_version_needs, other_version_needs

    elf = _elf(
        needs=[("libcrypt.so.1", "XCRYPT_2.0", 0), ("libcrypt.so.1", "GLIBC_2.2.5", 0)],
        needed=("libc.so.6", "libcrypt.so.1"),
    )
    findings, lowest = _run(check_version_needs, elf, _ctx())
    assert not [f for f in findings if f.severity == "violation"] and lowest == V("2.2.5")
    assert other_version_needs(elf, _ctx()) == {"libcrypt.so.1": ["XCRYPT_2.0"]}


def test_a_weak_need_for_an_undefined_version_is_only_a_warning():
    from orchestrator.check.rules.versions import check_version_needs
    from orchestrator.elffile import VER_FLG_WEAK

    findings, lowest = _run(
        check_version_needs, _elf(needs=[("libc.so.6", "GLIBC_2.99", VER_FLG_WEAK)]), _ctx()
    )
    assert [(f.kind, f.severity) for f in findings] == [("weak-version-need", WARNING)]
    assert lowest == OLDEST_GLIBC


def test_defined_versions_is_the_union_of_the_libraries():
    assert FAKE_TABLE.defined_versions == {"2.2.5", "2.14", "2.29", "2.34"}
    assert FAKE_TABLE.floor == "2.2.5"


def _finding(kind="k", symbol=None, version="V_1", library="libx.so", severity="violation"):
    return Finding(kind, "text", symbol=symbol, version=version, library=library, severity=severity)


def test_bounded_keeps_a_group_up_to_its_cap_and_counts_the_rest():
    from orchestrator.check.report import Bounded

    bounded = Bounded()
    for i in range(Bounded.PER_GROUP + 7):
        bounded.add(_finding(symbol=f"s{i}"))
    bounded.add(_finding(symbol="s0"))  # a repeat counts too
    kept = bounded.findings("violation")
    assert len(kept) == Bounded.PER_GROUP
    assert [f.omitted for f in kept[:-1]] == [0] * (Bounded.PER_GROUP - 1)
    assert kept[-1].omitted == 8
    assert (
        report_json(Report(V("2.17"), [FileReport("f", violations=kept)]))["files"][0][
            "violations"
        ][-1]["symbols_omitted"]
        == 8
    )


def test_bounded_caps_groups_per_severity_and_counts_their_findings():
    from orchestrator.check.report import Bounded

    bounded = Bounded()
    for i in range(Bounded.GROUPS + 3):
        bounded.add(_finding(version=f"V_{i}"))
        bounded.add(_finding(version=f"V_{i}", severity=WARNING))
    assert len(bounded.findings("violation")) == Bounded.GROUPS
    assert len(bounded.findings(WARNING)) == Bounded.GROUPS
    assert bounded.omitted == 6


def test_bounded_clips_long_names_and_texts():
    from orchestrator.check.report import Bounded, clip

    assert clip("abc", 10) == "abc"
    long = "x" * 100_000
    assert len(clip(long, 256)) <= 256 and "100000 characters" in clip(long, 256)
    bounded = Bounded()
    bounded.add(Finding("k", long, symbol=long, version=long, library=long))
    [kept] = bounded.findings("violation")
    assert len(kept.text) <= Bounded.TEXT
    assert max(map(len, (kept.symbol, kept.version, kept.library))) <= Bounded.NAME
    names, omitted = Bounded.names(["name"] * (Bounded.NAMES + 5))
    assert len(names) == Bounded.NAMES and omitted == 5
    names, omitted = Bounded.names([long] * 1000)
    assert sum(map(len, names)) <= Bounded.NAMES_CHARS and len(names) + omitted == 1000
    assert len(names[0]) <= Bounded.NAME


def test_bounded_keeps_at_most_its_characters():
    from orchestrator.check.report import Bounded

    bounded = Bounded()
    text = "t" * Bounded.TEXT
    for i in range(2 * Bounded.CHARS // Bounded.TEXT):
        bounded.add(Finding(f"kind{i % 50}", text, symbol=f"s{i}", version="V", library="l"))
    kept = bounded.findings("violation")
    assert sum(len(f.text) for f in kept) <= Bounded.CHARS
    assert (
        len(kept) + sum(f.omitted for f in kept) + bounded.omitted
        == 2 * Bounded.CHARS // Bounded.TEXT
    )


def test_text_report_agrees_with_the_verdict_and_lists_other_needs():
    failing = FileReport(
        "lib.so",
        arch="x86_64",
        min_glibc="2.14",
        violations=[Finding("textrel", "t")],
        other_version_needs={"libasound.so.2": ["ALSA_0.9"]},
    )
    text = report_text(Report(V("2.17"), [failing]))
    assert "lowest glibc it can load on: 2.14" not in text
    assert "allow glibc 2.14, but the violations below stop it" in text
    assert "libasound.so.2 ALSA_0.9" in text
    above = FileReport("lib.so", min_glibc="2.34", violations=[Finding("x", "t")])
    assert "lowest glibc it can load on: 2.34" in report_text(Report(V("2.17"), [above]))
    data = report_json(Report(V("2.17"), [failing]))["files"][0]
    assert data["other_version_needs"] == {"libasound.so.2": ["ALSA_0.9"]}
    assert data["findings_omitted"] == 0 and data["unresolved_omitted"] == 0


def test_build_takes_strict_and_host_libraries_from_flags_or_crate_metadata():
    from orchestrator import cargo
    from orchestrator.build import BuildOptions, resolve

    root = Path("/nonexistent/crate")

    def crate(**settings: object) -> cargo.Crate:
        return cargo.Crate(
            root=root,
            manifest=root / "Cargo.toml",
            workspace_root=root,
            target_dir=root / "target",
            packages=("plug",),
            version="1",
            settings={k.replace("_", "-"): (v, root) for k, v in settings.items()},
            source_root=root,
        )

    plain = resolve(BuildOptions(crate_dir=root, out=root / "dist"), crate())
    assert plain.strict is False and plain.host_libraries is None
    meta = resolve(
        BuildOptions(crate_dir=root, out=root / "dist"),
        crate(strict=True, host_libraries=["libm.so.6", "libdl.so.2"]),
    )
    assert meta.strict is True and meta.host_libraries == {"libm.so.6", "libdl.so.2"}
    flags = resolve(
        BuildOptions(crate_dir=root, out=root / "dist", strict=False, host_libraries="libm.so.6"),
        crate(strict=True),
    )
    assert flags.strict is False and flags.host_libraries == {"libm.so.6"}
    with pytest.raises(UsageError, match="strict"):
        resolve(BuildOptions(crate_dir=root, out=root / "dist"), crate(strict="yes"))
