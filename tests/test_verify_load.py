"""verify-load against a real Debian bullseye root (glibc 2.31) and its real dynamic loader.

The libraries are real ELF files: C plugins built by zig for glibc 2.17, and the same source
linked by this host's gcc against glibc 2.36, which binds pthread_create@GLIBC_2.34. Image
roots are real archives: one written here from the bullseye root, one made by the real Docker
engine (`docker import` + `docker save`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from orchestrator.elffile import PT_LOAD, open_elf
from orchestrator.errors import BadInput, UsageError
from orchestrator.prove import inspect_root, resolve_in_root, verify_load
from orchestrator.targets import TARGETS
from tests.conftest import assert_clean_failure, run_tool, zig_shared_library

X86_64 = TARGETS["x86_64-unknown-linux-gnu"]
GLIBC_234_REFUSAL = "version `GLIBC_2.34' not found"

PLUGIN = r"""
#include <pthread.h>
#include <stdio.h>
static void *work(void *arg) { *(int *)arg = 42; return NULL; }
int plugin_entry(void) {
    int value = 0;
    pthread_t thread;
    if (pthread_create(&thread, NULL, work, &value) != 0) return 2;
    pthread_join(thread, NULL);
    printf("hello from plugin, thread said %d\n", value);
    fprintf(stderr, "and a line on stderr\n");
    return value == 42 ? 0 : 1;
}
"""
MISBEHAVING = {
    "returns3": 'int plugin_entry(void) { puts("returning 3"); return 3; }',
    "crashes": 'int plugin_entry(void) { puts("about to crash");'
    " *(volatile int *)0 = 1; return 0; }",
    "ctor_aborts": "__attribute__((constructor)) static void init(void) { abort(); }\n"
    "int plugin_entry(void) { return 0; }",
    "hangs": "int plugin_entry(void) { for (;;) pause(); }",
    "exits": 'int plugin_entry(void) { puts("bye"); exit(7); }',
}
HEADERS = "#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n"


def glibc_versions_needed(lib: Path) -> set[str]:
    out = subprocess.run(
        ["readelf", "-V", "-W", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    return {word for word in out.split() if word.startswith("GLIBC_")}


@pytest.fixture(scope="module")
def libs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("libs")
    built = {"zig": zig_shared_library(PLUGIN, folder / "libplugin_zig.so", "-lpthread")}
    host = folder / "libplugin_host.so"
    (folder / "host.c").write_text(PLUGIN)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-pthread", "-o", str(host), str(folder / "host.c")], check=True
    )
    built["host"] = host
    for name, body in MISBEHAVING.items():
        built[name] = zig_shared_library(HEADERS + body, folder / f"lib{name}.so")
    return built


def test_the_two_builds_differ_as_the_test_needs(libs):
    """Preconditions: zig's build needs nothing past 2.17, gcc's needs GLIBC_2.34."""
    assert "GLIBC_2.34" in glibc_versions_needed(libs["host"])
    zig_needs = glibc_versions_needed(libs["zig"])
    assert zig_needs and all(
        v in ("GLIBC_2.2.5", "GLIBC_2.3.2", "GLIBC_2.17")
        or tuple(map(int, v[6:].split("."))) <= (2, 17)
        for v in zig_needs
    )


# -- the proof -------------------------------------------------------------------------------
def test_zig_plugin_loads_and_runs_in_bullseye(libs, bullseye_root):
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", libs["zig"])
    assert proc.returncode == 0, proc.stderr
    assert "libplugin_zig.so: loaded" in proc.stderr
    assert "hello from plugin, thread said 42" in proc.stderr
    assert "and a line on stderr" in proc.stderr
    assert "plugin_entry() returned 0" in proc.stderr
    assert "with glibc 2.31 of" in proc.stderr


def test_host_gcc_plugin_is_refused_with_glibcs_own_message(libs, bullseye_root):
    proc = run_tool(
        "verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", libs["host"]
    )
    assert_clean_failure(proc, 1, GLIBC_234_REFUSAL, "libplugin_host.so")
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and GLIBC_234_REFUSAL in error_lines[0]
    assert "hello from plugin" not in proc.stderr


def test_json_summary_and_api_agree(libs, bullseye_root):
    proc = run_tool(
        "verify-load",
        "--rootfs",
        bullseye_root,
        "--call",
        "plugin_entry",
        "--json",
        libs["zig"],
        libs["host"],
    )
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert summary["glibc"] == "2.31" and summary["ok"] is False
    good, bad = summary["results"]
    assert (good["loaded"], good["called"], good["returned"], good["ok"]) == (True, True, 0, True)
    assert (bad["loaded"], bad["called"], bad["ok"]) == (False, False, False)

    zig, host = verify_load(bullseye_root, [libs["zig"], libs["host"]], call="plugin_entry")
    assert zig.ok and zig.loaded and zig.called and zig.returned == 0
    assert "hello from plugin, thread said 42\n" in zig.output
    assert any(
        obj.endswith("/libc.so.6") and obj.startswith(str(bullseye_root)) for obj in zig.objects
    )
    assert not host.ok and not host.loaded and host.returned is None
    assert GLIBC_234_REFUSAL in host.message and "libplugin_host.so" in host.message


def test_load_without_call_runs_no_code(libs, bullseye_root):
    (result,) = verify_load(bullseye_root, [libs["returns3"]])
    assert result.ok and result.loaded and not result.called and result.output == ""


@pytest.mark.parametrize(
    "name, check",
    [
        (
            "returns3",
            lambda r: (
                r.called
                and r.returned == 3
                and "returned 3" in r.message
                and "returning 3" in r.output
            ),
        ),
        (
            "crashes",
            lambda r: (
                r.loaded
                and r.called
                and r.signal == "SIGSEGV"
                and "crashed with SIGSEGV" in r.message
                and "about to crash" in r.output
            ),
        ),
        (
            "ctor_aborts",
            lambda r: not r.loaded and r.signal == "SIGABRT" and "while loading" in r.message,
        ),
        ("hangs", lambda r: r.called and r.returned is None and "within 3s" in r.message),
        (
            "exits",
            lambda r: (
                r.called and r.returned is None and "status 7" in r.message and "bye" in r.output
            ),
        ),
    ],
)
def test_misbehaving_plugins_are_reported(name, check, libs, bullseye_root):
    (result,) = verify_load(bullseye_root, [libs[name]], call="plugin_entry", timeout=3)
    assert not result.ok
    assert check(result), result


def test_missing_symbol_and_failed_call_exit_1(libs, bullseye_root):
    proc = run_tool(
        "verify-load", "--rootfs", bullseye_root, "--call", "no_such_entry", libs["zig"]
    )
    assert_clean_failure(proc, 1, "undefined symbol: no_such_entry")
    proc = run_tool(
        "verify-load", "--rootfs", bullseye_root, "--call", "plugin_entry", libs["crashes"]
    )
    assert_clean_failure(proc, 1, "SIGSEGV")


HOST_LIBFFI = Path("/usr/lib/x86_64-linux-gnu/libffi.so.8")


@pytest.mark.skipif(not HOST_LIBFFI.exists(), reason="this host has no libffi.so.8")
def test_a_dependency_found_only_on_the_host_is_not_a_pass(tmp_path, bullseye_root):
    """ld.so also searches the *host's* /lib for what the root lacks: that must not count."""
    assert not list(bullseye_root.glob("usr/lib/x86_64-linux-gnu/libffi.so.8*"))
    lib = zig_shared_library(
        "extern void ffi_call(void);\nvoid *plugin_entry(void) { return (void *)ffi_call; }",
        tmp_path / "libuses_ffi.so",
        "-L/usr/lib/x86_64-linux-gnu",
        "-l:libffi.so.8",
    )
    (result,) = verify_load(bullseye_root, [lib])
    assert not result.ok and not result.loaded
    assert "libffi.so.8" in result.message and "only on this host" in result.message


