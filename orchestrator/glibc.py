"""Version values: what the user types for `--glibc`, the version nodes of ELF files and of
zig's glibc database (`2.2.5`, `2.34`, GLIBCXX's `3.4.30`), and the allowed `--glibc` ranges.

One type orders them all. Versions compare part by part as numbers, so 2.2.5 < 2.17 < 2.34
(as strings, "2.2.5" > "2.17"); trailing zero parts do not count (2.17 == 2.17.0), as in
glibc's own version nodes (scripts/versions.awk writes GLIBC_2.2.5, never GLIBC_2.2.5.0).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .targets import Target

_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_DOTTED = re.compile(r"^\d+(?:\.\d+)*$")


class GlibcVersion:
    """A dotted version of one or more parts: `GlibcVersion(2, 17)`, `GlibcVersion(2, 2, 5)`;
    immutable, hashable, ordered. `parse` reads what a user types for a glibc (MAJOR.MINOR);
    `of` reads any dotted version (database entries, version-node suffixes, policy ceilings)."""

    __slots__ = ("parts", "_key", "_text")
    parts: tuple[int, ...]
    _key: tuple[int, ...]
    _text: str  # reports print the same few versions thousands of times

    def __init__(self, *parts: int) -> None:
        if not parts or any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in parts):
            raise ValueError(f"version parts must be non-negative integers, not {parts!r}")
        key = list(parts)
        while len(key) > 1 and key[-1] == 0:
            key.pop()
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "_key", tuple(key))
        object.__setattr__(self, "_text", ".".join(map(str, parts)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"GlibcVersion is immutable (cannot set {name})")

    @property
    def major(self) -> int:
        return self.parts[0]

    @property
    def minor(self) -> int:
        return self.parts[1] if len(self.parts) > 1 else 0

    @classmethod
    def parse(cls, text: str, *, what: str = "--glibc") -> GlibcVersion:
        """Parse `2.17` (a trailing `.0` patch level is accepted and dropped)."""
        text = text.strip()
        if text.count(".") == 2 and text.endswith(".0"):
            text = text[:-2]
        match = _VERSION.match(text)
        if not match:
            raise UsageError(
                f"{what} {text!r} is not a glibc version; write it as MAJOR.MINOR, e.g. 2.17"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, text: str) -> GlibcVersion:
        """Any dotted version (`2.2.5`, `3.4.30`, `7`); ValueError otherwise. Memoised: the
        checker asks for the same few dozen versions tens of thousands of times."""
        known = _OF.get(text)
        if known is not None:
            return known
        if not _DOTTED.match(text):
            raise ValueError(f"{text!r} is not a dotted version such as 2.2.5")
        version = _OF[text] = cls(*(int(p) for p in text.split(".")))
        return version

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"GlibcVersion({', '.join(map(str, self.parts))})"

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GlibcVersion):
            return self._key == other._key
        return NotImplemented

    def __lt__(self, other: GlibcVersion) -> bool:
        return self._key < other._key

    def __le__(self, other: GlibcVersion) -> bool:
        return self._key <= other._key

    def __gt__(self, other: GlibcVersion) -> bool:
        return self._key > other._key

    def __ge__(self, other: GlibcVersion) -> bool:
        return self._key >= other._key

    def __reduce__(self) -> tuple[type[GlibcVersion], tuple[int, ...]]:
        return (GlibcVersion, self.parts)


_OF: dict[str, GlibcVersion] = {}

OLDEST_GLIBC = GlibcVersion(2, 0)
"""The first glibc 2 release; zig's database starts there (its x86_64 symbols at 2.2.5)."""


def require_for_check(version: GlibcVersion, what: str = "--glibc") -> GlibcVersion:
    """The range `check` accepts: any glibc zig's database knows, 2.0 to the newest. Checking
    against an old glibc is meaningful even where Rust cannot build for it."""
    from .abilist import newest_glibc

    newest = newest_glibc()
    if version > newest or version < OLDEST_GLIBC:
        raise UsageError(
            f"{what} {version} is outside zig's glibc database "
            f"({OLDEST_GLIBC} to {newest}); pick a version in that range"
        )
    return version


def require_for_build(version: GlibcVersion, target: Target, what: str = "--glibc") -> GlibcVersion:
    """The range a build accepts: from the oldest glibc Rust's std supports on `target`
    (rustc's platform-support page) to the newest zig has stubs for."""
    from .abilist import newest_glibc

    if version < target.glibc_floor:
        raise UsageError(
            f"{what} {version} is older than {target.glibc_floor}, the oldest glibc "
            f"Rust's std supports on {target.rust}; use {target.glibc_floor} or newer"
        )
    newest = newest_glibc()
    if version > newest:
        raise UsageError(
            f"{what} {version} is newer than the newest glibc this tool knows "
            f"({newest}); use {newest} or older"
        )
    return version


_VERSION_NODE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*?)_(\d+(?:\.\d+)*)$")


def split_version_node(node: str) -> tuple[str, str | None]:
    """An ELF version node's namespace and version: `GLIBCXX_3.4.30` -> ("GLIBCXX",
    "3.4.30"); `GLIBC_PRIVATE` -> ("GLIBC_PRIVATE", None)."""
    split = _SPLIT.get(node)
    if split is None:
        match = _VERSION_NODE.match(node)
        split = _SPLIT[node] = (match.group(1), match.group(2)) if match else (node, None)
    return split


_SPLIT: dict[str, tuple[str, str | None]] = {}  # a few hundred distinct nodes in a run
