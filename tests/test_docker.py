"""Issue 5: the docker backend end to end, on the real engine, with no registry reachable.

The debian-bullseye recipe's base image is made locally from a debootstrap root (air-gapped),
the plugin is built in it by the host's own toolchain, and bullseye's loader proves the result.
In CI (CI=true) a missing engine fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import REPO, assert_clean_failure, run_tool
from .test_build import copy_crate, glibc_needs

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def leftover_containers(client) -> list:
    """The tool's containers; sparse: no per-container inspect, which races with a short-lived
    container being removed between the listing and the inspect (404)."""
    return client.containers.list(all=True, sparse=True, filters={"label": "org.glibc-build"})


@pytest.fixture(scope="module")
def docker_build(docker_client, tmp_path_factory) -> dict:
    crate = copy_crate("plugin", tmp_path_factory.mktemp("docker"))
    first = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.31",
        "--json",
        crate,
        timeout=1800,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    return {"crate": crate, "first": first, "summary": json.loads(first.stdout)}


def test_plugin_built_in_bullseye_image_needs_at_most_2_31(docker_build, docker_client):
    (artifact,) = [Path(p) for p in docker_build["summary"]["artifacts"]]
    assert artifact.parent == docker_build["crate"] / "dist" / "glibc-2.31"
    assert max(glibc_needs(artifact)) <= (2, 31)
    assert artifact.stat().st_uid == os.getuid() and artifact.stat().st_gid == os.getgid()
    assert not leftover_containers(docker_client)
    manifest = json.loads((artifact.parent / "build-manifest.json").read_text())
    assert manifest["backend"] == "docker"
    assert manifest["toolchain"]["recipe"]["name"] == "debian-bullseye"


def test_docker_built_plugin_loads_on_bullseye(docker_build, bullseye_root):
    lib = docker_build["crate"] / "dist" / "glibc-2.31" / "libexample_plugin.so"
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from the plugin" in proc.stdout + proc.stderr


def test_second_build_reuses_the_image(docker_build, docker_client):
    images_before = {i.id for i in docker_client.images.list(name="glibc-build/debian-bullseye")}
    again = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.31",
        docker_build["crate"],
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "building image" not in again.stderr
    images_after = {i.id for i in docker_client.images.list(name="glibc-build/debian-bullseye")}
    assert images_after == images_before
    assert not leftover_containers(docker_client)


def test_zig_recipe_builds_for_2_17_on_a_2_31_base(docker_client, tmp_path, bullseye_root):
    """The zig recipe, air-gapped: debootstrap base, verified ziglang wheel, host Rust; zig's
    stubs make a 2.17 library (C part included) although the image's own glibc is 2.31."""
    crate = copy_crate("plugin-c", tmp_path)
    proc = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye-zig",
        "--glibc",
        "2.17",
        crate,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lib = crate / "dist" / "glibc-2.17" / "libexample_plugin_c.so"
    assert max(glibc_needs(lib)) <= (2, 17)
    loaded = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", lib)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert not leftover_containers(docker_client)


def test_failing_recipe_gives_the_log_tail(docker_client, tmp_path):
    recipe = tmp_path / "broken.toml"
    template = tmp_path / "broken.Dockerfile.j2"
    template.write_text("FROM {{ base_image }}\nRUN echo about to fail && exit 42\n")
    text = (REPO / "recipes" / "debian-bullseye.toml").read_text()
    text = text.replace('name = "debian-bullseye"', 'name = "broken"')
    lines = [
        f'template = "{template.name}"' if line.startswith("template") else line
        for line in text.splitlines()
    ]
    recipe.write_text("\n".join(lines) + "\n")
    crate = copy_crate("plugin", tmp_path)
    proc = run_tool(
        "--backend", "docker", "--recipe", recipe, "--glibc", "2.31", crate, timeout=900
    )
    assert_clean_failure(proc, 3, "recipe broken failed to build", "about to fail")
    assert not (crate / "dist").exists()
    assert not leftover_containers(docker_client)


def test_recipe_newer_than_the_target_glibc_is_refused(docker_client):
    proc = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.17",
        REPO / "examples" / "plugin",
    )
    assert_clean_failure(proc, 2, "debian-bullseye", "2.31", "2.17")


def test_no_engine_is_exit_5_with_one_line(tmp_path):
    proc = run_tool(
        "--backend",
        "docker",
        "--recipe",
        "debian-bullseye",
        "--glibc",
        "2.31",
        REPO / "examples" / "plugin",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )
    assert_clean_failure(proc, 5, "no Docker engine answers", "no-engine.sock")


