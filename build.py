#!/usr/bin/env python3
"""Build Rust cdylibs that load on an old glibc: `python3 build.py --glibc 2.17 crate/`."""

import sys

from orchestrator.bootstrap import ensure_environment

if __name__ == "__main__":
    ensure_environment()
    from orchestrator.cli import main

    sys.exit(main())
