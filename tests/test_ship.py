"""Issue 14: ship what you built. --out holds exactly one passing build; cargo's conventions;
cargo's output once; --json always; bad --out found before cargo runs.

The unit tests cover the pure parts (the --out bookkeeping works on a temporary folder only);
the others run the real build.py with real cargo and zig.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import click
import pytest

from orchestrator import build as build_module
from orchestrator import glibc_arg, jsonout, manifest, outdir
from orchestrator.build import BuildOptions
from orchestrator.errors import BadInput, UsageError

from .conftest import assert_clean_failure, run_tool
from .test_schemas import assert_valid

unit = pytest.mark.unit

PLAIN_LIB = '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 { 0 }\n'
NEVER_BUILT = 'compile_error!("the build must not even start");\n'


def cdylib_toml(name: str, extra: str = "") -> str:
    return (
        f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n'
        f'[lib]\ncrate-type = ["cdylib"]\n{extra}'
    )


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def fake_libs(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"\x7fELF" + name.encode())
    return [folder / name for name in names]


def manifest_listing(files: list[str]) -> str:
    return json.dumps({"files": files})


# -- --out holds exactly one passing build (unit) ----------------------------------------------
@unit
def test_publish_removes_what_the_earlier_build_wrote_and_keeps_foreign_files(tmp_path):
    out = tmp_path / "out"
    first = fake_libs(tmp_path / "b1", "libmod_a.so", "libmod_b.so")
    published = outdir.publish(out, first, manifest_listing)
    assert sorted(p.name for p in out.iterdir()) == [
        "build-manifest.json",
        "libmod_a.so",
        "libmod_b.so",
    ]
    assert published.removed == () and published.foreign == ()
    (out / "notes.txt").write_text("mine")
    second = fake_libs(tmp_path / "b2", "libmod_a.so")
    published = outdir.publish(out, second, manifest_listing)
    assert sorted(p.name for p in out.iterdir()) == [
        "build-manifest.json",
        "libmod_a.so",
        "notes.txt",
    ]
    assert published.removed == ("libmod_b.so",)
    assert published.foreign == ("notes.txt",)
    assert published.artifacts == (out / "libmod_a.so",)
    assert (out / "libmod_a.so").read_bytes() == second[0].read_bytes()
    assert json.loads((out / "build-manifest.json").read_text()) == {"files": ["libmod_a.so"]}
    outdir.publish(out, second, manifest_listing, extra={"sbom.cdx.json": "{}"})
    assert json.loads((out / "build-manifest.json").read_text()) == {
        "files": ["libmod_a.so", "sbom.cdx.json"]
    }
    published = outdir.publish(out, second, manifest_listing)
    assert published.removed == ("sbom.cdx.json",) and not (out / "sbom.cdx.json").exists()


@unit
def test_a_first_version_manifest_lists_its_artifacts_and_never_a_path(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "build-manifest.json").write_text(
        json.dumps({"artifacts": [{"name": "libold.so"}, {"name": "../escape.so"}, {"name": ".."}]})
    )
    assert outdir.written_before(out) == ["libold.so"]
    (out / "build-manifest.json").write_text("not json")
    assert outdir.written_before(out) == []
    assert outdir.MANIFEST_NAME == manifest.MANIFEST_NAME


@unit
def test_a_failing_copy_leaves_the_earlier_build_whole(tmp_path):
    out = tmp_path / "out"
    outdir.publish(out, fake_libs(tmp_path / "b1", "liba.so"), manifest_listing)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    missing = tmp_path / "b2" / "libgone.so"
    with pytest.raises(BadInput):
        outdir.publish(out, [*fake_libs(tmp_path / "b2", "liba.so"), missing], manifest_listing)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@unit
def test_out_problems_are_named_before_anything_runs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(UsageError, match="is a file"):
        outdir.require_usable(a_file)
    with pytest.raises(UsageError, match="a-file is a file, not a folder"):
        outdir.require_usable(a_file / "sub" / "out")
    taken = tmp_path / "taken"
    (taken / "build-manifest.json").mkdir(parents=True)
    with pytest.raises(BadInput, match="build-manifest.json"):
        outdir.require_usable(taken)
    outdir.require_usable(tmp_path / "new" / "deeper")  # made later
    assert not (tmp_path / "new").exists()


@unit
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(BadInput, match="permission denied"):
            outdir.require_usable(locked)
        with pytest.raises(BadInput, match="cannot make it"):
            outdir.require_usable(locked / "out")
    finally:
        locked.chmod(0o755)


# -- cargo's conventions (unit) -----------------------------------------------------------
@unit
@pytest.mark.parametrize(
    "text, expected",
    [
        ("x86_64-unknown-linux-gnu", ("x86_64-unknown-linux-gnu", None)),
        ("x86_64-unknown-linux-gnu.2.17", ("x86_64-unknown-linux-gnu", "2.17")),
        ("aarch64-unknown-linux-gnu.2.28", ("aarch64-unknown-linux-gnu", "2.28")),
    ],
)
def test_target_takes_cargo_zigbuilds_glibc_suffix(text, expected):
    assert glibc_arg.split_target(text) == expected


@unit
def test_target_suffix_and_glibc_must_agree():
    assert glibc_arg.target_and_glibc("x86_64-unknown-linux-gnu.2.28", None)[:2] == (
        "x86_64-unknown-linux-gnu",
        "2.28",
    )
    with pytest.raises(UsageError, match="says glibc 2.28 but --glibc says 2.17"):
        glibc_arg.target_and_glibc("x86_64-unknown-linux-gnu.2.28", "2.17")


@unit
def test_cargo_flags_are_passed_on_in_cargos_spelling():
    options = BuildOptions(
        crate_dir=Path("."),
        locked=True,
        offline=True,
        all_features=True,
        verbose=2,
        cargo_args=("--jobs", "1"),
    )
    assert build_module.cargo_flags(options) == (
        "--locked",
        "--offline",
        "--all-features",
        "--verbose",
        "--verbose",
        "--jobs",
        "1",
    )


@unit
@pytest.mark.parametrize(
    "arg, needle",
    [
        ("--target=aarch64-unknown-linux-gnu", "--target"),
        ("--manifest-path", "--manifest-path"),
        ("--message-format=short", "--message-format"),
        ("--profile=dev", "--profile"),
        ("-pother", "--package"),
        ("--target-dir", "--target-dir"),
    ],
)
def test_cargo_flags_we_set_are_refused_after_the_double_dash(arg, needle):
    with pytest.raises(UsageError, match=f"sets {needle.split('=')[0]}|{needle}"):
        build_module.cargo_flags(BuildOptions(crate_dir=Path("."), cargo_args=(arg,)))


@unit
def test_release_and_another_profile_contradict():
    with pytest.raises(UsageError, match="--release and --profile debug contradict"):
        build_module._check_cli_values(
            BuildOptions(crate_dir=Path("."), release=True, profile="debug")
        )
    build_module._check_cli_values(
        BuildOptions(crate_dir=Path("."), release=True, profile="release")
    )


@unit
def test_crate_dir_may_be_a_cargo_toml_and_manifest_path_must_be_one(tmp_path):
    toml = write_files(tmp_path / "c", {"Cargo.toml": cdylib_toml("c")}) / "Cargo.toml"
    assert build_module.crate_folder(BuildOptions(crate_dir=toml)) == tmp_path / "c"
    assert (
        build_module.crate_folder(BuildOptions(crate_dir=Path("."), manifest_path=toml))
        == tmp_path / "c"
    )
    other = tmp_path / "c" / "README.md"
    other.write_text("")
    with pytest.raises(UsageError, match="is not a Cargo.toml"):
        build_module.crate_folder(BuildOptions(crate_dir=Path("."), manifest_path=other))
    with pytest.raises(BadInput, match="not a folder or a Cargo.toml"):
        build_module.crate_folder(BuildOptions(crate_dir=other))


@unit
def test_each_glibc_gets_its_own_target_folder():
    from orchestrator.glibc import GlibcVersion
    from orchestrator.targets import lookup

    target = lookup("x86_64-unknown-linux-gnu")
    a = build_module.build_target_dir(Path("/t"), target, GlibcVersion(2, 17), "zig")
    b = build_module.build_target_dir(Path("/t"), target, GlibcVersion(2, 28), "zig")
    c = build_module.build_target_dir(Path("/t"), target, GlibcVersion(2, 17), "docker")
    assert len({a, b, c}) == 3 and all(p.parent == Path("/t/glibc-build") for p in (a, b, c))


@unit
def test_the_default_out_folder_names_the_platform_and_a_non_release_profile():
    assert build_module.out_folder_name("glibc-2.17", "release") == "glibc-2.17"
    assert build_module.out_folder_name("centos-7", "release") == "centos-7"
    assert build_module.out_folder_name("glibc-2.17", "dev") == "glibc-2.17-debug"
    assert build_module.out_folder_name("glibc-2.17", "debug") == "glibc-2.17-debug"
    assert (
        build_module.out_folder_name("centos-7,steam-sniper", "ship")
        == "centos-7+steam-sniper-ship"
    )


@unit
def test_only_close_option_names_are_suggested():
    from orchestrator.cli import build, close_options

    assert close_options(build, "--lockd") == ["--locked"]
    assert close_options(build, "--colour") == []
    assert "--backend" not in close_options(build, "--locked")
    assert isinstance(build, click.Command)


@unit
def test_last_error_is_cargos_own_last_error_line():
    tail = (
        "   Compiling plug v0.2.0\nerror[E0308]: mismatched types\n --> src/lib.rs:1:26\n"
        "  |\nerror: could not compile `plug` (lib) due to 1 previous error\n"
    )
    assert (
        build_module.last_error(tail)
        == "error: could not compile `plug` (lib) due to 1 previous error"
    )
    assert build_module.last_error("just a line\n") == "just a line"


@unit
def test_json_wanted_only_among_our_own_arguments():
    assert jsonout.wanted(["--json", "crate"])
    assert not jsonout.wanted(["crate", "--", "--json"])
    assert jsonout.failure("bad", 2, {"artifacts": []}) == {
        "schema": 1,
        "artifacts": [],
        "ok": False,
        "error": "bad",
        "exit_code": 2,
    }


# -- the real thing ------------------------------------------------------------------------
TWO_MODS = {
    "Cargo.toml": '[workspace]\nmembers = ["mod_a", "mod_b"]\nresolver = "2"\n',
    "mod_a/Cargo.toml": cdylib_toml("mod_a"),
    "mod_a/src/lib.rs": PLAIN_LIB,
    "mod_b/Cargo.toml": cdylib_toml("mod_b"),
    "mod_b/src/lib.rs": PLAIN_LIB,
}


@pytest.mark.slow
def test_out_holds_exactly_the_last_build(tmp_path):
    """Case 1: a build of one member after a build of two leaves only that member's library
    beside a manifest that lists it; a file the tool never wrote stays and is named."""
    ws = write_files(tmp_path / "ws", TWO_MODS)
    out = tmp_path / "ship"
    proc = run_tool("--out", out, ws)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "build-manifest.json",
        "libmod_a.so",
        "libmod_b.so",
        "sbom.cdx.json",
    ]
    (out / "README.txt").write_text("the user's own")
    proc = run_tool("-p", "mod_a", "--json", "--out", out, ws)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt",
        "build-manifest.json",
        "libmod_a.so",
        "sbom.cdx.json",
    ]
    written = json.loads((out / "build-manifest.json").read_text())
    assert written["files"] == ["libmod_a.so", "sbom.cdx.json"]
    assert [a["name"] for a in written["artifacts"]] == ["libmod_a.so"]
    assert "README.txt" in proc.stderr and "did not write" in proc.stderr
    assert json.loads(proc.stdout)["artifacts"] == [str(out / "libmod_a.so")]


@pytest.mark.slow
def test_platforms_sit_side_by_side_and_each_glibc_keeps_its_objects(tmp_path):
    """Case 2: the default --out is dist/<platform>; switching glibc back reuses that glibc's
    own target folder (nothing is compiled again); cargo-zigbuild's --target form and a
    platform preset name their folders."""
    crate = write_files(tmp_path / "c", {"Cargo.toml": cdylib_toml("sbs"), "src/lib.rs": PLAIN_LIB})
    for args in (
        ["--glibc", "2.17"],
        ["--target", "x86_64-unknown-linux-gnu.2.28"],
        ["--glibc", "centos-7"],
    ):
        proc = run_tool(*args, crate)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (crate / "dist").iterdir()) == [
        "centos-7",
        "glibc-2.17",
        "glibc-2.28",
    ]
    for folder in ("centos-7", "glibc-2.17", "glibc-2.28"):
        assert (crate / "dist" / folder / "libsbs.so").is_file()
    assert (
        json.loads((crate / "dist" / "glibc-2.28" / "build-manifest.json").read_text())["glibc"]
        == "2.28"
    )
    kept = sorted(p.name for p in (crate / "target" / "glibc-build").iterdir())
    assert kept == [
        "x86_64-unknown-linux-gnu-glibc-2.17-zig",
        "x86_64-unknown-linux-gnu-glibc-2.28-zig",
    ]
    again = run_tool("--glibc", "2.17", crate)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Compiling sbs" not in again.stderr
    # Case 9: each stage ends with its elapsed time.
    assert re.search(r"built in \d+\.\d s", again.stderr), again.stderr
    assert re.search(r"checked in \d+\.\d s", again.stderr), again.stderr


@pytest.mark.slow
def test_cargos_conventions(tmp_path):
    """Case 3: no path inside the crate, a Cargo.toml path, --manifest-path, --release, a
    custom --profile, --locked, --offline, -v, --target-dir and `--` all work as in cargo."""
    crate = write_files(
        tmp_path / "c",
        {
            "Cargo.toml": cdylib_toml(
                "conv",
                '[features]\ndefault = ["on"]\non = []\n[profile.ship]\ninherits = "release"\n',
            ),
            "src/lib.rs": '#[cfg(feature = "on")] compile_error!("default features are off");\n'
            + PLAIN_LIB,
        },
    )
    proc = run_tool("--no-default-features", "--json", cwd=crate)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (crate / "dist" / "glibc-2.17" / "libconv.so").is_file()
    targets = tmp_path / "targets"
    proc = run_tool(
        "--release",
        "--no-default-features",
        "--out",
        tmp_path / "o1",
        "--target-dir",
        targets,
        crate / "Cargo.toml",
        "--",
        "--locked",
        "--offline",
        "--jobs",
        "1",
        env={"CARGO_TARGET_DIR": str(tmp_path / "ignored")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (targets / "glibc-build").is_dir() and not (tmp_path / "ignored").exists()
    proc = run_tool(
        "--profile",
        "ship",
        "--frozen",
        "-v",
        "--no-default-features",
        "--json",
        "--manifest-path",
        crate / "Cargo.toml",
        "--out",
        tmp_path / "o2",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Running `" in proc.stderr  # cargo's -v
    check_path = json.loads(proc.stdout)["check"]["files"][0]["path"]
    assert "/ship/libconv.so" in check_path
    assert_clean_failure(
        run_tool("--manifest-path", crate / "src" / "lib.rs"), 2, "is not a Cargo.toml"
    )
    assert_clean_failure(run_tool(crate, "--", "--message-format=short"), 2, "--message-format")


@pytest.mark.slow
def test_a_failed_build_says_the_stage_once_and_json_reports_it(tmp_path):
    """Cases 4 and 5: cargo's error appears once (streamed), then our one line with cargo's
    own last error; --json prints ok false with the error and the exit code."""
    crate = write_files(
        tmp_path / "c",
        {"Cargo.toml": cdylib_toml("broken"), "src/lib.rs": 'pub fn broken() -> i32 { "no" }\n'},
    )
    proc = run_tool("--json", crate)
    assert_clean_failure(proc, 3, "the build stage failed", "could not compile")
    assert proc.stderr.count("mismatched types") == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is False and summary["exit_code"] == 3
    assert "could not compile" in summary["error"] and summary["artifacts"] == []
    assert_valid("build", summary)


def test_json_on_bad_input_is_still_one_object(tmp_path):
    proc = run_tool("--json", "--glibc", "2.x", tmp_path)
    assert proc.returncode == 2
    summary = json.loads(proc.stdout)
    assert summary == {"schema": 1, "ok": False, "error": summary["error"], "exit_code": 2}
    assert_valid("build", summary)
    assert "2.x" in summary["error"]
    proc = run_tool("--json", "--no-such-flag", tmp_path)
    assert proc.returncode == 2 and json.loads(proc.stdout)["exit_code"] == 2
    assert "Did you mean" not in proc.stderr


def test_bad_out_and_verify_on_are_found_before_cargo_runs(tmp_path):
    """Case 8: the crate would not even compile; the --out and --verify-on errors come first."""
    crate = write_files(
        tmp_path / "c", {"Cargo.toml": cdylib_toml("early"), "src/lib.rs": NEVER_BUILT}
    )
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert_clean_failure(run_tool("--out", a_file / "dist", crate), 2, "a-file is a file")
    assert_clean_failure(run_tool("--verify-on", tmp_path / "no-root", crate), 2, "no-root")
    assert "compile_error" not in run_tool("--out", a_file, crate).stderr


# -- a report people read -------------------------------------------------------------------
GOLDEN = Path(__file__).parent / "golden" / "check-report.txt"


def typical_report():
    """What `check` says about a Rust plugin built by plain `cargo build` on a new distro, next
    to one that loads: the rules' own texts, made as the rules make them."""
    from orchestrator.check.report import WARNING, FileReport, Finding, Report
    from orchestrator.check.rules.context import REBUILD
    from orchestrator.check.rules.versions import TEXT
    from orchestrator.glibc import GlibcVersion

    rebuild = REBUILD.format(glibc="2.17")

    def too_new(symbol, version, hint="", moved_from=None, weak=False):
        text = TEXT["too-new"].format(
            version=version, glibc="2.17", node=f"GLIBC_{version}", rebuild=rebuild
        )
        if moved_from:
            text += TEXT["moved"].format(origin=moved_from, version=version, glibc="2.17")
        if weak:
            hint = TEXT["weak-symbol-hint"].format(node=f"GLIBC_{version}") + (
                f"; {hint}" if hint else ""
            )
        return Finding("version-too-new", text, symbol, f"GLIBC_{version}", "libc.so.6", hint)

    violations = [
        too_new("__cxa_thread_atexit_impl", "2.18", weak=True),
        too_new("statx", "2.28", "statx() appeared in glibc 2.28", weak=True),
        too_new(
            "gettid", "2.30", "gettid() appeared in glibc 2.30; use syscall(SYS_gettid)", weak=True
        ),
        too_new("stat64", "2.33", "Rust std calls it: build with `build.py --glibc 2.17`"),
        too_new(
            "reallocarray",
            "2.26",
            "reallocarray appeared in glibc 2.26; use realloc with an overflow check",
        ),
        *(
            too_new(name, "2.34", moved_from="libpthread.so.0")
            for name in ("pthread_create", "pthread_join", "pthread_key_create")
        ),
        too_new("dlsym", "2.34", moved_from="libdl.so.2"),
    ]
    bad = FileReport(
        path="target/release/libmod.so",
        arch="x86_64",
        required={"GLIBC": "2.34", "GCC": "4.2.0"},
        violations=violations,
        warnings=[
            Finding(
                "rpath",
                "RUNPATH /home/me/lib is outside $ORIGIN: the target machine has no such folder",
                severity=WARNING,
            )
        ],
        min_glibc="2.34",
        unresolved=["host_api_version"],
    )
    good = FileReport(
        path="dist/glibc-2.17/libother.so",
        arch="x86_64",
        required={"GLIBC": "2.16"},
        min_glibc="2.16",
    )
    return Report(GlibcVersion(2, 17), [bad, good])


