"""Known crates: what to do when a popular crate's defaults trip a plugin for an old glibc.

The facts are policy data in `resources/known-crates.toml` (one table per crate name); this
module only reads them, so a finding (a static-TLS library, a build script that wants a system
library) can name the feature or `--system-package` that fixes it.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput
from .paths import RESOURCES_DIR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

KNOWN_CRATES_FILE = RESOURCES_DIR / "known-crates.toml"
PROBLEMS = ("system-library", "static-tls")


@dataclass(frozen=True)
class KnownCrate:
    name: str
    problem: str  # one of PROBLEMS
    when: str  # the configuration that has the problem
    advice: str  # one sentence: what to do
    features: tuple[str, ...] = ()  # cargo features that fix it
    system_packages: tuple[str, ...] = ()  # Debian packages for --system-package instead
    source: str = ""  # a public page that documents the fix


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{where} must be a list of strings")
    return tuple(value)


def parse(text: str, origin: str = "known-crates.toml") -> dict[str, KnownCrate]:
    """The crates of a known-crates TOML text, by name; a malformed entry is refused."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{origin}: not valid TOML ({exc})") from None
    crates: dict[str, KnownCrate] = {}
    for name, entry in (data.get("crates") or {}).items():
        where = f"{origin}: [crates.{name}]"
        if not isinstance(entry, dict):
            raise BadInput(f"{where} must be a table")
        unknown = set(entry) - {
            "problem",
            "when",
            "advice",
            "features",
            "system-packages",
            "source",
        }
        if unknown:
            raise BadInput(f"{where}: unknown key {sorted(unknown)[0]!r}")
        if entry.get("problem") not in PROBLEMS:
            raise BadInput(f"{where}: problem must be one of {', '.join(PROBLEMS)}")
        for key in ("when", "advice"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise BadInput(f"{where}: {key} must be a non-empty string")
        crates[name] = KnownCrate(
            name=name,
            problem=entry["problem"],
            when=entry["when"],
            advice=entry["advice"],
            features=_strings(entry.get("features", []), f"{where} features"),
            system_packages=_strings(entry.get("system-packages", []), f"{where} system-packages"),
            source=str(entry.get("source", "")),
        )
    return crates


@functools.cache
def known_crates(path: Path = KNOWN_CRATES_FILE) -> dict[str, KnownCrate]:
    return parse(path.read_text(encoding="utf-8"), path.name)


def lookup(name: str) -> KnownCrate | None:
    """The known problem of crate `name` (crates.io treats - and _ alike), if any."""
    crates = known_crates()
    return crates.get(name) or crates.get(name.replace("_", "-"))


def remedy(name: str) -> str | None:
    """What to do about crate `name`, for a finding provenance ties to it (provenance.py's
    `remedy_for`): the advice and the `--features` that fix it; None for a crate not known."""
    known = lookup(name)
    if known is None:
        return None
    features = f" (--features {','.join(known.features)})" if known.features else ""
    return f"{known.advice}{features}"


def with_problem(problem: str) -> list[KnownCrate]:
    """Every known crate with that problem (e.g. "static-tls" for the check's TLS finding)."""
    return [crate for crate in known_crates().values() if crate.problem == problem]
