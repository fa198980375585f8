"""Prove a library loads on an old glibc: dlopen it under a root's own dynamic loader.

A symbol check models what the loader will do; this asks the loader itself. The root's
`ld.so` runs a small test loader (resources/loader.c, built by zig for the target's oldest
glibc) with `--library-path` pointing into the root, so no chroot or privileges are needed:

    ROOT/lib/x86_64-linux-gnu/ld-2.31.so --inhibit-cache --library-path ROOT/... LOADER LIB

Paths inside the root are resolved against the root (its `lib64 -> /lib/...` must not lead to
the host's /lib). Without a chroot the kernel still resolves what ld.so opens against the
host: ld.so searches its built-in default folders (/lib, /usr/lib...) on the *host* for a
dependency the root lacks, and a symlink in the root with an absolute target or too many `..`
(`usr/local/lib/libc.so.6 -> ../../../../usr/lib/...`) leads to the host's file. So the test
loader reports every object in the process, as ld.so named it and as the kernel mapped it
(its real path), and any object whose real path lies outside the root, other than the test
loader and the library under test, makes the result a failure: for any root, also one this
tool did not unpack.

With a kernel floor (`--kernel 3.10`), the test loader first installs a seccomp filter built by
seccomp.py that allows only the system calls that kernel had; the others return ENOSYS, and
each one denied is named in the result. The root's glibc must itself run on that kernel: its
libc.so.6 carries the oldest kernel its build supports (configure --enable-kernel) in its ABI
note (NT_GNU_ABI_TAG, glibc's csu/abi-note.S; such a glibc stops with "FATAL: kernel too old"
below it, sysdeps/unix/sysv/linux/dl-osinfo.h), so a floor below it cannot be simulated.

A proof states what it proved (Proof): the root's glibc, the simulated kernel, and what code
ran; a bare dlopen runs only the constructors.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import signal
import stat
import struct
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import jsonout
from .check.discover import ElfKind, elf_kind
from .elffile import (
    ET_DYN,
    PT_NOTE,
    ElfError,
    ElfFile,
    open_elf,
)
from .errors import BadInput, LoadRefused, ToolchainError, UsageError
from .files import staged
from .glibc import GlibcVersion
from .logger import info, step
from .paths import RESOURCES_DIR, cache_dir
from .syscalls import KernelVersion, allowed_numbers, name_of
from .targets import DEFAULT_TARGET, TARGETS, Target, by_elf_machine, lookup

LOADER_SOURCE = RESOURCES_DIR / "loader.c"
LOADER_FLAGS = ("-O2", "-Wall", "-Wextra")
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 7 * 24 * 3600.0  # a week; far beyond any load, and within what poll() takes
MAX_OUTPUT = 256 * 1024  # what the library prints; the tail is kept
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit

LOADER_CALL_FAILED = 12  # the loader's exit status when the call returned non-zero (loader.c)
NT_GNU_ABI_TAG = 1  # elf.h: the note giving the oldest kernel a libc supports
# System call numbers are per architecture (syscalls.json); ELF machine -> its name there.
SYSCALL_ARCH = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}
MAX_NAMED_OUTSIDE = 3  # objects from outside the root named in the message; the rest counted

# Folders glibc searches by default; an object loaded from one on the host leaked in.
HOST_DEFAULT_DIRS = (
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libx32",
    "/usr/local/lib",
)


@dataclass
class LoadResult:
    """What the root's loader made of one library."""

    lib: Path
    loaded: bool
    message: str  # glibc's own dlerror text when refused; otherwise what went wrong, or ""
    called: bool = False
    returned: int | None = None
    output: str = ""  # what the library printed (stdout and stderr, interleaved)
    ok: bool = False
    signal: str | None = None  # SIGSEGV... when the process crashed
    objects: list[str] = field(default_factory=list)  # every file mapped into the process
    denied: dict[str, int] = field(default_factory=dict)  # system call -> times denied

    def to_json(self) -> dict[str, object]:
        return {
            "lib": str(self.lib),
            "loaded": self.loaded,
            "message": self.message,
            "called": self.called,
            "returned": self.returned,
            "output": self.output,
            "ok": self.ok,
            "signal": self.signal,
            "objects": self.objects,
            "denied": self.denied,
        }


