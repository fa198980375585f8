"""The tool as a wheel: `python -m build`, installed into a fresh venv, run from outside the
repository as `glibc-build`; and the facts the clone and the package must agree on (pins,
Python floor).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from orchestrator import bootstrap, paths
from tests.conftest import EXAMPLES, REPO, assert_clean_failure, have

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-r"))
    ]


# -- what the clone and the wheel must agree on ----------------------------------------------
@pytest.mark.unit
def test_wheel_dependencies_are_the_venv_pins():
    """pyproject's dependencies and requirements.txt (the .venv's) are the same pins."""
    assert PYPROJECT["project"]["dependencies"] == _requirement_lines(REPO / "requirements.txt")


@pytest.mark.unit
def test_one_python_floor_everywhere():
    floor = ".".join(map(str, bootstrap.MIN_PYTHON))
    assert PYPROJECT["project"]["requires-python"] == f">={floor}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + floor.replace(".", "")
    readme = (REPO / "README.md").read_text()
    assert f"Python {floor}+" in readme
    assert not re.search(r"Python 3\.\d+\+", readme.replace(f"Python {floor}+", ""))


@pytest.mark.unit
def test_console_script_is_the_cli_main():
    assert PYPROJECT["project"]["scripts"] == {"glibc-build": "orchestrator.cli:main"}


@pytest.mark.unit
def test_packaged_data_mirrors_the_repository_layout():
    """Every folder the wheel maps in exists in the clone, under the same relative path."""
    mapping = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for source, target in mapping.items():
        assert (REPO / source).is_dir(), source
        assert target == f"orchestrator/{paths.PACKAGED_DATA}/{source}"


@pytest.mark.unit
def test_clone_layout_uses_the_repository(tmp_path):
    package = tmp_path / "orchestrator"
    package.mkdir()
    assert not paths.is_installed(package)
    assert paths.data_root(package) == tmp_path
    assert paths.default_rsrc(False, tmp_path) == tmp_path / "rsrc"


@pytest.mark.unit
def test_installed_layout_downloads_into_the_user_cache(tmp_path):
    package = tmp_path / "site-packages" / "orchestrator"
    (package / paths.PACKAGED_DATA).mkdir(parents=True)
    assert paths.is_installed(package)
    assert paths.data_root(package) == package / paths.PACKAGED_DATA
    rsrc = paths.default_rsrc(
        True, paths.data_root(package), environ={"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    )
    assert rsrc == tmp_path / "xdg" / "glibc-build" / "rsrc"


@pytest.mark.unit
def test_this_clone_is_not_an_installed_package():
    assert not paths.INSTALLED
    assert paths.REPO == REPO
    assert paths.DEFAULT_RSRC == REPO / "rsrc"
    assert (paths.RECIPES_DIR / "debian-bullseye.toml").is_file()
    assert (paths.TEMPLATES_DIR / "debian.Dockerfile.j2").is_file()
    assert (paths.KEYS_DIR / "rust-release.asc").is_file()


# -- the wheel, installed ----------------------------------------------------------------
def _purelib(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel `python -m build` makes; returns its bin/ folder.

    The dependencies come from the project's .venv through a .pth file (so no download), but
    pip still resolves the wheel's pinned requirements against them: a pin the .venv does not
    satisfy fails here.
    """
    work = tmp_path_factory.mktemp("wheel")
    # from `work`, not the clone: there `-m build` would find build.py first
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(REPO)],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (work / "dist").glob("glibc_build-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (_purelib(python) / "project-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    return venv / "bin"


def _run(
    bin_dir: Path,
    *args: str | os.PathLike,
    cwd: Path,
    env: dict | None = None,
    path: str | None = None,
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GLIBC_BUILD_")}
    full_env.update(NO_COLOR="1", PATH=path or f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    full_env.update(env or {})
    return subprocess.run(
        [str(bin_dir / "glibc-build"), *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_installed_tool_builds_the_example_from_any_folder(installed, tmp_path):
    crate = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "plugin", crate, ignore=shutil.ignore_patterns("target", "dist"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = _run(installed, "--glibc", "2.17", crate, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert (crate / "dist" / "glibc-2.17" / "build-manifest.json").is_file()
    assert list((crate / "dist" / "glibc-2.17").glob("*.so"))
    where = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "import orchestrator.paths as p; print(p.PACKAGE_DIR, p.INSTALLED)",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.split() == [str(_purelib(installed / "python") / "orchestrator"), "True"]


@pytest.mark.slow
def test_installed_tool_finds_recipes_as_package_data(installed, tmp_path):
    proc = _run(installed, "render", "--recipe", "debian-bullseye", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# debian-bullseye:")
    assert "FROM" in proc.stdout


@pytest.mark.slow
def test_installed_fetch_defaults_to_the_user_cache(installed, tmp_path):
    """No --rsrc: the download folder is the cache's rsrc/, not a folder in site-packages."""
    cache = tmp_path / "cache"
    proc = _run(
        installed,
        "fetch",
        "--recipe",
        "debian-bullseye-zig",
        "--offline",
        cwd=tmp_path,
        env={"GLIBC_BUILD_CACHE": str(cache)},
    )
    assert_clean_failure(proc, 6, f"missing from {cache / 'rsrc'}")
    assert "site-packages" not in proc.stderr


@pytest.mark.slow
def test_installed_without_docker_or_debootstrap(installed, tmp_path):
    """`check` and the zig backend need neither; the rest says what is missing (3 and 5)."""
    cargo = shutil.which("cargo")
    if not have("cargo") or cargo is None:
        pytest.skip("no cargo")
    bare_path = os.pathsep.join([str(installed), str(Path(cargo).parent), "/usr/bin", "/bin"])
    if shutil.which("debootstrap", path=bare_path):
        pytest.skip("debootstrap sits in /usr/bin or /bin here; cannot hide it")
    env = {
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "GLIBC_BUILD_CACHE": str(tmp_path / "cache"),
    }  # no cached root to fall back on

    crate = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "plugin", crate, ignore=shutil.ignore_patterns("target", "dist"))
    built = _run(installed, "--glibc", "2.17", crate, cwd=tmp_path, env=env, path=bare_path)
    assert built.returncode == 0, built.stderr
    checked = _run(
        installed, "check", "--glibc", "2.17", crate / "dist", cwd=tmp_path, env=env, path=bare_path
    )
    assert checked.returncode == 0, checked.stderr

    rootfs = _run(
        installed,
        "rootfs",
        "--debootstrap",
        "bullseye",
        tmp_path / "root",
        cwd=tmp_path,
        env=env,
        path=bare_path,
    )
    assert_clean_failure(rootfs, 3, "debootstrap", "apt-get install debootstrap")
    docker = _run(
        installed,
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.31",
        crate,
        cwd=tmp_path,
        env=env,
        path=bare_path,
    )
    assert_clean_failure(docker, 5, "no Docker engine", "--backend zig")


@pytest.mark.slow
def test_installed_recipes_find_the_pinned_keys(installed, tmp_path):
    proc = _run(
        installed,
        "render",
        "--recipe",
        "centos7",
        cwd=tmp_path,
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr
