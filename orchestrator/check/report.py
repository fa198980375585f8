"""What `check` found: plain data, made by the rules (findings, requirements) and the driver
(file reports, the whole report). Rendering is render.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..glibc import GlibcVersion

VIOLATION, WARNING = "violation", "warning"


class Finding(NamedTuple):
    """One violation or warning. `text` explains the group, `hint` is about this symbol.

    A named tuple, not a dataclass: a report on a folder of libraries can hold tens of
    thousands of these, and a tuple is the cheapest immutable record to make."""

    kind: str
    text: str
    symbol: str | None = None
    version: str | None = None
    library: str | None = None
    hint: str = ""
    severity: str = VIOLATION

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
    required: dict[str, str] = field(default_factory=dict)   # namespace -> highest need
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    min_glibc: str | None = None   # lowest glibc it loads on; None: no glibc version does
    needed: list[str] = field(default_factory=list)
    # Version needs on libraries that are not glibc's or the C++ runtime's: not judged.
    other_version_needs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        from .render import file_json

        return file_json(self)


@dataclass(frozen=True)
class InputError:
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