def test_cargo_failure_in_container_exits_3_and_removes_it(docker_client, tmp_path):
    crate = copy_crate("plugin", tmp_path)
    (crate / "src" / "lib.rs").write_text('pub fn broken() -> i32 { "no" }\n')
    proc = run_tool(
        "--backend", "docker", "--recipe", "debian-bullseye", "--glibc", "2.31", crate, timeout=900
    )
    assert_clean_failure(proc, 3, "mismatched types")
    assert not leftover_containers(docker_client)
    shutil.rmtree(crate)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_removes_the_container(docker_client, tmp_path, signame):
    """Ctrl-C (and a cancelled CI job's SIGTERM) mid-build: exit 130, no container left."""
    import signal
    import subprocess
    import sys
    import time

    crate = tmp_path / "slow"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "slow"\nversion = "0.1.0"\n'
        'edition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n'
    )
    (crate / "build.rs").write_text(
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(120)); }\n"
    )
    (crate / "src" / "lib.rs").write_text('#[no_mangle] pub extern "C" fn f() -> i32 { 0 }\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "build.py"),
            "--backend",
            "docker",
            "--recipe",
            "debian-bullseye",
            "--glibc",
            "2.31",
            str(crate),
        ],
        env=dict(os.environ, GLIBC_BUILD_NO_VENV="1"),
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT; a terminal's foreground job does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 300
        while not leftover_containers(docker_client):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the build never started a container"
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in err
    assert not leftover_containers(docker_client)
    assert not (crate / "dist").exists()


def test_user_cfg_rustflags_reach_the_container(docker_client, tmp_path):
    """A target.'cfg(...)' table in the crate's .cargo/config.toml must survive our flags."""
    crate = tmp_path / "cfgdock"
    (crate / "src").mkdir(parents=True)
    (crate / ".cargo").mkdir()
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "cfgdock"\nversion = "0.1.0"\n'
        'edition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n'
    )
    (crate / ".cargo" / "config.toml").write_text(
        '[target.\'cfg(target_os = "linux")\']\nrustflags = ["--cfg", "from_cfg_table"]\n'
    )
    (crate / "src" / "lib.rs").write_text(
        '#[cfg(not(from_cfg_table))] compile_error!("cfg() flags were lost");\n'
        '#[no_mangle] pub extern "C" fn plugin_entry() -> i32 { 0 }\n'
    )
    proc = run_tool(
        "--backend", "docker", "--recipe", "debian-bullseye", "--glibc", "2.31", crate, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert max(glibc_needs(crate / "dist" / "glibc-2.31" / "libcfgdock.so")) <= (2, 31)


def test_base_image_from_a_docker_save_archive(docker_build, docker_client, tmp_path):
    """Air-gapped without debootstrap: `image --base-archive` takes a real `docker save`."""
    archive = tmp_path / "bullseye.tar"
    with open(archive, "wb") as handle:
        from orchestrator.recipe import load_recipe

        bullseye = load_recipe("debian-bullseye").base_image  # made by docker_build
        for chunk in docker_client.images.get(bullseye).save():
            handle.write(chunk)
    base = "glibc-build-test/archive-base:1"
    (tmp_path / "from-archive.Dockerfile.j2").write_text(
        'FROM {{ base_image }}\nRUN test "$(getconf GNU_LIBC_VERSION)" = "glibc 2.31"\n'
    )
    recipe = tmp_path / "from-archive.toml"
    recipe.write_text(
        'name = "from-archive"\ndescription = "test"\nglibc = "2.31"\n'
        'template = "from-archive.Dockerfile.j2"\n'
        f'[base]\nimage = "{base}"\n'
    )
    try:
        without = run_tool("image", "--recipe", recipe)
        assert_clean_failure(without, 3, base, "cannot be pulled", "--base-archive")
        proc = run_tool("image", "--recipe", recipe, "--base-archive", archive, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        ref = proc.stdout.strip().splitlines()[-1]
        assert ref.startswith("glibc-build/from-archive:")
        assert docker_client.images.get(base).id
        assert docker_client.images.get(ref).id
    finally:
        for name in ("glibc-build/from-archive", base.split(":")[0]):
            for image in docker_client.images.list(name=name):
                docker_client.images.remove(image.id, force=True)
