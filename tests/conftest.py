"""Shared test helpers: run build.py as a user would, and find the real tools it needs.

Tests talk to the real thing (cargo, zig, gpg, Docker, debootstrap roots); nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run_tool(
    *args: str | os.PathLike, cwd: Path | None = None, env: dict | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run `python build.py ARGS` as a separate process, the way a user does."""
    full_env = dict(os.environ, GLIBC_BUILD_NO_VENV="1", NO_COLOR="1")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / "build.py"), *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def zig_shared_library(
    source: str, out: Path, *extra: str, target: str = "x86_64-linux-gnu.2.17"
) -> Path:
    """`out`, a shared library built by zig's cc from C `source` (written beside it as .c) for
    zig's `target` (with its glibc stubs), -O1, with `extra` compiler flags."""
    from orchestrator.zig import zig_binary

    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(
        [str(zig_binary()), "cc", "-target", target, "-shared", "-fPIC", "-O1", "-o", str(out)]
        + [str(src), *extra],
        check=True,
    )
    return out


def library_using_libasound(folder: Path, *sound_flags: str) -> Path:
    """folder/user.so, built by gcc, linked against a small libasound.so.2 of our own (made with
    `sound_flags`, e.g. a version script) for its one function, snd_open."""
    (folder / "sound.c").write_text("int snd_open(void) { return 1; }\n")
    (folder / "user.c").write_text("int snd_open(void);\nint use(void) { return snd_open(); }\n")
    sound = ["-o", "libasound.so.2", "-Wl,-soname,libasound.so.2", *sound_flags, "sound.c"]
    for argv in (sound, ["-o", "user.so", "user.c", "./libasound.so.2"]):
        subprocess.run(
            ["gcc", "-shared", "-fPIC", *argv],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=120,
        )
    return folder / "user.so"


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    """A bad input: the documented exit code, one `error:` line naming the culprit, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "error:" in proc.stderr or "Error:" in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


@pytest.fixture(scope="session")
def docker_client():
    """The real Docker engine. In CI a missing engine fails the run instead of skipping."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"CI=true and no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    return client


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def bullseye_root() -> Path:
    """The cached debootstrap root of Debian bullseye (glibc 2.31), amd64 minbase.

    Made once by orchestrator.rootfs (about 30 s; needs root and debootstrap), then reused by
    every session. Tests must not modify it. In CI a missing debootstrap fails the run.
    """
    from orchestrator.rootfs import debootstrap_root

    if not have("debootstrap") or os.geteuid() != 0:
        reason = "debootstrap is not installed" if not have("debootstrap") else "not root"
        if IN_CI:
            pytest.fail(f"CI=true and no bullseye root can be made: {reason}")
        pytest.skip(f"no bullseye root: {reason}")
    return debootstrap_root("bullseye", arch="amd64", variant="minbase")
