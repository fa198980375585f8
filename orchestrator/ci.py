"""What a CI log understands beyond plain lines: GitHub Actions' workflow commands.

Inside GitHub Actions (`GITHUB_ACTIONS=true`) a stage is a collapsible `::group::`, a failure
an `::error file=...::` annotation shown on the run's page, and a Markdown table may go to the
job summary (the file `$GITHUB_STEP_SUMMARY` names). Format and escaping follow
https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions and the
toolkit that defines them (actions/toolkit packages/core/src/command.ts: `escapeData`,
`escapeProperty`). Grouping per CI provider is what cibuildwheel's logger does
(pypa/cibuildwheel cibuildwheel/logger.py). Pure functions return the text; the caller
writes it to stderr, so `--json` on stdout stays one JSON document.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

GITHUB_ACTIONS_ENV = "GITHUB_ACTIONS"
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a GitHub Actions job (the runner sets GITHUB_ACTIONS=true)."""
    env = os.environ if environ is None else environ
    return env.get(GITHUB_ACTIONS_ENV) == "true"


def escape_data(text: str) -> str:
    """A command's message: `%`, CR and LF encoded (toolkit `escapeData`)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: as a message, plus `:` and `,` that separate properties
    (toolkit `escapeProperty`)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(
    command: str, message: str = "", properties: Mapping[str, str | int | None] | None = None
) -> str:
    """`::command key=value,key=value::message`, properties without a value left out."""
    given = [
        (key, str(value))
        for key, value in (properties or {}).items()
        if value is not None and str(value) != ""
    ]
    props = ",".join(f"{key}={escape_property(value)}" for key, value in given)
    head = f"::{command} {props}" if props else f"::{command}"
    return f"{head}::{escape_data(message)}"


def group_start(title: str) -> str:
    """Opens a collapsible section of the log (groups do not nest: end the last one first)."""
    return workflow_command("group", title)


def group_end() -> str:
    return workflow_command("endgroup")


def error_annotation(
    message: str,
    *,
    file: str | os.PathLike[str] | None = None,
    line: int | None = None,
    title: str | None = None,
) -> str:
    """An error shown on the run's page, attached to `file` (and `line`) when given."""
    return workflow_command(
        "error",
        message,
        {"file": os.fspath(file) if file is not None else None, "line": line, "title": title},
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; `|` and line breaks in a cell are escaped so that a
    path or a message cannot break the table (https://github.github.com/gfm/#tables-extension-)."""

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append Markdown to the job summary; returns the file written, or None outside
    GitHub Actions (or when the runner gave no summary file)."""
    env = os.environ if environ is None else environ
    target = env.get(STEP_SUMMARY_ENV)
    if not in_github_actions(env) or not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as summary:
        summary.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path
