"""Issue 2, the spine: `build.py --glibc 2.17 crate/` builds plugins that load on an old glibc.

Everything is real: cargo, zig from the ziglang package, readelf from binutils as the
independent judge of the output, and bullseye's own dynamic loader (glibc 2.31) as the proof.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import EXAMPLES, assert_clean_failure, run_tool

pytestmark = pytest.mark.slow


def glibc_needs(lib: Path) -> list[tuple[int, ...]]:
    """Every GLIBC_x.y version `readelf -V` lists as needed by lib (binutils, not our reader)."""
    out = subprocess.run(
        ["readelf", "-V", "--wide", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    needs = out.split("Version needs section", 1)[-1]
    return [tuple(map(int, v.split("."))) for v in re.findall(r"Name: GLIBC_([\d.]+)", needs)]


def copy_crate(name: str, dest: Path) -> Path:
    """A private copy of an example crate (tests must not write into the repository)."""
    crate = dest / name
    shutil.copytree(EXAMPLES / name, crate, ignore=shutil.ignore_patterns("target", "dist"))
    return crate


def cargo_build_plain(crate: Path) -> Path:
    """What a user gets without this tool: `cargo build --release` on this (glibc 2.36) host."""
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, check=True)
    return next((crate / "target" / "release").glob("lib*.so"))


@pytest.fixture(scope="session")
def plugin_2_17(tmp_path_factory) -> dict:
    """The example plugin built once by build.py for glibc 2.17; shared by several tests."""
    crate = copy_crate("plugin", tmp_path_factory.mktemp("zig217"))
    proc = run_tool("--glibc", "2.17", "--json", crate)
    assert proc.returncode == 0, proc.stderr
    return {"crate": crate, "proc": proc, "summary": json.loads(proc.stdout)}


def test_build_puts_a_2_17_library_in_dist(plugin_2_17):
    summary = plugin_2_17["summary"]
    assert summary["ok"] is True and summary["glibc"] == "2.17"
    (artifact,) = [Path(p) for p in summary["artifacts"]]
    assert artifact == plugin_2_17["crate"] / "dist" / "glibc-2.17" / "libexample_plugin.so"
    needs = glibc_needs(artifact)
    assert needs, "a Rust cdylib always needs some GLIBC version"
    assert max(needs) <= (2, 17)
    assert summary["check"]["files"][0]["required"]["GLIBC"] == ".".join(map(str, max(needs)))


def test_zig_linked_it_with_its_own_unwinder(plugin_2_17):
    # zig links Rust's libgcc_s needs to its own libunwind: libgcc_s must not be needed.
    lib = plugin_2_17["crate"] / "dist" / "glibc-2.17" / "libexample_plugin.so"
    dynamic = subprocess.run(
        ["readelf", "-d", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert "libgcc_s" not in dynamic
    comment = subprocess.run(
        ["readelf", "-p", ".comment", str(lib)], capture_output=True, text=True
    ).stdout
    assert "Linker: LLD" in comment or "lld" in comment.lower(), comment


def test_plugin_loads_and_runs_on_glibc_2_31(plugin_2_17, bullseye_root):
    lib = plugin_2_17["crate"] / "dist" / "glibc-2.17" / "libexample_plugin.so"
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from the plugin, thread computed 896" in proc.stdout + proc.stderr


def test_plain_cargo_build_is_refused_by_glibc_2_31(tmp_path, bullseye_root):
    """The problem, side by side with the fix above: glibc's own refusal message."""
    lib = cargo_build_plain(copy_crate("plugin", tmp_path))
    assert max(glibc_needs(lib)) > (2, 31)
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert proc.returncode == 1
    assert re.search(r"version `GLIBC_2\.3[2-9]' not found", proc.stdout + proc.stderr), (
        proc.stdout + proc.stderr
    )


