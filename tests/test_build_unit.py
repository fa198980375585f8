"""The build's pure parts: zigwrap's rules (host and in-image), the rustflags hand-over, the
docker backend's environment, and the manifest written from a backend's BuildResult."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from orchestrator import cargo, manifest, zigwrap
from orchestrator.backends import GC_SECTIONS, BuildContext, BuildResult, Toolchain
from orchestrator.backends.docker import (
    CARGO_HOME,
    SYSTEM_PATH,
    container_env,
    container_remaps,
    container_rustflags,
    overridden,
)
from orchestrator.backends.zig import build_env
from orchestrator.glibc import GlibcVersion
from orchestrator.recipe import Recipe
from orchestrator.targets import lookup

X86 = "x86_64-linux-gnu.2.17"
ARM = "aarch64-linux-gnu.2.17"
TRIPLE = "x86_64-unknown-linux-gnu"

# One example per rule of zigwrap.RULES: (argument, zig target, what zig gets; None = dropped).
RULE_EXAMPLES = [
    ("-Wl,--no-undefined-version", X86, None),
    ("-fuse-ld=lld", X86, None),
    ("--target=x86_64-unknown-linux-gnu", X86, None),
    ("-B/opt/rust/lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld", X86, None),
    ("-lgcc_s", X86, "-lunwind"),
    ("-march=armv8-a+simd", ARM, "-march=generic+v8a+neon"),
]
# Arguments no rule touches.
KEPT = [
    ("-march=armv8-a+simd", X86),  # the -march rule is aarch64's only
    ("-B/opt/rust/bin", X86),  # a -B folder that is not rust-lld's
    ("-lgcc", X86),
    ("-Wl,--gc-sections", X86),
    ("-fuse-ld=gold", X86),
    ("", X86),
]


@pytest.mark.unit
@pytest.mark.parametrize(("arg", "zig_target", "expected"), RULE_EXAMPLES)
def test_each_zigwrap_rule_rewrites_its_argument(arg, zig_target, expected):
    assert zigwrap.rewrite(arg, zig_target) == expected


@pytest.mark.unit
def test_every_zigwrap_rule_has_an_example():
    """A rule added to the table without an example above fails here."""
    used = {
        next(rule for rule in zigwrap.RULES if zigwrap.matches(rule, arg, target))
        for arg, target, _ in RULE_EXAMPLES
    }
    assert used == set(zigwrap.RULES)


@pytest.mark.unit
@pytest.mark.parametrize(("arg", "zig_target"), KEPT)
def test_arguments_no_rule_matches_are_kept(arg, zig_target):
    assert zigwrap.rewrite(arg, zig_target) == arg


@pytest.mark.unit
def test_rust_lld_folder_is_dropped_with_any_trailing_slashes():
    for arg in ("-B/x/gcc-ld", "-B/x/gcc-ld/", "-B/x/gcc-ld//"):
        assert zigwrap.rewrite(arg, X86) is None


@pytest.mark.unit
def test_zigwrap_command_adds_the_target_for_cc_and_passes_ar_through():
    assert zigwrap.command("cc", X86, "/z", ["-lgcc_s", "-o", "x.so"]) == [
        "/z",
        "cc",
        "-target",
        X86,
        "-lunwind",
        "-o",
        "x.so",
    ]
    assert zigwrap.command("ar", X86, "/z", ["crs", "--target=x"]) == [
        "/z",
        "ar",
        "crs",
        "--target=x",
    ]
    assert zigwrap.is_link(["-shared", "-o", "x.so"])
    assert not zigwrap.is_link(["-c", "x.c"])


# --- rustflags hand-over (cargo's precedence, from parsed config files) -------------------


def _build(*flags: str) -> dict:
    return {"build": {"rustflags": list(flags)}}


@pytest.mark.unit
def test_rustflags_env_wins_and_everything_is_encoded():
    hand = cargo.hand_over(
        [_build("--cfg", "ignored")], TRIPLE, {"RUSTFLAGS": "-C a  -C b"}, ["-C", "ours"]
    )
    assert hand.flags == ("-C", "a", "-C", "b", "-C", "ours")
    assert hand.env == {"CARGO_ENCODED_RUSTFLAGS": "-C\x1fa\x1f-C\x1fb\x1f-C\x1fours"}
    assert hand.args == []


@pytest.mark.unit
def test_encoded_rustflags_keep_spaces_inside_a_flag():
    hand = cargo.hand_over(
        [], TRIPLE, {"CARGO_ENCODED_RUSTFLAGS": '--cfg\x1ffeature="a b"'}, ["-X"]
    )
    assert hand.flags == ("--cfg", 'feature="a b"', "-X")


@pytest.mark.unit
def test_build_rustflags_of_every_config_file_are_joined_lowest_precedence_first():
    configs = [_build("--cfg", "far"), {"build": {"rustflags": "--cfg near"}}]
    hand = cargo.hand_over(configs, TRIPLE, {"CARGO_BUILD_RUSTFLAGS": "--cfg env"}, ["-X"])
    assert hand.flags == ("--cfg", "far", "--cfg", "near", "--cfg", "env", "-X")
    assert hand.env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f") == list(hand.flags)
    assert hand.args == []


@pytest.mark.unit
def test_target_flags_win_over_build_flags_and_cargo_joins_ours():
    configs = [_build("--cfg", "build"), {"target": {TRIPLE: {"rustflags": ["--cfg", "tgt"]}}}]
    hand = cargo.hand_over(configs, TRIPLE, {}, ["-X"])
    assert hand.flags == ("--cfg", "tgt", "-X")
    assert hand.env == {}
    assert hand.args == ["--config", f'target.{TRIPLE}.rustflags=["-X"]']


@pytest.mark.unit
def test_cfg_tables_are_left_to_cargo():
    """A target.'cfg(...)' table is not ours to evaluate: our flags go in by --config, which
    cargo joins with it."""
    configs = [{"target": {"cfg(unix)": {"rustflags": ["--cfg", "c"]}}}, _build("--cfg", "b")]
    hand = cargo.hand_over(configs, TRIPLE, {}, ["-X"])
    assert hand.args == ["--config", f'target.{TRIPLE}.rustflags=["-X"]']
    assert hand.env == {}


@pytest.mark.unit
def test_build_args_use_the_manifest_path_given():
    args = cargo.build_args(
        PurePosixPath("/build/member/Cargo.toml"), ("a", "b"), TRIPLE, "debug", "x,y"
    )
    assert args[:3] == ["build", "--manifest-path", "/build/member/Cargo.toml"]
    assert args[args.index("--profile") + 1] == "dev"
    assert args[-6:] == ["--package", "a", "--package", "b", "--features", "x,y"]


# --- the docker backend's environment ------------------------------------------------------


def _recipe(env: dict[str, str], toolchain: dict[str, str]) -> Recipe:
    return Recipe(
        name="r",
        description="d",
        path=Path("/recipes/r.toml"),
        glibc=GlibcVersion(2, 17),
        template="t.j2",
        template_path=Path("/t.j2"),
        base_image="base",
        debootstrap=None,
        env=env,
        toolchain=toolchain,
        packages=[],
        sources=[],
        raw=b"",
        template_text="",
    )


HOST_RUST = {"rust": "host", "rust_mount": "/opt/rust"}
TARGET_DIR = PurePosixPath("/build/target/glibc-build-r")


GLIBC_2_17 = GlibcVersion(2, 17)


def _env(recipe: Recipe, glibc: GlibcVersion = GLIBC_2_17) -> dict[str, str]:
    return container_env(
        recipe,
        target=lookup(TRIPLE),
        glibc=glibc,
        target_dir=TARGET_DIR,
        source_date_epoch="1700000000",
    )


@pytest.mark.unit
def test_container_env_keeps_the_image_and_sets_what_the_backend_owns():
    env = _env(_recipe({"CC": "gcc", "RUSTFLAGS": "-C linker=clang"}, HOST_RUST))
    assert env["CC"] == "gcc"  # the image's compiler: the recipe's
    assert "RUSTFLAGS" not in env  # handed over with the user's instead
    assert env["PATH"] == f"/opt/rust/bin:{SYSTEM_PATH}"
    assert env["CARGO_HOME"] == CARGO_HOME
    assert env["CARGO_TARGET_DIR"] == str(TARGET_DIR)
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert not any(key.startswith("ZIG_") for key in env)


@pytest.mark.unit
def test_container_env_owns_cargo_home_and_does_not_repeat_the_rust_path():
    recipe = _recipe({"CARGO_HOME": "/elsewhere", "PATH": "/opt/rust/bin:/bin"}, HOST_RUST)
    env = _env(recipe)
    assert env["CARGO_HOME"] == CARGO_HOME  # the folder the backend mounts
    assert env["PATH"] == "/opt/rust/bin:/bin"
    assert overridden(recipe, env) == ["CARGO_HOME"]  # named in a warning


@pytest.mark.unit
def test_container_env_of_a_zig_recipe_links_for_the_target_glibc():
    recipe = _recipe({"ZIG_TARGET_GLIBC": "2.17"}, {**HOST_RUST, "zig": "0.17.1"})
    env = _env(recipe, GlibcVersion(2, 28))
    assert env["ZIG_TARGET_GLIBC"] == "2.28"
    assert env["CC_x86_64_unknown_linux_gnu"] == "zig-cc"
    assert env["CXX_x86_64_unknown_linux_gnu"] == "zig-c++"
    assert env["AR_x86_64_unknown_linux_gnu"] == "zig-ar"
    assert env["RANLIB_x86_64_unknown_linux_gnu"] == "zig-ranlib"
    assert env["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"] == "zig-cc"
    assert env["CXXSTDLIB_x86_64_unknown_linux_gnu"] == "c++"
    assert env[zigwrap.RUST_TARGET_VAR] == TRIPLE  # build scripts link for the image
    assert overridden(recipe, env) == ["ZIG_TARGET_GLIBC"]


@pytest.mark.unit
def test_own_rust_recipes_keep_the_image_path():
    env = _env(_recipe({}, {"rust": "1.95.0"}))
    assert "PATH" not in env  # the image's ENV PATH applies


@pytest.mark.unit
def test_container_flags_and_remaps():
    recipe = _recipe({"RUSTFLAGS": "-C linker=clang"}, HOST_RUST)
    assert container_rustflags(recipe, GC_SECTIONS) == ["-C", "linker=clang", *GC_SECTIONS]
    assert container_remaps(recipe, TARGET_DIR) == (
        ("/opt/rust", "/rustc/sysroot"),
        ("/build", "/build"),
        (str(TARGET_DIR), "/build-target"),
    )
    assert container_remaps(_recipe({}, {}), TARGET_DIR)[0] == ("/build", "/build")


@pytest.mark.unit
def test_zig_backend_env_keeps_a_users_cxxstdlib():
    crate = _crate()
    ctx = BuildContext(
        crate=crate,
        target=lookup(TRIPLE),
        glibc=GlibcVersion(2, 17),
        profile="release",
        env={"CARGO_INCREMENTAL": "0"},
    )
    wrappers = {mode: Path(f"/w/zig-{mode}") for mode in zigwrap.MODES}
    ours = build_env(ctx, wrappers, {})
    assert ours["CXXSTDLIB_x86_64_unknown_linux_gnu"] == "c++"
    assert ours["CARGO_INCREMENTAL"] == "0" and ours["CC_x86_64_unknown_linux_gnu"] == "/w/zig-cc"
    user = build_env(ctx, wrappers, {"CXXSTDLIB_x86_64_unknown_linux_gnu": "stdc++"})
    assert "CXXSTDLIB_x86_64_unknown_linux_gnu" not in user


# --- the manifest, from a BuildResult as it is --------------------------------------------


def _crate() -> cargo.Crate:
    root = Path("/nonexistent/crate")
    return cargo.Crate(
        root=root,
        manifest=root / "Cargo.toml",
        workspace_root=root,
        target_dir=root / "target",
        packages=("plug",),
        version="1.2.3",
        settings={},
        source_root=root,
    )


def _result(toolchain: Toolchain) -> BuildResult:
    return BuildResult(
        artifacts=(Path("/nonexistent/libplug.so"),),
        rustflags=("-C", "linker=clang", *GC_SECTIONS),
        path_remaps=(("/build", "/build"),),
        env={"SOURCE_DATE_EPOCH": "1700000000", "CFLAGS_x": "-ffile-prefix-map=/a=/b"},
        toolchain=toolchain,
    )


@pytest.mark.unit
def test_manifest_records_the_result_as_it_is():
    toolchain = Toolchain(
        rustc="rustc 1.95.0",
        recipe="centos7",
        recipe_sha256="ab" * 32,
        image="glibc-build/centos7:0123456789abcdef",
    )
    check = {"ok": True, "files": [{"path": "/somewhere/libplug.so", "ok": True}]}
    artifacts = [{"name": "libplug.so", "size": 3, "sha256": "00"}]
    data = manifest.data(
        crate=_crate(),
        target=TRIPLE,
        glibc="2.17",
        backend="docker",
        profile="release",
        result=_result(toolchain),
        artifacts=artifacts,
        check=check,
        loads=None,
    )
    assert data["rustflags"] == ["-C", "linker=clang", *GC_SECTIONS]
    assert data["toolchain"] == {
        "rustc": "rustc 1.95.0",
        "recipe": {
            "name": "centos7",
            "sha256": "ab" * 32,
            "image": "glibc-build/centos7:0123456789abcdef",
        },
    }
    assert data["source_date_epoch"] == "1700000000"
    assert data["check"]["files"] == [{"path": "libplug.so", "ok": True}]
    assert check["files"][0]["path"] == "/somewhere/libplug.so"  # the report is not changed
    assert data["artifacts"] == artifacts and data["cargo_lock_sha256"] is None
    text = manifest.render(data)
    assert "/nonexistent" not in text and "prefix-map" not in text  # no machine paths
    assert json.loads(text)["crate"] == {"name": "plug", "packages": ["plug"], "version": "1.2.3"}


@pytest.mark.unit
def test_manifest_names_zig_for_the_zig_backend():
    assert manifest.toolchain_entry(Toolchain(rustc="r", zig="0.17.1")) == {
        "rustc": "r",
        "zig": "0.17.1",
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    "args, expected",
    [
        (["conftest.c"], ["-o", "a.out"]),  # autoconf's first test
        (["-x", "c", "-"], ["-o", "a.out"]),  # a link from standard input
        (["-o", "conftest", "conftest.c"], []),
        (["-oconftest", "conftest.c"], []),
        (["@args"], []),  # rustc names -o inside its @file
        (["-v"], []),  # nothing to link, nothing written
        (["-print-file-name=libc.so"], []),
    ],
)
def test_a_link_without_output_writes_a_out_where_it_was_called(args, expected):
    assert zigwrap.default_output(args) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    "out, host",
    [
        ("/w/target/release/build/foo-0123/build_script_build-0123", True),
        ("/w/target/release/deps/libserde_derive-0123.so", True),  # a proc-macro
        ("/w/target/x86_64-unknown-linux-gnu/release/deps/libplug.so", False),
        ("/w/target/x86_64-unknown-linux-gnu/debug/build/x/build_script_build", False),
    ],
)
def test_host_artifacts_are_told_apart_by_their_output_path(out, host):
    assert zigwrap.links_for_host(["-shared", "-o", out, "x.o"], TRIPLE) is host
    assert zigwrap.links_for_host([f"-o{out}"], TRIPLE) is host
    assert not zigwrap.links_for_host(["-o", out], "")  # no triple given: always the target


@pytest.mark.unit
def test_without_a_host_compiler_a_host_link_uses_zigs_default_glibc():
    assert zigwrap.host_zig_target(X86) == "x86_64-linux-gnu"
    assert (
        zigwrap.host_zig_target("x86_64-linux-gnu.${ZIG_TARGET_GLIBC:-2.31}") == "x86_64-linux-gnu"
    )


# --- the in-image sh wrapper against zigwrap itself (runs sh: fast, but not a unit) --------


def _fake_zig(tmp_path: Path) -> Path:
    zig = tmp_path / "zig"
    zig.write_text('#!/bin/sh\nprintf \'%s\\n\' "$PWD" "$@"\n')
    zig.chmod(0o755)
    return zig


@pytest.mark.parametrize("zig_target", [X86, ARM])
def test_the_sh_wrapper_does_what_zigwrap_does(tmp_path, zig_target):
    """Every rule's example and the kept arguments, as a link (made absolute, run from /) and
    as a compile (left where it is), through the generated sh and through zigwrap.py."""
    zig = _fake_zig(tmp_path)
    script = tmp_path / "zig-cc"
    script.write_text("\n".join(zigwrap.sh_wrapper("cc", str(zig), zig_target)) + "\n")
    script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.o").write_text("")
    args = [a for a, _, _ in RULE_EXAMPLES] + [a for a, _ in KEPT if a]
    for extra in (["-o", "out.so", "in.o", "-L", "libs", "-Lmore", "missing.o"], ["-c", "in.o"]):
        sh = subprocess.run(
            [str(script), *args, *extra], capture_output=True, text=True, cwd=work, check=True
        ).stdout.splitlines()
        py = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                zigwrap.__file__,
                "cc",
                zig_target,
                str(zig),
                *args,
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=work,
            check=True,
        ).stdout.splitlines()
        assert sh == py
        assert sh[0] == ("/" if "-c" not in extra else str(work))
    assert f"{work}/out.so" in sh_link_lines(script, work, ["-o", "out.so"])


def test_a_link_without_output_lands_where_it_was_called_in_sh_and_python(tmp_path):
    """autoconf's `cc conftest.c`: never `/a.out` (the link itself runs from /)."""
    zig = _fake_zig(tmp_path)
    script = tmp_path / "zig-cc"
    script.write_text("\n".join(zigwrap.sh_wrapper("cc", str(zig), X86)) + "\n")
    script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "conftest.c").write_text("")
    for runner in (
        [str(script)],
        [sys.executable, "-I", "-S", zigwrap.__file__, "cc", X86, str(zig)],
    ):
        for args, expected in ((["conftest.c"], ["-o", f"{work}/a.out"]), (["-v"], [])):
            lines = subprocess.run(
                [*runner, *args], capture_output=True, text=True, cwd=work, check=True
            ).stdout.splitlines()
            assert lines[0] == "/"
            assert lines[-2:] == expected or (not expected and "-o" not in lines)


