"""A throw-away PostgreSQL container (testcontainers), when a Docker engine answers."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from dbload.database.environ import given, setting
from dbload.errors import DatabaseError

DEFAULT_IMAGE = "postgres:17-alpine"
IMAGE_ENV = "DBLOAD_PG_IMAGE"


def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds.

    Never raises and never waits much longer than ``timeout``: the probe runs
    in a daemon thread, so even a Docker SDK that ignores its own timeout
    (API version negotiation, a DOCKER_HOST that black-holes packets) cannot
    hang a command.
    """
    if not setting("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False  # the common case without Docker: answer at once
    answer: list[bool] = []
    probe = threading.Thread(target=_ping, args=(timeout, answer), daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    return bool(answer and answer[0])


def _ping(timeout: float, answer: list[bool]) -> None:
    try:
        import docker

        client = docker.from_env(timeout=max(1, round(timeout)))
        try:
            answer.append(bool(client.ping()))
        finally:
            client.close()
    except Exception:  # no engine, no permission, no SDK: all mean "not available"
        answer.append(False)


def _container_class() -> Any:
    try:  # testcontainers >= 4.14 moved it; the old path still works but warns
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        try:
            from testcontainers.postgres import PostgresContainer
        except ImportError:
            raise DatabaseError("the container path needs testcontainers[postgres]") from None
    return PostgresContainer


def container_image(image: str | None = None) -> str:
    """``image``, else ``$DBLOAD_PG_IMAGE``, else postgres:17-alpine (blank counts as unset)."""
    return given(image) or setting(IMAGE_ENV) or DEFAULT_IMAGE


@contextmanager
def postgres_container(image: str | None = None) -> Iterator[str]:
    """Start a PostgreSQL container (see :func:`container_image`); yields its
    DSN and removes it at exit."""
    image = container_image(image)
    container: Any = None
    try:
        try:
            # The constructor already talks to the engine: it belongs in the try.
            container = _container_class()(
                image,
                username="dbload",
                # A fresh password per container: its port is published on the host.
                password=secrets.token_urlsafe(12),
                dbname="dbload",
                driver=None,
            )
            container.start()
            url = str(container.get_connection_url(driver=None))
        except DatabaseError:
            raise
        except Exception as exc:  # engine, pull, start or readiness: one line, no traceback
            raise DatabaseError(
                f"could not start a {image} container: {type(exc).__name__}"
            ) from None
        yield url
    finally:
        if container is not None:
            # Removes it with its volumes; never started or already gone: nothing to do.
            with suppress(Exception):
                container.stop()
