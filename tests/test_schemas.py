"""The JSON Schemas shipped in orchestrator/resources/schemas/ hold for what the tool really
prints: build --json, build-manifest.json, check --json, verify-load --json."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from orchestrator.paths import SCHEMAS_DIR
from tests.conftest import EXAMPLES, REPO, have, run_tool

SCHEMA_FILES = sorted(SCHEMAS_DIR.glob("*.schema.json"))
SCHEMAS = {
    path.name.removesuffix(".schema.json"): json.loads(path.read_text()) for path in SCHEMA_FILES
}
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)
CHECK_SRC = REPO / "tests" / "fixtures" / "check" / "src"


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], registry=REGISTRY)


def assert_valid(name: str, document: object) -> None:
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


# -- the schemas themselves ------------------------------------------------------------------
@pytest.mark.unit
def test_one_schema_per_json_output():
    assert set(SCHEMAS) == {"build", "build-manifest", "check", "verify-load"}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12_and_resolves(name):
    Draft202012Validator.check_schema(SCHEMAS[name])
    assert SCHEMAS[name]["$id"] == f"urn:glibc-build:schema:{name}"
    text = json.dumps(SCHEMAS[name])
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        REGISTRY.resolver(SCHEMAS[name]["$id"]).lookup(ref)  # raises when it dangles


@pytest.mark.unit
def test_permissive_for_added_fields_strict_for_existing_ones():
    report = {
        "schema": 1,
        "glibc": "2.17",
        "ok": True,
        "files": [],
        "errors": [],
        "new_field": {"x": 1},
    }
    assert_valid("check", report)
    for broken in (
        {**report, "ok": "yes"},
        {**report, "glibc": "2.17.1"},
        {k: v for k, v in report.items() if k != "errors"},
    ):
        assert list(validator("check").iter_errors(broken)), broken


# -- real outputs ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    """examples/plugin built for glibc 2.17 with --json: (the crate copy, the summary)."""
    crate = tmp_path_factory.mktemp("schemas") / "plugin"
    shutil.copytree(EXAMPLES / "plugin", crate, ignore=shutil.ignore_patterns("target", "dist"))
    proc = run_tool("--glibc", "2.17", "--json", crate)
    assert proc.returncode == 0, proc.stderr
    return crate, json.loads(proc.stdout)


@pytest.mark.slow
def test_build_json_and_manifest(built):
    crate, summary = built
    assert_valid("build", summary)
    assert summary["schema"] == 1
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert_valid("build-manifest", manifest)
    assert manifest["schema"] == 1


@pytest.mark.slow
def test_check_json_of_a_built_library(built):
    crate, _ = built
    proc = run_tool("check", "--glibc", "2.17", "--json", crate / "dist")
    assert proc.returncode == 0, proc.stderr
    assert_valid("check", json.loads(proc.stdout))
    assert json.loads(proc.stdout)["schema"] == 1


def test_check_json_with_violations_and_input_errors(tmp_path):
    """A host-built library needing reallocarray@GLIBC_2.26, and a file that is not ELF."""
    if not have("gcc"):
        pytest.skip("no gcc")
    library = tmp_path / "libreallocarray.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(CHECK_SRC / "reallocarray.c")],
        check=True,
        timeout=300,
    )
    (tmp_path / "notes.txt").write_text("not ELF")
    proc = run_tool("check", "--glibc", "2.17", "--json", library, tmp_path / "notes.txt")
    assert proc.returncode == 2, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"][0]["violations"] and report["errors"]
    assert_valid("check", report)
    assert report["schema"] == 1


def test_verify_load_json(built, bullseye_root):
    crate, summary = built
    proc = run_tool("verify-load", "--rootfs", bullseye_root, "--json", *summary["artifacts"])
    assert proc.returncode == 0, proc.stderr
    assert_valid("verify-load", json.loads(proc.stdout))
    assert json.loads(proc.stdout)["schema"] == 1


@pytest.mark.slow
def test_build_json_with_verify_on(built, bullseye_root, tmp_path):
    crate, _ = built
    proc = run_tool(
        "--glibc", "2.17", "--json", "--verify-on", bullseye_root, "--out", tmp_path / "out", crate
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["verify_load"]
    assert_valid("build", summary)
    assert summary["schema"] == 1
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["verify_load"]
    assert_valid("build-manifest", manifest)


def test_a_failed_build_json_carries_the_schema_number(tmp_path):
    """Issue 16: a failure's one JSON object has `schema` too (bad input, before cargo)."""
    proc = run_tool("--glibc", "2.17", "--json", tmp_path / "missing")
    assert proc.returncode == 2, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["schema"] == 1 and summary["ok"] is False
    assert_valid("build", summary)


@pytest.mark.unit
def test_every_output_schema_requires_schema_1():
    for name, schema in SCHEMAS.items():
        assert "schema" in schema.get("required", []), name
        assert validator(name).is_valid({"schema": 2}) is False, name
