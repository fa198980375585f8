"""The CycloneDX SBOM: valid against the CycloneDX 1.6 schema (the library's own strict
validator), complete (every Cargo.lock package, toolchain, libraries), and reproducible."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from orchestrator.errors import BadInput
from orchestrator.sbom import BuiltLibrary, LockedPackage, cargo_purl, make_sbom, read_cargo_lock
from tests.conftest import EXAMPLES, have

SDE = 1_700_000_000
TOOLCHAIN = {"rustc": "1.85.0", "zig": "0.17.1"}
LIBRARIES = [BuiltLibrary(name="libexample_plugin.so", sha256="ab" * 32)]
CRATES = [EXAMPLES / "plugin", EXAMPLES / "plugin-c"]


def _sbom(crate: Path, metadata: dict | None = None, **changes) -> bytes:
    arguments = dict(
        cargo_lock=crate / "Cargo.lock",
        cargo_metadata=metadata or {},
        toolchain=TOOLCHAIN,
        libraries=LIBRARIES,
        source_date_epoch=SDE,
    )
    arguments.update(changes)
    return make_sbom(**arguments)


def _assert_valid(document: bytes) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode())
    assert error is None, error


def _components(document: bytes) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in json.loads(document)["components"]}


@pytest.mark.unit
@pytest.mark.parametrize("crate", CRATES, ids=lambda c: c.name)
def test_valid_cyclonedx_listing_every_locked_package(crate):
    document = _sbom(crate)
    _assert_valid(document)
    components = _components(document)
    for package in read_cargo_lock(crate / "Cargo.lock"):
        purl = f"pkg:cargo/{package.name}@{package.version}"
        component = components[purl]
        assert (component["name"], component["version"], component["purl"]) == (
            package.name,
            package.version,
            purl,
        )
        if package.checksum:
            assert component["hashes"] == [{"alg": "SHA-256", "content": package.checksum}]
            assert component["properties"] == [
                {"name": "glibc-build:cargo:source", "value": package.source}
            ]


@pytest.mark.unit
def test_toolchain_libraries_timestamp_and_dependencies():
    bom = json.loads(_sbom(EXAMPLES / "plugin"))
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    tools = {t["name"]: t["version"] for t in bom["metadata"]["tools"]["components"]}
    assert tools["rustc"] == "1.85.0" and tools["zig"] == "0.17.1" and "glibc-build" in tools
    (library,) = [c for c in bom["components"] if c["name"] == "libexample_plugin.so"]
    assert library["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert library["bom-ref"] == library["purl"]
    graph = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert graph["pkg:cargo/example-plugin@0.1.0"] == ["pkg:cargo/libc@0.2.191"]


@pytest.mark.unit
def test_licenses_from_cargo_metadata():
    metadata = {
        "packages": [
            {
                "name": "libc",
                "version": "0.2.191",
                "license": "MIT OR Apache-2.0",
                "source": "registry+https://github.com/rust-lang/crates.io-index",
            },
            {"name": "example-plugin", "version": "0.1.0", "license": "MIT", "source": None},
        ]
    }
    document = _sbom(EXAMPLES / "plugin", metadata)
    _assert_valid(document)
    components = _components(document)
    assert components["pkg:cargo/libc@0.2.191"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert components["pkg:cargo/example-plugin@0.1.0"]["licenses"] == [{"license": {"id": "MIT"}}]


@pytest.mark.unit
def test_two_calls_give_the_same_bytes_and_other_inputs_another_serial():
    first, second = _sbom(EXAMPLES / "plugin"), _sbom(EXAMPLES / "plugin")
    assert first == second
    serial = json.loads(first)["serialNumber"]
    assert serial.startswith("urn:uuid:") and serial[9:][14] == "5"  # a version-5 UUID
    other = _sbom(EXAMPLES / "plugin", libraries=[BuiltLibrary(name="x.so", sha256="cd" * 32)])
    later = _sbom(EXAMPLES / "plugin", source_date_epoch=SDE + 1)
    assert len({serial, json.loads(other)["serialNumber"], json.loads(later)["serialNumber"]}) == 3


@pytest.mark.unit
def test_purls_keep_other_sources_apart():
    def purl(source):
        return cargo_purl(
            LockedPackage(
                name="foo", version="1.0.0", source=source, checksum=None, dependencies=()
            )
        ).to_string()

    assert purl(None) == "pkg:cargo/foo@1.0.0"
    assert purl("sparse+https://index.crates.io/") == "pkg:cargo/foo@1.0.0"
    assert purl("git+https://github.com/o/foo?branch=main#0123abc") == (
        "pkg:cargo/foo@1.0.0?vcs_url=git%2Bhttps://github.com/o/foo%400123abc"
    )
    assert purl("sparse+https://my.registry/index/").startswith(
        "pkg:cargo/foo@1.0.0?repository_url="
    )


@pytest.mark.unit
def test_an_unreadable_cargo_lock_is_bad_input(tmp_path):
    lock = tmp_path / "Cargo.lock"
    lock.write_text("[[package]\n")
    with pytest.raises(BadInput, match="Cargo.lock"):
        read_cargo_lock(lock)


@pytest.mark.parametrize("crate", CRATES, ids=lambda c: c.name)
def test_valid_with_real_cargo_metadata(crate, tmp_path):
    """Licenses as the real `cargo metadata` gives them (needs cargo and its registry cache)."""
    cargo = shutil.which("cargo")
    if not have("cargo") or cargo is None:
        pytest.skip("no cargo")
    copy = tmp_path / crate.name
    shutil.copytree(crate, copy, ignore=shutil.ignore_patterns("target", "dist"))
    proc = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--locked", "--offline"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    document = _sbom(copy, json.loads(proc.stdout))
    _assert_valid(document)
    licensed = [c for c in _components(document).values() if c.get("licenses")]
    assert len(licensed) == len(read_cargo_lock(copy / "Cargo.lock"))


@pytest.mark.unit
def test_the_validator_would_catch_a_broken_document():
    """The schema check above can fail: a component without its required `name` is refused."""
    bom = json.loads(_sbom(EXAMPLES / "plugin"))
    del bom["components"][0]["name"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is not None


@pytest.mark.slow
def test_every_build_puts_a_valid_reproducible_sbom_in_out(tmp_path):
    """Issue 16: a real build of examples/plugin writes sbom.cdx.json beside the library, the
    manifest names and lists it, and a second build gives the same bytes."""
    from tests.conftest import run_tool

    if not have("cargo"):
        pytest.skip("no cargo")
    crate = tmp_path / "plugin"
    shutil.copytree(EXAMPLES / "plugin", crate, ignore=shutil.ignore_patterns("target", "dist"))
    documents = []
    for out in (tmp_path / "one", tmp_path / "two"):
        proc = run_tool("--glibc", "2.17", "--out", out, crate, env={"SOURCE_DATE_EPOCH": str(SDE)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        written = json.loads((out / "build-manifest.json").read_text())
        assert written["sbom"] == "sbom.cdx.json"
        assert "sbom.cdx.json" in written["files"]
        documents.append((out / "sbom.cdx.json").read_bytes())
    _assert_valid(documents[0])
    assert documents[0] == documents[1]
    components = _components(documents[0])
    assert len([c for c in components.values() if c["purl"].startswith("pkg:cargo/")]) == len(
        read_cargo_lock(crate / "Cargo.lock")
    )
    library = written["artifacts"][0]
    assert any(
        c["name"] == library["name"] and c["hashes"][0]["content"] == library["sha256"]
        for c in components.values()
    )
