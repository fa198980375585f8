"""When a build script fails: recognise the common shapes in cargo's output and say in one line
what to do, above cargo's own lines.

- pkg-config found nothing (the pkg-config crate's "The system library `alsa` required by
  crate `alsa-sys` was not found", pkg-config's or pkgconf's "Package alsa was not found")
  -> `--system-package` with the Debian package holding that `.pc` (resources/
  system-libraries.toml), or the known crate's own advice (known_crates.py);
- autoconf's "C compiler cannot create executables" -> the real error from its config.log;
- a missing header -> which one, and where to look for the package that has it.
Rules are small functions over text; the tables are data.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from . import known_crates
from .paths import RESOURCES_DIR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

SYSTEM_LIBRARIES_FILE = RESOURCES_DIR / "system-libraries.toml"
_PKG_CONFIG_CRATE = re.compile(
    r"The system library `([^`]+)` required by crate `([^`]+)` was not found"
)
_PKG_CONFIG_TOOL = re.compile(r"Package '?([\w.+-]+?)'?,? (?:required by .*, )?(?:was )?not found")
_CONFIGURE_DIR = re.compile(r"configure: error: in [`']([^'`]+)'")
_CANNOT_CREATE = "C compiler cannot create executables"
_MISSING_HEADER = re.compile(
    r"fatal error: '?([\w./+-]+\.h(?:pp)?)'?(?:: No such file or directory| file not found)"
)
_CRATE_OF_SCRIPT = re.compile(r"failed to run custom build command for `([\w-]+) v")
_OPENSSL_NOT_FOUND = "Could not find directory of OpenSSL installation"


@functools.cache
def pc_packages() -> dict[str, str]:
    data = tomllib.loads(SYSTEM_LIBRARIES_FILE.read_text(encoding="utf-8"))
    return dict(data["pkg-config"])


def _failed_crate(text: str) -> str | None:
    found = _CRATE_OF_SCRIPT.search(text)
    return found.group(1) if found else None


def _known_advice(crate: str | None) -> str | None:
    known = known_crates.lookup(crate) if crate else None
    if known is not None and known.problem == "system-library":
        return f"{crate} {known.when}: {known.advice}"
    return None


def pkg_config_hint(text: str) -> str | None:
    found = _PKG_CONFIG_CRATE.search(text)
    module = crate = None
    if found:
        module, crate = found.groups()
    else:
        tool = _PKG_CONFIG_TOOL.search(text)
        if tool is None and _OPENSSL_NOT_FOUND not in text:
            return None
        module = tool.group(1) if tool else "openssl"
        crate = _failed_crate(text)
    advice = _known_advice(crate)
    if advice:
        return advice
    package = pc_packages().get(module)
    who = f"{crate} needs" if crate else "a build script needs"
    if package:
        return (
            f"{who} the system library {module} ({module}.pc), which zig does not provide:"
            f" add --system-package {package} (its Debian package)"
        )
    return (
        f"{who} the system library {module} ({module}.pc), which zig does not provide: "
        "add --system-package with the Debian -dev package that holds "
        f"{module}.pc (https://packages.debian.org/file:{module}.pc)"
    )


def config_log_error(log: Path) -> str | None:
    """The first real error in autoconf's config.log: the compiler's own words."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        text = line.strip()
        if re.search(
            r"(error|cannot find|undefined reference|unable to)", text, re.I
        ) and not text.startswith(("configure:", "|", "#")):
            return text
    return None


def configure_hint(text: str) -> str | None:
    if _CANNOT_CREATE not in text:
        return None
    folder = _CONFIGURE_DIR.search(text)
    log = Path(folder.group(1)) / "config.log" if folder else None
    error = config_log_error(log) if log else None
    where = f" (see {log})" if log else ""
    if error:
        return f"configure's first test failed: {error}{where}"
    return f"configure's first test failed: the compiler could not link a program{where}"


def header_hint(text: str) -> str | None:
    found = _MISSING_HEADER.search(text)
    if found is None:
        return None
    header = found.group(1)
    crate = _failed_crate(text)
    who = f"{crate}'s C part" if crate else "a C part"
    return (
        f"{who} includes {header}, which is not among zig's libc headers: add "
        "--system-package with the Debian -dev package that holds it "
        f"(https://packages.debian.org/file:{header})"
    )


RULES: tuple[Callable[[str], str | None], ...] = (pkg_config_hint, configure_hint, header_hint)


def hint(lines: Iterable[str]) -> str | None:
    """One line saying what to do about a failed build, or None when nothing is recognised."""
    text = "\n".join(lines)
    for rule in RULES:
        found = rule(text)
        if found:
            return found
    return None
