#!/bin/sh
# The test command (README and .ci/run): installs what the tests need, then runs them.
set -eu
cd "$(dirname "$0")/.."
if { ! command -v debootstrap >/dev/null 2>&1 || [ ! -f /usr/share/man/man2/syscalls.2.gz ] \
     || [ ! -f /usr/include/asm-generic/unistd.h ]; } && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap gpg gpgv \
    manpages-dev linux-libc-dev cpp >/dev/null
fi
python3 build.py --version >/dev/null          # creates .venv/ with the pinned runtime deps
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
.venv/bin/python -m ruff check orchestrator tests bench tools build.py
.venv/bin/python -m ruff format --check --quiet orchestrator tests bench tools build.py
.venv/bin/python -m mypy                        # strict on orchestrator/ (pyproject.toml)
exec .venv/bin/python -m pytest -q "$@"
