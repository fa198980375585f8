"""Does the checker at this worktree report exactly what an older revision reports?

    .venv/bin/python bench/compare_check.py [--old REV] [--dir /usr/lib/x86_64-linux-gnu]

Compiles the fixtures that tests/test_check.py builds (read from its `build.zig(...)` and
`build.gcc(...)` calls), adds the host's shared objects and the fuzz crashers, and runs
`build.py check` of REV (git archive into a temporary folder) and of this worktree over them
at several glibc versions, as JSON, text and JUnit. Prints the differences; exit 1 if any.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
SRC = TESTS / "fixtures" / "check" / "src"
CRASHERS = TESTS / "fixtures" / "check" / "crashers"
GLIBCS = ("2.5", "2.17", "2.28", "2.34", "2.36", "2.41")
CROSS_TARGETS = (
    ("x86-linux-gnu", "2.17"),
    ("s390x-linux-gnu", "2.17"),
    ("arm-linux-gnueabihf", "2.17"),
    ("riscv64-linux-gnu", "2.27"),
    ("powerpc64le-linux-gnu", "2.19"),
    ("aarch64-linux-gnu", "2.17"),
)
# (extra flags, glibc): each file judged against a foreign target too
TARGET_RUNS = (
    (["--target", "aarch64-unknown-linux-gnu"], "2.17"),
    (["--target", "s390x-unknown-linux-gnu"], "2.17"),
    (["--target", "armv7-unknown-linux-gnueabihf"], "2.28"),
)
POLICY_OVERRIDE = {
    "loader": {"relr_glibc": "2.30", "static_tls_surplus_bytes": 64},
    "cxx_runtime": {"ceilings": [{"glibc": "2.17", "GLIBCXX": "3.4.30", "CXXABI": "1.3.13"}]},
    "needed": {"forbidden": {"libz.so.*": "no zlib here"}},
    "markers": {"GLIBC_ABI_DT_RELR": {"glibc": "2.30", "why": "w", "fix": "f"}},
    "symbol_hints": {"memcpy": "a hint of ours"},
}


def fixture_commands(out: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of every constant build.zig/build.gcc call in tests/test_check.py."""
    tree = ast.parse((TESTS / "test_check.py").read_text())
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "build"
            and node.func.attr in ("zig", "gcc")
        ):
            continue
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            continue  # an f-string name; the constant calls cover the same sources
        name, source, *flags = args
        flags = [f for f in flags if not f.startswith("/") and not f.startswith("str(")]
        dest = str(out / name)
        if node.func.attr == "zig":
            argv = [
                sys.executable,
                "-m",
                "ziglang",
                "cc",
                "-target",
                kw.get("target", "x86_64-linux-gnu.2.17"),
                "-shared",
                "-fPIC",
                "-O2",
                *flags,
                "-o",
                dest,
                str(SRC / source),
            ]
        else:
            compiler = kw.get("compiler", "gcc")
            kind = ["-shared", "-fPIC"] if kw.get("shared", True) else []
            argv = [compiler, *kind, "-O2", "-o", dest, str(SRC / source), *flags]
        found.setdefault(name, argv)
    for triple, glibc in CROSS_TARGETS:  # the f-string names of test_check.py, and more targets
        name = f"plain-{triple.split('-')[0]}.so"
        found.setdefault(
            name,
            [
                sys.executable,
                "-m",
                "ziglang",
                "cc",
                "-target",
                f"{triple}.{glibc}",
                "-shared",
                "-fPIC",
                "-O2",
                "-o",
                str(out / name),
                str(SRC / "plain.c"),
            ],
        )
    return sorted(found.items())


def build_fixtures(out: Path) -> list[Path]:
    built = []
    for name, argv in fixture_commands(out):
        if shutil.which(argv[0]) is None and argv[0] != sys.executable:
            continue
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            built.append(out / name)
        else:
            print(f"skipped fixture {name}: {proc.stderr.strip()[-200:]}", file=sys.stderr)
    return built


def unpack_revision(revision: str, dest: Path) -> Path:
    """The tree of `revision` of this repository, unpacked into `dest` (git archive)."""
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run_check(root: Path, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, str(root / "build.py"), "check", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="main", help="git revision to compare with")
    parser.add_argument("--dir", type=Path, default=Path("/usr/lib/x86_64-linux-gnu"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="compare-check-"))
    try:
        old = unpack_revision(args.old, work / "old")
        fixtures = work / "fixtures"
        fixtures.mkdir()
        built = build_fixtures(fixtures)
        env = dict(
            os.environ,
            GLIBC_BUILD_VENV=str(REPO / ".venv"),
            NO_COLOR="1",
            GLIBC_BUILD_CACHE=str(work / "cache"),
        )
        inputs = [str(p) for p in built] + [str(CRASHERS), str(args.dir)]
        junit_old, junit_new = work / "old.xml", work / "new.xml"
        differences = 0
        runs = 0
        codes: set[int] = set()
        cases = [(["--glibc", glibc, *mode]) for glibc in GLIBCS for mode in (["--json"], [])]
        cases += [["--glibc", glibc, "--json", *flags] for flags, glibc in TARGET_RUNS]
        policy, host = work / "policy.json", work / "host-symbols.txt"
        policy.write_text(json.dumps(POLICY_OVERRIDE))
        host.write_text("# the host program defines these\nreallocarray\nfcntl64\nstat64\n")
        cases.append(
            ["--glibc", "2.17", "--json", "--policy", str(policy), "--host-symbols", str(host)]
        )
        for base in cases:
            before = run_check(old, [*base, "--junit", str(junit_old), *inputs], env)
            after = run_check(REPO, [*base, "--junit", str(junit_new), *inputs], env)
            runs += 1
            codes.add(after[0])
            if not after[1]:
                print(f"no output: {' '.join(base)}: {after[2][-300:]}")
                differences += 1
            same_xml = junit_old.read_bytes() == junit_new.read_bytes()
            if before != after or not same_xml:
                differences += 1
                print(
                    f"DIFFERENT: {' '.join(base)} (exit {before[0]} vs "
                    f"{after[0]}, junit {'same' if same_xml else 'different'})"
                )
                for label, a, b in (
                    ("stdout", before[1], after[1]),
                    ("stderr", before[2], after[2]),
                ):
                    if a != b:
                        (work / f"{label}.old").write_text(a)
                        (work / f"{label}.new").write_text(b)
                        diff = subprocess.run(
                            ["diff", str(work / f"{label}.old"), str(work / f"{label}.new")],
                            capture_output=True,
                            text=True,
                        ).stdout
                        print(diff[:3000])
        files = len(built)
        print(
            f"{files} compiled fixtures + {CRASHERS.name}/ + {args.dir}: {len(GLIBCS)} glibc "
            f"versions x (JSON, text), {len(TARGET_RUNS)} foreign --target runs, a --policy "
            "and --host-symbols run, each with "
            f"JUnit: {runs - differences} of {runs} runs byte-identical "
            f"(exit codes {sorted(codes)})"
        )
        return 1 if differences else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
