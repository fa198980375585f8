"""cli.main as the process entry point and as an in-process call."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parent.parent


def test_an_in_process_call_leaves_the_collector_alone(capsys):
    """main(argv) is how tests and other programs call the CLI: their later garbage must stay
    collectable, so nothing is frozen."""
    before = gc.get_freeze_count()
    assert main(["platforms", "--json"]) == 0
    capsys.readouterr()
    assert gc.get_freeze_count() == before


def test_the_process_entry_freezes_what_it_imported():
    """build.py and the console script call main() with the process's own argv: the imported
    modules are frozen once, before the command runs."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['build.py', 'platforms', '--json']\n"
        "from orchestrator.cli import main\n"
        "assert gc.get_freeze_count() == 0\n"
        "main()\n"
        "sys.stderr.write(str(gc.get_freeze_count()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(os.environ, GLIBC_BUILD_NO_VENV="1"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(proc.stderr.strip().splitlines()[-1]) > 1000
