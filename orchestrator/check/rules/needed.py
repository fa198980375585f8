"""DT_NEEDED entries: paths (the loader opens exactly that path, elf/dl-load.c
`_dl_map_object`), forbidden libraries (policy `needed.forbidden`), and libraries outside
glibc and the C/C++ runtime, which every target machine must have (a warning)."""

from __future__ import annotations

import fnmatch

from ...elffile import ElfFile
from ..report import WARNING, Finding
from .context import Context, Items

TEXT = {
    "path": ("DT_NEEDED {name!r} contains a '/': the loader opens exactly that path, which will "
             "not exist on other machines (old ld.bfd writes it when a library without DT_SONAME "
             "is linked by path); give the dependency a soname (-Wl,-soname,NAME) or link it "
             "with -L DIR -lNAME"),
    "forbidden": "needs {name}: {why}",
    "other": ("needs {name}, which is not part of glibc or the C/C++ runtime: it must be "
              "installed on every target machine, in a build made for glibc <= {glibc}; link it "
              "statically if you can"),
}


def check_needed(elf: ElfFile, ctx: Context) -> Items:
    rules = ctx.policy.needed
    not_in_db = ctx.policy.not_in_database
    for name in elf.needed:
        if "/" in name:
            yield Finding("path-in-needed", TEXT["path"].format(name=name), library=name)
            continue
        why = next((why for pattern, why in rules.forbidden
                    if fnmatch.fnmatchcase(name, pattern)), None)
        if why is not None:
            yield Finding("forbidden-needed", TEXT["forbidden"].format(name=name, why=why),
                          library=name)
        elif name not in rules.allowed and name not in not_in_db:
            yield Finding("needed-library", TEXT["other"].format(name=name, glibc=ctx.glibc),
                          library=name, severity=WARNING)
