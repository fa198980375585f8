"""Everything the tool asks of cargo: which cdylibs a crate has, RUSTFLAGS, and the build.

Backends decide *how* to build (zig on the host, or inside a container); this module knows
cargo's own rules, so that both read the crate and the user's flags the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from .errors import BadInput, ToolchainError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on older Pythons only
    import tomli as tomllib

# A parsed JSON object or TOML table (cargo metadata, cargo config files).
JSON = dict[str, Any]
ERROR_TAIL_LINES = 25
# cargo's lines kept to recognise a failed build script (script_hints.py) when cargo fails.
HINT_SCAN_LINES = 4000
# How long cargo's process group gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0
# Build defaults a crate can carry: [package.metadata.glibc-build] (or [workspace.metadata...]).
SETTINGS_KEY = "glibc-build"


@dataclass(frozen=True)
class Crate:
    """The cdylib packages to build, and where cargo puts their output."""

    root: Path  # the folder the user named
    manifest: Path  # its Cargo.toml
    workspace_root: Path
    target_dir: Path
    packages: tuple[str, ...]  # package names with a cdylib target, in build order
    version: str  # version of the first package (for reports and manifests)
    # [workspace|package.metadata.glibc-build]: key -> (value, folder of the Cargo.toml that
    # set it, for relative paths); a package's value wins over the workspace's.
    settings: dict[str, tuple[object, Path]]
    # The smallest folder holding the workspace and every path dependency of its members:
    # what a container must mount and a second build must copy.
    source_root: Path
    # Settings keys on which the cdylibs disagree -> what each says (a flag must settle them).
    conflicts: dict[str, str] = field(default_factory=dict)

    @property
    def lockfile(self) -> Path | None:
        """The workspace's Cargo.lock (cargo writes it on the first build), when there is one."""
        lock = self.workspace_root / "Cargo.lock"
        return lock if lock.is_file() else None


def cargo_binary() -> str:
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        raise ToolchainError(
            "cargo not found on PATH; install Rust (https://rustup.rs), then run again"
        )
    return cargo


def _is_cdylib(package: JSON) -> bool:
    return any("cdylib" in t["crate_types"] for t in package["targets"])


def _settings_table(value: object, where: Path) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(
            f"{where}: [...metadata.{SETTINGS_KEY}] must be a table of settings, not {value!r}"
        )
    return value


def _settings(
    meta: JSON, cdylibs: list[JSON]
) -> tuple[dict[str, tuple[object, Path]], dict[str, str]]:
    """Workspace defaults, then the package's; and the keys on which cdylibs built together
    disagree (key -> what each says), which a command-line flag must settle."""
    root = Path(meta["workspace_root"])
    workspace = _settings_table((meta.get("metadata") or {}).get(SETTINGS_KEY), root / "Cargo.toml")
    chosen: dict[str, tuple[object, Path]] | None = None
    conflicts: dict[str, str] = {}
    for package in cdylibs:
        manifest = Path(package["manifest_path"])
        own = _settings_table((package.get("metadata") or {}).get(SETTINGS_KEY), manifest)
        settings = {k: (v, root) for k, v in workspace.items()}
        settings.update({k: (v, manifest.parent) for k, v in own.items()})
        if chosen is None:
            chosen = settings
            continue
        for key in sorted(set(settings) | set(chosen)):
            first, this = chosen.get(key, (None, root))[0], settings.get(key, (None, root))[0]
            if first != this and key not in conflicts:
                conflicts[key] = (
                    f"{cdylibs[0]['name']} says {first!r}, {package['name']} says {this!r}"
                )
    return chosen or {}, conflicts


def _source_root(meta: JSON) -> Path:
    """The common folder of the workspace and its members' path dependencies."""
    folders = [Path(meta["workspace_root"])]
    for package in meta["packages"]:
        folders += [Path(dep["path"]) for dep in package.get("dependencies", ()) if dep.get("path")]
    return Path(os.path.commonpath([str(f) for f in folders]))


