"""Debian's archive, verified the way Debian signs it: Release by its OpenPGP signature,
Packages by its sha256 in Release, each .deb by its sha256 in Packages.

The chain is the one apt follows (https://wiki.debian.org/DebianRepository/Format,
"Release files" and "Packages Indices"): `dists/SUITE/Release` with its detached
`Release.gpg`, checked by gpgv against the pinned primary keys of Debian's archive keyring
(signatures.py); the `SHA256` field of Release vouches for `main/binary-ARCH/Packages.xz`;
its stanzas vouch for each .deb (`SHA256`). What to trust and where the archive is are data in
`resources/debian-archive.toml`. Downloads go through download.py; verified .debs are cached
by their sha256, so a package is fetched once.
"""

from __future__ import annotations

import dataclasses
import functools
import lzma
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import download
from .digest import sha256_file
from .errors import BadInput, DownloadFailed, ToolchainError, VerificationFailed
from .files import locked
from .paths import RESOURCES_DIR, cache_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

ARCHIVE_FILE = RESOURCES_DIR / "debian-archive.toml"
MIRROR_ENV = "GLIBC_BUILD_DEBIAN_MIRROR"  # another mirror of the same signed archive
_SUITE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class Archive:
    mirror: str
    default_suite: str
    component: str
    keyring: Path
    fingerprints: tuple[str, ...]
    provided_by_zig: frozenset[str]


def archive() -> Archive:
    """The archive's data; GLIBC_BUILD_DEBIAN_MIRROR names another mirror (signatures and
    hashes are checked all the same, so any mirror will do)."""
    spec = _archive_data()
    mirror = os.environ.get(MIRROR_ENV, "").rstrip("/")
    return dataclasses.replace(spec, mirror=mirror) if mirror else spec


@functools.cache
def _archive_data() -> Archive:
    data = tomllib.loads(ARCHIVE_FILE.read_text(encoding="utf-8"))
    return Archive(
        mirror=data["mirror"].rstrip("/"),
        default_suite=data["default-suite"],
        component=data["component"],
        keyring=Path(data["keyring"]),
        fingerprints=tuple(data["fingerprints"]),
        provided_by_zig=frozenset(data["provided-by-zig"]),
    )


@dataclass(frozen=True)
class Package:
    """One stanza of a Packages index: what a sysroot needs of it."""

    name: str
    version: str
    filename: str  # the .deb's path under the mirror
    sha256: str
    size: int
    depends: tuple[tuple[str, ...], ...] = ()  # Pre-Depends and Depends: alternatives
    provides: tuple[str, ...] = ()


# --- parsing (pure) ------------------------------------------------------------------------


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style paragraphs (deb822(5)): `Field: value`, continuation lines indented."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, ""
        elif line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        yield fields


def release_hashes(text: str) -> dict[str, tuple[str, int]]:
    """The `SHA256` field of a Release file: index path -> (sha256, size)."""
    for fields in stanzas(text):
        listing = fields.get("SHA256", "")
        hashes = {}
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 3:
                hashes[parts[2]] = (parts[0], int(parts[1]))
        return hashes
    return {}


def relation_names(value: str) -> tuple[tuple[str, ...], ...]:
    """`a (>= 1) | b:any, c` -> ((a, b), (c,)): names only (the suite holds one version)."""
    groups = []
    for group in value.split(","):
        names = tuple(
            alt.split("(")[0].split("[")[0].strip().split(":")[0]
            for alt in group.split("|")
            if alt.strip()
        )
        if names:
            groups.append(names)
    return tuple(groups)


def parse_packages(text: str) -> dict[str, Package]:
    index: dict[str, Package] = {}
    for fields in stanzas(text):
        if "Package" not in fields or "SHA256" not in fields:
            continue
        depends = relation_names(
            ", ".join(v for v in (fields.get("Pre-Depends"), fields.get("Depends")) if v)
        )
        index[fields["Package"]] = Package(
            name=fields["Package"],
            version=fields.get("Version", ""),
            filename=fields["Filename"],
            sha256=fields["SHA256"],
            size=int(fields.get("Size", "0")),
            depends=depends,
            provides=tuple(
                n for group in relation_names(fields.get("Provides", "")) for n in group
            ),
        )
    return index


def closure(
    names: Iterable[str], index: dict[str, Package], skip: frozenset[str], *, where: str
) -> list[Package]:
    """The named packages and everything they depend on in the suite, sorted by name;
    packages in `skip` (zig provides them) are left out with all they alone need. An
    unknown name is refused; a dependency that no package of the suite is or provides is
    left out (a sysroot holds files to build against, it installs nothing)."""
    providers: dict[str, list[str]] = {}
    for package in index.values():
        for virtual in package.provides:
            providers.setdefault(virtual, []).append(package.name)
    chosen: dict[str, Package] = {}
    todo = []
    for name in names:
        if name in skip:
            continue
        if name not in index:
            raise BadInput(
                f"{name}: no such package in {where}; check the name (it is the "
                "Debian package, e.g. libasound2-dev) or pick another "
                "--system-suite"
            )
        todo.append(name)
    while todo:
        name = todo.pop()
        if name in chosen or name in skip:
            continue
        package = index[name]
        chosen[name] = package
        for group in package.depends:
            if any(alt in skip or alt in chosen for alt in group):
                continue
            real = next((alt for alt in group if alt in index), None)
            if real is None:
                real = next((min(providers[alt]) for alt in group if alt in providers), None)
                if real is None or any(p in skip for alt in group for p in providers.get(alt, ())):
                    continue
            todo.append(real)
    return [chosen[name] for name in sorted(chosen)]


