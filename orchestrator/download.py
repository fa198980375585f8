"""Download one URL into one `.NAME.part` file: resumable, hashed as it streams, and bounded
in size and in time. fetch.py decides which URLs to try and what verifies; this module only
moves bytes. Each piece has one job:

- `range_headers` / `resumed_from`: the range request. A dropped transfer asks for the rest
  with `Range` + `If-Range` (RFC 9110 sections 14.2 and 13.1.5) and counts as resumed only
  when the server answers 206 with a `Content-Range` starting where the part ends (14.4);
  a 200 is the whole file again, from zero.
- `ResumePoint`: what `.NAME.part.json` remembers (the URL and its validator), so a part is
  resumed only from the URL, and the version of the file, it came from.
- `open_url`: one request; its failures sorted into "try again" (`Retryable`: network
  trouble, 5xx, 429 with Retry-After, RFC 9110 section 10.2.3) and "next URL" (`NextUrl`:
  other 4xx, no such file).
- `HashingWriter`: appends to the part and hashes every byte it holds (seeded with the bytes a
  resume keeps). A failed write (a full disk) removes the part: nothing is left filling the
  disk, and the error names the folder.
- `Progress`: a bar on a terminal; elsewhere (a CI log) a line with the rate now and then.
- `Deadline`: the time one file may take, over all its URLs, retries and resumes, so a server
  that drips a byte a second is given up.
- `download`: retries with exponential back-off and jitter around one attempt.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol

from . import __version__
from .errors import BadInput, DownloadFailed
from .files import cannot_write, write_atomically
from .logger import console, info, warn

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

CHUNK = 1 << 16
MAX_BYTES = 16 << 30  # nothing a recipe needs is bigger; stops a server that never ends
MAX_RETRY_AFTER = 60.0
DEFAULT_DEADLINE = 3600.0  # seconds one file may take, all URLs and retries included
LOG_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
USER_AGENT = f"glibc-build/{__version__}"


class Retryable(Exception):
    """Worth trying the same URL again (network trouble, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NextUrl(Exception):
    """This URL will not give the file (4xx, too big): try the next one."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass(frozen=True)
class Settings:
    """How hard to try one URL."""

    retries: int = 3
    backoff: float = 0.5
    timeout: float = 30.0  # seconds one read may wait


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    resumed: bool  # the bytes were stitched from two transfers


# -- time -----------------------------------------------------------------------------------
class Deadline:
    """The overall time one file may take; `check` raises DownloadFailed (exit 6) past it."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()

    def remaining(self) -> float:
        return max(0.0, self.started + self.seconds - self.clock())

    def elapsed(self) -> float:
        return self.clock() - self.started

    def check(self, url: str, received: int = 0) -> None:
        if self.remaining() > 0:
            return
        elapsed = self.elapsed()
        done = (
            f"; {human_bytes(received)} came in {elapsed:.0f} s, "
            f"{human_bytes(received / elapsed if elapsed else 0)}/s"
            if received
            else ""
        )
        raise DownloadFailed(
            f"{url}: not downloaded within the deadline of "
            f"{self.seconds:g} s{done}; pass --deadline SECONDS for a slow "
            "link, or --mirror URL|DIR"
        )


def backoff_delay(attempt: int, base: float, retry_after: float | None, jitter: float) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's Retry-After when it gave
    one, else `base` doubled per attempt plus up to 25% jitter (`jitter` in [0, 1)) so that
    many clients do not come back at once; never more than MAX_RETRY_AFTER."""
    if retry_after is None:
        delay = base * 2.0 ** (attempt - 1) * (1 + jitter * 0.25)
    else:
        delay = retry_after
    return min(delay, MAX_RETRY_AFTER)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return None


# -- the range request ----------------------------------------------------------------------
@dataclass(frozen=True)
class ResumePoint:
    offset: int = 0  # bytes of the part to keep
    validator: str = ""  # strong ETag or Last-Modified, for If-Range


def meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def read_resume_point(part: Path, url: str) -> ResumePoint:
    """Resume only a part from the same URL whose server gave a validator for If-Range."""
    meta = meta_path(part)
    if not part.exists():
        meta.unlink(missing_ok=True)
        return ResumePoint()
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        data = {}
    size = part.stat().st_size
    if isinstance(data, dict) and data.get("url") == url and data.get("validator") and size:
        return ResumePoint(size, str(data["validator"]))
    return ResumePoint()


def remember_validator(part: Path, url: str, validator: str) -> None:
    """Keep what a later run needs to resume this part (or forget: no validator, no resume)."""
    if validator:
        write_atomically(meta_path(part), json.dumps({"url": url, "validator": validator}))
    else:
        meta_path(part).unlink(missing_ok=True)


def discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    meta_path(part).unlink(missing_ok=True)


def range_headers(point: ResumePoint) -> dict[str, str]:
    """The request headers; identity encoding, so bytes on the wire are the file's bytes."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if point.offset:
        headers["Range"] = f"bytes={point.offset}-"
        headers["If-Range"] = point.validator
    return headers


def content_range_start(value: str | None) -> int | None:
    """First byte of `Content-Range: bytes 100-199/200`; None when absent or malformed."""
    try:
        unit, span = (value or "").split()
        first = span.split("-")[0]
    except ValueError:
        return None
    return int(first) if unit == "bytes" and first.isdigit() else None


def resumed_from(offset: int, status: int, content_range: str | None) -> int:
    """Where the body starts in the file: `offset` for the 206 we asked for, else 0."""
    if offset and status == 206 and content_range_start(content_range) == offset:
        return offset
    return 0


def validator_of(etag: str | None, last_modified: str | None) -> str:
    """A strong ETag, or else Last-Modified: what If-Range may carry (weak ETags may not)."""
    if etag and not etag.startswith("W/"):
        return etag
    return last_modified or ""


class Response(Protocol):
    """What urlopen gives for http(s) and file URLs alike."""

    @property
    def headers(self) -> http.client.HTTPMessage: ...

    def read1(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


def open_url(url: str, point: ResumePoint, *, timeout: float) -> tuple[Response, int]:
    """One GET; return the response and its status, or raise Retryable / NextUrl."""
    request = urllib.request.Request(url, headers=range_headers(point))
    try:
        response: Any = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and point.offset:
            raise Retryable("the server refused to resume; starting over", retry_after=0) from None
        if exc.code == 429 or exc.code >= 500:
            raise Retryable(
                f"HTTP {exc.code} {exc.reason}",
                retry_after=retry_after_seconds(exc.headers.get("Retry-After")),
            ) from None
        raise NextUrl(f"HTTP {exc.code} {exc.reason}", not_found=exc.code in (404, 410)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, FileNotFoundError):
            raise NextUrl("no such file", not_found=True) from None
        raise Retryable(str(getattr(reason, "strerror", None) or reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise Retryable(describe(exc)) from None
    return response, int(getattr(response, "status", None) or 200)


def describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# -- the bytes ------------------------------------------------------------------------------
class HashingWriter:
    """Writes a part, hashing every byte it holds; `keep` bytes already there are kept (and
    hashed first). Any failed write removes the part and raises the files.py error that names
    the folder when its disk is full: a half-written part that fills a disk helps nobody."""

    def __init__(self, part: Path, *, keep: int) -> None:
        self.part = part
        self.hasher = hashlib.sha256()
        self.size = 0
        self._out: IO[bytes] | None = None
        with self._writing():
            if keep:
                with part.open("rb") as existing:
                    for block in iter(lambda: existing.read(1 << 20), b""):
                        self.hasher.update(block)
                        self.size += len(block)
            self._out = part.open("ab" if keep else "wb")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self._abandon()
            raise cannot_write(self.part, exc) from None

    def _abandon(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()
        discard(self.part)

    def write(self, block: bytes) -> None:
        assert self._out is not None
        with self._writing():
            self._out.write(block)
        self.hasher.update(block)
        self.size += len(block)

    def finish(self) -> str:
        """Flush and sync what was written (it is kept, e.g. to be resumed); the sha256."""
        out = self._out
        if out is not None:
            with self._writing():
                out.flush()
                os.fsync(out.fileno())
                out.close()
            self._out = None
        return self.hasher.hexdigest()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()  # also after a dropped connection: the part is resumed later


# -- what the user sees ---------------------------------------------------------------------
def human_bytes(count: float) -> str:
    """`1536` -> `1.5 KiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


class Tracker(Protocol):
    def update(self, received: int) -> None: ...

    def close(self) -> None: ...


class _BarTracker:
    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        self.bar, self.task = bar, task

    def update(self, received: int) -> None:
        self.bar.update(self.task, completed=received)

    def close(self) -> None:
        self.bar.remove_task(self.task)


class _LineTracker:
    """A plain line every LOG_EVERY seconds: size so far and the rate since the start."""

    def __init__(self, name: str, total: int | None, start: int, every: float) -> None:
        self.name, self.total, self.start, self.every = name, total, start, every
        self.began = self.last = time.monotonic()

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = (received - self.start) / max(now - self.began, 1e-9)
        of = f" of {human_bytes(self.total)}" if self.total else ""
        info(f"{self.name}: {human_bytes(received)}{of}, {human_bytes(rate)}/s")

    def close(self) -> None:
        pass


class Progress:
    """One fetch run's display (context manager): a rich bar per download on a terminal,
    else a line now and then, so a slow server shows as a low rate, not as silence."""

    def __init__(self, *, every: float = LOG_EVERY) -> None:
        self.every = every
        self.bar: RichProgress | None = None

    def __enter__(self) -> Progress:
        if console().is_terminal and not console().quiet:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("    {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console(),
                transient=True,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def track(self, url: str, name: str, total: int | None, start: int) -> Tracker:
        if self.bar is not None:
            return _BarTracker(self.bar, self.bar.add_task(name, total=total, completed=start))
        info(f"downloading {url}")
        return _LineTracker(name, total, start, self.every)


# -- one URL --------------------------------------------------------------------------------
def download(
    url: str, part: Path, *, name: str, settings: Settings, deadline: Deadline, progress: Progress
) -> Downloaded:
    """Download `url` into `part`, trying again with back-off on network trouble, within
    `deadline`. Raises Retryable or NextUrl when this URL will not do, DownloadFailed past the
    deadline, BadInput when the part cannot be written."""
    attempts = max(1, settings.retries)
    for attempt in range(1, attempts + 1):
        deadline.check(url)
        try:
            return _download_once(
                url, part, name=name, settings=settings, deadline=deadline, progress=progress
            )
        except Retryable as exc:
            if attempt == attempts:
                raise
            delay = min(
                backoff_delay(attempt, settings.backoff, exc.retry_after, random.random()),
                deadline.remaining(),
            )
            warn(f"{url}: {exc}; retrying in {delay:.1f}s ({attempt + 1}/{attempts})")
            time.sleep(delay)
    raise AssertionError("unreachable")


def _download_once(
    url: str, part: Path, *, name: str, settings: Settings, deadline: Deadline, progress: Progress
) -> Downloaded:
    point = read_resume_point(part, url)
    # A read waits at most the time left, so the deadline holds against a silent server too.
    timeout = max(0.1, min(settings.timeout, deadline.remaining()))
    response, status = open_url(url, point, timeout=timeout)
    with contextlib.closing(response):
        start = resumed_from(point.offset, status, response.headers.get("Content-Range"))
        if point.offset and not start:
            info(f"{name}: the server sent the whole file again; starting over")
        elif start:
            info(f"{name}: resuming at {start} bytes")
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        try:
            remember_validator(
                part,
                url,
                validator_of(response.headers.get("ETag"), response.headers.get("Last-Modified")),
            )
        except BadInput:  # the disk is full already: do not leave the part filling it
            discard(part)
            raise
        with HashingWriter(part, keep=start) as writer:
            tracker = progress.track(url, name, total, start)
            try:
                _copy(response, writer, tracker, url=url, deadline=deadline)
            finally:
                tracker.close()
            digest = writer.finish()
        if total is not None and writer.size != total:
            raise Retryable(f"connection dropped after {writer.size} of {total} bytes")
    meta_path(part).unlink(missing_ok=True)
    return Downloaded(sha256=digest, resumed=bool(start))


def _copy(
    response: Response, writer: HashingWriter, tracker: Tracker, *, url: str, deadline: Deadline
) -> None:
    """Body to part. read1 returns whatever has arrived, so the deadline is checked between
    small reads even when the server drips."""
    received_here = 0
    while True:
        try:
            block = response.read1(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, socket.timeout):
                deadline.check(url, received_here)
            raise Retryable(
                f"connection lost after {writer.size} bytes ({describe(exc)})"
            ) from None
        if not block:
            return
        writer.write(block)
        received_here += len(block)
        if writer.size > MAX_BYTES:
            raise NextUrl(f"more than {MAX_BYTES} bytes; refusing it")
        tracker.update(writer.size)
        deadline.check(url, received_here)
