"""A CycloneDX SBOM of a build: what went in (every Cargo.lock package, the toolchain) and what
came out (the libraries, with their sha256).

Made with cyclonedx-python-lib (https://cyclonedx-python-library.readthedocs.io/), never by
hand, as CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/). Reproducible, so that the
same build gives the same bytes: the serial number is a UUIDv5 of the inputs (RFC 9562
section 5.5), the timestamp is SOURCE_DATE_EPOCH
(https://reproducible-builds.org/specs/source-date-epoch/), and each bom-ref is the
component's package URL (https://github.com/package-url/purl-spec, types `cargo` and
`generic`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from . import __version__
from .errors import BadInput

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]

SBOM_NAME = "sbom.cdx.json"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
CRATES_IO_SPARSE = "sparse+https://index.crates.io/"
# A fixed namespace for the serial numbers of this tool's SBOMs (uuid5 of its project URL).
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/glibc-build/sbom")
SOURCE_PROPERTY = "glibc-build:cargo:source"  # Cargo.lock's `source`, kept verbatim


@dataclass(frozen=True, kw_only=True)
class LockedPackage:
    """One `[[package]]` of Cargo.lock (https://doc.rust-lang.org/cargo/guide/cargo-toml-vs-cargo-lock.html)."""

    name: str
    version: str
    source: str | None
    checksum: str | None
    dependencies: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class BuiltLibrary:
    name: str
    sha256: str


def read_cargo_lock(path: Path) -> list[LockedPackage]:
    """The packages of a Cargo.lock, in file order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(
            f"{path}: cannot read it as a Cargo.lock ({exc}); run "
            "`cargo generate-lockfile` in the crate"
        ) from exc
    packages = []
    for entry in data.get("package", []):
        packages.append(
            LockedPackage(
                name=str(entry["name"]),
                version=str(entry["version"]),
                source=entry.get("source"),
                checksum=entry.get("checksum"),
                dependencies=tuple(entry.get("dependencies", ())),
            )
        )
    return packages


def cargo_purl(package: LockedPackage) -> PackageURL:
    """`pkg:cargo/NAME@VERSION`; a registry other than crates.io becomes `repository_url`,
    a git source `vcs_url` (purl-spec PURL-TYPES.rst, `cargo`; qualifiers `repository_url`,
    `vcs_url`), so that two sources of one name and version stay two components."""
    qualifiers: dict[str, str] = {}
    source = package.source
    if source and source not in (CRATES_IO, CRATES_IO_SPARSE):
        kind, _, url = source.partition("+")
        if kind == "git":
            parts = urlsplit(url)
            qualifiers["vcs_url"] = (
                "git+"
                + urlunsplit(parts._replace(query="", fragment=""))
                + (f"@{parts.fragment}" if parts.fragment else "")
            )
        else:
            qualifiers["repository_url"] = url
    return PackageURL(
        type="cargo", name=package.name, version=package.version, qualifiers=qualifiers or None
    )


def _distribution(package: LockedPackage) -> list[ExternalReference]:
    """Where the crate's source comes from: crates.io's download URL, or its git repository."""
    if package.source in (CRATES_IO, CRATES_IO_SPARSE):
        url = f"https://crates.io/api/v1/crates/{package.name}/{package.version}/download"
        return [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))]
    if package.source and package.source.startswith("git+"):
        return [
            ExternalReference(
                type=ExternalReferenceType.VCS, url=XsUri(package.source.removeprefix("git+"))
            )
        ]
    return []


def licenses_from_metadata(metadata: Mapping[str, Any]) -> dict[tuple[str, str, str | None], str]:
    """(name, version, source) -> the SPDX expression `cargo metadata` gives as `license`
    (https://doc.rust-lang.org/cargo/commands/cargo-metadata.html#json-format)."""
    found = {}
    for package in metadata.get("packages", []):
        if package.get("license"):
            key = (str(package["name"]), str(package["version"]), package.get("source"))
            found[key] = str(package["license"])
    return found


def _resolve(reference: str, packages: Sequence[LockedPackage]) -> LockedPackage | None:
    """A Cargo.lock dependency entry: `name`, `name version` or `name version (source)`."""
    name, _, rest = reference.partition(" ")
    version, _, source = rest.partition(" ")
    source = source.strip("()")
    matches = [
        p
        for p in packages
        if p.name == name
        and (not version or p.version == version)
        and (not source or p.source == source)
    ]
    return matches[0] if len(matches) == 1 else None


def serial_number(inputs: Mapping[str, Any]) -> uuid.UUID:
    """The same inputs, the same serial number (a UUIDv5 of their canonical JSON)."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return uuid.uuid5(SERIAL_NAMESPACE, hashlib.sha256(canonical.encode()).hexdigest())


def make_sbom(
    *,
    cargo_lock: Path,
    cargo_metadata: Mapping[str, Any],
    toolchain: Mapping[str, str],
    libraries: Iterable[BuiltLibrary],
    source_date_epoch: int,
) -> bytes:
    """The CycloneDX 1.6 JSON document of one build, as bytes (UTF-8, ending in a newline)."""
    packages = read_cargo_lock(cargo_lock)
    licenses = licenses_from_metadata(cargo_metadata)
    built = sorted(libraries, key=lambda lib: (lib.name, lib.sha256))
    factory = LicenseFactory()

    components: dict[str, Component] = {}
    for package in packages:
        purl = cargo_purl(package)
        expression = licenses.get((package.name, package.version, package.source))
        components[purl.to_string()] = Component(
            type=ComponentType.LIBRARY,
            name=package.name,
            version=package.version,
            bom_ref=purl.to_string(),
            purl=purl,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.checksum)]
            if package.checksum
            else None,
            licenses=[factory.make_from_string(expression)] if expression else None,
            external_references=_distribution(package),
            properties=[Property(name=SOURCE_PROPERTY, value=package.source)]
            if package.source
            else None,
        )
    for library in built:
        purl = PackageURL(
            type="generic", name=library.name, qualifiers={"checksum": f"sha256:{library.sha256}"}
        )
        components[purl.to_string()] = Component(
            type=ComponentType.LIBRARY,
            name=library.name,
            bom_ref=purl.to_string(),
            purl=purl,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=library.sha256)],
        )

    tools = ToolRepository()
    for name, version in sorted({"glibc-build": __version__, **toolchain}.items()):
        purl = PackageURL(type="generic", name=name, version=version)
        tools.components.add(
            Component(
                type=ComponentType.APPLICATION,
                name=name,
                version=version,
                bom_ref=purl.to_string(),
                purl=purl,
            )
        )

    inputs = {
        "cargo_lock": hashlib.sha256(cargo_lock.read_bytes()).hexdigest(),
        "licenses": sorted([*key, value] for key, value in licenses.items()),
        "toolchain": dict(sorted(toolchain.items())),
        "libraries": [[lib.name, lib.sha256] for lib in built],
        "source_date_epoch": source_date_epoch,
    }
    bom = Bom(
        serial_number=serial_number(inputs),
        components=components.values(),
        metadata=BomMetaData(
            timestamp=datetime.fromtimestamp(source_date_epoch, tz=timezone.utc), tools=tools
        ),
    )
    for package in packages:
        depends_on = [
            components[cargo_purl(dep).to_string()]
            for dep in (_resolve(ref, packages) for ref in package.dependencies)
            if dep is not None
        ]
        bom.register_dependency(components[cargo_purl(package).to_string()], depends_on)
    return JsonV1Dot6(bom).output_as_string(indent=2).encode() + b"\n"