@dataclass(frozen=True)
class RootInfo:
    """Where a root's dynamic loader and libraries are, as host paths."""

    root: Path
    ld_so: Path
    library_path: tuple[Path, ...]
    glibc: str | None  # e.g. "2.31", read from the root's libc.so.6
    min_kernel: KernelVersion | None = None  # the oldest kernel that libc.so.6 runs on


# -- paths inside a root ---------------------------------------------------------------------
def resolve_in_root(root: Path, path: str) -> Path | None:
    """Host path of PATH inside ROOT, following symlinks as a chroot would; None if missing.

    Absolute symlink targets restart at ROOT and `..` stops at ROOT, so nothing resolves to
    the host's own files.
    """
    pending = deque(part for part in path.split("/") if part not in ("", "."))
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.popleft()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            links += 1
            if links > MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
        else:
            resolved.append(part)
    return root.joinpath(*resolved)


def _elf_header(path: Path) -> tuple[int, str, int] | None:
    """(e_type, e_machine, class bits) of an ELF file in a root, or None if it is not one."""
    try:
        with open_elf(path) as elf:
            return elf.type, elf.machine, elf.bits
    except (OSError, ValueError, ElfError):
        return None


def _search_dirs(root: Path) -> list[str]:
    """Folders (root-relative) where ld.so and libraries live: multiarch first, like Debian."""
    dirs: list[str] = []
    for top in ("lib", "usr/lib"):
        where = resolve_in_root(root, top)
        if where is not None and where.is_dir():
            dirs += sorted(
                f"{top}/{entry.name}"
                for entry in where.iterdir()
                if re.fullmatch(r"[a-z0-9_]+-linux-gnu\w*", entry.name)
            )
    return dirs + ["lib64", "usr/lib64", "lib", "usr/lib"]


def _ld_so_conf_dirs(root: Path, conf: str = "etc/ld.so.conf", depth: int = 0) -> list[str]:
    """The folders of the root's ld.so.conf (its ldconfig cache is what it would search)."""
    path = resolve_in_root(root, conf)
    if path is None or depth > 8 or not path.is_file():
        return []
    dirs: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap"):
            continue
        if line.startswith("include"):
            for pattern in line.split()[1:]:
                folder, _, glob = pattern.lstrip("/").rpartition("/")
                where = resolve_in_root(root, folder)
                if where is not None and where.is_dir():
                    for match in sorted(where.glob(glob)):
                        dirs += _ld_so_conf_dirs(root, f"{folder}/{match.name}", depth + 1)
            continue
        dirs += [entry.lstrip("/") for entry in line.split() if entry.startswith("/")]
    return dirs


def _find_ld_so(root: Path, target: Target, search: list[str]) -> Path | None:
    names = target.ld_so_names
    candidates = [f"{folder}/{name}" for name in names for folder in search]
    for folder in search:  # any glibc ld.so of the right machine, whatever its name
        where = resolve_in_root(root, folder)
        if where is not None and where.is_dir():
            candidates += sorted(
                f"{folder}/{entry.name}"
                for entry in where.iterdir()
                if re.fullmatch(r"ld(-linux)?[-\w.]*\.so(\.\d+)*|ld64\.so\.\d", entry.name)
            )
    for candidate in candidates:
        path = resolve_in_root(root, candidate)
        if path is None or not path.is_file():
            continue
        header = _elf_header(path)
        if (
            header is not None
            and header[1] == target.elf_machine
            and header[2] == target.elf_class
            and header[0] == ET_DYN
        ):
            return path
    return None