# --- fetching and verifying ----------------------------------------------------------------


def _fetch(url: str, dest: Path, *, what: str, missing: str | None = None) -> None:
    """`url` into `dest` (a fresh file); exit 6 when the mirror does not answer, exit 2 with
    `missing` when it answers that there is no such file."""
    part = dest.with_name(f".{dest.name}.part")
    try:
        with download.Progress() as progress:
            download.download(
                url,
                part,
                name=dest.name,
                settings=download.Settings(),
                deadline=download.Deadline(download.DEFAULT_DEADLINE),
                progress=progress,
            )
        part.replace(dest)
    except download.NextUrl as exc:
        if exc.not_found and missing:
            raise BadInput(missing) from None
        raise DownloadFailed(f"{url}: {exc}; {what} could not be downloaded") from None
    except download.Retryable as exc:
        raise DownloadFailed(
            f"{url}: the mirror does not answer ({exc}); try again later or check the network"
        ) from None
    finally:
        download.discard(part)


def _require_sha256(path: Path, sha256: str, *, what: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise VerificationFailed(
            f"{what}: sha256 {actual} is not the {sha256} its index "
            "gives; refusing it (a broken mirror or a tampered file)"
        )


def check_names(suite: str, packages: Iterable[str]) -> None:
    """Refuse malformed names before any download."""
    if not _SUITE_NAME.match(suite):
        raise BadInput(f"--system-suite {suite!r} is not a Debian suite name (e.g. bullseye)")
    for name in packages:
        if not _PACKAGE_NAME.match(name):
            raise BadInput(
                f"--system-package {name!r} is not a Debian package name (e.g. libasound2-dev)"
            )


def verified_release(suite: str, work: Path) -> str:
    """The text of the suite's Release file, its signature checked with pinned keys."""
    from .signatures import Keyring

    spec = archive()
    if not spec.keyring.is_file():
        raise ToolchainError(
            f"{spec.keyring} is missing: it holds Debian's archive keys; "
            "install it (apt-get install debian-archive-keyring)"
        )
    base = f"{spec.mirror}/dists/{suite}"
    missing = (
        f"--system-suite {suite}: no such suite on {spec.mirror}; use one Debian "
        "publishes (e.g. bullseye, bookworm)"
    )
    _fetch(f"{base}/Release", work / "Release", what=f"Debian {suite}'s Release", missing=missing)
    _fetch(
        f"{base}/Release.gpg",
        work / "Release.gpg",
        what=f"Debian {suite}'s Release.gpg",
        missing=missing,
    )
    what = f"Debian {suite} Release"
    with Keyring([spec.keyring], what=what) as keyring:
        keyring.verify(work / "Release.gpg", work / "Release", spec.fingerprints, what=what)
    return (work / "Release").read_text(encoding="utf-8", errors="replace")


def packages_index(suite: str, debian_arch: str, work: Path) -> dict[str, Package]:
    """The suite's verified Packages index for the architecture (main component)."""
    spec = archive()
    hashes = release_hashes(verified_release(suite, work))
    path = f"{spec.component}/binary-{debian_arch}/Packages.xz"
    if path not in hashes:
        raise BadInput(f"Debian {suite} has no {path}; is {debian_arch} one of its architectures?")
    sha256, _ = hashes[path]
    cached = cache_dir("debian", "index") / f"{sha256}.xz"
    if not cached.is_file():
        fresh = work / "Packages.xz"
        _fetch(f"{spec.mirror}/dists/{suite}/{path}", fresh, what=f"Debian {suite}'s {path}")
        _require_sha256(fresh, sha256, what=f"Debian {suite} {path}")
        fresh.replace(cached)  # `work` is in the cache: same file system
    try:
        text = lzma.decompress(cached.read_bytes()).decode("utf-8", errors="replace")
    except lzma.LZMAError as exc:
        cached.unlink(missing_ok=True)
        raise VerificationFailed(f"Debian {suite} {path} does not decompress ({exc})") from None
    return parse_packages(text)


def fetch_deb(package: Package) -> Path:
    """The package's .deb, verified against its index's sha256; cached by that hash."""
    folder = cache_dir("debian", "debs")
    path = folder / f"{package.sha256}.deb"
    if path.is_file():
        return path
    with locked(folder / f".{package.sha256}.lock"):
        if path.is_file():
            return path
        with tempfile.TemporaryDirectory(dir=folder, prefix=".fetch-") as tmp:
            fresh = Path(tmp) / path.name
            _fetch(f"{archive().mirror}/{package.filename}", fresh, what=f"package {package.name}")
            _require_sha256(fresh, package.sha256, what=f"package {package.name} {package.version}")
            fresh.replace(path)
    return path
