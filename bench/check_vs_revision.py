"""Benchmark: `build.py check` of this worktree against an older revision, in one run.

    .venv/bin/python bench/check_vs_revision.py [--old e8b01dc] [--runs 12] [--limit 400]
                                                 [--dir /usr/lib/x86_64-linux-gnu] [--text]

Issue 11's budget: the loader-faithful reading may cost at most 5% over the checker as it
was when the issue was filed (e8b01dc, the last commit before that round). REV is unpacked
with `git archive` into a temporary folder; both trees run under this interpreter with
GLIBC_BUILD_NO_VENV=1, the same files (bench_check.shared_objects: the first --limit ELF
shared objects under --dir) and the same warm abilists cache. The runs alternate old, new,
old, new... so that a busy moment of the machine falls on both; each side's figure is its
best run. The figure compared is CPU time (user + system of the child, from
RUSAGE_CHILDREN), which a loaded machine disturbs far less than wall time; wall time is
shown too. Exit 1 when the new tree costs more than --budget over the old.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_check import shared_objects
from compare_check import unpack_revision

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of cmd; exits when cmd fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        sys.exit(f"{cmd[1]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="e8b01dc", help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=Path("/usr/lib/x86_64-linux-gnu"))
    parser.add_argument("--glibc", default="2.17")
    parser.add_argument("--text", action="store_true", help="time the text report, not --json")
    parser.add_argument("--budget", type=float, default=0.05, help="allowed cost over the old")
    args = parser.parse_args()

    files = shared_objects(args.dir, args.limit)
    if not files:
        sys.exit(f"no ELF shared objects under {args.dir}")
    work = Path(tempfile.mkdtemp(prefix="check-vs-revision-"))
    try:
        old = unpack_revision(args.old, work / "old")
        env = dict(
            os.environ, GLIBC_BUILD_NO_VENV="1", GLIBC_BUILD_CACHE=str(work / "cache"), NO_COLOR="1"
        )
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # both run from .pyc files, as users do
        mode = [] if args.text else ["--json"]
        commands = {
            tree: [sys.executable, str(root / "build.py"), "check", *mode, "--glibc", args.glibc]
            + files
            for tree, root in (("old", old), ("new", REPO))
        }
        for cmd in commands.values():  # the abilists cache and the .pyc files
            timed(cmd, env)
        best = {tree: (float("inf"), float("inf")) for tree in commands}
        for _ in range(args.runs):
            for tree, cmd in commands.items():
                cpu, wall = timed(cmd, env)
                best[tree] = (min(best[tree][0], cpu), min(best[tree][1], wall))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = sum(os.path.getsize(f) for f in files) / 1e6
    label = "text" if args.text else "--json"
    print(
        f"check {label} --glibc {args.glibc} of {len(files)} shared objects ({size:.0f} MB) "
        f"under {args.dir}, best of {args.runs} alternating runs"
    )
    for tree in commands:
        name = args.old if tree == "old" else "this tree"
        cpu, wall = best[tree]
        print(f"  {name:<10} CPU {cpu * 1000:6.0f} ms   wall {wall * 1000:6.0f} ms")
    ratio = best["new"][0] / best["old"][0]
    verdict = "met" if ratio <= 1 + args.budget else "MISSED"
    print(f"  CPU ratio {ratio:.3f} (budget {1 + args.budget:.2f}): {verdict}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
