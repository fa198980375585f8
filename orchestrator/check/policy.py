"""The checker's data: resources/policy.json, with a user's `--policy FILE` merged over it,
read once into typed, immutable records (named tuples: a dataclass costs ~0.5 ms to
define, and `check` starts once per CI step). Every threshold a rule compares with is here.

A bad override fails before any file is read, with one line naming the key (exit 2), as
auditwheel validates its manylinux policy when it loads it (pypa/auditwheel
src/auditwheel/policy/__init__.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from ..errors import BadInput, UsageError
from ..glibc import GlibcVersion

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "resources" / "policy.json"

T = TypeVar("T")
_TYPE_NAMES: dict[type, str] = {
    dict: "a JSON object",
    list: "a JSON array",
    str: "a string",
    int: "an integer",
}


class Marker(NamedTuple):
    """A GLIBC_ABI_* version node: a loader feature, not symbols."""

    glibc: GlibcVersion  # the first release that defines it
    why: str
    fix: str


class CxxCeiling(NamedTuple):
    """The C++ runtime of the reference distro of a glibc: highest version per namespace."""

    glibc: GlibcVersion
    reference: str  # "CentOS 7 (GCC 4.8.5)"
    versions: Mapping[str, GlibcVersion]  # "GLIBCXX" -> 3.4.19
    per_arch: Mapping[str, Mapping[str, GlibcVersion]]  # zig target -> overrides


class CxxRuntime(NamedTuple):
    namespaces: Mapping[str, str]  # "GLIBCXX" -> "libstdc++.so.6"
    ceilings: tuple[CxxCeiling, ...]  # ascending by glibc
    # The choice per (target glibc, zig target), filled as asked: once per version need.
    memo: dict[tuple[GlibcVersion, str], dict[str, tuple[GlibcVersion, str]]]

    def ceilings_for(self, glibc: GlibcVersion, zig: str) -> dict[str, tuple[GlibcVersion, str]]:
        """namespace -> (highest version allowed, reference distro): the entry with the greatest
        glibc <= the target applies (the oldest one below all of them)."""
        known = self.memo.get((glibc, zig))
        if known is None:
            known = self.memo[(glibc, zig)] = self._choose(glibc, zig)
        return known

    def _choose(self, glibc: GlibcVersion, zig: str) -> dict[str, tuple[GlibcVersion, str]]:
        chosen: CxxCeiling | None = None
        for entry in self.ceilings:
            if chosen is None or entry.glibc <= glibc:
                chosen = entry
        if chosen is None:
            return {}
        values = dict(chosen.versions)
        values.update(chosen.per_arch.get(zig, {}))
        return {ns: (values[ns], chosen.reference) for ns in self.namespaces if ns in values}


class LoaderPolicy(NamedTuple):
    """glibc releases whose loader changed what it accepts, and loader limits."""

    relr_glibc: GlibcVersion
    execstack_refused_from: GlibcVersion
    stack_not_executable_by_default: frozenset[str]
    pie_dlopen_refused_from: GlibcVersion
    gnu_hash_from: GlibcVersion
    static_tls_surplus_bytes: int
    tlsdesc_fixed_in: GlibcVersion
    x86_64_plt_addend_ignored_from: GlibcVersion
    x86_isa_level_refused_from: GlibcVersion
    page_size_64k_targets: frozenset[str]
    abi_versions: Mapping[str, GlibcVersion]  # EI_ABIVERSION (as text) -> first glibc


class NeededPolicy(NamedTuple):
    allowed: frozenset[str]
    forbidden: tuple[tuple[str, str], ...]  # (fnmatch pattern, why), first match wins


class MergedIntoLibc(NamedTuple):
    glibc: GlibcVersion
    sonames: frozenset[str]


class Policy(NamedTuple):
    glibc_libraries: Mapping[str, str]  # zig's library name -> soname
    loaders: Mapping[str, str]  # zig target -> ld.so soname
    not_in_database: frozenset[str]  # glibc sonames zig's database does not cover
    merged_into_libc: MergedIntoLibc
    markers: Mapping[str, Marker]
    cxx_runtime: CxxRuntime
    needed: NeededPolicy
    loader: LoaderPolicy
    symbol_hints: Mapping[str, str]

    def glibc_sonames(self, zig: str) -> dict[str, str]:
        """zig's library name -> soname on target `zig`, the loader ("ld") included."""
        libs = dict(self.glibc_libraries)
        loader = self.loaders.get(zig)
        if loader:
            libs["ld"] = loader
        return libs