def _glibc_version(libc: Path) -> str | None:
    """The version in libc's banner ("... stable release version 2.31.")."""
    try:
        data = libc.read_bytes()
    except OSError:
        return None
    match = re.search(rb"release version (\d+\.\d+)", data)
    return match.group(1).decode() if match else None


def _min_kernel(libc: Path) -> KernelVersion | None:
    """The oldest kernel LIBC starts on, from its NT_GNU_ABI_TAG note ("GNU", OS 0 = Linux,
    then major, minor, patch: glibc's csu/abi-note.S)."""
    try:
        with open_elf(libc) as elf:
            for segment in elf.segments:
                if segment.type != PT_NOTE:
                    continue
                for name, ntype, desc in elf._notes(segment):
                    if name == b"GNU\0" and ntype == NT_GNU_ABI_TAG and len(desc) >= 16:
                        order = "<" if elf.little else ">"
                        os_, major, minor, patch = struct.unpack_from(order + "4I", desc)
                        if os_ == 0:
                            return KernelVersion(major, minor, patch)
    except (OSError, ValueError, ElfError):
        return None
    return None


def inspect_root(root: Path, target: Target) -> RootInfo:
    """Find ROOT's dynamic loader and library folders for TARGET, or say why it is no root."""
    if not root.is_dir():
        raise BadInput(f"{root}: no such root folder")
    root = root.resolve()
    search = _search_dirs(root)
    ld_so = _find_ld_so(root, target, search)
    library_path: list[Path] = []
    libc: Path | None = None
    for folder in _ld_so_conf_dirs(root) + search:
        where = resolve_in_root(root, folder)
        if where is None or not where.is_dir() or where in library_path:
            continue
        library_path.append(where)
        candidate = where / "libc.so.6"
        if libc is None and candidate.exists():
            real = resolve_in_root(root, str(candidate.relative_to(root)))
            header = _elf_header(real) if real is not None else None
            if (
                header is not None
                and header[1] == target.elf_machine
                and header[2] == target.elf_class
            ):
                libc = real
    if ld_so is None or libc is None:
        missing = "dynamic loader" if ld_so is None else "libc.so.6"
        raise BadInput(
            f"{root} is not a glibc root for {target.rust}: no {target.elf_machine} "
            f"{missing} in lib/, lib64/ or usr/lib*; pass the folder of a Linux root "
            "filesystem (e.g. from `build.py rootfs`)"
        )
    return RootInfo(root, ld_so, tuple(library_path), _glibc_version(libc), _min_kernel(libc))


