"""OpenPGP checks done the hard way: gpgv's status lines, pinned primary fingerprints.

Why not trust `gpg --verify`'s exit code: it is 0 for a signature by a revoked or expired key
(nodejs/node#6821). Why pin fingerprints: a keyring such as gnu-keyring.gpg holds dozens of
keys, and a signature by any one of them must not be enough. So each check builds a
throw-away keyring from the recipe's key files, runs `gpgv --status-fd`, and accepts only a
GOODSIG + VALIDSIG whose *primary* key fingerprint (VALIDSIG field 10) is pinned, over a
document (class 00/01), with a hash stronger than SHA-1. Any BADSIG, ERRSIG, NO_PUBKEY,
REVKEYSIG or EXPSIG refuses the file. EXPKEYSIG (the key has expired since) is accepted only
when the caller says the file's sha256 is pinned too and the signature predates the expiry:
old releases stay verifiable (GNU make's signing subkey expired in 2026) without letting an
expired key vouch for anything new.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ToolchainError, VerificationFailed

STATUS_PREFIX = "[GNUPG:] "
WEAK_HASH_ALGOS = {1: "MD5", 2: "SHA-1", 3: "RIPEMD-160"}
DOCUMENT_CLASSES = {"00", "01"}  # binary and canonical-text document signatures
_REFUSED = {  # most telling first: ERRSIG comes with NO_PUBKEY, which says why
    "REVKEYSIG": "the signing key has been revoked",
    "BADSIG": "the signature does not match the file (altered or truncated)",
    "NO_PUBKEY": "the signing key is not among the recipe's keys",
    "EXPSIG": "the signature itself has expired",
    "ERRSIG": "the signature cannot be checked",
}
_HEX_FPR = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def normalize_fingerprint(text: str) -> str | None:
    """`474E 2231 6ABF ...` -> `474E22316ABF...`; None when it is not a v4/v5 fingerprint."""
    fpr = text.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    return fpr if _HEX_FPR.match(fpr) else None


@dataclass
class SignatureStatus:
    """What gpgv said about one signature in a file (one NEWSIG block)."""

    verdicts: list[str] = field(default_factory=list)  # GOODSIG, BADSIG, EXPKEYSIG, ...
    keyid: str = ""
    validsig: list[str] | None = None  # the VALIDSIG fields, when the maths checked out
    key_expired_at: list[int] = field(default_factory=list)  # KEYEXPIRED timestamps

    @property
    def primary_fingerprint(self) -> str:
        return self.validsig[9].upper() if self.validsig and len(self.validsig) >= 10 else ""

    @property
    def created(self) -> int:
        """The signature's creation time (VALIDSIG field 3), 0 when gpgv gave none."""
        text = self.validsig[2] if self.validsig and len(self.validsig) > 2 else ""
        return int(text) if text.isdigit() else 0


def parse_status(text: str) -> list[SignatureStatus]:
    """Split gpgv's `--status-fd` output into one record per signature (keywords as in
    doc/DETAILS of GnuPG's sources). Lines that are not status lines are skipped; a garbled
    status line adds nothing, so it can never make a signature good."""
    blocks: list[SignatureStatus] = []
    current: SignatureStatus | None = None
    for line in text.splitlines():
        if not line.startswith(STATUS_PREFIX):
            continue
        words = line[len(STATUS_PREFIX) :].split()
        if not words:
            continue
        keyword, *args = words
        if keyword == "NEWSIG" or current is None:
            current = SignatureStatus()
            blocks.append(current)
            if keyword == "NEWSIG":
                continue
        if keyword in ("GOODSIG", "EXPKEYSIG", *_REFUSED):
            current.verdicts.append(keyword)
            current.keyid = current.keyid or (args[0] if args else "")
        elif keyword == "VALIDSIG":
            current.validsig = args
        elif keyword == "KEYEXPIRED" and args and args[0].isdigit():
            current.key_expired_at.append(int(args[0]))
        elif keyword == "NODATA":
            current.verdicts.append("NODATA")
    return blocks


def imported_fingerprints(status: str) -> set[str]:
    """Primary fingerprints gpg reports for one `--import` (`IMPORT_OK <reasons> <fpr>`,
    doc/DETAILS in GnuPG's sources), so a key file can be tied to the keys it holds."""
    found: set[str] = set()
    for line in status.splitlines():
        fields = line.split()
        if fields[:2] == ["[GNUPG:]", "IMPORT_OK"] and len(fields) >= 4:
            fpr = normalize_fingerprint(fields[3])
            if fpr:
                found.add(fpr)
    return found


