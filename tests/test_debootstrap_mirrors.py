"""Where each Debian suite is fetched from, and the errors when a mirror fails us.

The mirror table is data (resources/debian-mirrors.toml); unit tests read it. The error tests
use real sockets on 127.0.0.1: a port that refuses connections, and a real HTTP server that
serves a tiny dists/ tree without the asked suite. This machine reaches only Debian's main
host, so archive.debian.org is never asked here.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.debootstrap import (
    ARCHIVE_MIRROR,
    FOUND,
    MISSING,
    choose_mirror,
    debootstrap_root,
    find_mirror,
    keyring_for,
    mirror_table,
    probe,
    suite_place,
)
from orchestrator.errors import DownloadFailed, UsageError
from tests.conftest import assert_clean_failure, have, run_tool

MAIN = "http://deb.debian.org/debian"
REMOVED_KEYS = Path("/usr/share/keyrings/debian-archive-removed-keys.gpg")
LIVE_KEYS = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    "suite, glibc", [("jessie", "2.19"), ("stretch", "2.24"), ("buster", "2.28")]
)
def test_retired_suites_come_from_the_archive_with_the_removed_keys(suite, glibc):
    place = suite_place(suite)
    assert place.mirrors == (ARCHIVE_MIRROR,) and place.glibc == glibc
    assert place.keyrings[0] == REMOVED_KEYS


@pytest.mark.unit
def test_bullseye_tries_the_main_host_then_the_archive():
    place = suite_place("bullseye")
    assert place.mirrors == (MAIN, ARCHIVE_MIRROR) and place.glibc == "2.31"
    assert set(place.keyrings) == {LIVE_KEYS, REMOVED_KEYS}


@pytest.mark.unit
def test_mirror_overrides_and_unknown_suites_keep_debootstraps_defaults():
    assert suite_place("buster", "http://mirror.example/debian").mirrors == (
        "http://mirror.example/debian",
    )
    focal = suite_place("focal")  # Ubuntu's: its debootstrap script knows its mirror
    assert focal.mirrors == () and focal.keyrings == ()


@pytest.mark.unit
def test_every_suite_names_known_hosts_and_keyrings():
    table = mirror_table()
    for name, entry in table["suites"].items():
        assert entry["hosts"] and set(entry["hosts"]) <= set(table["hosts"]), name
        assert entry["keyrings"] and set(entry["keyrings"]) <= set(table["keyrings"]), name
    assert table["hosts"]["archive"] == "http://archive.debian.org/debian"


@pytest.mark.unit
def test_a_malformed_table_is_one_line():
    with pytest.raises(UsageError, match="malformed"):
        suite_place("buster", table={"suites": {"buster": {"hosts": ["nowhere"]}}, "hosts": {}})


@pytest.mark.unit
def test_the_first_mirror_that_has_it_wins():
    assert choose_mirror("bullseye", {MAIN: MISSING, ARCHIVE_MIRROR: FOUND}) == ARCHIVE_MIRROR
    assert (
        choose_mirror("bullseye", {MAIN: "Connection refused", ARCHIVE_MIRROR: FOUND})
        == ARCHIVE_MIRROR
    )


@pytest.mark.unit
def test_missing_on_a_mirror_that_answers_is_exit_2_and_silence_is_exit_6():
    with pytest.raises(UsageError, match="'buster' is not on") as missing:
        choose_mirror("buster", {MAIN: MISSING, ARCHIVE_MIRROR: "timed out"})
    assert missing.value.exit_code == 2
    with pytest.raises(DownloadFailed, match=r"does not answer \(Connection refused\)") as silent:
        choose_mirror("buster", {MAIN: "Connection refused"})
    assert silent.value.exit_code == 6


@pytest.mark.skipif(
    not (REMOVED_KEYS.is_file() and LIVE_KEYS.is_file()),
    reason="debian-archive-keyring is not installed",
)
def test_the_keyrings_are_joined_into_one_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GLIBC_BUILD_CACHE", str(tmp_path))
    joined = keyring_for(suite_place("buster"))
    assert joined is not None and joined.is_relative_to(tmp_path)
    assert joined.read_bytes() == REMOVED_KEYS.read_bytes() + LIVE_KEYS.read_bytes()


# -- real sockets ------------------------------------------------------------------------------
@pytest.fixture
def refused_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_mirror(tmp_path) -> Iterator[str]:
    """A real HTTP server with dists/bookworm/Release and nothing else."""
    (tmp_path / "debian" / "dists" / "bookworm").mkdir(parents=True)
    (tmp_path / "debian" / "dists" / "bookworm" / "Release").write_text("Suite: stable\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_tells_found_missing_and_refused(fake_mirror, refused_port):
    assert probe(fake_mirror, "bookworm") == FOUND
    assert probe(fake_mirror, "buster") == MISSING
    assert "refused" in probe(f"http://127.0.0.1:{refused_port}/debian", "buster").lower()


def test_a_server_that_never_answers_is_cut_off_in_time():
    with socket.socket() as sock:  # accepts (backlog) but never replies
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        started = time.monotonic()
        answer = probe(f"http://127.0.0.1:{sock.getsockname()[1]}/debian", "buster", timeout=0.5)
        assert time.monotonic() - started < 5
    assert "0.5s" in answer or "timed out" in answer


needs_debootstrap = pytest.mark.skipif(
    not have("debootstrap") or os.geteuid() != 0,
    reason="debootstrap runs only as root, if installed",
)


@needs_debootstrap
def test_rootfs_on_a_mirror_that_refuses_is_exit_6_in_one_line(refused_port, tmp_path):
    mirror = f"http://127.0.0.1:{refused_port}/debian"
    started = time.monotonic()
    proc = run_tool(
        "rootfs",
        "--debootstrap",
        "buster",
        "--mirror",
        mirror,
        tmp_path / "root",
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert time.monotonic() - started < 60
    assert_clean_failure(proc, 6, mirror, "does not answer")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not any((tmp_path / "cache" / "debootstrap").glob("*")), "left something behind"


@needs_debootstrap
def test_rootfs_of_a_suite_the_mirror_lacks_is_exit_2(fake_mirror, tmp_path):
    proc = run_tool(
        "rootfs",
        "--debootstrap",
        "buster",
        "--mirror",
        fake_mirror,
        tmp_path / "root",
        env={"GLIBC_BUILD_CACHE": str(tmp_path / "cache")},
    )
    assert_clean_failure(proc, 2, "'buster' is not on", fake_mirror)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bullseye_is_found_for_real(bullseye_root):
    """The real hosts: the main one while bullseye is there, then the archive."""
    assert find_mirror(suite_place("bullseye")) in (MAIN, ARCHIVE_MIRROR)
    assert debootstrap_root("bullseye") == bullseye_root
