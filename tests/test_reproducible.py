"""Issue 7: same crate, two folders, same bytes; the manifest; crate defaults; the CI summary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import assert_clean_failure, run_tool

pytestmark = pytest.mark.slow

# A workspace with debug info, a path dependency and a C part: everything that can embed paths.
WORKSPACE = {
    "Cargo.toml": (
        '[workspace]\nmembers = ["plugin", "helper"]\nresolver = "2"\n'
        "[profile.release]\ndebug = true\n"
    ),
    "helper/Cargo.toml": '[package]\nname = "helper"\nversion = "0.1.0"\nedition = "2021"\n',
    "helper/src/lib.rs": (
        'pub fn checked(x: u32) -> u32 {\n    x.checked_mul(3).expect("overflow in helper")\n}\n'
    ),
    "plugin/Cargo.toml": (
        '[package]\nname = "repro-plugin"\nversion = "1.2.3"\nedition = "2021"\n'
        '[lib]\ncrate-type = ["cdylib"]\n'
        '[dependencies]\nhelper = { path = "../helper" }\n'
        '[build-dependencies]\ncc = "1"\n'
    ),
    "plugin/build.rs": 'fn main() { cc::Build::new().file("c/part.c").compile("part"); }\n',
    "plugin/c/part.c": (
        '#include <stdio.h>\nint c_part(int x) { printf("from %s\\n", __FILE__); return x + 1; }\n'
    ),
    "plugin/src/lib.rs": (
        'extern "C" { fn c_part(x: i32) -> i32; }\n'
        '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 {\n'
        "    let v = helper::checked(2) as i32;\n"
        '    if unsafe { c_part(v) } == 7 { 0 } else { panic!("bad {v}") }\n}\n'
    ),
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_folders_give_identical_libraries_and_manifest_names_them(tmp_path):
    first = write_tree(tmp_path / "ws", WORKSPACE)
    second = write_tree(tmp_path / "much" / "deeper" / "elsewhere" / "ws", WORKSPACE)
    for ws in (first, second):
        proc = run_tool("--glibc", "2.17", ws / "plugin")
        assert proc.returncode == 0, proc.stderr[-3000:]
    lib_a = first / "plugin" / "dist" / "glibc-2.17" / "librepro_plugin.so"
    lib_b = second / "plugin" / "dist" / "glibc-2.17" / "librepro_plugin.so"
    assert b".debug_info" in lib_a.read_bytes(), "debug info must be on for this test to mean much"
    assert str(first).encode() not in lib_a.read_bytes()
    assert sha256(lib_a) == sha256(lib_b)

    manifest = json.loads(
        (first / "plugin" / "dist" / "glibc-2.17" / "build-manifest.json").read_text()
    )
    assert [
        {key: entry[key] for key in ("name", "size", "sha256")} for entry in manifest["artifacts"]
    ] == [{"name": "librepro_plugin.so", "size": lib_a.stat().st_size, "sha256": sha256(lib_a)}]
    assert manifest["crate"] == {
        "name": "repro-plugin",
        "packages": ["repro-plugin"],
        "version": "1.2.3",
    }
    assert manifest["glibc"] == "2.17" and manifest["backend"] == "zig"
    assert manifest["target"] == "x86_64-unknown-linux-gnu"
    assert manifest["toolchain"]["zig"] and "rustc" in manifest["toolchain"]["rustc"]
    assert manifest["cargo_lock_sha256"] == sha256(first / "Cargo.lock")
    assert "link-arg=-Wl,--gc-sections" in manifest["rustflags"]
    assert manifest["check"]["ok"] is True
    # Nothing in the manifest depends on the folder either.
    other = (second / "plugin" / "dist" / "glibc-2.17" / "build-manifest.json").read_text()
    assert json.loads(other) == manifest


def test_verify_reproducible_passes_on_a_reproducible_crate(tmp_path):
    ws = write_tree(tmp_path / "ws", WORKSPACE)
    proc = run_tool("--verify-reproducible", "--json", ws / "plugin")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["reproducible"] is True and summary["ok"] is True
    assert Path(summary["manifest"]).is_file()


def test_verify_reproducible_catches_a_build_time_stamp(tmp_path):
    crate = write_tree(
        tmp_path / "stamp",
        {
            "Cargo.toml": (
                '[package]\nname = "stamped"\nversion = "0.1.0"\nedition = "2021"\n'
                '[lib]\ncrate-type = ["cdylib"]\n'
            ),
            "build.rs": (
                "use std::time::{SystemTime, UNIX_EPOCH};\nfn main() {\n"
                "    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();\n"
                '    let out = std::env::var("OUT_DIR").unwrap();\n'
                '    std::fs::write(format!("{out}/stamp.txt"), t.as_nanos().to_string())'
                ".unwrap();\n}\n"
            ),
            "src/lib.rs": (
                'static STAMP: &str = include_str!(concat!(env!("OUT_DIR"), "/stamp.txt"));'
                '\n#[no_mangle]\npub extern "C" fn built_at() -> usize '
                "{ STAMP.as_ptr() as usize + STAMP.len() }\n"
            ),
        },
    )
    proc = run_tool("--verify-reproducible", crate)
    assert_clean_failure(proc, 7, "libstamped.so", "differs", ".rodata")
    assert not (crate / "dist").exists()


def test_defaults_come_from_cargo_toml_and_flags_win(tmp_path):
    crate = write_tree(
        tmp_path / "meta",
        {
            "Cargo.toml": (
                '[package]\nname = "meta"\nversion = "0.1.0"\nedition = "2021"\n'
                '[lib]\ncrate-type = ["cdylib"]\n'
                '[package.metadata.glibc-build]\nglibc = "2.28"\nprofile = "debug"\n'
            ),
            "src/lib.rs": '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 { 0 }\n',
        },
    )
    proc = run_tool("--json", crate)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["glibc"] == "2.28"
    assert json.loads(Path(summary["manifest"]).read_text())["profile"] == "debug"
    proc = run_tool("--json", "--glibc", "2.17", crate)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["glibc"] == "2.17"

    text = (crate / "Cargo.toml").read_text()
    (crate / "Cargo.toml").write_text(text.replace('glibc = "2.28"', 'glibc = "two"'))
    assert_clean_failure(run_tool(crate), 2, "glibc in [package.metadata.glibc-build]", "two")
    (crate / "Cargo.toml").write_text(text.replace('glibc = "2.28"', 'glibcc = "2.28"'))
    assert_clean_failure(run_tool(crate), 2, "unknown key 'glibcc'", "known keys")


def test_verify_reproducible_with_a_shared_target_dir_and_outside_path_deps(tmp_path):
    """A shared CARGO_TARGET_DIR must not let the second build overwrite (and so "match") the
    first; path dependencies outside the workspace and a module named `target` come along."""
    root = write_tree(
        tmp_path / "src",
        {
            "common/Cargo.toml": (
                '[package]\nname = "common"\nversion = "0.1.0"\nedition = "2021"\n'
            ),
            "common/src/lib.rs": "pub const N: i32 = 4;\n",
            "ws/Cargo.toml": (
                '[package]\nname = "stamped2"\nversion = "0.1.0"\nedition = "2021"\n'
                '[lib]\ncrate-type = ["cdylib"]\n'
                '[dependencies]\ncommon = { path = "../common" }\n'
            ),
            "ws/src/target/mod.rs": "pub fn four() -> i32 { common::N }\n",
            "ws/src/lib.rs": (
                'mod target;\n#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 '
                "{ target::four() - 4 }\n"
            ),
        },
    )
    shared = {"CARGO_TARGET_DIR": str(tmp_path / "shared-target")}
    proc = run_tool("--verify-reproducible", root / "ws", env=shared)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (root / "ws" / "build.rs").write_text(
        "fn main() { let t = std::time::SystemTime::now().duration_since("
        'std::time::UNIX_EPOCH).unwrap();\n  std::fs::write(format!("{}/t.txt", '
        'std::env::var("OUT_DIR").unwrap()), t.as_nanos().to_string()).unwrap(); }\n'
    )
    (root / "ws" / "src" / "lib.rs").write_text(
        (root / "ws" / "src" / "lib.rs").read_text()
        + 'static T: &str = include_str!(concat!(env!("OUT_DIR"), "/t.txt"));\n'
        '#[no_mangle]\npub extern "C" fn built_at() -> usize { T.len() + T.as_ptr() as usize }\n'
    )
    proc = run_tool("--verify-reproducible", root / "ws", env=shared)
    assert_clean_failure(proc, 7, "libstamped2.so", "differs")
