"""Platform presets: `centos-7`, `bionic`, `steam-sniper` mean a glibc, a kernel floor, an x86-64
ISA level and C++ runtime ceilings.

The table is data (resources/platforms.toml, each fact with its public source) and is validated
as it is loaded, as auditwheel validates its policy JSON on load (src/auditwheel/policy). Several
presets at once (`centos-7,steam-sniper`) mean the strictest of each fact: a plugin must load on
every one of them.

Every `check` reads the whole table (its loads-on matrix names each preset), so loading is kept
cheap: the TOML parser (tomllib) is pure Python and costs more than the rest of the load, so the
parsed table is kept as JSON in the user's cache (`_cached_data`), and the records are
NamedTuples, which cost a fraction of a dataclass to define.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from .errors import BadInput, UsageError
from .glibc import GlibcVersion
from .paths import RESOURCES_DIR
from .syscalls import KernelVersion

PLATFORMS_TOML = RESOURCES_DIR / "platforms.toml"

CXX_NAMESPACES = ("GLIBCXX", "CXXABI", "GCC")  # libstdc++.so.6, libstdc++.so.6, libgcc_s.so.1
FACTS = ("glibc", "kernel", "isa", "cxx", "libraries")  # what a row may carry, each sourced
_SOURCE_KEYS = {*FACTS, "base"}  # base: what the platform is built on
_ROW_KEYS = {
    "name",
    "aliases",
    "what",
    "glibc",
    "kernel",
    "isa",
    "sources",
    "arch",
    "libraries",
    *CXX_NAMESPACES,
}
_SONAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.so(?:\.[0-9]+)*$")
_ZIG_TARGET = re.compile(r"^[a-z0-9_]+-linux-gnu[a-z]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ISA = re.compile(r"^x86-64-v([1-4])$")
_NODE = re.compile(r"^\d+(?:\.\d+)*$")
_URL = re.compile(r"^https://\S+$")
_BARE_GLIBC = re.compile(r"^\d+\.\d+(?:\.\d+)?$")


def parse_node(text: str, *, what: str = "version node") -> GlibcVersion:
    """A version node of the C++ runtime, `3.4.19` (GLIBCXX_3.4.19), as glibc.py's one
    version type: compared part by part, trailing zeros do not count (aarch64's libgcc_s has
    both GCC_14.0 and GCC_14.0.0), printed as written."""
    if not _NODE.match(text):
        raise UsageError(f"{what} {text!r} is not a version like 3.4.19")
    return GlibcVersion.of(text)


class IsaLevel(NamedTuple):
    """An x86-64 microarchitecture level (x86-64 psABI: v1 baseline, v2, v3, v4)."""

    level: int

    @classmethod
    def parse(cls, text: str, *, what: str = "isa") -> IsaLevel:
        match = _ISA.match(text)
        if not match:
            raise UsageError(f"{what} {text!r} is not an x86-64 level; write x86-64-v1 .. v4")
        return cls(int(match.group(1)))

    def __str__(self) -> str:
        return f"x86-64-v{self.level}"


BASELINE_ISA = IsaLevel(1)


class Platform(NamedTuple):
    """What a system guarantees to a plugin. None: not known (or not promised, as a kernel by a
    container runtime); a consumer then falls back to its defaults for the glibc."""

    name: str
    what: str
    glibc: GlibcVersion
    kernel: KernelVersion | None = None
    isa: IsaLevel = BASELINE_ISA
    cxx: tuple[tuple[str, GlibcVersion], ...] = ()  # (namespace, highest node), as data
    cxx_arch: tuple[tuple[str, tuple[tuple[str, GlibcVersion], ...]], ...] = ()  # per zig target
    aliases: tuple[str, ...] = ()
    sources: tuple[tuple[str, str], ...] = ()  # (fact, URL)
    members: tuple[str, ...] = ()  # a combination: the presets it joins
    bare: bool = False  # a bare glibc version, no preset
    # The sonames every such system has (PEP 599/600's base set); None: not known. With it,
    # the preset (or presets of a combination) whose base system that is, for messages.
    libraries: frozenset[str] | None = None
    libraries_of: tuple[str, ...] = ()

    def cxx_ceiling(self, namespace: str, arch: str | None = None) -> GlibcVersion | None:
        """The highest `namespace` node (GLIBCXX, CXXABI, GCC) on zig target `arch`
        (e.g. aarch64-linux-gnu; None: x86_64, the table's default)."""
        if arch:
            for name, nodes in self.cxx_arch:
                if name == arch:
                    override = _node(nodes, namespace)
                    if override is not None:
                        return override
        return _node(self.cxx, namespace)

    def source(self, fact: str) -> str | None:
        return dict(self.sources).get(fact)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "what": self.what,
            "aliases": list(self.aliases),
            "glibc": str(self.glibc),
            "kernel": str(self.kernel) if self.kernel else None,
            "isa": str(self.isa),
            **{ns: (str(v) if (v := self.cxx_ceiling(ns)) else None) for ns in CXX_NAMESPACES},
            **(
                {"arch": {arch: {ns: str(v) for ns, v in nodes} for arch, nodes in self.cxx_arch}}
                if self.cxx_arch
                else {}
            ),
            "sources": dict(self.sources),
            **({"members": list(self.members)} if self.members else {}),
        }