def test_zigwrap_links_a_host_artifact_with_the_host_compiler(tmp_path):
    """With the triple set, a build script's link goes to ZIGWRAP_HOST_CC unchanged."""
    zig = _fake_zig(tmp_path)
    host_cc = tmp_path / "host-cc"
    host_cc.write_text('#!/bin/sh\necho host "$@"\n')
    host_cc.chmod(0o755)
    env = {zigwrap.RUST_TARGET_VAR: TRIPLE, "ZIGWRAP_HOST_CC": str(host_cc)}
    run = [sys.executable, "-I", "-S", zigwrap.__file__, "cc", X86, str(zig)]
    build_script = "target/release/build/x/build_script_build"
    out = subprocess.run(
        [*run, "-fuse-ld=lld", "-o", build_script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert out.split() == ["host", "-fuse-ld=lld", "-o", build_script]
    plugin = f"target/{TRIPLE}/release/deps/libplug.so"
    out = subprocess.run(
        [*run, "-fuse-ld=lld", "-o", plugin],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.splitlines()
    assert out[:4] == ["/", "cc", "-target", X86]


def test_a_host_link_without_host_compiler_is_the_same_in_sh_and_python(tmp_path):
    """In an image with no compiler (the zig recipes), a build script links with zig for its
    default glibc; a target artifact keeps the target glibc. sh and zigwrap.py agree."""
    zig = _fake_zig(tmp_path)
    script = tmp_path / "zig-cc"
    script.write_text("\n".join(zigwrap.sh_wrapper("cc", str(zig), X86)) + "\n")
    script.chmod(0o755)
    env = {zigwrap.RUST_TARGET_VAR: TRIPLE, "PATH": "/usr/bin:/bin"}
    (tmp_path / "args").write_text("-shared\n-o\n/w/target/release/deps/libpm.so\n")
    for out, expected in (
        (["-o", "/w/target/release/build/x/build_script_build"], "x86_64-linux-gnu"),
        (["-o", f"/w/target/{TRIPLE}/release/deps/libplug.so"], X86),
        ([f"@{tmp_path}/args"], "x86_64-linux-gnu"),
    ):
        runs = [
            subprocess.run(
                runner + out, capture_output=True, text=True, env=env, cwd=tmp_path, check=True
            ).stdout.splitlines()
            for runner in (
                [str(script)],
                [sys.executable, "-I", "-S", zigwrap.__file__, "cc", X86, str(zig)],
            )
        ]
        assert runs[0][:4] == runs[1][:4] == ["/", "cc", "-target", expected], out


def sh_link_lines(script: Path, cwd: Path, args: list[str]) -> list[str]:
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=cwd, check=True
    ).stdout.splitlines()


def test_the_sh_wrapper_rewrites_a_response_file_like_zigwrap(tmp_path):
    zig = _fake_zig(tmp_path)
    script = tmp_path / "zig-cc"
    script.write_text("\n".join(zigwrap.sh_wrapper("cc", str(zig), X86)) + "\n")
    script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.o").write_text("")
    lines = [
        "-shared",
        "-o",
        "out.so",
        "in.o",
        "-lgcc_s",
        "--target=x",
        "-fuse-ld=lld",
        "-B/r/gcc-ld/",
        "with space",
    ]
    results = []
    for runner in (
        [str(script)],
        [sys.executable, "-I", "-S", zigwrap.__file__, "cc", X86, str(zig)],
    ):
        (work / "args").write_text("\n".join(lines) + "\n")
        out = subprocess.run(
            [*runner, "@args"], capture_output=True, text=True, cwd=work, check=True
        ).stdout.splitlines()
        results.append((out, (work / "args").read_text().splitlines()))
    assert results[0] == results[1]
    out, written = results[0]
    assert out[-1] == f"@{work}/args"
    assert written == ["-shared", "-o", f"{work}/out.so", f"{work}/in.o", "-lunwind", "with space"]


# --- known crates: policy data ---------------------------------------------------------------


@pytest.mark.unit
def test_known_crates_name_the_fix_for_each_problem():
    from orchestrator import known_crates

    openssl = known_crates.lookup("openssl_sys")
    assert openssl is not None and openssl.problem == "system-library"
    assert "vendored" in openssl.advice and openssl.system_packages == ("libssl-dev",)
    jemalloc = known_crates.lookup("tikv-jemalloc-sys")
    assert jemalloc is not None and "disable_initial_exec_tls" in jemalloc.advice
    assert {c.name for c in known_crates.with_problem("static-tls")} == {
        "tikv-jemalloc-sys",
        "libmimalloc-sys",
    }
    assert known_crates.lookup("serde") is None


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, needle",
    [
        ('[crates.x]\nproblem = "slow"\nwhen = "a"\nadvice = "b"\n', "problem must be one of"),
        ('[crates.x]\nproblem = "static-tls"\nwhen = "a"\n', "advice must be"),
        (
            '[crates.x]\nproblem = "static-tls"\nwhen = "a"\nadvice = "b"\nfeatures = "f"\n',
            "features must be a list",
        ),
        (
            '[crates.x]\nproblem = "static-tls"\nwhen = "a"\nadvice = "b"\ncolour = 1\n',
            "unknown key 'colour'",
        ),
    ],
)
def test_a_malformed_known_crate_is_refused(text, needle):
    from orchestrator import known_crates
    from orchestrator.errors import BadInput

    with pytest.raises(BadInput, match=needle):
        known_crates.parse(text)


# --- hints for a failed build script ---------------------------------------------------------

ALSA_FAILURE = """error: failed to run custom build command for `alsa-sys v0.3.1`
  --- stderr
  thread 'main' panicked at build.rs:13:18:

  pkg-config exited with status code 1
  > PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 pkg-config --libs --cflags alsa

  The system library `alsa` required by crate `alsa-sys` was not found.
  The file `alsa.pc` needs to be installed and the PKG_CONFIG_PATH environment variable \
must contain its parent directory.
"""


@pytest.mark.unit
def test_a_missing_pc_file_names_the_debian_package():
    from orchestrator.script_hints import hint

    found = hint(ALSA_FAILURE.splitlines())
    assert found is not None and "--system-package libasound2-dev" in found
    assert "alsa-sys" in found
    unknown = hint(ALSA_FAILURE.replace("alsa", "libfoo").splitlines())
    assert unknown is not None and "packages.debian.org/file:libfoo.pc" in unknown


@pytest.mark.unit
def test_openssl_sys_gets_the_known_crates_advice():
    from orchestrator.script_hints import hint

    text = (
        "error: failed to run custom build command for `openssl-sys v0.9.111`\n"
        "  Could not find openssl via pkg-config:\n"
        "  The system library `openssl` required by crate `openssl-sys` was not found.\n"
    )
    found = hint(text.splitlines())
    assert found is not None and "vendored" in found and "libssl-dev" in found


@pytest.mark.unit
def test_configure_failure_gives_config_logs_real_error(tmp_path):
    from orchestrator.script_hints import hint

    (tmp_path / "config.log").write_text(
        "configure:3001: checking whether the C compiler works\n"
        "configure:3023: cc    conftest.c  >&5\n"
        "ld.lld: error: unable to find library -lfoo\n"
        "configure:3027: $? = 1\n"
    )
    text = (
        f"configure: error: in `{tmp_path}':\n"
        "configure: error: C compiler cannot create executables\n"
    )
    found = hint(text.splitlines())
    assert found == (
        f"configure's first test failed: ld.lld: error: unable to find library "
        f"-lfoo (see {tmp_path}/config.log)"
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    "line",
    [
        "src/x.c:1:10: fatal error: 'libudev.h' file not found",  # clang (zig)
        "src/x.c:1:10: fatal error: libudev.h: No such file or directory",  # gcc
    ],
)
def test_a_missing_header_is_named(line):
    from orchestrator.script_hints import hint

    found = hint(["error: failed to run custom build command for `libudev-sys v0.1.4`", line])
    assert found is not None and "libudev.h" in found and "libudev-sys" in found


@pytest.mark.unit
def test_an_ordinary_failure_gets_no_hint():
    from orchestrator.script_hints import hint

    assert hint(["error[E0425]: cannot find value `x` in this scope"]) is None


@pytest.mark.unit
def test_the_hint_leads_the_error_above_cargos_lines():
    from orchestrator.errors import ToolchainError

    output = cargo.CargoOutput(["cargo", "build"], "cargo")
    for line in ALSA_FAILURE.splitlines():
        output.scanned.append(line)
        output.tail.append(line)
    with pytest.raises(ToolchainError) as caught:
        output.finish(101)
    assert str(caught.value).startswith("alsa-sys needs the system library alsa")
    assert "(cargo failed, exit 101); cargo's last lines:" in str(caught.value)


# --- CMake: a toolchain file for zig, and the environment the cmake crate reads ---------------


@pytest.mark.unit
def test_the_cmake_toolchain_file_names_zig_and_keeps_the_machine_out():
    from orchestrator.backends.cmake import toolchain_file_text

    wrappers = {mode: Path(f"/w/zig-{mode}") for mode in zigwrap.MODES}
    text = toolchain_file_text(lookup(TRIPLE), wrappers, Path("/sysroot"))
    assert 'set(CMAKE_C_COMPILER "/w/zig-cc")' in text
    assert 'set(CMAKE_CXX_COMPILER "/w/zig-c++")' in text
    assert 'set(CMAKE_FIND_ROOT_PATH "/sysroot")' in text
    for kind in ("LIBRARY", "INCLUDE", "PACKAGE"):
        assert f"set(CMAKE_FIND_ROOT_PATH_MODE_{kind} ONLY)" in text


@pytest.mark.unit
def test_cmake_env_keeps_the_users_choices_and_needs_no_tools():
    from orchestrator.backends.cmake import cmake_env

    target = lookup(TRIPLE)
    ours = cmake_env(target, Path("/t.cmake"), {}, {"PATH": "/usr/bin"})
    assert ours == {"CMAKE_TOOLCHAIN_FILE_x86_64_unknown_linux_gnu": "/t.cmake"}
    user = cmake_env(
        target,
        Path("/t.cmake"),
        {},
        {"CMAKE_TOOLCHAIN_FILE": "/mine.cmake", "CMAKE_GENERATOR": "Unix Makefiles"},
    )
    assert user == {}
