"""Human-facing output on stderr (stdout is kept for --json and `render`).

Colour and progress only on a terminal: a CI log or a pipe gets plain lines. Inside GitHub
Actions each stage is also a collapsible group and an error an annotation (orchestrator/ci.py).
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
from typing import TYPE_CHECKING

from . import ci

if TYPE_CHECKING:
    from rich.console import Console


@functools.cache
def console() -> Console:
    from rich.console import Console  # imported on first use: `check` starts faster without it

    quiet = os.environ.get("GLIBC_BUILD_QUIET") == "1"
    # soft_wrap: a long line (a path, glibc's message) stays one line in logs and pipes
    return Console(
        stderr=True, highlight=False, quiet=quiet, soft_wrap=True, no_color="NO_COLOR" in os.environ
    )


_group_open = False  # GitHub Actions groups do not nest: one open at a time
_closes_at_exit = False


def _workflow(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def end_group() -> None:
    """Close the stage's log group, if one is open (at exit, and before an error so that the
    error is not folded away)."""
    global _group_open
    if _group_open:
        _group_open = False
        _workflow(ci.group_end())


def step(message: str) -> None:
    """A stage starting: `==> building crate plugin (zig, glibc 2.17)`; in GitHub Actions it
    also starts a collapsible group that runs until the next stage."""
    global _group_open, _closes_at_exit
    if ci.in_github_actions() and not console().quiet:
        end_group()
        _workflow(ci.group_start(message))
        _group_open = True
        if not _closes_at_exit:
            atexit.register(end_group)
            _closes_at_exit = True
    console().print(f"[bold blue]==>[/] {message}")


def info(message: str) -> None:
    console().print(f"    {message}", markup=False)


def warn(message: str) -> None:
    console().print(f"[yellow]warning:[/] {message}")


def error(message: str, details: str = "", *, file: str | os.PathLike[str] | None = None) -> None:
    """Always printed (even when quiet): the one line that says what failed and what to do.
    In GitHub Actions also an annotation, naming `file` when the failure has one."""
    end_group()
    text = f"error: {message}"
    if details:
        text += "\n" + details.rstrip()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    if ci.in_github_actions():
        _workflow(ci.error_annotation(message, file=file))


def annotate_error(message: str, *, file: str | os.PathLike[str] | None = None) -> None:
    """Only the GitHub Actions annotation (for a failure already reported in its own words,
    e.g. one library failing the check)."""
    if ci.in_github_actions():
        _workflow(ci.error_annotation(message, file=file))
