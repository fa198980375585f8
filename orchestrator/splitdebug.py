"""`--split-debug`: ship small libraries and keep their debug info in `LIB.debug` files beside
them, tied by a GNU build-id, so that a crash report from a player's machine can be symbolised
later (the layout gdb and debuginfod understand: "Separate Debug Files",
https://sourceware.org/gdb/current/onlinedocs/gdb.html/Separate-Debug-Files.html).

The link writes an NT_GNU_BUILD_ID note (`-Wl,--build-id`, through RUSTFLAGS for every backend);
the profile keeps DWARF (cargo's release profile has `debug = false`; CARGO_PROFILE_<NAME>_DEBUG
turns it on, https://doc.rust-lang.org/cargo/reference/config.html#profilenamedebug); then
GNU objcopy moves the debug sections out:

    objcopy --only-keep-debug LIB LIB.debug
    objcopy --strip-debug --add-gnu-debuglink=LIB.debug LIB

`zig objcopy` offers the same options but answers "error: unimplemented" for a shared library
(zig 0.17.1, the one the .venv pins), so this needs binutils' objcopy.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from .backends import GC_SECTIONS
from .errors import BadInput, ToolchainError

RUSTFLAGS = ("-C", "link-arg=-Wl,--build-id")  # rustc hands it to the linker (zig cc, gcc)
DEBUG_SUFFIX = ".debug"
INSTALL_HINT = (
    "install GNU binutils (Debian/Ubuntu: apt-get install binutils; Fedora: dnf "
    "install binutils; macOS: brew install binutils)"
)
# Where the stripped copies are made, inside the build's own output folder.
WORK_FOLDER = "split-debug"


@dataclass(frozen=True, kw_only=True)
class Split:
    """A library without debug sections, and the file that holds them."""

    library: Path
    debug: Path
    build_id: str


def rustflags(split_debug: bool) -> tuple[str, ...]:
    """What every backend adds to the user's RUSTFLAGS (BuildContext.rustflags)."""
    return (*GC_SECTIONS, *RUSTFLAGS) if split_debug else GC_SECTIONS


def profile_env(profile: str) -> dict[str, str]:
    """Keep DWARF in `profile` (cargo profile names take `-` as `_` in variables); line tables
    and variables both, as `debug = true`, so a symbolised stack shows arguments too."""
    name = "DEV" if profile in ("dev", "debug") else profile.upper().replace("-", "_")
    return {f"CARGO_PROFILE_{name}_DEBUG": "true"}


def build_id(path: Path) -> str | None:
    """The NT_GNU_BUILD_ID note of `path` as hex, or None (gABI notes; the note pyelftools
    decodes as `NT_GNU_BUILD_ID`)."""
    try:
        with path.open("rb") as stream:
            for section in ELFFile(stream).iter_sections():
                if not isinstance(section, NoteSection):
                    continue
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
    except (ELFError, OSError) as exc:
        raise BadInput(f"{path}: cannot read its ELF notes ({exc})") from None
    return None


def objcopy(environ: Mapping[str, str] | None = None) -> str:
    """GNU objcopy, or exit 3 saying how to install it."""
    found = shutil.which("objcopy", path=(environ or {}).get("PATH"))
    if found is None:
        raise ToolchainError(
            f"--split-debug needs GNU objcopy, which is not on PATH: {INSTALL_HINT}"
        )
    return found


def _run(tool: str, args: Sequence[str], library: Path, output: Path) -> None:
    """Run objcopy in `output`'s folder (so --add-gnu-debuglink records the bare name, which
    gdb looks for beside the library); nothing half-written is left on failure."""
    done = subprocess.run(
        [tool, *args], capture_output=True, text=True, check=False, cwd=output.parent
    )
    if done.returncode != 0:
        output.unlink(missing_ok=True)
        raise ToolchainError(
            f"--split-debug: `objcopy {' '.join(args)}` failed for "
            f"{library.name} (exit {done.returncode}); it needs GNU "
            f"binutils' objcopy: {INSTALL_HINT}",
            details=done.stderr.strip(),
        )


def split(library: Path, into: Path, *, tool: str | None = None) -> Split:
    """Copy `library` into folder `into` as a stripped library and its `.debug` file. The
    copy in cargo's target folder stays as cargo wrote it (cargo hard-links it to deps/)."""
    found = build_id(library)
    if found is None:
        raise ToolchainError(
            f"--split-debug: {library} has no GNU build-id note; the linker "
            f"ignored -Wl,--build-id (a recipe's own linker?): link with "
            f"--build-id so the .debug file can be found again"
        )
    tool = tool or objcopy()
    into.mkdir(parents=True, exist_ok=True)
    source = str(library.resolve())
    stripped, debug = into / library.name, into / (library.name + DEBUG_SUFFIX)
    _run(tool, ["--only-keep-debug", source, debug.name], library, debug)
    # objcopy records the debug file's name and its CRC-32 (binutils bfd/opncls.c).
    _run(
        tool,
        ["--strip-debug", f"--add-gnu-debuglink={debug.name}", source, stripped.name],
        library,
        stripped,
    )
    return Split(library=stripped, debug=debug, build_id=found)


def split_all(built: Sequence[Path]) -> tuple[list[Path], dict[str, bytes]]:
    """The stripped libraries to publish, and their `.debug` files (name -> bytes) for
    outdir.publish's `extra` (listed in the manifest's `files`)."""
    if not built:
        return [], {}
    tool = objcopy()
    parts = [split(path, path.parent / WORK_FOLDER, tool=tool) for path in built]
    return [p.library for p in parts], {p.debug.name: p.debug.read_bytes() for p in parts}
