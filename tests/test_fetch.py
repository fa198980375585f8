"""fetch: real gpg keys and signatures, a real HTTP server on 127.0.0.1, real files.

The server (written here) speaks HTTP/1.1 with Range, If-Range and ETag, and can be told to
drop a connection part-way, ignore Range, answer 503 first, trickle bytes slowly, or drip
them one at a time. Keys
are made once per session with `gpg --quick-gen-key` in a private GNUPGHOME: one pinned,
one merely present in the keyring, one revoked after signing, one expired since signing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from orchestrator.errors import BadInput, DownloadFailed, RecipeError, VerificationFailed
from orchestrator.fetch import fetch_sources
from orchestrator.recipe import load_recipe

from .conftest import IN_CI, REPO, assert_clean_failure, have, run_tool

FAST = {"retries": 3, "backoff": 0.05, "timeout": 10.0}


# -- keys ------------------------------------------------------------------------------------
@dataclass
class Keys:
    home: Path
    fingerprints: dict[str, str] = field(default_factory=dict)  # role -> primary fingerprint
    public: dict[str, Path] = field(default_factory=dict)  # role -> armored public key file
    revoked_payload: bytes = b"signed before the key was revoked\n"
    revoked_signature: bytes = b""

    def gpg(self, *args: str, input: bytes | None = None) -> bytes:
        proc = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            input=input,
            capture_output=True,
            check=True,
        )
        return proc.stdout

    def sign(self, data: bytes, role: str, *, faked_time: str | None = None) -> bytes:
        extra = ["--faked-system-time", faked_time] if faked_time else []
        return self.gpg(
            *extra,
            "--local-user",
            self.fingerprints[role],
            "--armor",
            "--detach-sign",
            "--output",
            "-",
            input=data,
        )


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory):
    if not (have("gpg") and have("gpgv") and have("gpgconf")):
        message = "gpg, gpgv and gpgconf are needed (apt-get install gpg gpgv)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    home = Path(tempfile.mkdtemp(prefix="gk"))  # short: gpg-agent's socket lives here
    home.chmod(0o700)
    made = Keys(home)
    out = tmp_path_factory.mktemp("keys")
    specs = {
        "pinned": ([], "0"),
        "other": ([], "0"),
        "revoked": ([], "0"),
        # Made in 2020, expired mid-2020: signatures from before then stay good.
        "expired": (["--faked-system-time", "20200101T000000!"], "2020-06-01"),
    }
    try:
        for role, (extra, expiry) in specs.items():
            made.gpg(
                *extra,
                "--quick-gen-key",
                f"Test {role} <{role}@example.invalid>",
                "ed25519",
                "sign",
                expiry,
            )
            listing = made.gpg("--with-colons", "--list-keys", f"{role}@example.invalid")
            fpr = next(
                line.split(":")[9]
                for line in listing.decode().splitlines()
                if line.startswith("fpr:")
            )
            made.fingerprints[role] = fpr
        made.revoked_signature = made.sign(made.revoked_payload, "revoked")
        revocation = home / "openpgp-revocs.d" / f"{made.fingerprints['revoked']}.rev"
        made.gpg("--import", input=revocation.read_bytes().replace(b":-----BEGIN", b"-----BEGIN"))
        for role, fpr in made.fingerprints.items():
            path = out / f"{role}.asc"
            path.write_bytes(made.gpg("--armor", "--export", fpr))
            made.public[role] = path
        bundle = out / "bundle.asc"  # like gnu-keyring.gpg: many keys, one file
        bundle.write_bytes(made.public["pinned"].read_bytes() + made.public["other"].read_bytes())
        made.public["bundle"] = bundle
        yield made
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


# -- the server ------------------------------------------------------------------------------
class ServerState:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_once: dict[str, int] = {}  # path -> bytes sent before hanging up (once)
        self.ignore_range: set[str] = set()
        self.status_first: dict[str, list[int]] = {}  # path -> statuses answered first
        self.delay: dict[str, float] = {}  # path -> pause after each 16 KiB
        self.drip: dict[str, float] = {}  # path -> pause after each single byte
        self.log: list[tuple[str, str | None, str | None]] = []  # (path, Range, If-Range)
        self.lock = threading.Lock()

    def gets(self, path: str) -> list[tuple[str, str | None, str | None]]:
        with self.lock:
            return [entry for entry in self.log if entry[0] == path]


class RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ServerState

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state = self.state
        path = urlsplit(self.path).path
        with state.lock:
            state.log.append((path, self.headers.get("Range"), self.headers.get("If-Range")))
            queued = state.status_first.get(path)
            status = queued.pop(0) if queued else None
            body = state.files.get(path)
            drop = state.drop_once.pop(path, None)
        if status is not None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start, code = 0, 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and path not in state.ignore_range and if_range in (None, etag):
            start = int(wanted.split("=")[1].split("-")[0])
            code = 206
        payload = body[start:]
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if drop is not None:
            self.wfile.write(payload[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        drip = state.drip.get(path)
        if drip is not None:
            try:
                for offset in range(len(payload)):
                    self.wfile.write(payload[offset : offset + 1])
                    self.wfile.flush()
                    time.sleep(drip)
            except OSError:  # the client gave up, as it should
                self.close_connection = True
            return
        pause = state.delay.get(path, 0.0)
        for offset in range(0, len(payload), 16384):
            self.wfile.write(payload[offset : offset + 16384])
            if pause:
                self.wfile.flush()
                time.sleep(pause)


@pytest.fixture(scope="session")
def server():
    state = ServerState()
    handler = type("Handler", (RangeHandler,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield state
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Site:
    """One test's corner of the server: its own URL prefix, so tests never collide."""

    state: ServerState
    prefix: str

    def put(self, name: str, data: bytes) -> str:
        self.state.files[f"{self.prefix}/{name}"] = data
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.state.base}{self.prefix}/{name}"  # type: ignore[attr-defined]

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"


