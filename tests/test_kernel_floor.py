"""A kernel floor at run time: verify-load --kernel X.Y, and what a proof says it proved.

Unit tests run the seccomp program with a small classic-BPF interpreter written from the
kernel's Documentation/networking/filter.rst (only the opcodes a filter may use here), so the
program is judged by what it does, not by how it is spelled. The real tests run the real
filter in the real test loader under the bullseye root's own glibc (2.31) on this kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import seccomp
from orchestrator.errors import ToolchainError, UsageError
from orchestrator.prove import (
    Proof,
    RootInfo,
    _interpret,
    check_kernel_floor,
    denied_calls,
    describe_denied,
    verify_load,
)
from orchestrator.syscalls import KernelVersion, allowed_numbers, number
from tests.conftest import REPO, assert_clean_failure, run_tool, zig_shared_library

K310 = KernelVersion(3, 10)
ARCH_OFFSET, NR_OFFSET = 4, 0


# -- a classic BPF interpreter for seccomp programs ------------------------------------------
def run_bpf(program: list[seccomp.Instruction], nr: int, arch: int) -> int:
    """The action the program returns for system call NR made through ABI ARCH."""
    data = {NR_OFFSET: nr & 0xFFFFFFFF, ARCH_OFFSET: arch}
    acc, pc = 0, 0
    while True:
        ins = program[pc]
        if ins.code == seccomp.BPF_LD_W_ABS:
            acc = data[ins.k]
        elif ins.code == seccomp.BPF_RET_K:
            return ins.k
        elif ins.code in (seccomp.BPF_JEQ_K, seccomp.BPF_JGT_K, seccomp.BPF_JGE_K):
            taken = {
                seccomp.BPF_JEQ_K: acc == ins.k,
                seccomp.BPF_JGT_K: acc > ins.k,
                seccomp.BPF_JGE_K: acc >= ins.k,
            }[ins.code]
            pc += ins.jt if taken else ins.jf
        else:
            raise AssertionError(f"unexpected opcode {ins.code:#x}")
        pc += 1
        assert pc < len(program), "ran off the end of the program (the kernel refuses that)"


X86 = seccomp.AUDIT_ARCH["x86_64"]
ARM = seccomp.AUDIT_ARCH["aarch64"]


@pytest.mark.unit
@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_the_filter_allows_exactly_the_kernels_calls(arch):
    allowed = allowed_numbers(K310, arch)
    code = seccomp.program(allowed, arch)
    audit = seccomp.AUDIT_ARCH[arch]
    for nr in range(0, 600):
        expected = seccomp.SECCOMP_RET_ALLOW if nr in allowed else seccomp.SECCOMP_RET_TRAP
        assert run_bpf(code, nr, audit) == expected, nr
    assert run_bpf(code, number("getrandom", arch), audit) == seccomp.SECCOMP_RET_TRAP
    assert (
        run_bpf(code, number("read", "x86_64") if arch == "x86_64" else 63, audit)
        == seccomp.SECCOMP_RET_ALLOW
    )


@pytest.mark.unit
def test_an_allow_list_denies_numbers_newer_than_the_table():
    code = seccomp.program(allowed_numbers(KernelVersion(6, 99), "x86_64"), "x86_64")
    assert run_bpf(code, 1000, X86) == seccomp.SECCOMP_RET_TRAP
    assert run_bpf(code, 0xFFFFFFFF, X86) == seccomp.SECCOMP_RET_KILL_PROCESS  # x32 bit set


@pytest.mark.unit
def test_another_abi_and_the_x32_bit_are_refused():
    code = seccomp.program(allowed_numbers(K310, "x86_64"), "x86_64")
    read = number("read", "x86_64")
    assert run_bpf(code, read, X86) == seccomp.SECCOMP_RET_ALLOW
    assert run_bpf(code, read, 0x40000003) == seccomp.SECCOMP_RET_KILL_PROCESS  # i386
    assert run_bpf(code, read | seccomp.X32_SYSCALL_BIT, X86) == seccomp.SECCOMP_RET_KILL_PROCESS
    arm = seccomp.program(allowed_numbers(K310, "aarch64"), "aarch64")
    assert run_bpf(arm, 63, X86) == seccomp.SECCOMP_RET_KILL_PROCESS


@pytest.mark.unit
def test_jumps_stay_short_whatever_the_list():
    """Classic BPF jumps are 8 bits: a scattered list of 1000 numbers still jumps <= 2."""
    scattered = set(range(0, 3000, 3))
    code = seccomp.program(scattered, "x86_64")
    assert max(max(i.jt, i.jf) for i in code) <= 2
    for nr in (0, 1, 2, 3, 2997, 2998, 5000):
        expected = seccomp.SECCOMP_RET_ALLOW if nr in scattered else seccomp.SECCOMP_RET_TRAP
        assert run_bpf(code, nr, X86) == expected


@pytest.mark.unit
def test_ranges_and_the_encoding():
    assert seccomp.ranges([5, 0, 1, 2, 9, 10]) == [(0, 2), (5, 5), (9, 10)]
    assert seccomp.ranges([]) == []
    code = seccomp.program({1, 2, 3}, "x86_64")
    raw = seccomp.encode(code)
    assert len(raw) == 8 * len(code)  # sizeof(struct sock_filter)
    assert seccomp.decode(raw) == code
    with pytest.raises(ValueError):
        seccomp.decode(raw[:-1])
    with pytest.raises(UsageError, match="riscv64"):
        seccomp.program({1}, "riscv64")


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, parsed",
    [("3.10", K310), ("2.6.32", KernelVersion(2, 6, 32)), (" 5.3 ", KernelVersion(5, 3))],
)
def test_kernel_versions_parse(text, parsed):
    assert KernelVersion.parse(text) == parsed
    assert KernelVersion(3, 9) < K310 < KernelVersion(3, 17)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["3", "3.x", "v3.10", "3.10-rc1", "", "3..10"])
def test_malformed_kernel_versions_are_usage_errors(text):
    with pytest.raises(UsageError, match="not a Linux kernel version") as caught:
        KernelVersion.parse(text)
    assert caught.value.exit_code == 2


# -- reading the loader's report -------------------------------------------------------------
@pytest.mark.unit
def test_denied_calls_are_named_and_counted():
    lines = [
        ("denied", "318"),
        ("denied", "332"),
        ("denied-count", "318 5"),
        ("denied-count", "332 1"),
        ("denied", "999"),
    ]
    assert denied_calls(lines, "x86_64") == {"getrandom": 5, "statx": 1, "system call 999": 1}
    assert describe_denied({"getrandom": 5}, K310) == "getrandom (5x) denied: not in Linux 3.10"
    assert describe_denied({}, K310) == ""


INFO = RootInfo(Path("/r"), Path("/r/ld.so"), (Path("/r/lib"),), "2.31", KernelVersion(3, 2))


@pytest.mark.unit
def test_no_seccomp_here_is_an_error_never_a_pass():
    report = "start\t\nnofilter\tInvalid argument\n"
    with pytest.raises(ToolchainError, match="cannot install a seccomp filter") as caught:
        _interpret(
            INFO, Path("/x.so"), None, 13, report, "", False, 60.0, arch="x86_64", kernel=K310
        )
    assert caught.value.exit_code == 3
    with pytest.raises(ToolchainError, match="did not confirm"):  # an old loader, no filter
        _interpret(
            INFO,
            Path("/x.so"),
            None,
            0,
            "start\t\nloaded\t/x.so\ndone\t\n",
            "",
            False,
            60.0,
            arch="x86_64",
            kernel=K310,
        )


@pytest.mark.unit
def test_a_floor_below_the_roots_glibc_is_exit_3_naming_both():
    check_kernel_floor(INFO, KernelVersion(3, 2))
    with pytest.raises(ToolchainError, match=r"--kernel 2\.6\.32 is below Linux 3\.2") as caught:
        check_kernel_floor(INFO, KernelVersion(2, 6, 32))
    assert caught.value.exit_code == 3


# -- what a proof says -----------------------------------------------------------------------
@pytest.mark.unit
def test_a_root_newer_than_the_target_says_so_in_one_line():
    proof = Proof(root_glibc="2.31", kernel=K310, called="probe", target_glibc="2.17")
    lines = proof.lines()
    assert lines[0] == (
        "proven by loading on glibc 2.31, simulating Linux 3.10 (seccomp): probe() was called"
    )
    assert lines[1] == (
        "loaded on glibc 2.31, newer than the target 2.17: symbol versions "
        "and existence for 2.17 were checked statically"
    )
    assert proof.to_json() == {
        "root_glibc": "2.31",
        "kernel": "3.10",
        "called": "probe",
        "proven_by_loading": [
            "dlopen(RTLD_NOW) on glibc 2.31: every symbol binds and the constructors run",
            "probe() runs and returns 0",
            "it runs with only the system calls of Linux 3.10 (newer ones answer ENOSYS)",
        ],
        "checked_statically": ["symbol versions and existence for glibc 2.17"],
    }


@pytest.mark.unit
def test_a_bare_load_says_only_constructors_ran():
    proof = Proof(root_glibc="2.17", target_glibc="2.17")
    assert proof.lines() == [
        "proven by loading on glibc 2.17: no code of the library ran but "
        "its constructors (call a function with --verify-call SYMBOL)"
    ]
    assert proof.to_json()["kernel"] is None and proof.to_json()["called"] is None
    assert Proof(root_glibc="2.31").checked_statically() == []  # verify-load reads nothing


# -- the real thing --------------------------------------------------------------------------
GETRANDOM = r"""
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SYS_getrandom
#define SYS_getrandom 318
#endif
/* No fallback: on a kernel without getrandom (3.17) this fails. */
int probe(void) {
    unsigned char buf[16];
    return syscall(SYS_getrandom, buf, sizeof buf, 0) == (long)sizeof buf ? 0 : 1;
}
/* A number no kernel has (yet): the allow-list denies it too. */
int unknown(void) { return syscall(1000) == -1 ? 0 : 1; }
"""


@pytest.fixture(scope="module")
def getrandom_lib(tmp_path_factory) -> Path:
    return zig_shared_library(
        GETRANDOM, tmp_path_factory.mktemp("kernel-floor") / "libgetrandom.so"
    )


def test_getrandom_without_fallback_runs_on_this_kernel(getrandom_lib, bullseye_root):
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "probe", getrandom_lib)
    assert proc.returncode == 0, proc.stderr
    assert "probe() returned 0" in proc.stderr and "denied" not in proc.stderr


def test_getrandom_without_fallback_fails_on_3_10_and_is_named(getrandom_lib, bullseye_root):
    proc = run_tool(
        "verify-load",
        "--rootfs",
        bullseye_root,
        "--kernel",
        "3.10",
        "--call",
        "probe",
        "--json",
        getrandom_lib,
    )
    assert_clean_failure(
        proc, 1, "getrandom (1x) denied: not in Linux 3.10", "simulated Linux 3.10"
    )
    summary = json.loads(proc.stdout)
    assert summary["kernel"] == "3.10" and summary["root_glibc"] == "2.31"
    (result,) = summary["results"]
    assert result["loaded"] and result["returned"] == 1 and result["denied"] == {"getrandom": 1}
    # A kernel that has it: the same call passes under the filter.
    (ok,) = verify_load(bullseye_root, [getrandom_lib], "probe", kernel=KernelVersion(3, 17))
    assert ok.ok and ok.returned == 0 and ok.denied == {}


def test_a_number_newer_than_the_table_is_denied_too(getrandom_lib, bullseye_root):
    (result,) = verify_load(bullseye_root, [getrandom_lib], "unknown", kernel=KernelVersion(6, 1))
    assert result.ok and result.denied == {"system call 1000": 1}


def test_a_floor_below_the_roots_glibc_is_exit_3(getrandom_lib, bullseye_root):
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--kernel", "2.6.32", getrandom_lib)
    assert_clean_failure(proc, 3, "--kernel 2.6.32 is below Linux 3.2", "glibc 2.31")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# Run build.py in a process whose own seccomp filter answers seccomp(2) and
# prctl(PR_SET_SECCOMP) with EINVAL: what a kernel without CONFIG_SECCOMP_FILTER answers.
WITHOUT_SECCOMP = r"""
import ctypes, os, sys
sys.path.insert(0, sys.argv[1])
from orchestrator import seccomp as s
I = s.Instruction
deny = I(code=s.BPF_RET_K, k=0x00050000 | 22)  # SECCOMP_RET_ERRNO | EINVAL
code = [I(code=s.BPF_LD_W_ABS, k=0),                 # nr
        I(code=s.BPF_JEQ_K, k=317, jt=0, jf=1), deny,  # seccomp(2)
        I(code=s.BPF_JEQ_K, k=157, jt=0, jf=3),        # prctl(2)...
        I(code=s.BPF_LD_W_ABS, k=16),                # ...its option (args[0])
        I(code=s.BPF_JEQ_K, k=22, jt=0, jf=1), deny,   # PR_SET_SECCOMP
        I(code=s.BPF_RET_K, k=s.SECCOMP_RET_ALLOW)]
