"""What every rule may read besides the ELF file, and the few helpers all rules share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, Union

from ...abilist import SymbolTable
from ...elffile import VersionNeed
from ...glibc import GlibcVersion
from ...syscalls import KernelVersion
from ...targets import Target
from ..policy import Policy
from ..report import WARNING, Finding, Requirement, Unresolved

Item = Union[Finding, Requirement, Unresolved]
Items = Iterator[Item]

UNUSED_NEED = (
    "no symbol uses this version need; it is harmless at this version but still "
    "checked by the loader (left by patchelf --clear-symbol-version or a version "
    "script)"
)
REBUILD = (
    "rebuild with `build.py --glibc {glibc}` (zig links against glibc {glibc} stubs) or "
    "inside a glibc-{glibc} image"
)


class Context(NamedTuple):
    """One file's check: the target it must load on and the data the rules use."""

    target: Target
    glibc: GlibcVersion
    policy: Policy
    table: SymbolTable | None  # glibc's symbols on the target; None: wrong architecture
    host_symbols: frozenset[str]
    sonames: Mapping[str, str]  # zig library name -> soname
    rebuild_advice: str  # how to rebuild for the target glibc (REBUILD)
    # Whether a symbol whose glibc library is not in DT_NEEDED may come from the host process:
    # --strict says never; --host-libraries names the sonames the host has loaded (None: not
    # named, so such a symbol is a warning stating the condition).
    strict: bool = False
    host_libraries: frozenset[str] | None = None
    # The platform's other facts (check --glibc PRESET, --kernel): the kernel floor, the
    # highest x86-64 ISA level (1..4), its name for messages; scan_code: read the code for
    # system call sites (rules/kernel.py), for a floor or the loads-on matrix.
    kernel: KernelVersion | None = None
    isa: int | None = None
    platform_name: str | None = None
    scan_code: bool = False
    floor_from_platform: bool = False  # the floor is the preset's (not --kernel's)
    # The sonames the preset's base system has (platforms.Platform.libraries; None: not
    # known), and whose base system that is, for messages (rules/needed.py).
    base_libraries: frozenset[str] | None = None
    base_system: str | None = None

    @classmethod
    def make(
        cls,
        *,
        target: Target,
        glibc: GlibcVersion,
        policy: Policy,
        table: SymbolTable | None,
        host_symbols: frozenset[str] = frozenset(),
        strict: bool = False,
        host_libraries: frozenset[str] | None = None,
        kernel: KernelVersion | None = None,
        isa: int | None = None,
        platform_name: str | None = None,
        scan_code: bool = False,
        floor_from_platform: bool = False,
        base_libraries: frozenset[str] | None = None,
        base_system: str | None = None,
    ) -> Context:
        return cls(
            target=target,
            glibc=glibc,
            policy=policy,
            table=table,
            host_symbols=host_symbols,
            sonames=policy.glibc_sonames(target.zig),
            rebuild_advice=REBUILD.format(glibc=glibc),
            strict=strict,
            host_libraries=host_libraries,
            kernel=kernel,
            isa=isa,
            platform_name=platform_name,
            scan_code=scan_code,
            floor_from_platform=floor_from_platform,
            base_libraries=base_libraries,
            base_system=base_system,
        )

    def host_has(self, soname: str) -> bool | None:
        """Does the host process have `soname` loaded? True/False when --host-libraries named
        them, False under --strict, None when unknown (the finding then states the
        condition)."""
        if self.host_libraries is not None:
            return soname in self.host_libraries
        return False if self.strict else None

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
    return Finding(
        "unused-version-need", UNUSED_NEED, version=need.name, library=need.file, severity=WARNING
    )
