"""Issue 13: a target sysroot of Debian packages, for crates that find a system library with
pkg-config. Real parts: Debian's archive (signed Release, Packages, .debs), cargo and zig, the
alsa-sys crate, bullseye's own loader on a root that has libasound2; and a real HTTP server
on 127.0.0.1 serving a tampered copy of the archive."""

from __future__ import annotations

import functools
import http.server
import json
import re
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from .conftest import IN_CI, assert_clean_failure, have, run_tool

pytestmark = pytest.mark.slow

MIRROR = "http://deb.debian.org/debian"
ALSA_LIB = """#[no_mangle]
pub extern "C" fn plugin_entry() -> i32 {
    // In every libasound.so.2: a non-empty version string is success.
    let version = unsafe { std::ffi::CStr::from_ptr(alsa_sys::snd_asoundlib_version()) };
    if version.to_bytes().is_empty() { 1 } else { 0 }
}
"""


def alsa_crate(folder: Path | None) -> Path:
    """The alsa plugin in `folder`, or at its fixed place in the cache (see
    test_real_crates.py: a fixed path lets a warm run reuse the shared target folder)."""
    from .test_real_crates import write_crate

    return write_crate(folder, "alsa_plugin", 'alsa-sys = "0.3"', ALSA_LIB)


@pytest.fixture(scope="module")
def alsa_build() -> dict:
    from orchestrator.paths import cache_dir

    crate = alsa_crate(None)
    proc = run_tool(
        "--glibc",
        "2.17",
        "--system-package",
        "libasound2-dev",
        "--json",
        crate,
        env={
            "CARGO_TARGET_DIR": str(cache_dir("test-real-crates", "x86_64-unknown-linux-gnu-2.17"))
        },
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return {"crate": crate, "summary": json.loads(proc.stdout)}


def readelf(lib: Path, *flags: str) -> str:
    return subprocess.run(
        ["readelf", *flags, "--wide", str(lib)], capture_output=True, text=True, check=True
    ).stdout


def test_an_alsa_plugin_needs_libasound_by_soname_and_glibc_2_17(alsa_build):
    (artifact,) = map(Path, alsa_build["summary"]["artifacts"])
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", readelf(artifact, "-d"))
    assert "libasound.so.2" in needed
    assert not any("/" in name for name in needed)  # by soname, no sysroot path
    glibc = [
        tuple(map(int, v.split(".")))
        for v in re.findall(r"Name: GLIBC_([\d.]+)", readelf(artifact, "-V"))
    ]
    assert glibc and max(glibc) <= (2, 17)
    assert "sysroots" not in readelf(artifact, "-d")  # no RUNPATH into the cache


def test_the_manifest_records_the_suite_and_each_package(alsa_build):
    manifest = json.loads(Path(alsa_build["summary"]["manifest"]).read_text())
    system = manifest["system_packages"]
    assert system["suite"] == "bullseye"
    names = {p["name"]: p for p in system["packages"]}
    assert {"libasound2", "libasound2-dev"} <= set(names)
    assert not {"libc6", "libc6-dev"} & set(names)  # zig provides glibc
    assert re.fullmatch(r"[0-9a-f]{64}", names["libasound2"]["sha256"])
    assert names["libasound2"]["version"].startswith("1.2.4")


def test_the_alsa_plugin_loads_on_bullseye_with_libasound2(alsa_build):
    from orchestrator.rootfs import debootstrap_root

    if not have("debootstrap"):
        if IN_CI:
            pytest.fail("CI=true and debootstrap is missing")
        pytest.skip("debootstrap is not installed")
    root = debootstrap_root("bullseye", arch="amd64", variant="minbase", include=("libasound2",))
    (artifact,) = alsa_build["summary"]["artifacts"]
    proc = run_tool("verify-load", "--rootfs", root, "--call", "plugin_entry", artifact)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- bad input ------------------------------------------------------------------------------


def made(folder: Path) -> list[Path]:
    """What a failed run left in a cache folder, its lock files aside."""
    return [p for p in folder.iterdir() if not p.name.endswith(".lock")]


def test_an_unknown_package_is_exit_2(tmp_path):
    proc = run_tool(
        "--system-package",
        "libno-such-thing-dev",
        alsa_crate(tmp_path),
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert_clean_failure(proc, 2, "libno-such-thing-dev")
    assert not made(tmp_path / "cache" / "sysroots")


def test_an_unknown_suite_is_exit_2(tmp_path):
    proc = run_tool(
        "--system-package",
        "libasound2-dev",
        "--system-suite",
        "no-such-suite",
        alsa_crate(tmp_path),
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert_clean_failure(proc, 2, "no-such-suite")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_mirror_that_does_not_answer_is_exit_6(tmp_path):
    proc = run_tool(
        "--system-package",
        "libasound2-dev",
        alsa_crate(tmp_path),
        env={
            "GLIBC_BUILD_CACHE": str(tmp_path / "cache"),
            "GLIBC_BUILD_DEBIAN_MIRROR": f"http://127.0.0.1:{_closed_port()}",
        },
    )
    assert_clean_failure(proc, 6, "does not answer")


@pytest.fixture
def tampered_mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 with bullseye's real Release and Release.gpg; the test
    changes what it serves."""
    dists = tmp_path / "mirror" / "dists" / "bullseye"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    for name in ("Release", "Release.gpg"):
        with urllib.request.urlopen(f"{MIRROR}/dists/bullseye/{name}", timeout=60) as response:
            (dists / name).write_bytes(response.read())
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror")
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"dists": dists, "url": f"http://127.0.0.1:{server.server_address[1]}"}
    finally:
        server.shutdown()
        server.server_close()


def test_a_release_that_does_not_match_its_signature_is_exit_4(tmp_path, tampered_mirror):
    release = tampered_mirror["dists"] / "Release"
    release.write_bytes(release.read_bytes().replace(b"Debian", b"Debiam", 1))
    proc = run_tool(
        "--system-package",
        "libasound2-dev",
        alsa_crate(tmp_path),
        env={
            "GLIBC_BUILD_CACHE": str(tmp_path / "cache"),
            "GLIBC_BUILD_DEBIAN_MIRROR": tampered_mirror["url"],
        },
    )
    assert_clean_failure(proc, 4, "Release")


def test_an_index_that_does_not_match_its_release_hash_is_exit_4(tmp_path, tampered_mirror):
    packages = tampered_mirror["dists"] / "main" / "binary-amd64" / "Packages.xz"
    packages.write_bytes(b"not the index Release vouches for")
    cache = tmp_path / "cache"
    proc = run_tool(
        "--system-package",
        "libasound2-dev",
        alsa_crate(tmp_path),
        env={"GLIBC_BUILD_CACHE": str(cache), "GLIBC_BUILD_DEBIAN_MIRROR": tampered_mirror["url"]},
    )
    assert_clean_failure(proc, 4, "sha256")
    assert not list((cache / "debian" / "index").glob("*"))
    assert not made(cache / "sysroots")


def test_without_the_system_package_the_error_names_it(tmp_path):
    """The build script's pkg-config finds nothing (zig hides the machine's libraries): one
    line above cargo's says which --system-package to add."""
    from orchestrator.paths import cache_dir

    proc = run_tool(
        "--glibc",
        "2.17",
        alsa_crate(tmp_path),
        env={"CARGO_TARGET_DIR": str(cache_dir("test-real-crates", "no-sysroot"))},
    )
    assert_clean_failure(proc, 3, "--system-package libasound2-dev")
    ours = [
        line
        for line in proc.stderr.splitlines()
        if line.startswith("error:") and "alsa-sys needs the system library alsa" in line
    ]
    assert len(ours) == 1, proc.stderr
    assert ours[0].endswith("error: failed to run custom build command for `alsa-sys v0.3.1`"), (
        ours[0]
    )  # then cargo's own last error, not its "waiting for other jobs" warning
