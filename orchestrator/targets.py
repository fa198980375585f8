"""Rust target triples and what each means for zig, the ELF checker and Debian roots.

Records are NamedTuples: every check and build imports this table, and a NamedTuple costs a
fraction of a dataclass to define.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import UsageError
from .glibc import GlibcVersion


class EFlagsRule(NamedTuple):
    """Bits of e_flags the target's ABI requires: `e_flags & mask == value`."""

    mask: int
    value: int
    meaning: str  # what the bits say, for the message


class Target(NamedTuple):
    rust: str  # x86_64-unknown-linux-gnu
    zig: str  # x86_64-linux-gnu (also the target name in zig's abilists)
    elf_machine: str  # pyelftools' e_machine name
    elf_class: int  # 32 or 64
    glibc_floor: GlibcVersion  # oldest glibc Rust's std supports on this target
    debian_arch: str  # for debootstrap --arch
    little_endian: bool = True
    required_eflags: EFlagsRule | None = None
    # Dynamic relocation types (the psABI documents): initial-exec TLS (static TLS), and the
    # x86 TLS descriptors whose loader bugs matter (BZ #31372, #31501; on aarch64 they are the
    # default TLS dialect and fine).
    tls_initial_exec_relocs: frozenset[int] = frozenset()
    tls_descriptor_relocs: frozenset[int] = frozenset()
    # The dynamic loader's file names as glibc installs it (sysdeps/unix/sysv/linux/*/ldconfig.h
    # and shlib-versions); the first is the one a link records in DT_NEEDED.
    ld_so_names: tuple[str, ...] = ()

    @property
    def env_suffix(self) -> str:
        """The triple as cc-rs spells it in variable names (CC_x86_64_unknown_linux_gnu)."""
        return self.rust.replace("-", "_").replace(".", "_")

    @property
    def arch(self) -> str:
        """The triple's first part, as reports show it (x86_64, aarch64, i686...)."""
        return self.rust.split("-")[0]


_V = GlibcVersion
TARGETS: dict[str, Target] = {
    t.rust: t
    for t in (
        Target(
            "x86_64-unknown-linux-gnu",
            "x86_64-linux-gnu",
            "EM_X86_64",
            64,
            _V(2, 17),
            "amd64",
            tls_initial_exec_relocs=frozenset({18, 23}),  # R_X86_64_TPOFF64, GOTTPOFF
            tls_descriptor_relocs=frozenset({36}),  # R_X86_64_TLSDESC
            ld_so_names=("ld-linux-x86-64.so.2",),
        ),
        Target(
            "aarch64-unknown-linux-gnu",
            "aarch64-linux-gnu",
            "EM_AARCH64",
            64,
            _V(2, 17),
            "arm64",
            tls_initial_exec_relocs=frozenset({1030}),  # R_AARCH64_TLS_TPREL64
            ld_so_names=("ld-linux-aarch64.so.1",),
        ),
        Target(
            "i686-unknown-linux-gnu",
            "x86-linux-gnu",
            "EM_386",
            32,
            _V(2, 17),
            "i386",
            tls_initial_exec_relocs=frozenset({14, 37}),  # R_386_TLS_TPOFF, TLS_TPOFF32
            tls_descriptor_relocs=frozenset({41}),  # R_386_TLS_DESC
            ld_so_names=("ld-linux.so.2",),
        ),
        Target(
            "armv7-unknown-linux-gnueabihf",
            "arm-linux-gnueabihf",
            "EM_ARM",
            32,
            _V(2, 17),
            "armhf",
            required_eflags=EFlagsRule(0x400, 0x400, "the hard-float ABI (EF_ARM_ABI_FLOAT_HARD)"),
            tls_initial_exec_relocs=frozenset({19}),  # R_ARM_TLS_TPOFF32
            ld_so_names=("ld-linux-armhf.so.3", "ld-linux.so.3"),
        ),
        Target(
            "powerpc64le-unknown-linux-gnu",
            "powerpc64le-linux-gnu",
            "EM_PPC64",
            64,
            _V(2, 17),
            "ppc64el",
            tls_initial_exec_relocs=frozenset({73}),  # R_PPC64_TPREL64
            ld_so_names=("ld64.so.2",),
        ),
        Target(
            "riscv64gc-unknown-linux-gnu",
            "riscv64-linux-gnu",
            "EM_RISCV",
            64,
            _V(2, 27),
            "riscv64",
            required_eflags=EFlagsRule(0x6, 0x4, "the lp64d double-float ABI"),
            tls_initial_exec_relocs=frozenset({10, 11}),  # R_RISCV_TLS_TPREL32/64
            ld_so_names=("ld-linux-riscv64-lp64d.so.1",),
        ),
        Target(
            "s390x-unknown-linux-gnu",
            "s390x-linux-gnu",
            "EM_S390",
            64,
            _V(2, 17),
            "s390x",
            little_endian=False,
            tls_initial_exec_relocs=frozenset({56}),  # R_390_TLS_TPOFF
            ld_so_names=("ld64.so.1",),
        ),
    )
}
DEFAULT_TARGET = "x86_64-unknown-linux-gnu"


def lookup(triple: str) -> Target:
    try:
        return TARGETS[triple]
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise UsageError(
            f"--target {triple!r} is not a Linux glibc target this tool knows; use one of: {known}"
        ) from None


# e_machine -> the first target listed with it (each has its own today; the check asks per file)
_BY_MACHINE = {t.elf_machine: t for t in reversed(TARGETS.values())}


def by_elf_machine(machine: str) -> Target | None:
    """The target of an ELF file's e_machine (first match; i686/x86_64 differ by machine)."""
    return _BY_MACHINE.get(machine)