# -- paths inside a root resolve against the root -------------------------------------------
def test_absolute_symlinks_resolve_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu/marker").write_text("inside")
    (root / "lib").symlink_to("usr/lib")
    (root / "lib64").symlink_to("/lib/x86_64-linux-gnu")  # absolute: means ROOT/lib/...
    (root / "up").symlink_to("../../../../..")
    (root / "loop").symlink_to("loop")
    assert resolve_in_root(root, "lib64/marker") == root / "usr/lib/x86_64-linux-gnu/marker"
    assert (
        resolve_in_root(root, "/lib64/../x86_64-linux-gnu/marker")
        == root / "usr/lib/x86_64-linux-gnu/marker"
    )
    assert (
        resolve_in_root(root, "up/usr/lib/x86_64-linux-gnu/marker")
        == root / "usr/lib/x86_64-linux-gnu/marker"
    )  # `..` stops at the root
    assert resolve_in_root(root, "up/etc/passwd") is None  # not the host's /etc/passwd
    assert resolve_in_root(root, "loop/x") is None


def test_bullseye_loader_is_found_through_its_absolute_symlink(bullseye_root):
    # lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-2.31.so, which the host lacks.
    assert os.readlink(bullseye_root / "usr/lib64/ld-linux-x86-64.so.2").startswith("/lib/")
    assert not Path("/lib/x86_64-linux-gnu/ld-2.31.so").exists()
    info = inspect_root(bullseye_root, X86_64)
    assert info.ld_so == bullseye_root / "usr/lib/x86_64-linux-gnu/ld-2.31.so"
    assert info.glibc == "2.31"
    assert bullseye_root / "usr/lib/x86_64-linux-gnu" in info.library_path
    assert all(p.is_relative_to(bullseye_root) for p in info.library_path)


