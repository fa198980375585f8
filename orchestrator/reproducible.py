"""Same commit, same bytes: the settings that make a build independent of where it ran, and the
comparison that proves it (`--verify-reproducible`).

Paths are what differ between two checkouts: rustc embeds them in debug info and panic
messages, C compilers in debug info. Both get the same fixed names (`/build`, `/cargo`,
`/rustc`), whatever folder the crate was in.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import toolchain
from .cargo import Crate
from .digest import sha256_file
from .targets import Target

WORKSPACE_AS = "/build"
CARGO_HOME_AS = "/cargo"
TARGET_DIR_AS = "/build-target"
SYSROOT_AS = "/rustc/sysroot"
REMAP_FLAG = "--remap-path-prefix"


def path_remaps(crate: Crate, env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(host path, fixed path) pairs, most general first: rustc applies the last match.

    The target folder is always mapped on its own, last, so that generated files (OUT_DIR)
    get the same name wherever the target folder is.
    """
    cargo_home = env.get("CARGO_HOME") or str(Path.home() / ".cargo")
    remaps = [(cargo_home, CARGO_HOME_AS)]
    sysroot = toolchain.sysroot(crate.root.resolve())
    if sysroot:
        remaps.append((sysroot, SYSROOT_AS))
    remaps.append((str(crate.source_root), WORKSPACE_AS))
    remaps.append((str(crate.target_dir), TARGET_DIR_AS))
    return tuple(remaps)


def remap_rustflags(remaps: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{REMAP_FLAG}={src}={dst}" for src, dst in remaps]


def _cc_flags(env: Mapping[str, str], target: Target, name: str) -> str:
    """The flags cc-rs would take for `name` (CFLAGS...): it uses the first variable set."""
    for key in (f"{name}_{target.rust}", f"{name}_{target.env_suffix}", f"TARGET_{name}", name):
        if key in env:
            return env[key]
    return ""


def environment(
    crate: Crate, target: Target, env: Mapping[str, str], remaps: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """Variables for cargo: C/C++ path maps (kept with the user's flags), no incremental
    state, and SOURCE_DATE_EPOCH from the last commit when the crate is in git."""
    prefix_maps = " ".join(f"-ffile-prefix-map={src}={dst}" for src, dst in remaps)
    out = {"CARGO_INCREMENTAL": "0"}
    for name in ("CFLAGS", "CXXFLAGS"):
        user = _cc_flags(env, target, name)
        out[f"{name}_{target.env_suffix}"] = f"{user} {prefix_maps}".strip()
    if "SOURCE_DATE_EPOCH" not in env:
        epoch = last_commit_time(crate.root)
        if epoch:
            out["SOURCE_DATE_EPOCH"] = epoch
    return out


def last_commit_time(folder: Path) -> str | None:
    git = shutil.which("git")
    if not git:
        return None
    proc = subprocess.run(
        [git, "-C", str(folder), "log", "-1", "--format=%ct"], capture_output=True, text=True
    )
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value.isdigit() else None


@dataclass(frozen=True)
class Difference:
    name: str  # library file name
    sections: list[str]  # sections whose bytes differ (or "<file layout>")
    diffoscope: str = ""  # diffoscope's text output, when it is installed


def differing_sections(a: Path, b: Path) -> list[str]:
    """Names of the ELF sections whose contents differ between two builds of one library."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            ea, eb = ELFFile(fa), ELFFile(fb)
            sa = {s.name: s for s in ea.iter_sections()}
            sb = {s.name: s for s in eb.iter_sections()}
            names = [n for n in sa if n not in sb or sa[n].data() != sb[n].data()]
            names += [n for n in sb if n not in sa]
    except (ELFError, OSError, ValueError) as exc:
        return [f"<unreadable: {exc}>"]
    return names or ["<file layout>"]


def compare(first: Sequence[Path], second: Sequence[Path]) -> list[Difference]:
    """Pair libraries by file name and list those whose bytes differ."""
    by_name = {p.name: p for p in second}
    differences = []
    for a in first:
        b = by_name.get(a.name)
        if b is None:
            differences.append(Difference(a.name, ["<missing from the second build>"]))
        elif sha256_file(a) != sha256_file(b):
            text = ""
            if shutil.which("diffoscope"):
                proc = subprocess.run(
                    ["diffoscope", "--text", "-", str(a), str(b)], capture_output=True, text=True
                )
                text = proc.stdout[-4000:]
            differences.append(Difference(a.name, differing_sections(a, b), text))
    return differences
