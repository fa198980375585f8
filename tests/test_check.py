"""`build.py check`: real ELF files made by zig, gcc and ld at test time, the host's own
libraries (checked against binutils' readelf), bad inputs, and a bounded fuzz of the reader."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import abilist
from orchestrator.check import Report, check_paths
from orchestrator.elffile import ElfError, open_elf
from orchestrator.glibc import GlibcVersion
from orchestrator.targets import lookup

from .conftest import IN_CI, assert_clean_failure, have, run_tool

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "check"
SRC = FIXTURES / "src"
CRASHERS = FIXTURES / "crashers"
HOST_LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
G217 = GlibcVersion(2, 17)


def need_tool(tool: str) -> None:
    if not have(tool):
        if IN_CI:
            pytest.fail(f"CI=true and {tool} is missing")
        pytest.skip(f"{tool} is not installed")


class Builder:
    """Builds fixture libraries on first use, once per test session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def _run(self, name: str, argv: list[str]) -> Path:
        if name not in self.built:
            out = self.root / name
            argv = [a if a != "OUT" else str(out) for a in argv]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.fail(f"building fixture {name} failed:\n{' '.join(argv)}\n{proc.stderr}")
            self.built[name] = out
        return self.built[name]

    def zig(self, name: str, source: str, *flags: str,
            target: str = "x86_64-linux-gnu.2.17") -> Path:
        """zig cc against glibc stubs of exactly `target` (optimised: no UBSan runtime)."""
        return self._run(name, [sys.executable, "-m", "ziglang", "cc", "-target", target,
                                "-shared", "-fPIC", "-O2", *flags, "-o", "OUT",
                                str(SRC / source)])

    def gcc(self, name: str, source: str, *flags: str, compiler: str = "gcc",
            shared: bool = True) -> Path:
        """The host compiler and GNU ld (glibc 2.36 on Debian bookworm)."""
        need_tool(compiler)
        kind = ["-shared", "-fPIC"] if shared else []
        return self._run(name, [compiler, *kind, "-O2", "-o", "OUT", str(SRC / source), *flags])


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("check-fixtures"))


def check_one(path: Path, glibc: str = "2.17", **kw):
    report = check_paths([path], GlibcVersion.parse(glibc), **kw)
    assert not report.errors, report.errors
    assert len(report.files) == 1
    return report.files[0]


def kinds(file_report) -> list[str]:
    return [v.kind for v in file_report.violations]


# -- the database -------------------------------------------------------------------------
def test_abilists_table_knows_the_documented_facts():
    """Values of zig 0.17.1's glibc ABI database (lib/libc/glibc/abilists)."""
    x86 = abilist.symbol_table("x86_64-linux-gnu")
    assert x86.providers("memcpy") == {"c": ["2.2.5", "2.14"]}
    assert x86.providers("pthread_create") == {"c": ["2.34"], "pthread": ["2.2.5"]}
    assert x86.providers("reallocarray") == {"c": ["2.26"]}
    assert x86.providers("__tls_get_addr") == {"ld": ["2.3"]}
    assert x86.providers("log") == {"m": ["2.2.5", "2.29"]}
    assert x86.floor == "2.2.5"
    assert abilist.symbol_table("aarch64-linux-gnu").floor == "2.17"
    assert x86.providers("no_such_function_in_glibc") is None


def test_abilists_cache_survives_a_corrupt_file(tmp_path: Path):
    """The per-target table is cached as JSON; a damaged cache file is rebuilt, not trusted."""
    env = {"GLIBC_BUILD_CACHE": str(tmp_path)}
    first = run_tool("check", "--json", sys.executable, env=env)   # any ELF file will do
    assert first.returncode in (0, 1), first.stderr
    cached = list((tmp_path / "abilists").glob("*.json"))
    assert len(cached) == 1
    cached[0].write_text('{"memcpy": ')
    second = run_tool("check", "--json", sys.executable, env=env)
    assert second.returncode == first.returncode
    assert json.loads(second.stdout)["files"] == json.loads(first.stdout)["files"]
    assert json.loads(cached[0].read_text())["memcpy"] == {"c": ["2.2.5", "2.14"]}


