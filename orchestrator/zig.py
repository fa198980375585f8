"""Where zig and its glibc ABI database are: the `ziglang` package from the Python index."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import ToolchainError


@functools.cache
def zig_dir() -> Path:
    """The ziglang package folder (holds `zig` and `lib/`). ZIG_DIR overrides it."""
    override = os.environ.get("GLIBC_BUILD_ZIG_DIR")
    if override:
        path = Path(override)
    else:
        try:
            import ziglang
        except ImportError:
            raise ToolchainError(
                "the ziglang package is not installed; run build.py (it sets up "
                "its own .venv) or `pip install -r requirements.txt`"
            ) from None
        path = Path(ziglang.__file__).resolve().parent
    if not (path / "zig").is_file():
        raise ToolchainError(f"no zig binary in {path}; reinstall the ziglang package")
    return path


def zig_binary() -> Path:
    return zig_dir() / "zig"


def abilists_path() -> Path:
    """zig's glibc ABI database (`lib/libc/glibc/abilists`), written by
    https://github.com/ziglang/glibc-abi-tool (its README gives the format)."""
    return zig_dir() / "lib" / "libc" / "glibc" / "abilists"


@functools.cache
def zig_version() -> str:
    import subprocess  # here: every check reads the ABI database path, few ask zig itself

    try:
        out = subprocess.run(
            [str(zig_binary()), "version"], capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolchainError(f"`{zig_binary()} version` failed ({exc}); reinstall ziglang") from exc
    return out.stdout.strip()
