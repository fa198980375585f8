"""Download a recipe's sources into rsrc/, and prove each one is the right file.

Each source lands in rsrc/ under its file name, with its signature (and signed checksum
list) beside it so it can be re-verified later, offline too. How (download.py moves the
bytes; this module decides what to try and what to keep):

- Bytes stream into `rsrc/.NAME.part` (same folder, so the final rename is atomic) while
  being hashed; only a file that passes every check is renamed to NAME, after its companion
  files. A failure leaves nothing under the final name. A file already in rsrc/ is verified
  before use; if it does not verify for the recipe asking, a new copy is downloaded and
  replaces it only once that copy verifies (never in --offline). So a recipe with a wrong pin
  never removes a file another recipe verified.
- Companions (signature, checksum list) come first: a missing signature stops the fetch
  before the big download.
- A key given by URL is downloaded beside the others and kept in rsrc/ only once a
  signature has verified with it: a wrong key served once must not stay to refuse every
  later fetch (and make the recipe look wrong).
- Each URL is tried `retries` times with back-off on network trouble; a dropped connection
  resumes. A 4xx or a file that fails verification moves on to the next URL: `--mirror`
  bases first (a local mirror is the reason to give one), then the recipe's URL, then the
  recipe's mirrors. Each file has one `deadline` over all of that (exit 6 past it).
- A full disk removes the part being written and exits 2 naming the folder.
- An exclusive lock on `rsrc/.fetch.lock` serialises fetches sharing rsrc/.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .digest import sha256_file
from .download import (
    DEFAULT_DEADLINE,
    Deadline,
    Downloaded,
    NextUrl,
    Progress,
    Retryable,
    Settings,
    download,
)
from .errors import BadInput, DownloadFailed, UsageError, VerificationFailed
from .files import locked, replace_durably
from .logger import info, step, warn
from .paths import DEFAULT_RSRC, is_url
from .recipe import Recipe, Source, url_filename
from .signatures import Keyring, read_checksum_list

__all__ = ["DEFAULT_DEADLINE", "DEFAULT_RSRC", "fetch_sources"]

LOCK_NAME = ".fetch.lock"


def fetch_sources(
    recipe: Recipe,
    rsrc: Path,
    *,
    offline: bool = False,
    mirrors: Sequence[str] = (),
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    deadline: float | None = None,
) -> list[Path]:
    """Make every source of `recipe` present and verified in `rsrc`; return their paths
    (recipe order; signatures and lists stay beside them).

    Raises VerificationFailed (exit 4) when a file does not verify, DownloadFailed (exit 6)
    when no URL gives it within `deadline` seconds (default DEFAULT_DEADLINE) per file
    (or --offline and it is missing),
    BadInput (exit 2) when rsrc/ cannot be written or its disk is full.
    """
    deadline = DEFAULT_DEADLINE if deadline is None else deadline
    if not deadline > 0:
        raise UsageError(f"--deadline {deadline:g}: give a number of seconds above 0")
    rsrc = Path(rsrc)
    try:
        rsrc.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create the download folder {rsrc}: {exc.strerror}") from exc
    mirror_bases = [_mirror_base(m) for m in mirrors]
    settings = Settings(retries=max(1, retries), backoff=backoff, timeout=timeout)
    with contextlib.ExitStack() as stack:
        lock_path = rsrc / LOCK_NAME
        try:
            stack.enter_context(
                locked(
                    lock_path,
                    on_wait=lambda: info(
                        f"waiting for another fetch into {rsrc} to finish (lock {lock_path})"
                    ),
                )
            )
        except BadInput as exc:  # the lock file cannot be made: say which option to change
            cause = exc.__context__
            reason = f": {cause.strerror}" if isinstance(cause, OSError) and cause.strerror else ""
            raise BadInput(
                f"cannot write to the download folder {rsrc}{reason}; pass --rsrc DIR "
                "with a folder you can write"
            ) from None
        if offline:
            return _verify_offline(recipe, rsrc)
        with Progress() as progress:
            fetcher = _Fetcher(rsrc, mirror_bases, settings, deadline, progress)
            return [fetcher.fetch(source) for source in recipe.sources]


def _mirror_base(text: str) -> str:
    """`--mirror` takes a URL or a local folder (served as file://) holding files by name."""
    if is_url(text):
        return text.rstrip("/")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise BadInput(f"--mirror {text!r} is neither an http(s)/file URL nor a folder")
    return path.resolve().as_uri()


# -- keys -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    """A key file the keyring reads, and how messages name it. `keep_at` is set for a key
    just fetched by URL: where it goes once a signature verifies with it."""

    path: Path
    label: str
    keep_at: Path | None = None


def _key_path(key: str, rsrc: Path) -> Path:
    """A key given by URL is kept in rsrc/ under a name derived from the URL."""
    if not is_url(key):
        return Path(key)
    name = url_filename(key)
    if not name or "?" in key or not name.endswith((".asc", ".gpg", ".pgp", ".key")):
        name = "key-" + hashlib.sha256(key.encode()).hexdigest()[:16] + ".asc"
    return rsrc / name


def _kept_key(key: str, rsrc: Path) -> _Key:
    """A key as rsrc/ (or the recipe's folder) holds it."""
    path = _key_path(key, rsrc)
    if is_url(key):
        return _Key(path, f"{path} (fetched earlier from {key}; delete it to fetch it again)")
    return _Key(path, str(path))


def _keyring(
    source: Source, keys: Sequence[_Key]
) -> contextlib.AbstractContextManager[Keyring | None]:
    if not source.signed:
        return contextlib.nullcontext()
    return Keyring([k.path for k in keys], what=source.name, labels={k.path: k.label for k in keys})


def _keep_verified_keys(keys: Sequence[_Key], keyring: Keyring | None) -> None:
    """Move each freshly fetched key that vouched for a signature into rsrc/; the others
    are dropped by the caller."""
    for key in keys:
        if key.keep_at is None or keyring is None:
            continue
        if keyring.fingerprints_by_file.get(key.path, set()) & keyring.verified_by:
            replace_durably(key.path, key.keep_at)


# -- verification, shared by online and offline ----------------------------------------------
def _expected_sha256(
    source: Source, keyring: Keyring | None, listing: Path | None, listing_sig: Path | None
) -> str | None:
    """The sha256 the file must have: pinned in the recipe and/or from the signed list."""
    expected = source.sha256
    if source.checksums:
        assert keyring is not None and listing is not None and listing_sig is not None
        keyring.verify(
            listing_sig,
            listing,
            source.fingerprints,
            what=f"{source.name} ({source.checksums_filename})",
            allow_expired_key=source.sha256 is not None,
            signature_name=source.checksums_signature_filename,
        )
        listed = read_checksum_list(listing, source.upstream_filename, what=source.name)
        if expected and listed != expected:
            raise VerificationFailed(
                f"{source.name}: the recipe pins sha256 {expected} but the "
                f"signed list {listing.name} says {listed}"
            )
        expected = listed
    return expected


def _verify_data(
    source: Source,
    data: Path,
    actual_sha256: str,
    expected: str | None,
    keyring: Keyring | None,
    signature: Path | None,
) -> None:
    if expected and actual_sha256 != expected:
        raise VerificationFailed(
            f"{source.filename}: sha256 is {actual_sha256}, the recipe "
            f"expects {expected}; refusing it"
        )
    if source.signature:
        assert keyring is not None and signature is not None
        keyring.verify(
            signature,
            data,
            source.fingerprints,
            what=source.filename,
            allow_expired_key=source.sha256 is not None,
            signature_name=source.signature_filename,
        )


def _verify_in_place(source: Source, rsrc: Path, keyring: Keyring | None) -> None:
    """Verify rsrc/NAME with the companions beside it, or raise VerificationFailed."""
    final = rsrc / source.filename
    for companion in source.companion_filenames:
        if not (rsrc / companion).is_file():
            raise VerificationFailed(
                f"{source.filename}: its companion {companion} is missing from {rsrc}"
            )
    expected = _expected_sha256(
        source,
        keyring,
        rsrc / source.checksums_filename if source.checksums_filename else None,
        rsrc / source.checksums_signature_filename if source.checksums_signature_filename else None,
    )
    _verify_data(
        source,
        final,
        sha256_file(final),
        expected,
        keyring,
        rsrc / source.signature_filename if source.signature_filename else None,
    )


def _verify_offline(recipe: Recipe, rsrc: Path) -> list[Path]:
    """--offline: no network; check everything rsrc/ holds and name all that is wrong."""
    missing: list[str] = []
    altered: list[str] = []
    paths: list[Path] = []
    for source in recipe.sources:
        keys = [_kept_key(k, rsrc) for k in source.keys]
        wanted = [source.filename, *source.companion_filenames]
        absent = [n for n in wanted if not (rsrc / n).is_file()]
        absent += [str(k.path) for k in keys if not k.path.is_file()]
        if absent:
            missing.extend(absent)
            continue
        try:
            with _keyring(source, keys) as keyring:
                _verify_in_place(source, rsrc, keyring)
        except VerificationFailed as exc:
            altered.append(exc.message)
            continue
        info(f"{source.filename}: verified (offline)")
        paths.append(rsrc / source.filename)
    details = "\n".join(
        [*(f"  altered: {a}" for a in altered), *(f"  missing: {m}" for m in missing)]
    )
    if altered:
        raise VerificationFailed(
            f"--offline: {len(altered)} file(s) in {rsrc} do not verify"
            + (f" and {len(missing)} are missing" if missing else "")
            + "; delete them and fetch again with network, or copy good ones in",
            details=details,
        )
    if missing:
        raise DownloadFailed(
            f"--offline: {len(missing)} file(s) missing from {rsrc} "
            f"({', '.join(missing)}); run `{_fetch_command(recipe, rsrc)}` "
            "with network (or --mirror DIR) first",
            details=details,
        )
    return paths


def _fetch_command(recipe: Recipe, rsrc: Path) -> str:
    """The fetch command that fills `rsrc`, with the recipe as the user gave it (the `name`
    inside a recipe file of one's own is not something `--recipe` can find)."""
    command = ["build.py", "fetch", "--recipe", recipe.given or str(recipe.path)]
    if Path(rsrc).resolve() != DEFAULT_RSRC.resolve():
        command += ["--rsrc", str(rsrc)]
    return shlex.join(command)


# -- downloading ---------------------------------------------------------------------------
class _AllNotFound(Exception):
    """Every URL answered 404/410."""


class _Fetcher:
    """One fetch run: which URLs to try for each file, and what to keep."""

    def __init__(
        self,
        rsrc: Path,
        mirror_bases: list[str],
        settings: Settings,
        deadline: float,
        progress: Progress,
    ) -> None:
        self.rsrc = rsrc
        self.mirror_bases = mirror_bases
        self.settings = settings
        self.deadline = deadline
        self.progress = progress

    # candidates ---------------------------------------------------------------------------
    def candidates(
        self, source: Source, url: str, *, name: str | None = None, beside_mirrors: bool = True
    ) -> list[str]:
        """--mirror bases first (looked up by the name the file has in rsrc/, since such a
        mirror is a copy of rsrc/), then the URL itself, then the same file name beside each
        of the recipe's mirrors (so a mirror of the tarball also serves its .sig)."""
        name = name or url_filename(url)
        found = [f"{base}/{quote(name)}" for base in self.mirror_bases]
        found.append(url)
        for mirror in source.mirrors if beside_mirrors else ():
            found.append(mirror.rsplit("/", 1)[0] + "/" + quote(name))
        unique: list[str] = []
        for candidate in found:
            if candidate not in unique:
                unique.append(candidate)
        return unique

    # one source ---------------------------------------------------------------------------
    def fetch(self, source: Source) -> Path:
        step(
            source.filename
            if source.name == source.filename
            else f"{source.name}: {source.filename}"
        )
        final = self.rsrc / source.filename
        keys: list[_Key] = []
        try:
            for key_text in source.keys:  # one by one: a failure still cleans up the others
                keys.append(self.key(key_text, source))
            with _keyring(source, keys) as keyring:
                if keyring is not None:
                    keyring.require_pinned(source.fingerprints, what=source.name)
                if final.exists():
                    try:
                        _verify_in_place(source, self.rsrc, keyring)
                    except VerificationFailed as exc:
                        # Maybe bad, maybe another recipe's good file: it stays until a
                        # copy that verifies for this recipe replaces it.
                        warn(
                            f"{final} does not verify for {source.name} ({exc.message}); "
                            "downloading it again"
                        )
                    else:
                        _keep_verified_keys(keys, keyring)
                        info(f"{source.filename}: already in {self.rsrc}, verified")
                        return final
                self.download_source(source, keyring)
                _keep_verified_keys(keys, keyring)
        finally:
            for key in keys:
                if key.keep_at is not None:
                    key.path.unlink(missing_ok=True)
        if source.signed and not source.sha256:
            info(
                f"{source.filename}: sha256 {sha256_file(final)} (verified by signature; pin "
                "it in the recipe as `sha256` to lock it)"
            )
        return final

    def download_source(self, source: Source, keyring: Keyring | None) -> None:
        """Companions, then the file; all renamed into rsrc/ only once the file verifies."""
        parts: dict[str, Path] = {}
        try:
            for companion_url in (source.checksums, source.checksums_signature, source.signature):
                if companion_url:
                    parts[url_filename(companion_url)] = self.companion(source, companion_url)
            expected = _expected_sha256(
                source,
                keyring,
                parts.get(source.checksums_filename or ""),
                parts.get(source.checksums_signature_filename or ""),
            )
            part = self.download_verified(
                source, expected, keyring, parts.get(source.signature_filename or "")
            )
            # Companions first, the source last: a present source implies its proof.
            for name, companion_part in parts.items():
                replace_durably(companion_part, self.rsrc / name)
            replace_durably(part, self.rsrc / source.filename)
        finally:
            for leftover in parts.values():
                leftover.unlink(missing_ok=True)

    def key(self, key: str, source: Source) -> _Key:
        """A local key file as is; a key URL already kept in rsrc/ as is; else downloaded
        into a part that is kept only once a signature verifies with it. The fingerprint pin,
        not the server, is what makes a key trustworthy."""
        path = _key_path(key, self.rsrc)
        if not is_url(key) or path.is_file():
            return _kept_key(key, self.rsrc)
        part = self.part_path(path.name)
        try:
            self.first_of(
                self.candidates(source, key, name=path.name, beside_mirrors=False),
                part,
                what=f"key {key} for {source.name}",
            )
        except _AllNotFound as exc:
            raise VerificationFailed(
                f"{source.name}: its signing key {key} is missing ({exc}); "
                "without it nothing can be verified"
            ) from None
        return _Key(part, f"{key} (as served now; not kept)", keep_at=path)

    def companion(self, source: Source, url: str) -> Path:
        """Download a signature or checksum list into a .part; a 404 everywhere means the
        source cannot be verified, which is a verification failure, not a network one."""
        part = self.part_path(url_filename(url) + ".new")
        try:
            self.first_of(
                self.candidates(source, url), part, what=f"{url_filename(url)} for {source.name}"
            )
        except _AllNotFound as exc:
            raise VerificationFailed(
                f"{source.name}: {url_filename(url)} is missing ({exc}); without it "
                f"{source.filename} cannot be verified, refusing to use it"
            ) from None
        return part

    def download_verified(
        self, source: Source, expected: str | None, keyring: Keyring | None, signature: Path | None
    ) -> Path:
        """Try each URL until one gives bytes that verify; return the .part holding them."""
        part = self.part_path(source.filename)
        deadline = Deadline(self.deadline)
        failures: list[str] = []
        refused: VerificationFailed | None = None
        for url in self.candidates(source, source.url):
            try:
                got = self.get(url, part, deadline)
                try:
                    _verify_data(source, part, got.sha256, expected, keyring, signature)
                except VerificationFailed:
                    if not got.resumed:
                        raise
                    # A resumed download may have stitched two versions: once more, whole.
                    warn(
                        f"{source.filename}: resumed download does not verify; downloading it whole"
                    )
                    part.unlink(missing_ok=True)
                    got = self.get(url, part, deadline)
                    _verify_data(source, part, got.sha256, expected, keyring, signature)
                return part
            except VerificationFailed as exc:
                part.unlink(missing_ok=True)
                refused = refused or exc
                warn(f"{url}: {exc.message}")
            except (Retryable, NextUrl) as exc:
                failures.append(f"{url}: {exc}")
        if refused is not None:
            raise refused
        raise DownloadFailed(
            f"{source.filename}: no URL gave it "
            f"({len(failures)} tried); check the network or pass "
            "--mirror URL|DIR",
            details="\n".join(f"  {f}" for f in failures),
        )

    def first_of(self, urls: list[str], part: Path, *, what: str) -> None:
        deadline = Deadline(self.deadline)
        failures: list[str] = []
        all_not_found = True
        for url in urls:
            try:
                self.get(url, part, deadline)
                return
            except NextUrl as exc:
                all_not_found = all_not_found and exc.not_found
                failures.append(f"{url}: {exc}")
            except Retryable as exc:
                all_not_found = False
                failures.append(f"{url}: {exc}")
        if all_not_found:
            raise _AllNotFound("; ".join(failures))
        raise DownloadFailed(
            f"{what}: no URL gave it ({len(failures)} tried); check the "
            "network or pass --mirror URL|DIR",
            details="\n".join(f"  {f}" for f in failures),
        )

    def part_path(self, filename: str) -> Path:
        return self.rsrc / f".{filename}.part"

    def get(self, url: str, part: Path, deadline: Deadline) -> Downloaded:
        return download(
            url,
            part,
            name=url_filename(url),
            settings=self.settings,
            deadline=deadline,
            progress=self.progress,
        )