# -- zig-built libraries ------------------------------------------------------------------
def test_zig_217_library_passes(build: Builder):
    lib = build.zig("plain.so", "plain.c")
    report = check_one(lib)
    assert report.ok, report.violations
    assert report.arch == "x86_64"
    assert GlibcVersion.parse(report.required["GLIBC"]) <= G217
    proc = run_tool("check", lib)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"ok   {lib}" in proc.stdout


def test_reallocarray_against_217_stubs_is_caught(build: Builder):
    """zig's 2.17 stubs have no reallocarray, so the reference stays unversioned: readelf's
    version table looks clean, only the existence check sees it."""
    lib = build.zig("reallocarray.so", "reallocarray.c")
    report = check_one(lib)
    assert "GLIBC" not in report.required or GlibcVersion.of(report.required["GLIBC"]) <= G217
    [violation] = report.violations
    assert violation.kind == "symbol-too-new"
    assert violation.symbol == "reallocarray"
    assert violation.library == "libc.so.6"
    assert "2.26" in violation.message and "--glibc 2.17" in violation.message
    assert report.min_glibc == "2.26"
    assert check_one(lib, "2.26").ok


def test_aarch64_library(build: Builder):
    lib = build.zig("plain-aarch64.so", "plain.c", target="aarch64-linux-gnu.2.17")
    report = check_one(lib)
    assert report.ok, report.violations
    assert report.arch == "aarch64"
    assert report.required["GLIBC"] == "2.17"   # aarch64's first glibc
    wrong = check_one(lib, target=lookup("x86_64-unknown-linux-gnu"))
    assert kinds(wrong) == ["wrong-architecture"]
    assert "EM_AARCH64" in wrong.violations[0].message


def test_aarch64_4k_pages_fail_on_64k_kernels(build: Builder):
    lib = build.zig("plain-aarch64-4k.so", "plain.c", "-Wl,-z,max-page-size=4096",
                    target="aarch64-linux-gnu.2.17")
    report = check_one(lib)
    assert kinds(report) == ["page-alignment"]
    assert "max-page-size=65536" in report.violations[0].message


def test_i686_and_big_endian_s390x_are_read(build: Builder):
    for target, arch in (("x86-linux-gnu.2.17", "i686"), ("s390x-linux-gnu.2.17", "s390x")):
        lib = build.zig(f"plain-{arch}.so", "plain.c", target=target)
        report = check_one(lib)
        assert report.arch == arch
        assert report.ok, report.violations
        assert report.required["GLIBC"] == readelf_highest_glibc(lib)


# -- host gcc / GNU ld (glibc 2.36) ------------------------------------------------------
def test_fcntl64_names_the_symbol_and_the_fix(build: Builder):
    lib = build.gcc("fcntl.so", "fcntl.c")
    report = check_one(lib)
    [violation] = report.violations
    assert (violation.kind, violation.symbol, violation.version, violation.library) == (
        "version-too-new", "fcntl64", "GLIBC_2.28", "libc.so.6")
    assert "build.py --glibc 2.17" in violation.message and "fcntl" in violation.hint
    assert report.required["GLIBC"] == "2.28" == report.min_glibc
    assert check_one(lib, "2.28").ok


def test_executable_stack(build: Builder):
    lib = build.gcc("execstack.so", "plain.c", "-Wl,-z,execstack")
    for glibc in ("2.17", "2.44"):
        report = check_one(lib, glibc)
        assert kinds(report) == ["exec-stack"]
        assert "noexecstack" in report.violations[0].message
        assert "2.41" in report.violations[0].message


def test_dt_relr_needs_236(build: Builder):
    lib = build.gcc("relr.so", "plain.c", "-Wl,-z,pack-relative-relocs")
    report = check_one(lib)
    assert sorted(kinds(report)) == ["marker-too-new", "relr"]
    assert report.min_glibc == "2.36"
    assert check_one(lib, "2.36").ok


def test_dt_relr_without_marker_fails_even_on_new_glibc(build: Builder, tmp_path: Path):
    """lld's old --pack-dyn-relocs=relr wrote DT_RELR without GLIBC_ABI_DT_RELR; glibc >= 2.36
    refuses that. Made here by pointing the marker's vernaux name at GLIBC_2.2.5."""
    lib = tmp_path / "relr-no-marker.so"
    shutil.copy(build.gcc("relr.so", "plain.c", "-Wl,-z,pack-relative-relocs"), lib)
    rename_version_need(lib, "GLIBC_ABI_DT_RELR", "GLIBC_2.2.5")
    report = check_one(lib, "2.36")
    assert kinds(report) == ["relr"]
    assert "GLIBC_ABI_DT_RELR" in report.violations[0].message


