"""Does glibc have each undefined symbol, at a version the target has, in a library the file
loads? Judged against zig's glibc ABI database (abilist.py). glibc's elf/dl-lookup.c fails a
symbol the loaded objects do not define ("undefined symbol"), and elf/dl-version.c a version
need no loaded object defines."""

from __future__ import annotations

from ...elffile import ElfFile
from ...glibc import GlibcVersion
from ..report import NO_GLIBC, WARNING, Finding, Requirement, Unresolved
from .context import Context, Items, needs

TEXT = {
    "no-such-version": (
        "glibc never had this symbol version on {arch} (it has {others}): the "
        'loader fails with "undefined symbol"; the file was edited (patchelf) '
        "or linked against wrong stubs; {rebuild}"
    ),
    "symbol-too-new": (
        "undefined and unversioned, but glibc only has it from {first} "
        '({soname}); target {glibc}: the loader fails with "undefined symbol" '
        "on older glibc. The link did not bind a version (stub or linker script); "
        "avoid the function or {rebuild}{others}"
    ),
    "other-providers": (" (unless {names}{more} defines it: then name it in --host-symbols)"),
    "missing-library": (
        "on glibc {glibc} it lives in {soname}{moved}, which is not in "
        'DT_NEEDED{why}: the load fails with "undefined symbol" unless the '
        "host process already has {soname} loaded; link with -l{short} (zig's "
        "glibc {glibc} stubs add it) or {rebuild}"
    ),
    "missing-library-host": (
        "on glibc {glibc} it lives in {soname}{moved}, which is not in "
        "DT_NEEDED: the file loads only in a host process that already has "
        "{soname} loaded (Python and most programs do), elsewhere the load "
        'fails with "undefined symbol"; link with -l{short} to load '
        "anywhere, or name the host's libraries with --host-libraries "
        "(--strict makes this an error)"
    ),
    "why-strict": " (--strict: the host process is not trusted to load it)",
    "why-host": " and --host-libraries does not name it",
    "moved": " (it moved into libc only in {glibc})",
}
# zig target -> (symbol, version) -> libraries having that version node (None: not glibc's).
# Shared by all files of a run: most libraries import the same few hundred symbols.
_HAVING: dict[str, dict[tuple[str, str], tuple[str, ...] | None]] = {}


def check_existence(elf: ElfFile, ctx: Context) -> Items:
    table = ctx.table
    assert table is not None, "existence is judged only for the target's architecture"
    lowest = GlibcVersion.of(table.floor)  # no glibc below the database's first node
    unresolved: list[str] = []
    symbols = table.symbols
    sonames = ctx.sonames
    covered = set(sonames.values())
    needed = set(elf.needed)
    available = {"c", "ld"} | {lib for lib, so in sonames.items() if so in needed}
    host = ctx.host_symbols
    judged_files = covered & needed  # others: need-without-needed, or not glibc's
    node_versions: dict[str, str | None] = {}  # node -> its version if <= target
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
                    version = None  # judged per version need (versions.py)
                node_versions[node] = version
            if version is None:
                continue
            memo_key = (name, version)
            if memo_key in having_memo:
                having = having_memo[memo_key]
            else:
                providers = symbols.get(name)
                having = having_memo[memo_key] = (
                    None
                    if providers is None
                    else tuple(lib for lib, versions in providers.items() if version in versions)
                )
            if having is None:
                unresolved.append(f"{name}@{node}")
            elif not having:
                yield NO_GLIBC
                others = ", ".join(
                    f"{name}@GLIBC_{v} ({sonames.get(lib, lib)})"
                    for lib, vs in symbols[name].items()
                    for v in vs
                )
                yield Finding(
                    "no-such-version",
                    TEXT["no-such-version"].format(
                        arch=ctx.arch, others=others, rebuild=ctx.rebuild_advice
                    ),
                    symbol=name,
                    version=node,
                    library=vfile,
                )
            elif available.isdisjoint(having):  # none of its libraries is loaded
                in_host = [ctx.host_has(sonames.get(lib, lib)) for lib in having]
                if True in in_host:
                    continue
                lib = having[0]
                strict = False in in_host
                if strict:  # no library the file loads has it at this version, ever
                    yield NO_GLIBC
                yield missing_library(ctx, name, node, sonames.get(lib, lib), strict=strict)
            continue
        if weak or name in host:
            continue
        providers = symbols.get(name)
        if providers is None:
            unresolved.append(name)
            continue
        requirement, finding = _unversioned(elf, ctx, name, providers, available)
        if requirement is not None:
            if requirement.glibc is None:
                yield requirement
            elif requirement.glibc > lowest:
                lowest = requirement.glibc
        if finding is not None:
            yield finding
    yield needs(lowest)  # the highest of this family's requirements stands for all
    if unresolved:
        yield Unresolved(tuple(unresolved))


