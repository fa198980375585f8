"""Benchmark: what provenance (issue 15) adds to a build with 50+ dependencies.

    .venv/bin/python bench/bench_provenance.py [--crates 60] [--crate DIR] [--runs 3]

Without --crate, a workspace of --crates path dependencies (each with generic code, string
formatting and a libc call, so its rlib holds real codegen units) under one cdylib is written to
a temporary folder. The clean build (`build.py --glibc 2.17`, target/ removed) is timed once per
run; then provenance on its output: `provenance.for_crate_dir` (reading every rlib, every
build-script object and Rust's std rlibs, then annotating the report), in process, best of
--runs (the archive cache cleared each time). Goal (issue 15): provenance <= 10% of the clean
build's wall time. Measured on the 2-core development machine (shared, load ~6), 60
dependencies: clean build 29.0 s, provenance 0.48 s = 1.6% (1.1% against a 70 s cold build).
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
sys.path.insert(0, str(REPO))

LIB = """//! Synthetic dependency {i}.
use std::collections::BTreeMap;
use std::fmt::Write;
{uses}
pub fn work_{i}(n: u64) -> String {{
    let mut map = BTreeMap::new();
    for k in 0..n {{ map.insert(k.wrapping_mul({i} + 7), format!("{{k:x}}-{i}")); }}
    let mut out = String::new();
    for (k, v) in map.iter().take(8) {{ let _ = write!(out, "{{k}}={{v}};"); }}
    // SAFETY: getpid has no preconditions.
    let pid = unsafe {{ libc::getpid() }};
    let _ = write!(out, "{{pid}}");
    {calls}
    out
}}

pub fn generic_{i}<T: std::fmt::Debug + Clone>(items: &[T]) -> Vec<String> {{
    items.iter().cloned().map(|t| format!("{{t:?}}/{i}")).collect()
}}
"""


def synthetic_workspace(root: Path, count: int) -> Path:
    """`plugin` (cdylib) -> dep0 .. dep{count-1}, each depending on the next few and libc."""
    root.mkdir(parents=True)
    members = ["plugin"] + [f"dep{i}" for i in range(count)]
    (root / "Cargo.toml").write_text(
        '[workspace]\nresolver = "2"\nmembers = [' + ", ".join(f'"{m}"' for m in members) + "]\n"
    )
    for i in range(count):
        below = [j for j in (i + 1, i + 2) if j < count]
        folder = root / f"dep{i}"
        (folder / "src").mkdir(parents=True)
        deps = "".join(f'dep{j} = {{ path = "../dep{j}" }}\n' for j in below)
        (folder / "Cargo.toml").write_text(
            f'[package]\nname = "dep{i}"\nversion = "0.1.{i}"\nedition = "2021"\n'
            f'publish = false\n\n[dependencies]\nlibc = "0.2"\n{deps}'
        )
        calls = "".join(f"out.push_str(&dep{j}::work_{j}(n / 2 + 1)); " for j in below)
        (folder / "src" / "lib.rs").write_text(LIB.format(i=i, uses="", calls=calls))
    plugin = root / "plugin"
    (plugin / "src").mkdir(parents=True)
    (plugin / "Cargo.toml").write_text(
        '[package]\nname = "bench-plugin"\nversion = "0.1.0"\nedition = "2021"\n'
        'publish = false\n\n[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\n'
        + "".join(f'dep{i} = {{ path = "../dep{i}" }}\n' for i in range(0, count, 5))
    )
    body = "".join(f"    total += dep{i}::work_{i}(3).len();\n" for i in range(0, count, 5))
    (plugin / "src" / "lib.rs").write_text(
        '#[no_mangle]\npub extern "C" fn plugin_entry() -> i32 {\n    let mut total = 0;\n'
        + body
        + "    (total & 0x7f) as i32\n}\n"
    )
    return plugin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crates", type=int, default=60)
    parser.add_argument(
        "--crate",
        type=Path,
        default=None,
        help="A cdylib crate of your own instead of the synthetic workspace.",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--glibc", default="2.17")
    args = parser.parse_args()

    from orchestrator.check import check_paths
    from orchestrator.glibc import GlibcVersion
    from orchestrator.provenance import for_crate_dir, unit_facts

    env = dict(os.environ, GLIBC_BUILD_QUIET="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        if args.crate is None:
            crate = synthetic_workspace(Path(tmp) / "ws", args.crates)
            workspace = crate.parent
        else:
            workspace = Path(tmp) / args.crate.name
            shutil.copytree(args.crate, workspace, ignore=shutil.ignore_patterns("target", "dist"))
            crate = workspace
        builds = []
        for _ in range(args.runs):
            shutil.rmtree(workspace / "target", ignore_errors=True)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(REPO / "build.py"), "--glibc", args.glibc, str(crate)],
                env=env,
                capture_output=True,
                text=True,
            )
            builds.append(time.perf_counter() - start)
            if proc.returncode not in (0, 1):
                sys.exit(f"build failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        libraries = sorted((workspace / "target").glob("*/release/lib*.so"))
        rlibs = list((workspace / "target").glob("*/release/deps/*.rlib"))
        report = check_paths(libraries, GlibcVersion.parse(args.glibc))
        times = []
        for _ in range(args.runs):
            unit_facts.cache_clear()  # every run reads the archives again, as a new process
            start = time.perf_counter()
            _annotated, extra, messages = for_crate_dir(report, crate)
            times.append(time.perf_counter() - start)
        assert not messages, messages
        build, provenance = min(builds), min(times)
        print(f"dependencies (rlibs): {len(rlibs)}")
        print(f"clean build (best of {args.runs}): {build:.2f} s")
        print(
            f"provenance (best of {args.runs}): {provenance:.3f} s "
            f"= {100 * provenance / build:.1f}% of the build (goal <= 10%)"
        )


if __name__ == "__main__":
    main()
