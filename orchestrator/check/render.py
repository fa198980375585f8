"""A Report as text (for people), JSON (for programs) and JUnit XML (for CI systems).

Findings of one kind, version, library and text are shown once, with their symbols listed;
long lines are wrapped at 100 columns.
"""

from __future__ import annotations

from typing import Any

from ..glibc import GlibcVersion, split_version_node
from .report import FileReport, Finding, Report

LIST_LIMIT = 12  # names shown per line group in text before "+N more"
WIDTH = 100

GroupKey = tuple[str, "str | None", "str | None", str]


# -- JSON ------------------------------------------------------------------------------------
def finding_json(finding: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": finding.kind, "symbol": finding.symbol, "version": finding.version,
        "library": finding.library, "message": finding.message,
        "symbols_omitted": finding.omitted}
    if finding.crates:   # provenance, when the build that made the file is known
        data["crates"] = [crate.to_json() for crate in finding.crates]
    return data


def file_json(report: FileReport) -> dict[str, Any]:
    return {"path": report.path, "ok": report.ok, "arch": report.arch,
            "required": report.required,
            "violations": [finding_json(f) for f in report.violations],
            "warnings": [finding_json(f) for f in report.warnings],
            "min_glibc": report.min_glibc, "needed": report.needed,
            "unresolved": report.unresolved,
            "other_version_needs": report.other_version_needs,
            "findings_omitted": report.findings_omitted,
            "unresolved_omitted": report.unresolved_omitted}


def report_json(report: Report) -> dict[str, Any]:
    return {"glibc": str(report.glibc), "ok": report.ok,
            "files": [file_json(f) for f in report.files],
            "errors": [e.to_json() for e in report.errors]}


# -- text ------------------------------------------------------------------------------------
def report_text(report: Report, *, with_errors: bool = True) -> str:
    lines: list[str] = []
    for file in report.files:
        file_lines(file, report.glibc, lines)
    files = report.files
    failing = sum(not f.ok for f in files)
    lines.append(f"checked {len(files)} file{'s' * (len(files) != 1)} against "
                 f"glibc {report.glibc}: {len(files) - failing} ok, {failing} failing"
                 + (f", {len(report.errors)} could not be analysed" if report.errors else ""))
    if with_errors:
        lines.extend(f"error: {err.path}: {err.message}" for err in report.errors)
    return "\n".join(lines)


def file_lines(report: FileReport, glibc: GlibcVersion, lines: list[str]) -> None:
    """Append the text of one file's report to `lines`."""
    arch = f" ({report.arch})" if report.arch else ""
    if report.ok:
        need = report.required.get("GLIBC")
        lines.append(f"ok   {report.path}{arch}: loads on glibc {glibc}"
                     + (f" (needs {need})" if need else ""))
    else:
        count = len(report.violations)
        lines.append(f"FAIL {report.path}{arch}: {count} violation{'s' * (count != 1)} "
                     f"for glibc {glibc}")
    if report.required:
        lines.append("     needs: " + ", ".join(f"{ns} {v}" for ns, v in report.required.items()))
    if not report.ok:
        lines.append(lowest_line(report, glibc))
    for title, findings in (("", report.violations), ("warning: ", report.warnings)):
        for (kind, version, library, text), group in grouped(findings):
            where = " ".join(x for x in (version, f"from {library}" if library else "") if x)
            symbols = sorted(f.symbol for f in group if f.symbol)
            omitted = sum(f.omitted for f in group)
            head = f"  {title}[{kind}]" + (f" {where}" if where else "")
            if symbols:
                count = len(symbols) + omitted
                head += f": {count} symbol{'s' * (count != 1)}"
                lines.append(head)
                lines.extend(wrap_list(symbols + ([f"(+{omitted} more)"] if omitted else []),
                                       "       "))
            else:
                lines.append(head)
            lines.extend(fill(text, "       "))
            for f in sorted(group, key=lambda f: f.symbol or ""):
                if f.hint:
                    lines.extend(fill(f"{f.symbol}: {f.hint}", "       "))
    if report.findings_omitted:
        lines.append(f"  info: {report.findings_omitted} more findings of other kinds, versions "
                     "or libraries are not shown (a report lists a bounded number per file)")
    if report.other_version_needs:
        lines.append(other_needs_line(report.other_version_needs))
    if report.unresolved:
        shown = ", ".join(report.unresolved[:LIST_LIMIT])
        total = len(report.unresolved) + report.unresolved_omitted
        more = total - LIST_LIMIT
        lines.append(f"  info: {total} undefined symbol"
                     f"{'s' * (total != 1)} glibc does not provide (a DT_NEEDED "
                     f"library or the host must): {shown}" + (f" (+{more} more)" if more > 0
                                                              else ""))


def other_needs_line(others: dict[str, list[str]]) -> str:
    """Needs on other libraries, e.g. `libasound.so.2 ALSA_0.9`: at most LIST_LIMIT shown."""
    pairs = [f"{file} {name}" for file, names in others.items() for name in names]
    more = len(pairs) - LIST_LIMIT
    return ("  info: version needs on other libraries (not judged: the target machine's "
            "copies must define them): " + ", ".join(pairs[:LIST_LIMIT])
            + (f" (+{more} more)" if more > 0 else ""))


def lowest_line(report: FileReport, glibc: GlibcVersion) -> str:
    """The failing file's lowest glibc, worded so that it never reads as "it loads on the
    target": at or below the target, its violations are about something else (the host,
    the kernel, a newer glibc)."""
    if report.min_glibc is None:
        return "     lowest glibc it can load on: none (see below)"
    if GlibcVersion.of(report.min_glibc) > glibc:
        return f"     lowest glibc it can load on: {report.min_glibc}"
    return (f"     its symbols and version needs allow glibc {report.min_glibc}, but the "
            f"violations below stop it on some systems with any glibc")


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
        return (kind_order[kind],
                tuple(-n for n in GlibcVersion.of(numbers).parts) if numbers else ())

    return sorted(groups.items(), key=order)


def fill(text: str, indent: str, width: int = WIDTH) -> list[str]:
    """Greedy word wrap (textwrap is ~10x slower, and a report can have thousands of these)."""
    out, line = [], indent
    for word in text.split():
        if line != indent and len(line) + 1 + len(word) > width:
            out.append(line)
            line = indent + word
        else:
            line += word if line == indent else " " + word
    out.append(line)
    return out


def wrap_list(words: list[str], indent: str, width: int = WIDTH) -> list[str]:
    """Comma-separated names, wrapped."""
    out, line = [], indent
    for word in words:
        piece = word if line == indent else ", " + word
        if len(line) + len(piece) > width and line != indent:
            out.append(line + ",")
            line = indent + word
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
    counts = {"tests": str(len(report.files) + len(report.errors)), "failures": str(failures),
              "errors": str(len(report.errors))}
    suites = ET.Element("testsuites", {"name": "glibc-build check", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": suite_name, **counts})
    for file in report.files:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=file.path)
        lines: list[str] = []
        file_lines(file, report.glibc, lines)
        if not file.ok:
            failure = ET.SubElement(case, "failure", type="glibc-compatibility", message=(
                f"{len(file.violations)} violation(s) for glibc {report.glibc}; "
                + lowest_line(file, report.glibc).strip()))
            failure.text = "\n".join(lines)
        elif file.warnings:
            ET.SubElement(case, "system-out").text = "\n".join(lines)
    for err in report.errors:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=err.path)
        ET.SubElement(case, "error", type="unreadable", message=err.message)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
