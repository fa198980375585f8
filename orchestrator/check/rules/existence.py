"""Does glibc have each undefined symbol, at a version the target has, in a library the file
loads? Judged against zig's glibc ABI database (abilist.py). glibc's elf/dl-lookup.c fails a
symbol the loaded objects do not define ("undefined symbol"), and elf/dl-version.c a version
need no loaded object defines."""

from __future__ import annotations

from ...elffile import ElfFile
from ...glibc import GlibcVersion
from ..report import NO_GLIBC, Finding, Unresolved
from .context import Context, Items, needs

TEXT = {
    "no-such-version": ("glibc never had this symbol version on {arch} (it has {others}): the "
                        "loader fails with \"undefined symbol\"; the file was edited (patchelf) "
                        "or linked against wrong stubs; {rebuild}"),
    "symbol-too-new": ("undefined and unversioned, but glibc only has it from {first} "
                       "({soname}); target {glibc}: the loader fails with \"undefined symbol\" "
                       "on older glibc. The link did not bind a version (stub or linker script); "
                       "avoid the function or {rebuild}{others}"),
    "other-providers": (" (unless {names}{more} defines it: then name it in --host-symbols)"),
    "missing-library": ("on glibc {glibc} it lives in {soname}{moved}, which is not in "
                        "DT_NEEDED: the load fails with \"undefined symbol\" unless the host "
                        "program happens to load {soname}; link with -l{short} (zig's glibc "
                        "{glibc} stubs add it) or {rebuild}"),
    "moved": " (it moved into libc only in {glibc})",
}
# zig target -> (symbol, version) -> libraries having that version node (None: not glibc's).
# Shared by all files of a run: most libraries import the same few hundred symbols.
_HAVING: dict[str, dict[tuple[str, str], tuple[str, ...] | None]] = {}


def check_existence(elf: ElfFile, ctx: Context) -> Items:
    table = ctx.table
    assert table is not None, "existence is judged only for the target's architecture"
    lowest = GlibcVersion.of(table.floor)   # no glibc below the database's first node
    unresolved: list[str] = []
    symbols = table.symbols
    sonames = ctx.sonames
    covered = set(sonames.values())
    needed = set(elf.needed)
    available = {"c", "ld"} | {lib for lib, so in sonames.items() if so in needed}
    host = ctx.host_symbols
    judged_files = covered & needed   # others: need-without-needed, or not glibc's
    node_versions: dict[str, str | None] = {}   # node -> its version if <= target
    having_memo = _HAVING.setdefault(table.target, {})
    for name, weak, node, vfile in elf.undefined_symbols:
        if node is not None:
            if weak or vfile not in judged_files:
                continue
            if node in node_versions:
                version = node_versions[node]
            else:
                version = node[6:] if node.startswith("GLIBC_") else ""
                if not version[:1].isdigit() or ctx.above(GlibcVersion.of(version)):
                    version = None   # judged per version need (versions.py)
                node_versions[node] = version
            if version is None:
                continue
            memo_key = (name, version)
            if memo_key in having_memo:
                having = having_memo[memo_key]
            else:
                providers = symbols.get(name)
                having = having_memo[memo_key] = None if providers is None else tuple(
                    lib for lib, versions in providers.items() if version in versions)
            if having is None:
                unresolved.append(f"{name}@{node}")
            elif not having:
                yield NO_GLIBC
                others = ", ".join(f"{name}@GLIBC_{v} ({sonames.get(lib, lib)})"
                                   for lib, vs in symbols[name].items() for v in vs)
                yield Finding("no-such-version", TEXT["no-such-version"].format(
                    arch=ctx.arch, others=others, rebuild=ctx.rebuild_advice),
                    symbol=name, version=node, library=vfile)
            elif available.isdisjoint(having):   # none of its libraries is loaded
                lib = having[0]
                yield missing_library(ctx, name, node, sonames.get(lib, lib))
            continue
        if weak or name in host:
            continue
        providers = symbols.get(name)
        if providers is None:
            unresolved.append(name)
            continue
        first, finding = _unversioned(elf, ctx, name, providers, available)
        if first is not None and first > lowest:
            lowest = first
        if finding is not None:
            yield finding
    yield needs(lowest)   # the highest of this family's requirements stands for all
    if unresolved:
        yield Unresolved(tuple(unresolved))


def _unversioned(elf: ElfFile, ctx: Context, name: str, providers: dict[str, list[str]],
                 available: set[str]) -> tuple[GlibcVersion | None, Finding | None]:
    """An unversioned reference binds to any version glibc has; does the target have one in a
    library the file loads? (the glibc it needs, if any; a finding, if any)"""
    sonames = ctx.sonames
    first_available: GlibcVersion | None = None   # earliest version in a library it loads
    missing_lib = None         # a library not loaded that has it at or below the target
    earliest: tuple[str, GlibcVersion] | None = None
    for lib, versions in providers.items():
        first = GlibcVersion.of(versions[0])
        if earliest is None or first < earliest[1]:
            earliest = (lib, first)
        if lib in available:
            if first_available is None or first < first_available:
                first_available = first
        elif not ctx.above(first) and missing_lib is None:
            missing_lib = lib
    if first_available is not None and not ctx.above(first_available):
        return first_available, None
    if missing_lib is not None:
        return first_available, missing_library(ctx, name, None,
                                                sonames.get(missing_lib, missing_lib))
    assert earliest is not None
    lib, first = earliest
    # Both are requirements; first_available (if any) is never below the earliest.
    required = first if first_available is None else max(first, first_available)
    soname = sonames.get(lib, lib)
    return required, Finding("symbol-too-new", TEXT["symbol-too-new"].format(
        first=first, soname=soname, glibc=ctx.glibc, rebuild=ctx.rebuild_advice,
        others=_other_providers(elf, ctx)),
        symbol=name, version=None, library=soname, hint=ctx.policy.symbol_hints.get(name, ""))


def _other_providers(elf: ElfFile, ctx: Context) -> str:
    """An unversioned reference may also bind to a non-glibc library the file loads."""
    glibc = set(ctx.sonames.values()) | ctx.policy.not_in_database
    others = [n for n in elf.needed if n not in glibc]
    if not others:
        return ""
    return TEXT["other-providers"].format(names=", ".join(others[:3]),
                                          more=" ..." if len(others) > 3 else "")


def missing_library(ctx: Context, name: str, node: str | None, soname: str) -> Finding:
    merged = ctx.policy.merged_into_libc
    moved = TEXT["moved"].format(glibc=merged.glibc) if soname in merged.sonames else ""
    return Finding("missing-library", TEXT["missing-library"].format(
        glibc=ctx.glibc, soname=soname, moved=moved, short=short_name(soname),
        rebuild=ctx.rebuild_advice),
        symbol=name, version=node, library=soname, hint=ctx.policy.symbol_hints.get(name, ""))


def short_name(soname: str) -> str:
    """libpthread.so.0 -> pthread (for an -l flag)."""
    base = soname.split(".so", 1)[0]
    return base[3:] if base.startswith("lib") else base