def _node(nodes: tuple[tuple[str, GlibcVersion], ...], namespace: str) -> GlibcVersion | None:
    """The ceiling of `namespace` among (namespace, node) pairs (a few: no dict is built)."""
    for name, node in nodes:
        if name == namespace:
            return node
    return None


class PlatformTable(NamedTuple):
    platforms: tuple[Platform, ...]
    by_name: dict[str, Platform]  # names and aliases
    isa_baseline_source: str


def _fail(message: str) -> UsageError:
    return UsageError(f"{PLATFORMS_TOML}: {message}")


def _row(raw: Any, index: int, isa_baseline_source: str) -> Platform:
    if not isinstance(raw, dict):
        raise _fail(f"platform #{index + 1} is not a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(f"platform #{index + 1}: name {name!r} must be lowercase, e.g. centos-7")
    where = f"platform {name}"
    unknown = set(raw) - _ROW_KEYS
    if unknown:
        raise _fail(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    what, aliases, sources = raw.get("what"), raw.get("aliases", []), raw.get("sources")
    if not isinstance(what, str) or not what:
        raise _fail(f"{where}: `what` must say in a phrase what it is")
    if not isinstance(aliases, list) or not all(
        isinstance(a, str) and _NAME.match(a) for a in aliases
    ):
        raise _fail(f"{where}: aliases must be a list of lowercase names")
    if not isinstance(sources, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
    ):
        raise _fail(f"{where}: [platform.sources] must map each fact to a public URL")
    if set(sources) - _SOURCE_KEYS:
        raise _fail(
            f"{where}: sources for unknown facts {', '.join(sorted(set(sources) - _SOURCE_KEYS))}"
        )
    bad_urls = [url for url in sources.values() if not _URL.match(url)]
    if bad_urls:
        raise _fail(f"{where}: source {bad_urls[0]!r} is not an https URL")
    for key in ("glibc", "kernel", "isa", *CXX_NAMESPACES):
        if key in raw and not isinstance(raw[key], str):
            raise _fail(f'{where}: {key} must be a quoted string, e.g. "2.17"')
    if "glibc" not in raw:
        raise _fail(f"{where}: glibc is required")
    cxx = tuple(
        (ns, parse_node(raw[ns], what=f"{where}: {ns}")) for ns in CXX_NAMESPACES if ns in raw
    )
    if cxx and len(cxx) != len(CXX_NAMESPACES):
        raise _fail(f"{where}: give all of {', '.join(CXX_NAMESPACES)} or none")
    cxx_arch = _cxx_arch(raw.get("arch", {}), where, has_base=bool(cxx))
    libraries = _libraries(raw.get("libraries"), where)
    given = {
        "glibc",
        *(["kernel"] if "kernel" in raw else []),
        *(["isa"] if "isa" in raw else []),
        *(["cxx"] if cxx else []),
        *(["libraries"] if libraries is not None else []),
    }
    unsourced = sorted(given - set(sources))
    if unsourced:
        raise _fail(f"{where}: no source for {', '.join(unsourced)}")
    if "isa" not in raw:  # the baseline every x86-64 system has
        sources = {**sources, "isa": isa_baseline_source}
    return Platform(
        name=name,
        what=what,
        aliases=tuple(aliases),
        glibc=GlibcVersion.parse(raw["glibc"], what=f"{where}: glibc"),
        kernel=KernelVersion.parse(raw["kernel"], what=f"{where}: kernel")
        if "kernel" in raw
        else None,
        isa=IsaLevel.parse(raw["isa"], what=f"{where}: isa") if "isa" in raw else BASELINE_ISA,
        cxx=cxx,
        cxx_arch=cxx_arch,
        sources=tuple(sorted(sources.items())),
        libraries=libraries,
        libraries_of=(name,) if libraries is not None else (),
    )


def _libraries(raw: Any, where: str) -> frozenset[str] | None:
    """`libraries = [...]`: sonames (libz.so.1), as a loader reads DT_NEEDED; absent: None."""
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(name, str) and _SONAME.match(name) for name in raw)
    ):
        raise _fail(f'{where}: libraries must be a non-empty list of sonames, e.g. ["libz.so.1"]')
    if len(set(raw)) != len(raw):
        raise _fail(f"{where}: libraries names a soname twice")
    return frozenset(raw)


