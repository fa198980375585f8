"""The kernel floor and ISA level read statically (check/rules/kernel.py): the pattern matcher on
hand-assembled bytes, the Rust-fallback classifier, and real files built by zig, gcc and cargo."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from orchestrator.check.rules.kernel import (
    Code,
    _sites_in,
    constant_before,
    crate_of,
    fallback_crate,
    function_at,
)
from orchestrator.syscalls import kernel_calls
from tests.conftest import REPO, run_tool, zig_shared_library

BASE = 0x1000
CALL = b"\xe8\x00\x00\x00\x00"  # call rel32 (target patched by the matcher's caller)


def words(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# -- the pattern matcher (unit) --------------------------------------------------------------
@pytest.mark.unit
def test_x86_mov_edi_imm_before_the_call():
    code = b"\x48\x89\xe6" + b"\xbf\x3e\x01\x00\x00" + b"\x31\xc0" + CALL  # mov rsi,rsp
    assert constant_before(code, BASE, BASE + len(code) - 5, "x86_64", "edi") == 318


@pytest.mark.unit
def test_x86_xor_edi_edi_is_zero_and_a_register_copy_is_unknown():
    assert constant_before(b"\x31\xff" + CALL, BASE, BASE + 2, "x86_64", "edi") == 0
    mov_edi_esi = b"\x89\xf7"
    assert constant_before(mov_edi_esi + CALL, BASE, BASE + 2, "x86_64", "edi") is None


@pytest.mark.unit
def test_x86_a_branch_between_stops_the_search():
    code = b"\xbf\x3e\x01\x00\x00" + b"\xeb\x00" + CALL  # mov edi; jmp +0; call
    assert constant_before(code, BASE, BASE + 7, "x86_64", "edi") is None


@pytest.mark.unit
def test_x86_inline_syscall_number_in_eax_and_madvise_advice_in_edx():
    code = b"\xb8\x3e\x01\x00\x00" + b"\x0f\x05"
    assert constant_before(code, BASE, BASE + 5, "x86_64", "eax") == 318
    code = b"\xba\x08\x00\x00\x00" + b"\x48\x89\xdf" + CALL  # mov edx,8 (MADV_FREE); mov rdi,rbx
    assert constant_before(code, BASE, BASE + 8, "x86_64", "edx") == 8


@pytest.mark.unit
def test_aarch64_mov_w0_before_bl_and_x8_before_svc():
    code = words(0x528027C0, 0xAA1F03E1, 0x94000000)  # mov w0,#318; mov x1,xzr; bl
    assert constant_before(code, BASE, BASE + 8, "aarch64", "x0") == 318
    code = words(0xD28022C8, 0xD4000001)  # mov x8,#278; svc #0
    assert constant_before(code, BASE, BASE + 4, "aarch64", "x8") == 278
    assert constant_before(code, BASE, BASE + 4, "aarch64", "x0") is None


@pytest.mark.unit
def test_sites_are_found_by_their_bytes():
    stub = BASE + 0x100
    code = Code(sections=[], stubs={stub: "syscall"}, slots={0x3000: "madvise"}, functions=[])
    x86 = (
        b"\xbf\x3e\x01\x00\x00"
        + b"\xe8"
        + struct.pack("<i", stub - (BASE + 10))
        + b"\xff\x15"
        + struct.pack("<i", 0x3000 - (BASE + 16))
        + b"\x0f\x05"
    )
    assert list(_sites_in(x86, BASE, code, "x86_64")) == [
        (BASE + 5, "syscall"),
        (BASE + 10, "madvise"),
        (BASE + 16, "inline"),
    ]
    arm = words(0x528027C0, 0x94000000 | ((stub - (BASE + 4)) >> 2), 0xD4000001)
    assert list(_sites_in(arm, BASE, code, "aarch64")) == [
        (BASE + 4, "syscall"),
        (BASE + 8, "inline"),
    ]


# -- who made the call (unit) ----------------------------------------------------------------
@pytest.mark.unit
def test_crate_of_legacy_and_v0_names():
    assert crate_of("_ZN3std3sys2fs4unix9try_statx17h0123456789abcdefE") == "std"
    assert crate_of("_ZN9getrandom8backends3imp17h01E") == "getrandom"
    assert crate_of("_RNvNtNtCs1a2b3c_3std3sys2fs9try_statx") == "std"
    assert crate_of("_RNvCsXYZ_6plugin5entry") == "plugin"
    assert crate_of("getrandom") is None and crate_of("_Z3foov") is None


@pytest.mark.unit
def test_fallback_classifier():
    calls = kernel_calls()
    std_fn = "_ZN3std3sys2fs4unix9try_statx17h01E"
    assert fallback_crate("statx", std_fn, False, False, calls) == ("Rust's std", "")
    assert fallback_crate("memfd_create", std_fn, False, False, calls) is None
    assert fallback_crate("getrandom", "_ZN9getrandom3imp17h01E", False, False, calls) == (
        "the getrandom crate",
        "",
    )
    assert fallback_crate("getrandom", "_ZN6plugin5entry17h01E", False, False, calls) is None
    assert fallback_crate("getrandom", "plugin_entry", False, True, calls) is None  # C code
    stripped = fallback_crate("statx", None, True, True, calls)
    assert stripped is not None and "panic-location" in stripped[1]
    assert fallback_crate("statx", None, True, False, calls) is None


@pytest.mark.unit
def test_function_at():
    functions = [(0x100, 0x180, "a"), (0x200, 0x210, "b")]
    assert function_at(functions, 0x17F) == "a"
    assert function_at(functions, 0x180) is None
    assert function_at(functions, 0x205) == "b"
    assert function_at([], 0x205) is None


# -- real files ------------------------------------------------------------------------------
GETRANDOM_C = """\
#include <sys/syscall.h>
#include <unistd.h>
int plugin_entry(void) {
    char buf[16];
    return syscall(SYS_getrandom, buf, sizeof buf, 0) == sizeof buf ? 0 : 1;
}
"""

STATX_C = """\
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
int plugin_entry(void) {
    struct statx st;
    return statx(AT_FDCWD, "/", 0, STATX_BASIC_STATS, &st);
}
"""


def zig_cc(tmp_path: Path, name: str, source: str, glibc: str = "2.17") -> Path:
    return zig_shared_library(
        source, tmp_path / f"lib{name}.so", target=f"x86_64-linux-gnu.{glibc}"
    )


def check_json(*args: str | Path) -> tuple[int, dict]:
    proc = run_tool("check", "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["files"][0]


def test_a_constant_getrandom_syscall_is_a_warning_for_centos_7(tmp_path):
    lib = zig_cc(tmp_path, "getrandom", GETRANDOM_C)
    code, file = check_json("--glibc", "centos-7", lib)
    assert code == 0, file  # the file loads; the call fails at run time: a warning
    messages = [w["message"] for w in file["warnings"] if w["kind"] == "kernel-syscall"]
    assert len(messages) == 1 and "getrandom (Linux 3.17) has no fallback here" in messages[0]
    assert "centos-7's 3.10" in messages[0]
    assert file["kernel_needs"] == {"getrandom": "3.17"}
    assert file["loads_on"]["not"]["centos-7"].startswith("getrandom (Linux 3.17)")
    assert "debian-9" in file["loads_on"]["ok"]
    code, file = check_json("--glibc", "centos-7", "--strict", lib)
    assert code == 1 and any(v["kind"] == "kernel-syscall" for v in file["violations"])
    code, file = check_json("--glibc", "2.17", "--kernel", "3.17", lib)
    assert code == 0 and not file["warnings"]
    proc = run_tool("check", "--glibc", "centos-7", "--loads-on", lib)
    assert "loads on:" in proc.stdout and "getrandom" in proc.stdout
    # without a floor, --loads-on still reads the code for the matrix; plain --json does not
    # (it would cost ~25 ms a library) and says so
    code, file = check_json("--glibc", "2.17", "--loads-on", lib)
    assert not file["warnings"] and file["loads_on"]["system_calls_read"] is True
    assert file["loads_on"]["not"]["centos-7"].startswith("getrandom (Linux 3.17)")
    code, file = check_json("--glibc", "2.17", lib)
    assert file["loads_on"]["system_calls_read"] is False
    assert "centos-7" in file["loads_on"]["ok"]
    proc = run_tool("check", "--glibc", "2.17", "--loads-on", "--presets", "centos-7,debian-9", lib)
    assert "loads on: debian-9" in proc.stdout and "not on centos-7: getrandom" in proc.stdout
    assert "loads on:" not in run_tool("check", "--glibc", "2.17", lib).stdout


def test_a_2_28_library_is_listed_as_not_for_centos_7(tmp_path):
    lib = zig_cc(tmp_path, "statx", STATX_C, glibc="2.28")
    code, file = check_json("--glibc", "rhel-8", lib)
    assert code == 0, file
    assert file["loads_on"]["not"]["centos-7"] == "needs glibc 2.28"
    assert "rhel-8" in file["loads_on"]["ok"]
    # the imported wrapper: Debian 9 has glibc 2.24, Ubuntu 18.04 glibc 2.27; SLES 15 SP1:
    # glibc 2.26. With the glibc met, statx's kernel 4.11 is the reason on a 4.x older kernel.
    assert file["kernel_needs"] == {"statx": "4.11"}
    code, file = check_json("--glibc", "rhel-8", "--kernel", "4.4", lib)
    assert any(
        w["kind"] == "kernel-wrapper" and w["symbol"] == "statx" for w in file["warnings"]
    ), file


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (ld -z x86-64-v3)")
def test_an_x86_64_v3_library_fails_rhel_9_and_passes_rhel_10(tmp_path):
    src = tmp_path / "v3.c"
    src.write_text("int plugin_entry(void) { return 0; }\n")
    lib = tmp_path / "libv3.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-z,x86-64-v3",
            "-Wl,-z,noexecstack",
            "-o",
            str(lib),
            str(src),
        ],
        check=True,
    )
    code, file = check_json("--glibc", "rhel-9", lib)
    assert code == 1 and [v["kind"] for v in file["violations"]] == ["isa-level"], file
    assert "x86-64-v3" in file["violations"][0]["message"]
    assert file["loads_on"]["not"]["rhel-9"] == "x86-64-v3 code"
    code, file = check_json("--glibc", "rhel-10", lib)
    assert code == 0, file


def test_a_plain_rust_std_plugin_passes_centos_7_with_notes_only(tmp_path):
    out = tmp_path / "out"
    proc = run_tool("--glibc", "2.17", "--out", out, REPO / "examples" / "plugin")
    assert proc.returncode == 0, proc.stderr
    lib = next(out.glob("*.so"))
    code, file = check_json("--glibc", "centos-7", lib)
    assert code == 0, file
    kernel_warnings = [w for w in file["warnings"] if w["kind"].startswith("kernel-")]
    assert not kernel_warnings, kernel_warnings
    assert all(n["kind"] in ("kernel-fallback", "kernel-wrapper") for n in file["notes"])
    # std's statx (Linux 4.11, fs::metadata) is there, attributed to std: a note
    assert [n["symbol"] for n in file["notes"] if n["kind"] == "kernel-fallback"] == ["statx"]
    assert "centos-7" in file["loads_on"]["ok"]


MADVISE_C = """\
#include <stddef.h>
#include <sys/mman.h>
int plugin_entry(void *p, size_t n) { return madvise(p, n, 8); }   /* MADV_FREE */
"""


def test_madv_free_is_named_for_centos_7_and_a_syscall_on_aarch64(tmp_path):
    lib = zig_cc(tmp_path, "madvise", MADVISE_C)
    code, file = check_json("--glibc", "centos-7", lib)
    assert code == 0, file
    assert [w["symbol"] for w in file["warnings"] if w["kind"] == "kernel-madvise"] == ["MADV_FREE"]
    code, file = check_json("--glibc", "debian-9", lib)  # Linux 4.9 has MADV_FREE (4.5)
    assert not [w for w in file["warnings"] if w["kind"] == "kernel-madvise"], file
    arm = zig_shared_library(GETRANDOM_C, tmp_path / "libarm.so", target="aarch64-linux-gnu.2.17")
    code, file = check_json("--glibc", "2.17", "--kernel", "3.10", arm)
    assert file["arch"] == "aarch64" and file["kernel_needs"] == {"getrandom": "3.17"}, file
    assert any(
        "getrandom (Linux 3.17)" in w["message"] and "Linux 3.10" in w["message"]
        for w in file["warnings"]
    ), file


def test_scout_can_be_checked_and_an_unknown_preset_is_bad_input(tmp_path):
    lib = zig_cc(tmp_path, "getrandom", GETRANDOM_C)
    proc = run_tool("check", "--glibc", "steam-scout", lib)
    assert proc.returncode == 0 and "glibc 2.15" in proc.stdout, proc.stdout + proc.stderr
    proc = run_tool("check", "--glibc", "centos7", lib)
    assert proc.returncode == 2 and "did you mean centos-7" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = run_tool("check", "--kernel", "3.x", lib)
    assert proc.returncode == 2 and "--kernel '3.x'" in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ (a GLIBCXX_3.4.21 library)")
def test_a_preset_s_cxx_ceilings_judge_a_cxx_library(tmp_path):
    src = tmp_path / "cxx.cpp"
    src.write_text(
        '#include <string>\nextern "C" int plugin_entry(const char *s) '
        '{ std::string x(s); x += "a"; return (int)x.size(); }\n'
    )
    lib = tmp_path / "libcxx.so"
    subprocess.run(
        ["g++", "-shared", "-fPIC", "-O1", "-Wl,-z,noexecstack", "-o", str(lib), str(src)],
        check=True,
    )
    code, file = check_json("--glibc", "centos-7", lib)
    assert code == 1, file
    cxx = [v["message"] for v in file["violations"] if v["kind"] == "cxx-too-new"]
    assert cxx and all("centos-7 (" in m for m in cxx), cxx  # the preset's, not the default
    assert file["loads_on"]["not"]["centos-7"].startswith("GLIBCXX_3.4.21 above its libstdc++")
    assert "rhel-8" in file["loads_on"]["ok"]
    code, file = check_json("--glibc", "rhel-8", lib)
    assert code == 0, file