# -- the loader ------------------------------------------------------------------------------
def loader_binary(target: Target) -> Path:
    """The test loader for TARGET, built by zig for its oldest glibc and cached."""
    from .zig import zig_binary, zig_version

    source = LOADER_SOURCE.read_bytes()
    zig_target = f"{target.zig}.{target.glibc_floor}"
    key = hashlib.sha256(
        b"\0".join(
            [source, zig_version().encode(), zig_target.encode(), " ".join(LOADER_FLAGS).encode()]
        )
    ).hexdigest()[:16]
    folder = cache_dir("loader")
    binary = folder / f"loader-{target.zig}-{key}"
    if binary.is_file():
        return binary
    with staged(binary, 0o755) as partial:
        try:
            proc = subprocess.run(
                [
                    str(zig_binary()),
                    "cc",
                    "-target",
                    zig_target,
                    *LOADER_FLAGS,
                    "-o",
                    str(partial),
                    str(LOADER_SOURCE),
                    "-ldl",
                ],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            raise ToolchainError(
                f"zig took too long building the test loader for {zig_target}"
            ) from None
        if proc.returncode != 0:
            raise ToolchainError(
                f"zig could not build the test loader for {zig_target}",
                details=(proc.stdout + proc.stderr)[-3000:],
            )
    return binary


# -- running it ------------------------------------------------------------------------------
def _check_lib(lib: Path) -> str:
    """The ELF machine of LIB, or BadInput when it is not a sound shared library.

    Read with elffile.py, the reader `check` uses, so that a file `check` calls malformed is
    bad input here too, before the loader maps it (a truncated file dies of SIGBUS there).
    """
    if not lib.exists():
        raise BadInput(f"{lib}: no such file")
    if not lib.is_file():
        raise BadInput(f"{lib}: not a file; pass the .so itself")
    try:
        with open_elf(lib) as elf:
            kind = elf_kind(elf)
            if kind not in (ElfKind.SHARED_LIBRARY, ElfKind.PIE_EXECUTABLE):
                raise BadInput(
                    f"{lib}: {kind.value} (ELF type {elf.type}), not a shared library; pass the .so"
                )
            _check_mappable(elf)
            if kind is ElfKind.PIE_EXECUTABLE:
                raise BadInput(f"{lib}: {kind.value}, not a shared library; pass the .so")
            return elf.machine
    except ElfError as exc:
        raise BadInput(f"{lib}: {exc}; pass an intact shared library (.so)") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise BadInput(f"{lib}: cannot read it ({reason})") from None


def _check_mappable(elf: ElfFile) -> None:
    """Raise ElfError unless the loader can map the file and read its dynamic tables."""
    elf.require_intact()
    if not elf.has_dynamic:
        raise ElfError("no dynamic section (PT_DYNAMIC): not a shared library")
    # The tables the loader walks, read as `check` reads them (each raises ElfError).
    _ = elf.needed, elf.version_needs, elf.version_defs, elf.undefined_symbols


def _run_env() -> dict[str, str]:
    """A clean environment: no LD_PRELOAD/LD_LIBRARY_PATH from the host may bend the result."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LC_ALL": "C",
        "HOME": os.environ.get("HOME", "/"),
    }


def outside_root(paths: list[str], root: Path, own: tuple[Path, ...]) -> dict[Path, str]:
    """Objects of the process whose real path is outside ROOT: {real path: path as named}.

    The kernel's resolution is what counts (a path under ROOT may be a symlink that climbs
    out of it); OWN are the files that belong to the test itself (the loader, the library).
    The first name seen for a real path is kept: the loader's own name (a symlink in the
    root, a host folder) says more than the mapping's real path.
    """
    found: dict[Path, str] = {}
    for path in paths:
        if not path.startswith("/"):  # linux-vdso.so.1
            continue
        real = Path(os.path.realpath(path.removesuffix(" (deleted)")))
        if real.is_relative_to(root) or real in own or real in found:
            continue
        found[real] = path
    return found


def _describe_outside(found: dict[Path, str], root: Path) -> str:
    """One clause naming the objects that came from outside the root."""
    parts = []
    for real, path in list(found.items())[:MAX_NAMED_OUTSIDE]:
        if any(path == d or path.startswith(d + "/") for d in HOST_DEFAULT_DIRS):
            parts.append(f"{Path(path).name} (found only on this host, as {path})")
        elif Path(path).is_relative_to(root):
            parts.append(
                f"{Path(path).name} (its path in the root, {path}, leads out of the root to {real})"
            )
        else:
            parts.append(f"{Path(path).name} (from {real}, outside the root)")
    more = len(found) - MAX_NAMED_OUTSIDE
    names = ", ".join(parts) + (f" and {more} more" if more > 0 else "")
    if all("found only on this host" in part for part in parts):
        return f"needs libraries the root does not have: {names}"
    return f"loaded objects from outside the root: {names}"


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _run_one(
    info: RootInfo,
    loader: Path,
    lib: Path,
    call: str | None,
    timeout: float,
    target: Target,
    kernel: KernelVersion | None = None,
    filter_program: bytes | None = None,
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="verify-load-") as scratch:
        report_path = Path(scratch) / "report"
        command = [
            str(info.ld_so),
            "--inhibit-cache",
            "--library-path",
            ":".join(map(str, info.library_path)),
            str(loader),
            "--report",
            str(report_path),
        ]
        if filter_program is not None:
            filter_path = Path(scratch) / "seccomp.bpf"
            filter_path.write_bytes(filter_program)
            command += ["--seccomp", str(filter_path)]
        if call:
            command += ["--call", call]
        command.append(str(lib.resolve()))
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_run_env(),
                cwd=scratch,
                start_new_session=True,
            )
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                raise ToolchainError(
                    f"this machine cannot run the {target.rust} loader of "
                    f"{info.root}; install qemu-user-static (binfmt_misc) to "
                    "verify roots of another architecture"
                ) from None
            raise ToolchainError(f"cannot run {info.ld_so}: {exc.strerror}") from None
        timed_out = False
        try:
            raw, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the library may have started children
            try:
                raw, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a grandchild still holds the pipe
                proc.stdout.close()  # type: ignore[union-attr]
                proc.wait()
                raw = b""
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        try:
            report = report_path.read_text(errors="replace")
        except OSError:
            report = ""
    output = raw[-MAX_OUTPUT:].decode(errors="replace")
    return _interpret(
        info,
        lib,
        call,
        proc.returncode,
        report,
        output,
        timed_out,
        timeout,
        loader=loader,
        arch=SYSCALL_ARCH.get(target.elf_machine),
        kernel=kernel,
    )


def denied_calls(report_lines: list[tuple[str, str]], arch: str | None) -> dict[str, int]:
    """{system call: times denied} from the loader's "denied" (first denial, written by the
    SIGSYS handler as it happens) and "denied-count" (totals at the end) lines.

    A process that died before the totals still names each call it was denied, once.
    """
    counts: dict[int, int] = {}
    for key, value in report_lines:
        fields = value.split()
        if key == "denied" and fields and fields[0].isdigit():
            counts.setdefault(int(fields[0]), 1)
        elif key == "denied-count" and len(fields) == 2 and all(f.isdigit() for f in fields):
            counts[int(fields[0])] = int(fields[1])
    named: dict[str, int] = {}
    for number, count in sorted(counts.items()):
        name = (name_of(number, arch) if arch else None) or f"system call {number}"
        named[name] = named.get(name, 0) + count
    return named


def describe_denied(denied: dict[str, int], kernel: KernelVersion | None) -> str:
    """ "getrandom (1x), statx (2x) denied: not in Linux 3.10", or "" when none was."""
    if not denied:
        return ""
    calls = ", ".join(f"{name} ({count}x)" for name, count in sorted(denied.items()))
    return f"{calls} denied: not in Linux {kernel}" if kernel else f"{calls} denied"


def _interpret(
    info: RootInfo,
    lib: Path,
    call: str | None,
    returncode: int,
    report: str,
    output: str,
    timed_out: bool,
    timeout: float,
    *,
    loader: Path | None = None,
    arch: str | None = None,
    kernel: KernelVersion | None = None,
) -> LoadResult:
    """Turn the loader's report lines and exit status into a LoadResult.

    A library that loaded is still a failure when an object of the process (as ld.so named
    it, or as the kernel mapped it) has a real path outside the root: see outside_root.
    A kernel floor that could not be installed (no seccomp here) is an error, never a pass.
    """
    events: dict[str, str] = {}
    objects: list[str] = []
    mapped: list[str] = []
    lines = [
        (key, value) for key, _, value in (line.partition("\t") for line in report.splitlines())
    ]
    for key, value in lines:
        if key == "object":
            objects.append(value)
        elif key == "mapped":
            mapped.append(value)
        else:
            events.setdefault(key, value)
    if "nofilter" in events:
        raise ToolchainError(
            f"this kernel or container cannot install a seccomp filter "
            f"({events['nofilter']}), so Linux {kernel or 'X.Y'} cannot be "
            "simulated here; run verify-load --kernel on a kernel with "
            "CONFIG_SECCOMP_FILTER and a container that allows prctl "
            "PR_SET_SECCOMP, or drop --kernel"
        )
    if "start" not in events:  # the root's glibc could not even run the loader
        if timed_out:
            raise BadInput(f"{info.ld_so} did not start the test loader within {timeout:g}s")
        raise BadInput(
            f"the glibc of {info.root} cannot run the test loader (status "
            f"{returncode}); is it older than 2.17 or broken?",
            details=output[-2000:],
        )
    if kernel is not None and "filtered" not in events:
        raise ToolchainError(
            f"the test loader did not confirm the seccomp filter for Linux "
            f"{kernel} (status {returncode}); nothing was proven",
            details=output[-2000:],
        )
    result = LoadResult(
        lib=lib,
        loaded="loaded" in events,
        message="",
        output=output,
        objects=objects,
        denied=denied_calls(lines, arch),
    )
    crashed = returncode < 0 and not timed_out
    if crashed:
        result.signal = _signal_name(returncode)
    what = f"{call}()" if call else "the library"
    if "refused" in events:
        result.message = events["refused"]
        return result
    if not result.loaded:
        result.message = (
            f"timed out after {timeout:g}s while loading"
            if timed_out
            else f"crashed with {result.signal} while loading (in a constructor)"
            if crashed
            else f"the process exited with status {returncode} while loading (a "
            "constructor ended it)"
        )
        return result
    own = tuple(Path(os.path.realpath(p)) for p in (lib, loader) if p is not None)
    leaked = outside_root(objects + mapped, info.root, own)
    if leaked:
        result.loaded = False
        result.message = _describe_outside(leaked, info.root)
    if "nosymbol" in events:
        result.message = result.message or events["nosymbol"]
        return result
    if "calling" in events:
        result.called = True
        if events.get("returned", "").lstrip("-").isdigit():
            result.returned = int(events["returned"])
        elif not result.message:
            result.message = (
                f"{what} did not return within {timeout:g}s"
                if timed_out
                else f"{what} crashed with {result.signal}"
                if crashed
                else f"{what} ended the process with status {returncode}"
            )
            return result
    if not result.message:
        if timed_out:
            result.message = f"timed out after {timeout:g}s"
        elif "done" not in events or crashed:
            result.message = (
                f"crashed with {result.signal} at exit (in a destructor)"
                if crashed
                else f"the process ended with status {returncode}"
            )
        elif result.returned not in (None, 0):
            result.message = f"{what} returned {result.returned}"
        elif returncode != 0 and returncode != LOADER_CALL_FAILED:
            result.message = f"the process ended with status {returncode} at exit"
    result.ok = not result.message
    if not result.ok and result.denied:
        result.message += f" ({describe_denied(result.denied, kernel)})"
    return result


def kernel_filter(kernel: KernelVersion, target: Target) -> bytes:
    """The seccomp program (seccomp.py) that lets only Linux KERNEL's system calls through."""
    from .seccomp import encode, program

    arch = SYSCALL_ARCH.get(target.elf_machine)
    if arch is None:
        raise UsageError(
            f"--kernel: a kernel floor can only be simulated for "
            f"{', '.join(SYSCALL_ARCH.values())} libraries, not {target.rust}"
        )
    return encode(program(allowed_numbers(kernel, arch), arch))


