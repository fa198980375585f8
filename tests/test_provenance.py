"""Issue 15: the check names the crate behind a finding, from real builds (cargo, zig, the cc
crate, the host's gcc and glibc 2.36)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import EXAMPLES, REPO, assert_clean_failure, run_tool

pytestmark = pytest.mark.slow
FIXTURES = REPO / "tests" / "fixtures" / "provenance"
TRIPLE = "x86_64-unknown-linux-gnu"


def copy_tree(source: Path, dest: Path) -> Path:
    """A private copy (tests must not write into the repository)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("target", "dist"))
    return dest


def findings(summary: dict, symbol: str) -> list[dict]:
    return [
        f
        for file in summary["files"]
        for key in ("violations", "warnings")
        for f in file[key]
        if f["symbol"] == symbol
    ]


@pytest.fixture(scope="module")
def deep_build(tmp_path_factory) -> dict:
    """The workspace whose only getrandom caller is two path dependencies below the cdylib,
    built by build.py for glibc 2.17: the check fails (the library stays in cargo's target)."""
    workspace = copy_tree(FIXTURES / "deep-workspace", tmp_path_factory.mktemp("deep") / "ws")
    proc = run_tool("--glibc", "2.17", workspace / "plugin")
    library = (
        workspace
        / "target"
        / "glibc-build"
        / f"{TRIPLE}-glibc-2.17-zig"
        / TRIPLE
        / "release"
        / "libprov_plugin.so"
    )
    return {"workspace": workspace, "proc": proc, "library": library}


def test_the_build_for_2_17_fails_the_check_on_getrandom(deep_build):
    proc = deep_build["proc"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "getrandom" in proc.stdout + proc.stderr  # the build's report goes to stderr
    assert deep_build["library"].is_file()


def test_the_build_names_the_deep_crate_behind_getrandom(deep_build):
    """Issue 15: the build's own report ties the finding to deep-entropy (from cargo's JSON
    messages of that build), in its text and in its --json findings."""
    proc = deep_build["proc"]
    assert "getrandom \u2190 deep-entropy 0.1.7 (deep_entropy\u2026rcgu.o)" in proc.stderr, (
        proc.stderr
    )
    assert "without deep-entropy this file would load on 2.17" in proc.stderr
    again = run_tool("--glibc", "2.17", "--json", deep_build["workspace"] / "plugin")
    assert again.returncode == 1, again.stderr
    (finding,) = findings(json.loads(again.stdout)["check"], "getrandom")
    assert [(c["name"], c["version"]) for c in finding["crates"]] == [("deep-entropy", "0.1.7")]


def test_check_names_the_deep_crate_not_the_cdylib_or_the_crate_between(deep_build):
    workspace, library = deep_build["workspace"], deep_build["library"]
    proc = run_tool(
        "check", "--glibc", "2.17", "--json", "--crate-dir", workspace / "plugin", library
    )
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    (finding,) = findings(summary, "getrandom")
    assert [(c["name"], c["version"]) for c in finding["crates"]] == [("deep-entropy", "0.1.7")]
    assert finding["crates"][0]["object"].startswith("deep_entropy-")
    assert finding["crates"][0]["object"].endswith(".rcgu.o")
    costs = summary["files"][0]["provenance"]["costs"]
    assert costs == [{"crate": "deep-entropy", "symbols": ["getrandom"], "without": "2.17"}]

    text = run_tool("check", "--glibc", "2.17", "--crate-dir", workspace, library)
    assert text.returncode == 1
    assert "getrandom \u2190 deep-entropy 0.1.7 (deep_entropy\u2026rcgu.o)" in text.stdout
    assert "without deep-entropy this file would load on 2.17" in text.stdout
    assert "middle" not in text.stdout and "prov-plugin" not in text.stdout


def test_check_without_crate_dir_is_unchanged(deep_build):
    proc = run_tool("check", "--glibc", "2.17", "--json", deep_build["library"])
    assert proc.returncode == 1
    (finding,) = findings(json.loads(proc.stdout), "getrandom")
    assert "crates" not in finding and "provenance" not in proc.stdout


def test_c_object_of_the_cc_crate_is_named_with_its_package(tmp_path):
    # Plain cargo on this glibc 2.36 host: the C part's fcntl() becomes fcntl64@GLIBC_2.28.
    crate = copy_tree(EXAMPLES / "plugin-c", tmp_path / "plugin-c")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, check=True)
    library = crate / "target" / "release" / "libexample_plugin_c.so"
    proc = run_tool("check", "--glibc", "2.17", "--json", "--crate-dir", crate, library)
    assert proc.returncode == 1, proc.stderr
    (finding,) = findings(json.loads(proc.stdout), "fcntl64")
    assert finding["version"] == "GLIBC_2.28"
    (named,) = finding["crates"]
    assert (named["name"], named["version"]) == ("example-plugin-c", "0.1.0")
    assert named["object"].endswith("native.o")
    # Rust's own symbols are the standard library's, named as such.
    std = [c["name"] for f in findings(json.loads(proc.stdout), "statx") for c in f["crates"]]
    assert std == ["Rust std"]


