"""`--split-debug` (issue 16): a release ships a stripped library and its `.debug` file, tied by
build-id and .gnu_debuglink (gdb's "Separate Debug Files"), both listed in the manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from orchestrator import splitdebug
from orchestrator.errors import ToolchainError

from .conftest import REPO, run_tool

PLUGIN = REPO / "examples" / "plugin"
LIB = "libexample_plugin.so"


def sections(path: Path) -> dict[str, bytes]:
    with path.open("rb") as stream:
        elf = ELFFile(stream)
        return {
            s.name: (s.data() if s["sh_type"] != "SHT_NOBITS" else b"") for s in elf.iter_sections()
        }


@pytest.mark.unit
@pytest.mark.parametrize(
    ("profile", "variable"),
    [
        ("release", "CARGO_PROFILE_RELEASE_DEBUG"),
        ("dev", "CARGO_PROFILE_DEV_DEBUG"),
        ("debug", "CARGO_PROFILE_DEV_DEBUG"),
        ("my-ship", "CARGO_PROFILE_MY_SHIP_DEBUG"),
    ],
)
def test_the_profile_keeps_debug_info(profile, variable):
    assert splitdebug.profile_env(profile) == {variable: "true"}


def test_a_missing_objcopy_says_how_to_install_it(tmp_path):
    with pytest.raises(ToolchainError) as caught:
        splitdebug.objcopy({"PATH": str(tmp_path)})
    assert caught.value.exit_code == 3 and "binutils" in caught.value.message


def test_a_library_without_build_id_is_refused(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    (tmp_path / "a.c").write_text("int f(int x) { return x * 2; }\n")
    lib = tmp_path / "liba.so"
    subprocess.run(
        [
            "gcc",
            "-g",
            "-shared",
            "-fPIC",
            "-Wl,--build-id=none",
            "-o",
            str(lib),
            str(tmp_path / "a.c"),
        ],
        check=True,
    )
    with pytest.raises(ToolchainError, match="no GNU build-id"):
        splitdebug.split(lib, tmp_path / "out")
    assert not (tmp_path / "out" / "liba.so.debug").exists()


@pytest.mark.slow
def test_split_debug_ships_a_stripped_library_and_its_debug_file(tmp_path, bullseye_root):
    out = tmp_path / "out"
    proc = run_tool("--glibc", "2.17", "--split-debug", "--json", "--out", out, PLUGIN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "build-manifest.json",
        LIB,
        LIB + ".debug",
        "sbom.cdx.json",
    ]
    lib, debug = out / LIB, out / (LIB + ".debug")
    shipped, kept = sections(lib), sections(debug)
    assert ".debug_info" not in shipped and ".debug_info" in kept
    # .gnu_debuglink: the file name, NUL, padding to 4, then the CRC-32 of the .debug file.
    link = shipped[".gnu_debuglink"]
    name = link.split(b"\0", 1)[0].decode()
    assert name == debug.name
    assert int.from_bytes(link[-4:], "little") == zlib.crc32(debug.read_bytes())
    assert splitdebug.build_id(lib) is not None
    assert splitdebug.build_id(lib) == splitdebug.build_id(debug)
    written = json.loads((out / "build-manifest.json").read_text())
    assert LIB in written["files"] and debug.name in written["files"]
    assert os.path.getsize(lib) < os.path.getsize(debug)
    # The shipped (stripped) library still passes the check and loads under glibc 2.31.
    checked = run_tool("check", "--glibc", "2.17", lib)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    loaded = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


def test_the_crate_setting_turns_it_on_and_the_flag_wins(tmp_path):
    from orchestrator import build, cargo

    crate_dir = tmp_path / "c"
    (crate_dir / "src").mkdir(parents=True)
    (crate_dir / "src" / "lib.rs").write_text("")
    (crate_dir / "Cargo.toml").write_text(
        '[package]\nname = "c"\nversion = "0.1.0"\nedition = "2021"\n'
        '[lib]\ncrate-type = ["cdylib"]\n'
        "[package.metadata.glibc-build]\nsplit-debug = true\n"
    )
    crate = cargo.locate(crate_dir, None)
    request = build.resolve(build.BuildOptions(crate_dir=crate_dir), crate)
    assert request.split_debug
    ctx = build.context(request, crate)
    assert "link-arg=-Wl,--build-id" in ctx.rustflags
    assert ctx.env["CARGO_PROFILE_RELEASE_DEBUG"] == "true"
    off = build.resolve(build.BuildOptions(crate_dir=crate_dir, split_debug=False), crate)
    assert not off.split_debug
    assert "link-arg=-Wl,--build-id" not in build.context(off, crate).rustflags
