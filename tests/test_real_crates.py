"""Issue 13: real crates from crates.io with C parts build, pass the check and load.

Each test writes a tiny cdylib that depends on a real crate of one kind (autoconf `configure`,
CMake, a build script) and builds it with build.py as a user would. The crates share one cargo
home (the user's) and one target folder per (target, glibc) in the cache, so a warm run only
links; CARGO_TARGET_DIR is what cargo itself reads. The crates themselves live at a fixed
place in the cache too: the build remaps the crate's path (--remap-path-prefix), so a new
folder each session would change every unit's flags and rebuild everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator import targets
from orchestrator.build import build_target_dir
from orchestrator.glibc import GlibcVersion

from .conftest import run_tool

pytestmark = pytest.mark.slow

TRIPLE = "x86_64-unknown-linux-gnu"


@pytest.fixture(scope="session")
def target_dirs():
    """One CARGO_TARGET_DIR per (target, glibc), kept in the cache between sessions."""
    from orchestrator.paths import cache_dir

    def target_dir(glibc: str, target: str = TRIPLE) -> Path:
        return cache_dir("test-real-crates", f"{target}-{glibc}")

    return target_dir


def crates_home() -> Path:
    from orchestrator.paths import cache_dir

    return cache_dir("test-real-crates", "crates")


def write_if_changed(path: Path, text: str) -> None:
    """Same text, same file (and mtime): cargo then has nothing to rebuild."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def write_crate(
    folder: Path | None,
    name: str,
    deps: str,
    lib_rs: str,
    build_rs: str | None = None,
    features: str = "",
) -> Path:
    """A cdylib crate `name` with the given [dependencies] lines and sources, in `folder`
    (default: its fixed place in the cache)."""
    crate = (folder or crates_home()) / name
    write_if_changed(
        crate / "Cargo.toml",
        f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
        + ('build = "build.rs"\n' if build_rs else "")
        + f'\n[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\n{deps}\n'
        + features,
    )
    write_if_changed(crate / "src" / "lib.rs", lib_rs)
    if build_rs:
        write_if_changed(crate / "build.rs", build_rs)
    return crate


