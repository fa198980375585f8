"""What `check` found: plain data, made by the rules (findings, requirements) and the driver
(file reports, the whole report). Rendering is render.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..glibc import GlibcVersion

if TYPE_CHECKING:
    from ..loads_on import LoadsOn

VIOLATION, WARNING, NOTE = "violation", "warning", "note"


class CrateRef(NamedTuple):
    """The crate whose object brought a finding (provenance.py): package name, version and
    the archive member (a Rust codegen unit or a C object)."""

    name: str
    version: str
    object: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "object": self.object}


class Finding(NamedTuple):
    """One violation, warning or note (a fact worth knowing that is not a risk, e.g. a new
    system call made with a fallback). `text` explains the group, `hint` is about this symbol.

    A named tuple, not a dataclass: a report on a folder of libraries can hold tens of
    thousands of these, and a tuple is the cheapest immutable record to make."""

    kind: str
    text: str
    symbol: str | None = None
    version: str | None = None
    library: str | None = None
    hint: str = ""
    severity: str = VIOLATION
    crates: tuple[CrateRef, ...] = ()  # provenance, when the build is known
    omitted: int = 0  # more findings of its group, left out of the report (Bounded)

    @property
    def message(self) -> str:
        head = ""
        if self.symbol:
            head = f"{self.symbol}@{self.version}: " if self.version else f"{self.symbol}: "
        return head + self.text + (f" ({self.hint})" if self.hint else "")

    def to_json(self) -> dict[str, Any]:
        from .render import finding_json

        return finding_json(self)

    def __repr__(self) -> str:
        return f"Finding({self.kind!r}, {self.message!r})"


class Requirement(NamedTuple):
    """The file cannot load below `glibc`; `glibc=None`: no glibc version can load it."""

    glibc: GlibcVersion | None


NO_GLIBC = Requirement(None)


class Unresolved(NamedTuple):
    """Undefined symbols glibc does not provide (`name` or `name@node`): information only,
    a DT_NEEDED library or the host program must define them. One item for all of a file's
    (a large C++ library has thousands)."""

    names: tuple[str, ...]


def lowest_glibc(requirements: list[Requirement], floor: GlibcVersion) -> GlibcVersion | None:
    """The lowest glibc a file loads on: the highest requirement (at least `floor`), or None
    when one requirement no glibc meets."""
    lowest = floor
    for requirement in requirements:
        if requirement.glibc is None:
            return None
        if requirement.glibc > lowest:
            lowest = requirement.glibc
    return lowest


@dataclass(frozen=True)
class FileReport:
    """One checked file. Made once, when all its rules have run."""

    path: str
    arch: str | None = None
    required: dict[str, str] = field(default_factory=dict)  # namespace -> highest need
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    min_glibc: str | None = None  # lowest glibc it loads on; None: no glibc version does
    needed: list[str] = field(default_factory=list)
    # Version needs on libraries that are not glibc's or the C++ runtime's: not judged.
    other_version_needs: dict[str, list[str]] = field(default_factory=dict)
    findings_omitted: int = 0  # findings of groups beyond Bounded.GROUPS, not listed
    unresolved_omitted: int = 0  # undefined symbols beyond Bounded.NAMES, not listed
    notes: list[Finding] = field(default_factory=list)
    # What the loads-on matrix judges presets by (rules/kernel.py): system calls made without
    # a fallback -> first kernel; the x86-64 level asked for (None: not x86-64).
    kernel_needs: dict[str, str] = field(default_factory=dict)
    isa_level: int | None = None
    loads_on: LoadsOn | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        from .render import file_json

        return file_json(self)


def clip(text: str, limit: int) -> str:
    """`text`, or its start and its length when longer than `limit` characters: names come
    from the file's string table, and many entries may share one long string."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 32]}... ({len(text)} characters)"


