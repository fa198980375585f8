"""Human-facing output on stderr (stdout is kept for --json and `render`).

Colour and progress only on a terminal: a CI log or a pipe gets plain lines.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def console() -> Console:
    from rich.console import Console  # imported on first use: `check` starts faster without it

    quiet = os.environ.get("GLIBC_BUILD_QUIET") == "1"
    # soft_wrap: a long line (a path, glibc's message) stays one line in logs and pipes
    return Console(stderr=True, highlight=False, quiet=quiet, soft_wrap=True,
                   no_color="NO_COLOR" in os.environ)


def step(message: str) -> None:
    """A stage starting: `==> building crate plugin (zig, glibc 2.17)`."""
    console().print(f"[bold blue]==>[/] {message}")


def info(message: str) -> None:
    console().print(f"    {message}", markup=False)


def warn(message: str) -> None:
    console().print(f"[yellow]warning:[/] {message}")


def error(message: str, details: str = "") -> None:
    """Always printed (even when quiet): the one line that says what failed and what to do."""
    text = f"error: {message}"
    if details:
        text += "\n" + details.rstrip()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