def _cxx_arch(
    raw: Any, where: str, *, has_base: bool
) -> tuple[tuple[str, tuple[tuple[str, GlibcVersion], ...]], ...]:
    """[platform.arch.<zig target>]: C++ ceilings where an architecture differs (policy.json's
    `arch` entries do the same for the defaults)."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise _fail(f"{where}: [platform.arch.TARGET] must be tables of ceilings")
    if raw and not has_base:
        raise _fail(
            f"{where}: per-architecture ceilings need the row's own {', '.join(CXX_NAMESPACES)}"
        )
    result = []
    for arch, nodes in sorted(raw.items()):
        if (
            not _ZIG_TARGET.match(arch)
            or not nodes
            or set(nodes) - set(CXX_NAMESPACES)
            or not all(isinstance(value, str) for value in nodes.values())
        ):
            raise _fail(
                f"{where}: arch {arch!r} must be a target like aarch64-linux-gnu with "
                f"some of {', '.join(CXX_NAMESPACES)} as quoted strings"
            )
        result.append(
            (
                arch,
                tuple(
                    (ns, parse_node(nodes[ns], what=f"{where}: {arch} {ns}"))
                    for ns in CXX_NAMESPACES
                    if ns in nodes
                ),
            )
        )
    return tuple(result)


def _row_in_file(raw: Any, index: int, isa_baseline_source: str) -> Platform:
    """A row; a value that does not parse is named with the file it is in."""
    try:
        return _row(raw, index, isa_baseline_source)
    except UsageError as exc:
        if exc.message.startswith(str(PLATFORMS_TOML)):
            raise
        raise _fail(exc.message) from None


def parse_table(data: dict[str, Any]) -> PlatformTable:
    """Validate the whole table: names and aliases unique, every fact sourced."""
    about = data.get("about", {})
    baseline_source = about.get("isa_baseline_source") if isinstance(about, dict) else None
    if not isinstance(baseline_source, str) or not _URL.match(baseline_source):
        raise _fail("[about] isa_baseline_source must be the https URL of the x86-64 psABI")
    rows = data.get("platform")
    if not isinstance(rows, list) or not rows:
        raise _fail("no [[platform]] rows")
    platforms = tuple(_row_in_file(raw, index, baseline_source) for index, raw in enumerate(rows))
    by_name: dict[str, Platform] = {}
    for platform in platforms:
        for key in (platform.name, *platform.aliases):
            if key in by_name:
                raise _fail(f"{key!r} names both {by_name[key].name} and {platform.name}")
            if _BARE_GLIBC.match(key):
                raise _fail(f"{key!r} would read as a glibc version")
            by_name[key] = platform
    return PlatformTable(platforms=platforms, by_name=by_name, isa_baseline_source=baseline_source)


@lru_cache(maxsize=1)
def table() -> PlatformTable:
    """The presets, validated: from the cached parse of this very file when there is one,
    else from the TOML (then cached)."""
    text = PLATFORMS_TOML.read_text(encoding="utf-8")
    cache_file = _cache_file(text)
    cached = _cached_data(cache_file)
    if cached is not None:
        try:
            return parse_table(cached)
        except UsageError:
            pass  # a damaged cache, not a bad table: parse the file again and re-make it
    data = _parse_toml(text)
    parsed = parse_table(data)
    if cache_file is not None:
        _write_cache(cache_file, data)
    return parsed


def _parse_toml(text: str) -> dict[str, Any]:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python < 3.11
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"not valid TOML ({exc})") from None


# -- the parsed table in the cache ------------------------------------------------------------
# tomllib's parse costs ~25 M instructions, more than the rest of loading the table; the JSON of
# the same data loads in C. Keyed by the sha256 of the file's text (an edited table makes
# a new key) and this format number; what is read back goes through parse_table like a fresh
# parse, and one that fails it is parsed again from the TOML (abilist.py keeps its tables alike).
_CACHE_FORMAT = 1


def _cache_file(text: str) -> Path | None:
    import hashlib

    from .paths import cache_dir

    key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    try:
        return cache_dir("platforms") / f"{key}-v{_CACHE_FORMAT}.json"
    except (OSError, RuntimeError):  # no writable cache, or no home for one: parse every time
        return None


def _cached_data(cache_file: Path | None) -> dict[str, Any] | None:
    if cache_file is None:
        return None
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable or not JSON: made again
        return None
    return cached if isinstance(cached, dict) else None


def _write_cache(cache_file: Path, data: dict[str, Any]) -> None:
    """TOML's own types (dates) have no JSON form; a table with one is simply not cached."""
    from .files import write_atomically

    try:
        text = json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    try:  # a reader never sees half a file; a cache that cannot be written is no error
        write_atomically(cache_file, text)
    except BadInput:
        pass


