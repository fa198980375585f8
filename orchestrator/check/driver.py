"""Run every rule family over each file and make its report; the lowest glibc a file loads
on is the highest of its rules' requirements."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Hashable, Iterable
from pathlib import Path

from .. import abilist
from ..elffile import ElfError, ElfFile, open_elf
from ..errors import BadInput
from ..glibc import OLDEST_GLIBC, GlibcVersion, require_for_check
from ..loads_on import LoadsOn, Needs, loads_on
from ..platforms import Platform
from ..syscalls import KernelVersion
from ..targets import TARGETS, Target, by_elf_machine
from .discover import collect
from .policy import Policy, load_policy, with_platform_cxx
from .report import (
    NOTE,
    VIOLATION,
    WARNING,
    Bounded,
    FileReport,
    Finding,
    InputError,
    Report,
    Requirement,
    clip,
    lowest_glibc,
)
from .rules.context import Context, Item
from .rules.existence import check_existence
from .rules.identity import arch_matches, check_file_type, check_identity, is_dynamic_object
from .rules.kernel import IsaNeed, KernelNeed, check_kernel
from .rules.loader import check_loader_hazards
from .rules.needed import check_needed
from .rules.versions import check_version_needs, other_version_needs, required_versions


class Unsupported(Exception):
    """An ELF file for an architecture without a glibc target here: cannot be judged."""


UNSUPPORTED = (
    "{bits}-bit {machine} file: not an architecture with a glibc target here "
    "({known}); pass --target to check it against one anyway"
)


def read_host_symbols(path: Path) -> frozenset[str]:
    """One symbol per line; `#` starts a comment; blank lines are skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        raise BadInput(f"--host-symbols {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"--host-symbols {path}: cannot read it ({exc.strerror})") from None
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(name for name in names if name)


def parse_host_libraries(text: str) -> frozenset[str]:
    """`--host-libraries libm.so.6,libdl.so.2`: the sonames the host process has loaded before
    it loads the checked files (comma-separated)."""
    names = [name.strip() for name in text.split(",")]
    bad = next((name for name in names if not name or "/" in name or " " in name), None)
    if bad is not None:
        raise BadInput(
            f"--host-libraries {text[:200]!r}: {bad!r} is not a soname; give "
            "comma-separated sonames such as libm.so.6,libdl.so.2"
        )
    return frozenset(names)


def file_target(elf: ElfFile, target: Target | None) -> Target:
    """The target to judge the file against: the one asked for, else the file's own."""
    if target is not None:
        return target
    own = by_elf_machine(elf.machine)
    if own is not None and elf.machine == "EM_X86_64" and not elf.is64:
        own = None  # x32
    if own is None:
        known = ", ".join(sorted({t.arch for t in TARGETS.values()}))
        raise Unsupported(UNSUPPORTED.format(bits=elf.bits, machine=elf.machine, known=known))
    return own


def check_file(
    elf: ElfFile,
    shown: str,
    glibc: GlibcVersion,
    target: Target | None,
    host_symbols: frozenset[str],
    policy: Policy,
    contexts: dict[tuple[str, bool], Context] | None = None,
    *,
    strict: bool = False,
    host_libraries: frozenset[str] | None = None,
    platform: Platform | None = None,
    kernel: KernelVersion | None = None,
    presets: tuple[Platform, ...] = (),
    scan_code: bool = False,
    base_policy: Policy | None = None,
    matrices: dict[Hashable, LoadsOn] | None = None,
) -> FileReport:
    """Every rule family over one file, in report order. `contexts`: the contexts of earlier
    files of the same run, to reuse. `strict`, `host_libraries`: see Context. `platform`,
    `kernel`: the preset and kernel floor judged (rules/kernel.py); `presets`: those of the
    loads-on matrix (judged with `base_policy`'s C++ defaults); `scan_code`: read the code
    for system call sites; `matrices`: the matrices of earlier files of the same run, by
    `Needs.key`, to reuse."""
    target = file_target(elf, target)
    matches = arch_matches(elf, target)
    ctx = None if contexts is None else contexts.get((target.rust, matches))
    if ctx is None:
        ctx = Context.make(
            target=target,
            glibc=glibc,
            policy=policy,
            table=abilist.symbol_table(target.zig) if matches else None,
            host_symbols=host_symbols,
            strict=strict,
            host_libraries=host_libraries,
            kernel=kernel if kernel is not None else (platform.kernel if platform else None),
            isa=platform.isa.level if platform else None,
            platform_name=platform.name if platform else None,
            scan_code=scan_code,
            floor_from_platform=kernel is None
            and platform is not None
            and platform.kernel is not None,
            base_libraries=platform.libraries if platform else None,
            base_system=", ".join(platform.libraries_of) if platform else None,
        )
        if contexts is not None:
            contexts[(target.rust, matches)] = ctx
    families: list[Iterable[Item]] = [check_identity(elf, ctx), check_file_type(elf, ctx)]
    required: dict[str, str] = {}
    needed: list[str] = []
    others: dict[str, list[str]] = {}
    dynamic = is_dynamic_object(elf)
    if dynamic:
        needed = [clip(name, Bounded.NAME) for name in elf.needed]
        required = bounded_required(required_versions(elf))
        others = bounded_others(other_version_needs(elf, ctx))
        if matches:
            families.append(check_existence(elf, ctx))
        families += [
            check_version_needs(elf, ctx),
            check_needed(elf, ctx),
            check_loader_hazards(elf, ctx),
        ]
    findings = Bounded()
    requirements: set[Requirement] = set()  # a crafted file repeats them by the million
    unresolved: list[str] = []
    kernel_needs: dict[str, KernelVersion] = {}
    isa_level: int | None = None
    if dynamic and matches:
        for need in check_kernel(elf, ctx):
            if isinstance(need, KernelNeed):
                if not need.fallback:
                    kernel_needs[need.call] = need.kernel
            elif isinstance(need, IsaNeed):
                isa_level = need.level
            else:
                findings.add(need)
    for family in families:
        for item in family:
            if isinstance(item, Finding):
                findings.add(item)
            elif isinstance(item, Requirement):
                requirements.add(item)
            else:
                unresolved.extend(item.names)
    lowest = lowest_glibc(list(requirements), OLDEST_GLIBC)
    listed, unlisted = Bounded.names(unresolved)
    matrix = None
    if presets:
        defaults = base_policy or policy
        zig = target.zig
        needs = Needs(
            min_glibc=lowest, cxx=required, kernel=kernel_needs, isa_level=isa_level, zig=zig
        )
        key = needs.key()
        matrix = None if matrices is None else matrices.get(key)
        if matrix is None:
            matrix = loads_on(
                needs,
                presets,
                lambda glibc: {
                    ns: ceiling
                    for ns, (ceiling, _reference) in defaults.cxx_runtime.ceilings_for(
                        glibc, zig
                    ).items()
                },
                system_calls_read=scan_code,
            )
            if matrices is not None:
                matrices[key] = matrix
    return FileReport(
        path=shown,
        arch=target.arch,
        required=required,
        violations=findings.findings(VIOLATION),
        warnings=findings.findings(WARNING),
        unresolved=listed,
        needed=needed,
        min_glibc=None if lowest is None else str(lowest),
        other_version_needs=others,
        findings_omitted=findings.omitted,
        unresolved_omitted=unlisted,
        notes=findings.findings(NOTE),
        kernel_needs={call: str(first) for call, first in sorted(kernel_needs.items())},
        isa_level=isa_level,
        loads_on=matrix,
    )


def bounded_required(required: dict[str, str]) -> dict[str, str]:
    """At most Bounded.GROUPS namespaces, clipped: a crafted file can multiply them."""
    name = Bounded.NAME
    return {
        clip(ns, name): clip(version, name)
        for ns, version in itertools.islice(required.items(), Bounded.GROUPS)
    }


def bounded_others(others: dict[str, list[str]]) -> dict[str, list[str]]:
    """At most Bounded.GROUPS libraries with Bounded.PER_GROUP versions each, clipped."""
    name = Bounded.NAME
    return {
        clip(file, name): [clip(version, name) for version in versions[: Bounded.PER_GROUP]]
        for file, versions in itertools.islice(others.items(), Bounded.GROUPS)
    }


def check_paths(
    paths: list[Path],
    glibc: GlibcVersion,
    target: Target | None = None,
    host_symbols: frozenset[str] = frozenset(),
    policy_path: Path | None = None,
    *,
    strict: bool = False,
    host_libraries: frozenset[str] | None = None,
    platform: Platform | None = None,
    kernel: KernelVersion | None = None,
    loads_on_presets: tuple[Platform, ...] | None = None,
    scan_code: bool | None = None,
) -> Report:
    """Check every ELF file named or found under `paths` against `glibc`.

    `target`: the expected architecture (None: each file's own). `strict`: a glibc symbol
    whose library is not in DT_NEEDED is a violation (else a warning: the file loads in a
    host that already has that library loaded); `host_libraries`: the sonames the host has
    loaded, which settles that question. `platform` (platforms.resolve): its C++ ceilings
    replace the policy's defaults, its kernel floor and ISA level are judged (`kernel`
    overrides the floor). `loads_on_presets`: the presets of the loads-on matrix (None: the
    whole table). `scan_code`: read the code for system call sites (rules/kernel.py; None:
    when there is a kernel floor), which the matrix's kernel reasons need. Raises only
    for bad options (UsageError/BadInput); a bad file goes into `Report.errors`.
    """
    base_policy = load_policy(policy_path)
    policy = with_platform_cxx(base_policy, platform) if platform else base_policy
    require_for_check(glibc)
    if loads_on_presets is None:
        from ..platforms import presets as all_presets

        loads_on_presets = all_presets()
    if scan_code is None:
        scan_code = kernel is not None or (platform is not None and platform.kernel is not None)
    files: list[FileReport] = []
    errors: list[InputError] = []
    done: dict[tuple[int, int, int, int], FileReport] = {}  # hard links are checked once
    contexts: dict[tuple[str, bool], Context] = {}
    matrices: dict[Hashable, LoadsOn] = {}
    for shown, path in collect(paths, errors):
        try:
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if identity in done:
                same = done[identity]
                files.append(
                    dataclasses.replace(
                        same,
                        path=shown,
                        required=dict(same.required),
                        violations=list(same.violations),
                        warnings=list(same.warnings),
                        notes=list(same.notes),
                        kernel_needs=dict(same.kernel_needs),
                        unresolved=list(same.unresolved),
                        needed=list(same.needed),
                        other_version_needs={
                            k: list(v) for k, v in same.other_version_needs.items()
                        },
                    )
                )
                continue
            with open_elf(path) as elf:
                elf.require_intact()
                files.append(
                    check_file(
                        elf,
                        shown,
                        glibc,
                        target,
                        host_symbols,
                        policy,
                        contexts,
                        strict=strict,
                        host_libraries=host_libraries,
                        platform=platform,
                        kernel=kernel,
                        presets=loads_on_presets,
                        scan_code=scan_code,
                        base_policy=base_policy,
                        matrices=matrices,
                    )
                )
            done[identity] = files[-1]
        except (ElfError, Unsupported) as exc:
            errors.append(InputError(shown, str(exc)))
        except OSError as exc:
            errors.append(InputError(shown, f"cannot read it ({exc.strerror or exc})"))
        except ValueError as exc:  # mmap of an odd file; never a traceback for a bad input
            errors.append(InputError(shown, f"cannot read it ({exc})"))
    return Report(glibc, files, errors)
