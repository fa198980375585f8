"""Elapsed times for the stages that take more than a moment: each stage's line is followed,
when it ends, by `    <stage> took 12.3 s`, so a CI log says where the minutes went.

A module of its own beside logger.py: it only adds to what logger.py prints.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import logger


def elapsed_text(seconds: float) -> str:
    """`0.4 s`, `12.3 s`, `2 min 05 s`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


@contextlib.contextmanager
def stage(message: str | None, done: str) -> Iterator[None]:
    """Print `==> message` (None: the stage prints its own line), run the block, then
    `    done in 12.3 s` when it ended without an error."""
    start = time.monotonic()
    if message is not None:
        logger.step(message)
    yield
    logger.info(f"{done} in {elapsed_text(time.monotonic() - start)}")


def run_streaming(command: Sequence[str], *, cwd: Path | None = None) -> tuple[int, str]:
    """Run a tool whose output is its progress (debootstrap's `I: Retrieving ...`): each line
    is shown as it comes; the exit code and the whole output are returned for the error."""
    proc = subprocess.Popen(
        list(command),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.strip():
                logger.info(line.rstrip())
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, "".join(lines)
