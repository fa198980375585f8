"""Every version need (vernaux) against the target: GLIBC_x.y above it, GLIBC_PRIVATE,
GLIBC_ABI_* markers, names no glibc has, needs on files missing from DT_NEEDED. glibc's
elf/dl-version.c `_dl_check_map_versions` fails a need that no loaded object defines
("version `GLIBC_2.34' not found") unless it is weak (VER_FLG_WEAK), and asserts that the
needed file is loaded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Optional

from ...elffile import ElfFile, VersionNeed
from ...glibc import GlibcVersion, split_version_node
from ..report import NO_GLIBC, WARNING, Finding
from . import cxx_runtime
from .context import Context, Items, names_of, needs, unused_need

TEXT = {
    "private": (
        "a glibc-internal symbol: GLIBC_PRIVATE changes with every glibc build, so the "
        "file loads only with the exact glibc it was linked against; do not call glibc "
        "internals (rebuild without them)"
    ),
    "unknown-version": (
        "{node} is no glibc version this tool knows: the loader fails with "
        '"version `{node}\' not found"; {rebuild}'
    ),
    "without-needed": (
        "the file has version needs on {file}, which is not in DT_NEEDED: "
        'glibc\'s loader aborts with an assertion ("needed != NULL"); patchelf '
        "--remove-needed/--replace-needed leaves this behind; put {file} back in "
        "DT_NEEDED or relink"
    ),
    "too-new": (
        "needs glibc {version}, target {glibc}: the file was built or linked against a "
        'newer glibc, and older loaders fail with "version `{node}\' not found"; '
        "{rebuild}"
    ),
    "unused-too-new": (
        "no symbol uses this version need, but the loader still requires it "
        "(glibc {version}, target {glibc}): it is typically left by `patchelf "
        "--clear-symbol-version`; remove the need or {rebuild}"
    ),
    "weak": (
        "weak version need (VER_FLG_WEAK) for a weak symbol: glibc < {version} loads the "
        "file and leaves the symbol NULL; make sure the code checks it"
    ),
    "weak-symbol-hint": (
        "a weak reference, but its version need is not weak (no linker sets "
        "VER_FLG_WEAK), so the loader still requires {node}"
    ),
    "moved": (
        "; these moved from {origin} into libc in {version}: a link against glibc >= "
        "{version} binds the libc versions, zig's glibc {glibc} stubs bind {origin}"
    ),
    "undefined-version": (
        "glibc's libraries define no version {node} on {arch} (none up to "
        "glibc {newest} does): the loader refuses the file on every glibc "
        '("version `{node}\' not found", elf/dl-version.c); the file was '
        "edited (patchelf, a version script) or linked against wrong stubs; "
        "{rebuild}"
    ),
    "not-glibc-name": (
        "{node} is a name glibc never gave a version of {file}: the loader "
        'refuses the file on every glibc ("version `{node}\' not found", '
        "elf/dl-version.c); the file was edited or linked against wrong stubs; "
        "{rebuild}"
    ),
    "weak-undefined": (
        "weak version need (VER_FLG_WEAK) for {node}, which glibc never defined "
        "on {arch}: the loader lets it pass, and its weak symbols stay NULL"
    ),
    "unknown-marker": (
        "{node} is a glibc ABI marker this tool does not know: no glibc it knows "
        'provides it, so loaders fail with "version not found"; check the '
        "linker flags that added it"
    ),
    "marker-too-new": (
        "{why}: the marker exists only from glibc {first} (target {glibc}), "
        'older loaders fail with "version `{node}\' not found"; {fix}'
    ),
}
Uses = dict[tuple[Optional[str], str], list[tuple[str, bool]]]
_Origin = Callable[[str], str]


def symbol_uses(elf: ElfFile) -> Uses:
    """(file, version node) -> the undefined symbols bound to it, with their weakness."""
    uses: Uses = defaultdict(list)
    for name, weak, node, vfile in elf.undefined_symbols:
        if node is not None:
            uses[(vfile, node)].append((name, weak))
    return uses


def required_versions(elf: ElfFile) -> dict[str, str]:
    """Namespace -> the highest version needed (GLIBC first, then alphabetically)."""
    required: dict[str, str] = {}
    for need in elf.version_needs:
        ns, version = split_version_node(need.name)
        if version is None:
            continue
        known = required.get(ns)
        if known is None or GlibcVersion.of(version) > GlibcVersion.of(known):
            required[ns] = version
    return dict(sorted(required.items(), key=lambda item: (item[0] != "GLIBC", item[0])))


def check_version_needs(elf: ElfFile, ctx: Context) -> Items:
    uses = symbol_uses(elf)
    needed = set(elf.needed)
    missing_files: list[str] = []
    for need in elf.version_needs:
        ns, version = split_version_node(need.name)
        users = uses.get((need.file, need.name)) or []
        if need.file not in needed and need.file not in missing_files:
            missing_files.append(need.file)
        if ns == "GLIBC" and version is not None:
            if _glibc_defines(ctx, version):
                yield from _glibc_need(ctx, need, version, users)
            else:
                yield from _undefined_need(ctx, need, users, TEXT["undefined-version"])
        elif need.name == "GLIBC_PRIVATE":
            yield NO_GLIBC
            for name in names_of(users):
                yield Finding(
                    "glibc-private",
                    TEXT["private"],
                    symbol=name,
                    version=need.name,
                    library=need.file,
                )
        elif need.name.startswith("GLIBC_ABI_"):
            yield from _marker_need(ctx, need)
        elif ns == "GLIBC" or need.name.startswith("GLIBC_"):
            yield NO_GLIBC
            yield Finding(
                "unknown-version",
                TEXT["unknown-version"].format(node=need.name, rebuild=ctx.rebuild_advice),
                version=need.name,
                library=need.file,
            )
        elif version is not None and cxx_runtime.judges(ctx, ns):
            yield from cxx_runtime.check_cxx_need(ctx, need, ns, version, users)
        elif need.file in ctx.sonames.values():  # GLIBC-2.36 or FOO_1 on libc.so.6
            yield from _undefined_need(ctx, need, users, TEXT["not-glibc-name"])
        elif not users:
            yield unused_need(need)
    for file in missing_files:
        yield NO_GLIBC
        yield Finding(
            "version-need-without-needed", TEXT["without-needed"].format(file=file), library=file
        )


def _glibc_defines(ctx: Context, version: str) -> bool:
    """Does any glibc define GLIBC_`version` on the target? (zig's database; True when the
    file is for another architecture, which identity.py reports)"""
    table = ctx.table
    return table is None or version in table.defined_versions


def _undefined_need(
    ctx: Context, need: VersionNeed, users: list[tuple[str, bool]], text: str
) -> Items:
    """A need for a version no glibc defines: elf/dl-version.c match_symbol fails it unless
    the need is weak (then only its weak symbols may go unbound: they stay NULL)."""
    table = ctx.table
    newest = table.versions[-1] if table is not None and table.versions else "?"
    if need.weak and all(weak for _name, weak in users):
        yield Finding(
            "weak-version-need",
            TEXT["weak-undefined"].format(node=need.name, arch=ctx.arch),
            version=need.name,
            library=need.file,
            severity=WARNING,
        )
        return
    yield NO_GLIBC
    for name in names_of(users):
        yield Finding(
            "unknown-version",
            text.format(
                node=need.name,
                arch=ctx.arch,
                newest=newest,
                file=need.file,
                rebuild=ctx.rebuild_advice,
            ),
            symbol=name,
            version=need.name,
            library=need.file,
        )


def other_version_needs(elf: ElfFile, ctx: Context) -> dict[str, list[str]]:
    """Version needs no rule judges: GLIBC_* names are glibc's wherever they are needed, and
    every name needed from a library of zig's database (libc.so.6, libm.so.6, ...) or of the
    C++ runtime is judged; the others (ALSA_0.9 of libasound.so.2, OPENSSL_3.0 of
    libssl.so.3, XCRYPT_2.0 of libcrypt.so.1, which is libxcrypt on current systems) are
    reported, not judged, since what those libraries define depends on the machine.
    Library -> its needed versions, sorted."""
    judged = set(ctx.sonames.values()) | set(ctx.policy.cxx_runtime.namespaces.values())
    out: dict[str, set[str]] = {}
    for need in elf.version_needs:
        if need.file not in judged and not need.name.startswith("GLIBC"):
            out.setdefault(need.file, set()).add(need.name)
    return {file: sorted(names) for file, names in sorted(out.items())}


def _glibc_need(
    ctx: Context, need: VersionNeed, version_text: str, users: list[tuple[str, bool]]
) -> Items:
    version = GlibcVersion.of(version_text)
    if not need.weak or any(not weak for _name, weak in users):
        yield needs(version)
    if not ctx.above(version):
        if not users:
            yield unused_need(need)
        return
    if not users:
        if need.weak:
            yield unused_need(need)
        else:
            yield Finding(
                "version-too-new",
                TEXT["unused-too-new"].format(
                    version=version_text, glibc=ctx.glibc, rebuild=ctx.rebuild_advice
                ),
                version=need.name,
                library=need.file,
            )
        return
    text = TEXT["too-new"].format(
        version=version_text, glibc=ctx.glibc, node=need.name, rebuild=ctx.rebuild_advice
    )
    moved_from = _moved_from(ctx, version)
    hints = ctx.policy.symbol_hints
    for name, weak in users:
        if need.weak and weak:
            yield Finding(
                "weak-version-need",
                TEXT["weak"].format(version=version_text),
                symbol=name,
                version=need.name,
                library=need.file,
                severity=WARNING,
            )
            continue
        origin = moved_from(name)
        hint = hints.get(name, "")
        if weak:
            hint = TEXT["weak-symbol-hint"].format(node=need.name) + (f"; {hint}" if hint else "")
        moved = (
            TEXT["moved"].format(origin=origin, version=version_text, glibc=ctx.glibc)
            if origin
            else ""
        )
        yield Finding(
            "version-too-new",
            text + moved,
            symbol=name,
            version=need.name,
            library=need.file,
            hint=hint,
        )


def _no_origin(name: str) -> str:
    return ""


def _moved_from(ctx: Context, version: GlibcVersion) -> _Origin:
    """For symbols of the 2.34 merge: the library they lived in before (database)."""
    merged = ctx.policy.merged_into_libc
    table = ctx.table
    if table is None or version != merged.glibc:
        return _no_origin

    def origin(name: str) -> str:
        for lib in table.providers(name) or {}:
            soname = ctx.sonames.get(lib, lib)
            if soname in merged.sonames:
                return soname
        return ""

    return origin


def _marker_need(ctx: Context, need: VersionNeed) -> Items:
    marker = ctx.policy.markers.get(need.name)
    if marker is None:
        yield NO_GLIBC
        yield Finding(
            "unknown-marker",
            TEXT["unknown-marker"].format(node=need.name),
            version=need.name,
            library=need.file,
        )
        return
    yield needs(marker.glibc)
    if ctx.above(marker.glibc):
        yield Finding(
            "marker-too-new",
            TEXT["marker-too-new"].format(
                why=marker.why, first=marker.glibc, glibc=ctx.glibc, node=need.name, fix=marker.fix
            ),
            version=need.name,
            library=need.file,
        )
