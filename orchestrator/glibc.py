"""glibc version values: parsing what the user types, and comparing versions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True, order=True)
class GlibcVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str, *, what: str = "--glibc") -> GlibcVersion:
        """Parse `2.17` (a trailing `.0` patch level is accepted and dropped)."""
        text = text.strip()
        if text.count(".") == 2 and text.endswith(".0"):
            text = text[:-2]
        match = _VERSION.match(text)
        if not match:
            raise UsageError(f"{what} {text!r} is not a glibc version; write it as MAJOR.MINOR, "
                             "e.g. 2.17")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"