@unit
def test_text_report_matches_the_golden_file():
    """Case 6: the verdict and each file's lowest glibc first; one cause said once."""
    from orchestrator.check.render import report_text

    text = report_text(typical_report()) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("FAIL: ")
    assert text.count("why: ") == 2 and text.count("older loaders fail") == 1
    assert text.count("rebuild with") == 1
    assert "syscall(SYS_gettid)" not in text  # gettid comes from Rust's std here
    assert "reallocarray: reallocarray appeared" in text
    assert all(len(line) <= 100 for line in lines[3:])


@unit
def test_the_report_inside_build_py_never_says_run_build_py():
    from orchestrator.check.render import report_text

    text = report_text(typical_report(), for_build=True)
    assert "build.py" not in text
    assert "bypassed" in text and "reallocarray" in text


@pytest.mark.slow
def test_report_of_a_plain_cargo_build_names_every_symbol_in_40_lines(tmp_path):
    """Case 6, for real: a library built by plain `cargo build` on this machine, checked as
    the folder cargo left (its build-script executables are skipped)."""
    import subprocess

    crate = write_files(
        tmp_path / "plain",
        {
            "Cargo.toml": cdylib_toml("plainmod"),
            "build.rs": "fn main() {}\n",
            "src/lib.rs": (
                '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 {\n'
                '    std::thread::spawn(|| std::fs::metadata("/").is_ok())'
                ".join().unwrap() as i32\n}\n"
            ),
        },
    )
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=crate, check=True)
    folder = crate / "target" / "release"
    assert list(folder.glob("build/*/build-script-build"))
    text_run = run_tool("check", folder)
    json_run = run_tool("check", "--json", folder)
    assert text_run.returncode == json_run.returncode == 1, text_run.stderr
    report = json.loads(json_run.stdout)
    assert [Path(f["path"]).name for f in report["files"]] == ["libplainmod.so"]
    above = {v["symbol"] for v in report["files"][0]["violations"] if v["symbol"]}
    assert above, "this machine's glibc is newer than 2.17: something must be above it"
    lines = text_run.stdout.splitlines()
    assert len(lines) <= 40, text_run.stdout
    for symbol in above:
        assert symbol in text_run.stdout, symbol
    assert lines[0].startswith("FAIL: ") and "lowest glibc it can load on" in lines[1]


