"""Give build.py its own pinned environment on first use, then run inside it.

Standard library only: this runs before any dependency is importable. The venv lives in
`.venv/` beside build.py; a stamp file holds the hash of requirements.txt so that a changed
pin re-installs, and an unchanged one costs a single stat and read. What only the install
needs (shutil, subprocess) is imported there: every run of build.py imports this module.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from .paths import REPO as ROOT  # standard library only, like this module

VENV = Path(os.environ.get("GLIBC_BUILD_VENV", ROOT / ".venv"))
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"
MIN_PYTHON = (3, 10)  # click 8.5 and pyelftools 0.33 declare Requires-Python >=3.10
# Set inside the re-executed process, so that a broken venv can never loop.
REEXEC_MARK = "GLIBC_BUILD_IN_VENV"


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(3)


def _wanted_stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _inside_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _install() -> None:
    """Make the venv beside the old one and swap it in only once pip has succeeded, so a
    failed install (offline, say) leaves a working venv as it was and nothing half-made."""
    import shutil
    import subprocess
    import time

    if VENV.exists() and not (VENV / "pyvenv.cfg").is_file():
        _fail(
            f"{VENV} exists and is not a Python venv; remove it or point GLIBC_BUILD_VENV "
            "at another folder"
        )
    sys.stderr.write(f"setting up {VENV} (first use: installing pinned dependencies)...\n")
    start = time.monotonic()
    fresh = VENV.with_name(VENV.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(fresh)], check=True, stdout=subprocess.DEVNULL
        )
        # pip's own lines ("Collecting ...") are the progress of the minute this can take.
        subprocess.run(
            [
                str(fresh / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--progress-bar",
                "off",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
            stdout=sys.stderr,
        )
        (fresh / STAMP.name).write_text(_wanted_stamp())
    except (OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        _fail(
            f"could not set up {VENV} ({exc}); check that python3-venv and pip work "
            "and that the Python package index is reachable, then run again"
        )
    shutil.rmtree(VENV, ignore_errors=True)
    fresh.rename(VENV)
    sys.stderr.write(f"{VENV} is ready ({time.monotonic() - start:.1f} s)\n")


def ensure_environment() -> None:
    """Re-execute build.py inside `.venv/`, creating or refreshing it when needed.

    GLIBC_BUILD_NO_VENV=1 skips this and uses the running interpreter as it is (for packagers
    and for environments that already hold the dependencies).
    """
    if sys.version_info < MIN_PYTHON:
        _fail(
            f"Python {'.'.join(map(str, MIN_PYTHON))} or newer is needed; this is "
            f"{sys.version.split()[0]}"
        )
    if os.environ.get("GLIBC_BUILD_NO_VENV") == "1":
        return
    fresh = STAMP.is_file() and STAMP.read_text().strip() == _wanted_stamp()
    if _inside_venv() and fresh:
        return
    if os.environ.get(REEXEC_MARK) == "1" and fresh:
        return
    if not fresh:
        import fcntl  # POSIX only, like the rest of the tool

        VENV.parent.mkdir(parents=True, exist_ok=True)
        with open(VENV.parent / ".venv.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second build.py waits for the first install
            if not (STAMP.is_file() and STAMP.read_text().strip() == _wanted_stamp()):
                _install()
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    python = str(_venv_python())
    os.execve(python, [python, *sys.argv], env)