def check_kernel_floor(root_info: RootInfo, kernel: KernelVersion) -> None:
    """Refuse a floor the root's own glibc does not start on: the proof could not run."""
    needs = root_info.min_kernel
    if needs is not None and kernel < needs:
        raise ToolchainError(
            f"--kernel {kernel} is below Linux {needs}, the oldest kernel "
            f"glibc {root_info.glibc or '(unknown)'} of {root_info.root} runs "
            f"on; a floor of {kernel} cannot be simulated with this root: use "
            f"a root with an older glibc, or --kernel {needs} or newer"
        )


def _prepare(
    root: Path, libs: list[Path], call: str | None, target: Target | None
) -> tuple[RootInfo, Target, list[Path]]:
    """Every check of the input, before anything runs: BadInput names what is wrong."""
    from .rootfs import resolve_root

    if not libs:
        raise BadInput("no library given; pass the .so files to load")
    machines = {Path(lib): _check_lib(Path(lib)) for lib in libs}
    if call is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", call):
        raise BadInput(f"--call {call!r} is not a symbol name")
    if target is None:
        target = by_elf_machine(next(iter(machines.values()))) or TARGETS[DEFAULT_TARGET]
    for lib, machine in machines.items():
        if machine != target.elf_machine:
            raise BadInput(
                f"{lib} is built for {machine}, not {target.rust} "
                f"({target.elf_machine}); verify each architecture in its own root"
            )
    return inspect_root(resolve_root(Path(root)), target), target, list(machines)


