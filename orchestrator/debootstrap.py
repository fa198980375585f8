"""Old-glibc roots made by debootstrap, cached, and copied to where a user wants one.

A root is only ever *read* by verify-load (its own dynamic loader runs the test loader with
`--library-path`), so no chroot, mount or container is needed once it exists. debootstrap is
slow, so each root is made once into the cache (paths.cache_dir) under a lock, in a temporary folder
beside its final place and renamed into it; a killed run leaves nothing half-made.

Old suites leave Debian's mirror network for archive.debian.org, and their signing keys leave
the live keyring for the removed-keys one. Which host and which keyrings serve each suite is
data (resources/debian-mirrors.toml); before debootstrap runs, the chosen host is asked for
the suite's Release file, so a host that does not answer (exit 6) and a suite it does not have
(exit 2) are told apart in one line, within a bounded time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import progress
from .errors import DownloadFailed, ToolchainError, UsageError
from .files import locked, write_atomically
from .layers import clamp_tree_links
from .logger import info, step
from .paths import RESOURCES_DIR, cache_dir
from .rootdest import host_debian_arch, move_into_place, prepare_dest, remove_tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python < 3.11
    import tomli as tomllib

MIRRORS_TOML = RESOURCES_DIR / "debian-mirrors.toml"
DEFAULT_MIRROR_HINT = "http://deb.debian.org/debian"
ARCHIVE_MIRROR = "http://archive.debian.org/debian"
PROBE_TIMEOUT = 20.0  # seconds a mirror may take to answer for one Release file


# -- where a suite lives -----------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SuitePlace:
    """The hosts that may carry a suite (in the order to try) and the keyrings for it."""

    suite: str
    mirrors: tuple[str, ...]
    keyrings: tuple[Path, ...]
    glibc: str | None = None


@lru_cache(maxsize=1)
def mirror_table() -> dict[str, Any]:
    try:
        return tomllib.loads(MIRRORS_TOML.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{MIRRORS_TOML}: cannot be read ({exc})") from None


def suite_place(
    suite: str, mirror: str | None = None, table: dict[str, Any] | None = None
) -> SuitePlace:
    """Where SUITE is fetched from: `--mirror` when given, else the table's hosts. A suite the
    table does not know (Ubuntu's, a newer Debian one) has no hosts and keyrings here: its
    debootstrap script's own defaults apply."""
    data = mirror_table() if table is None else table
    try:
        entry = data["suites"].get(suite, {})
        mirrors = (
            (mirror,)
            if mirror
            else tuple(str(data["hosts"][name]) for name in entry.get("hosts", []))
        )
        keyrings = tuple(Path(data["keyrings"][name]) for name in entry.get("keyrings", []))
        glibc = entry.get("glibc")
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{MIRRORS_TOML}: malformed ({type(exc).__name__}: {exc})") from None
    return SuitePlace(
        suite=suite, mirrors=mirrors, keyrings=keyrings, glibc=str(glibc) if glibc else None
    )


FOUND, MISSING = "found", "missing"


def probe(mirror: str, suite: str, *, timeout: float = PROBE_TIMEOUT) -> str:
    """FOUND when MIRROR has dists/SUITE/Release, MISSING when it answers without it, else
    why it did not answer (refused, timed out...)."""
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    if url.startswith("file:"):
        local = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        return FOUND if local.is_file() else MISSING
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return FOUND
    except urllib.error.HTTPError as exc:
        exc.close()
        return MISSING if exc.code in (404, 410) else f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return f"no answer within {timeout:g}s"
        return str(getattr(reason, "strerror", None) or reason)
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except OSError as exc:
        return exc.strerror or str(exc)


def choose_mirror(suite: str, answers: dict[str, str]) -> str:
    """The first mirror that has SUITE, from {mirror: probe answer} in the order tried.

    A suite no answering mirror has is bad input (exit 2); mirrors that all failed to answer
    are a network failure (exit 6).
    """
    for mirror, answer in answers.items():
        if answer == FOUND:
            return mirror
    missing = [m for m, a in answers.items() if a == MISSING]
    if missing:
        raise UsageError(
            f"suite {suite!r} is not on {' nor '.join(missing)} (no dists/{suite}/"
            "Release there); check the suite name, or pass --mirror URL of a "
            "mirror that has it (end-of-life suites: "
            f"{ARCHIVE_MIRROR})"
        )
    mirror, answer = next(iter(answers.items()))
    more = f" (nor did {', '.join(list(answers)[1:])})" if len(answers) > 1 else ""
    raise DownloadFailed(
        f"the Debian mirror {mirror} does not answer ({answer}){more}; check "
        "the network or pass --mirror URL of one that does"
    )


def find_mirror(place: SuitePlace, *, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Ask each mirror in turn until one has the suite (see choose_mirror); None when there
    is none to ask (debootstrap's default then)."""
    if not place.mirrors:
        return None
    answers: dict[str, str] = {}
    for mirror in place.mirrors:
        answers[mirror] = probe(mirror, place.suite, timeout=timeout)
        if answers[mirror] == FOUND:
            break
    return choose_mirror(place.suite, answers)


def keyring_for(place: SuitePlace) -> Path | None:
    """One keyring file with every key the suite may be signed by (the removed keys of an
    archived release included), joined in the cache; None when this host has none."""
    present = [ring for ring in place.keyrings if ring.is_file()]
    if len(present) <= 1:
        return present[0] if present else None
    data = b"".join(ring.read_bytes() for ring in present)
    joined = cache_dir("keyrings") / f"debian-{hashlib.sha256(data).hexdigest()[:16]}.gpg"
    if not joined.is_file():
        write_atomically(joined, data)
    return joined


def _unmount_below(path: Path) -> None:
    """Undo mounts a killed debootstrap left in its target (/proc, /sys) before removing it."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(path.resolve())
    points = [
        re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        for line in lines
        if len(line.split()) > 4
    ]
    for point in sorted(
        (p for p in points if p == prefix or p.startswith(prefix + "/")), key=len, reverse=True
    ):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _debootstrap_scripts() -> Path:
    base = os.environ.get("DEBOOTSTRAP_DIR") or "/usr/share/debootstrap"
    return Path(base) / "scripts"


def _check_debootstrap(suite: str, arch: str) -> str:
    """Fail early, with what to do, on each reason debootstrap could not work here."""
    binary = shutil.which("debootstrap")
    if binary is None:
        raise ToolchainError(
            "debootstrap is not installed; install it (`apt-get install "
            "debootstrap` on Debian/Ubuntu) or pass an image archive instead "
            "(`rootfs --image`, `--image`)"
        )
    if os.geteuid() != 0:
        raise ToolchainError(
            "debootstrap must run as root (it unpacks packages with their "
            "owners and runs their scripts in a chroot); run this as root, or "
            "make the root elsewhere and pass a folder or an image archive "
            "(`docker save`) instead"
        )
    scripts = _debootstrap_scripts()
    if scripts.is_dir() and not (scripts / suite).exists():
        known = sorted(p.name for p in scripts.iterdir() if "." not in p.name)
        raise UsageError(
            f"debootstrap does not know the suite {suite!r}; known suites: {', '.join(known)}"
        )
    if arch != host_debian_arch():
        raise UsageError(
            f"debootstrap can only make {host_debian_arch()} roots on this "
            f"machine, not {arch}; for {arch} pass an image archive of an {arch} "
            "image (`rootfs --image`)"
        )
    return binary


def debootstrap_key(
    suite: str, arch: str, variant: str, include: tuple[str, ...], mirror: str | None
) -> str:
    key = f"{suite}-{arch}-{variant}"
    if include or mirror:
        extra = json.dumps([sorted(include), mirror or ""]).encode()
        key += "-" + hashlib.sha256(extra).hexdigest()[:12]
    return key


def _explain_debootstrap_failure(suite: str, mirror: str | None, log: str) -> None:
    """Turn debootstrap's last words into the error the user can act on."""
    tail = "\n".join(log.strip().splitlines()[-25:])
    where = mirror or DEFAULT_MIRROR_HINT
    if "Release signed by unknown key" in log:
        raise ToolchainError(
            f"debootstrap could not verify suite {suite!r} from {where}: no "
            "keyring here holds its signing key; install (or update) "
            "debian-archive-keyring",
            details=tail,
        )
    if "Failed getting release file" in log:
        raise UsageError(
            f"debootstrap could not get suite {suite!r} from {where}: it is not "
            f"on that mirror (end-of-life Debian suites are on {ARCHIVE_MIRROR}) "
            "or the mirror is unreachable; pass --mirror URL of one that has it",
            details=tail,
        )
    raise ToolchainError(f"debootstrap failed making the {suite} root", details=tail)


def debootstrap_root(
    suite: str,
    *,
    arch: str = "amd64",
    variant: str = "minbase",
    include: tuple[str, ...] = (),
    mirror: str | None = None,
) -> Path:
    """The cached root of SUITE (made by debootstrap on first use); never modify it."""
    # These names become a cache folder name: nothing but plain words may pass.
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", suite):
        raise UsageError(f"{suite!r} is not a suite name (e.g. bullseye, buster, focal)")
    if not re.fullmatch(r"[a-z0-9]+", arch):
        raise UsageError(f"{arch!r} is not a Debian architecture (e.g. amd64, arm64)")
    if variant not in ("minbase", "buildd", "fakechroot"):
        raise UsageError(
            f"debootstrap has no variant {variant!r}; use minbase, buildd or fakechroot"
        )
    for package in include:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", package):
            raise UsageError(f"--include: {package!r} is not a Debian package name")
    if mirror is not None and not re.match(r"(https?|file):/", mirror):
        raise UsageError(f"--mirror {mirror!r} is not a URL (http://, https:// or file:/)")
    base = cache_dir("debootstrap")
    key = debootstrap_key(suite, arch, variant, tuple(include), mirror)
    final = base / key
    if final.is_dir():
        return final
    binary = _check_debootstrap(suite, arch)
    place = suite_place(suite, mirror)
    chosen = find_mirror(place)  # before the lock: a wrong mirror leaves nothing behind
    keyring = keyring_for(place)
    with locked(base / f".{key}.lock"):
        if final.is_dir():  # made by another process while we waited
            return final
        step(f"making a {suite} {arch} root with debootstrap (first use; it is cached in {base})")
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.partial-", dir=base))
        try:
            command = [binary, f"--variant={variant}", f"--arch={arch}"]
            if keyring is not None:
                command.append(f"--keyring={keyring}")
            if include:
                command.append("--include=" + ",".join(include))
            command += [suite, str(staging)]
            if chosen:
                command.append(chosen)
            with progress.stage(None, "debootstrap finished"):
                returncode, log = progress.run_streaming(command)  # its lines are its progress
            if returncode != 0:
                with contextlib.suppress(OSError):
                    log += (staging / "debootstrap" / "debootstrap.log").read_text(
                        errors="replace"
                    )[-4000:]
                _explain_debootstrap_failure(suite, chosen, log)
            # The downloaded .debs are not part of the root and only take space.
            archives = staging / "var" / "cache" / "apt" / "archives"
            for deb in archives.glob("*.deb"):
                deb.unlink()
            move_into_place(staging, final)
        except BaseException:
            _unmount_below(staging)
            remove_tree(staging)
            raise
    info(f"root ready: {final}")
    return final


def copy_root(source: Path, dest: Path, *, source_id: str | None = None) -> None:
    """Copy a cached root to DEST (cp -a: keeps modes and /dev nodes as they are).

    Its symlinks are then clamped to DEST (layers.clamp_tree_links): debootstrap writes
    absolute targets (`lib64/ld-linux-x86-64.so.2 -> /lib/...`), which the kernel would
    resolve on the host, not in DEST.

    SOURCE_ID marks the finished DEST (rootdest.move_into_place) for a later run to recognise.
    """
    prepare_dest(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        proc = subprocess.run(
            ["cp", "-a", "--", f"{source}/.", str(staging)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ToolchainError(f"copying {source} to {dest} failed", details=proc.stderr[-2000:])
        clamp_tree_links(staging)
        move_into_place(staging, dest, source=source_id)
    except BaseException:
        remove_tree(staging)
        raise
