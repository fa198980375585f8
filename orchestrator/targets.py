"""Rust target triples and what each means for zig, the ELF checker and Debian roots."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .glibc import GlibcVersion


@dataclass(frozen=True)
class Target:
    rust: str            # x86_64-unknown-linux-gnu
    zig: str             # x86_64-linux-gnu (also the target name in zig's abilists)
    elf_machine: str     # pyelftools' e_machine name
    elf_class: int       # 32 or 64
    glibc_floor: GlibcVersion  # oldest glibc Rust's std supports on this target
    debian_arch: str     # for debootstrap --arch

    @property
    def env_suffix(self) -> str:
        """The triple as cc-rs spells it in variable names (CC_x86_64_unknown_linux_gnu)."""
        return self.rust.replace("-", "_").replace(".", "_")


_V = GlibcVersion
TARGETS: dict[str, Target] = {t.rust: t for t in (
    Target("x86_64-unknown-linux-gnu", "x86_64-linux-gnu", "EM_X86_64", 64, _V(2, 17), "amd64"),
    Target("aarch64-unknown-linux-gnu", "aarch64-linux-gnu", "EM_AARCH64", 64, _V(2, 17), "arm64"),
    Target("i686-unknown-linux-gnu", "x86-linux-gnu", "EM_386", 32, _V(2, 17), "i386"),
    Target("armv7-unknown-linux-gnueabihf", "arm-linux-gnueabihf", "EM_ARM", 32, _V(2, 17),
           "armhf"),
    Target("powerpc64le-unknown-linux-gnu", "powerpc64le-linux-gnu", "EM_PPC64", 64, _V(2, 17),
           "ppc64el"),
    Target("riscv64gc-unknown-linux-gnu", "riscv64-linux-gnu", "EM_RISCV", 64, _V(2, 27),
           "riscv64"),
    Target("s390x-unknown-linux-gnu", "s390x-linux-gnu", "EM_S390", 64, _V(2, 17), "s390x"),
)}
DEFAULT_TARGET = "x86_64-unknown-linux-gnu"


def lookup(triple: str) -> Target:
    try:
        return TARGETS[triple]
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise UsageError(f"--target {triple!r} is not a Linux glibc target this tool knows; "
                         f"use one of: {known}") from None


def by_elf_machine(machine: str) -> Target | None:
    """The target of an ELF file's e_machine (first match; i686/x86_64 differ by machine)."""
    for target in TARGETS.values():
        if target.elf_machine == machine:
            return target
    return None
