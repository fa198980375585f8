"""Command line: the bare form builds; `check`, `render`, `fetch`, ... are subcommands.

Each command only parses options and hands over to its stage module, imported lazily so that
`check` never pays for docker-py and `--help` stays fast. `main` turns every failure into one
line and a documented exit code (see errors.py).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import __version__
from .errors import EXIT_CODES, OrchestratorError, UsageError
from .logger import annotate_error, error

if TYPE_CHECKING:
    from .check.report import Report
    from .glibc import GlibcVersion

EXIT_CODE_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()
)


# An unknown option is matched only to close names: click's own cutoff (difflib's 0.6) offers
# `--backend` for `--locked` (https://docs.python.org/3/library/difflib.html#difflib.get_close_matches).
SUGGESTION_CUTOFF = 0.8


def close_options(command: click.Command, name: str) -> list[str]:
    """The options of `command` whose names are close to the unknown `name`."""
    import difflib

    known = [
        opt
        for param in command.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--")
    ]
    return difflib.get_close_matches(name, known, n=2, cutoff=SUGGESTION_CUTOFF)


class Command(click.Command):
    """A command whose typo hints name only close options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise click.NoSuchOption(
                exc.option_name, ctx=exc.ctx, possibilities=close_options(self, exc.option_name)
            ) from None