@pytest.fixture
def site(server: ServerState) -> Site:
    return Site(server, f"/{uuid.uuid4().hex[:12]}")


def payload(size: int = 300_000, seed: str = "x") -> bytes:
    """Deterministic bytes that do not compress into a single repeated block."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_recipe(folder: Path, *sources: dict) -> Path:
    lines = [
        'name = "test-fetch"',
        'description = "fetch test"',
        'glibc = "2.31"',
        'template = "debian.Dockerfile.j2"',
        "[base]",
        'image = "debian:bullseye"',
    ]
    for source in sources:
        lines.append("[[sources]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in source.items()]
    path = folder / "test-fetch.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def signed_source(
    site: Site,
    keys: Keys,
    name: str,
    data: bytes,
    *,
    signer: str = "pinned",
    pin_sha: bool = True,
    key_file: str = "bundle",
) -> dict:
    """Serve `data` and its detached signature; return the recipe entry for it."""
    url = site.put(name, data)
    site.put(name + ".asc", keys.sign(data, signer))
    entry = {
        "url": url,
        "signature": url + ".asc",
        "keys": [str(keys.public[key_file])],
        "fingerprints": [keys.fingerprints["pinned"]],
    }
    if pin_sha:
        entry["sha256"] = sha(data)
    return entry


def leftovers(rsrc: Path) -> list[str]:
    return sorted(p.name for p in rsrc.iterdir() if p.name.endswith((".part", ".json")))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- good paths ------------------------------------------------------------------------------
def test_good_source_lands_with_its_signature_and_is_reused(tmp_path, site, keys):
    data = payload()
    recipe = load_recipe(write_recipe(tmp_path, signed_source(site, keys, "good.tar.gz", data)))
    rsrc = tmp_path / "rsrc"

    paths = fetch_sources(recipe, rsrc, **FAST)

    assert paths == [rsrc / "good.tar.gz"]
    assert paths[0].read_bytes() == data
    assert (rsrc / "good.tar.gz.asc").is_file()
    assert leftovers(rsrc) == []
    assert len(site.state.gets(site.path("good.tar.gz"))) == 1
    # A second fetch verifies what is there and downloads nothing.
    assert fetch_sources(recipe, rsrc, **FAST) == paths
    assert len(site.state.gets(site.path("good.tar.gz"))) == 1


def test_signature_alone_is_enough_when_the_key_is_pinned(tmp_path, site, keys):
    data = payload(seed="sigonly")
    entry = signed_source(site, keys, "sigonly.tar.gz", data, pin_sha=False)
    rsrc = tmp_path / "rsrc"
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert (rsrc / "sigonly.tar.gz").read_bytes() == data


def test_key_given_by_url_is_fetched_once_and_held_to_the_fingerprint(tmp_path, site, keys):
    data = payload(seed="keyurl")
    entry = signed_source(site, keys, "keyurl.tar.gz", data)
    entry["keys"] = [site.put("release-keys.asc", keys.public["bundle"].read_bytes())]
    rsrc = tmp_path / "rsrc"
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert (rsrc / "release-keys.asc").read_bytes() == keys.public["bundle"].read_bytes()
    assert (rsrc / "keyurl.tar.gz").read_bytes() == data

    # A key URL that answers 404 everywhere: the source cannot be verified (exit 4).
    entry["keys"] = [site.url("gone-key.asc")]
    with pytest.raises(VerificationFailed, match="signing key .*gone-key.asc is missing"):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), tmp_path / "r2", **FAST)


# -- refusals ----------------------------------------------------------------------------------
def test_wrong_sha256_is_refused_and_nothing_is_left(tmp_path, site, keys):
    entry = signed_source(site, keys, "wrong.tar.gz", payload(seed="w"))
    entry["sha256"] = sha(b"something else")
    rsrc = tmp_path / "rsrc"
    with pytest.raises(VerificationFailed, match="sha256 is .* the recipe expects"):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert not (rsrc / "wrong.tar.gz").exists()
    assert not (rsrc / "wrong.tar.gz.asc").exists()
    assert leftovers(rsrc) == []


@pytest.mark.parametrize(
    "key_file, message",
    [
        ("bundle", "which the recipe does not pin"),  # in the keyring, not pinned
        ("pinned", "not among the recipe's keys"),  # not even in the keyring
    ],
)
def test_signature_by_an_unpinned_key_is_refused(tmp_path, site, keys, key_file, message):
    entry = signed_source(
        site,
        keys,
        "unpinned.tar.gz",
        payload(seed="u"),
        signer="other",
        pin_sha=False,
        key_file=key_file,
    )
    rsrc = tmp_path / "rsrc"
    with pytest.raises(VerificationFailed, match=message):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert not (rsrc / "unpinned.tar.gz").exists()


def test_missing_signature_stops_before_the_big_download(tmp_path, site, keys):
    url = site.put("nosig.tar.gz", payload(seed="n"))
    entry = {
        "url": url,
        "signature": url + ".sig",
        "keys": [str(keys.public["pinned"])],
        "fingerprints": [keys.fingerprints["pinned"]],
    }
    rsrc = tmp_path / "rsrc"
    with pytest.raises(VerificationFailed, match=r"nosig.tar.gz.sig is missing"):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert site.state.gets(site.path("nosig.tar.gz")) == []
    assert not (rsrc / "nosig.tar.gz").exists()


def test_revoked_key_is_refused_though_gpgv_exits_zero(tmp_path, site, keys):
    url = site.put("revoked.txt", keys.revoked_payload)
    site.put("revoked.txt.asc", keys.revoked_signature)
    entry = {
        "url": url,
        "sha256": sha(keys.revoked_payload),
        "signature": url + ".asc",
        "keys": [str(keys.public["revoked"])],
        "fingerprints": [keys.fingerprints["revoked"]],
    }
    with pytest.raises(VerificationFailed, match="signing key has been revoked"):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), tmp_path / "rsrc", **FAST)
    assert not (tmp_path / "rsrc" / "revoked.txt").exists()


@pytest.mark.parametrize("pin_sha", [True, False])
def test_expired_key_counts_only_with_a_pinned_sha256(tmp_path, site, keys, pin_sha):
    data = payload(seed=f"exp{pin_sha}")
    url = site.put("old.tar.gz", data)
    site.put("old.tar.gz.asc", keys.sign(data, "expired", faked_time="20200301T000000!"))
    entry = {
        "url": url,
        "signature": url + ".asc",
        "keys": [str(keys.public["expired"])],
        "fingerprints": [keys.fingerprints["expired"]],
    }
    if pin_sha:
        entry["sha256"] = sha(data)
    recipe = load_recipe(write_recipe(tmp_path, entry))
    if pin_sha:
        fetch_sources(recipe, tmp_path / "rsrc", **FAST)
        assert (tmp_path / "rsrc" / "old.tar.gz").read_bytes() == data
    else:
        with pytest.raises(VerificationFailed, match="expired .* pins no sha256"):
            fetch_sources(recipe, tmp_path / "rsrc", **FAST)


# -- signed checksum lists (CMake's SHA-256.txt + .asc) ----------------------------------------
def checksum_source(
    site: Site, keys: Keys, data: bytes, listing: str, *, tamper: bool = False
) -> dict:
    url = site.put("tool-1.0-linux-x86_64.tar.gz", data)
    list_bytes = listing.encode()
    list_url = site.put("tool-1.0-SHA-256.txt", list_bytes + (b"\n" if tamper else b""))
    site.put("tool-1.0-SHA-256.txt.asc", keys.sign(list_bytes, "pinned"))
    return {
        "url": url,
        "checksums": list_url,
        "checksums_signature": list_url + ".asc",
        "keys": [str(keys.public["bundle"])],
        "fingerprints": [keys.fingerprints["pinned"]],
    }


def test_signed_checksum_list_matches_the_exact_file_name(tmp_path, site, keys):
    data = payload(seed="cmake")
    listing = (
        f"{sha(b'decoy')}  tool-1.0-linux-x86_64.tar.gz.bad\n"
        f"{sha(b'decoy2')}  xtool-1.0-linux-x86_64.tar.gz\n"
        f"{sha(data)}  tool-1.0-linux-x86_64.tar.gz\n"
        f"{sha(b'other')}  tool-1.0-windows-x86_64.zip\n"
    )
    entry = checksum_source(site, keys, data, listing)
    rsrc = tmp_path / "rsrc"
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert (rsrc / "tool-1.0-linux-x86_64.tar.gz").read_bytes() == data
    assert (rsrc / "tool-1.0-SHA-256.txt").is_file()
    assert (rsrc / "tool-1.0-SHA-256.txt.asc").is_file()
    # ...and offline the list is checked again from rsrc/.
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, offline=True)


@pytest.mark.parametrize(
    "case",
    ["name only as a substring", "list altered after signing", "list disagrees with the bytes"],
)
def test_signed_checksum_list_refusals(tmp_path, site, keys, case):
    data = payload(seed="cm2")
    if case == "name only as a substring":
        listing = f"{sha(data)}  tool-1.0-linux-x86_64.tar.gz.sha256\n"
        expected = "has no sha256 for tool-1.0-linux-x86_64.tar.gz"
    elif case == "list altered after signing":
        listing = f"{sha(data)}  tool-1.0-linux-x86_64.tar.gz\n"
        expected = "does not match"
    else:
        listing = f"{sha(b'not it')}  tool-1.0-linux-x86_64.tar.gz\n"
        expected = "sha256 is"
    entry = checksum_source(site, keys, data, listing, tamper=case == "list altered after signing")
    with pytest.raises(VerificationFailed, match=expected):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), tmp_path / "rsrc", **FAST)
    assert not (tmp_path / "rsrc" / "tool-1.0-linux-x86_64.tar.gz").exists()


# -- network trouble -----------------------------------------------------------------------------
@pytest.mark.parametrize("server_resumes", [True, False])
def test_dropped_connection_resumes(tmp_path, site, keys, server_resumes):
    data = payload(400_000, seed=f"drop{server_resumes}")
    entry = signed_source(site, keys, "big.tar.xz", data)
    site.state.drop_once[site.path("big.tar.xz")] = 150_000
    if not server_resumes:
        site.state.ignore_range.add(site.path("big.tar.xz"))
    rsrc = tmp_path / "rsrc"

    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)

    assert (rsrc / "big.tar.xz").read_bytes() == data
    gets = site.state.gets(site.path("big.tar.xz"))
    assert len(gets) == 2
    assert gets[0][1] is None
    assert gets[1][1] == "bytes=150000-"  # asked to resume where the connection died
    assert gets[1][2] and gets[1][2].startswith('"')  # ...only if the file is unchanged
    assert leftovers(rsrc) == []


def test_server_error_is_retried(tmp_path, site, keys):
    data = payload(seed="503")
    entry = signed_source(site, keys, "flaky.tar.gz", data)
    site.state.status_first[site.path("flaky.tar.gz")] = [503, 503]
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), tmp_path / "rsrc", **FAST)
    assert len(site.state.gets(site.path("flaky.tar.gz"))) == 3
    assert (tmp_path / "rsrc" / "flaky.tar.gz").read_bytes() == data


def test_recipe_mirror_serves_when_the_main_url_fails_or_lies(tmp_path, server, keys):
    data = payload(seed="mirror")
    good = Site(server, f"/{uuid.uuid4().hex[:8]}-good")
    liar = Site(server, f"/{uuid.uuid4().hex[:8]}-liar")
    gone = Site(server, f"/{uuid.uuid4().hex[:8]}-gone")
    good.put("m.tar.gz", data)
    good.put("m.tar.gz.asc", keys.sign(data, "pinned"))
    liar.put("m.tar.gz", payload(seed="tampered"))  # right name, wrong bytes
    entry = {
        "url": gone.url("m.tar.gz"),
        "mirrors": [liar.url("m.tar.gz"), good.url("m.tar.gz")],
        "sha256": sha(data),
        "signature": good.url("m.tar.gz.asc"),
        "keys": [str(keys.public["pinned"])],
        "fingerprints": [keys.fingerprints["pinned"]],
    }
    rsrc = tmp_path / "rsrc"
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, **FAST)
    assert (rsrc / "m.tar.gz").read_bytes() == data
    assert len(server.gets(gone.path("m.tar.gz"))) == 1  # 404: not retried
    assert len(server.gets(liar.path("m.tar.gz"))) == 1  # wrong hash: on to the next


def test_cli_mirror_is_tried_first_and_upstream_may_be_unreachable(tmp_path, site, keys):
    data = payload(seed="climirror")
    site.put("air.tar.gz", data)
    site.put("air.tar.gz.asc", keys.sign(data, "pinned"))
    dead = f"http://127.0.0.1:{closed_port()}/dist/air.tar.gz"
    entry = {
        "url": dead,
        "sha256": sha(data),
        "signature": dead + ".asc",
        "keys": [str(keys.public["pinned"])],
        "fingerprints": [keys.fingerprints["pinned"]],
    }
    rsrc = tmp_path / "rsrc"
    fetch_sources(
        load_recipe(write_recipe(tmp_path, entry)), rsrc, mirrors=[site.url("").rstrip("/")], **FAST
    )
    assert (rsrc / "air.tar.gz").read_bytes() == data
    # A local folder works as a mirror too (a USB stick with a copy of rsrc/).
    rsrc2 = tmp_path / "rsrc2"
    fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc2, mirrors=[str(rsrc)], **FAST)
    assert (rsrc2 / "air.tar.gz").read_bytes() == data


def test_unreachable_everywhere_is_a_download_failure(tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/x/file.tar.gz"
    entry = {"url": dead, "sha256": "0" * 64}
    with pytest.raises(DownloadFailed, match="no URL gave it"):
        fetch_sources(
            load_recipe(write_recipe(tmp_path, entry)), tmp_path / "rsrc", retries=2, backoff=0.01
        )
    assert not (tmp_path / "rsrc" / "file.tar.gz").exists()


# -- what is already in rsrc/ ---------------------------------------------------------------------
def test_offline_good_altered_and_missing(tmp_path, site, keys):
    data = payload(seed="offline")
    recipe = load_recipe(write_recipe(tmp_path, signed_source(site, keys, "o.tar.gz", data)))
    rsrc = tmp_path / "rsrc"
    fetch_sources(recipe, rsrc, **FAST)
    requests_before = len(site.state.log)

    assert fetch_sources(recipe, rsrc, offline=True) == [rsrc / "o.tar.gz"]

    altered = bytearray(data)
    altered[1000] ^= 0xFF
    (rsrc / "o.tar.gz").write_bytes(bytes(altered))
    with pytest.raises(VerificationFailed, match="do not verify") as failure:
        fetch_sources(recipe, rsrc, offline=True)
    assert "o.tar.gz" in failure.value.details
    assert (rsrc / "o.tar.gz").read_bytes() == bytes(altered)  # offline never repairs

    (rsrc / "o.tar.gz.asc").unlink()
    (rsrc / "o.tar.gz").unlink()
    with pytest.raises(DownloadFailed, match="missing .*o.tar.gz"):
        fetch_sources(recipe, rsrc, offline=True)
    assert len(site.state.log) == requests_before  # offline means no request at all


def test_altered_file_is_downloaded_again_online(tmp_path, site, keys):
    data = payload(seed="heal")
    recipe = load_recipe(write_recipe(tmp_path, signed_source(site, keys, "h.tar.gz", data)))
    rsrc = tmp_path / "rsrc"
    fetch_sources(recipe, rsrc, **FAST)
    (rsrc / "h.tar.gz").write_bytes(b"truncated")
    fetch_sources(recipe, rsrc, **FAST)
    assert (rsrc / "h.tar.gz").read_bytes() == data
    assert len(site.state.gets(site.path("h.tar.gz"))) == 2


def test_two_fetches_into_one_rsrc_at_once(tmp_path, site, keys):
    """The lock: the second waits, then finds the file verified; one download in all."""
    data = payload(600_000, seed="concurrent")
    entry = signed_source(site, keys, "shared.tar.gz", data)
    site.state.delay[site.path("shared.tar.gz")] = 0.04  # ~1.5 s: long enough to overlap
    recipe_path = write_recipe(tmp_path, entry)
    rsrc = tmp_path / "rsrc"
    env = dict(os.environ, GLIBC_BUILD_NO_VENV="1", NO_COLOR="1")
    command = [
        sys.executable,
        str(REPO / "build.py"),
        "fetch",
        "--recipe",
        str(recipe_path),
        "--rsrc",
        str(rsrc),
    ]
    first = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)
    second = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    outputs = [p.communicate(timeout=120) for p in (first, second)]

    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert "waiting for another fetch" in outputs[1][1]
    assert "already in" in outputs[1][1]
    assert (rsrc / "shared.tar.gz").read_bytes() == data
    assert len(site.state.gets(site.path("shared.tar.gz"))) == 1
    assert leftovers(rsrc) == []


def test_interrupted_fetch_leaves_nothing_final_and_resumes_next_time(tmp_path, site, keys):
    data = payload(800_000, seed="ctrl-c")
    entry = signed_source(site, keys, "slow.tar.gz", data)
    site.state.delay[site.path("slow.tar.gz")] = 0.05  # ~2.5 s in all
    recipe_path = write_recipe(tmp_path, entry)
    rsrc = tmp_path / "rsrc"
    env = dict(os.environ, GLIBC_BUILD_NO_VENV="1", NO_COLOR="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "build.py"),
            "fetch",
            "--recipe",
            str(recipe_path),
            "--rsrc",
            str(rsrc),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    part = rsrc / ".slow.tar.gz.part"
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 100_000):
        assert time.monotonic() < deadline and proc.poll() is None, "download never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not (rsrc / "slow.tar.gz").exists()
    kept = part.stat().st_size
    assert 0 < kept < len(data)

    site.state.delay.pop(site.path("slow.tar.gz"))
    proc2 = run_tool("fetch", "--recipe", recipe_path, "--rsrc", rsrc)
    assert proc2.returncode == 0, proc2.stderr
    assert (rsrc / "slow.tar.gz").read_bytes() == data
    assert site.state.gets(site.path("slow.tar.gz"))[-1][1] == f"bytes={kept}-"
    assert leftovers(rsrc) == []


# -- the command line, as a user meets it ---------------------------------------------------------
def test_cli_fetch_prints_paths_and_exit_codes(tmp_path, site, keys):
    data = payload(seed="cli")
    good = write_recipe(tmp_path, signed_source(site, keys, "c.tar.gz", data))
    proc = run_tool("fetch", "--recipe", good, "--rsrc", tmp_path / "rsrc")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "rsrc" / "c.tar.gz")

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    entry = signed_source(site, keys, "c2.tar.gz", data)
    entry["sha256"] = sha(b"nope")
    proc = run_tool("fetch", "--recipe", write_recipe(bad_dir, entry), "--rsrc", bad_dir / "r")
    assert_clean_failure(proc, 4, "c2.tar.gz", "sha256")

    proc = run_tool("fetch", "--recipe", good, "--rsrc", tmp_path / "empty", "--offline")
    assert_clean_failure(proc, 6, "--offline", "c.tar.gz")

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    proc = run_tool("fetch", "--recipe", good, "--rsrc", not_a_folder / "rsrc")
    assert_clean_failure(proc, 2, "download folder")

    proc = run_tool("fetch", "--recipe", good, "--rsrc", tmp_path / "r3", "--mirror", "nowhere")
    assert_clean_failure(proc, 2, "--mirror 'nowhere'")


def test_offline_advice_repeats_the_recipe_and_folder_the_user_gave(tmp_path, site, keys):
    """The advice must be a command that works: the recipe as given (its `name` inside the
    file is no recipe name anyone can pass), and the --rsrc folder when it is not the default."""
    write_recipe(tmp_path, signed_source(site, keys, "a.tar.gz", payload(seed="advice")))
    proc = run_tool(
        "fetch", "--recipe", "./test-fetch.toml", "--rsrc", "my rsrc", "--offline", cwd=tmp_path
    )
    assert_clean_failure(
        proc, 6, "run `build.py fetch --recipe ./test-fetch.toml --rsrc 'my rsrc'` with network"
    )


def test_cli_unreachable_source_exits_6(tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}/x/gone.tar.gz"
    proc = run_tool(
        "fetch",
        "--recipe",
        write_recipe(tmp_path, {"url": dead, "sha256": "a" * 64}),
        "--rsrc",
        tmp_path / "rsrc",
        timeout=120,
    )
    assert_clean_failure(proc, 6, "gone.tar.gz", "--mirror")


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({"url": "https://example.invalid/a.tar.gz"}, "nothing would verify it"),
        ({"url": "https://example.invalid/a.tar.gz", "sha256": "abc"}, "not 64 hex digits"),
        (
            {
                "url": "https://example.invalid/a.tar.gz",
                "signature": "https://example.invalid/a.sig",
            },
            "needs both `keys`",
        ),
        (
            {
                "url": "https://example.invalid/a.tar.gz",
                "sha256": "a" * 64,
                "fingerprints": ["ABCD"],
            },
            "not a full 40-hex-digit",
        ),
        (
            {"url": "https://example.invalid/a.tar.gz", "sha256": "a" * 64, "sha512": "b"},
            "unknown key sha512",
        ),
        (
            {
                "url": "https://example.invalid/a.tar.gz",
                "checksums": "https://example.invalid/S.txt",
                "keys": ["x.asc"],
                "fingerprints": ["A" * 40],
            },
            "go together",
        ),
    ],
)
def test_bad_source_entries_are_recipe_errors(tmp_path, entry, needle):
    path = write_recipe(tmp_path, entry)
    with pytest.raises(RecipeError, match=needle):
        load_recipe(path)
    proc = run_tool("fetch", "--recipe", path, "--rsrc", tmp_path / "rsrc")
    assert_clean_failure(proc, 2, str(path), needle)


# -- bad state that must not be kept (issue 11, item 5) ----------------------------------------
def test_a_key_fetched_by_url_is_kept_only_once_a_signature_verifies_with_it(tmp_path, site, keys):
    """A wrong key served once must not stay in rsrc/ and refuse every later fetch."""
    data = payload(seed="poisoned-key")
    entry = signed_source(site, keys, "pk.tar.gz", data)
    entry["keys"] = [site.put("project-keys.asc", keys.public["other"].read_bytes())]
    recipe = load_recipe(write_recipe(tmp_path, entry))
    rsrc = tmp_path / "rsrc"
    with pytest.raises(VerificationFailed, match="none of the pinned fingerprints") as refused:
        fetch_sources(recipe, rsrc, **FAST)
    assert not (rsrc / "project-keys.asc").exists()
    assert "project-keys.asc (as served now; not kept)" in refused.value.message
    assert not (rsrc / "pk.tar.gz").exists()
    assert site.state.gets(site.path("pk.tar.gz")) == []  # found out before the big download
    assert leftovers(rsrc) == []

    # The server serves the right key now: the recipe was right all along and fetch works.
    site.put("project-keys.asc", keys.public["bundle"].read_bytes())
    fetch_sources(recipe, rsrc, **FAST)
    assert (rsrc / "pk.tar.gz").read_bytes() == data
    assert (rsrc / "project-keys.asc").read_bytes() == keys.public["bundle"].read_bytes()


def test_a_wrong_pin_never_deletes_the_file_another_recipe_verified(tmp_path, site, keys):
    data = payload(seed="shared-rsrc")
    good_entry = signed_source(site, keys, "common.tar.gz", data)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = load_recipe(write_recipe(tmp_path / "a", good_entry))
    wrong = load_recipe(write_recipe(tmp_path / "b", dict(good_entry, sha256=sha(b"a typo"))))
    rsrc = tmp_path / "rsrc"
    fetch_sources(good, rsrc, **FAST)

    with pytest.raises(VerificationFailed, match="sha256 is .* the recipe expects"):
        fetch_sources(wrong, rsrc, **FAST)

    assert (rsrc / "common.tar.gz").read_bytes() == data
    assert (rsrc / "common.tar.gz.asc").is_file()
    assert fetch_sources(good, rsrc, offline=True) == [rsrc / "common.tar.gz"]
    assert leftovers(rsrc) == []


@pytest.fixture
def full_disk(tmp_path: Path):
    """A real, tiny file system (1 MiB tmpfs): a download into it runs out of space."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        message = f"cannot mount a tmpfs: {proc.stderr.strip()}"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_a_full_disk_removes_the_part_and_exits_2_naming_the_folder(
    tmp_path, site, keys, full_disk
):
    data = payload(3_000_000, seed="enospc")
    recipe_path = write_recipe(tmp_path, signed_source(site, keys, "huge.tar.gz", data))
    rsrc = full_disk / "rsrc"

    proc = run_tool("fetch", "--recipe", recipe_path, "--rsrc", rsrc, timeout=120)

    assert_clean_failure(proc, 2, f"{rsrc} is full", "huge.tar.gz")
    assert not (rsrc / "huge.tar.gz").exists()
    assert leftovers(rsrc) == []  # the partial file no longer fills the disk
    stats = os.statvfs(full_disk)
    assert stats.f_bfree * stats.f_frsize > 900_000
    with pytest.raises(BadInput, match="is full"):
        fetch_sources(load_recipe(recipe_path), rsrc, **FAST)
    assert leftovers(rsrc) == []


