"""What the Rust toolchain says about itself: the one place that runs `rustc` for facts.

cargo runs the `rustc` that rustup picks for the crate's folder (a `rust-toolchain.toml` there
counts), so every question is asked from that folder. See rustup's "Overrides"
(https://rust-lang.github.io/rustup/overrides.html).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from .errors import ToolchainError


def _rustc(crate_dir: Path, *args: str) -> str:
    """`rustc ARGS` as cargo would run it for the crate; raises OSError or CalledProcessError."""
    return subprocess.run(
        ["rustc", *args], capture_output=True, text=True, check=True, cwd=crate_dir
    ).stdout.strip()


@functools.cache
def sysroot(crate_dir: Path) -> str | None:
    """The toolchain folder (`rustc --print sysroot`), or None when rustc cannot say."""
    try:
        return _rustc(crate_dir, "--print", "sysroot") or None
    except (OSError, subprocess.CalledProcessError):
        return None


@functools.cache
def version_verbose(crate_dir: Path) -> str:
    """`rustc -vV`: release, commit and host, the toolchain's identity for a manifest."""
    try:
        return _rustc(crate_dir, "-vV")
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"unknown ({exc})"


def rust_with_cargo(crate_dir: Path) -> Path:
    """The toolchain folder, which must hold cargo (the docker backend mounts it)."""
    found = sysroot(crate_dir)
    if not found or not (Path(found) / "bin" / "cargo").is_file():
        raise ToolchainError(
            "no Rust toolchain with cargo found on this machine (`rustc --print "
            "sysroot`); install one with rustup, then run again"
        )
    return Path(found)
