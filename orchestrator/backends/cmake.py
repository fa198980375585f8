"""CMake and Ninja for the C parts that build with CMake (the `cmake` crate), and a toolchain
file that points CMake at zig for the target.

Both come from the package index like zig (the `cmake` and `ninja` wheels, pinned in
requirements.txt), so a machine without CMake builds such crates too. The `cmake` crate runs
`cmake` from PATH and reads `CMAKE_TOOLCHAIN_FILE_<target>` and `CMAKE_GENERATOR`
(https://docs.rs/cmake, "Environment variables"); the toolchain file names zig's wrappers as
compilers and keeps the build machine's headers and libraries out of `find_*` (the
CMAKE_FIND_ROOT_PATH_MODE_* variables of cmake-toolchains(7)), as cargo-zigbuild's
src/zig.rs writes one per target.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from ..files import write_atomically
from ..paths import cache_dir
from ..targets import Target

TOOLCHAIN_FILE_NAME = "toolchain.cmake"
# CMake's name for the processor, where it differs from the Rust architecture.
CMAKE_PROCESSOR = {"powerpc64le": "ppc64le"}


def tool_binaries() -> dict[str, Path]:
    """The pinned CMake's and Ninja's executables that are installed, by the name they are run
    as. Only crates with CMake parts need them, so a missing one is left out, not an error (the
    `cmake` crate then says what it could not run)."""
    found: dict[str, Path] = {}
    try:
        import cmake
    except ImportError:
        pass
    else:
        for name in ("cmake", "ctest", "cpack"):
            found[name] = Path(str(cmake.CMAKE_BIN_DIR)) / name
    try:
        import ninja
    except ImportError:
        pass
    else:
        # BIN_DIR is "" when the ninja script is not where pip usually puts it
        candidates = [Path(str(ninja.BIN_DIR)) / "ninja"] if ninja.BIN_DIR else []
        candidates.append(Path(str(ninja.__file__)).parent / "data" / "bin" / "ninja")
        found["ninja"] = next((c for c in candidates if c.is_file()), candidates[0])
    return {name: path for name, path in found.items() if path.is_file()}


def tools_dir(tools: Mapping[str, Path]) -> Path:
    """A folder of links to `tools` only, to put first on cargo's PATH (the virtual
    environment's own bin folder would also bring its python)."""
    key = hashlib.sha256(repr(sorted((k, str(v)) for k, v in tools.items())).encode())
    folder = cache_dir("build-tools", key.hexdigest()[:16])
    for name, path in tools.items():
        link = folder / name
        if not (link.is_symlink() and os.readlink(link) == str(path)):
            tmp = folder / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(path)
            tmp.replace(link)  # atomic: a concurrent build never finds the link missing
    return folder


def toolchain_file_text(target: Target, wrappers: Mapping[str, Path], find_root: Path) -> str:
    """A CMake toolchain file: zig's wrappers as compilers, and `find_*` looking only under
    `find_root` (a target sysroot, or an empty folder), never in the build machine's
    /usr/include or /usr/lib, whose glibc is not the target's."""
    arch = target.arch
    lines = [
        "# Written by glibc-build (orchestrator/backends/cmake.py) for the cmake crate.",
        "set(CMAKE_SYSTEM_NAME Linux)",
        f"set(CMAKE_SYSTEM_PROCESSOR {CMAKE_PROCESSOR.get(arch, arch)})",
        f'set(CMAKE_C_COMPILER "{wrappers["cc"]}")',
        f'set(CMAKE_CXX_COMPILER "{wrappers["c++"]}")',
        f'set(CMAKE_AR "{wrappers["ar"]}" CACHE FILEPATH "")',
        f'set(CMAKE_RANLIB "{wrappers["ranlib"]}" CACHE FILEPATH "")',
        f'set(CMAKE_FIND_ROOT_PATH "{find_root}")',
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
    ]
    return "\n".join(lines) + "\n"


def write_toolchain_file(
    target: Target, wrappers: Mapping[str, Path], find_root: Path | None = None
) -> Path:
    """The toolchain file beside the wrappers (their folder is named by their content, so one
    file per target and glibc); `find_root` defaults to an empty folder there."""
    folder = wrappers["cc"].parent
    if find_root is None:
        find_root = folder / "empty-root"
        find_root.mkdir(exist_ok=True)
    text = toolchain_file_text(target, wrappers, find_root)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = folder / f"{key}-{TOOLCHAIN_FILE_NAME}"
    if not path.is_file():
        write_atomically(path, text)
    return path


def cmake_env(
    target: Target, toolchain_file: Path, tools: Mapping[str, Path], host_env: Mapping[str, str]
) -> dict[str, str]:
    """PATH with our CMake and Ninja first (`tools`, those installed), the toolchain file for
    the target, Ninja as the generator; a toolchain file or generator the user chose is kept."""
    env = {}
    if tools:
        env["PATH"] = os.pathsep.join([str(tools_dir(tools)), host_env.get("PATH", os.defpath)])
    chosen = (
        "CMAKE_TOOLCHAIN_FILE",
        f"CMAKE_TOOLCHAIN_FILE_{target.env_suffix}",
        f"CMAKE_TOOLCHAIN_FILE_{target.rust}",
        "TARGET_CMAKE_TOOLCHAIN_FILE",
    )
    if not any(host_env.get(name) for name in chosen):
        env[f"CMAKE_TOOLCHAIN_FILE_{target.env_suffix}"] = str(toolchain_file)
    if "ninja" in tools and not host_env.get("CMAKE_GENERATOR"):
        env["CMAKE_GENERATOR"] = "Ninja"
    return env