def presets() -> tuple[Platform, ...]:
    return table().platforms


def _one(text: str, what: str = "--glibc") -> Platform:
    key = text.strip().lower()
    found = table().by_name.get(key)
    if found is not None:
        return found
    if _BARE_GLIBC.match(key):
        version = GlibcVersion.parse(key)
        return Platform(
            name=f"glibc-{version}",
            what=f"any system with glibc {version}",
            glibc=version,
            bare=True,
        )
    import difflib  # only for this message

    close = difflib.get_close_matches(key, list(table().by_name), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see `build.py platforms` for the list"
    raise UsageError(
        f"{what}: unknown platform {text.strip()!r}: {hint} (or give a glibc version, e.g. 2.17)"
    )


def _lowest(values: list[Any]) -> Any:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def strictest(platforms: list[Platform]) -> Platform:
    """The platform a plugin must satisfy to load on all of `platforms`: lowest glibc, kernel,
    ISA level and C++ ceilings. A kernel one preset does not promise (a container runtime runs
    on the host's) is taken from the others; C++ ceilings only when every preset knows them, else
    none, so that the defaults for the lowest glibc apply (a known ceiling of a newer preset
    would be too lax for one whose ceilings are unknown). Base libraries: the intersection of
    the known lists (a soname outside one of them is missing on that preset's systems)."""
    if len(platforms) == 1:
        return platforms[0]
    known_cxx = list(platforms) if all(p.cxx for p in platforms) else []
    cxx = tuple(
        (ns, low)
        for ns in CXX_NAMESPACES
        if (low := _lowest([p.cxx_ceiling(ns) for p in known_cxx])) is not None
    )
    arches = sorted({arch for p in known_cxx for arch, _ in p.cxx_arch})
    cxx_arch = tuple(
        (
            arch,
            tuple(
                (ns, low)
                for ns in CXX_NAMESPACES
                if (low := _lowest([p.cxx_ceiling(ns, arch) for p in known_cxx])) is not None
            ),
        )
        for arch in arches
    )
    names = tuple(p.name for p in platforms)
    known_libraries = [p.libraries for p in platforms if p.libraries is not None]
    return Platform(
        name=",".join(names),
        what="the strictest of " + ", ".join(names),
        glibc=min(p.glibc for p in platforms),
        kernel=_lowest([p.kernel for p in platforms]),
        isa=min(p.isa for p in platforms),
        cxx=cxx,
        cxx_arch=cxx_arch,
        sources=tuple((f"{p.name}:{fact}", url) for p in platforms for fact, url in p.sources),
        members=names,
        libraries=frozenset.intersection(*known_libraries) if known_libraries else None,
        libraries_of=tuple(name for p in platforms for name in p.libraries_of),
    )


def resolve(text: str, *, what: str = "--glibc") -> Platform:
    """`centos-7`, `bionic`, `2.17`, or `centos-7,steam-sniper` -> the platform to build for."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise UsageError(
            f"{what} is empty; give a platform name (see `build.py platforms`) "
            "or a glibc version, e.g. 2.17"
        )
    chosen: list[Platform] = []
    for part in parts:
        platform = _one(part, what)
        if platform not in chosen:
            chosen.append(platform)
    return strictest(chosen)


def each(text: str, *, what: str = "--presets") -> tuple[Platform, ...]:
    """`centos-7,debian-10` -> each preset named (not their combination), in order."""
    chosen = [_one(part, what) for part in text.split(",") if part.strip()]
    if not chosen:
        raise UsageError(f"{what} is empty; give platform names (see `build.py platforms`)")
    return tuple(dict.fromkeys(chosen))


def render_text(platforms: tuple[Platform, ...], *, with_sources: bool = False) -> str:
    """The table `build.py platforms` prints: plain aligned columns, readable when piped."""
    header = ("NAME", "GLIBC", "KERNEL", "ISA", *CXX_NAMESPACES, "WHAT (aliases)")
    rows: list[tuple[str, ...]] = [header]
    for p in platforms:
        aliases = f" ({', '.join(p.aliases)})" if p.aliases else ""
        aliases += "".join(
            f" [{arch.split('-')[0]}: " + ", ".join(f"{ns} {value}" for ns, value in nodes) + "]"
            for arch, nodes in p.cxx_arch
        )
        rows.append(
            (
                p.name,
                str(p.glibc),
                str(p.kernel) if p.kernel else "-",
                str(p.isa),
                *(str(v) if (v := p.cxx_ceiling(ns)) else "-" for ns in CXX_NAMESPACES),
                p.what + aliases,
            )
        )
    widths = [max(len(row[col]) for row in rows) for col in range(len(header) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if with_sources and index:
            platform = platforms[index - 1]
            for fact, url in platform.sources:
                lines.append(f"    {fact}: {url}")
    notes = [
        "-: not known or not promised (a container runtime runs on the host's kernel); "
        "the C++ ceilings then default to those of the glibc (policy.json)."
    ]
    if not with_sources:
        notes.append("Sources of each fact: `build.py platforms --sources` or `--json`.")
    return "\n".join([*lines, "", *notes])