def test_c_part_is_compiled_for_the_target_glibc_too(tmp_path, bullseye_root):
    crate = copy_crate("plugin-c", tmp_path)
    proc = run_tool("--glibc", "2.17", crate)
    assert proc.returncode == 0, proc.stderr
    lib = crate / "dist" / "glibc-2.17" / "libexample_plugin_c.so"
    assert max(glibc_needs(lib)) <= (2, 17)
    syms = subprocess.run(
        ["readelf", "--dyn-syms", "-W", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert "fcntl@GLIBC_2.2.5" in syms and "fcntl64" not in syms
    loaded = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "fcntl said" in loaded.stdout + loaded.stderr


def test_c_part_built_by_the_host_compiler_needs_fcntl64(tmp_path):
    """Without zig as CC, the same C code binds fcntl64@GLIBC_2.28 on this host."""
    lib = cargo_build_plain(copy_crate("plugin-c", tmp_path))
    syms = subprocess.run(
        ["readelf", "--dyn-syms", "-W", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert "fcntl64@GLIBC_2.28" in syms


WORKSPACE = {
    "Cargo.toml": '[workspace]\nmembers = ["plug", "util"]\nresolver = "2"\n',
    "util/Cargo.toml": '[package]\nname = "util"\nversion = "0.1.0"\nedition = "2021"\n',
    "util/src/lib.rs": "pub fn answer() -> i32 { 42 }\n",
    "plug/Cargo.toml": (
        '[package]\nname = "plug"\nversion = "0.2.0"\nedition = "2021"\n'
        '[lib]\ncrate-type = ["cdylib"]\n'
        '[dependencies]\nutil = { path = "../util" }\n'
    ),
    "plug/src/lib.rs": (
        '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 '
        "{ if util::answer() == 42 { 0 } else { 1 } }\n"
        "#[cfg(extra_export)]\n#[no_mangle]\n"
        'pub extern "C" fn built_with_user_flags() -> i32 { 7 }\n'
    ),
}


@pytest.fixture
def workspace(tmp_path) -> Path:
    for rel, text in WORKSPACE.items():
        path = tmp_path / "ws" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "ws"


def dyn_symbols(lib: Path) -> str:
    return subprocess.run(
        ["readelf", "--dyn-syms", "-W", str(lib)], capture_output=True, text=True, check=True
    ).stdout


def test_workspace_root_member_dir_and_package(workspace, tmp_path):
    # From the workspace root: the one cdylib member is found; the rlib member is not built out.
    out_root = tmp_path / "out-root"
    proc = run_tool("--out", out_root, workspace)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_root.iterdir()) == [
        "build-manifest.json",
        "libplug.so",
        "sbom.cdx.json",
    ]
    # From the member's own folder, and with --package from the root: same library.
    proc = run_tool("--out", tmp_path / "out-member", workspace / "plug")
    assert proc.returncode == 0, proc.stderr
    proc = run_tool("--package", "plug", "--out", tmp_path / "out-pkg", workspace)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out-pkg" / "libplug.so").is_file()
    # --package naming the member without a cdylib is refused with a clear line.
    proc = run_tool("--package", "util", workspace)
    assert_clean_failure(proc, 2, "util", "cdylib")


def test_user_rustflags_are_kept(workspace, tmp_path):
    """Our --gc-sections is added to the user's flags, from the environment or .cargo/config."""
    proc = run_tool("--out", tmp_path / "env", workspace, env={"RUSTFLAGS": "--cfg extra_export"})
    assert proc.returncode == 0, proc.stderr
    assert "built_with_user_flags" in dyn_symbols(tmp_path / "env" / "libplug.so")

    (workspace / ".cargo").mkdir()
    (workspace / ".cargo" / "config.toml").write_text(
        '[build]\nrustflags = ["--cfg", "extra_export"]\n'
    )
    proc = run_tool("--out", tmp_path / "config", workspace)
    assert proc.returncode == 0, proc.stderr
    assert "built_with_user_flags" in dyn_symbols(tmp_path / "config" / "libplug.so")


def test_output_failing_the_check_exits_1_and_is_not_copied(workspace, tmp_path):
    """C code that declares reallocarray (glibc 2.26) by hand links against the 2.17 stubs as an
    unversioned undefined symbol; only the checker's existence check can catch that."""
    plug = workspace / "plug"
    (plug / "Cargo.toml").write_text(
        (plug / "Cargo.toml").read_text() + '[build-dependencies]\ncc = "1"\n'
    )
    (plug / "build.rs").write_text('fn main() { cc::Build::new().file("new.c").compile("new"); }\n')
    (plug / "new.c").write_text(
        "#include <stddef.h>\n#include <stdlib.h>\n"
        "void *reallocarray(void *ptr, size_t nmemb, size_t size);\n"
        "int grow(void) { void *p = reallocarray(NULL, 4, 8); free(p); return p == NULL; }\n"
    )
    (plug / "src" / "lib.rs").write_text(
        'extern "C" { fn grow() -> i32; }\n'
        '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 { unsafe { grow() } }\n'
    )
    out = tmp_path / "out"
    proc = run_tool("--out", out, "--json", workspace)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "reallocarray" in proc.stderr and "2.26" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is False and summary["artifacts"] == []
    (violation,) = summary["check"]["files"][0]["violations"]
    assert violation["symbol"] == "reallocarray"
    assert not out.exists()


def test_cargo_failure_exits_3_with_cargos_own_error(workspace):
    (workspace / "plug" / "src" / "lib.rs").write_text('pub fn broken() -> i32 { "no" }\n')
    proc = run_tool(workspace)
    assert_clean_failure(proc, 3, "cargo failed", "mismatched types")


@pytest.mark.parametrize(
    "args, code, needles",
    [
        (["--glibc", "2.x"], 2, ["--glibc", "2.x"]),
        (["--glibc", "2.5"], 2, ["--glibc 2.5", "2.17"]),
        (["--glibc", "2.99"], 2, ["--glibc 2.99", "newest"]),
        (["--target", "sparc-sun-solaris"], 2, ["--target", "sparc-sun-solaris"]),
        (["--release", "--profile", "debug"], 2, ["--release", "--profile debug"]),
        (["--profile", "fast"], 2, ["--profile fast", "[profile.fast]"]),
        (["-v", "-q"], 2, ["-v and -q"]),
        (
            ["--manifest-path", EXAMPLES / "plugin" / "Cargo.toml"],
            2,
            ["CRATE_DIR or --manifest-path"],
        ),
        (["--target-dir", EXAMPLES / "plugin" / "Cargo.toml"], 2, ["--target-dir", "is a file"]),
        (["--", "--target-dir=x"], 2, ["-- --target-dir=x", "--target-dir"]),
        (["--package", "nope"], 2, ["--package", "nope"]),
        (["--recipe", "debian-bullseye", "--backend", "zig"], 2, ["--recipe"]),
        (["--no-such-option"], 2, ["--no-such-option"]),
    ],
)
def test_bad_options(args, code, needles):
    assert_clean_failure(run_tool(*args, EXAMPLES / "plugin"), code, *needles)


def test_bad_crate_dirs(tmp_path):
    assert_clean_failure(run_tool(tmp_path / "missing"), 2, "missing", "no such folder")
    assert_clean_failure(run_tool(tmp_path), 2, "no Cargo.toml")
    lib_only = tmp_path / "rlib"
    (lib_only / "src").mkdir(parents=True)
    (lib_only / "Cargo.toml").write_text('[package]\nname = "rlib"\nversion = "0.1.0"\n')
    (lib_only / "src" / "lib.rs").write_text("")
    assert_clean_failure(run_tool(lib_only), 2, "no cdylib target", "crate-type")
    (lib_only / "Cargo.toml").write_text("[package\nname = ")
    assert_clean_failure(run_tool(lib_only), 2, "Cargo.toml", "cargo cannot read it")


def test_help_documents_exit_codes():
    proc = run_tool("--help")
    assert proc.returncode == 0
    for code in ("0 ", "1 ", "2 ", "3 "):
        assert f"\n    {code}" in proc.stdout
    build_help = run_tool("build", "--help")
    for option in (
        "--glibc",
        "--target",
        "--backend",
        "--recipe",
        "--profile",
        "--package",
        "--features",
        "--out",
        "--json",
    ):
        assert option in build_help.stdout


def test_verify_on_proves_the_build_and_refuses_a_too_new_one(tmp_path, bullseye_root):
    crate = copy_crate("plugin", tmp_path)
    proc = run_tool("--glibc", "2.17", "--verify-on", bullseye_root, "--json", crate)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["verify_load"] == [
        {
            "name": "libexample_plugin.so",
            "ok": True,
            "message": summary["verify_load"][0]["message"],
        }
    ]
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["verify_load"][0]["ok"] is True

    # Built for 2.34, the check passes (2.34 is what was asked) but bullseye's 2.31 refuses it.
    out = tmp_path / "too-new"
    proc = run_tool("--glibc", "2.34", "--verify-on", bullseye_root, "--out", out, crate)
    assert_clean_failure(proc, 1, "libexample_plugin.so", "version `GLIBC_2.3", "' not found")
    assert not out.exists()


CPP_CRATE = {
    "Cargo.toml": (
        '[package]\nname = "cppplug"\nversion = "0.1.0"\nedition = "2021"\n'
        '[lib]\ncrate-type = ["cdylib"]\n[build-dependencies]\ncc = "1"\n'
    ),
    "build.rs": 'fn main() { cc::Build::new().cpp(true).file("c/part.cpp").compile("part"); }\n',
    "c/part.cpp": (
        "#include <string>\n#include <vector>\n"
        'extern "C" int cpp_part(int x) { std::vector<std::string> v;\n'
        "  v.push_back(std::to_string(x)); return (int)v[0].size(); }\n"
    ),
    "src/lib.rs": (
        'extern "C" { fn cpp_part(x: i32) -> i32; }\n#[no_mangle]\n'
        'pub extern "C" fn plugin_entry() -> i32 '
        "{ if unsafe { cpp_part(42) } == 2 { 0 } else { 1 } }\n"
    ),
}


def test_cpp_part_links_zigs_libcxx_and_loads(tmp_path, bullseye_root):
    """C++ through the cc crate: zig's libc++ is linked in, so no GLIBCXX need at all."""
    crate = tmp_path / "cpp"
    for rel, text in CPP_CRATE.items():
        (crate / rel).parent.mkdir(parents=True, exist_ok=True)
        (crate / rel).write_text(text)
    proc = run_tool("--glibc", "2.17", crate)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lib = crate / "dist" / "glibc-2.17" / "libcppplug.so"
    assert max(glibc_needs(lib)) <= (2, 17)
    versions = subprocess.run(
        ["readelf", "-V", "-W", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert "GLIBCXX" not in versions and "libstdc++" not in versions
    loaded = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


# -- what a review found: each case as the reviewer reproduced it ---------------------------
def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


PLAIN_LIB = '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 { 0 }\n'


def cdylib_toml(name: str, extra: str = "") -> str:
    return (
        f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
        f'[lib]\ncrate-type = ["cdylib"]\n{extra}'
    )


def test_cfg_and_joined_config_rustflags_are_kept(tmp_path):
    """cargo joins target.'cfg(...)' flags and build.rustflags arrays from every config file;
    a flag lost on the way fails this crate's compile."""
    crate = write_files(
        tmp_path / "parent" / "crate",
        {
            "Cargo.toml": cdylib_toml("cf"),
            ".cargo/config.toml": "[target.'cfg(target_os = \"linux\")']\n"
            'rustflags = ["--cfg", "from_cfg_table"]\n',
            "src/lib.rs": '#[cfg(not(from_cfg_table))] compile_error!("cfg() flags were lost");\n'
            + PLAIN_LIB,
        },
    )
    assert run_tool("--out", tmp_path / "o1", crate).returncode == 0
    (crate / ".cargo" / "config.toml").write_text('[build]\nrustflags = ["--cfg", "near"]\n')
    write_files(
        tmp_path / "parent", {".cargo/config.toml": '[build]\nrustflags = ["--cfg", "far"]\n'}
    )
    (crate / "src" / "lib.rs").write_text(
        '#[cfg(not(all(near, far)))] compile_error!("a config file\'s flags were lost");\n'
        + PLAIN_LIB
    )
    proc = run_tool("--out", tmp_path / "o2", crate)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bad_out_paths_fail_cleanly_and_leave_nothing(tmp_path):
    crate = write_files(
        tmp_path / "c", {"Cargo.toml": cdylib_toml("outs"), "src/lib.rs": PLAIN_LIB}
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert_clean_failure(run_tool("--out", a_file, crate), 2, "a-file", "is a file")
    blocked = tmp_path / "blocked"
    (blocked / "build-manifest.json").mkdir(parents=True)
    proc = run_tool("--out", blocked, crate)
    assert_clean_failure(proc, 2, "build-manifest.json", "cannot write")
    assert sorted(p.name for p in blocked.iterdir()) == ["build-manifest.json"]


@pytest.mark.parametrize(
    "setting, needles",
    [
        ("glibc = 2.30", ["glibc = 2.3", "must be a string", 'glibc = "2.30"']),
        ('verify-reproducible = "no"', ["verify-reproducible", "true or false"]),
        ("verify-on = 5", ["verify-on = 5", "must be a string"]),
        ('verify-on = "no-such-root"', ["no-such-root"]),
    ],
)
def test_mistyped_crate_settings_are_refused_before_building(tmp_path, setting, needles):
    crate = write_files(
        tmp_path / "m",
        {
            "Cargo.toml": cdylib_toml("m", f"[package.metadata.glibc-build]\n{setting}\n"),
            "src/lib.rs": 'compile_error!("the build must not even start");\n',
        },
    )
    assert_clean_failure(run_tool(crate), 2, *needles)


def test_features_as_a_list_and_a_cli_backend_over_a_crate_recipe(tmp_path):
    crate = write_files(
        tmp_path / "f",
        {
            "Cargo.toml": cdylib_toml(
                "f",
                "[features]\na = []\nb = []\n"
                '[package.metadata.glibc-build]\nfeatures = ["a", "b"]\n'
                'recipe = "debian-bullseye"\n',
            ),
            "src/lib.rs": '#[cfg(not(all(feature = "a", feature = "b")))] compile_error!("x");\n'
            + PLAIN_LIB,
        },
    )
    proc = run_tool("--backend", "zig", crate)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_members_with_different_settings_are_refused(tmp_path):
    ws = write_files(
        tmp_path / "ws",
        {
            "Cargo.toml": '[workspace]\nmembers = ["a", "b"]\nresolver = "2"\n',
            "a/Cargo.toml": cdylib_toml("a", '[package.metadata.glibc-build]\nglibc = "2.28"\n'),
            "a/src/lib.rs": PLAIN_LIB,
            "b/Cargo.toml": cdylib_toml("b", '[package.metadata.glibc-build]\nglibc = "2.17"\n'),
            "b/src/lib.rs": PLAIN_LIB,
        },
    )
    assert_clean_failure(
        run_tool(ws), 2, "glibc", "a says '2.28', b says '2.17'", "--glibc", "--package"
    )
    assert run_tool("--package", "b", ws).returncode == 0
    settled = run_tool("--glibc", "2.28", "--out", tmp_path / "both", ws)  # a flag settles it
    assert settled.returncode == 0, settled.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "both").glob("*.so")) == ["liba.so", "libb.so"]


def test_workspace_settings_paths_are_relative_to_the_workspace(tmp_path, bullseye_root):
    ws = write_files(
        tmp_path / "ws",
        {
            "Cargo.toml": (
                '[workspace]\nmembers = ["plug"]\nresolver = "2"\n'
                '[workspace.metadata.glibc-build]\nverify-on = "roots/bullseye"\n'
            ),
            "plug/Cargo.toml": cdylib_toml("plug"),
            "plug/src/lib.rs": PLAIN_LIB,
        },
    )
    (ws / "roots").mkdir()
    (ws / "roots" / "bullseye").symlink_to(bullseye_root)
    proc = run_tool("--json", ws / "plug")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["verify_load"][0]["ok"] is True


def test_root_package_that_is_not_a_plugin_builds_its_cdylib_members(tmp_path):
    ws = write_files(
        tmp_path / "app",
        {
            "Cargo.toml": (
                '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n'
                '[workspace]\nmembers = ["plugin"]\n'
            ),
            "src/main.rs": "fn main() {}\n",
            "plugin/Cargo.toml": cdylib_toml("plugin"),
            "plugin/src/lib.rs": PLAIN_LIB,
        },
    )
    proc = run_tool("--out", tmp_path / "out", ws)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "libplugin.so").is_file()


def test_sigterm_stops_cargo_and_its_build_scripts(tmp_path):
    import os
    import signal
    import sys
    import time

    from .conftest import REPO

    pid_file = tmp_path / "build-script.pid"
    crate = write_files(
        tmp_path / "slow",
        {
            "Cargo.toml": cdylib_toml("slow"),
            "src/lib.rs": PLAIN_LIB,
            "build.rs": (
                'fn main() {\n    std::fs::write(r"' + str(pid_file) + '", '
                "std::process::id().to_string()).unwrap();\n"
                "    std::thread::sleep(std::time::Duration::from_secs(120));\n}\n"
            ),
        },
    )
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "build.py"), str(crate)],
        env=dict(os.environ, GLIBC_BUILD_NO_VENV="1"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    stat = Path(f"/proc/{int(pid_file.read_text())}/stat")

    def alive() -> bool:  # a zombie waiting for its reaper has stopped running
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(), "the build script outlived the build"


def test_sigterm_kills_a_build_scripts_child_that_ignores_it(tmp_path):
    """Issue 11 item 6: a build script's child that ignores SIGTERM stays in cargo's process
    group after cargo has gone (re-parented to PID 1); the build must kill the whole group."""
    import os
    import signal
    import sys
    import time

    from .conftest import REPO

    pid_file = tmp_path / "stubborn.pid"
    script = f'trap "" TERM; echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; sleep 600'
    crate = write_files(
        tmp_path / "stubborn",
        {
            "Cargo.toml": cdylib_toml("stubborn"),
            "src/lib.rs": PLAIN_LIB,
            "build.rs": (
                'fn main() {\n    std::process::Command::new("sh").arg("-c").arg(r#"'
                + script
                + '"#).spawn().unwrap();\n'
                "    std::thread::sleep(std::time::Duration::from_secs(120));\n}\n"
            ),
        },
    )
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "build.py"), str(crate)],
        env=dict(os.environ, GLIBC_BUILD_NO_VENV="1"),
        stderr=subprocess.PIPE,
        text=True,
    )

    def group_of(pid: str) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])

    def running_in(group: int) -> list[str]:  # zombies waiting for their reaper have stopped
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(entry.name)
        return found

    group = None
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        group = group_of(pid_file.read_text().strip())
        assert running_in(group)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        deadline = time.monotonic() + 10
        while running_in(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running_in(group), "a build script's child outlived the build"
    finally:
        proc.kill()
        if group is not None and running_in(group):
            os.killpg(group, signal.SIGKILL)