def _unversioned(
    elf: ElfFile, ctx: Context, name: str, providers: dict[str, list[str]], available: set[str]
) -> tuple[Requirement | None, Finding | None]:
    """An unversioned reference binds to any version glibc has; does the target have one in a
    library the file loads? (the requirement it makes, if any; a finding, if any)

    A library of glibc's that the file does not load may still be in the process: the host
    loaded it (elf/dl-lookup.c searches the global scope first). Then the file loads, so that
    is a warning stating the condition, unless --host-libraries names the host's libraries
    without it or --strict trusts no host: then the symbol needs a library the file loads
    (libc from 2.34 for libdl/libpthread/librt/libutil functions, `merged_into_libc`; never
    for libm's)."""
    sonames = ctx.sonames
    first_available: GlibcVersion | None = None  # earliest version in a library it loads
    missing: list[tuple[str, GlibcVersion]] = []  # libraries not loaded that have it in time
    earliest: tuple[str, GlibcVersion] | None = None
    for lib, versions in providers.items():
        first = GlibcVersion.of(versions[0])
        if earliest is None or first < earliest[1]:
            earliest = (lib, first)
        if lib in available:
            if first_available is None or first < first_available:
                first_available = first
        elif not ctx.above(first):
            missing.append((lib, first))
    if first_available is not None and not ctx.above(first_available):
        return needs(first_available), None
    if missing:
        return _from_the_host(ctx, name, missing, first_available)
    assert earliest is not None
    lib, first = earliest
    # Both are requirements; first_available (if any) is never below the earliest.
    required = first if first_available is None else max(first, first_available)
    soname = sonames.get(lib, lib)
    return needs(required), Finding(
        "symbol-too-new",
        TEXT["symbol-too-new"].format(
            first=first,
            soname=soname,
            glibc=ctx.glibc,
            rebuild=ctx.rebuild_advice,
            others=_other_providers(elf, ctx),
        ),
        symbol=name,
        version=None,
        library=soname,
        hint=ctx.policy.symbol_hints.get(name, ""),
    )


def _from_the_host(
    ctx: Context,
    name: str,
    missing: list[tuple[str, GlibcVersion]],
    first_available: GlibcVersion | None,
) -> tuple[Requirement | None, Finding | None]:
    """The symbol is only in glibc libraries the file does not load (`missing`, each with its
    first version <= the target): the verdict depends on what the host process loaded."""
    sonames = ctx.sonames
    known = [(first, ctx.host_has(sonames.get(lib, lib))) for lib, first in missing]
    in_host = [first for first, has in known if has]
    if in_host:
        return needs(min(in_host)), None
    lib, first = missing[0]
    soname = sonames.get(lib, lib)
    if known[0][1] is None:  # the host is unknown: loads where the host has it loaded
        return needs(first), missing_library(ctx, name, None, soname, strict=False)
    requirement = NO_GLIBC if first_available is None else needs(first_available)
    return requirement, missing_library(ctx, name, None, soname, strict=True)


def _other_providers(elf: ElfFile, ctx: Context) -> str:
    """An unversioned reference may also bind to a non-glibc library the file loads."""
    glibc = set(ctx.sonames.values()) | ctx.policy.not_in_database
    others = [n for n in elf.needed if n not in glibc]
    if not others:
        return ""
    return TEXT["other-providers"].format(
        names=", ".join(others[:3]), more=" ..." if len(others) > 3 else ""
    )


def missing_library(
    ctx: Context, name: str, node: str | None, soname: str, *, strict: bool
) -> Finding:
    """A glibc symbol whose library is not in DT_NEEDED: a violation when the host is known
    not to have it loaded (`strict`), else a warning stating that condition."""
    merged = ctx.policy.merged_into_libc
    moved = TEXT["moved"].format(glibc=merged.glibc) if soname in merged.sonames else ""
    short = short_name(soname)
    if not strict:
        return Finding(
            "missing-library",
            TEXT["missing-library-host"].format(
                glibc=ctx.glibc, soname=soname, moved=moved, short=short
            ),
            symbol=name,
            version=node,
            library=soname,
            severity=WARNING,
        )
    why = TEXT["why-host"] if ctx.host_libraries is not None else TEXT["why-strict"]
    return Finding(
        "missing-library",
        TEXT["missing-library"].format(
            glibc=ctx.glibc,
            soname=soname,
            moved=moved,
            short=short,
            why=why,
            rebuild=ctx.rebuild_advice,
        ),
        symbol=name,
        version=node,
        library=soname,
        hint=ctx.policy.symbol_hints.get(name, ""),
    )


def short_name(soname: str) -> str:
    """libpthread.so.0 -> pthread (for an -l flag)."""
    base = soname.split(".so", 1)[0]
    return base[3:] if base.startswith("lib") else base
