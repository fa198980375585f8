"""The pure parts of roots and verify-load: the loader-report interpreter, link clamping,
member-name and metadata checks, and the JSON shape checks of image archives.

No tools, no files written: each runs in milliseconds (`sh tests/run.sh -m unit`).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from orchestrator.errors import BadInput, UnsafeArchive
from orchestrator.image_archive import (
    _wanted,
    blob_name,
    diff_ids,
    docker_save_entry,
    json_type,
)
from orchestrator.layers import (
    MAX_NAME_IN_MESSAGE,
    _Touched,
    check_member_metadata,
    member_parts,
    short,
)
from orchestrator.prove import RootInfo, _interpret, outside_root

pytestmark = pytest.mark.unit

ROOT = Path("/nonexistent-test-root")  # realpath of paths below it is lexical
INFO = RootInfo(
    root=ROOT, ld_so=ROOT / "lib/ld-2.31.so", library_path=(ROOT / "lib",), glibc="2.31"
)
LIB = Path("/nonexistent-build/libplugin.so")
LOADER = Path("/nonexistent-cache/loader")
ARCHIVE = Path("image.tar")
DIGEST = "sha256:" + "ab" * 32


def interpret(
    report: str,
    returncode: int = 0,
    *,
    call: str | None = None,
    timed_out: bool = False,
    output: str = "",
):
    return _interpret(INFO, LIB, call, returncode, report, output, timed_out, 60.0, loader=LOADER)


def lines(*pairs: tuple[str, str]) -> str:
    return "".join(f"{key}\t{value}\n" for key, value in pairs)


LOADED = lines(
    ("start", ""),
    ("loaded", str(LIB)),
    ("object", str(ROOT / "lib/libc.so.6")),
    ("mapped", str(LOADER)),
    ("mapped", str(LIB)),
    ("mapped", str(ROOT / "lib/libc-2.31.so")),
    ("object", "linux-vdso.so.1"),
)


# -- the loader-report interpreter -------------------------------------------------------------
def test_a_clean_load_is_ok_and_own_files_are_not_leaks():
    result = interpret(LOADED + lines(("done", "")))
    assert result.ok and result.loaded and result.message == ""
    assert result.objects == [str(ROOT / "lib/libc.so.6"), "linux-vdso.so.1"]


def test_no_start_line_means_the_roots_glibc_cannot_run_the_loader():
    with pytest.raises(BadInput, match="cannot run the test loader"):
        interpret("", 127)
    with pytest.raises(BadInput, match="did not start the test loader within 60s"):
        interpret("", -9, timed_out=True)


def test_a_refusal_carries_glibcs_own_words():
    result = interpret(lines(("start", ""), ("refused", "version `GLIBC_2.34' not found")), 10)
    assert not result.ok and not result.loaded
    assert result.message == "version `GLIBC_2.34' not found"


def test_a_crash_in_a_constructor_is_not_a_load():
    result = interpret(lines(("start", "")), -11)
    assert not result.loaded and result.signal == "SIGSEGV"
    assert "while loading" in result.message


def test_an_object_whose_real_path_leaves_the_root_fails_the_load():
    """Named inside the root, mapped from the host: a symlink that climbs out."""
    report = LOADED + lines(
        ("object", str(ROOT / "usr/local/lib/libleak.so")),
        ("mapped", "/home/build/libleak.so"),
        ("done", ""),
    )
    result = interpret(report)
    assert not result.ok and not result.loaded
    assert "outside the root" in result.message and "/home/build/libleak.so" in result.message


def test_an_object_from_the_hosts_default_folders_is_named_as_such():
    report = LOADED + lines(("object", "/usr/lib/nonexistent-libffi.so.8"), ("done", ""))
    result = interpret(report)
    assert not result.ok
    assert result.message == (
        "needs libraries the root does not have: nonexistent-libffi.so.8 "
        "(found only on this host, as /usr/lib/nonexistent-libffi.so.8)"
    )


def test_many_outside_objects_give_one_bounded_message():
    report = LOADED + "".join(f"mapped\t/host/lib{i}.so\n" for i in range(500)) + "done\t\n"
    result = interpret(report)
    assert "and 497 more" in result.message and len(result.message) < 400


def test_a_call_that_returns_non_zero_or_crashes_is_a_failure():
    report = LOADED + lines(("calling", "plugin_entry"), ("returned", "3"), ("done", ""))
    result = interpret(report, 12, call="plugin_entry")
    assert result.called and result.returned == 3 and not result.ok
    assert result.message == "plugin_entry() returned 3"
    crashed = interpret(LOADED + lines(("calling", "plugin_entry")), -11, call="plugin_entry")
    assert crashed.called and crashed.returned is None
    assert crashed.message == "plugin_entry() crashed with SIGSEGV"


def test_a_missing_symbol_is_reported_with_dlerrors_text():
    report = LOADED + lines(("nosymbol", "undefined symbol: nope"))
    result = interpret(report, 11, call="nope")
    assert result.loaded and not result.ok and result.message == "undefined symbol: nope"


def test_outside_root_keeps_the_first_name_and_skips_own_files():
    found = outside_root(
        [
            "linux-vdso.so.1",
            str(LOADER),
            "/host/a.so",
            "/host/a.so (deleted)",
            str(ROOT / "lib/x.so"),
        ],
        ROOT,
        (LOADER,),
    )
    assert found == {Path("/host/a.so"): "/host/a.so"}


# -- layer members -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, needle",
    [
        ("/etc/passwd", "absolute"),
        ("a/../../b", "climbs out"),
        ("a\0b", "NUL byte"),
        ("a/" * 201, "nested more than 200"),
    ],
)
def test_member_names_that_are_refused(name, needle):
    with pytest.raises(UnsafeArchive, match=needle):
        member_parts(name, "layer")


def test_member_names_that_are_kept():
    assert member_parts("./usr//lib/./x", "layer") == ("usr", "lib", "x")
    assert member_parts(".", "layer") == ()


def test_long_names_are_shortened_in_messages():
    text = short("n" * 50_000_000)
    assert len(text) < MAX_NAME_IN_MESSAGE + 40 and "50000000 characters" in text
    assert short("usr/lib") == "'usr/lib'"
    with pytest.raises(UnsafeArchive) as caught:
        member_parts("/" + "x" * 1_000_000, "layer")
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("mtime", [float("nan"), float("inf"), -float("inf"), 1e300, -(2.0**41)])
def test_member_times_no_file_can_have_are_refused(mtime):
    member = tarfile.TarInfo("f")
    member.mtime = mtime  # type: ignore[assignment]
    with pytest.raises(UnsafeArchive, match="modification time"):
        check_member_metadata(member, "layer")


def test_member_times_and_links_that_are_fine():
    member = tarfile.TarInfo("f")
    member.mtime, member.linkname = -86400, "target"
    check_member_metadata(member, "layer")
    member.linkname = "tar\0get"
    with pytest.raises(UnsafeArchive, match="NUL"):
        check_member_metadata(member, "layer")


def test_touched_paths_know_their_ancestors():
    touched = _Touched()
    touched.add(("opt", "new"))
    touched.add(("opt", "sub", "deep"))
    assert ("opt",) in touched and ("opt", "sub") in touched and ("opt", "new") in touched
    assert ("opt", "old") not in touched and ("etc",) not in touched
    assert touched.nodes == 4


# -- archive JSON shapes ---------------------------------------------------------------------------
def config(ids: object) -> dict[str, object]:
    return {"rootfs": {"type": "layers", "diff_ids": ids}}


def test_diff_ids_must_be_a_list_of_sha256_digests_one_per_layer():
    assert diff_ids(config([DIGEST]), 1, ARCHIVE) == [DIGEST]
    for bad, needle in [
        (DIGEST, "is a string, not a JSON list"),
        (5, "is a number"),
        ({"a": 1}, "is an object"),
        ([DIGEST, DIGEST], "2 layer digests"),
        (["md5:00"], "malformed digest"),
        ([7], "malformed digest"),
    ]:
        with pytest.raises(BadInput, match=needle):
            diff_ids(config(bad), 1, ARCHIVE)
    with pytest.raises(BadInput, match="no rootfs.diff_ids"):
        diff_ids({}, 1, ARCHIVE)
    with pytest.raises(BadInput, match="the image config is a list"):
        diff_ids([1], 1, ARCHIVE)


def test_docker_save_manifest_shapes():
    entry = {"Config": "c.json", "Layers": ["a/layer.tar"]}
    assert docker_save_entry([entry], ARCHIVE) == ("c.json", ["a/layer.tar"])
    for bad, needle in [
        ({"a": 1}, "is an object, not a JSON list"),
        ([], "lists no image"),
        ([entry, entry], "holds 2 images"),
        (["x"], "is a string"),
        ([{"Config": "c", "Layers": [1]}], "no Config and Layers"),
        ([{"Config": 1, "Layers": []}], "no Config and Layers"),
    ]:
        with pytest.raises(BadInput, match=needle):
            docker_save_entry(bad, ARCHIVE)


def test_descriptor_annotations_and_platform_must_be_objects():
    assert _wanted({"platform": {"architecture": "amd64", "os": "linux"}}, "amd64", ARCHIVE)
    assert not _wanted({"platform": {"architecture": "arm64"}}, "amd64", ARCHIVE)
    assert not _wanted(
        {"annotations": {"vnd.docker.reference.type": "attestation-manifest"}}, "amd64", ARCHIVE
    )
    assert _wanted({"annotations": None, "platform": None}, "amd64", ARCHIVE)
    for field in ("annotations", "platform"):
        for value in (["a"], "linux/amd64", 3):
            with pytest.raises(BadInput, match=f"a descriptor's {field} is"):
                _wanted({field: value}, "amd64", ARCHIVE)


def test_digests_and_json_type_names():
    assert blob_name(DIGEST, ARCHIVE) == "blobs/sha256/" + "ab" * 32
    with pytest.raises(BadInput, match="malformed digest"):
        blob_name(["x"], ARCHIVE)
    with pytest.raises(BadInput) as caught:
        blob_name("sha256:" + "0" * 10_000, ARCHIVE)
    assert len(str(caught.value)) < 300
    assert [json_type(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "a list",
        "an object",
    ]