class Bounded:
    """A file's findings, bounded: whatever the file holds (a 13 KB file can hold 90,000
    version needs by sharing one chain of auxiliaries, and any number of entries may name one
    long string), its report keeps findings of at most CHARS characters in all (text, hint
    and names, each clipped to TEXT or NAME), at most GROUPS groups per severity and
    PER_GROUP distinct findings per group, and at most NAMES undefined symbols of at most
    NAMES_CHARS characters. Output and the memory that holds it are O(CHARS + NAMES_CHARS)
    per file; the rest is counted, not listed.

    Findings group by (severity, kind, version, library), as the text report shows them: a
    group's last kept finding carries the count of its findings left out (`Finding.omitted`,
    JSON `symbols_omitted`); findings of groups that were not kept are counted per file
    (`FileReport.findings_omitted`). The caps are far above real libraries: 395 libraries of
    a Debian system and 78 of popular wheels list everything."""

    PER_GROUP = 500
    GROUPS = 200
    CHARS = 4_000_000
    NAME = 4096
    TEXT = 4000
    NAMES = 10_000
    NAMES_CHARS = 1_000_000

    def __init__(self) -> None:
        self.kept: dict[str, list[Finding]] = {VIOLATION: [], WARNING: [], NOTE: []}
        # group -> (its findings kept, for duplicates; [omitted, index of its last kept])
        self.groups: dict[
            tuple[str, str, str | None, str | None], tuple[set[Finding], list[int]]
        ] = {}
        self.group_count = {VIOLATION: 0, WARNING: 0, NOTE: 0}
        self.chars = 0
        self.omitted = 0

    def add(self, finding: Finding) -> None:
        cost = _cost(finding)
        if cost > min(self.TEXT, self.NAME):  # else no field can be over its limit
            finding = self._clipped(finding)
            cost = _cost(finding)
        severity = finding.severity if finding.severity in self.kept else VIOLATION
        key = (severity, finding.kind, finding.version, finding.library)
        group = self.groups.get(key)
        if group is None:
            if self.group_count[severity] >= self.GROUPS or self.chars + cost > self.CHARS:
                self.omitted += 1
                return
            self.group_count[severity] += 1
            group = self.groups[key] = (set(), [0, -1])
        seen, counts = group
        if finding in seen or len(seen) >= self.PER_GROUP or self.chars + cost > self.CHARS:
            counts[0] += 1
            return
        seen.add(finding)
        self.chars += cost
        kept = self.kept[severity]
        counts[1] = len(kept)
        kept.append(finding)

    def _clipped(self, finding: Finding) -> Finding:
        name, text = self.NAME, self.TEXT
        if (
            len(finding.text) <= text
            and len(finding.hint) <= text
            and len(finding.symbol or "") <= name
            and len(finding.version or "") <= name
            and len(finding.library or "") <= name
        ):
            return finding
        return finding._replace(
            text=clip(finding.text, text),
            hint=clip(finding.hint, text),
            symbol=finding.symbol and clip(finding.symbol, name),
            version=finding.version and clip(finding.version, name),
            library=finding.library and clip(finding.library, name),
        )

    def findings(self, severity: str) -> list[Finding]:
        """The kept findings of `severity`, each group's last one carrying its omitted count."""
        kept = self.kept[severity]
        for (group_severity, *_rest), (_seen, (omitted, last)) in self.groups.items():
            if omitted and group_severity == severity and last >= 0:
                kept[last] = kept[last]._replace(omitted=kept[last].omitted + omitted)
        return kept

    @classmethod
    def names(cls, names: list[str]) -> tuple[list[str], int]:
        """The first names, each clipped to NAME characters, up to NAMES of them and
        NAMES_CHARS characters in all; and how many were left out."""
        if (
            len(names) <= cls.NAMES
            and sum(map(len, names)) <= cls.NAMES_CHARS
            and max(map(len, names), default=0) <= cls.NAME
        ):
            return list(names), 0  # every real library
        out: list[str] = []
        chars = 0
        for name in names[: cls.NAMES]:
            name = clip(name, cls.NAME)
            chars += len(name)
            if chars > cls.NAMES_CHARS:
                break
            out.append(name)
        return out, len(names) - len(out)


def _cost(finding: Finding) -> int:
    return (
        len(finding.text)
        + len(finding.hint)
        + len(finding.symbol or "")
        + len(finding.version or "")
        + len(finding.library or "")
    )


class InputError(NamedTuple):
    """An input that could not be analysed (missing, unreadable, not ELF, malformed)."""

    path: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class Report:
    glibc: GlibcVersion
    files: list[FileReport] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    show_loads_on: bool = False  # the text lists each file's loads-on matrix (check --loads-on)

    @property
    def ok(self) -> bool:
        return not self.errors and all(f.ok for f in self.files)

    @property
    def exit_code(self) -> int:
        """0 all within the target, 1 a violation, 2 an input that could not be analysed."""
        if self.errors:
            return 2
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        from .render import report_json

        return report_json(self)

    def to_junit(self) -> str:
        from .render import report_junit

        return report_junit(self)

    def render_text(self, *, with_errors: bool = True) -> str:
        """The readable report; `with_errors=False` leaves the unreadable inputs out (the CLI
        prints those as `error:` lines on stderr)."""
        from .render import report_text

        return report_text(self, with_errors=with_errors)
