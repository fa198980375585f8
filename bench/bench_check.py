"""Benchmark: `build.py check` against auditwheel's version scan, whole processes, same files.

    .venv/bin/python bench/bench_check.py [--runs 5] [--limit 400] [--dir /usr/lib/x86_64-linux-gnu]

Files: the first --limit ELF shared objects under --dir (sorted, symlinks skipped). Ours is
`python build.py check --json FILES` (every rule, the ABI database, the JSON report); theirs is
one Python process calling `auditwheel.elfutils.elf_find_versioned_symbols` (pyelftools) on
each file, which reads only the version-need table. Best of --runs each, warm page cache and a
warm abilists cache (the first, cold run is shown apart). PYTHONDONTWRITEBYTECODE is removed
from the environment of both, so that our modules run from .pyc files as on a normal machine
(auditwheel and pyelftools already have theirs from pip). Goal (issue 3): ours <= 0.5x theirs.
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

AUDITWHEEL_SCRIPT = """
import sys
from auditwheel.elfutils import elf_find_versioned_symbols
from elftools.elf.elffile import ELFFile

count = 0
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        count += sum(1 for _ in elf_find_versioned_symbols(ELFFile(handle)))
print(count)
"""


def shared_objects(folder: Path, limit: int) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as handle:
                head = handle.read(18)
            if head[:4] == b"\x7fELF" and head[5] == 1 and head[16:18] == b"\x03\x00":
                found.append(str(path))
    return sorted(found)[:limit]


def timed(cmd: list[str], env: dict[str, str], ok_codes: tuple[int, ...]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--dir", type=Path, default=Path("/usr/lib/x86_64-linux-gnu"))
    parser.add_argument("--glibc", default="2.17")
    args = parser.parse_args()

    files = shared_objects(args.dir, args.limit)
    if not files:
        sys.exit(f"no ELF shared objects under {args.dir}")
    size = sum(os.path.getsize(f) for f in files) / 1e6
    python = sys.executable
    cache = tempfile.mkdtemp(prefix="bench-check-cache-")
    env = dict(os.environ, GLIBC_BUILD_CACHE=cache, NO_COLOR="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    ours_cmd = [python, str(REPO / "build.py"), "check", "--json", "--glibc", args.glibc, *files]
    text_cmd = [c for c in ours_cmd if c != "--json"]
    theirs_cmd = [python, "-c", AUDITWHEEL_SCRIPT, *files]
    try:
        cold = timed(ours_cmd, env, (0, 1))  # builds the abilists table cache
        ours = min(timed(ours_cmd, env, (0, 1)) for _ in range(args.runs))
        text = min(timed(text_cmd, env, (0, 1)) for _ in range(args.runs))
        theirs = min(timed(theirs_cmd, env, (0,)) for _ in range(args.runs))
        baseline = min(timed([python, "-c", "pass"], env, (0,)) for _ in range(args.runs))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    ratio = ours / theirs
    print(f"{len(files)} shared objects ({size:.0f} MB) under {args.dir}, best of {args.runs}")
    print(
        f"  build.py check --json    {ours * 1000:7.0f} ms   (first run, cold cache: "
        f"{cold * 1000:.0f} ms)"
    )
    print(f"  build.py check (text)    {text * 1000:7.0f} ms   (ratio {text / theirs:.2f})")
    print(f"  auditwheel version scan  {theirs * 1000:7.0f} ms")
    print(f"  python -c pass           {baseline * 1000:7.0f} ms   (interpreter start, in both)")
    print(f"  ratio {ratio:.2f} (goal <= 0.50): {'met' if ratio <= 0.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
