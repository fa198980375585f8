"""GitHub Actions workflow commands: their escaping, and the logger's groups and annotations."""

from __future__ import annotations

import json

import pytest

from orchestrator import ci, logger
from tests.conftest import run_tool


@pytest.mark.unit
def test_only_the_runner_value_counts_as_github_actions():
    assert ci.in_github_actions({"GITHUB_ACTIONS": "true"})
    assert not ci.in_github_actions({})
    assert not ci.in_github_actions({"GITHUB_ACTIONS": "false"})
    assert not ci.in_github_actions({"CI": "true"})


@pytest.mark.unit
def test_message_escapes_percent_and_line_breaks_only():
    assert ci.escape_data("100% a:b,c\r\nd") == "100%25 a:b,c%0D%0Ad"


@pytest.mark.unit
def test_property_also_escapes_colon_and_comma():
    assert ci.escape_property("C:\\x,y%\n") == "C%3A\\x%2Cy%25%0A"


@pytest.mark.unit
def test_percent_is_escaped_first_so_escapes_are_not_doubled():
    assert ci.escape_data("%0A") == "%250A"
    assert ci.escape_property("\n") == "%0A"


@pytest.mark.unit
def test_error_annotation_names_the_file():
    line = ci.error_annotation("needs GLIBC_2.34: memcpy", file="dist/lib,a:b.so", line=3)
    assert line == "::error file=dist/lib%2Ca%3Ab.so,line=3::needs GLIBC_2.34: memcpy"


@pytest.mark.unit
def test_error_annotation_without_a_file_has_no_properties():
    assert ci.error_annotation("two\nlines") == "::error::two%0Alines"


@pytest.mark.unit
def test_groups():
    assert ci.group_start("building 50% of it") == "::group::building 50%25 of it"
    assert ci.group_end() == "::endgroup::"


@pytest.mark.unit
def test_markdown_table_cells_cannot_break_the_table():
    table = ci.markdown_table(["library", "loads on"], [["a|b.so", "glibc 2.17\nyes"]])
    assert table == ("| library | loads on |\n|---|---|\n| a\\|b.so | glibc 2.17 yes |\n")


@pytest.mark.unit
def test_step_summary_appends_only_inside_github_actions(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    assert ci.append_step_summary("| a |", env) == summary
    assert ci.append_step_summary("| a |", {"GITHUB_STEP_SUMMARY": str(summary)}) is None
    assert ci.append_step_summary("| a |", {"GITHUB_ACTIONS": "true"}) is None
    assert summary.read_text() == "before\n| a |\n"


@pytest.mark.unit
def test_logger_groups_each_stage_and_annotates_errors(monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GLIBC_BUILD_QUIET", raising=False)
    logger.console.cache_clear()
    try:
        logger.step("building")
        logger.step("checking")
        logger.error("lib.so needs GLIBC_2.34", file="dist/lib.so")
        logger.end_group()  # already closed by the error: nothing more
    finally:
        logger.end_group()
        logger.console.cache_clear()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "::group::building",
        "==> building",
        "::endgroup::",
        "::group::checking",
        "==> checking",
        "::endgroup::",
        "error: lib.so needs GLIBC_2.34",
        "::error file=dist/lib.so::lib.so needs GLIBC_2.34",
    ]


@pytest.mark.unit
def test_logger_writes_no_workflow_commands_outside_github_actions(monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    logger.step("building")
    logger.error("bad")
    logger.annotate_error("bad")
    assert "::" not in capsys.readouterr().err


def test_json_stays_pure_on_stdout_in_github_actions(tmp_path):
    """The annotation goes to stderr; stdout is still exactly one JSON document."""
    not_elf = tmp_path / "notes.txt"
    not_elf.write_text("hello")
    proc = run_tool("check", "--glibc", "2.17", "--json", not_elf, env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["ok"] is False
    assert "::error" not in proc.stdout
    assert "::error::" in proc.stderr and "not an ELF file" in proc.stderr