def _run_all(
    root_info: RootInfo,
    target: Target,
    libs: list[Path],
    call: str | None,
    timeout: float,
    kernel: KernelVersion | None = None,
) -> list[LoadResult]:
    program = kernel_filter(kernel, target) if kernel is not None else None
    if kernel is not None:
        check_kernel_floor(root_info, kernel)
    loader = loader_binary(target)
    return [
        _run_one(root_info, loader, lib, call, timeout, target, kernel, program) for lib in libs
    ]


def verify_load(
    root: Path,
    libs: list[Path],
    call: str | None = None,
    target: Target | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    kernel: KernelVersion | None = None,
) -> list[LoadResult]:
    """dlopen each of LIBS under ROOT's own glibc (a root folder or an image archive),
    with only the system calls of Linux KERNEL when one is given.

    Bad input (no such root, not a glibc root, a LIB missing or not a shared library) raises
    BadInput before anything runs; refusals are results (ok=False), not exceptions.
    """
    _check_timeout(timeout)
    root_info, target, paths = _prepare(root, libs, call, target)
    return _run_all(root_info, target, paths, call, timeout, kernel)


# -- what a proof proved -----------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Proof:
    """What loading proved, and what only the static check (of the build) covers.

    A bare dlopen runs the constructors and binds every symbol (RTLD_NOW); only a call runs
    the library's own code. A root whose glibc is newer than the target cannot prove the
    target's symbol versions: those come from reading the file (check).
    """

    root_glibc: str | None
    kernel: KernelVersion | None = None
    called: str | None = None
    target_glibc: str | None = None  # the build's target; None for a bare verify-load

    def _newer_than_target(self) -> bool:
        if self.root_glibc is None or self.target_glibc is None:
            return False
        return GlibcVersion.parse(self.root_glibc) > GlibcVersion.parse(self.target_glibc)

    def proven_by_loading(self) -> list[str]:
        glibc = f"glibc {self.root_glibc or '(unknown version)'}"
        proven = [f"dlopen(RTLD_NOW) on {glibc}: every symbol binds and the constructors run"]
        if self.called:
            proven.append(f"{self.called}() runs and returns 0")
        if self.kernel is not None:
            proven.append(
                f"it runs with only the system calls of Linux {self.kernel} (newer "
                "ones answer ENOSYS)"
            )
        return proven

    def checked_statically(self) -> list[str]:
        if self.target_glibc is None:
            return []
        return [f"symbol versions and existence for glibc {self.target_glibc}"]

    def lines(self) -> list[str]:
        """The statement in words, one fact a line."""
        kernel = f", simulating Linux {self.kernel} (seccomp)" if self.kernel else ""
        ran = (
            f"{self.called}() was called"
            if self.called
            else "no code of the library ran but its constructors (call a function with "
            "--verify-call SYMBOL)"
        )
        lines = [
            f"proven by loading on glibc {self.root_glibc or '(unknown version)'}{kernel}: {ran}"
        ]
        if self._newer_than_target():
            lines.append(
                f"loaded on glibc {self.root_glibc}, newer than the target "
                f"{self.target_glibc}: symbol versions and existence for "
                f"{self.target_glibc} were checked statically"
            )
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "root_glibc": self.root_glibc,
            "kernel": str(self.kernel) if self.kernel else None,
            "called": self.called,
            "proven_by_loading": self.proven_by_loading(),
            "checked_statically": self.checked_statically(),
        }