def test_textrel(build: Builder):
    lib = build.gcc("textrel.so", "textrel.c", "-Wl,-z,notext")
    report = check_one(lib)
    assert kinds(report) == ["textrel"]
    assert "-fPIC" in report.violations[0].message


def test_absolute_dt_needed(build: Builder):
    dep = build.gcc("libdep.so", "dep.c")   # no -soname: ld records the path given
    lib = build.gcc("absneeded.so", "usedep.c", str(dep))
    report = check_one(lib)
    assert kinds(report) == ["path-in-needed"]
    assert report.violations[0].library == str(dep)
    assert "soname" in report.violations[0].message


def test_initial_exec_tls(build: Builder):
    small = check_one(build.gcc("tls-ie.so", "tls.c", "-ftls-model=initial-exec"))
    assert small.ok
    [warning] = [w for w in small.warnings if w.kind == "static-tls"]
    assert "small_counter" in warning.message and "static TLS block" in warning.message
    big = check_one(build.gcc("tls-big.so", "tls.c", "-DBIG", "-ftls-model=initial-exec"))
    assert kinds(big) == ["static-tls"]
    plain = check_one(build.gcc("tls-gd.so", "tls.c"))
    assert not [w for w in plain.warnings if w.kind == "static-tls"]


def test_pie_executable_is_not_a_library(build: Builder):
    exe = build.gcc("pie", "main.c", "-fPIE", "-pie", shared=False)
    report = check_one(exe, "2.36")
    assert kinds(report) == ["pie-executable"]
    assert report.min_glibc is None


def test_glibc_private(build: Builder):
    need_tool("gcc")
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if not loader.exists():
        pytest.skip("no x86-64 loader on this host")
    report = check_one(build.gcc("private.so", "private.c", str(loader)), "2.36")
    [violation] = report.violations
    assert (violation.kind, violation.symbol, violation.version) == (
        "glibc-private", "_dl_argv", "GLIBC_PRIVATE")
    assert report.min_glibc is None


def test_missing_libpthread_below_234(build: Builder):
    """Linked with no libraries at all: pthread_create is unversioned and nothing in DT_NEEDED
    provides it on glibc 2.17 (it is in libpthread.so.0 there, in libc from 2.34)."""
    lib = build.gcc("threads-nolibs.so", "threads.c", "-nostdlib")
    report = check_one(lib)
    assert {(v.kind, v.symbol, v.library) for v in report.violations} == {
        ("missing-library", "pthread_create", "libpthread.so.0"),
        ("missing-library", "pthread_join", "libpthread.so.0")}
    assert "-lpthread" in report.violations[0].message
    assert report.min_glibc == "2.34"
    assert check_one(lib, "2.34").ok
    linked = build.zig("threads.so", "threads.c", "-lpthread")
    assert check_one(linked).ok


def test_cxx_runtime_ceiling_and_policy_override(build: Builder, tmp_path: Path):
    lib = build.gcc("greet.so", "greet.cpp", compiler="g++")
    report = check_one(lib)
    cxx = [v for v in report.violations if v.kind == "cxx-too-new"]
    assert cxx and all(v.version == "GLIBCXX_3.4.21" for v in cxx)
    assert all(v.symbol and v.library == "libstdc++.so.6" for v in cxx)
    assert "CentOS 7" in cxx[0].message and "3.4.19" in cxx[0].message
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"cxx_runtime": {"ceilings": [
        {"glibc": "2.17", "reference": "our fleet", "GLIBCXX": "3.4.30", "CXXABI": "1.3.13",
         "GCC": "12.0.0"}]}}))
    relaxed = check_one(lib, policy_path=policy)
    assert not [v for v in relaxed.violations if v.kind == "cxx-too-new"]