# -- bad input -------------------------------------------------------------------------------
@pytest.fixture
def not_elf(tmp_path) -> Path:
    path = tmp_path / "libnot.so"
    path.write_text("just text")
    return path


@pytest.fixture
def truncated(tmp_path, libs) -> Path:
    """The first 3000 bytes of gcc's plugin: headers intact, code and dynamic section cut off
    (a copy that stopped early). The loader maps it all the same and dies of SIGBUS."""
    with open_elf(libs["host"]) as elf:
        assert max(s.offset + s.filesz for s in elf.segments if s.type == PT_LOAD) > 3000
    path = tmp_path / "libtrunc.so"
    path.write_bytes(libs["host"].read_bytes()[:3000])
    return path


@pytest.mark.parametrize(
    "make_args, needle",
    [
        (lambda t, r, lib: ["--rootfs", t / "nope", lib], "no such folder"),
        (lambda t, r, lib: ["--rootfs", t, lib], "is not a glibc root"),
        (lambda t, r, lib: ["--rootfs", r, t / "missing.so"], "missing.so: no such file"),
        (lambda t, r, lib: ["--rootfs", r, t / "libnot.so"], "not an ELF file"),
        (lambda t, r, lib: ["--rootfs", r, "/bin/true"], "not a shared library"),
        (lambda t, r, lib: ["--rootfs", r, "--image", t / "x.tar", lib], "exactly one"),
        (lambda t, r, lib: [lib], "exactly one"),
        (lambda t, r, lib: ["--image", r, lib], "not an image archive"),
        (lambda t, r, lib: ["--rootfs", r, "--call", "x; rm -rf /", lib], "not a symbol name"),
        (lambda t, r, lib: ["--rootfs", r, "--target", "mips-unknown-linux-gnu", lib], "--target"),
        (lambda t, r, lib: ["--rootfs", r, "--timeout", "nan", lib], "--timeout nan"),
        (lambda t, r, lib: ["--rootfs", r, "--timeout", "inf", lib], "--timeout inf"),
        (lambda t, r, lib: ["--rootfs", r, "--timeout", "1e300", lib], "--timeout 1e+300"),
        (lambda t, r, lib: ["--rootfs", r, "--timeout", "0", lib], "--timeout 0"),
        (lambda t, r, lib: ["--rootfs", r, "--timeout", "-1", lib], "--timeout -1"),
        (lambda t, r, lib: ["--rootfs", r, t / "libtrunc.so"], "libtrunc.so: "),
    ],
)
def test_bad_input_is_one_clean_line_exit_2(
    make_args, needle, tmp_path, not_elf, truncated, libs, bullseye_root
):
    proc = run_tool("verify-load", *make_args(tmp_path, bullseye_root, libs["zig"]))
    assert_clean_failure(proc, 2, needle)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_api_rejects_bad_input_before_running_anything(tmp_path, libs):
    with pytest.raises(BadInput, match="not a glibc root"):
        verify_load(tmp_path, [libs["zig"]])


