"""The Docker engine connection, through docker-py. One place turns "no engine" into one line."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from .errors import DockerUnavailable

if TYPE_CHECKING:
    import docker

# Everything this tool starts carries this label, so that leftovers can always be found:
#   docker ps -a --filter label=org.glibc-build
LABEL = "org.glibc-build"


@functools.cache
def client() -> docker.DockerClient:
    """A docker-py client that has answered a ping, or DockerUnavailable (exit 5).

    docker is imported here, not at the top: `check` never pays for it."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        raise DockerUnavailable(
            "the docker Python package is missing; run build.py (it sets "
            "up its own .venv) or `pip install -r requirements.txt`"
        ) from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        engine = docker.from_env(timeout=600)
        engine.ping()
    except (DockerException, OSError) as exc:
        raise DockerUnavailable(
            f"no Docker engine answers at {where} ({type(exc).__name__}); start it "
            "(e.g. `sudo systemctl start docker`), check you may use it (`docker info`), or set "
            "DOCKER_HOST; or build without Docker: --backend zig"
        ) from None
    return engine