# -- the caches -----------------------------------------------------------------------------
@unit
def test_cache_entries_sizes_and_last_use(tmp_path):
    from orchestrator import caches

    root = tmp_path / "cache"
    wrappers = root / "zig-wrappers" / "abc"
    wrappers.mkdir(parents=True)
    (wrappers / "zig-cc").write_text("x" * 100)
    old_root = root / "debootstrap" / "stretch-amd64-minbase"
    old_root.mkdir(parents=True)
    (old_root / "big").write_bytes(b"\0" * 5000)
    (root / "locks").mkdir()
    target = tmp_path / "crate" / "target" / "glibc-build" / "x86_64-glibc-2.17-zig"
    target.mkdir(parents=True)
    (target / "obj.o").write_bytes(b"\0" * 300)
    now = 1_000_000_000.0
    caches.record_use([wrappers, target], now=now, root=root)
    caches.record_use([old_root], now=now - 40 * caches.DAY, root=root)
    found = {e.path: e for e in caches.entries(root)}
    assert set(found) == {wrappers, old_root, target}
    assert found[old_root].size == 5000 and found[wrappers].size == 100
    assert found[target].kind.startswith("cargo target folder")
    assert [e.path for e in caches.stale(list(found.values()), 30, now)] == [old_root]
    assert caches.human(5000) == "4.9 KiB"


