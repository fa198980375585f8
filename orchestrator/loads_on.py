"""The "loads on" matrix: which platform presets a checked file satisfies, and for each other one
the ONE main reason why not.

A pure function of what the check already found (the lowest glibc, the C++ runtime needs, the
system calls made without a fallback, the x86-64 level): the check is not re-run per preset.
Reasons in order of how surely they stop the plugin: glibc (the loader refuses it), the C++
runtime (the loader refuses it), the x86-64 level (glibc refuses it on the CPUs the platform
allows), the kernel (the file loads, a call fails with ENOSYS). What it does not model: a
violation that stops the file on every glibc (an executable stack, a missing library); those are
in the check's own report.

The records are NamedTuples (cheaper to define than dataclasses, and `check` imports this module
on every run).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import NamedTuple

from .glibc import GlibcVersion
from .platforms import CXX_NAMESPACES, Platform
from .syscalls import KernelVersion

CXX_RUNTIME = {"GLIBCXX": "libstdc++", "CXXABI": "libstdc++", "GCC": "libgcc_s"}

# glibc -> namespace -> ceiling: the defaults (policy.json) for a preset without its own.
CxxDefaults = Callable[[GlibcVersion], Mapping[str, GlibcVersion]]


class LoadsOn(NamedTuple):
    ok: tuple[str, ...]
    not_on: tuple[tuple[str, str], ...]  # (preset, reason), in table order
    # Whether the code was read for system call sites (else the kernel reasons are only
    # from imported glibc wrappers).
    system_calls_read: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "ok": list(self.ok),
            "not": dict(self.not_on),
            "system_calls_read": self.system_calls_read,
        }


class Needs(NamedTuple):
    """What a file needs, as the check found it."""

    min_glibc: GlibcVersion | None  # None: no glibc loads it
    cxx: Mapping[str, str]  # namespace (GLIBCXX/CXXABI/GCC, others unused) -> highest node
    kernel: Mapping[str, KernelVersion]  # system call without a fallback -> first kernel
    isa_level: int | None  # x86-64 level asked for; None: not x86-64
    zig: str | None = None  # zig target, for per-architecture C++ ceilings

    def key(self) -> Hashable:
        """Equal for needs that every preset judges alike (what `reason` reads: version needs
        outside the C++ runtime, OPENSSL_3.0, play no part): most libraries of a folder share
        a few, so a run computes each matrix once (driver.check_paths)."""
        return (
            self.min_glibc,
            _runtime_needs(self.cxx),
            tuple(sorted(self.kernel.items())) if self.kernel else (),
            self.isa_level,
            self.zig,
        )


def reason(needs: Needs, platform: Platform, cxx_defaults: CxxDefaults | None = None) -> str | None:
    """Why the file does not load (or run) on `platform`; None: it does."""
    return _reason(needs, _runtime_needs(needs.cxx), platform, cxx_defaults)


def _runtime_needs(cxx: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(namespace, node) of the C++ runtime among all the file's version needs, in the order
    they are judged: found once for the whole matrix."""
    if cxx.keys().isdisjoint(CXX_NAMESPACES):
        return ()  # most libraries: no C++ runtime at all
    return tuple([(ns, cxx[ns]) for ns in CXX_NAMESPACES if ns in cxx])


def _reason(
    needs: Needs,
    runtime: tuple[tuple[str, str], ...],
    platform: Platform,
    cxx_defaults: CxxDefaults | None,
) -> str | None:
    if needs.min_glibc is None:
        return "no glibc loads it"
    if needs.min_glibc > platform.glibc:
        return f"needs glibc {needs.min_glibc}"
    if runtime:
        why = _cxx_reason(runtime, needs.zig, platform, cxx_defaults)
        if why is not None:
            return why
    if needs.isa_level is not None and needs.isa_level > platform.isa.level:
        return f"x86-64-v{needs.isa_level} code"
    if platform.kernel is not None and needs.kernel:
        newer = sorted(
            ((first, call) for call, first in needs.kernel.items() if first > platform.kernel),
            reverse=True,
        )
        if newer:
            first, call = newer[0]
            more = f" (+{len(newer) - 1} more)" if len(newer) > 1 else ""
            return f"{call} (Linux {first}) without fallback on {platform.kernel}{more}"
    return None


def _cxx_reason(
    runtime: tuple[tuple[str, str], ...],
    zig: str | None,
    platform: Platform,
    cxx_defaults: CxxDefaults | None,
) -> str | None:
    """The first C++ runtime need above the platform's ceiling: its own, else (a preset without
    ceilings) the defaults for its glibc, asked for only when a need has to be judged."""
    defaults: Mapping[str, GlibcVersion] | None = None
    for ns, need in runtime:
        ceiling = platform.cxx_ceiling(ns, zig)
        if ceiling is None and cxx_defaults is not None and not platform.cxx:
            if defaults is None:
                defaults = cxx_defaults(platform.glibc)
            ceiling = defaults.get(ns)
        if ceiling is not None and GlibcVersion.of(need) > ceiling:
            return f"{ns}_{need} above its {CXX_RUNTIME[ns]} ({ns}_{ceiling})"
    return None


def loads_on(
    needs: Needs,
    presets: Iterable[Platform],
    cxx_defaults: CxxDefaults | None = None,
    *,
    system_calls_read: bool = True,
) -> LoadsOn:
    ok: list[str] = []
    not_on: list[tuple[str, str]] = []
    runtime = _runtime_needs(needs.cxx)
    for platform in presets:
        why = _reason(needs, runtime, platform, cxx_defaults)
        if why is None:
            ok.append(platform.name)
        else:
            not_on.append((platform.name, why))
    return LoadsOn(ok=tuple(ok), not_on=tuple(not_on), system_calls_read=system_calls_read)


def text_lines(matrix: LoadsOn, indent: str = "     ") -> list[str]:
    """One line naming the presets it loads on, then one per reason for the others."""
    lines = _wrapped(
        f"{indent}loads on: " + (", ".join(matrix.ok) if matrix.ok else "none of them"),
        indent + "  ",
    )
    grouped: dict[str, list[str]] = {}
    for name, why in matrix.not_on:
        grouped.setdefault(why, []).append(name)
    for why, names in grouped.items():
        lines.extend(_wrapped(f"{indent}not on {', '.join(names)}: {why}", indent + "  "))
    return lines


def _wrapped(line: str, indent: str, width: int = 100) -> list[str]:
    out: list[str] = []
    while len(line) > width:
        cut = line.rfind(" ", len(indent) + 1, width)
        if cut <= len(indent):
            break
        out.append(line[:cut])
        line = indent + line[cut + 1 :]
    return [*out, line]
