"""A throw-away PostgreSQL container (testcontainers), when a Docker engine answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dbload.errors import DatabaseError

DEFAULT_IMAGE = "postgres:17-alpine"


def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no engine, no permission, no SDK: all mean "not available"
        return False


@contextmanager
def postgres_container(image: str | None = None) -> Iterator[str]:
    """Start a PostgreSQL container; yields its DSN and removes it at exit."""
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        raise DatabaseError("the container path needs testcontainers[postgres]") from None
    image = image or os.environ.get("DBLOAD_PG_IMAGE") or DEFAULT_IMAGE
    container = PostgresContainer(image, driver=None)
    try:
        container.start()
    except Exception as exc:
        raise DatabaseError(f"could not start container {image}: {type(exc).__name__}") from None
    try:
        yield container.get_connection_url()
    finally:
        container.stop()
