"""DT_NEEDED entries: paths (the loader opens exactly that path, elf/dl-load.c
`_dl_map_object`), forbidden libraries (policy `needed.forbidden`), and libraries outside
glibc and the C/C++ runtime, which every target machine must have (a warning). Where a platform
preset's base system is known (the manylinux tags: PEP 599 and PEP 600's library list, kept by
auditwheel as `lib_whitelist`), a library in it is guaranteed and one outside it is named with
the preset."""

from __future__ import annotations

import fnmatch

from ...elffile import ElfFile
from ..report import WARNING, Finding
from .context import Context, Items

TEXT = {
    "path": (
        "DT_NEEDED {name!r} contains a '/': the loader opens exactly that path, which will "
        "not exist on other machines (old ld.bfd writes it when a library without DT_SONAME "
        "is linked by path); give the dependency a soname (-Wl,-soname,NAME) or link it "
        "with -L DIR -lNAME"
    ),
    "forbidden": "needs {name}: {why}",
    "outside-base": (
        "{name} is not part of {base}'s base system: every target machine must "
        "install it (link it statically if you can)"
    ),
    "other": (
        "needs {name}, which is not part of glibc or the C/C++ runtime: it must be "
        "installed on every target machine, in a build made for glibc <= {glibc}; link it "
        "statically if you can"
    ),
}


def check_needed(elf: ElfFile, ctx: Context) -> Items:
    rules = ctx.policy.needed
    not_in_db = ctx.policy.not_in_database
    for name in elf.needed:
        if "/" in name:
            yield Finding("path-in-needed", TEXT["path"].format(name=name), library=name)
            continue
        why = next(
            (why for pattern, why in rules.forbidden if fnmatch.fnmatchcase(name, pattern)), None
        )
        if why is not None:
            yield Finding(
                "forbidden-needed", TEXT["forbidden"].format(name=name, why=why), library=name
            )
        elif name in rules.allowed or name in not_in_db:
            continue
        elif ctx.base_libraries is None:
            yield Finding(
                "needed-library",
                TEXT["other"].format(name=name, glibc=ctx.glibc),
                library=name,
                severity=WARNING,
            )
        elif name not in ctx.base_libraries:
            yield Finding(
                "needed-library",
                TEXT["outside-base"].format(name=name, base=ctx.base_system or "the platform"),
                library=name,
                severity=WARNING,
            )
