"""Every way the tool can fail, one class each, with its exit code and what to do next.

The CLI catches `OrchestratorError` and prints `error: <message>` on one line (plus the
optional `details` block, e.g. cargo's last lines), then exits with `exit_code`. Exit codes are
documented in the README and in `build.py --help`; keep the three in step.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class: a failure the user can act on. Never shown as a traceback."""

    exit_code: int = 70

    def __init__(self, message: str, *, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


# -- 1: the output does not hold up --------------------------------------------------------
class CheckFailed(OrchestratorError):
    """A library was built (or given) but needs more than the target glibc allows."""

    exit_code = 1


class LoadRefused(OrchestratorError):
    """The real dynamic loader of the target root refused the library, or the call failed."""

    exit_code = 1


# -- 2: the user's input ---------------------------------------------------------------
class UsageError(OrchestratorError):
    """A bad option value, or a bad combination of options."""

    exit_code = 2


class BadInput(OrchestratorError):
    """A named file or folder is missing or is not what it must be (no Cargo.toml, not ELF...)."""

    exit_code = 2


class RecipeError(BadInput):
    """A recipe is missing, malformed, or cannot serve the requested glibc."""


class UnsafeArchive(BadInput):
    """An image archive tries to write outside its destination, or is malformed."""


# -- 3: the toolchain ------------------------------------------------------------------
class ToolchainError(OrchestratorError):
    """cargo, rustc, zig, debootstrap or a Docker image build failed or is missing."""

    exit_code = 3


# -- 4: downloads that do not verify ---------------------------------------------------
class VerificationFailed(OrchestratorError):
    """A file's sha256 or GPG signature does not match what the recipe pins."""

    exit_code = 4


# -- 5: the Docker engine --------------------------------------------------------------
class DockerUnavailable(OrchestratorError):
    """No Docker engine answers (not installed, not running, or no permission)."""

    exit_code = 5


# -- 6: the network --------------------------------------------------------------------
class DownloadFailed(OrchestratorError):
    """A source could not be downloaded from any of its URLs after retries."""

    exit_code = 6


# -- 7: reproducibility -------------------------------------------------------------
class NotReproducible(OrchestratorError):
    """--verify-reproducible: a second build from another folder gave different bytes."""

    exit_code = 7


EXIT_CODES: dict[int, str] = {
    0: "built (or checked, or loaded) and within the target glibc",
    1: "the output fails the glibc check, or the loader refused it",
    2: "usage error or bad input (option value, missing Cargo.toml, no cdylib, not ELF...)",
    3: "the toolchain failed (cargo, zig, debootstrap, Docker image build)",
    4: "a download did not verify (sha256 or GPG signature)",
    5: "no Docker engine could be reached",
    6: "a download failed after retries",
    7: "--verify-reproducible: a second build gave different bytes",
    70: "internal error (a bug: please report it with GLIBC_BUILD_DEBUG=1 output)",
    130: "interrupted",
}
