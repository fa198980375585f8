"""Reader for zig's glibc ABI database (`abilists`), the file zig's own glibc stub generator
reads (ziglang/zig src/libs/glibc.zig; the format is written by ziglang/glibc-abi-tool).

The header (libraries, versions, targets) is all the build needs, to know which glibc versions
exist; the checker reads the symbol tables too.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

from .glibc import GlibcVersion
from .zig import abilists_path


class Header(NamedTuple):
    libraries: tuple[str, ...]  # in file order, e.g. ("m", "c", "ld", ...)
    versions: tuple[GlibcVersion, ...]  # ascending
    targets: tuple[str, ...]  # "x86_64-linux-gnu", ...
    end: int  # offset of the first symbol table


def _cstrings(data: bytes, pos: int, count: int) -> tuple[list[str], int]:
    out = []
    for _ in range(count):
        end = data.index(b"\0", pos)
        out.append(data[pos:end].decode("ascii"))
        pos = end + 1
    return out, pos


def parse_header(data: bytes) -> Header:
    pos = 0
    libraries, pos = _cstrings(data, pos + 1, data[pos])
    nversions = data[pos]
    pos += 1
    versions = tuple(
        _version(data[pos + 3 * i], data[pos + 3 * i + 1], data[pos + 3 * i + 2])
        for i in range(nversions)
    )
    pos += 3 * nversions
    targets, pos = _cstrings(data, pos + 1, data[pos])
    return Header(tuple(libraries), versions, tuple(targets), pos)


def _version(major: int, minor: int, patch: int) -> GlibcVersion:
    """The database stores MAJOR, MINOR, PATCH bytes; a zero patch is not written (2.17)."""
    return GlibcVersion(major, minor, patch) if patch else GlibcVersion(major, minor)


@functools.cache
def load_bytes(path: Path | None = None) -> bytes:
    return (path or abilists_path()).read_bytes()


@functools.cache
def header() -> Header:
    return parse_header(load_bytes())


def newest_glibc() -> GlibcVersion:
    return GlibcVersion(*header().versions[-1].parts[:2])


# -- symbol tables ----------------------------------------------------------------------------
# Per target: symbol -> {library: version strings ("2.2.5", "2.34"), ascending}. Walking the
# 37,000 inclusions takes ~40 ms in Python, so each target's table is kept as JSON in the cache,
# keyed by the database's sha256 (a new ziglang wheel makes a new key) and this format number.
# Most of x86_64's ~3,900 symbols share one of ~120 provider maps ({"c": ["2.2.5"]}): the file
# holds each map once and each symbol as an index into them (`_grouped`), so that loading it
# makes ~120 maps, not 3,900.
_TABLE_FORMAT = 2
Providers = dict[str, list[str]]  # library -> version nodes of a symbol: {"c": ["2.2.5", "2.14"]}
Table = dict[str, Providers]  # symbol -> its providers


class SymbolTable:
    """What glibc provides on one target: which library has which version nodes of a symbol.
    A plain class (not a dataclass, costly to define on every run; nor a NamedTuple, which
    has no room for the cached properties); not to be changed once made: symbols may share
    their provider maps."""

    def __init__(
        self,
        target: str,  # zig's name, e.g. "x86_64-linux-gnu"
        symbols: Table,  # name -> {"c": ["2.2.5", "2.14"], ...}
        versions: tuple[str, ...],  # every glibc version of the database, ascending
        maps: list[Providers] | None = None,  # the distinct values of symbols, if known
    ) -> None:
        self.target = target
        self.symbols = symbols
        self.versions = versions
        self._maps = maps

    def providers(self, name: str) -> Providers | None:
        return self.symbols.get(name)

    @functools.cached_property
    def defined_versions(self) -> frozenset[str]:
        """Every GLIBC_x.y version node glibc's libraries define on this target, in any release
        ("2.2.5", "2.34"): the nodes of its symbols. A need for any other GLIBC_ node fails in
        the loader on every glibc (elf/dl-version.c match_symbol: "version `X' not found").

        The union over the libraries, not per library: glibc also defines nodes without symbols
        (x86_64 libm.so.6 and ld.so define GLIBC_2.4, empty), which the database cannot see;
        every such node checked (bullseye's 2.31 libraries) has symbols in another library."""
        maps = self.symbols.values() if self._maps is None else self._maps
        return frozenset(v for libs in maps for vs in libs.values() for v in vs)

    @functools.cached_property
    def floor(self) -> str:
        """The oldest version node this target has (x86_64 2.2.5, aarch64 2.17)."""
        used = self.defined_versions
        return min(used, key=GlibcVersion.of) if used else "2.0"


def _uleb128(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def parse_symbols(data: bytes, target: str) -> dict[str, dict[str, list[str]]]:
    """Walk every inclusion (functions, objects, TLS) and keep those that apply to `target`."""
    head = parse_header(data)
    if target not in head.targets:
        raise ValueError(f"{target} is not in zig's glibc ABI database")
    bit = 1 << head.targets.index(target)
    versions = [str(v) for v in head.versions]
    table: dict[str, dict[str, list[str]]] = {}
    pos = head.end
    for sized in (False, True, True):  # functions, objects, TLS (absent in older files)
        if pos >= len(data):
            break
        count = int.from_bytes(data[pos : pos + 2], "little")
        pos += 2
        name = ""
        new_symbol = True
        for _ in range(count):
            if new_symbol:
                end = data.index(b"\0", pos)
                name = data[pos:end].decode("ascii")
                pos = end + 1
            targets, pos = _uleb128(data, pos)
            if sized:
                _size, pos = _uleb128(data, pos)
            lib_byte = data[pos]
            pos += 1
            new_symbol = bool(lib_byte & 0x80)
            start = pos
            while not data[pos] & 0x80:
                pos += 1
            pos += 1
            if targets & bit:
                nodes = [versions[b & 0x7F] for b in data[start:pos]]
                library = head.libraries[lib_byte & 0x1F]
                libs = table.setdefault(name, {})
                merged = set(libs.get(library, ())) | set(nodes)
                libs[library] = sorted(merged, key=GlibcVersion.of)
    return table


@functools.cache
def symbol_table(target: str, path: Path | None = None) -> SymbolTable:
    """The table of `target` (zig's triple), parsed once and cached on disk."""
    import hashlib
    import json

    from .paths import cache_dir

    data = load_bytes(path)
    versions = tuple(str(v) for v in parse_header(data).versions)
    key = hashlib.sha256(data).hexdigest()[:24]
    try:
        cache_file: Path | None = cache_dir("abilists") / f"{key}-{target}-v{_TABLE_FORMAT}.json"
    except (OSError, RuntimeError):  # no writable cache, or no home for one: parse every time
        cache_file = None
    if cache_file is not None:
        try:
            cached = _ungrouped(json.loads(cache_file.read_text()))
            if cached is not None:
                table, maps = cached
                return SymbolTable(target, table, versions, maps)
        except (OSError, ValueError):
            pass
    table = parse_symbols(data, target)
    if cache_file is not None:
        from .errors import BadInput
        from .files import write_atomically

        try:  # a reader never sees half a file; a cache that cannot be written is no error
            write_atomically(cache_file, json.dumps(_grouped(table), separators=(",", ":")))
        except BadInput:
            pass
    return SymbolTable(target, table, versions)


def _grouped(table: Table) -> dict[str, Any]:
    """The cache file's form of a table: each distinct provider map once, in "maps", and each
    symbol as the index of its map, in "symbols"."""
    import json

    index: dict[str, int] = {}
    maps: list[Providers] = []
    symbols: dict[str, int] = {}
    for name, libs in table.items():
        key = json.dumps(libs)
        if key not in index:
            index[key] = len(maps)
            maps.append(libs)
        symbols[name] = index[key]
    return {"maps": maps, "symbols": symbols}


def _ungrouped(data: Any) -> tuple[Table, list[Providers]] | None:
    """(the table, the maps its symbols use) from the cache file's form; None for anything
    else (a damaged file, or one of an older format), which is then made again."""
    try:
        maps, symbols = data["maps"], data["symbols"]
        if not all(isinstance(libs, dict) for libs in maps) or not isinstance(symbols, dict):
            return None
        table = {name: maps[at] for name, at in symbols.items()}
        return table, [maps[at] for at in set(symbols.values())]
    except (KeyError, TypeError, IndexError):
        return None
