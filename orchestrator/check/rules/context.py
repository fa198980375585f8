"""What every rule may read besides the ELF file, and the few helpers all rules share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, Union

from ...abilist import SymbolTable
from ...elffile import VersionNeed
from ...glibc import GlibcVersion
from ...targets import Target
from ..policy import Policy
from ..report import WARNING, Finding, Requirement, Unresolved

Item = Union[Finding, Requirement, Unresolved]
Items = Iterator[Item]

UNUSED_NEED = ("no symbol uses this version need; it is harmless at this version but still "
               "checked by the loader (left by patchelf --clear-symbol-version or a version "
               "script)")
REBUILD = ("rebuild with `build.py --glibc {glibc}` (zig links against glibc {glibc} stubs) or "
           "inside a glibc-{glibc} image")


class Context(NamedTuple):
    """One file's check: the target it must load on and the data the rules use."""

    target: Target
    glibc: GlibcVersion
    policy: Policy
    table: SymbolTable | None        # glibc's symbols on the target; None: wrong architecture
    host_symbols: frozenset[str]
    sonames: Mapping[str, str]    # zig library name -> soname
    rebuild_advice: str           # how to rebuild for the target glibc (REBUILD)

    @classmethod
    def make(cls, *, target: Target, glibc: GlibcVersion, policy: Policy,
             table: SymbolTable | None, host_symbols: frozenset[str] = frozenset()) -> Context:
        return cls(target=target, glibc=glibc, policy=policy, table=table,
                   host_symbols=host_symbols, sonames=policy.glibc_sonames(target.zig),
                   rebuild_advice=REBUILD.format(glibc=glibc))

    @property
    def arch(self) -> str:
        return self.target.arch

    def above(self, version: GlibcVersion) -> bool:
        """Is `version` newer than the target glibc?"""
        return version > self.glibc


def needs(version: GlibcVersion) -> Requirement:
    """The file cannot load below `version`."""
    return Requirement(version)


def names_of(users: Iterable[tuple[str, bool]]) -> list[str | None]:
    """The symbols using a version need, or [None] when none does (one finding either way)."""
    names: list[str | None] = [name for name, _weak in users]
    return names or [None]


def unused_need(need: VersionNeed) -> Finding:
    """A version need no symbol uses: the loader still checks it (elf/dl-version.c)."""
    return Finding("unused-version-need", UNUSED_NEED, version=need.name, library=need.file,
                   severity=WARNING)
