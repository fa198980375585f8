"""A Report as text (for people), JSON (for programs) and JUnit XML (for CI systems).

Findings of one kind, version, library and text are shown once, with their symbols listed;
long lines are wrapped at 100 columns.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..glibc import GlibcVersion, split_version_node
from .report import NOTE, WARNING, FileReport, Finding, Report
from .rules.context import REBUILD
from .rules.versions import TEXT

WEAK_HINT = TEXT["weak-symbol-hint"]
STD_KINDS = ("version-too-new", "symbol-too-new")  # kinds whose fix is the glibc linked against

LIST_LIMIT = 12  # names shown per line group in text before "+N more"
WIDTH = 100

GroupKey = tuple[str, "str | None", "str | None", str]


# -- JSON ------------------------------------------------------------------------------------
def finding_json(finding: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": finding.kind,
        "symbol": finding.symbol,
        "version": finding.version,
        "library": finding.library,
        "message": finding.message,
        "symbols_omitted": finding.omitted,
    }
    if finding.crates:  # provenance, when the build that made the file is known
        data["crates"] = [crate.to_json() for crate in finding.crates]
    return data


def file_json(report: FileReport) -> dict[str, Any]:
    return {
        "path": report.path,
        "ok": report.ok,
        "arch": report.arch,
        "required": report.required,
        "violations": [finding_json(f) for f in report.violations],
        "warnings": [finding_json(f) for f in report.warnings],
        "min_glibc": report.min_glibc,
        "needed": report.needed,
        "unresolved": report.unresolved,
        "other_version_needs": report.other_version_needs,
        "findings_omitted": report.findings_omitted,
        "unresolved_omitted": report.unresolved_omitted,
        "notes": [finding_json(f) for f in report.notes],
        "kernel_needs": report.kernel_needs,
        "isa_level": report.isa_level,
        "loads_on": report.loads_on.to_json() if report.loads_on else None,
    }


def report_json(report: Report) -> dict[str, Any]:
    return {
        "glibc": str(report.glibc),
        "ok": report.ok,
        "files": [file_json(f) for f in report.files],
        "errors": [e.to_json() for e in report.errors],
    }


# -- text ------------------------------------------------------------------------------------
# glibc functions Rust's standard library calls itself on Linux (library/std/src/sys/pal/unix/:
# thread.rs, fs.rs, os.rs, stack_overflow.rs, process/process_unix.rs; library/std/src/sys/
# thread_local/): found above the target, they come from linking std against a newer glibc,
# so the fix is the build, not the user's code.
RUST_STD_SYMBOLS = frozenset(
    {
        "__cxa_thread_atexit_impl",
        "__errno_location",
        "__libc_start_main",
        "__register_atfork",
        "clock_gettime",
        "copy_file_range",
        "dl_iterate_phdr",
        "dladdr",
        "dlerror",
        "dlsym",
        "fstat64",
        "fstatat64",
        "ftruncate64",
        "getauxval",
        "getrandom",
        "gettid",
        "lseek64",
        "lstat64",
        "open64",
        "posix_spawn_file_actions_addchdir_np",
        "posix_spawnp",
        "pread64",
        "pthread_attr_destroy",
        "pthread_attr_getguardsize",
        "pthread_attr_getstack",
        "pthread_attr_init",
        "pthread_attr_setstacksize",
        "pthread_create",
        "pthread_detach",
        "pthread_getattr_np",
        "pthread_getspecific",
        "pthread_join",
        "pthread_key_create",
        "pthread_key_delete",
        "pthread_self",
        "pthread_setname_np",
        "pthread_setspecific",
        "pthread_sigmask",
        "pwrite64",
        "readdir64",
        "sched_getaffinity",
        "stat64",
        "statx",
    }
)
# Inside build.py the target's stubs were used, so a need above the target came from a part of
# the build that bypassed them.
BUILD_FIX = (
    "this build links against glibc {glibc} stubs, so these come from a part that "
    "bypassed them: a prebuilt static library or object (a -sys crate's bundled "
    "binary), a build script that runs the host's compiler itself, or linker arguments "
    "that add the host's libraries; build that part from source with $CC (the cc crate "
    "sets it)"
)
_NEEDS_PREFIX = re.compile(r"^needs glibc [\d.]+, target [\d.]+: ")
_MOVED = re.compile(r"; these moved from (\S+) into libc in ([\d.]+): .*$")
SEVERITY_ORDER = {WARNING: 1, NOTE: 2}  # violations first
HANG = "       "  # continuation lines of everything said about a cause
NODE = "\0node"  # a finding's version node in its cause's text, put back when shown...
SPACED = "\0spaced"  # ...and the same as `GLIBCXX 3.4.21`


class Cause(NamedTuple):
    """Findings that share one explanation: said once, with every symbol it covers."""

    severity: str
    kind: str
    why: str
    fix: str | None


def _cause(finding: Finding, rebuild: str, fix: str) -> tuple[Cause, str | None]:
    """The cause of a finding, and the library its symbols moved from (glibc 2.34's merge)."""
    text = finding.text
    moved = _MOVED.search(text)
    if moved:
        text = text[: moved.start()]
    has_fix = rebuild in text
    text = text.replace(f"; {rebuild}", "").replace(f"; or {rebuild}", "")
    text = text.replace(f" or {rebuild}", "").replace(rebuild, "").rstrip("; ")
    text = _NEEDS_PREFIX.sub("", text)
    if finding.version:  # one cause for every version node: the lines below name them
        namespace, number = split_version_node(finding.version)
        text = text.replace(finding.version, NODE)
        if number:
            text = text.replace(f"{namespace} {number}", SPACED)
    return (
        Cause(finding.severity, finding.kind, text, fix if has_fix else None),
        moved.group(1) if moved else None,
    )


def _without_build_advice(hint: str) -> str:
    """A hint as said inside build.py: no clause that tells the user to run build.py."""
    return "; ".join(c for c in hint.split("; ") if "build.py" not in c)


def report_text(report: Report, *, with_errors: bool = True, for_build: bool = False) -> str:
    """The verdict and each file's lowest glibc first; then the findings grouped by cause, the
    shared explanation and fix said once, symbols listed compactly. `for_build`: the report
    of a build.py run, whose fix is never "run build.py"."""
    files = report.files
    failing = sum(not f.ok for f in files)
    verdict = "FAIL" if failing or report.errors else "ok"
    lines = [
        f"{verdict}: checked {len(files)} file{'s' * (len(files) != 1)} against "
        f"glibc {report.glibc}: {len(files) - failing} ok, {failing} failing"
        + (f", {len(report.errors)} could not be analysed" if report.errors else "")
    ]
    for file in files:
        lines.append(file_headline(file, report.glibc))
        if report.show_loads_on and file.loads_on is not None:
            lines.extend(loads_on_lines(file.loads_on))
    rebuild = REBUILD.format(glibc=report.glibc)
    fix = BUILD_FIX.format(glibc=report.glibc) if for_build else rebuild
    causes: dict[Cause, list[tuple[FileReport, Finding, str | None]]] = {}
    for file in files:
        for finding in (*file.violations, *file.warnings, *file.notes):
            cause, moved = _cause(finding, rebuild, fix)
            causes.setdefault(cause, []).append((file, finding, moved))
    flagged = list(dict.fromkeys(file.path for items in causes.values() for file, _, _ in items))
    if len(flagged) == 1 and len(files) > 1:
        lines.extend(["", f"{flagged[0]}:"])
    said_fix: set[str] = set()
    ordered = sorted(causes.items(), key=lambda item: SEVERITY_ORDER.get(item[0].severity, 0))
    for index, (cause, items) in enumerate(ordered):
        if index or len(flagged) != 1 or len(files) == 1:
            lines.append("")
        lines.extend(cause_lines(cause, items, len(flagged) > 1, said_fix, for_build))
    for file in files:
        lines.extend(info_lines(file, f"{file.path}: " if len(files) > 1 else ""))
    if with_errors:
        lines.extend(f"error: {err.path}: {err.message}" for err in report.errors)
    return "\n".join(lines)


def info_lines(file: FileReport, where: str) -> list[str]:
    """What a file's report leaves out or does not judge, one `info:` line each."""
    lines: list[str] = []
    if file.findings_omitted:
        lines.extend(
            fill(
                f"info: {where}{file.findings_omitted} more findings of other kinds, "
                "versions or libraries are not shown (a report lists a bounded number "
                "per file)",
                "",
                hang=HANG,
            )
        )
    if file.other_version_needs:
        lines.extend(
            fill(
                "info: "
                + where
                + other_needs_line(file.other_version_needs).removeprefix("  info: "),
                "",
                hang=HANG,
            )
        )
    if file.unresolved:
        shown = ", ".join(file.unresolved[:LIST_LIMIT])
        total = len(file.unresolved) + file.unresolved_omitted
        more = total - LIST_LIMIT
        lines.extend(
            fill(
                f"info: {where}{total} undefined symbol{'s' * (total != 1)} glibc "
                f"does not provide (a DT_NEEDED library or the host must): {shown}"
                + (f" (+{more} more)" if more > 0 else ""),
                "",
                hang=HANG,
            )
        )
    return lines


def file_headline(file: FileReport, glibc: GlibcVersion) -> str:
    """`ok   lib.so (x86_64): loads on glibc 2.17 (needs GLIBC 2.16)`, or the lowest it needs."""
    arch = f" ({file.arch})" if file.arch else ""
    needs = ", ".join(f"{ns} {v}" for ns, v in file.required.items())
    if file.ok:
        return f"  ok   {file.path}{arch}: loads on glibc {glibc}" + (
            f" (needs {needs})" if needs else ""
        )
    lowest = lowest_line(file, glibc).strip()
    return f"  FAIL {file.path}{arch}: {lowest}" + (f" (needs {needs})" if needs else "")


def cause_lines(
    cause: Cause,
    items: list[tuple[FileReport, Finding, str | None]],
    several_files: bool,
    said_fix: set[str],
    for_build: bool,
) -> list[str]:
    """One cause: a head, the symbols by file and version node, why, the fix, the hints."""
    count = len({f.symbol for _, f, _ in items if f.symbol}) + sum(f.omitted for _, f, _ in items)
    title = {WARNING: "warning: ", NOTE: "note: "}.get(cause.severity, "")
    head = f"{title}[{cause.kind}]"
    if count:
        head += f" {count} symbol{'s' * (count != 1)}"
    by_file: dict[str, list[tuple[Finding, str | None]]] = {}
    for file, f, moved in items:
        by_file.setdefault(file.path, []).append((f, moved))
    if several_files:
        head += f" in {len(by_file)} file{'s' * (len(by_file) != 1)}"
    lines = [head]
    moved_from: dict[str, str] = {}
    for path, found in by_file.items():
        indent = "  "
        if several_files:
            lines.append(f"  {path}")
            indent = "    "
        by_node: dict[tuple[str | None, str | None], list[Finding]] = {}
        for f, moved in found:
            by_node.setdefault((f.version, f.library), []).append(f)
            if moved and f.symbol:
                moved_from.setdefault(moved, str(split_version_node(f.version or "")[1]))
        for (version, library), group in sorted(by_node.items(), key=_newest_first):
            where = " ".join(x for x in (version, f"from {library}" if library else "") if x)
            names = sorted({f.symbol for f in group if f.symbol})
            omitted = sum(f.omitted for f in group)
            if omitted:
                names.append(f"(+{omitted} more)")
            if names:
                lines.extend(
                    wrap_list(names, HANG, first=f"{indent}{where}: " if where else indent)
                )
            elif where:
                lines.append(indent + where)
    newest = min(
        (f.version for _, f, _ in items if f.version),
        default=None,
        key=lambda node: _newest_first(((node, None), [])),
    )
    spaced = " ".join(x for x in split_version_node(newest or "?") if x)
    why = cause.why.replace(NODE, newest or "?").replace(SPACED, spaced)
    lines.extend(fill(f"why: {why}", "  ", hang=HANG))
    if cause.fix:
        lines.extend(
            fill("fix: " + ("as above" if cause.fix in said_fix else cause.fix), "  ", hang=HANG)
        )
        said_fix.add(cause.fix)
    if moved_from:
        origins = " and ".join(sorted(moved_from))
        version = max(moved_from.values())
        lines.extend(
            fill(
                f"note: glibc {version} moved {origins} into libc: a link against "
                f"glibc >= {version} binds the libc versions of their functions, "
                "older glibc stubs bind the old libraries",
                "  ",
                hang=HANG,
            )
        )
    lines.extend(hint_lines(items, for_build))
    return lines


def _newest_first(
    item: tuple[tuple[str | None, str | None], list[Finding]],
) -> tuple[tuple[int, ...], str]:
    version, library = item[0]
    numbers = split_version_node(version)[1] if version else None
    parts = GlibcVersion.of(numbers).parts if numbers else ()
    return tuple(-n for n in parts), f"{version} {library}"


def hint_lines(items: list[tuple[FileReport, Finding, str | None]], for_build: bool) -> list[str]:
    """What is said about single symbols: Rust's std's own calls as one line, weak
    references as one line, then the other symbols' hints, each once."""
    weak_prefix = WEAK_HINT.split("{node}")[0]
    from_std: list[str] = []
    weak: list[str] = []
    hints: dict[str, str] = {}
    for _file, f, _moved in items:
        if not f.symbol:
            continue
        if f.kind in STD_KINDS and f.symbol in RUST_STD_SYMBOLS:
            from_std.append(f.symbol)
            continue
        hint = f.hint
        if hint.startswith(weak_prefix):
            weak.append(f.symbol)
            hint = hint.partition("; ")[2]
        if for_build:
            hint = _without_build_advice(hint)
        if hint:
            hints.setdefault(f.symbol, hint)
    lines: list[str] = []
    if from_std:
        every = {f.symbol for _, f, _ in items if f.symbol}
        names = (
            ", ".join(sorted(set(from_std)))
            if set(from_std) != every
            else f"all {len(every)} symbol{'s' * (len(every) != 1)} above"
        )
        where = (
            "something in this build linked it against a newer glibc"
            if for_build
            else "the fix is the build, not your code"
        )
        lines.extend(
            fill(f"from Rust's std (it calls these itself; {where}): {names}", "  ", hang=HANG)
        )
    if weak:
        lines.extend(
            fill(
                f"weak references, still required by the loader (no linker marks "
                f"their version need weak): {', '.join(sorted(set(weak)))}",
                "  ",
                hang=HANG,
            )
        )
    for symbol in sorted(hints):
        lines.extend(fill(f"{symbol}: {hints[symbol]}", "  ", hang=HANG))
    return lines


def file_lines(report: FileReport, glibc: GlibcVersion, lines: list[str]) -> None:
    """Append the text of one file's report to `lines` (a JUnit test case's text)."""
    single = Report(glibc, [report])
    lines.extend(report_text(single).splitlines()[1:])


def loads_on_lines(matrix: Any) -> list[str]:
    """The loads-on matrix (loads_on.py) as text lines."""
    from ..loads_on import text_lines

    return text_lines(matrix)


def other_needs_line(others: dict[str, list[str]]) -> str:
    """Needs on other libraries, e.g. `libasound.so.2 ALSA_0.9`: at most LIST_LIMIT shown."""
    pairs = [f"{file} {name}" for file, names in others.items() for name in names]
    more = len(pairs) - LIST_LIMIT
    return (
        "  info: version needs on other libraries (not judged: the target machine's "
        "copies must define them): "
        + ", ".join(pairs[:LIST_LIMIT])
        + (f" (+{more} more)" if more > 0 else "")
    )


def lowest_line(report: FileReport, glibc: GlibcVersion) -> str:
    """The failing file's lowest glibc, worded so that it never reads as "it loads on the
    target": at or below the target, its violations are about something else (the host,
    the kernel, a newer glibc)."""
    if report.min_glibc is None:
        return "     lowest glibc it can load on: none (see below)"
    if GlibcVersion.of(report.min_glibc) > glibc:
        return f"     lowest glibc it can load on: {report.min_glibc}"
    return (
        f"     its symbols and version needs allow glibc {report.min_glibc}, but the "
        f"violations below stop it on some systems with any glibc"
    )


def grouped(findings: list[Finding]) -> list[tuple[GroupKey, list[Finding]]]:
    """Findings of one kind, version, library and text together; kinds in order of first
    appearance, the highest version first within a kind."""
    groups: dict[GroupKey, list[Finding]] = {}
    kind_order: dict[str, int] = {}
    for f in findings:
        kind_order.setdefault(f.kind, len(kind_order))
        groups.setdefault((f.kind, f.version, f.library, f.text), []).append(f)

    def order(item: tuple[GroupKey, list[Finding]]) -> tuple[int, tuple[int, ...]]:
        kind, version, _library, _text = item[0]
        numbers = split_version_node(version)[1] if version else None
        return (
            kind_order[kind],
            tuple(-n for n in GlibcVersion.of(numbers).parts) if numbers else (),
        )

    return sorted(groups.items(), key=order)


def fill(text: str, indent: str, width: int = WIDTH, hang: str | None = None) -> list[str]:
    """Greedy word wrap (textwrap is ~10x slower, and a report can have thousands of these);
    `hang`: the indent of the lines after the first (default `indent`)."""
    out, line = [], indent
    for word in text.split():
        if line != indent and len(line) + 1 + len(word) > width:
            out.append(line)
            indent = indent if hang is None else hang
            line = indent + word
        else:
            line += word if line == indent else " " + word
    out.append(line)
    return out


def wrap_list(
    words: list[str], indent: str, width: int = WIDTH, first: str | None = None
) -> list[str]:
    """Comma-separated names, wrapped; `first` starts the first line (then `indent`)."""
    start = indent if first is None else first
    out, line = [], start
    for word in words:
        piece = word if line == start else ", " + word
        if len(line) + len(piece) > width and line != start:
            out.append(line + ",")
            line = start = indent
            line += word
        else:
            line += piece
    out.append(line)
    return out


# -- JUnit -----------------------------------------------------------------------------------
def report_junit(report: Report) -> str:
    """JUnit XML, the report format CI systems (GitLab, Jenkins, Azure, GitHub actions)
    show natively: one test case per file, a failure per violating file, an error per
    input that could not be analysed, warnings as the case's output."""
    from xml.etree import ElementTree as ET

    suite_name = f"glibc {report.glibc} compatibility"
    failures = sum(not f.ok for f in report.files)
    counts = {
        "tests": str(len(report.files) + len(report.errors)),
        "failures": str(failures),
        "errors": str(len(report.errors)),
    }
    suites = ET.Element("testsuites", {"name": "glibc-build check", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": suite_name, **counts})
    for file in report.files:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=file.path)
        lines: list[str] = []
        file_lines(file, report.glibc, lines)
        if not file.ok:
            failure = ET.SubElement(
                case,
                "failure",
                type="glibc-compatibility",
                message=(
                    f"{len(file.violations)} violation(s) for glibc {report.glibc}; "
                    + lowest_line(file, report.glibc).strip()
                ),
            )
            failure.text = "\n".join(lines)
        elif file.warnings:
            ET.SubElement(case, "system-out").text = "\n".join(lines)
    for err in report.errors:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=err.path)
        ET.SubElement(case, "error", type="unreadable", message=err.message)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
