"""Reader for zig's glibc ABI database (`abilists`); format in shared/notes/checks.md §2.

The header (libraries, versions, targets) is all the build needs, to know which glibc versions
exist; the checker reads the symbol tables too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .glibc import GlibcVersion
from .zig import abilists_path


@dataclass(frozen=True)
class Header:
    libraries: tuple[str, ...]              # in file order, e.g. ("m", "c", "ld", ...)
    versions: tuple[tuple[int, int, int], ...]  # ascending
    targets: tuple[str, ...]                # "x86_64-linux-gnu", ...
    end: int                                # offset of the first symbol table


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
    versions = tuple(tuple(data[pos + 3 * i: pos + 3 * i + 3]) for i in range(nversions))
    pos += 3 * nversions
    targets, pos = _cstrings(data, pos + 1, data[pos])
    return Header(tuple(libraries), versions, tuple(targets), pos)  # type: ignore[arg-type]


@functools.cache
def load_bytes(path: Path | None = None) -> bytes:
    return (path or abilists_path()).read_bytes()


@functools.cache
def header() -> Header:
    return parse_header(load_bytes())


def newest_glibc() -> GlibcVersion:
    major, minor, _ = header().versions[-1]
    return GlibcVersion(major, minor)
