"""Which files are ELF libraries or executables, and the files `check` looks at.

`elf_kind` is the one answer to "what kind of ELF file is this" for `check` (which reports
executables and PIEs as violations, and skips objects and core dumps in folders) and for
`verify-load` (which loads only shared libraries): the e_type of the ELF header, and
DF_1_PIE, which glibc's elf/dl-load.c refuses to dlopen since 2.30 (BZ #24323).
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..elffile import DF_1_PIE, ET_CORE, ET_DYN, ET_EXEC, ET_REL, ElfFile
from .report import InputError


class ElfKind(enum.Enum):
    """What an ELF file is, as dlopen sees it; the value says it in a message."""

    SHARED_LIBRARY = "a shared library"
    PIE_EXECUTABLE = "a position-independent executable"
    EXECUTABLE = "ET_EXEC"
    OBJECT = "ET_REL (a .o object)"
    CORE = "ET_CORE (a core dump)"
    OTHER = "an unknown ELF type"
    MALFORMED = "a malformed ELF header"
    NOT_ELF = "not ELF"

    @property
    def loadable(self) -> bool:
        """dlopen can load it (glibc >= 2.30 refuses PIEs, every glibc executables)."""
        return self is ElfKind.SHARED_LIBRARY

    @property
    def checked(self) -> bool:
        """Worth a report when found in a folder: libraries and executables (a malformed
        header too, so that it is reported); objects, core dumps and other files are not."""
        return self not in (ElfKind.OBJECT, ElfKind.CORE, ElfKind.NOT_ELF)


_BY_TYPE = {
    ET_DYN: ElfKind.SHARED_LIBRARY,
    ET_EXEC: ElfKind.EXECUTABLE,
    ET_REL: ElfKind.OBJECT,
    ET_CORE: ElfKind.CORE,
}


def elf_kind(source: Path | ElfFile) -> ElfKind:
    """The kind of an ELF file: from the first 20 bytes of a path (cheap enough to sniff every
    file of a folder; PIE or not needs the dynamic section, so a path's ET_DYN answers
    SHARED_LIBRARY), or from an open ElfFile (PIE told apart). Raises OSError when a path
    cannot be read."""
    if isinstance(source, ElfFile):
        kind = _BY_TYPE.get(source.type, ElfKind.OTHER)
        if kind is ElfKind.SHARED_LIBRARY and source.dt_flags_1 & DF_1_PIE:
            return ElfKind.PIE_EXECUTABLE
        return kind
    with open(source, "rb") as handle:
        head = handle.read(20)
    if head[:4] != b"\x7fELF":
        return ElfKind.NOT_ELF
    if len(head) < 18 or head[5] not in (1, 2):
        return ElfKind.MALFORMED
    e_type = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return _BY_TYPE.get(e_type, ElfKind.OTHER)


def collect(paths: Iterable[Path], errors: list[InputError]) -> list[tuple[str, Path]]:
    """(shown path, path) of every file to check: named files as given, folders searched."""
    out: list[tuple[str, Path]] = []
    for path in paths:
        shown = str(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            errors.append(InputError(shown, "no such file or directory"))
            continue
        except OSError as exc:
            errors.append(InputError(shown, f"cannot read it ({exc.strerror})"))
            continue
        if stat.S_ISDIR(st.st_mode):
            errors_before = len(errors)
            found = search(path, errors)
            if not found and len(errors) == errors_before:
                errors.append(
                    InputError(shown, "no ELF shared objects or executables in this folder")
                )
            out.extend((str(p), p) for p in found)
        elif stat.S_ISREG(st.st_mode):
            out.append((shown, path))
        else:
            errors.append(InputError(shown, "not a regular file or folder"))
    return out


def search(folder: Path, errors: list[InputError]) -> list[Path]:
    """ELF files under `folder` worth checking, sorted; a file reached by several symlinks is
    listed once (by its real name when that is inside the folder).

    A subfolder or file that cannot be read goes into `errors`: a CI gate must not pass
    because a library it was pointed at was silently skipped. Dangling symlinks are skipped
    (a lib folder often has `libfoo.so` dev links to packages that are not installed).
    """
    problems: list[InputError] = []

    def unreadable(exc: OSError, fallback: Path, what: str) -> None:
        where = exc.filename if isinstance(exc.filename, str) else str(fallback)
        problems.append(InputError(where, f"cannot read {what} ({exc.strerror or exc})"))

    regular: list[Path] = []
    links: list[Path] = []
    for root, dirs, files in os.walk(
        folder, onerror=lambda exc: unreadable(exc, folder, "this folder")
    ):
        dirs.sort()
        for name in sorted(files):
            if (
                name.startswith(("build-script-", "build_script_"))
                and Path(root).parent.name == "build"
            ):
                continue  # cargo's build-script executables (target/*/build/*/): never shipped
            path = Path(root, name)
            (links if path.is_symlink() else regular).append(path)
    seen: set[tuple[int, int]] = set()
    out: list[Path] = []
    for path in regular + links:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # a dangling symlink: nothing to check
        except OSError as exc:
            unreadable(exc, path, "it")
            continue
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISREG(st.st_mode) or key in seen:
            continue
        seen.add(key)
        try:
            checked = elf_kind(path).checked
        except OSError as exc:
            unreadable(exc, path, "it")
            continue
        if checked:
            out.append(path)
    out.sort()
    errors.extend(sorted(problems, key=lambda err: err.path))
    return out