raw = ctypes.create_string_buffer(s.encode(code))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(len(code), ctypes.cast(raw, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0     # SECCOMP_MODE_FILTER
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_a_kernel_without_seccomp_is_exit_3_never_a_pass(getrandom_lib, bullseye_root):
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_SECCOMP,
            str(REPO),
            str(REPO / "build.py"),
            "verify-load",
            "--rootfs",
            str(bullseye_root),
            "--kernel",
            "3.10",
            "--call",
            "probe",
            str(getrandom_lib),
        ],
        env=dict(os.environ, GLIBC_BUILD_NO_VENV="1", NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_clean_failure(
        proc,
        3,
        "cannot install a seccomp filter (Invalid argument)",
        "Linux 3.10 cannot be simulated",
    )
    assert "probe() returned" not in proc.stderr


@pytest.mark.parametrize("kernel", ["3", "three", "3.10.x"])
def test_a_malformed_kernel_is_exit_2(kernel, getrandom_lib, bullseye_root):
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--kernel", kernel, getrandom_lib)
    assert_clean_failure(proc, 2, f"--kernel {kernel!r} is not a Linux kernel version")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_root_with_no_libc_is_exit_2(getrandom_lib, tmp_path):
    (tmp_path / "lib").mkdir()
    proc = run_tool("verify-load", "--rootfs", tmp_path, "--kernel", "3.10", getrandom_lib)
    assert_clean_failure(proc, 2, "is not a glibc root")


# A Rust std plugin that meets the calls std makes with a fallback: HashMap's keys
# (getrandom), fs::metadata (statx), a thread, println.
STD_PLUGIN = r"""
use std::collections::HashMap;
#[no_mangle]
pub extern "C" fn plugin_entry() -> i32 {
    let mut map = HashMap::new();
    map.insert("answer", 42);
    let seen = std::fs::metadata("/proc/self/maps").map(|m| m.is_file()).unwrap_or(false);
    let worker = std::thread::spawn(move || map["answer"] * 2);
    let doubled = worker.join().unwrap_or(0);
    println!("std plugin: {doubled} {seen}");
    if doubled == 84 && seen { 0 } else { 1 }
}
"""


def test_a_rust_std_plugin_builds_and_passes_3_10_through_its_fallbacks(tmp_path, bullseye_root):
    crate = tmp_path / "stdplugin"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "stdplugin"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[lib]\ncrate-type = ["cdylib"]\n\n[package.metadata.glibc-build]\n'
        'kernel = "3.10"\nverify-call = "plugin_entry"\n'
    )
    (crate / "src" / "lib.rs").write_text(STD_PLUGIN)
    proc = run_tool("--glibc", "2.17", "--verify-on", bullseye_root, "--json", crate)
    assert proc.returncode == 0, proc.stderr
    assert "std plugin: 84 true" in proc.stderr
    assert "simulating Linux 3.10 (seccomp): plugin_entry() was called" in proc.stderr
    assert (
        "loaded on glibc 2.31, newer than the target 2.17: symbol versions and existence "
        "for 2.17 were checked statically" in proc.stderr
    )
    manifest = json.loads((crate / "dist" / "glibc-2.17" / "build-manifest.json").read_text())
    verify = manifest["verify"]
    assert (verify["root_glibc"], verify["kernel"], verify["called"]) == (
        "2.31",
        "3.10",
        "plugin_entry",
    )
    assert verify["checked_statically"] == ["symbol versions and existence for glibc 2.17"]
    (load,) = manifest["verify_load"]
    # std met ENOSYS and fell back: the filter was really there and really denied.
    assert load["ok"] and load["returned"] == 0
    assert {"getrandom", "statx"} & set(load["denied"]), load
    assert json.loads(proc.stdout)["verify"] == verify


def test_build_refuses_a_bad_verify_call_and_floor_before_building(tmp_path, bullseye_root):
    crate = REPO / "examples" / "plugin"
    out = tmp_path / "out"
    proc = run_tool("--verify-on", bullseye_root, "--verify-call", "a b", "--out", out, crate)
    assert_clean_failure(proc, 2, "--verify-call 'a b' is not a symbol name")
    proc = run_tool("--verify-on", bullseye_root, "--kernel", "2.6.32", "--out", out, crate)
    assert_clean_failure(proc, 3, "--kernel 2.6.32 is below Linux 3.2")
    proc = run_tool("--kernel", "3.x", "--out", out, crate)
    assert_clean_failure(proc, 2, "--kernel '3.x'")
    proc = run_tool("--verify-call", "plugin_entry", "--out", out, crate)
    assert_clean_failure(proc, 2, "--verify-call needs --verify-on")
    assert "Compiling" not in proc.stderr and not out.exists()
