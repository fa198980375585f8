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

    @classmethod
    def from_node(cls, node: str) -> GlibcVersion | None:
        """`GLIBC_2.17` or `GLIBC_2.2.5` -> the version (patch dropped); other nodes -> None."""
        if not node.startswith("GLIBC_"):
            return None
        parts = node[len("GLIBC_"):].split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts):
            return None
        return cls(int(parts[0]), int(parts[1]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def node_key(node: str) -> tuple[int, ...]:
    """Sort key for version nodes such as `GLIBC_2.2.5` or `GLIBCXX_3.4.30` (numbers only)."""
    tail = node.rsplit("_", 1)[-1]
    return tuple(int(p) for p in tail.split(".") if p.isdigit())
