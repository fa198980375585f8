"""The symbol tables of zig's glibc database (abilist.py) as the cache keeps them: each distinct
provider map once, symbols by index; read back to the same table, and anything else refused."""

from __future__ import annotations

import json

import pytest

from orchestrator import abilist

pytestmark = pytest.mark.unit

TABLE = {
    "memcpy": {"c": ["2.2.5", "2.14"]},
    "sqrt": {"m": ["2.2.5"]},
    "log": {"m": ["2.2.5"]},
    "dlopen": {"dl": ["2.2.5"], "c": ["2.34"]},
    "strlen": {"c": ["2.2.5"]},
}


def test_grouped_form_keeps_each_map_once_and_reads_back_the_same_table() -> None:
    grouped = json.loads(json.dumps(abilist._grouped(TABLE)))
    assert len(grouped["maps"]) == 4  # sqrt and log share theirs
    read = abilist._ungrouped(grouped)
    assert read is not None
    table, maps = read
    assert table == TABLE and list(table) == list(TABLE)
    assert table["sqrt"] is table["log"]
    assert sorted(map(json.dumps, maps)) == sorted({json.dumps(v) for v in TABLE.values()})


def test_defined_versions_are_the_same_from_the_maps() -> None:
    table, maps = abilist._ungrouped(abilist._grouped(TABLE)) or ({}, [])
    plain = abilist.SymbolTable("t", TABLE, ("2.2.5", "2.14", "2.34"))
    shared = abilist.SymbolTable("t", table, ("2.2.5", "2.14", "2.34"), maps)
    assert shared.defined_versions == plain.defined_versions == {"2.2.5", "2.14", "2.34"}
    assert shared.floor == plain.floor == "2.2.5"


@pytest.mark.parametrize(
    "damaged",
    [
        TABLE,  # the format before the maps
        [],
        "x",
        {"maps": [], "symbols": {"memcpy": 0}},
        {"maps": [{"c": ["2.2.5"]}], "symbols": {"memcpy": "0"}},
        {"maps": [{"c": ["2.2.5"]}], "symbols": {"memcpy": [0]}},
        {"maps": ["c"], "symbols": {}},
        {"maps": [{"c": ["2.2.5"]}], "symbols": []},
        {"maps": 3, "symbols": {}},
    ],
)
def test_anything_else_is_not_a_table(damaged: object) -> None:
    assert abilist._ungrouped(damaged) is None