def test_a_dripping_server_is_given_up_at_the_deadline(tmp_path, site, keys):
    """One byte every 50 ms would take 40 minutes; --deadline 2 gives up with exit 6, naming
    the URL, the deadline and the rate seen (a bound run_tool's timeout makes a failure)."""
    data = payload(50_000, seed="drip")
    entry = signed_source(site, keys, "drip.tar.gz", data)
    site.state.drip[site.path("drip.tar.gz")] = 0.05
    rsrc = tmp_path / "rsrc"

    proc = run_tool(
        "fetch",
        "--recipe",
        write_recipe(tmp_path, entry),
        "--rsrc",
        rsrc,
        "--deadline",
        "2",
        timeout=60,
    )

    assert_clean_failure(
        proc, 6, site.url("drip.tar.gz"), "deadline of 2 s", "B/s", "--deadline SECONDS"
    )
    assert not (rsrc / "drip.tar.gz").exists()
    with pytest.raises(DownloadFailed, match="deadline of 1.5 s"):
        fetch_sources(load_recipe(write_recipe(tmp_path, entry)), rsrc, deadline=1.5, **FAST)


@pytest.mark.parametrize("command", ["fetch", "image"])
def test_deadline_must_be_positive(tmp_path, command):
    recipe = write_recipe(tmp_path, {"url": "https://example.invalid/a.tar.gz", "sha256": "a" * 64})
    proc = run_tool(command, "--recipe", recipe, "--deadline", "0", "--rsrc", tmp_path / "r")
    assert proc.returncode == 2, proc.stderr
    assert "Invalid value for '--deadline'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
