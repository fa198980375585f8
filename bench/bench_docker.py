"""Benchmark: a no-change rebuild through the docker backend against cargo's own no-change build.

    .venv/bin/python bench/bench_docker.py [--runs 5] [--recipe debian-bullseye] [--glibc 2.31]

Both whole processes, best of --runs, after one warm-up build each (which also makes the
image). Goal (issue 5): build.py at most 2 s more than cargo (cross-rs users report ~5 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def best(runs: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--recipe", default="debian-bullseye")
    parser.add_argument("--glibc", default="2.31")
    parser.add_argument("--crate", type=Path, default=REPO / "examples" / "plugin")
    args = parser.parse_args()
    env = dict(os.environ, GLIBC_BUILD_QUIET="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a normal machine (see bench_build.py)
    # As on a normal machine: this one sets PYTHONDONTWRITEBYTECODE, which recompiles every
    # module of ours on each run (~20 ms) and would bill build.py for a machine setting.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        crate = Path(tmp) / "crate"
        shutil.copytree(args.crate, crate, ignore=shutil.ignore_patterns("target", "dist"))
        ours = [
            sys.executable,
            str(REPO / "build.py"),
            "--backend",
            "docker",
            "--recipe",
            args.recipe,
            "--glibc",
            args.glibc,
            str(crate),
        ]
        theirs = ["cargo", "build", "--release"]
        best(1, ours, crate, env)
        best(1, theirs, crate, env)
        a, b = best(args.runs, ours, crate, env), best(args.runs, theirs, crate, env)
    print(
        f"no-change rebuild: build.py --backend docker {a:.2f}s, cargo build {b:.2f}s, "
        f"difference {a - b:+.2f}s (goal: at most +2 s)"
    )


if __name__ == "__main__":
    main()