def test_a_library_of_another_build_is_reported_without_provenance(deep_build, tmp_path):
    other = copy_tree(EXAMPLES / "plugin", tmp_path / "plugin")
    proc = run_tool(
        "check", "--glibc", "2.17", "--json", "--crate-dir", other, deep_build["library"]
    )
    assert proc.returncode == 1
    assert "not made by the last build in" in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1
    assert "crates" not in proc.stdout and "Traceback" not in proc.stderr


def test_lto_rlibs_of_bitcode_say_provenance_unavailable(tmp_path):
    workspace = copy_tree(FIXTURES / "deep-workspace", tmp_path / "ws")
    env = dict(os.environ, CARGO_PROFILE_RELEASE_LTO="true")
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--target", TRIPLE],
        cwd=workspace,
        env=env,
        check=True,
    )
    library = workspace / "target" / TRIPLE / "release" / "libprov_plugin.so"
    proc = run_tool("check", "--glibc", "2.17", "--json", "--crate-dir", workspace, library)
    assert proc.returncode == 1, proc.stderr
    (finding,) = findings(json.loads(proc.stdout), "getrandom")
    assert "crates" not in finding
    assert finding["provenance"].startswith("provenance unavailable: ")
    assert "deep-entropy" in finding["provenance"] and "LLVM bitcode" in finding["provenance"]


def test_crate_dir_that_is_not_a_crate_exits_2(deep_build, tmp_path):
    proc = run_tool("check", "--glibc", "2.17", "--crate-dir", tmp_path, deep_build["library"])
    assert_clean_failure(proc, 2, "Cargo.toml")


def test_jemalloc_static_tls_names_tikv_jemalloc_sys(tmp_path):
    """jemalloc's initial-exec TLS is in the C objects tikv-jemalloc-sys's build script made
    and linked (libjemalloc_pic.a), not in the cdylib or tikv-jemallocator. Its target folder
    is kept in the cache: jemalloc's configure and make take minutes on a cold machine."""
    from orchestrator.paths import cache_dir

    target_dir = cache_dir("test-provenance", "jemalloc")
    crate = copy_tree(FIXTURES / "jemalloc-plugin", tmp_path / "jemalloc-plugin")
    env = {"CARGO_TARGET_DIR": str(target_dir)}
    subprocess.run(
        ["cargo", "build", "--release", "--quiet"],
        cwd=crate,
        env=dict(os.environ, **env),
        check=True,
    )
    library = target_dir / "release" / "libprov_jemalloc.so"
    proc = run_tool("check", "--glibc", "2.17", "--json", "--crate-dir", crate, library, env=env)
    assert proc.returncode == 1, proc.stderr
    (file,) = json.loads(proc.stdout)["files"]
    (static,) = [
        f for key in ("violations", "warnings") for f in file[key] if f["kind"] == "static-tls"
    ]
    assert {c["name"] for c in static["crates"]} == {"tikv-jemalloc-sys"}
    assert all(c["object"].endswith(".pic.o") for c in static["crates"]), static["crates"]
    # The known-crates table's fix is named on the finding and in the text report.
    assert "disable_initial_exec_tls" in static["remedies"]["tikv-jemalloc-sys"]
    text = run_tool("check", "--glibc", "2.17", "--crate-dir", crate, library, env=env)
    assert text.returncode == 1
    assert (
        "tikv-jemalloc-sys: enable tikv-jemallocator's `disable_initial_exec_tls`" in text.stdout
    ), text.stdout
