"""Download a recipe's sources into rsrc/, and prove each one is the right file.

Each source lands in rsrc/ under its file name, with its signature (and signed checksum
list) beside it so it can be re-verified later, offline too. How (pitfalls in
shared/notes/supply.md):

- Bytes stream into `rsrc/.NAME.part` (same folder, so the final rename is atomic) while
  being hashed; only a file that passes every check is renamed to NAME, after its companion
  files. A failure leaves nothing under the final name. A file already in rsrc/ is verified
  before use, and downloaded again if it no longer verifies (never in --offline).
- Companions (signature, checksum list) come first: a missing signature stops the fetch
  before the big download.
- Each URL is tried `retries` times with exponential back-off and jitter on connection
  errors, 5xx and 429 (Retry-After honoured); a dropped connection resumes with Range +
  If-Range, and starts over if the server answers 200. A 4xx or a file that fails
  verification moves on to the next URL: `--mirror` bases first (a local mirror is the
  reason to give one), then the recipe's URL, then the recipe's mirrors.
- An exclusive lock on `rsrc/.fetch.lock` serialises fetches sharing rsrc/.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import json
import os
import random
import shlex
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import __version__
from .digest import sha256_file
from .errors import BadInput, DownloadFailed, VerificationFailed
from .files import locked
from .logger import console, info, step, warn
from .recipe import RSRC_DIR, Recipe, Source, url_filename
from .signatures import Keyring, read_checksum_list

DEFAULT_RSRC = RSRC_DIR
LOCK_NAME = ".fetch.lock"
CHUNK = 1 << 16
MAX_BYTES = 16 << 30  # nothing a recipe needs is bigger; stops a server that never ends
MAX_RETRY_AFTER = 60.0
USER_AGENT = f"glibc-build/{__version__}"


class _Retryable(Exception):
    """Worth trying the same URL again (network trouble, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _NextUrl(Exception):
    """This URL will not give the file (4xx): try the next one."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass(frozen=True)
class FetchOptions:
    retries: int = 3
    backoff: float = 0.5
    timeout: float = 30.0


def fetch_sources(recipe: Recipe, rsrc: Path, *, offline: bool = False,
                  mirrors: Sequence[str] = (), retries: int = 3, backoff: float = 0.5,
                  timeout: float = 30.0) -> list[Path]:
    """Make every source of `recipe` present and verified in `rsrc`; return their paths
    (recipe order; signatures and lists stay beside them).

    Raises VerificationFailed (exit 4) when a file does not verify, DownloadFailed (exit 6)
    when no URL gives it (or --offline and it is missing).
    """
    rsrc = Path(rsrc)
    try:
        rsrc.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create the download folder {rsrc}: {exc.strerror}") from exc
    mirror_bases = [_mirror_base(m) for m in mirrors]
    options = FetchOptions(retries=max(1, retries), backoff=backoff, timeout=timeout)
    with contextlib.ExitStack() as stack:
        lock_path = rsrc / LOCK_NAME
        try:
            stack.enter_context(locked(lock_path, on_wait=lambda: info(
                f"waiting for another fetch into {rsrc} to finish (lock {lock_path})")))
        except BadInput as exc:   # the lock file cannot be made: say which option to change
            cause = exc.__context__
            reason = f": {cause.strerror}" if isinstance(cause, OSError) and cause.strerror else ""
            raise BadInput(f"cannot write to the download folder {rsrc}{reason}; pass --rsrc DIR "
                           "with a folder you can write") from None
        if offline:
            return _verify_offline(recipe, rsrc)
        with _Fetcher(rsrc, mirror_bases, options) as fetcher:
            return [fetcher.fetch(source) for source in recipe.sources]


def _mirror_base(text: str) -> str:
    """`--mirror` takes a URL or a local folder (served as file://) holding files by name."""
    if urlsplit(text).scheme in ("http", "https", "file"):
        return text.rstrip("/")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise BadInput(f"--mirror {text!r} is neither an http(s)/file URL nor a folder")
    return path.resolve().as_uri()


# -- verification, shared by online and offline ----------------------------------------------
def _key_path(key: str, rsrc: Path) -> Path:
    """A key given by URL is kept in rsrc/ under a name derived from the URL."""
    if urlsplit(key).scheme not in ("http", "https", "file"):
        return Path(key)
    name = url_filename(key)
    if not name or "?" in key or not name.endswith((".asc", ".gpg", ".pgp", ".key")):
        name = "key-" + hashlib.sha256(key.encode()).hexdigest()[:16] + ".asc"
    return rsrc / name


def _expected_sha256(source: Source, keyring: Keyring | None, listing: Path | None,
                     listing_sig: Path | None) -> str | None:
    """The sha256 the file must have: pinned in the recipe and/or from the signed list."""
    expected = source.sha256
    if source.checksums:
        assert keyring is not None and listing is not None and listing_sig is not None
        keyring.verify(listing_sig, listing, source.fingerprints,
                       what=f"{source.name} ({source.checksums_filename})",
                       allow_expired_key=source.sha256 is not None,
                       signature_name=source.checksums_signature_filename)
        listed = read_checksum_list(listing, source.upstream_filename, what=source.name)
        if expected and listed != expected:
            raise VerificationFailed(f"{source.name}: the recipe pins sha256 {expected} but the "
                                     f"signed list {listing.name} says {listed}")
        expected = listed
    return expected


def _verify_data(source: Source, data: Path, actual_sha256: str, expected: str | None,
                 keyring: Keyring | None, signature: Path | None) -> None:
    if expected and actual_sha256 != expected:
        raise VerificationFailed(f"{source.filename}: sha256 is {actual_sha256}, the recipe "
                                 f"expects {expected}; refusing it")
    if source.signature:
        assert keyring is not None and signature is not None
        keyring.verify(signature, data, source.fingerprints, what=source.filename,
                       allow_expired_key=source.sha256 is not None,
                       signature_name=source.signature_filename)


def _verify_in_place(source: Source, rsrc: Path, key_files: list[Path]) -> str:
    """Verify rsrc/NAME with the companions beside it; return its sha256 or raise."""
    final = rsrc / source.filename
    for companion in source.companion_filenames:
        if not (rsrc / companion).is_file():
            raise VerificationFailed(f"{source.filename}: its companion {companion} is missing "
                                     f"from {rsrc}")
    keyring_cm = Keyring(key_files, what=source.name) if source.signed else contextlib.nullcontext()
    with keyring_cm as keyring:
        expected = _expected_sha256(
            source, keyring,
            rsrc / source.checksums_filename if source.checksums_filename else None,
            rsrc / source.checksums_signature_filename
            if source.checksums_signature_filename else None)
        actual = sha256_file(final)
        _verify_data(source, final, actual, expected, keyring,
                     rsrc / source.signature_filename if source.signature_filename else None)
    return actual


def _verify_offline(recipe: Recipe, rsrc: Path) -> list[Path]:
    """--offline: no network; check everything rsrc/ holds and name all that is wrong."""
    missing: list[str] = []
    altered: list[str] = []
    paths: list[Path] = []
    for source in recipe.sources:
        key_files = [_key_path(k, rsrc) for k in source.keys]
        wanted = [source.filename, *source.companion_filenames]
        absent = [n for n in wanted if not (rsrc / n).is_file()]
        absent += [str(k) for k in key_files if not k.is_file()]
        if absent:
            missing.extend(absent)
            continue
        try:
            _verify_in_place(source, rsrc, key_files)
        except VerificationFailed as exc:
            altered.append(exc.message)
            continue
        info(f"{source.filename}: verified (offline)")
        paths.append(rsrc / source.filename)
    details = "\n".join([*(f"  altered: {a}" for a in altered),
                         *(f"  missing: {m}" for m in missing)])
    if altered:
        raise VerificationFailed(
            f"--offline: {len(altered)} file(s) in {rsrc} do not verify"
            + (f" and {len(missing)} are missing" if missing else "")
            + "; delete them and fetch again with network, or copy good ones in",
            details=details)
    if missing:
        raise DownloadFailed(f"--offline: {len(missing)} file(s) missing from {rsrc} "
                             f"({', '.join(missing)}); run `{_fetch_command(recipe, rsrc)}` "
                             "with network (or --mirror DIR) first", details=details)
    return paths


def _fetch_command(recipe: Recipe, rsrc: Path) -> str:
    """The fetch command that fills `rsrc`, with the recipe as the user gave it (the `name`
    inside a recipe file of one's own is not something `--recipe` can find)."""
    command = ["build.py", "fetch", "--recipe", recipe.given or str(recipe.path)]
    if Path(rsrc).resolve() != Path(DEFAULT_RSRC).resolve():
        command += ["--rsrc", str(rsrc)]
    return shlex.join(command)


# -- downloading ---------------------------------------------------------------------------
class _Fetcher:
    """One fetch run: the progress display and the download loop."""

    def __init__(self, rsrc: Path, mirror_bases: list[str], options: FetchOptions) -> None:
        self.rsrc = rsrc
        self.mirror_bases = mirror_bases
        self.options = options
        self.progress = None

    def __enter__(self) -> _Fetcher:
        if console().is_terminal and not console().quiet:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(TextColumn("    {task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), console=console(), transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    # candidates ---------------------------------------------------------------------------
    def candidates(self, source: Source, url: str, *, name: str | None = None,
                   beside_mirrors: bool = True) -> list[str]:
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
        step(source.filename if source.name == source.filename
             else f"{source.name}: {source.filename}")
        final = self.rsrc / source.filename
        key_files = [self.key(k, source) for k in source.keys]
        if final.exists():
            try:
                _verify_in_place(source, self.rsrc, key_files)
            except VerificationFailed as exc:
                warn(f"{final} does not verify ({exc.message}); downloading it again")
                final.unlink()
            else:
                info(f"{source.filename}: already in {self.rsrc}, verified")
                return final

        keyring_cm = (Keyring(key_files, what=source.name) if source.signed
                      else contextlib.nullcontext())
        parts: dict[str, Path] = {}
        try:
            with keyring_cm as keyring:
                for companion_url in (source.checksums, source.checksums_signature,
                                      source.signature):
                    if companion_url:
                        parts[url_filename(companion_url)] = self.companion(source,
                                                                            companion_url)
                expected = _expected_sha256(
                    source, keyring, parts.get(source.checksums_filename or ""),
                    parts.get(source.checksums_signature_filename or ""))
                part = self.download_verified(source, expected, keyring,
                                              parts.get(source.signature_filename or ""))
                # Companions first, the source last: a present source implies its proof.
                for name, companion_part in parts.items():
                    _commit(companion_part, self.rsrc / name)
                _commit(part, final)
        finally:
            for leftover in parts.values():
                leftover.unlink(missing_ok=True)
        if source.signed and not source.sha256:
            info(f"{source.filename}: sha256 {sha256_file(final)} (verified by signature; pin "
                 "it in the recipe as `sha256` to lock it)")
        return final

    def key(self, key: str, source: Source) -> Path:
        """A local key file as is; a key URL downloaded once into rsrc/. The fingerprint pin,
        not the server, is what makes a key trustworthy."""
        path = _key_path(key, self.rsrc)
        if path.is_file() or urlsplit(key).scheme not in ("http", "https", "file"):
            return path
        part = self.part_path(path.name)
        try:
            self.first_of(self.candidates(source, key, name=path.name, beside_mirrors=False),
                          part, what=f"key {key} for {source.name}")
        except _AllNotFound as exc:
            raise VerificationFailed(f"{source.name}: its signing key {key} is missing ({exc}); "
                                     "without it nothing can be verified") from None
        _commit(part, path)
        return path

    def companion(self, source: Source, url: str) -> Path:
        """Download a signature or checksum list into a .part; a 404 everywhere means the
        source cannot be verified, which is a verification failure, not a network one."""
        part = self.part_path(url_filename(url) + ".new")
        try:
            self.first_of(self.candidates(source, url), part,
                          what=f"{url_filename(url)} for {source.name}")
        except _AllNotFound as exc:
            raise VerificationFailed(
                f"{source.name}: {url_filename(url)} is missing ({exc}); without it "
                f"{source.filename} cannot be verified, refusing to use it") from None
        return part

    def download_verified(self, source: Source, expected: str | None,
                          keyring: Keyring | None, signature: Path | None) -> Path:
        """Try each URL until one gives bytes that verify; return the .part holding them."""
        part = self.part_path(source.filename)
        failures: list[str] = []
        refused: VerificationFailed | None = None
        for url in self.candidates(source, source.url):
            try:
                digest, resumed = self.get(url, part)
                try:
                    _verify_data(source, part, digest, expected, keyring, signature)
                except VerificationFailed:
                    if not resumed:
                        raise
                    # A resumed download may have stitched two versions: once more, whole.
                    warn(f"{source.filename}: resumed download does not verify; downloading "
                         "it whole")
                    part.unlink(missing_ok=True)
                    digest, _ = self.get(url, part)
                    _verify_data(source, part, digest, expected, keyring, signature)
                return part
            except VerificationFailed as exc:
                part.unlink(missing_ok=True)
                refused = refused or exc
                warn(f"{url}: {exc.message}")
            except (_Retryable, _NextUrl) as exc:
                failures.append(f"{url}: {exc}")
        if refused is not None:
            raise refused
        raise DownloadFailed(f"{source.filename}: no URL gave it "
                             f"({len(failures)} tried); check the network or pass "
                             "--mirror URL|DIR", details="\n".join(f"  {f}" for f in failures))

    def first_of(self, urls: list[str], part: Path, *, what: str) -> None:
        failures: list[str] = []
        all_not_found = True
        for url in urls:
            try:
                self.get(url, part)
                return
            except _NextUrl as exc:
                all_not_found = all_not_found and exc.not_found
                failures.append(f"{url}: {exc}")
            except _Retryable as exc:
                all_not_found = False
                failures.append(f"{url}: {exc}")
        if all_not_found:
            raise _AllNotFound("; ".join(failures))
        raise DownloadFailed(f"{what}: no URL gave it ({len(failures)} tried); check the "
                             "network or pass --mirror URL|DIR",
                             details="\n".join(f"  {f}" for f in failures))

    def part_path(self, filename: str) -> Path:
        return self.rsrc / f".{filename}.part"

    # one URL --------------------------------------------------------------------------------
    def get(self, url: str, part: Path) -> tuple[str, bool]:
        """Download `url` into `part` with retries; return (sha256, whether the bytes were
        stitched from a resumed transfer)."""
        attempts = self.options.retries
        for attempt in range(1, attempts + 1):
            try:
                return self.get_once(url, part)
            except _Retryable as exc:
                if attempt == attempts:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = self.options.backoff * (2 ** (attempt - 1))
                    delay *= 1 + random.random() * 0.25  # jitter: no thundering herd
                delay = min(delay, MAX_RETRY_AFTER)
                warn(f"{url}: {exc}; retrying in {delay:.1f}s ({attempt + 1}/{attempts})")
                time.sleep(delay)
        raise AssertionError("unreachable")

    def get_once(self, url: str, part: Path) -> tuple[str, bool]:
        meta_path = part.with_name(part.name + ".json")
        offset, validator = _resume_point(part, meta_path, url)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = validator
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.options.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                _discard(part, meta_path)
                raise _Retryable("the server refused to resume; starting over",
                                 retry_after=0) from None
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code} {exc.reason}",
                                 retry_after=_retry_after(exc.headers.get("Retry-After"))
                                 ) from None
            raise _NextUrl(f"HTTP {exc.code} {exc.reason}",
                           not_found=exc.code in (404, 410)) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, FileNotFoundError):
                raise _NextUrl("no such file", not_found=True) from None
            raise _Retryable(str(getattr(reason, "strerror", None) or reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(_describe(exc)) from None

        with response:
            status = getattr(response, "status", None) or 200
            resumed = False
            if offset and status == 206 and _content_range_start(response) == offset:
                resumed = True
            else:
                offset = 0  # 200 (or an odd 206): the whole file again, from zero
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            new_validator = _validator(response)
            if new_validator:
                meta_path.write_text(json.dumps({"url": url, "validator": new_validator}))
            else:
                meta_path.unlink(missing_ok=True)
            hasher = hashlib.sha256()
            if resumed:
                with part.open("rb") as existing:
                    for block in iter(lambda: existing.read(1 << 20), b""):
                        hasher.update(block)
                info(f"{url_filename(url)}: resuming at {offset} bytes")
            received = offset
            task = None
            if self.progress is not None:
                task = self.progress.add_task(url_filename(url), total=total, completed=offset)
            else:
                info(f"downloading {url}")
            try:
                with part.open("ab" if resumed else "wb") as out:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except (OSError, http.client.HTTPException) as exc:
                            raise _Retryable(f"connection lost after {received} bytes "
                                             f"({_describe(exc)})") from None
                        if not block:
                            break
                        try:
                            out.write(block)
                        except OSError as exc:  # disk full: no other URL will help
                            raise DownloadFailed(f"cannot write {part}: {exc.strerror}") from exc
                        hasher.update(block)
                        received += len(block)
                        if received > MAX_BYTES:
                            raise _NextUrl(f"more than {MAX_BYTES} bytes; refusing it")
                        if task is not None:
                            self.progress.update(task, completed=received)
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                if task is not None:
                    self.progress.remove_task(task)
            if total is not None and received != total:
                raise _Retryable(f"connection dropped after {received} of {total} bytes")
        meta_path.unlink(missing_ok=True)
        return hasher.hexdigest(), resumed


class _AllNotFound(Exception):
    """Every URL answered 404/410."""


def _resume_point(part: Path, meta_path: Path, url: str) -> tuple[int, str]:
    """Resume only a .part from the same URL whose server gave a validator for If-Range."""
    if not part.exists():
        meta_path.unlink(missing_ok=True)
        return 0, ""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    if meta.get("url") == url and meta.get("validator") and part.stat().st_size:
        return part.stat().st_size, str(meta["validator"])
    return 0, ""


def _discard(part: Path, meta_path: Path) -> None:
    part.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)


def _validator(response: http.client.HTTPResponse) -> str:
    """A strong ETag, or else Last-Modified: what If-Range may carry."""
    etag = response.headers.get("ETag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified", "")


def _content_range_start(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Range", "")  # bytes 100-199/200
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _commit(part: Path, final: Path) -> None:
    """Atomic rename into place, made durable (the directory entry too)."""
    os.replace(part, final)
    with contextlib.suppress(OSError):
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