def test_orphan_version_need(build: Builder, tmp_path: Path):
    """What `patchelf --clear-symbol-version reallocarray` leaves: the symbol unversioned, the
    GLIBC_2.26 need still there. The loader still refuses it on 2.17."""
    lib = tmp_path / "orphan.so"
    shutil.copy(build.gcc("reallocarray-host.so", "reallocarray.c"), lib)
    assert check_one(lib).violations[0].symbol == "reallocarray"
    set_symbol_version_index(lib, "reallocarray", 1)
    report = check_one(lib)
    orphan = [v for v in report.violations if v.kind == "version-too-new"]
    assert [(v.symbol, v.version) for v in orphan] == [(None, "GLIBC_2.26")]
    assert "patchelf" in orphan[0].message
    assert "symbol-too-new" in kinds(report)
    assert report.required["GLIBC"] == "2.26"


def test_version_need_without_dt_needed(build: Builder, tmp_path: Path):
    lib = tmp_path / "no-libm.so"
    shutil.copy(build.gcc("libm.so", "libm.c", "-lm"), lib)
    assert check_one(lib).ok
    drop_needed(lib, "libm.so.6")
    report = check_one(lib)
    assert "version-need-without-needed" in kinds(report)
    assert any(v.library == "libm.so.6" for v in report.violations)


def test_host_symbols(build: Builder, tmp_path: Path):
    lib = build.gcc("host.so", "host.c")
    assert check_one(lib).unresolved == ["host_register"]
    manifest = tmp_path / "host.syms"
    manifest.write_text("# exported by our host program\nhost_register\n\n")
    proc = run_tool("check", "--json", "--host-symbols", manifest, lib)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"][0]["unresolved"] == []


def test_rpath_outside_origin_is_a_warning(build: Builder):
    report = check_one(build.gcc("rpath.so", "plain.c", "-Wl,-rpath,/opt/build/lib"))
    assert report.ok
    assert [w.library for w in report.warnings if w.kind == "search-path"] == ["/opt/build/lib"]


# -- the command line ---------------------------------------------------------------------
def test_json_shape_and_exit_code_1(build: Builder):
    good, bad = build.zig("plain.so", "plain.c"), build.gcc("fcntl.so", "fcntl.c")
    proc = run_tool("check", "--json", good, bad)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["glibc"] == "2.17" and data["ok"] is False and data["errors"] == []
    first, second = data["files"]
    assert first["path"] == str(good) and first["ok"] is True and first["violations"] == []
    assert second["path"] == str(bad) and second["arch"] == "x86_64"
    assert second["required"] == {"GLIBC": "2.28"}
    assert second["violations"] == [{
        "kind": "version-too-new", "symbol": "fcntl64", "version": "GLIBC_2.28",
        "library": "libc.so.6", "message": second["violations"][0]["message"]}]
    assert {"path", "ok", "arch", "required", "violations", "warnings"} <= set(second)


def test_junit_report_for_ci(build: Builder, tmp_path: Path):
    """--junit: one test case per file, a failure naming the symbol, an error per bad input."""
    from xml.etree import ElementTree as ET

    good, bad = build.zig("plain.so", "plain.c"), build.gcc("fcntl.so", "fcntl.c")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not an elf")
    report = tmp_path / "check.xml"
    proc = run_tool("check", "--junit", report, good, bad, junk)
    assert proc.returncode == 2, proc.stderr
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == [str(good), str(bad), str(junk)]
    assert cases[str(good)].find("failure") is None
    failure = cases[str(bad)].find("failure")
    assert failure is not None and "fcntl64" in (failure.text or "")
    assert "2.28" in failure.get("message", "")
    assert cases[str(junk)].find("error") is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".check.xml")]

    proc = run_tool("check", "--junit", tmp_path / "missing-dir" / "r.xml", good)
    assert_clean_failure(proc, 2, "missing-dir", "cannot write")


def test_text_report_groups_by_version(build: Builder):
    proc = run_tool("check", build.gcc("greet.so", "greet.cpp", compiler="g++"),
                    build.gcc("fcntl.so", "fcntl.c"))
    assert proc.returncode == 1
    out = proc.stdout
    assert "[version-too-new] 1 symbol in 1 file\n" in out
    assert "    GLIBC_2.28 from libc.so.6: fcntl64\n" in out
    assert "[cxx-too-new]" in out and "GLIBCXX_3.4.21 from libstdc++.so.6" in out
    assert "lowest glibc it can load on: 2.28" in out
    assert out.startswith("FAIL: checked 2 files against glibc 2.17: 0 ok, 2 failing")