def test_a_truncated_library_is_bad_input_as_in_check(truncated, bullseye_root):
    """check and verify-load read ELF the same way: malformed is exit 2 for both, and the
    loader never maps a file whose segments lie past its end (that dies of SIGBUS)."""
    assert_clean_failure(run_tool("check", truncated), 2, str(truncated), "truncated")
    proc = run_tool("verify-load", "--rootfs", bullseye_root, truncated)
    assert_clean_failure(proc, 2, str(truncated), "truncated")
    assert "loading" not in proc.stderr  # refused before anything ran
    with pytest.raises(BadInput, match="truncated"):
        verify_load(bullseye_root, [truncated])


def test_api_refuses_a_timeout_that_is_not_a_finite_positive_number(libs, bullseye_root):
    for timeout in (float("nan"), float("inf"), 0.0, -5.0):
        with pytest.raises(UsageError, match="--timeout"):
            verify_load(bullseye_root, [libs["zig"]], timeout=timeout)


# -- roots from image archives ---------------------------------------------------------------
@pytest.fixture(scope="module")
def bullseye_layer(bullseye_root, tmp_path_factory) -> Path:
    """The bullseye root as one uncompressed layer tar (device nodes and hard links included)."""
    path = tmp_path_factory.mktemp("layer") / "layer.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(bullseye_root, arcname=".")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def bullseye_docker_save(bullseye_layer, tmp_path_factory) -> Path:
    """A `docker save`-style tarball written here: manifest.json, config, one layer."""
    diff_id = sha256_file(bullseye_layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["bullseye:test"], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    archive = tmp_path_factory.mktemp("archive") / "bullseye.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(bullseye_layer, arcname=f"{diff_id}/layer.tar")
    return archive


@pytest.mark.slow
def test_root_unpacked_from_docker_save_archive_loads_too(
    bullseye_docker_save, bullseye_root, libs, tmp_path
):
    dest = tmp_path / "root"
    cache = {"GLIBC_BUILD_CACHE": str(tmp_path / "cache")}
    proc = run_tool("rootfs", "--image", bullseye_docker_save, dest, env=cache)
    assert proc.returncode == 0, proc.stderr
    link = "usr/lib64/ld-linux-x86-64.so.2"
    # Clamped to DEST (issue 11 item 4; it was verbatim, absolute): the kernel finds the
    # root's own loader, not the host's.
    assert os.readlink(dest / link) == "../../lib/x86_64-linux-gnu/ld-2.31.so"
    assert os.path.realpath(dest / link) == os.path.realpath(
        dest / "usr/lib/x86_64-linux-gnu/ld-2.31.so"
    )
    assert not (dest / "dev/null").exists()  # device nodes are skipped
    proc = run_tool(
        "verify-load", "--rootfs", dest, "--call", "plugin_entry", libs["zig"], env=cache
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello from plugin, thread said 42" in proc.stderr
    proc = run_tool("verify-load", "--image", bullseye_docker_save, libs["host"], env=cache)
    assert_clean_failure(proc, 1, GLIBC_234_REFUSAL)
    assert [
        p.name for p in (tmp_path / "cache" / "images").iterdir() if not p.name.startswith(".")
    ], "the archive was not unpacked into the cache"


@pytest.mark.slow
@pytest.mark.docker
def test_real_docker_import_and_save_is_read(docker_client, bullseye_layer, libs, tmp_path):
    ref = f"glibc-build-test/bullseye-import:{uuid.uuid4().hex[:12]}"
    repository, tag = ref.split(":")
    docker_client.api.import_image(src=str(bullseye_layer), repository=repository, tag=tag)
    try:
        saved = tmp_path / "saved.tar"
        with open(saved, "wb") as handle:
            for chunk in docker_client.images.get(ref).save(named=True):
                handle.write(chunk)
    finally:
        docker_client.images.remove(ref, force=True)
    with tarfile.open(saved) as tar:
        assert "manifest.json" in tar.getnames()
    proc = run_tool(
        "verify-load",
        "--image",
        saved,
        "--call",
        "plugin_entry",
        libs["zig"],
        libs["host"],
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert_clean_failure(proc, 1, GLIBC_234_REFUSAL)
    assert "libplugin_zig.so: loaded" in proc.stderr
    assert "hello from plugin, thread said 42" in proc.stderr


def test_rootfs_debootstrap_copies_the_cached_root(bullseye_root, libs, tmp_path):
    dest = tmp_path / "bullseye"
    proc = run_tool("rootfs", "--debootstrap", "bullseye", dest)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "usr/lib/x86_64-linux-gnu/libc-2.31.so").is_file()
    assert (dest / "dev/null").is_char_device()  # cp -a keeps the root as debootstrap made it
    for link in [p for p in dest.rglob("*") if p.is_symlink()]:  # clamped (issue 11 item 4)
        assert Path(os.path.realpath(link)).is_relative_to(dest.resolve()), link
    proc = run_tool("verify-load", "--rootfs", dest, "--call", "plugin_entry", libs["zig"])
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(dest)


# -- a root whose symlinks lead out of it (issue 11 item 4) -------------------------------------
@pytest.fixture
def leaky_root(tmp_path, bullseye_root) -> Path:
    """A copy of the bullseye root (hard links: nothing written into the cached files)."""
    root = tmp_path / "leaky-root"
    subprocess.run(["cp", "-al", "--", str(bullseye_root), str(root)], check=True)
    return root


def test_a_symlink_that_climbs_out_of_the_root_is_not_a_pass(leaky_root, tmp_path):
    """usr/local/lib (first in the root's ld.so.conf) links out to a host file: a failure."""
    outside = tmp_path / "host-only"
    outside.mkdir()
    zig_shared_library("int leak(void) { return 0; }", outside / "libleak.so")
    lib = zig_shared_library(
        "extern int leak(void);\nint plugin_entry(void) { return leak(); }",
        tmp_path / "libuses_leak.so",
        f"-L{outside}",
        "-lleak",
    )
    climb = "../" * 12 + str(outside / "libleak.so").lstrip("/")
    (leaky_root / "usr/local/lib/libleak.so").symlink_to(climb)
    assert (leaky_root / "usr/local/lib/libleak.so").resolve() == outside / "libleak.so"

    (result,) = verify_load(leaky_root, [lib], "plugin_entry")
    assert not result.ok and not result.loaded
    assert "libleak.so" in result.message and "outside the root" in result.message
    proc = run_tool("verify-load", "--rootfs", leaky_root, lib)
    assert_clean_failure(proc, 1, "libleak.so", str(outside / "libleak.so"))
    assert len([line for line in proc.stderr.splitlines() if "error" in line]) == 1


def test_the_same_link_unpacked_from_an_image_stays_inside(tmp_path):
    """`rootfs --image` clamps the link: it resolves inside DEST, to the root's own file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("usr", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/local", "usr/local/lib"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("usr/lib/x86_64-linux-gnu/libc.so.6")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"mine"))
        info = tarfile.TarInfo("usr/local/lib/libc.so.6")
        info.type, info.linkname = tarfile.SYMTYPE, "../" * 8 + "usr/lib/x86_64-linux-gnu/libc.so.6"
        tar.addfile(info)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]}})
    config_name = hashlib.sha256(config.encode()).hexdigest() + ".json"
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for name, content in (
            (config_name, config.encode()),
            (f"{digest}/layer.tar", data),
            (
                "manifest.json",
                json.dumps([{"Config": config_name, "Layers": [f"{digest}/layer.tar"]}]).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    dest = tmp_path / "dest"
    proc = run_tool("rootfs", "--image", archive, dest)
    assert proc.returncode == 0, proc.stderr
    link = dest / "usr/local/lib/libc.so.6"
    assert Path(os.path.realpath(link)) == (dest / "usr/lib/x86_64-linux-gnu/libc.so.6").resolve()
    assert link.read_text() == "mine"
