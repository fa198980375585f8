"""A corpus of real third-party libraries with known verdicts: the extension modules and
grafted libraries of popular manylinux2014 wheels (tests/data/wheel-corpus.txt).

auditwheel tagged every one of them for glibc 2.17 and millions of machines load them, so
`check --glibc 2.17` must not call any of them failing. They are the false-alarm oracle that
hand-made fixtures cannot be: real linkers, real toolchains, real habits (libm and libdl
functions used without their library in DT_NEEDED, because the host already has it loaded).
The wheels are pinned by sha256 and downloaded once into the cache with pip --require-hashes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from orchestrator import files
from orchestrator.check import check_paths
from orchestrator.glibc import GlibcVersion
from orchestrator.paths import cache_dir

from .conftest import run_tool

CORPUS = Path(__file__).resolve().parent / "data" / "wheel-corpus.txt"
PLATFORM = [
    "--platform",
    "manylinux2014_x86_64",
    "--python-version",
    "311",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    "--abi",
    "abi3",
    "--abi",
    "none",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The unpacked wheels, one folder each (cached by the corpus file's content)."""
    digest = hashlib.sha256(CORPUS.read_bytes()).hexdigest()[:16]
    base = cache_dir("wheel-corpus")
    done = base / digest
    with files.locked(base / ".lock"):
        if not done.is_dir():
            staging = base / f".{digest}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            wheels = staging / "wheels"
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    *PLATFORM,
                    "--require-hashes",
                    "-r",
                    str(CORPUS),
                    "-d",
                    str(wheels),
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                pytest.fail(f"downloading the wheel corpus failed:\n{proc.stderr[-2000:]}")
            for wheel in sorted(wheels.glob("*.whl")):
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(staging / "unpacked" / wheel.name.split("-")[0])
            (staging / "unpacked").rename(done)
            shutil.rmtree(staging)
    return done


def test_every_manylinux2014_library_passes_for_2_17(corpus: Path) -> None:
    report = check_paths([corpus], GlibcVersion(2, 17))
    assert not report.errors, report.errors
    assert len(report.files) >= 70, "the corpus shrank: a wheel lost its libraries"
    failing = {f.path: [v.message for v in f.violations] for f in report.files if not f.ok}
    assert not failing, failing
    for f in report.files:
        assert f.min_glibc is not None and GlibcVersion.parse(f.min_glibc) <= GlibcVersion(2, 17)


def test_strict_makes_them_fail_and_the_summary_agrees(corpus: Path) -> None:
    """Under --strict the files that use libm/libdl functions without DT_NEEDED fail, and
    their lowest glibc is above the target: 2.34 for libdl's (merged into libc), none for
    libm's."""
    report = check_paths([corpus], GlibcVersion(2, 17), strict=True)
    failing = [f for f in report.files if not f.ok]
    assert failing, "the corpus lost its files without libm/libdl in DT_NEEDED"
    for f in failing:
        libraries = {v.library for v in f.violations}
        assert {v.kind for v in f.violations} == {"missing-library"}, f.violations
        if "libm.so.6" in libraries:
            assert f.min_glibc is None, f
        else:
            assert f.min_glibc == "2.34", f


def test_a_missing_libm_or_libdl_is_a_warning_that_states_the_condition(corpus: Path) -> None:
    """brotli calls log2 without libm in DT_NEEDED: it loads in every host that has libm
    loaded (Python does), so the finding is a warning; --strict makes it a violation."""
    brotli = next((corpus / "brotli").glob("_brotli*.so"))
    report = check_paths([brotli], GlibcVersion(2, 17))
    assert report.ok
    missing = [w for w in report.files[0].warnings if w.kind == "missing-library"]
    assert missing and all(
        "only in a host process that already has libm.so.6 loaded" in w.message for w in missing
    ), missing
    strict = run_tool("check", "--glibc", "2.17", "--strict", brotli)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "log2" in strict.stdout
    assert "lowest glibc it can load on: none" in strict.stdout  # libm never merged into libc
    named = run_tool("check", "--glibc", "2.17", "--host-libraries", "libm.so.6", brotli)
    assert named.returncode == 0, named.stdout + named.stderr
    other = run_tool("check", "--glibc", "2.17", "--host-libraries", "libdl.so.2", brotli)
    assert other.returncode == 1, other.stdout + other.stderr
