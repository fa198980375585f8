"""Everything the tool asks of cargo: which cdylibs a crate has, RUSTFLAGS, and the build.

Backends decide *how* to build (zig on the host, or inside a container); this module knows
cargo's own rules, so that both read the crate and the user's flags the same way.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, ToolchainError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

ERROR_TAIL_LINES = 25
# Build defaults a crate can carry: [package.metadata.glibc-build] (or [workspace.metadata...]).
SETTINGS_KEY = "glibc-build"


@dataclass(frozen=True)
class Crate:
    """The cdylib packages to build, and where cargo puts their output."""

    root: Path                   # the folder the user named
    manifest: Path               # its Cargo.toml
    workspace_root: Path
    target_dir: Path
    packages: tuple[str, ...]    # package names with a cdylib target, in build order
    version: str                 # version of the first package (for reports and manifests)
    settings: dict               # [workspace|package.metadata.glibc-build], package wins


    @property
    def lockfile(self) -> Path | None:
        """The workspace's Cargo.lock (cargo writes it on the first build), when there is one."""
        lock = self.workspace_root / "Cargo.lock"
        return lock if lock.is_file() else None


def cargo_binary() -> str:
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise ToolchainError("cargo not found on PATH; install Rust (https://rustup.rs), then run "
                             "again")
    return cargo


