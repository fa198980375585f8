"""The sysroot's pure parts: Debian's index formats, dependency closure, paths kept inside."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from orchestrator import debian, sysroot
from orchestrator.errors import BadInput

pytestmark = pytest.mark.unit

XZ_SHA = "1c3405444297ead864711c18e64bce4810db63b48340a2f9d81182d9f235ad71"
RELEASE = f"""Origin: Debian
Suite: oldstable
SHA256:
 c974c29a32187129bcd03242961dcdd1561f12e65c80dcfcb067054824225d80 45561367 main/b/Packages
 {XZ_SHA}  8065948 main/binary-amd64/Packages.xz
"""

PACKAGES = """Package: libasound2-dev
Version: 1.2.4-1.1
Depends: libasound2 (= 1.2.4-1.1), libc6-dev | libc-dev
Filename: pool/main/a/alsa-lib/libasound2-dev_1.2.4-1.1_amd64.deb
Size: 10
SHA256: aa

Package: libasound2
Version: 1.2.4-1.1
Pre-Depends: libc6 (>= 2.17)
Depends: libasound2-data (>= 1.2.4-1.1), libc6 (>= 2.29)
Filename: pool/main/a/alsa-lib/libasound2_1.2.4-1.1_amd64.deb
SHA256: bb

Package: libasound2-data
Version: 1.2.4-1.1
Filename: pool/main/a/alsa-lib/libasound2-data_1.2.4-1.1_all.deb
SHA256: cc

Package: libudev-dev
Depends: libudev1 (= 247), pkg-config-virtual:any
Filename: pool/u.deb
SHA256: dd

Package: libudev1
Filename: pool/u1.deb
SHA256: ee

Package: pkgconf
Provides: pkg-config-virtual
Filename: pool/p.deb
SHA256: ff

Package: libc6
Filename: pool/c.deb
SHA256: 00
"""


def test_release_gives_each_index_its_sha256_and_size():
    hashes = debian.release_hashes(RELEASE)
    assert hashes["main/binary-amd64/Packages.xz"] == (XZ_SHA, 8065948)
    assert hashes["main/b/Packages"][1] == 45561367


def test_relations_keep_names_and_alternatives_only():
    assert debian.relation_names("a (>= 1) | b:any, c [amd64], d:native (<< 2)") == (
        ("a", "b"),
        ("c",),
        ("d",),
    )


def test_closure_follows_depends_and_skips_what_zig_provides():
    index = debian.parse_packages(PACKAGES)
    skip = debian.archive().provided_by_zig
    names = [p.name for p in debian.closure(["libasound2-dev"], index, skip, where="test")]
    assert names == ["libasound2", "libasound2-data", "libasound2-dev"]  # no libc6


def test_closure_resolves_a_virtual_package_by_its_provider():
    index = debian.parse_packages(PACKAGES)
    names = [p.name for p in debian.closure(["libudev-dev"], index, frozenset(), where="t")]
    assert names == ["libudev-dev", "libudev1", "pkgconf"]


def test_an_unknown_package_is_refused_naming_it():
    with pytest.raises(BadInput, match="libnope-dev: no such package in Debian x"):
        debian.closure(
            ["libnope-dev"], debian.parse_packages(PACKAGES), frozenset(), where="Debian x"
        )


@pytest.mark.parametrize(
    "suite, package", [("Bullseye", "libasound2-dev"), ("bullseye", "../etc"), ("bullseye", "-x")]
)
def test_malformed_names_are_refused_before_any_download(suite, package):
    with pytest.raises(BadInput):
        debian.check_names(suite, [package])


@pytest.mark.parametrize(
    "link, target, expected",
    [
        (
            "usr/lib/x86_64-linux-gnu/libz.so",
            "/lib/x86_64-linux-gnu/libz.so.1",
            "../../../lib/x86_64-linux-gnu/libz.so.1",
        ),
        ("usr/lib/x86_64-linux-gnu/libasound.so", "libasound.so.2.0.0", "libasound.so.2.0.0"),
        ("usr/lib/a.so", "../../../etc/passwd", None),  # would leave the sysroot
        ("usr/lib/b.so", "/", "../.."),
    ],
)
def test_symlinks_are_made_relative_and_kept_inside(link, target, expected):
    assert sysroot.link_inside(PurePosixPath(link), target) == expected


def test_member_paths_that_leave_the_root_are_dropped():
    root = Path("/r")
    assert sysroot.inside(root, "./usr/include/x.h") == PurePosixPath("usr/include/x.h")
    assert sysroot.inside(root, "../etc/passwd") is None
    assert sysroot.inside(root, "./") is None


def _deb(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def test_a_deb_is_unpacked_with_its_absolute_links_rewritten(tmp_path):
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:xz") as tar:
        for name, data in (("./usr/include/alsa/asoundlib.h", b"/* h */"), ("./../escape", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("./usr/lib/x86_64-linux-gnu/libz.so")
        link.type, link.linkname = tarfile.SYMTYPE, "/lib/x86_64-linux-gnu/libz.so.1"
        tar.addfile(link)
    deb = tmp_path / "p.deb"
    deb.write_bytes(
        _deb({"debian-binary": b"2.0\n", "control.tar.xz": b"", "data.tar.xz": payload.getvalue()})
    )
    root = tmp_path / "root"
    root.mkdir()
    sysroot.unpack_deb(deb, root)
    assert (root / "usr/include/alsa/asoundlib.h").read_bytes() == b"/* h */"
    assert not (tmp_path / "escape").exists()
    assert (root / "usr/lib/x86_64-linux-gnu/libz.so").readlink() == Path(
        "../../../lib/x86_64-linux-gnu/libz.so.1"
    )


def test_the_cache_key_is_the_suite_the_architecture_and_the_package_set():
    key = sysroot.sysroot_key("bullseye", "amd64", ["b", "a", "a"])
    assert key == sysroot.sysroot_key("bullseye", "amd64", ["a", "b"])
    assert key != sysroot.sysroot_key("bookworm", "amd64", ["a", "b"])
    assert key != sysroot.sysroot_key("bullseye", "arm64", ["a", "b"])


def test_pkg_config_and_zig_look_in_the_sysroot_only():
    root = sysroot.Sysroot(
        path=Path("/s"), suite="bullseye", multiarch="x86_64-linux-gnu", packages=()
    )
    env = sysroot.pkg_config_env(root)
    assert env["PKG_CONFIG_SYSROOT_DIR"] == "/s" and env["PKG_CONFIG_PATH"] == ""
    assert all(d.startswith("/s/") for d in env["PKG_CONFIG_LIBDIR"].split(":"))
    args = sysroot.compiler_args(root)
    assert args[:2] == ["-idirafter", "/s/usr/include/x86_64-linux-gnu"]
    assert "-I" not in args and "-isystem" not in args  # never before zig's libc headers
    assert "-L/s/usr/lib/x86_64-linux-gnu" in args