def test_folder_search_skips_non_elf_and_duplicate_links(build: Builder, tmp_path: Path):
    folder = tmp_path / "dist"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(build.zig("plain.so", "plain.c"), folder / "sub" / "libplugin.so.1")
    (folder / "libplugin.so").symlink_to("sub/libplugin.so.1")
    (folder / "README.txt").write_text("not a library")
    (folder / "libc.so").write_text("/* GNU ld script */\nGROUP ( /lib/libc.so.6 )\n")
    (folder / "empty.so").write_bytes(b"")
    proc = run_tool("check", "--json", folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert [f["path"] for f in data["files"]] == [str(folder / "sub" / "libplugin.so.1")]
    assert data["errors"] == []
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert_clean_failure(run_tool("check", empty), 2, str(empty), "no ELF")


# -- entries a folder search cannot read -----------------------------------------------------
def make_unreadable(path: Path) -> None:
    """Take read access away for real. Root reads anything, so as root the file is also given
    to an unmapped uid, which the user namespace of `run_without_root_powers` cannot override."""
    if os.geteuid() == 0:
        os.chown(path, 12345, 12345, follow_symlinks=False)
    path.chmod(0)


def run_without_root_powers(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    """run_tool, but as root inside `unshare -r`, where mode 000 files of other uids stay shut."""
    if os.geteuid() != 0:
        return run_tool(*args)
    need_tool("unshare")
    probe = subprocess.run(["unshare", "-r", "true"], capture_output=True)
    if probe.returncode != 0:
        if IN_CI:
            pytest.fail(f"CI=true and `unshare -r` fails: {probe.stderr!r}")
        pytest.skip("user namespaces are not available (unshare -r fails)")
    env = dict(os.environ, GLIBC_BUILD_NO_VENV="1", NO_COLOR="1")
    build_py = Path(__file__).resolve().parent.parent / "build.py"
    return subprocess.run(["unshare", "-r", sys.executable, str(build_py), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=300)


def test_unreadable_files_and_folders_in_a_search_are_errors(build: Builder, tmp_path: Path):
    """A CI gate must not pass when a library it was asked to check could not be read."""
    folder = tmp_path / "dist"
    (folder / "sub").mkdir(parents=True)
    good = folder / "libgood.so"
    shutil.copy(build.zig("plain.so", "plain.c"), good)
    shutil.copy(good, folder / "libsecret.so")
    shutil.copy(good, folder / "sub" / "libhidden.so")
    make_unreadable(folder / "libsecret.so")
    make_unreadable(folder / "sub")
    proc = run_without_root_powers("check", "--json", folder)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert [f["path"] for f in data["files"]] == [str(good)]
    errors = {e["path"]: e["message"] for e in data["errors"]}
    assert set(errors) == {str(folder / "libsecret.so"), str(folder / "sub")}, errors
    assert all("cannot read" in message for message in errors.values()), errors
    assert f"error: {folder / 'sub'}: cannot read" in proc.stderr


def test_a_folder_of_only_unreadable_files_is_not_called_empty(build: Builder, tmp_path: Path):
    folder = tmp_path / "dist"
    folder.mkdir()
    secret = folder / "libsecret.so"
    shutil.copy(build.zig("plain.so", "plain.c"), secret)
    make_unreadable(secret)
    proc = run_without_root_powers("check", folder)
    assert_clean_failure(proc, 2, str(secret), "cannot read")
    assert "no ELF" not in proc.stderr


def real_lib() -> Path:
    for candidate in (HOST_LIBDIR / "libz.so.1", Path(sys.executable).resolve()):
        if candidate.exists():
            return candidate.resolve()
    pytest.skip("no ELF file on this host")


BAD_INPUTS = {
    "empty.so": lambda data: b"",
    "random.so": lambda data: bytes((i * 151 + 7) % 256 for i in range(4096)),
    "truncated-header.so": lambda data: data[:40],
    "truncated.so": lambda data: data[:300],
    "phoff-past-end.so": lambda data: patch_header(data, phoff=1 << 40),
    "dynamic-past-end.so": lambda data: patch_dynamic_offset(data, len(data) + 4096),
    "load-past-end.so": lambda data: patch_last_load_size(data, len(data) + 4096),
    "elf-magic-only.so": lambda data: b"\x7fELF" + bytes(60),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_exit_2_with_one_line(name: str, tmp_path: Path):
    bad = tmp_path / name
    bad.write_bytes(BAD_INPUTS[name](real_lib().read_bytes()))
    proc = run_tool("check", bad)
    assert_clean_failure(proc, 2, str(bad))
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error:")]) == 1


def test_bad_input_does_not_hide_the_other_files(tmp_path: Path):
    missing = tmp_path / "missing.so"
    proc = run_tool("check", "--json", missing, real_lib())
    assert_clean_failure(proc, 2, str(missing), "no such file")
    data = json.loads(proc.stdout)
    assert data["errors"] == [{"path": str(missing), "message": "no such file or directory"}]
    assert [f["path"] for f in data["files"]] == [str(real_lib())]


def test_linker_script_named_so(tmp_path: Path):
    script = HOST_LIBDIR / "libc.so"
    if not script.exists():
        script = tmp_path / "libc.so"
        script.write_text("/* GNU ld script */\nGROUP ( /lib/libc.so.6 )\n")
    assert_clean_failure(run_tool("check", script), 2, str(script), "linker script")


@pytest.mark.parametrize("args,needle", [
    (["--glibc", "2.99"], "2.99"), (["--glibc", "two"], "--glibc"),
    (["--target", "sparc-sun-solaris"], "--target"),
])
def test_bad_options(args: list[str], needle: str):
    assert_clean_failure(run_tool("check", *args, real_lib()), 2, needle)


def test_bad_policy_and_host_symbols_files(tmp_path: Path):
    broken = tmp_path / "policy.json"
    broken.write_text("{not json")
    assert_clean_failure(run_tool("check", "--policy", broken, real_lib()), 2, str(broken))
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"loader": {"relr_glibc": "soon"}}')
    assert_clean_failure(run_tool("check", "--policy", wrong, real_lib()), 2, str(wrong))
    assert_clean_failure(run_tool("check", "--host-symbols", tmp_path / "none", real_lib()), 2,
                         "--host-symbols")



@pytest.mark.parametrize("override, key", [
    ({"symbol_hints": []}, "symbol_hints"),
    ({"symbol_hints": {"fcntl64": 3}}, "symbol_hints.fcntl64"),
    ({"loader": {"static_tls_surplus_bytes": "1664"}}, "loader.static_tls_surplus_bytes"),
    ({"loader": {"static_tls_surplus_bytes": True}}, "loader.static_tls_surplus_bytes"),
    ({"loader": {"abi_versions": ["2.11"]}}, "loader.abi_versions"),
    ({"loader": {"page_size_64k_targets": "aarch64-linux-gnu"}}, "page_size_64k_targets"),
    ({"markers": {"GLIBC_ABI_DT_RELR": {"glibc": "2.36", "why": 1, "fix": ""}}},
     "markers.GLIBC_ABI_DT_RELR.why"),
    ({"markers": {"GLIBC_ABI_DT_RELR": "2.36"}}, "markers.GLIBC_ABI_DT_RELR"),
    ({"cxx_runtime": {"ceilings": [{"reference": "CentOS 7"}]}}, "ceilings[0].glibc"),
    ({"cxx_runtime": {"ceilings": [{"glibc": "2.17", "GLIBCXX": 3.4}]}}, "ceilings[0].GLIBCXX"),
    ({"cxx_runtime": {"ceilings": [{"glibc": "2.17", "arch": {"x86_64-linux-gnu": []}}]}},
     "arch.x86_64-linux-gnu"),
    ({"cxx_runtime": {"namespaces": {"GLIBCXX": None}}}, "cxx_runtime.namespaces.GLIBCXX"),
    ({"needed": {"allowed": ["libc.so.6", 1]}}, "needed.allowed[1]"),
    ({"needed": {"forbidden": []}}, "needed.forbidden"),
    ({"merged_into_libc": {"sonames": "libdl.so.2"}}, "merged_into_libc.sonames"),
    ({"glibc_libraries": {"c": ["libc.so.6"]}}, "glibc_libraries.c"),
    ({"loaders": None}, "loaders"),
])
def test_policy_override_of_the_wrong_type_is_one_line_exit_2(override: dict, key: str,
                                                                tmp_path: Path):
    """Valid JSON, wrong shape: named before any file is read, never an internal error."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(override))
    proc = run_tool("check", "--policy", policy, real_lib())
    assert_clean_failure(proc, 2, f"--policy {policy}", key)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr

# -- agreement with binutils on every real shared object of this machine ----------------
def host_shared_objects() -> list[Path]:
    if not HOST_LIBDIR.is_dir():
        pytest.skip(f"no {HOST_LIBDIR} on this machine")
    need_tool("readelf")
    found = []
    for root, dirs, files in os.walk(HOST_LIBDIR):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as handle:
                head = handle.read(18)
            if head[:4] == b"\x7fELF" and head[5] == 1 and head[16:18] == b"\x03\x00":
                found.append(path)
    return found


def readelf_version_needs(paths: list[Path]) -> dict[str, list[str]]:
    """path -> every Name: in readelf -V's "Version needs" section."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(paths), 200):
        chunk = [str(p) for p in paths[start:start + 200]]
        text = subprocess.run(["readelf", "-V", "--wide", *chunk], capture_output=True,
                              text=True, check=False).stdout
        current, in_needs = chunk[0], False
        out[current] = []
        for line in text.splitlines():
            if line.startswith("File: "):
                current, in_needs = line[6:], False
                out[current] = []
            elif line.startswith("Version needs section"):
                in_needs = True
            elif line.startswith("Version "):
                in_needs = False
            elif in_needs:
                match = re.search(r"Name: (\S+)", line)
                if match:
                    out[current].append(match.group(1))
    return out


def highest_glibc(names: list[str]) -> str | None:
    versions = [n[6:] for n in names if re.fullmatch(r"GLIBC_\d+(\.\d+)+", n)]
    return max(versions, key=GlibcVersion.of) if versions else None


def readelf_highest_glibc(path: Path) -> str | None:
    return highest_glibc(readelf_version_needs([path])[str(path)])


def test_agrees_with_readelf_on_every_host_shared_object():
    paths = host_shared_objects()
    assert len(paths) > 20, "too few shared objects to compare"
    report = check_paths(paths, G217)
    assert report.errors == []
    ours = {f.path: f.required.get("GLIBC") for f in report.files}
    theirs = {path: highest_glibc(names)
              for path, names in readelf_version_needs(paths).items()}
    assert set(ours) == set(theirs) == {str(p) for p in paths}
    mismatches = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert mismatches == {}


def test_symbol_versions_agree_with_readelf_dyn_syms():
    """Per-symbol attribution (.gnu.version -> vna_other) against readelf --dyn-syms."""
    paths = host_shared_objects()[:150]
    for path in paths:
        text = subprocess.run(["readelf", "--dyn-syms", "--wide", str(path)],
                              capture_output=True, text=True, check=True).stdout
        theirs = set()
        for line in text.splitlines():
            cols = line.split()
            if len(cols) >= 8 and cols[6] == "UND" and cols[4] in ("GLOBAL", "WEAK"):
                name, _, version = cols[7].partition("@")
                theirs.add((name, version or None, cols[4] == "WEAK"))
        with open_elf(path) as elf:
            ours = {(s.name, s.version, s.weak) for s in elf.undefined_symbols}
        assert ours == theirs, path


# -- fuzzing the reader -------------------------------------------------------------------
def assert_handled(path: Path) -> Report:
    """Whatever the bytes, one clean result: a file report or an input error, never a crash."""
    report = check_paths([path], G217)
    assert len(report.files) + len(report.errors) == 1
    json.dumps(report.to_json())
    report.render_text()
    return report


@pytest.mark.parametrize("crasher", sorted(CRASHERS.glob("*")), ids=lambda p: p.name)
def test_kept_fuzz_crashers(crasher: Path):
    assert_handled(crasher)


@pytest.fixture(scope="session")
def fuzz_seed(build: Builder) -> bytes:
    return build.zig("plain.so", "plain.c").read_bytes()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_reader_never_crashes(fuzz_seed: bytes, tmp_path: Path, data) -> None:
    blob = bytearray(fuzz_seed)
    hot = min(len(blob), data.draw(st.sampled_from([64, 512, 4096, len(blob)])))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, hot - 1))
        width = data.draw(st.sampled_from([1, 2, 4, 8]))
        value = data.draw(st.integers(0, (1 << (8 * width)) - 1))
        blob[pos:pos + width] = value.to_bytes(width, "little")
    if data.draw(st.booleans()):
        del blob[data.draw(st.integers(0, len(blob))):]
    target = tmp_path / "fuzzed.so"
    target.write_bytes(bytes(blob))
    assert_handled(target)


def test_reader_rejects_without_python_errors(tmp_path: Path):
    """ElfError is the only exception the reader raises for bad bytes."""
    bad = tmp_path / "x.so"
    bad.write_bytes(patch_header(real_lib().read_bytes(), phoff=1 << 40))
    with pytest.raises(ElfError, match="past the end"):
        with open_elf(bad) as elf:
            assert elf.segments


# -- ELF surgery for fixtures (pyelftools finds the places; independent of our reader) ----
def _sections(path: Path):
    from elftools.elf.elffile import ELFFile

    handle = open(path, "rb")
    return handle, ELFFile(handle)


def set_symbol_version_index(path: Path, symbol: str, index: int) -> None:
    handle, elf = _sections(path)
    with handle:
        dynsym = elf.get_section_by_name(".dynsym")
        position = next(i for i, s in enumerate(dynsym.iter_symbols()) if s.name == symbol)
        versym_offset = elf.get_section_by_name(".gnu.version")["sh_offset"]
    with open(path, "r+b") as out:
        out.seek(versym_offset + 2 * position)
        out.write(struct.pack("<H", index))


def rename_version_need(path: Path, old: str, new: str) -> None:
    """Point the vernaux named `old` at the .dynstr string `new` (which must exist)."""
    handle, elf = _sections(path)
    with handle:
        dynstr = elf.get_section_by_name(".dynstr")
        strings = dynstr.data()
        new_offset = strings.index(new.encode() + b"\0")
        need = elf.get_section_by_name(".gnu.version_r")
        data, base = need.data(), need["sh_offset"]
    offset = 0
    while True:
        _ver, cnt, _file, aux, nxt = struct.unpack_from("<HHIII", data, offset)
        at = offset + aux
        for _ in range(cnt):
            _hash, _flags, _other, name, aux_next = struct.unpack_from("<IHHII", data, at)
            if strings[name:strings.index(b"\0", name)] == old.encode():
                with open(path, "r+b") as out:
                    out.seek(base + at + 8)
                    out.write(struct.pack("<I", new_offset))
                return
            at += aux_next
        if not nxt:
            raise AssertionError(f"{old} not found")
        offset += nxt


def drop_needed(path: Path, soname: str) -> None:
    """Turn the DT_NEEDED entry for `soname` into a DT_DEBUG entry (what a careless
    `patchelf --remove-needed` leaves: the version needs still name the library)."""
    handle, elf = _sections(path)
    with handle:
        dynamic = elf.get_section_by_name(".dynamic")
        base = dynamic["sh_offset"]
        index = next(i for i, tag in enumerate(dynamic.iter_tags())
                     if tag.entry.d_tag == "DT_NEEDED" and tag.needed == soname)
    with open(path, "r+b") as out:
        out.seek(base + 16 * index)
        out.write(struct.pack("<q", 21))   # DT_DEBUG


def patch_header(data: bytes, *, phoff: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<Q", out, 32, phoff)
    return bytes(out)


def patch_last_load_size(data: bytes, size: int) -> bytes:
    """Make the last PT_LOAD claim `size` bytes of file: a copy that stopped early, as the
    loader sees it (it maps the missing pages and the process dies of SIGBUS)."""
    out = bytearray(data)
    phoff, = struct.unpack_from("<Q", out, 32)
    phentsize, phnum = struct.unpack_from("<HH", out, 54)
    loads = [phoff + i * phentsize for i in range(phnum)
             if struct.unpack_from("<I", out, phoff + i * phentsize)[0] == 1]
    struct.pack_into("<QQ", out, loads[-1] + 32, size, size)   # p_filesz, p_memsz
    return bytes(out)


def patch_dynamic_offset(data: bytes, offset: int) -> bytes:
    """Move PT_DYNAMIC's p_offset past the end of the file."""
    out = bytearray(data)
    phoff, = struct.unpack_from("<Q", out, 32)
    phentsize, phnum = struct.unpack_from("<HH", out, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if struct.unpack_from("<I", out, at)[0] == 2:
            struct.pack_into("<Q", out, at + 8, offset)
            return bytes(out)
    raise AssertionError("no PT_DYNAMIC")
