"""Unit tier for fetch: the pure parts, no gpg, no network.

gpgv's status lines (doc/DETAILS in GnuPG's sources) are written here as gpgv prints them;
the end-to-end tests in test_fetch.py check the same rules with real keys.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orchestrator.download import (
    MAX_RETRY_AFTER,
    Deadline,
    HashingWriter,
    Progress,
    ResumePoint,
    backoff_delay,
    content_range_start,
    human_bytes,
    range_headers,
    read_resume_point,
    remember_validator,
    resumed_from,
    retry_after_seconds,
    validator_of,
)
from orchestrator.errors import DownloadFailed, VerificationFailed
from orchestrator.paths import DEFAULT_RSRC, REPO, cache_root, is_url
from orchestrator.signatures import (
    imported_fingerprints,
    judge,
    normalize_fingerprint,
    parse_status,
    primary_fingerprints,
    read_checksum_list,
)

pytestmark = pytest.mark.unit

PRIMARY = "24A2F070F4529D0201D5E398C0159E46EAD27485"
SUBKEY = "9F1E0C7A5B3D2E4F6A8B0C1D2E3F405162738495"
OTHER = "0123456789ABCDEF0123456789ABCDEF01234567"
SIGNED_AT = 1_700_000_000


def status(*lines: str) -> str:
    return "".join(f"[GNUPG:] {line}\n" for line in lines)


def good(
    primary: str = PRIMARY,
    *,
    verdict: str = "GOODSIG",
    hash_algo: int = 10,
    sig_class: str = "00",
    created: int = SIGNED_AT,
) -> list[str]:
    """One signature as gpgv reports it: made by a subkey, VALIDSIG field 10 the primary."""
    return [
        "NEWSIG",
        "KEY_CONSIDERED " + primary + " 0",
        f"{verdict} C0159E46EAD27485 Test <t@example.invalid>",
        f"VALIDSIG {SUBKEY} 2023-11-14 {created} 0 4 0 22 {hash_algo} {sig_class} {primary}",
    ]


def verdict(text: str, *, allow_expired_key: bool = False) -> str:
    """The accepted primary fingerprint, or the refusal message."""
    try:
        return judge(
            parse_status(text),
            {PRIMARY},
            what="f.tar.gz",
            sig_name="f.tar.gz.sig",
            allow_expired_key=allow_expired_key,
        ).primary_fingerprint
    except VerificationFailed as exc:
        return exc.message


# -- gpgv status --------------------------------------------------------------------------
def test_good_signature_by_a_subkey_counts_for_its_pinned_primary():
    assert verdict(status(*good())) == PRIMARY


def test_pinning_the_subkey_is_not_pinning_the_primary():
    blocks = parse_status(status(*good()))
    with pytest.raises(VerificationFailed, match="does not pin"):
        judge(blocks, {SUBKEY}, what="f", sig_name="f.sig", allow_expired_key=False)


def test_signature_by_another_key_is_refused():
    assert "which the recipe does not pin" in verdict(status(*good(OTHER)))


def test_revoked_key_is_refused_even_with_validsig():
    text = status(
        "NEWSIG",
        "REVKEYSIG C0159E46EAD27485 Test",
        f"VALIDSIG {SUBKEY} 2023-11-14 {SIGNED_AT} 0 4 0 22 10 00 {PRIMARY}",
    )
    assert "has been revoked" in verdict(text)


@pytest.mark.parametrize(
    "allow, expired_at, accepted",
    [
        (False, SIGNED_AT + 100, False),  # no pinned sha256: an expired key vouches for nothing
        (True, SIGNED_AT + 100, True),  # pinned sha256 and signed before the expiry
        (True, SIGNED_AT - 100, False),  # signed after the key expired
        (True, None, False),  # expiry time unknown
    ],
)
def test_expired_key(allow, expired_at, accepted):
    lines = good(verdict="EXPKEYSIG")
    if expired_at is not None:
        lines.insert(1, f"KEYEXPIRED {expired_at}")
    result = verdict(status(*lines), allow_expired_key=allow)
    assert (result == PRIMARY) is accepted, result


def test_garbled_status_lines_never_make_a_signature_good():
    text = (
        "gpgv: Signature made ...\n"
        + status("", "NEWSIG", "GOODSIG", "VALIDSIG 1 2", "KEYEXPIRED soon")
        + "[GNUPG:]\n[GNUPG:]    \nrandom noise\n"
    )
    assert "gave no valid signature" in verdict(text)
    assert "holds no OpenPGP signature" in verdict("")
    assert "holds no OpenPGP signature" in verdict(status("NODATA 1"))


@pytest.mark.parametrize(
    "lines, message",
    [
        (good(hash_algo=2), "SHA-1"),
        (good(sig_class="13"), "not a document signature"),
        (
            [
                "NEWSIG",
                "ERRSIG C0159E46EAD27485 22 10 00 1700000000 9",
                "NO_PUBKEY C0159E46EAD27485",
            ],
            "not among the recipe's keys",
        ),
        ([*good(), "NEWSIG", "BADSIG 0123456789ABCDEF Other"], "does not match the file"),
    ],
)
def test_refusals(lines, message):
    assert message in verdict(status(*lines))


def test_one_pinned_signature_is_enough_beside_an_unpinned_co_signer():
    assert verdict(status(*good(OTHER), *good())) == PRIMARY


def test_key_listings_give_primary_fingerprints_only():
    listing = "\n".join(
        [
            "tru::1:1700000000:0:3:1:5",
            "pub:u:255:22:C0159E46EAD27485:1700000000:::u:::scSC::::::23::0:",
            f"fpr:::::::::{PRIMARY}:",
            "uid:u::::1700000000::HASH::Test <t@example.invalid>::::::::::0:",
            "sub:u:255:22:1122334455667788:1700000000::::::s::::::23:",
            f"fpr:::::::::{SUBKEY}:",
            "fpr:::::",  # garbled: ignored
        ]
    )
    assert primary_fingerprints(listing) == {PRIMARY}
    imported = status(
        "IMPORTED C0159E46EAD27485 Test",
        f"IMPORT_OK 1 {PRIMARY}",
        f"IMPORT_OK 0 {OTHER.lower()}",
        "IMPORT_OK 1",
        "IMPORT_RES 2 0 1",
    )
    assert imported_fingerprints(imported) == {PRIMARY, OTHER}


def test_fingerprints_are_normalised_or_refused():
    spaced = " ".join(PRIMARY[i : i + 4] for i in range(0, 40, 4))
    assert normalize_fingerprint(spaced.lower()) == PRIMARY
    assert normalize_fingerprint("0x" + PRIMARY) == PRIMARY
    assert normalize_fingerprint("C0159E46EAD27485") is None  # a long key id is no fingerprint


def test_signed_checksum_list_matches_the_exact_name(tmp_path):
    digest, decoy = "a" * 64, "b" * 64
    listing = tmp_path / "SHA-256.txt"
    listing.write_text(
        f"{decoy}  tool.tar.gz.bad\n{decoy}  xtool.tar.gz\n"
        f"{digest} *tool.tar.gz\nnot a line\n{'c' * 63}  tool.tar.gz\n"
    )
    assert read_checksum_list(listing, "tool.tar.gz", what="tool") == digest
    with pytest.raises(VerificationFailed, match="has no sha256 for tool.tar"):
        read_checksum_list(listing, "tool.tar", what="tool")
    listing.write_text(f"{digest}  tool.tar.gz\n{decoy}  tool.tar.gz\n")
    with pytest.raises(VerificationFailed, match="several different"):
        read_checksum_list(listing, "tool.tar.gz", what="tool")


# -- paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, url",
    [
        ("https://example.org/k.asc", True),
        ("http://x/y", True),
        ("file:///srv/k.asc", True),
        ("ftp://example.org/k.asc", False),
        ("keys/k.asc", False),
        ("/abs/k.asc", False),
        ("C:/k.asc", False),
    ],
)
def test_is_url(text, url):
    assert is_url(text) is url


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"GLIBC_BUILD_CACHE": "/c", "XDG_CACHE_HOME": "/x"}, "/c"),
        ({"XDG_CACHE_HOME": "/x"}, "/x/glibc-build"),
        ({"XDG_CACHE_HOME": ""}, "/home/u/.cache/glibc-build"),
        ({"XDG_CACHE_HOME": "rel"}, "/home/u/.cache/glibc-build"),  # relative: invalid (XDG spec)
        ({"GLIBC_BUILD_CACHE": ""}, "/home/u/.cache/glibc-build"),
        ({}, "/home/u/.cache/glibc-build"),
    ],
)
def test_cache_root_from_the_environment(env, expected):
    assert cache_root(env, home=Path("/home/u")) == Path(expected)


def test_repository_paths():
    assert (REPO / "build.py").is_file()
    assert DEFAULT_RSRC == REPO / "rsrc"


# -- range requests and resume --------------------------------------------------------------
def test_range_headers():
    fresh = range_headers(ResumePoint())
    assert "Range" not in fresh and "If-Range" not in fresh
    assert fresh["Accept-Encoding"] == "identity"
    resume = range_headers(ResumePoint(150_000, '"abc"'))
    assert resume["Range"] == "bytes=150000-" and resume["If-Range"] == '"abc"'


@pytest.mark.parametrize(
    "offset, status_code, content_range, start",
    [
        (100, 206, "bytes 100-199/200", 100),  # what we asked for
        (100, 206, "bytes 0-199/200", 0),  # an odd 206: not where the part ends
        (100, 200, None, 0),  # file changed (If-Range) or no range support
        (100, 206, "garbage", 0),
        (0, 200, None, 0),
    ],
)
def test_resumed_from(offset, status_code, content_range, start):
    assert resumed_from(offset, status_code, content_range) == start


def test_content_range_and_validators():
    assert content_range_start("bytes 5-9/10") == 5
    assert content_range_start("items 5-9/10") is None
    assert content_range_start(None) is None
    assert validator_of('"strong"', "Tue, 01 Dec 2026 07:00:00 GMT") == '"strong"'
    assert validator_of('W/"weak"', "Tue, 01 Dec 2026 07:00:00 GMT").startswith("Tue")
    assert validator_of(None, None) == ""


def test_retry_after_and_backoff():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(
        "Tue, 01 Dec 2026 07:00:30 GMT", now=1_796_108_400.0
    ) == pytest.approx(30.0)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert backoff_delay(1, 0.5, None, 0.0) == 0.5
    assert backoff_delay(3, 0.5, None, 0.999) == pytest.approx(2.0 * 1.24975)
    assert backoff_delay(1, 0.5, 3.0, 0.5) == 3.0  # the server's word wins
    assert backoff_delay(1, 0.5, 10_000.0, 0.5) == MAX_RETRY_AFTER


def test_resume_only_from_the_same_url(tmp_path):
    part = tmp_path / ".f.part"
    assert read_resume_point(part, "http://a/f") == ResumePoint()
    part.write_bytes(b"x" * 10)
    remember_validator(part, "http://a/f", '"v1"')
    assert read_resume_point(part, "http://a/f") == ResumePoint(10, '"v1"')
    assert read_resume_point(part, "http://mirror/f") == ResumePoint()
    remember_validator(part, "http://a/f", "")  # no validator: nothing to resume against
    assert read_resume_point(part, "http://a/f") == ResumePoint()


def test_hashing_writer_hashes_the_kept_bytes_too(tmp_path):
    part = tmp_path / ".f.part"
    part.write_bytes(b"hello ")
    with HashingWriter(part, keep=6) as writer:
        writer.write(b"world")
    assert part.read_bytes() == b"hello world"
    assert writer.finish() == hashlib.sha256(b"hello world").hexdigest()
    with HashingWriter(part, keep=0) as writer:  # a 200: start over
        writer.write(b"new")
    assert part.read_bytes() == b"new" and writer.size == 3


def test_deadline_counts_from_its_start_and_names_the_rate():
    now = [100.0]
    deadline = Deadline(2.0, clock=lambda: now[0])
    deadline.check("http://x/f")
    now[0] = 101.5
    assert deadline.remaining() == pytest.approx(0.5)
    now[0] = 102.0
    with pytest.raises(
        DownloadFailed,
        match=r"http://x/f: not downloaded within the deadline "
        r"of 2 s; 40 B came in 2 s, 20 B/s",
    ):
        deadline.check("http://x/f", received=40)
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(3 << 30) == "3.0 GiB"


def test_progress_without_a_terminal_prints_the_rate(capsys):
    with Progress(every=0.0) as progress:
        tracker = progress.track("http://x/f.tar.gz", "f.tar.gz", 2048, 0)
        tracker.update(1024)
        tracker.close()
    err = capsys.readouterr().err
    assert "downloading http://x/f.tar.gz" in err
    assert "f.tar.gz: 1.0 KiB of 2.0 KiB, " in err and "/s" in err
