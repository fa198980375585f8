"""The seccomp filter that makes this machine's kernel look like an old one (`--kernel 3.10`).

The test loader (resources/loader.c) installs the program built here before it dlopens a
library: system calls the old kernel had are allowed, every other one traps (SIGSYS), and the
loader's handler counts it and makes it return -ENOSYS, as the old kernel would answer. It is
an allow-list, so a call newer than syscalls.json is denied too.

The program follows the kernel's Documentation/userspace-api/seccomp_filter.rst and seccomp(2):
check `seccomp_data.arch` first (a call made through another ABI has other numbers), refuse
x86_64's x32 ABI bit (__X32_SYSCALL_BIT, 0x40000000), then compare `seccomp_data.nr`.
Jump offsets of classic BPF are 8 bits, so the allowed numbers are packed into ranges, each
tested on its own and followed by its own `ret ALLOW`: no jump is longer than two instructions,
however long the list.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import UsageError

# linux/filter.h, linux/bpf_common.h: classic BPF opcodes.
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
BPF_JGT_K = 0x05 | 0x20 | 0x00  # BPF_JMP | BPF_JGT | BPF_K
BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K
BPF_MAXINSNS = 4096  # linux/bpf_common.h: the kernel refuses longer programs

# linux/seccomp.h: actions, and the offsets in struct seccomp_data {int nr; __u32 arch; ...}.
SECCOMP_RET_KILL_PROCESS = 0x80000000  # since 4.14; older kernels kill the thread instead
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ALLOW = 0x7FFF0000
OFFSET_NR = 0
OFFSET_ARCH = 4

# linux/audit.h: AUDIT_ARCH_* = EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # arch/x86/include/uapi/asm/unistd.h

_INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter {__u16 code; __u8 jt, jf; __u32 k}


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """One `struct sock_filter`: jt/jf are how many instructions to skip when true/false."""

    code: int
    k: int
    jt: int = 0
    jf: int = 0


def ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted numbers as inclusive runs: {0, 1, 2, 5} -> [(0, 2), (5, 5)]."""
    runs: list[tuple[int, int]] = []
    for number in sorted(set(numbers)):
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


def _allow_range(low: int, high: int) -> list[Instruction]:
    """Allow low <= nr <= high; otherwise fall through to the next test."""
    allow = Instruction(code=BPF_RET_K, k=SECCOMP_RET_ALLOW)
    if low == high:
        return [Instruction(code=BPF_JEQ_K, k=low, jt=0, jf=1), allow]
    return [
        Instruction(code=BPF_JGE_K, k=low, jt=0, jf=2),  # nr < low: next test
        Instruction(code=BPF_JGT_K, k=high, jt=1, jf=0),  # nr > high: next test
        allow,
    ]


def program(allowed: Iterable[int], arch: str) -> list[Instruction]:
    """The filter for ARCH allowing only the system calls numbered ALLOWED; others trap."""
    if arch not in AUDIT_ARCH:
        raise UsageError(
            f"a kernel floor can only be simulated on {', '.join(AUDIT_ARCH)}, not {arch}"
        )
    kill = Instruction(code=BPF_RET_K, k=SECCOMP_RET_KILL_PROCESS)
    code = [
        Instruction(code=BPF_LD_W_ABS, k=OFFSET_ARCH),
        Instruction(code=BPF_JEQ_K, k=AUDIT_ARCH[arch], jt=1, jf=0),
        kill,
        Instruction(code=BPF_LD_W_ABS, k=OFFSET_NR),
    ]
    if arch == "x86_64":
        code += [Instruction(code=BPF_JGE_K, k=X32_SYSCALL_BIT, jt=0, jf=1), kill]
    for low, high in ranges(allowed):
        code += _allow_range(low, high)
    code.append(Instruction(code=BPF_RET_K, k=SECCOMP_RET_TRAP))
    if len(code) > BPF_MAXINSNS:
        raise UsageError(
            f"the seccomp filter would have {len(code)} instructions, more than "
            f"the kernel's {BPF_MAXINSNS}"
        )
    return code


def encode(code: list[Instruction]) -> bytes:
    """The program as the kernel reads it (`struct sock_fprog.filter`, native byte order)."""
    return b"".join(_INSTRUCTION.pack(i.code, i.jt, i.jf, i.k) for i in code)


def decode(data: bytes) -> list[Instruction]:
    """The inverse of encode (for tests and for reading a filter file back)."""
    if len(data) % _INSTRUCTION.size:
        raise ValueError(f"{len(data)} bytes is not a whole number of BPF instructions")
    return [
        Instruction(code=c, jt=jt, jf=jf, k=k) for c, jt, jf, k in _INSTRUCTION.iter_unpack(data)
    ]
