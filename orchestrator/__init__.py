"""glibc-compatibility cross-build orchestrator: Rust cdylibs that load on an old glibc."""

__version__ = "0.1.0"