# -- loading ---------------------------------------------------------------------------------
def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key, everything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=8)
def load_policy(path: Path | None = None) -> Policy:
    """policy.json, with `path` (a user's --policy FILE) merged over it."""
    data = json.loads(DEFAULT_POLICY.read_text())
    if path is None:
        return parse_policy(data)
    try:
        override = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"--policy {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"--policy {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise BadInput(f"--policy {path}: not valid JSON ({exc})") from None
    if not isinstance(override, dict):
        raise BadInput(
            f"--policy {path}: must hold one JSON object (see {DEFAULT_POLICY} for the keys)"
        )
    try:
        return parse_policy(merge(data, override))
    except UsageError as exc:
        raise BadInput(f"--policy {path}: {exc.message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput(
            f"--policy {path}: a key has the wrong shape ({type(exc).__name__}: "
            f"{exc}); compare with {DEFAULT_POLICY}"
        ) from None


def _typed(value: object, kind: type[T], where: str) -> T:
    """`value` if it is a `kind` (bool is not an int here), else UsageError naming the key."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(
            f"{where} must be {_TYPE_NAMES[kind]}, not {json.dumps(value)[:60]}; "
            f"compare with {DEFAULT_POLICY}"
        )
    return value


def _item(table: dict[str, Any], key: str, kind: type[T], where: str) -> T:
    """table[key], which must exist and be a `kind`."""
    if key not in table:
        raise UsageError(f"{where}.{key} is missing; compare with {DEFAULT_POLICY}")
    return _typed(table[key], kind, f"{where}.{key}")


def _strings(value: object, where: str) -> list[str]:
    items: list[object] = _typed(value, list, where)
    return [_typed(item, str, f"{where}[{index}]") for index, item in enumerate(items)]


def _string_map(value: object, where: str) -> dict[str, str]:
    table: dict[str, object] = _typed(value, dict, where)
    return {key: _typed(item, str, f"{where}.{key}") for key, item in table.items()}


def _glibc(table: dict[str, Any], key: str, where: str) -> GlibcVersion:
    return GlibcVersion.parse(_item(table, key, str, where), what=f"{where}.{key}")


def _dotted(value: str, where: str) -> GlibcVersion:
    try:
        return GlibcVersion.of(value)
    except ValueError:
        raise UsageError(f"{where} {value!r} is not a version such as 3.4.19") from None


def _frozen(table: Mapping[str, T]) -> Mapping[str, T]:
    return MappingProxyType(dict(table))


def _data_keys(table: Mapping[str, T]) -> dict[str, T]:
    """The entries of a table without its `_about` notes."""
    return {key: value for key, value in table.items() if not key.startswith("_")}


def _cxx_runtime(policy: dict[str, Any]) -> CxxRuntime:
    runtime = _item(policy, "cxx_runtime", dict, "policy")
    namespaces = _string_map(
        _item(runtime, "namespaces", dict, "cxx_runtime"), "cxx_runtime.namespaces"
    )
    ceilings: list[CxxCeiling] = []
    for index, entry in enumerate(_item(runtime, "ceilings", list, "cxx_runtime")):
        where = f"cxx_runtime.ceilings[{index}]"
        _typed(entry, dict, where)
        glibc = _glibc(entry, "glibc", where)
        reference = (
            _item(entry, "reference", str, where)
            if "reference" in entry
            else f"glibc {entry['glibc']}"
        )
        per_arch = _item(entry, "arch", dict, where) if "arch" in entry else {}
        tables: list[tuple[str, dict[str, Any]]] = [(where, entry)] + [
            (f"{where}.arch.{arch}", _typed(values, dict, f"{where}.arch.{arch}"))
            for arch, values in per_arch.items()
        ]
        parsed = [
            {
                ns: _dotted(_item(values, ns, str, place), f"{place}.{ns}")
                for ns in namespaces
                if ns in values
            }
            for place, values in tables
        ]
        ceilings.append(
            CxxCeiling(
                glibc=glibc,
                reference=reference,
                versions=_frozen(parsed[0]),
                per_arch=_frozen(
                    {arch: _frozen(values) for arch, values in zip(per_arch, parsed[1:])}
                ),
            )
        )
    ceilings.sort(key=lambda ceiling: ceiling.glibc)
    return CxxRuntime(namespaces=_frozen(namespaces), ceilings=tuple(ceilings), memo={})


def _markers(policy: dict[str, Any]) -> dict[str, Marker]:
    markers = {}
    for name, marker in _data_keys(_item(policy, "markers", dict, "policy")).items():
        where = f"markers.{name}"
        _typed(marker, dict, where)
        markers[name] = Marker(
            glibc=_glibc(marker, "glibc", where),
            why=_item(marker, "why", str, where),
            fix=_item(marker, "fix", str, where),
        )
    return markers


def _loader(policy: dict[str, Any]) -> LoaderPolicy:
    loader = _item(policy, "loader", dict, "policy")
    first = {
        key: _glibc(loader, key, "loader")
        for key in (
            "relr_glibc",
            "execstack_refused_from",
            "pie_dlopen_refused_from",
            "gnu_hash_from",
            "tlsdesc_fixed_in",
            "x86_64_plt_addend_ignored_from",
            "x86_isa_level_refused_from",
        )
    }
    surplus = _item(loader, "static_tls_surplus_bytes", int, "loader")
    if surplus < 0:
        raise UsageError("loader.static_tls_surplus_bytes must not be negative")
    lists = {
        key: frozenset(_strings(_item(loader, key, list, "loader"), f"loader.{key}"))
        for key in ("stack_not_executable_by_default", "page_size_64k_targets")
    }
    abi_versions = {
        key: GlibcVersion.parse(value, what=f"loader.abi_versions.{key}")
        for key, value in _data_keys(
            _string_map(_item(loader, "abi_versions", dict, "loader"), "loader.abi_versions")
        ).items()
    }
    return LoaderPolicy(
        relr_glibc=first["relr_glibc"],
        execstack_refused_from=first["execstack_refused_from"],
        stack_not_executable_by_default=lists["stack_not_executable_by_default"],
        pie_dlopen_refused_from=first["pie_dlopen_refused_from"],
        gnu_hash_from=first["gnu_hash_from"],
        static_tls_surplus_bytes=surplus,
        tlsdesc_fixed_in=first["tlsdesc_fixed_in"],
        x86_64_plt_addend_ignored_from=first["x86_64_plt_addend_ignored_from"],
        x86_isa_level_refused_from=first["x86_isa_level_refused_from"],
        page_size_64k_targets=lists["page_size_64k_targets"],
        abi_versions=_frozen(abi_versions),
    )


def parse_policy(policy: dict[str, Any]) -> Policy:
    """Check the type of every key the checker reads and build the typed policy; a bad value
    raises UsageError naming the key."""
    cxx_runtime = _cxx_runtime(policy)
    markers = _markers(policy)
    loader = _loader(policy)
    glibc_libraries = _string_map(
        _item(policy, "glibc_libraries", dict, "policy"), "glibc_libraries"
    )
    loaders = _string_map(_item(policy, "loaders", dict, "policy"), "loaders")
    not_in_db = _item(policy, "glibc_libraries_not_in_database", dict, "policy")
    not_in_database = _strings(
        _item(not_in_db, "sonames", list, "glibc_libraries_not_in_database"),
        "glibc_libraries_not_in_database.sonames",
    )
    needed = _item(policy, "needed", dict, "policy")
    allowed = _strings(_item(needed, "allowed", list, "needed"), "needed.allowed")
    forbidden = _string_map(_item(needed, "forbidden", dict, "needed"), "needed.forbidden")
    symbol_hints = _string_map(_item(policy, "symbol_hints", dict, "policy"), "symbol_hints")
    merged = _item(policy, "merged_into_libc", dict, "policy")
    merged_glibc = _glibc(merged, "glibc", "merged_into_libc")
    merged_sonames = _strings(
        _item(merged, "sonames", list, "merged_into_libc"), "merged_into_libc.sonames"
    )
    return Policy(
        glibc_libraries=_frozen(_data_keys(glibc_libraries)),
        loaders=_frozen(loaders),
        not_in_database=frozenset(not_in_database),
        merged_into_libc=MergedIntoLibc(glibc=merged_glibc, sonames=frozenset(merged_sonames)),
        markers=_frozen(markers),
        cxx_runtime=cxx_runtime,
        needed=NeededPolicy(
            allowed=frozenset(allowed), forbidden=tuple(_data_keys(forbidden).items())
        ),
        loader=loader,
        symbol_hints=_frozen(symbol_hints),
    )


def with_platform_cxx(policy: Policy, platform: Any) -> Policy:
    """`policy` with the C++ runtime ceilings of `platform` (platforms.Platform) in place of
    the defaults: the platform table owns each preset's ceilings; policy.json keeps the
    defaults for a bare glibc version. A preset without ceilings keeps the defaults."""
    if not platform.cxx:
        return policy
    namespaces = policy.cxx_runtime.namespaces
    versions = {ns: GlibcVersion.of(str(node)) for ns, node in platform.cxx if ns in namespaces}
    per_arch = {
        arch: _frozen({ns: GlibcVersion.of(str(node)) for ns, node in nodes if ns in namespaces})
        for arch, nodes in platform.cxx_arch
    }
    ceiling = CxxCeiling(
        glibc=platform.glibc,
        reference=f"{platform.name} ({platform.what})",
        versions=_frozen(versions),
        per_arch=_frozen(per_arch),
    )
    return policy._replace(
        cxx_runtime=CxxRuntime(namespaces=namespaces, ceilings=(ceiling,), memo={})
    )
