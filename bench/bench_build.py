"""Benchmark: `build.py` against `cargo zigbuild` on the same crate and glibc, whole processes.

    .venv/bin/python bench/bench_build.py [--runs 3] [--crate examples/plugin] [--glibc 2.17]
    .venv/bin/python bench/bench_build.py --zstd [--runs 1]

Clean build (target/ removed) and no-change rebuild, best of --runs each. build.py also checks
its output and copies it to dist/, so the no-change figure includes that. Goals (issue 2):
clean <= 1.05x cargo-zigbuild, no-change <= 1.5x. `--zstd` builds a real crate with C parts
instead (the zstd crate: zstd-sys's C compiled by zig, build scripts linked for the host);
goal (issue 13): clean <= 1.02x.
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


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def best(runs: int, cmd: list[str], cwd: Path, env: dict[str, str], clean: bool) -> float:
    times = []
    for _ in range(runs):
        if clean:
            shutil.rmtree(cwd / "target", ignore_errors=True)
        times.append(timed(cmd, cwd, env))
    return min(times)


ZSTD_LIB = """#[no_mangle]
pub extern "C" fn plugin_entry() -> i32 {
    let packed = zstd::bulk::compress(&[7u8; 4096], 3).unwrap();
    if packed.len() < 4096 { 0 } else { 1 }
}
"""


def zstd_crate(dest: Path) -> Path:
    """A cdylib using the zstd crate from crates.io (C parts: zstd-sys)."""
    crate = dest / "zstd_plugin"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "zstd_plugin"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\nzstd = "0.13"\n'
    )
    (crate / "src" / "lib.rs").write_text(ZSTD_LIB)
    return crate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--crate", type=Path, default=REPO / "examples" / "plugin")
    parser.add_argument("--glibc", default="2.17")
    parser.add_argument(
        "--zstd", action="store_true", help="a real crate with C parts (zstd) instead of --crate"
    )
    args = parser.parse_args()

    venv_bin = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ['PATH']}", GLIBC_BUILD_QUIET="1")
    # As on a normal machine: this one sets PYTHONDONTWRITEBYTECODE, which recompiles every
    # module of ours on each run (~20 ms) and would bill build.py for a machine setting.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    zigbuild = shutil.which("cargo-zigbuild", path=env["PATH"])
    if not zigbuild:
        sys.exit("cargo-zigbuild is not installed: pip install -r requirements-test.txt")
    with tempfile.TemporaryDirectory() as tmp:
        if args.zstd:
            args.crate = zstd_crate(Path(tmp) / "source")
        ours, theirs = Path(tmp) / "ours", Path(tmp) / "theirs"
        for dest in (ours, theirs):
            shutil.copytree(args.crate, dest, ignore=shutil.ignore_patterns("target", "dist"))
        ours_cmd = [sys.executable, str(REPO / "build.py"), "--glibc", args.glibc, str(ours)]
        theirs_cmd = [
            zigbuild,
            "zigbuild",
            "--release",
            "--target",
            f"x86_64-unknown-linux-gnu.{args.glibc}",
        ]
        # Warm the registry and zig's own cache once, so neither side pays for downloads.
        timed(ours_cmd, ours, env)
        timed(theirs_cmd, theirs, env)
        rows = []
        for label, clean in (("clean build", True), ("no-change rebuild", False)):
            a = best(args.runs, ours_cmd, ours, env, clean)
            b = best(args.runs, theirs_cmd, theirs, env, clean)
            rows.append((label, a, b))
    print(f"{'':20} {'build.py':>10} {'cargo-zigbuild':>15} {'ratio':>7}")
    for label, a, b in rows:
        print(f"{label:20} {a:9.2f}s {b:14.2f}s {a / b:6.2f}x")


if __name__ == "__main__":
    main()
