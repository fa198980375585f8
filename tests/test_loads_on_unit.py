"""The loads-on matrix (loads_on.py): a pure function of a file's needs and the preset table."""

from __future__ import annotations

import pytest

from orchestrator import platforms
from orchestrator.check.policy import load_policy, with_platform_cxx
from orchestrator.glibc import GlibcVersion
from orchestrator.loads_on import Needs, loads_on, reason, text_lines
from orchestrator.syscalls import KernelVersion

pytestmark = pytest.mark.unit


def needs(glibc: str | None = "2.17", **kw: object) -> Needs:
    base: dict[str, object] = {"cxx": {}, "kernel": {}, "isa_level": 1}
    base.update(kw)
    return Needs(min_glibc=GlibcVersion.of(glibc) if glibc else None, **base)  # type: ignore[arg-type]


def preset(name: str) -> platforms.Platform:
    return platforms.resolve(name)


def test_a_2_28_library_is_not_for_centos_7_because_of_glibc():
    matrix = loads_on(needs("2.28"), platforms.presets())
    assert dict(matrix.not_on)["centos-7"] == "needs glibc 2.28"
    assert "rhel-8" in matrix.ok and "debian-10" in matrix.ok
    assert "debian-9" in dict(matrix.not_on)


def test_a_call_without_fallback_is_judged_by_each_kernel():
    file = needs(kernel={"statx": KernelVersion.parse("4.11")})
    assert reason(file, preset("centos-7")) == "statx (Linux 4.11) without fallback on 3.10"
    assert reason(file, preset("debian-10")) is None
    assert reason(file, preset("steam-sniper")) is None  # a runtime promises no kernel


def test_isa_level_above_the_preset():
    file = needs(isa_level=3)
    assert reason(file, preset("rhel-9")) == "x86-64-v3 code"
    assert reason(file, preset("rhel-10")) is None


def test_glibc_is_the_main_reason_before_the_others():
    file = needs("2.28", isa_level=3, kernel={"statx": KernelVersion.parse("4.11")})
    assert reason(file, preset("centos-7")) == "needs glibc 2.28"
    assert reason(needs(None), preset("debian-13")) == "no glibc loads it"


def test_cxx_need_against_the_preset_ceiling():
    file = needs(cxx={"GLIBCXX": "3.4.21"})
    why = reason(file, preset("centos-7"))
    assert why is not None and why.startswith("GLIBCXX_3.4.21 above its libstdc++")
    assert reason(file, preset("rhel-8")) is None


def test_cxx_need_falls_back_to_the_defaults_for_a_preset_without_ceilings():
    ubuntu = preset("ubuntu-14.04")
    assert not ubuntu.cxx
    file = needs(cxx={"GLIBCXX": "3.4.30"})
    assert reason(file, ubuntu) is None
    why = reason(file, ubuntu, lambda glibc: {"GLIBCXX": GlibcVersion.of("3.4.19")})
    assert why == "GLIBCXX_3.4.30 above its libstdc++ (GLIBCXX_3.4.19)"


def test_text_groups_presets_by_reason():
    matrix = loads_on(needs("2.28"), [preset("centos-7"), preset("debian-9"), preset("rhel-8")])
    lines = text_lines(matrix, indent="")
    assert lines[0] == "loads on: rhel-8"
    assert lines[1:] == ["not on centos-7, debian-9: needs glibc 2.28"]
    assert matrix.to_json() == {
        "ok": ["rhel-8"],
        "not": {"centos-7": "needs glibc 2.28", "debian-9": "needs glibc 2.28"},
        "system_calls_read": True,
    }


def test_a_preset_s_cxx_ceilings_replace_the_policy_defaults():
    policy = load_policy()
    centos = preset("centos-7")
    replaced = with_platform_cxx(policy, centos)
    ceilings = replaced.cxx_runtime.ceilings_for(centos.glibc, "x86_64-linux-gnu")
    assert str(ceilings["GLIBCXX"][0]) == str(centos.cxx_ceiling("GLIBCXX"))
    assert "centos-7" in ceilings["GLIBCXX"][1]
    assert with_platform_cxx(policy, preset("ubuntu-14.04")) is policy


def test_each_names_presets_one_by_one():
    assert [p.name for p in platforms.each("centos-7,buster,centos-7")] == ["centos-7", "debian-10"]
    assert platforms.resolve("2.17").bare and not preset("centos-7").bare


def test_needs_judged_alike_share_a_key_and_others_do_not():
    """The key holds what a matrix reads: other version needs (OPENSSL_3.0) do not split it."""
    plain = needs(cxx={"GLIBC": "2.17"})
    assert plain.key() == needs(cxx={"GLIBC": "2.14", "OPENSSL": "3.0.0"}).key()
    assert plain.key() != needs(cxx={"GLIBC": "2.17", "GCC": "4.2.0"}).key()
    cxx = needs(cxx={"GLIBCXX": "3.4.21", "CXXABI": "1.3.9"})
    assert cxx.key() == needs(cxx={"CXXABI": "1.3.9", "GLIBCXX": "3.4.21", "ZLIB": "1.2"}).key()
    assert cxx.key() != needs(cxx={"GLIBCXX": "3.4.22", "CXXABI": "1.3.9"}).key()
    assert plain.key() != needs(kernel={"statx": KernelVersion.parse("4.11")}).key()
    assert plain.key() != needs(isa_level=3).key() != needs(isa_level=3, zig="x").key()
    assert plain.key() != needs("2.28").key()


def test_files_whose_needs_are_judged_alike_share_one_matrix(tmp_path):
    """check_paths computes each distinct matrix once per run (driver.py): two copies of one
    real ELF file (two inodes, so not the hard-link shortcut) get the same LoadsOn object."""
    import shutil
    import sys
    from pathlib import Path

    from orchestrator.check.driver import check_paths

    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    shutil.copy(Path(sys.executable).resolve(), first)
    shutil.copy(first, second)
    report = check_paths([first, second], GlibcVersion.of("2.17"))
    a, b = report.files
    assert a.loads_on is not None and a.loads_on is b.loads_on
    assert a.loads_on.ok or a.loads_on.not_on
