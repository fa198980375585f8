"""`build.py check`: will these ELF files load with dlopen on glibc X.Y, and if not, why?

ELF reading is elffile.py, glibc's symbol database is abilist.py (zig's abilists), and the
data the rules use (ceilings, markers, hints, thresholds) is resources/policy.json, read by
policy.py. A *violation* makes the loader refuse the file (or makes it crash) on some glibc >=
the target; a *warning* is a risk that depends on the host or machine.

    discover.py  which files to check        rules/     one module per family of rules
    policy.py    the policy, typed            report.py  findings, requirements, reports
    driver.py    rules over each file         render.py  text, JSON, JUnit

`check_paths` never raises for a bad input file: it goes into `Report.errors` (exit 2).
"""

from __future__ import annotations

from .discover import ElfKind, elf_kind
from .driver import check_file, check_paths, parse_host_libraries, read_host_symbols
from .policy import DEFAULT_POLICY, Policy, load_policy
from .report import CrateRef, FileReport, Finding, InputError, Report, Requirement

__all__ = [
    "DEFAULT_POLICY",
    "CrateRef",
    "ElfKind",
    "FileReport",
    "Finding",
    "InputError",
    "Policy",
    "Report",
    "Requirement",
    "check_file",
    "check_paths",
    "elf_kind",
    "load_policy",
    "parse_host_libraries",
    "read_host_symbols",
]