def primary_fingerprints(listing: str) -> set[str]:
    """Primary-key fingerprints of a `gpg --with-colons --list-keys` listing: the `fpr`
    record right after each `pub` (a `sub`'s fpr is a subkey's)."""
    found: set[str] = set()
    expect_primary_fpr = False
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            expect_primary_fpr = True
        elif fields[0] == "fpr" and expect_primary_fpr and len(fields) > 9:
            found.add(fields[9].upper())
            expect_primary_fpr = False
        elif fields[0] == "sub":
            expect_primary_fpr = False
    return found


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"`{name}` is not installed; it is needed to check signatures "
            "(Debian/Ubuntu: apt-get install gpg gpgv; Fedora: dnf install "
            "gnupg2)"
        )
    return path


class Keyring:
    """A throw-away keyring holding exactly the given key files (context manager).

    gpg imports each armored or binary key file into a private home (no gpg.conf, no agent),
    exports one binary keyring (gpgv needs binary), and lists the primary fingerprints. The
    home is deleted on exit, so nothing the user has in ~/.gnupg takes part.
    """

    def __init__(
        self, key_files: Sequence[Path], *, what: str, labels: Mapping[Path, str] | None = None
    ) -> None:
        self.key_files = [Path(k) for k in key_files]
        self.what = what
        self.labels = dict(labels or {})  # key file -> how to name it (e.g. its URL)
        self.fingerprints: set[str] = set()
        self.fingerprints_by_file: dict[Path, set[str]] = {}
        self.verified_by: set[str] = set()  # primary fingerprints of accepted signatures
        self._home: Path | None = None

    def label(self, key_file: Path) -> str:
        return self.labels.get(key_file, str(key_file))

    def __enter__(self) -> Keyring:
        gpg = _tool("gpg")
        self._home = Path(tempfile.mkdtemp(prefix="glibc-build-keyring-"))
        gnupghome = self._home / "home"
        gnupghome.mkdir(mode=0o700)
        (self._home / "empty").mkdir(mode=0o700)
        base = [
            gpg,
            "--homedir",
            str(gnupghome),
            "--batch",
            "--no-options",
            "--no-autostart",
            "--no-tty",
            "--status-fd",
            "1",
        ]
        try:
            for key_file in self.key_files:
                if not key_file.is_file():
                    raise VerificationFailed(
                        f"{self.what}: key file {self.label(key_file)} is missing"
                    )
                proc = subprocess.run(
                    [*base, "--import", str(key_file.resolve())],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                imported = re.search(r"^\[GNUPG:\] IMPORT_RES (\d+)", proc.stdout, re.M)
                if not imported or int(imported.group(1)) == 0:
                    raise VerificationFailed(
                        f"{self.what}: key file {self.label(key_file)} holds no OpenPGP public "
                        f"key ({proc.stderr.strip().splitlines()[-1:] or 'gpg said nothing'})"
                    )
                self.fingerprints_by_file[key_file] = imported_fingerprints(proc.stdout)
            subprocess.run(
                [*base, "--export", "--output", str(self.keyring_path)],
                capture_output=True,
                text=True,
                check=True,
            )
            listing = subprocess.run(
                [*base, "--with-colons", "--fixed-list-mode", "--list-keys"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.fingerprints = primary_fingerprints(listing)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    @property
    def keyring_path(self) -> Path:
        assert self._home is not None, "use Keyring as a context manager"
        return self._home / "keyring.gpg"

    def require_pinned(self, pinned: Sequence[str], *, what: str) -> set[str]:
        """The pinned fingerprints, normalised; refused when no key here has one of them
        (known before any download: nothing this keyring could verify would count)."""
        pinned_set = {normalize_fingerprint(f) or f for f in pinned}
        if not pinned_set & self.fingerprints:
            raise VerificationFailed(
                f"{what}: none of the pinned fingerprints ({', '.join(sorted(pinned_set))}) "
                f"belongs to a key in {', '.join(self.label(k) for k in self.key_files)}; fix "
                "`keys` or `fingerprints` in the recipe"
            )
        return pinned_set

    def verify(
        self,
        signature: Path,
        data: Path,
        pinned: Sequence[str],
        *,
        what: str,
        allow_expired_key: bool = False,
        signature_name: str | None = None,
    ) -> SignatureStatus:
        """Check `signature` over `data`; return the accepted signature or raise.

        `what` names the file for the user (e.g. `llvm-5.0.2.src.tar.xz`), `signature_name`
        the signature (when `signature` is a temporary file).
        `allow_expired_key`: the caller has pinned the data's sha256 (see module docstring).
        """
        assert self._home is not None, "use Keyring as a context manager"
        sig_name = signature_name or signature.name
        pinned_set = self.require_pinned(pinned, what=what)
        proc = subprocess.run(
            [
                _tool("gpgv"),
                "--homedir",
                str(self._home / "empty"),
                "--keyring",
                str(self.keyring_path),
                "--status-fd",
                "1",
                str(signature.resolve()),
                str(data.resolve()),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        accepted = judge(
            parse_status(proc.stdout),
            pinned_set,
            what=what,
            sig_name=sig_name,
            allow_expired_key=allow_expired_key,
        )
        if proc.returncode != 0:
            raise VerificationFailed(
                f"{what}: gpgv did not accept {sig_name} (exit {proc.returncode}); refusing it"
            )
        self.verified_by.add(accepted.primary_fingerprint)
        return accepted


def judge(
    blocks: list[SignatureStatus],
    pinned: set[str],
    *,
    what: str,
    sig_name: str,
    allow_expired_key: bool,
) -> SignatureStatus:
    """The signature to accept among gpgv's verdicts, or VerificationFailed.

    Any refusing status (revoked, bad, unknown key...) refuses the file, even next to a good
    signature: never guess. Otherwise one good signature by a pinned primary key is enough;
    other co-signers are ignored.
    """
    if not blocks or any("NODATA" in b.verdicts for b in blocks):
        raise VerificationFailed(f"{what}: {sig_name} holds no OpenPGP signature")
    accepted: SignatureStatus | None = None
    first_problem: VerificationFailed | None = None
    for block in blocks:
        refused = [v for v in _REFUSED if v in block.verdicts]
        if refused:
            raise VerificationFailed(
                f"{what}: {_REFUSED[refused[0]]} ({refused[0]} from key {block.keyid or '?'},"
                f" signature {sig_name}); refusing it"
            )
        try:
            check_block(block, pinned, what=what, allow_expired_key=allow_expired_key)
        except VerificationFailed as problem:  # e.g. a second, unpinned co-signer
            first_problem = first_problem or problem
        else:
            accepted = accepted or block
    if accepted is None:
        raise first_problem or VerificationFailed(
            f"{what}: no signature in {sig_name}; refusing it"
        )
    return accepted


def check_block(
    block: SignatureStatus, pinned: set[str], *, what: str, allow_expired_key: bool
) -> None:
    """Refuse one signature unless gpgv vouched for it and its primary key is pinned."""
    if (
        block.validsig is None
        or len(block.validsig) < 10
        or not ({"GOODSIG", "EXPKEYSIG"} & set(block.verdicts))
    ):
        raise VerificationFailed(
            f"{what}: gpgv gave no valid signature (status "
            f"{' '.join(block.verdicts) or 'empty'}); refusing it"
        )
    fpr = block.primary_fingerprint
    if fpr not in pinned:
        raise VerificationFailed(
            f"{what}: signed by key {fpr}, which the recipe does not pin (pinned: "
            f"{', '.join(sorted(pinned))}); a key merely being in the keyring is not "
            "enough, refusing it"
        )
    sig_class = block.validsig[8]
    if sig_class.lower() not in DOCUMENT_CLASSES:
        raise VerificationFailed(
            f"{what}: signature class {sig_class} is not a document signature; refusing it"
        )
    hash_algo = int(block.validsig[7]) if block.validsig[7].isdigit() else 0
    if hash_algo in WEAK_HASH_ALGOS:
        raise VerificationFailed(
            f"{what}: the signature uses {WEAK_HASH_ALGOS[hash_algo]}, "
            "which can be forged; refusing it"
        )
    if "EXPKEYSIG" in block.verdicts:
        expired_at = min(block.key_expired_at, default=0)
        if not allow_expired_key:
            raise VerificationFailed(
                f"{what}: signing key {fpr} has expired and the recipe pins no sha256 for "
                "this file; pin its sha256 (checked by other means) to accept it"
            )
        if not expired_at or block.created >= expired_at:
            raise VerificationFailed(f"{what}: signed after key {fpr} expired; refusing it")


def read_checksum_list(listing: Path, filename: str, *, what: str) -> str:
    """The sha256 a `sha256sum`-style list gives for exactly `filename` (e.g. CMake's
    SHA-256.txt). A substring match (manylinux's `grep`) would let `x.tar.gz.bad` stand in;
    two different entries for one name are refused.
    """
    found: set[str] = set()
    for raw in listing.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = raw.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, name = parts[0].lower(), parts[1].strip()
        name = name[1:] if name.startswith("*") else name  # `sha256sum -b` marks binary mode
        if name == filename and _HEX_SHA256.match(digest):
            found.add(digest)
    if not found:
        raise VerificationFailed(
            f"{what}: the signed list {listing.name} has no sha256 for {filename}"
        )
    if len(found) > 1:
        raise VerificationFailed(
            f"{what}: the signed list {listing.name} gives {filename} "
            "several different sha256 values; refusing it"
        )
    return found.pop()
