"""`--json`: exactly one JSON object on stdout, on failure too, so the CI step that parses it
gets `"ok": false` with the error instead of a parse error."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO, cast

# The number of the JSON shape every --json output has (`"schema": 1` at its top); the files in
# orchestrator/resources/schemas/ describe it. A change that breaks a reader raises it.
SCHEMA = 1
_printed: list[bool] = []  # set once the one object went out


def emit(summary: dict[str, Any], indent: int | None = 2) -> None:
    """Print the command's one JSON object (indented: people read it in CI logs too; a
    large check report compact). Every summary is a tree of fresh dicts and lists made by
    to_json functions, so the encoder's cycle check (a set entry per container, ~7% of
    encoding a large report) is left out."""
    sys.stdout.write(json.dumps(summary, indent=indent, check_circular=False) + "\n")
    sys.stdout.flush()
    _printed.append(True)


def reset() -> None:
    """A new command starts (the CLI run in-process more than once, as tests do)."""
    _printed.clear()


class _Watched:
    """stdout, noting that the command wrote to it (its own JSON, before it failed)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if text:
            _printed.append(True)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def watch_stdout() -> None:
    """From now on, anything written to stdout counts as the command's one JSON object."""
    if not isinstance(sys.stdout, _Watched):
        sys.stdout = cast(TextIO, _Watched(sys.stdout))


def emitted() -> bool:
    return bool(_printed)


def failure(message: str, exit_code: int, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object for a failed run: what was known, then `ok`, `error` and `exit_code`."""
    return {
        "schema": SCHEMA,
        **(known or {}),
        "ok": False,
        "error": message,
        "exit_code": exit_code,
    }


def with_schema(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the schema number first."""
    return {"schema": SCHEMA, **document}


def wanted(argv: Sequence[str]) -> bool:
    """`--json` among the tool's own arguments (not after `--`, which go to cargo)."""
    own = list(argv)[: list(argv).index("--")] if "--" in argv else list(argv)
    return "--json" in own