def locate(crate_dir: Path, package: str | None = None) -> Crate:
    """Read the crate (or workspace) at crate_dir with `cargo metadata`; pick its cdylibs."""
    if not crate_dir.exists():
        raise BadInput(f"{crate_dir}: no such folder; give the path of a Rust crate")
    if not crate_dir.is_dir():
        raise BadInput(f"{crate_dir}: not a folder; give the folder that holds Cargo.toml")
    manifest = crate_dir.resolve() / "Cargo.toml"
    if not manifest.is_file():
        raise BadInput(f"{crate_dir}: no Cargo.toml here; give the folder of a Rust crate")
    proc = subprocess.run(
        [
            cargo_binary(),
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
            str(manifest),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise BadInput(
            f"{manifest}: cargo cannot read it; fix the manifest", details=tail_lines(proc.stderr)
        )
    meta = json.loads(proc.stdout)
    members = {p["id"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
    here = [p for p in members.values() if Path(p["manifest_path"]) == manifest]
    if not any(_is_cdylib(p) for p in here):
        # A virtual workspace, or a root package that is not a plugin itself: its members
        # under the folder the user named.
        here = [
            p
            for p in members.values()
            if Path(p["manifest_path"]).parent.is_relative_to(manifest.parent)
        ]
    candidates = here
    if package:
        named = [p for p in members.values() if p["name"] == package]
        if not named:
            names = ", ".join(sorted(p["name"] for p in members.values()))
            raise UsageError(
                f"--package {package!r} is not in the workspace of {crate_dir}; members: {names}"
            )
        candidates = named
    cdylibs = [p for p in candidates if _is_cdylib(p)]
    if not cdylibs:
        which = package or crate_dir
        raise BadInput(
            f'{which}: no cdylib target; add `crate-type = ["cdylib"]` under [lib] '
            "in its Cargo.toml"
        )
    settings, conflicts = _settings(meta, cdylibs)
    return Crate(
        root=crate_dir,
        manifest=manifest,
        workspace_root=Path(meta["workspace_root"]),
        target_dir=Path(meta["target_directory"]),
        packages=tuple(p["name"] for p in cdylibs),
        version=cdylibs[0]["version"],
        settings=settings,
        conflicts=conflicts,
        source_root=_source_root(meta),
    )


def profile_args(profile: str) -> list[str]:
    """`release` or `debug` (the folder name cargo uses) as cargo arguments."""
    return ["--profile", "dev" if profile == "debug" else profile]


def build_args(
    manifest_path: PurePath,
    packages: tuple[str, ...],
    target: str,
    profile: str,
    features: str | None,
) -> list[str]:
    """The `cargo build` arguments (after `cargo`) shared by every backend; `manifest_path` is
    the crate's Cargo.toml as the cargo that runs sees it (a container mounts it elsewhere)."""
    args = [
        "build",
        "--manifest-path",
        str(manifest_path),
        "--target",
        target,
        "--message-format=json-render-diagnostics",
        *profile_args(profile),
    ]
    for name in packages:
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


def _configs(start: Path) -> list[JSON]:
    """Parsed cargo config files, lowest precedence first (cargo joins arrays in this order)."""
    configs = []
    for path in reversed(_config_files(start)):
        try:
            configs.append(tomllib.loads(path.read_text()))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(f"{path}: cannot read this cargo config ({exc}); fix it") from exc
    return configs


def _target_env_key(target: str) -> str:
    return "CARGO_TARGET_" + target.upper().replace("-", "_").replace(".", "_") + "_RUSTFLAGS"


def joined_rustflags(configs: list[JSON], target: str, env: Mapping[str, str]) -> list[str]:
    """The RUSTFLAGS cargo would use for `target`, following cargo's order of precedence
    (https://doc.rust-lang.org/cargo/reference/config.html#buildrustflags): env vars, then
    `target.<triple>.rustflags`, then `build.rustflags`, arrays of all `configs` (lowest
    precedence first) joined. `target.'cfg(...)'` tables are not evaluated: see `hand_over`."""
    if env.get("CARGO_ENCODED_RUSTFLAGS"):
        return env["CARGO_ENCODED_RUSTFLAGS"].split("\x1f")
    if env.get("RUSTFLAGS", "").strip():
        return env["RUSTFLAGS"].split()
    target_flags = []
    for config in configs:
        target_flags += _flags(config.get("target", {}).get(target, {}).get("rustflags"))
    target_flags += _flags(env.get(_target_env_key(target), ""))
    if target_flags:
        return target_flags
    build_flags = []
    for config in configs:
        build_flags += _flags(config.get("build", {}).get("rustflags"))
    return build_flags + _flags(env.get("CARGO_BUILD_RUSTFLAGS", ""))


@dataclass(frozen=True)
class HandOver:
    """How our flags reach cargo beside the user's (build it with keywords)."""

    env: dict[str, str]  # variables to set for cargo
    args: list[str]  # arguments for `cargo build`
    flags: tuple[str, ...]  # the user's flags and ours, as cargo joins them (cfg tables aside)


def hand_over(
    configs: list[JSON], target: str, env: Mapping[str, str], extra: list[str]
) -> HandOver:
    """How to add `extra` to the flags cargo will use without losing any of the user's.

    Where the user's flags come from the environment or `build.rustflags`, we must set them
    all ourselves (CARGO_ENCODED_RUSTFLAGS replaces every other source). Otherwise we give
    cargo `--config target.<triple>.rustflags=[...]`, which cargo itself joins with the user's
    `target.<triple>` and `target.'cfg(...)'` flags, so no cfg() expression is ours to evaluate.
    """
    user = joined_rustflags(configs, target, env)
    flags = tuple(user + extra)
    if env.get("CARGO_ENCODED_RUSTFLAGS") or env.get("RUSTFLAGS", "").strip():
        return HandOver(
            env={"CARGO_ENCODED_RUSTFLAGS": encode_rustflags(list(flags))}, args=[], flags=flags
        )
    has_target_flags = bool(env.get(_target_env_key(target))) or any(
        isinstance(table, dict) and "rustflags" in table
        for config in configs
        for table in (config.get("target") or {}).values()
    )
    if not has_target_flags and user:
        return HandOver(
            env={"CARGO_ENCODED_RUSTFLAGS": encode_rustflags(list(flags))}, args=[], flags=flags
        )
    return HandOver(
        env={}, args=["--config", f"target.{target}.rustflags={json.dumps(extra)}"], flags=flags
    )


def hand_over_rustflags(
    start: Path, target: str, env: Mapping[str, str], extra: list[str]
) -> HandOver:
    """`hand_over` with the cargo config files that apply in `start`."""
    return hand_over(_configs(start), target, env, extra)


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
    if (
        message.get("reason") != "compiler-artifact"
        or "cdylib" not in message["target"]["crate_types"]
    ):
        return []
    return [Path(f) for f in message["filenames"] if f.endswith(".so")]


# Who else reads cargo's JSON messages while a build runs (the build keeps them for
# provenance.MessageLog); see `listening`.
_listeners: list[Callable[[str], None]] = []


@contextlib.contextmanager
def listening(callback: Callable[[str], None]) -> Iterator[None]:
    """Within the block, every line cargo prints on stdout (its JSON messages, from a process
    or a container) is also given to `callback`."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)


class CargoOutput:
    """A `cargo build --message-format=json-render-diagnostics` run as it streams, from a
    process or a container: artifacts from stdout's JSON messages; stderr (cargo's own text)
    shown to the user as it comes, its last lines kept for the error message."""

    def __init__(self, cmd: list[str], label: str) -> None:
        self.cmd, self.label = cmd, label
        self.artifacts: list[Path] = []
        self.tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        self.scanned: deque[str] = deque(maxlen=HINT_SCAN_LINES)
        self.last_error = ""  # cargo's own last `error:` line, however long the tail after it
        self._partial = {"out": "", "err": ""}

    def stdout_line(self, line: str) -> None:
        self.artifacts += cdylib_files(line)
        for listener in _listeners:
            listener(line)

    def stderr_line(self, line: str) -> None:
        if line.startswith("error"):
            self.last_error = line.rstrip("\n")
        self.tail.append(line.rstrip("\n"))
        self.scanned.append(line.rstrip("\n"))
        sys.stderr.write(line if line.endswith("\n") else line + "\n")
        sys.stderr.flush()

    def feed(self, stream: str, chunk: str) -> None:
        """Chunks cut anywhere (a container's attach stream): handled line by line."""
        *lines, self._partial[stream] = (self._partial[stream] + chunk).split("\n")
        for line in lines:
            (self.stdout_line if stream == "out" else self.stderr_line)(line)

    def finish(self, returncode: int) -> list[Path]:
        """The artifacts, or a ToolchainError carrying cargo's last lines."""
        for stream in ("out", "err"):
            if self._partial[stream]:
                self.feed(stream, "\n")
        if returncode != 0:
            from .script_hints import hint

            what = hint(self.scanned)
            lead = (
                f"{what} ({self.label} failed, exit {returncode})"
                if what
                else f"{self.label} failed (exit {returncode})"
            )
            details = tail_lines("\n".join(self.tail))
            if self.last_error and self.last_error not in details:  # a build script's output
                details = f"{self.last_error}\n...\n{details}"  # pushed it out of the tail
            raise ToolchainError(f"{lead}; cargo's last lines:", details=details)
        if not self.artifacts:
            raise ToolchainError(
                f"{self.label} finished but reported no cdylib file; run "
                f"`{shlex.join(self.cmd)}` by hand to see why"
            )
        return self.artifacts


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user: still there
        return True
    return True


def stop_group(proc: subprocess.Popen[str], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM cargo's whole process group (rustc, build scripts and their children), then
    SIGKILL whatever of it is left after `grace` seconds.

    Waiting for cargo alone is not enough: a build script's child that ignores SIGTERM stays
    in the group, re-parented to PID 1, after cargo has gone. A dead member stays a zombie
    (still in the group) until its parent reaps it, so the group is only polled, then killed.
    """
    pgid = proc.pid  # start_new_session=True made cargo the leader of its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_build(
    cmd: list[str], *, env: dict[str, str], cwd: Path, label: str = "cargo"
) -> list[Path]:
    """Run a `cargo build --message-format=json...` command; return the cdylib files it made."""
    output = CargoOutput(cmd, label)
    try:
        # Its own process group, so that an interrupt stops cargo's children too.
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolchainError(f"could not start {cmd[0]} ({exc}); is it installed?") from exc
    assert proc.stdout is not None and proc.stderr is not None

    def pump_stderr() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            output.stderr_line(line)

    pump = threading.Thread(target=pump_stderr, daemon=True)
    pump.start()
    try:
        for line in proc.stdout:
            output.stdout_line(line)
        proc.wait()
    except BaseException:
        stop_group(proc)
        raise
    finally:
        pump.join(timeout=5)
    return output.finish(proc.returncode)