def _check_timeout(timeout: float) -> None:
    """nan and inf pass a `<= 0` test and then crash subprocess' poll(): refuse them first."""
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise UsageError(
            f"--timeout {timeout:g}: give a number of seconds greater than 0 and "
            f"at most {MAX_TIMEOUT:g} (a week)"
        )


# -- the verify-load command -----------------------------------------------------------------
def _show(result: LoadResult, call: str | None, kernel: KernelVersion | None = None) -> None:
    name = result.lib.name
    if not result.loaded:
        info(f"{name}: REFUSED: {result.message}")
    else:
        info(f"{name}: loaded")
    for line in result.output.rstrip().splitlines():
        info(f"  | {line}")
    if result.called:
        returned = "did not return" if result.returned is None else f"returned {result.returned}"
        info(f"{name}: {call}() {returned}")
    if result.denied:
        info(f"{name}: {describe_denied(result.denied, kernel)}")
    if result.loaded and result.message:
        info(f"{name}: FAILED: {result.message}")


def run_verify_load(
    *,
    rootfs: Path | None,
    image: Path | None,
    libs: tuple[Path, ...],
    call: str | None,
    target: str | None,
    timeout: float,
    json_output: bool,
    kernel: str | None = None,
) -> int:
    """`build.py verify-load`: 0 when every library loaded (and its call returned 0)."""
    from .rootfs import is_image_archive

    _check_timeout(timeout)
    floor = KernelVersion.parse(kernel) if kernel is not None else None
    if (rootfs is None) == (image is None):
        raise UsageError("pass exactly one of --rootfs DIR or --image ARCHIVE")
    if rootfs is not None and not rootfs.is_dir():
        hint = "; for an image archive use --image" if rootfs.is_file() else ""
        raise BadInput(f"--rootfs {rootfs}: no such folder{hint}")
    if image is not None and not is_image_archive(image):
        hint = "; for a root folder use --rootfs" if image.is_dir() else ""
        raise BadInput(
            f"--image {image}: not an image archive (a `docker save` tarball or an "
            f"OCI layout){hint}"
            if image.exists()
            else f"--image {image}: no such file"
        )
    root_info, target_, paths = _prepare(
        rootfs or image,  # type: ignore[arg-type]
        list(libs),
        call,
        lookup(target) if target else None,
    )
    glibc = root_info.glibc or "unknown"
    if floor is not None:
        kernel_filter(floor, target_)  # an architecture without a filter fails before loading
        check_kernel_floor(root_info, floor)
    simulated = f", on a simulated Linux {floor} (seccomp)" if floor else ""
    step(
        f"loading {len(paths)} librar{'y' if len(paths) == 1 else 'ies'} with glibc {glibc} "
        f"of {root_info.root}{simulated}"
    )
    results = _run_all(root_info, target_, paths, call, timeout, floor)
    for result in results:
        _show(result, call, floor)
    failed = [r for r in results if not r.ok]
    proof = Proof(root_glibc=root_info.glibc, kernel=floor, called=call)
    if not failed:
        for line in proof.lines():
            info(line)
    if json_output:
        print(
            json.dumps(
                {
                    "schema": jsonout.SCHEMA,
                    "root": str(root_info.root),
                    "glibc": root_info.glibc,
                    "ok": not failed,
                    **proof.to_json(),
                    "results": [r.to_json() for r in results],
                },
                indent=2,
            )
        )
    if failed:
        # One unwrapped line that still carries glibc's own words about the first failure.
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise LoadRefused(
            f"{first.lib} did not load cleanly with glibc {glibc} of "
            f"{root_info.root}{simulated}{more}: {first.message}"
        )
    return 0