class BuildCommand(Command):
    """`build`: everything after `--` is for cargo (kept in ctx.meta, never parsed by click)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            args, ctx.meta["cargo_args"] = args[:at], tuple(args[at + 1 :])
        return super().parse_args(ctx, args)


class DefaultToBuild(click.Group):
    """`build.py [OPTIONS] [CRATE_DIR]` means `build.py build [OPTIONS] [CRATE_DIR]`."""

    command_class = Command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (
            args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")
        ):
            args = ["build", *args]
        return super().parse_args(ctx, args)


@click.group(
    cls=DefaultToBuild,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODE_HELP,
)
@click.version_option(__version__, prog_name="build.py")
def cli() -> None:
    """Build Rust cdylib plugins that load on an old glibc, check them, and prove they load.

    \b
    python3 build.py [OPTIONS] [CRATE_DIR]  build (see `build.py build --help`)
    python3 build.py COMMAND [ARGS]...      one stage on its own
    """


# Shared by build and check (build's --strict also takes --no-strict, over crate metadata).
STRICT_HELP = (
    "A glibc symbol whose library is not in DT_NEEDED fails the check (by default a "
    "warning: it loads in a host that has that library loaded)."
)
HOST_LIBRARIES_OPTION = click.option(
    "--host-libraries",
    default=None,
    metavar="LIST",
    help="Sonames the host process has loaded (comma-separated), e.g. libm.so.6.",
)


def glibc_help(default: str) -> str:
    """One description of --glibc for every command."""
    return (
        "Highest glibc the output may need: a version, MAJOR.MINOR, or a platform preset "
        f"(`build.py platforms`, e.g. centos-7). Default {default}."
    )


def glibc_version(text: str) -> GlibcVersion:
    """--glibc as a version or a platform preset: the glibc it means."""
    from .glibc_arg import platform_named

    return platform_named(text).glibc


GLIBC_HELP = glibc_help("2.17 (Rust's floor)")


@cli.command(cls=BuildCommand, epilog=EXIT_CODE_HELP)
@click.option("--glibc", default=None, metavar="X.Y|PLATFORM", help=GLIBC_HELP)
@click.option(
    "--target",
    default=None,
    metavar="TRIPLE",
    help="Rust target triple (default x86_64-unknown-linux-gnu); cargo-zigbuild's "
    "TRIPLE.X.Y form sets the glibc too.",
)
@click.option(
    "--backend",
    type=click.Choice(["zig", "docker"]),
    default=None,
    help="zig: link against zig's glibc stubs (no Docker); docker: build inside an "
    "old-distro image made from --recipe. Default zig.",
)
@click.option(
    "--recipe",
    default=None,
    metavar="NAME|PATH",
    help="Recipe for the docker backend (see recipes/).",
)
@click.option("--release", is_flag=True, help="Build the release profile (the default).")
@click.option(
    "--profile",
    default=None,
    metavar="NAME",
    help="Cargo profile: release (default), debug (or dev), or one of your own.",
)
@click.option(
    "--package",
    "-p",
    default=None,
    metavar="NAME",
    help="Workspace member to build (default: every cdylib under CRATE_DIR).",
)
@click.option("--features", "-F", default=None, metavar="LIST", help="Cargo features to enable.")
@click.option("--all-features", is_flag=True, help="Enable every feature (cargo's flag).")
@click.option(
    "--no-default-features", is_flag=True, help="Do not enable the default features (cargo's flag)."
)
@click.option(
    "--out",
    default=None,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="The folder the checked libraries and build-manifest.json go to; it holds "
    "exactly this build afterwards (default CRATE_DIR/dist/PLATFORM, e.g. "
    "dist/glibc-2.17, dist/glibc-2.17-debug for another profile).",
)
@click.option(
    "--manifest-path",
    default=None,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="The crate's Cargo.toml (instead of CRATE_DIR).",
)
@click.option(
    "--target-dir",
    default=None,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Base of cargo's target folders (default: cargo's, CARGO_TARGET_DIR "
    "respected); each (target, glibc, backend) gets its own folder under "
    "DIR/glibc-build/.",
)
@click.option("--locked", is_flag=True, help="cargo's --locked: Cargo.lock must not change.")
@click.option("--frozen", is_flag=True, help="cargo's --frozen: --locked and --offline.")
@click.option("--offline", is_flag=True, help="cargo's --offline: no network.")
@click.option("--verbose", "-v", "verbose", count=True, help="cargo's -v (repeatable).")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="cargo's -q; and only errors (with the report when the check fails).",
)
@click.option(
    "--verify-on",
    default=None,
    type=click.Path(path_type=Path),
    metavar="ROOT|ARCHIVE",
    help="After the check, dlopen each library with the glibc of this root folder or "
    "image archive (see `verify-load`).",
)
@click.option(
    "--kernel",
    default=None,
    metavar="X.Y",
    help="Kernel floor: --verify-on loads with only this kernel's system calls "
    "(seccomp; the others return ENOSYS and are named).",
)
@click.option(
    "--verify-call",
    default=None,
    metavar="SYMBOL",
    help="After --verify-on loads a library, call its `int SYMBOL(void)`; it must "
    "return 0 (a bare load runs only the constructors).",
)
@click.option(
    "--verify-reproducible/--no-verify-reproducible",
    default=None,
    help="Build a second time from another folder and compare the bytes.",
)
@click.option(
    "--split-debug/--no-split-debug",
    default=None,
    help="Strip the libraries and put their debug info in LIB.debug beside them, "
    "tied by build-id (needs GNU objcopy).",
)
@click.option(
    "--system-package",
    "system_packages",
    multiple=True,
    metavar="NAME",
    help="Debian package for a target sysroot (zig backend), e.g. libasound2-dev; repeatable.",
)
@click.option(
    "--system-suite",
    default=None,
    metavar="SUITE",
    help="Debian suite the system packages come from (default bullseye).",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print one JSON summary on stdout (artifacts, check, manifest), on failure "
    "too (ok false, error, exit_code).",
)
@click.option(
    "--strict/--no-strict",
    default=None,
    help=STRICT_HELP,
)
@HOST_LIBRARIES_OPTION
@click.argument("crate_dir", required=False, type=click.Path(path_type=Path))
def build(**options: object) -> int:
    """Build every cdylib of CRATE_DIR (default: this folder; or its Cargo.toml) for an old
    glibc, then check it. Arguments after `--` go to `cargo build`.

    Defaults can also come from the crate's Cargo.toml, [package.metadata.glibc-build]
    (keys: glibc, target, backend, recipe, profile, features, verify-on,
    verify-reproducible, kernel, verify-call, strict, host-libraries, system-packages,
    system-suite, image-packages); flags win.
    """
    from .build import BuildOptions, run_build

    options["system_packages"] = tuple(options["system_packages"]) or None  # type: ignore[arg-type]
    if options["crate_dir"] is not None and options["manifest_path"] is not None:
        raise UsageError("give CRATE_DIR or --manifest-path, not both")
    options["crate_dir"] = options["crate_dir"] or Path(".")
    options["cargo_args"] = click.get_current_context().meta.get("cargo_args", ())
    if options["quiet"]:
        os.environ["GLIBC_BUILD_QUIET"] = "1"
    return run_build(BuildOptions(**options))  # type: ignore[arg-type]


@cli.command(epilog=EXIT_CODE_HELP)
@click.option(
    "--glibc",
    default=None,
    metavar="X.Y|PLATFORM",
    help=glibc_help("2.17") + " For a preset (a comma list takes the strictest) its "
    "C++ runtime, kernel floor and x86-64 level are checked too. Any glibc zig "
    "knows can be checked against, scout's 2.15 too.",
)
@click.option(
    "--kernel",
    default=None,
    metavar="X.Y",
    help="Kernel floor: system calls newer than it are named (overrides the preset's).",
)
@click.option(
    "--loads-on",
    "loads_on",
    is_flag=True,
    help="Print, per file, the presets it loads on and why not on the others, "
    "reading the code for system calls (--json always has the matrix; without "
    "this flag or a kernel floor it says system_calls_read false).",
)
@click.option(
    "--presets",
    default=None,
    metavar="LIST",
    help="The presets of the loads-on matrix (comma-separated; default: all).",
)
@click.option(
    "--target",
    default=None,
    metavar="TRIPLE",
    help="Expected Rust target triple (default: each file's own architecture); "
    "cargo-zigbuild's TRIPLE.X.Y form sets the glibc too.",
)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print one JSON object on stdout instead of the text report.",
)
@click.option(
    "--host-symbols",
    default=None,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Symbols the host program provides, one per line (# comments).",
)
@click.option(
    "--policy",
    default=None,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="JSON merged over the built-in policy (ceilings, markers, hints).",
)
@click.option(
    "--junit",
    default=None,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Also write a JUnit XML report (one test case per file) for CI to show.",
)
@click.option(
    "--crate-dir",
    default=None,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="The crate that built the files: name the crate behind each finding from "
    "its last build in its target folder.",
)
@click.option(
    "--strict",
    is_flag=True,
    help=STRICT_HELP,
)
@HOST_LIBRARIES_OPTION
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(
    glibc: str | None,
    target: str | None,
    json_output: bool,
    host_symbols: Path | None,
    policy: Path | None,
    junit: Path | None,
    strict: bool,
    host_libraries: str | None,
    paths: tuple[Path, ...],
    crate_dir: Path | None = None,
    kernel: str | None = None,
    loads_on: bool = False,
    presets: str | None = None,
) -> int:
    """Check that ELF files (or folders of them) load with dlopen on glibc X.Y.

    \b
    Exit 0: every file loads on the target; 1: a violation; 2: an input could not be
    analysed (missing, not ELF, truncated, malformed); the other files are still reported.
    A system call newer than the kernel floor is a warning (the file loads, that call fails
    with ENOSYS), a violation under --strict.
    """
    from . import jsonout
    from .check import check_paths, parse_host_libraries, read_host_symbols
    from .glibc_arg import platform_named, split_target
    from .platforms import each
    from .syscalls import KernelVersion
    from .targets import lookup

    triple, suffix = split_target(target) if target else (None, None)
    if suffix is not None and glibc is not None and suffix != glibc:
        raise UsageError(
            f"--target {target} says glibc {suffix} but --glibc says {glibc}; give one of them"
        )
    platform = platform_named(glibc or suffix or "2.17")
    report = check_paths(
        list(paths),
        platform.glibc,
        lookup(triple) if triple else None,
        read_host_symbols(host_symbols) if host_symbols else frozenset(),
        policy,
        strict=strict,
        host_libraries=(
            parse_host_libraries(host_libraries) if host_libraries is not None else None
        ),
        platform=None if platform.bare else platform,
        kernel=KernelVersion.parse(kernel) if kernel is not None else None,
        loads_on_presets=each(presets) if presets is not None else None,
        # reading the code for system-call sites costs ~25 ms a library:
        # only with a kernel floor (a preset's, --kernel) or --loads-on
        scan_code=True if loads_on else None,
    )
    if loads_on:
        import dataclasses

        report = dataclasses.replace(report, show_loads_on=True)
    if crate_dir is not None:
        return _check_with_provenance(report, crate_dir, json_output, junit)
    if junit is not None:
        from .files import write_atomically

        write_atomically(junit, report.to_junit())
    if json_output:
        jsonout.emit(jsonout.with_schema(report.to_json()), indent=None)  # compact: C encoder
    else:
        sys.stdout.write(report.render_text(with_errors=False) + "\n")
    for err in report.errors:
        error(f"{err.path}: {err.message}")
    return report.exit_code


def _check_with_provenance(
    report: Report, crate_dir: Path, json_output: bool, junit: Path | None
) -> int:
    """`check --crate-dir`: the same report, its findings tied to crates (provenance.py)."""
    import json

    from .jsonout import with_schema
    from .known_crates import remedy
    from .logger import warn
    from .provenance import for_crate_dir, report_json, report_text

    annotated, extra, messages = for_crate_dir(report, crate_dir, remedy_for=remedy)
    for message in messages:
        warn(message)
    if junit is not None:
        from .files import write_atomically

        write_atomically(junit, annotated.to_junit())
    if json_output:
        sys.stdout.write(json.dumps(with_schema(report_json(annotated, extra))) + "\n")
    else:
        text = report_text(annotated, extra)
        sys.stdout.write(
            annotated.render_text(with_errors=False) + "\n" + (text + "\n" if text else "")
        )
    for err in annotated.errors:
        error(f"{err.path}: {err.message}")
    return annotated.exit_code


@cli.command("verify-load", epilog=EXIT_CODE_HELP)
@click.option(
    "--rootfs",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Root folder whose glibc loads the libraries (e.g. from `build.py rootfs`).",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    default=None,
    metavar="ARCHIVE",
    help="`docker save` tarball or OCI image layout (folder or tar) to use as the "
    "root; unpacked once into the cache.",
)
@click.option(
    "--call",
    default=None,
    metavar="SYMBOL",
    help="After loading, call `int SYMBOL(void)`; it must return 0.",
)
@click.option(
    "--target",
    default=None,
    metavar="TRIPLE",
    help="Rust target triple (default: from the libraries' ELF machine).",
)
@click.option(
    "--timeout",
    default=60.0,
    type=float,
    show_default=True,
    help="Seconds each library may take to load and run.",
)
@click.option(
    "--kernel",
    default=None,
    metavar="X.Y",
    help="Simulate this kernel: only its system calls are allowed (seccomp), the "
    "others return ENOSYS and are named.",
)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON summary on stdout.")
@click.argument("libs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="LIB...")
def verify_load_command(**options: object) -> int:
    """Prove each LIB loads: dlopen it (RTLD_NOW) with the glibc of an old root.

    The root's own dynamic loader runs a small test loader, so no root privileges or chroot
    are needed. Exit 0 when all loaded (and each call returned 0), 1 when one was refused,
    crashed or its call failed, 2 on bad input.
    """
    from .prove import run_verify_load

    return run_verify_load(**options)  # type: ignore[arg-type]


@cli.command(epilog=EXIT_CODE_HELP)
@click.option(
    "--debootstrap",
    "suite",
    default=None,
    metavar="SUITE",
    help="Make the root with debootstrap (needs root; cached), e.g. bullseye.",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    default=None,
    metavar="ARCHIVE",
    help="Unpack a `docker save` tarball or an OCI image layout (folder or tar).",
)
@click.option(
    "--arch",
    default=None,
    metavar="ARCH",
    help="Debian architecture (default: this machine's); picks the image of an OCI index too.",
)
@click.option("--variant", default="minbase", show_default=True, help="debootstrap --variant.")
@click.option("--include", default=None, metavar="PKG,...", help="Extra packages for debootstrap.")
@click.option(
    "--mirror",
    default=None,
    metavar="URL",
    help="Debian mirror for debootstrap (default: where the suite lives now, "
    "e.g. http://archive.debian.org/debian for buster and older).",
)
@click.argument("dest", type=click.Path(path_type=Path))
def rootfs(**options: object) -> int:
    """Make an old-glibc root folder in DEST for verify-load and --verify-on."""
    from .rootfs import run_rootfs

    return run_rootfs(**options)  # type: ignore[arg-type]


@cli.command(epilog=EXIT_CODE_HELP)
@click.option("--recipe", required=True, metavar="NAME|PATH", help="Recipe (see recipes/).")
@click.option("--glibc", default=None, metavar="X.Y|PLATFORM", help=glibc_help("the recipe's own"))
@click.option(
    "--base-archive",
    type=click.Path(path_type=Path),
    default=None,
    help="Make the base image from this `docker save` tarball or OCI image layout "
    "instead of pulling it or using debootstrap.",
)
@click.option(
    "--rsrc",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the recipe's sources are kept (default rsrc/).",
)
@click.option("--offline", is_flag=True, help="Use only what --rsrc already holds.")
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Give up a download (exit 6) that takes longer than this, all its URLs "
    "and retries included (default: one hour).",
)
def image(
    recipe: str,
    glibc: str | None,
    base_archive: Path | None,
    rsrc: Path | None,
    offline: bool,
    deadline: float | None,
) -> int:
    """Make the Docker image of a recipe, air-gapped if need be; print its reference.

    The base image is used when the engine has it, pulled when a registry answers, and
    otherwise made locally: from --base-archive, or with debootstrap when the recipe says how.
    """
    from .image import build_image
    from .recipe import load_recipe

    loaded = load_recipe(recipe)
    version = glibc_version(glibc) if glibc else loaded.glibc
    click.echo(
        build_image(
            loaded,
            version,
            rsrc=rsrc,
            offline=offline,
            base_archive=base_archive,
            deadline=deadline,
        )
    )
    return 0


@cli.command("render", epilog=EXIT_CODE_HELP)
@click.option(
    "--recipe",
    "recipe_name",
    required=True,
    metavar="NAME|PATH",
    help="A recipe name from recipes/ or the path of a recipe .toml file.",
)
@click.option(
    "--glibc",
    default=None,
    metavar="X.Y|PLATFORM",
    help=glibc_help("the recipe's own") + " A recipe whose base glibc is newer is refused.",
)
def render_command(recipe_name: str, glibc: str | None) -> int:
    """Print the Dockerfile a recipe renders to (same recipe, same bytes)."""
    from .recipe import load_recipe
    from .render import render_dockerfile

    click.echo(
        render_dockerfile(load_recipe(recipe_name), str(glibc_version(glibc)) if glibc else None),
        nl=False,
    )
    return 0


@cli.command("fetch", epilog=EXIT_CODE_HELP)
@click.option(
    "--recipe",
    "recipe_name",
    required=True,
    metavar="NAME|PATH",
    help="A recipe name from recipes/ or the path of a recipe .toml file.",
)
@click.option(
    "--rsrc",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Download folder (default: rsrc/ in the checkout).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No network: verify what the folder holds, fail naming what is missing or altered.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL|DIR",
    help="Try this base URL (or local folder) first; files are looked up by name. Repeatable.",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Give up a download (exit 6) that takes longer than this, all its URLs "
    "and retries included (default: one hour).",
)
def fetch_command(
    recipe_name: str,
    rsrc: Path | None,
    offline: bool,
    mirrors: tuple[str, ...],
    deadline: float | None,
) -> int:
    """Download a recipe's sources and verify them (sha256, pinned GPG keys).

    Prints the path of each verified source on stdout.
    """
    from .fetch import fetch_sources
    from .paths import DEFAULT_RSRC
    from .recipe import load_recipe

    recipe = load_recipe(recipe_name)
    for path in fetch_sources(
        recipe, rsrc or DEFAULT_RSRC, offline=offline, mirrors=mirrors, deadline=deadline
    ):
        click.echo(str(path))
    return 0


@cli.command("platforms", epilog=EXIT_CODE_HELP)
@click.option(
    "--json",
    "json_output",
    is_flag=True,
    help="Print the table as JSON (with the source of each fact).",
)
@click.option("--sources", is_flag=True, help="Show the public source of each fact.")
def platforms_command(json_output: bool, sources: bool) -> int:
    """List the platform presets --glibc accepts: glibc, kernel floor, x86-64 level, C++ runtime.

    Several at once (`--glibc centos-7,steam-sniper`) mean the strictest of each.
    """
    import json

    from .platforms import presets, render_text

    if json_output:
        sys.stdout.write(json.dumps([p.to_json() for p in presets()], indent=1) + "\n")
    else:
        sys.stdout.write(render_text(presets(), with_sources=sources) + "\n")
    return 0


@cli.command("cache", epilog=EXIT_CODE_HELP)
@click.argument("action", type=click.Choice(["list", "prune"]), default="list")
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="DAYS",
    help="prune: remove what no build used for this many days.",
)
@click.option("--dry-run", is_flag=True, help="prune: only say what would be removed.")
@click.option("--json", "json_output", is_flag=True, help="list: one JSON object on stdout.")
def cache_command(action: str, older_than: float, dry_run: bool, json_output: bool) -> int:
    """List what is kept between runs (roots, loaders, zig wrappers, the target folder of each
    glibc, Docker images) with sizes and last use; `prune` removes what no recent build used.
    """
    from .caches import run_cache

    return run_cache(action, older_than, dry_run, json_output)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a CI job cancelled, `docker stop`...) cleans up like Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code. Never lets a traceback reach the user."""
    from . import jsonout

    if argv is None:  # the process's own command line (build.py, the console script)
        # What is imported by now (modules, classes, functions: most of the heap) lives until
        # the process exits; gc.freeze keeps the collector from walking it again at every
        # full collection (https://docs.python.org/3/library/gc.html#gc.freeze). Not for an
        # in-process caller (tests), whose later garbage would be kept too.
        gc.freeze()
    signal.signal(signal.SIGTERM, _terminate)
    jsonout.reset()
    _last_error.clear()
    json_wanted = jsonout.wanted(sys.argv[1:] if argv is None else argv)
    if json_wanted:
        jsonout.watch_stdout()
    code = _main(argv)
    if _last_error and json_wanted and not jsonout.emitted():
        # failed before the command printed its JSON
        jsonout.emit(jsonout.failure(_last_error[-1] if _last_error else "failed", code))
    return code


_last_error: list[str] = []  # the one line `_main` printed, for --json


def _error(message: str, details: str = "") -> None:
    _last_error.append(message)
    error(message, details)


def _main(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="build.py", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        _error("interrupted")
        return 130
    except click.ClickException as exc:
        exc.show()
        annotate_error(exc.format_message())
        _last_error.append(exc.format_message())
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except OrchestratorError as exc:
        _last_error.append(exc.message)
        error(exc.message, exc.details, file=getattr(exc, "path", None))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # stdout went away (e.g. `| head`): not an error worth a message
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("GLIBC_BUILD_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        _error(
            f"internal error: {type(exc).__name__}: {exc}; this is a bug, please report it "
            "with the output of the same command run with GLIBC_BUILD_DEBUG=1"
        )
        return 70
    return result if isinstance(result, int) else 0