def test_cache_command_lists_and_prunes(tmp_path):
    root = tmp_path / "cache"
    entry = root / "loader" / "loader-x86_64-linux-gnu-1234"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"\0" * 2048)
    os.utime(entry, (1, 1))  # never recorded, last modified long ago
    env = {"GLIBC_BUILD_CACHE": str(root)}
    listed = run_tool("cache", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "test loader for a root" in listed.stdout and "2.0 KiB" in listed.stdout
    dry = run_tool("cache", "prune", "--dry-run", env=env)
    assert "would remove" in dry.stdout and entry.exists()
    pruned = run_tool("cache", "prune", env=env)
    assert pruned.returncode == 0 and not entry.exists(), pruned.stdout + pruned.stderr


# -- --glibc the same everywhere; scout ------------------------------------------------------
@unit
def test_glibc_is_described_the_same_way_in_every_commands_help():
    from click.testing import CliRunner

    from orchestrator.cli import cli

    sentence = "Highest glibc the output may need: a version, MAJOR.MINOR, or a platform preset"
    for command in ("build", "check", "image", "render"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert sentence in text, command
        assert "--glibc X.Y|PLATFORM" in text, command


def test_scout_is_refused_by_the_build_but_can_be_checked_against(tmp_path):
    crate = write_files(
        tmp_path / "c", {"Cargo.toml": cdylib_toml("scoutmod"), "src/lib.rs": NEVER_BUILT}
    )
    assert_clean_failure(run_tool("--glibc", "scout", crate), 2, "--glibc scout", "2.15", "2.17")
    elf = Path("/bin/true")  # any ELF file: check must accept the glibc itself
    proc = run_tool("check", "--glibc", "scout", "--json", elf)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["glibc"] == "2.15"


@pytest.mark.unit
def test_the_loads_on_summary_is_one_markdown_table():
    markdown = build_module.loads_on_summary(
        "centos-7",
        {
            "libb.so": {
                "ok": ["rhel-8"],
                "not": {"centos-7": "needs glibc 2.28", "amazonlinux-2": "needs glibc 2.28"},
            },
            "liba.so": {"ok": ["centos-7", "rhel-8"], "not": {}},
        },
    )
    lines = markdown.splitlines()
    assert lines[0] == "### glibc-build: loads on (built for centos-7)"
    assert lines[2:] == [
        "| library | loads on | not on |",
        "|---|---|---|",
        "| liba.so | centos-7, rhel-8 |  |",
        "| libb.so | rhel-8 | centos-7: needs glibc 2.28; amazonlinux-2: needs glibc 2.28 |",
    ]


@pytest.mark.unit
def test_the_manifest_records_the_platform_and_each_artifacts_loads_on(tmp_path):
    from orchestrator.backends import BuildResult, Toolchain
    from orchestrator.cargo import Crate

    crate = Crate(
        root=tmp_path,
        manifest=tmp_path / "Cargo.toml",
        workspace_root=tmp_path,
        target_dir=tmp_path / "target",
        packages=("plug",),
        version="0.1.0",
        settings={},
        source_root=tmp_path,
    )
    result = BuildResult(
        artifacts=(),
        toolchain=Toolchain(rustc="rustc 1.95.0"),
        rustflags=(),
        env={},
        path_remaps=(),
    )
    matrix = {"ok": ["centos-7"], "not": {}, "system_calls_read": False}
    data = manifest.data(
        crate=crate,
        target="x86_64-unknown-linux-gnu",
        glibc="2.17",
        backend="zig",
        profile="release",
        result=result,
        check={"ok": True, "files": []},
        loads=None,
        artifacts=[
            {"name": "libplug.so", "size": 1, "sha256": "ab" * 32},
            {"name": "libother.so", "size": 1, "sha256": "cd" * 32},
        ],
        platform="centos-7",
        loads_on={"libplug.so": matrix},
    )
    assert data["platform"] == "centos-7"
    assert data["artifacts"][0]["loads_on"] == matrix
    assert "loads_on" not in data["artifacts"][1]


@pytest.mark.slow
def test_loads_on_goes_to_the_manifest_and_the_github_job_summary(tmp_path):
    """Issue 12: a build records each library's loads-on matrix and its platform in
    build-manifest.json, and inside GitHub Actions appends a "loads on" table to the job
    summary ($GITHUB_STEP_SUMMARY)."""
    crate = write_files(tmp_path / "c", {"Cargo.toml": cdylib_toml("lo"), "src/lib.rs": PLAIN_LIB})
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    proc = run_tool(
        "--glibc",
        "centos-7",
        "--out",
        tmp_path / "out",
        crate,
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = json.loads((tmp_path / "out" / "build-manifest.json").read_text())
    assert_valid("build-manifest", written)
    assert written["platform"] == "centos-7"
    (artifact,) = written["artifacts"]
    assert "centos-7" in artifact["loads_on"]["ok"]
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "### glibc-build: loads on (built for centos-7)" in text
    assert "| liblo.so | " in text and "centos-7" in text.split("| liblo.so |")[1]
    without = run_tool(
        "--glibc",
        "centos-7",
        "--out",
        tmp_path / "out",
        crate,
        env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_ACTIONS": ""},
    )
    assert without.returncode == 0 and summary.read_text() == text
    unwritable = run_tool(
        "--glibc",
        "centos-7",
        "--out",
        tmp_path / "out",
        crate,
        env={"GITHUB_STEP_SUMMARY": str(tmp_path), "GITHUB_ACTIONS": "true"},
    )
    assert unwritable.returncode == 0, unwritable.stderr[-3000:]
    assert "cannot append the loads-on table" in unwritable.stderr