def build(crate: Path, target_dir: Path, *args: str, env: dict | None = None) -> dict:
    proc = run_tool(
        *args,
        "--json",
        crate,
        env={"CARGO_TARGET_DIR": str(target_dir), **(env or {})},
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads(proc.stdout)


def glibc_needs(lib: Path) -> list[tuple[int, ...]]:
    out = subprocess.run(
        ["readelf", "-V", "--wide", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    needs = out.split("Version needs section", 1)[-1]
    return [tuple(map(int, v.split("."))) for v in re.findall(r"Name: GLIBC_([\d.]+)", needs)]


def host_glibc() -> tuple[int, int]:
    out = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout
    major, minor = re.search(r"(\d+)\.(\d+)\s*$", out.splitlines()[0]).groups()
    return int(major), int(minor)


def test_a_configure_based_c_part_builds_and_loads(target_dirs, bullseye_root):
    """tikv-jemalloc-sys runs autoconf's configure, whose first test links without -o."""
    crate = write_crate(
        None,
        "jemalloc_plugin",
        'tikv-jemallocator = { version = "0.6", features = ["disable_initial_exec_tls"] }',
        "#[global_allocator]\nstatic A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;"
        '\n#[no_mangle]\npub extern "C" fn plugin_len() -> i32 { vec![1u8; 100].len() as i32 }\n',
    )
    stray = Path("/a.out")  # where a link without -o from / would write (another tool's run
    before = stray.stat().st_mtime_ns if stray.exists() else None  # may have left one there)
    summary = build(crate, target_dirs("2.17"), "--glibc", "2.17", "--verify-on", bullseye_root)
    (artifact,) = map(Path, summary["artifacts"])
    assert max(glibc_needs(artifact)) <= (2, 17)
    assert summary["verify_load"][0]["ok"]
    assert (stray.stat().st_mtime_ns if stray.exists() else None) == before


def test_build_scripts_run_with_a_glibc_newer_than_this_machines(target_dirs):
    """Build scripts (ours and libc's) and proc-macros link for the machine, not the target."""
    major, minor = host_glibc()
    newer = f"{major}.{minor + 4}"
    crate = write_crate(
        None,
        "script_plugin",
        'libc = "0.2"\nserde = { version = "1", features = ["derive"] }',
        "#[derive(serde::Serialize)]\nstruct S;\n"
        '#[no_mangle]\npub extern "C" fn plugin_pid() -> i32 { unsafe { libc::getpid() } }\n'
        "#[no_mangle]\npub static PLUGIN_BUILT_BY: &[u8; 16] = "
        'include_bytes!(concat!(env!("OUT_DIR"), "/by"));\n',
        build_rs='fn main() {\n    let out = std::env::var("OUT_DIR").unwrap();\n'
        '    std::fs::write(format!("{out}/by"), b"the build script").unwrap();\n}\n',
    )
    summary = build(crate, target_dirs(newer), "--glibc", newer)
    (artifact,) = map(Path, summary["artifacts"])
    assert b"the build script" in artifact.read_bytes()
    cargo_dir = build_target_dir(
        target_dirs(newer), targets.lookup(TRIPLE), GlibcVersion.of(newer), "zig"
    )
    scripts = list((cargo_dir / "release" / "build").glob("script_plugin-*/build-script-build"))
    assert scripts and max(glibc_needs(scripts[0])) <= (major, minor)


def test_a_cmake_based_c_part_builds_without_a_system_cmake(target_dirs):
    """libz-ng-sys builds zlib-ng through the cmake crate; CMake and Ninja come from the
    tool's own environment and a toolchain file points CMake at zig."""
    path = os.pathsep.join(
        p for p in os.environ["PATH"].split(os.pathsep) if not (Path(p) / "cmake").exists()
    )
    assert shutil.which("cmake", path=path) is None
    crate = write_crate(
        None,
        "zng_plugin",
        'libz-ng-sys = "1.1"',
        '#[no_mangle]\npub extern "C" fn plugin_crc() -> u32 {\n'
        '    unsafe { libz_ng_sys::crc32(0, b"abc".as_ptr(), 3) as u32 }\n}\n',
    )
    summary = build(crate, target_dirs("2.17"), "--glibc", "2.17", env={"PATH": path})
    (artifact,) = map(Path, summary["artifacts"])
    assert max(glibc_needs(artifact)) <= (2, 17)
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(artifact)], capture_output=True, text=True, check=True
    ).stdout
    assert "plugin_crc" in symbols


@pytest.mark.docker
def test_cxx_jemalloc_and_vendored_openssl_build_in_the_bullseye_image(
    docker_client, bullseye_root
):
    """One crate with a C++ part (cc crate, exceptions), jemalloc (configure and make) and
    vendored OpenSSL (perl's Configure), built by the debian-bullseye recipe, loaded on the
    bullseye root."""
    crate = write_crate(
        None,
        "native_plugin",
        'tikv-jemallocator = { version = "0.6", features = ["disable_initial_exec_tls"] }\n'
        'openssl = { version = "0.10", features = ["vendored"] }\n'
        '\n[build-dependencies]\ncc = "1"',
        "#[global_allocator]\nstatic A: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;"
        '\nextern "C" { fn part_length(n: i32) -> i32; }\n'
        '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 {\n'
        '    let digest = openssl::sha::sha256(b"abc");\n'
        '    // sha256("abc") starts with 0xba = 186: 186 % 7 + 1 = 5 characters thrown\n'
        "    if unsafe { part_length(digest[0] as i32) } == 5 { 0 } else { 1 }\n}\n",
        build_rs='fn main() { cc::Build::new().cpp(true).file("src/part.cpp").compile("part"); }\n',
    )
    write_if_changed(
        crate / "src" / "part.cpp",
        "#include <stdexcept>\n#include <string>\n"
        'extern "C" int part_length(int n) {\n'
        "  try { if (n >= 0) throw std::runtime_error(std::string(n % 7 + 1, 'x')); }\n"
        "  catch (const std::exception &e) { return (int)std::string(e.what()).size(); }\n"
        "  return -1;\n}\n",
    )
    proc = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.31",
        "--json",
        "--verify-on",
        bullseye_root,
        crate,
        timeout=2400,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    summary = json.loads(proc.stdout)
    (artifact,) = map(Path, summary["artifacts"])
    assert max(glibc_needs(artifact)) <= (2, 31)
    assert summary["verify_load"][0]["ok"]
    loaded = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", artifact)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr  # plugin_entry returned 0
