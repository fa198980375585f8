"""GLIBCXX/CXXABI/GCC version needs against the C++ runtime (libstdc++.so.6, libgcc_s.so.1)
of the reference distro of the target glibc (policy `cxx_runtime`, from auditwheel's
manylinux policy). A need above it fails in elf/dl-version.c like a glibc one."""

from __future__ import annotations

from ...elffile import VersionNeed
from ...glibc import GlibcVersion
from ..report import Finding
from .context import Context, Items, names_of, unused_need

TEXT = {
    "too-new": (
        "needs {runtime} {ns} {version}, but {reference}, the reference for glibc "
        "{glibc}, has at most {ns}_{ceiling}: the loader fails with \"version `{node}' "
        'not found"; {fix}'
    ),
    "fix-gcc": "link libgcc statically (-static-libgcc) or build with zig (compiler-rt)",
    "fix-cxx": (
        "build the C++ code in a glibc-{glibc} image (its own libstdc++), link it with "
        "-static-libstdc++, or build with zig (static libc++)"
    ),
}


def judges(ctx: Context, namespace: str) -> bool:
    """Is `namespace` (GLIBCXX, CXXABI, GCC) one of the C++ runtime's, for this target?"""
    return namespace in ceilings(ctx)


def ceilings(ctx: Context) -> dict[str, tuple[GlibcVersion, str]]:
    return ctx.policy.cxx_runtime.ceilings_for(ctx.glibc, ctx.target.zig)


def check_cxx_need(
    ctx: Context, need: VersionNeed, namespace: str, version: str, users: list[tuple[str, bool]]
) -> Items:
    """One GLIBCXX/CXXABI/GCC need: within the reference distro's runtime, or not."""
    ceiling, reference = ceilings(ctx)[namespace]
    if GlibcVersion.of(version) <= ceiling:
        if not users:
            yield unused_need(need)
        return
    runtime = ctx.policy.cxx_runtime.namespaces.get(namespace, need.file)
    fix = TEXT["fix-gcc"] if namespace == "GCC" else TEXT["fix-cxx"].format(glibc=ctx.glibc)
    text = TEXT["too-new"].format(
        runtime=runtime,
        ns=namespace,
        version=version,
        reference=reference,
        glibc=ctx.glibc,
        ceiling=ceiling,
        node=need.name,
        fix=fix,
    )
    for name in names_of(users):
        yield Finding("cxx-too-new", text, symbol=name, version=need.name, library=need.file)