def locate(crate_dir: Path, package: str | None = None) -> Crate:
    """Read the crate (or workspace) at crate_dir with `cargo metadata`; pick its cdylibs."""
    if not crate_dir.exists():
        raise BadInput(f"{crate_dir}: no such folder; give the path of a Rust crate")
    if not crate_dir.is_dir():
        raise BadInput(f"{crate_dir}: not a folder; give the folder that holds Cargo.toml")
    manifest = crate_dir.resolve() / "Cargo.toml"
    if not manifest.is_file():
        raise BadInput(f"{crate_dir}: no Cargo.toml here; give the folder of a Rust crate")
    proc = subprocess.run([cargo_binary(), "metadata", "--format-version", "1", "--no-deps",
                           "--manifest-path", str(manifest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BadInput(f"{manifest}: cargo cannot read it; fix the manifest",
                       details=tail_lines(proc.stderr))
    meta = json.loads(proc.stdout)
    members = {p["id"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
    here = [p for p in members.values() if Path(p["manifest_path"]) == manifest]
    candidates = here or list(members.values())  # a virtual workspace root: all its members
    if package:
        named = [p for p in members.values() if p["name"] == package]
        if not named:
            names = ", ".join(sorted(p["name"] for p in members.values()))
            raise UsageError(f"--package {package!r} is not in the workspace of {crate_dir}; "
                             f"members: {names}")
        candidates = named
    cdylibs = [p for p in candidates
               if any("cdylib" in t["crate_types"] for t in p["targets"])]
    if not cdylibs:
        which = package or crate_dir
        raise BadInput(f"{which}: no cdylib target; add `crate-type = [\"cdylib\"]` under [lib] "
                       "in its Cargo.toml")
    workspace_root = Path(meta["workspace_root"])
    settings = dict((meta.get("metadata") or {}).get(SETTINGS_KEY) or {})
    settings.update((cdylibs[0].get("metadata") or {}).get(SETTINGS_KEY) or {})
    return Crate(root=crate_dir, manifest=manifest, workspace_root=workspace_root,
                 target_dir=Path(meta["target_directory"]),
                 packages=tuple(p["name"] for p in cdylibs), version=cdylibs[0]["version"],
                 settings=settings)


def profile_args(profile: str) -> list[str]:
    """`release` or `debug` (the folder name cargo uses) as cargo arguments."""
    return ["--profile", "dev" if profile == "debug" else profile]


def build_args(crate: Crate, target: str, profile: str, features: str | None) -> list[str]:
    """The `cargo build` arguments (after `cargo`) shared by every backend."""
    args = ["build", "--manifest-path", str(crate.manifest), "--target", target,
            "--message-format=json-render-diagnostics", *profile_args(profile)]
    for name in crate.packages:
        args += ["--package", name]
    if features:
        args += ["--features", features]
    return args


def _config_files(start: Path) -> list[Path]:
    """Cargo config files in cargo's order of precedence: nearest folder first, CARGO_HOME last."""
    found = []
    for folder in [start, *start.parents]:
        for name in ("config.toml", "config"):
            path = folder / ".cargo" / name
            if path.is_file():
                found.append(path)
                break
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    for name in ("config.toml", "config"):
        path = cargo_home / name
        if path.is_file() and path not in found:
            found.append(path)
            break
    return found


def _flags(value: object) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def user_rustflags(start: Path, target: str, env: dict[str, str]) -> list[str]:
    """The RUSTFLAGS cargo would use for `target`, following cargo's order of precedence.

    Setting CARGO_ENCODED_RUSTFLAGS overrides every other source, so to add our flags to the
    user's we must first know theirs: env vars, then `target.<triple>.rustflags`, then
    `build.rustflags` from the config files.
    """
    if env.get("CARGO_ENCODED_RUSTFLAGS"):
        return env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f")
    if env.get("RUSTFLAGS", "").strip():
        return env["RUSTFLAGS"].split()
    configs = []
    for path in _config_files(start):
        try:
            configs.append(tomllib.loads(path.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(f"{path}: cannot read this cargo config ({exc}); fix it") from exc
    env_key = "CARGO_TARGET_" + target.upper().replace("-", "_").replace(".", "_") + "_RUSTFLAGS"
    target_flags = _flags(env.get(env_key, ""))
    for config in configs:
        target_flags += _flags(config.get("target", {}).get(target, {}).get("rustflags"))
    if target_flags:
        return target_flags
    if env.get("CARGO_BUILD_RUSTFLAGS"):
        return _flags(env["CARGO_BUILD_RUSTFLAGS"])
    for config in configs:
        flags = _flags(config.get("build", {}).get("rustflags"))
        if flags:
            return flags
    return []


def encode_rustflags(flags: list[str]) -> str:
    return "\x1f".join(flags)


def tail_lines(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def cdylib_files(line: str) -> list[Path]:
    """The .so files named by one line of cargo's JSON messages (none for other lines)."""
    if not line.startswith("{"):
        return []
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        return []
    if message.get("reason") != "compiler-artifact" or \
            "cdylib" not in message["target"]["crate_types"]:
        return []
    return [Path(f) for f in message["filenames"] if f.endswith(".so")]


def check_finished(returncode: int, artifacts: list[Path], tail: deque[str], cmd: list[str],
                   label: str) -> list[Path]:
    """Turn cargo's end into artifacts or a ToolchainError carrying cargo's last lines."""
    if returncode != 0:
        raise ToolchainError(f"{label} failed (exit {returncode}); cargo's last lines:",
                             details=tail_lines("\n".join(tail)))
    if not artifacts:
        raise ToolchainError(f"{label} finished but reported no cdylib file; run "
                             f"`{shlex.join(cmd)}` by hand to see why")
    return artifacts


def run_build(cmd: list[str], *, env: dict[str, str], cwd: Path,
              label: str = "cargo") -> list[Path]:
    """Run a `cargo build --message-format=json...` command; return the cdylib files it made.

    cargo's human output (stderr) goes to the user as it comes, and its last lines are kept
    for the error message; stdout carries the JSON messages we read artifacts from.
    """
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    artifacts: list[Path] = []
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)
    except OSError as exc:
        raise ToolchainError(f"could not start {cmd[0]} ({exc}); is it installed?") from exc
    assert proc.stdout is not None and proc.stderr is not None

    def pump_stderr() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            tail.append(line.rstrip("\n"))
            sys.stderr.write(line)
            sys.stderr.flush()

    pump = threading.Thread(target=pump_stderr, daemon=True)
    pump.start()
    try:
        for line in proc.stdout:
            artifacts += cdylib_files(line)
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        pump.join(timeout=5)
    return check_finished(proc.returncode, artifacts, tail, cmd, label)
