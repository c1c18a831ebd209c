"""Reading the server's cumulative statistics for the server-side view.

:func:`snapshot` reads pg_stat_database and pg_stat_statements for the
database of a DSN on a short-lived connection of its own; subtract two with
:func:`dbload.measure.server.delta`. Nothing here may fail a run: on any
database error the snapshot holds the reason instead.

Cumulative statistics reach pg_stat_database with a delay: a backend flushes
its counters at transaction end at most once a second, and at exit. The
run's connections are closed before the "after" snapshot, which first waits
(up to :data:`SETTLE_S`) for their backends to be gone: a backend flushes
its counters before it leaves pg_stat_activity.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dbload.database.redact import redact
from dbload.measure.server import COUNTERS, ServerSnapshot, StatementCounters, StatementKey

# Marks dbload's own snapshot queries, so that they are left out of
# pg_stat_statements' figures (its stored text keeps the comment).
MARK = "/* dbload:server-view */"

CONNECT_TIMEOUT_S = 5
SETTLE_S = 3.0  # at most this long for the run's backends to exit


def snapshot(dsn: str, since: ServerSnapshot | None = None) -> ServerSnapshot:
    """The server's counters for the database of ``dsn``, now.

    With ``since`` (the "before" snapshot), first wait up to :data:`SETTLE_S`
    for the backends that connected after it to exit, so that their last
    counters are flushed. Never raises for a database error: the snapshot
    then holds the reason.
    """
    try:
        with psycopg.connect(
            dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, row_factory=dict_row
        ) as conn:
            if since is not None and since.counters is not None:
                _settle(conn, since)
            name = _current_database(conn)
            schema, st_skipped = _extension(conn, name)  # may CREATE EXTENSION: first
            _force_flush(conn)  # ...so that its own counters are in before we read
            pids, counters, reset, db_skipped = _database(conn, name)
            statements, st_reset = None, None
            if schema is not None:
                statements, st_reset, st_skipped = _statements(conn, schema)
            return ServerSnapshot(
                database=name,
                pids=pids,
                counters=counters,
                counters_reset=reset,
                database_skipped=db_skipped,
                statements=statements,
                statements_reset=st_reset,
                statements_skipped=st_skipped,
            )
    except psycopg.Error as exc:
        why = f"no server statistics: {redact(_first_line(exc))}"
        return ServerSnapshot(database_skipped=why, statements_skipped=why)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _settle(conn: psycopg.Connection[dict[str, Any]], since: ServerSnapshot) -> bool:
    """Wait for the client backends that connected after ``since`` to exit
    (they flush their statistics on the way out); True when they did."""
    query = (
        f"SELECT count(*) AS n FROM pg_stat_activity {MARK}"
        " WHERE datname = current_database() AND backend_type = 'client backend'"
        " AND pid <> pg_backend_pid() AND NOT (pid = ANY(%s))"
    )
    deadline = time.monotonic() + SETTLE_S
    while True:
        row = conn.execute(query, (list(since.pids),)).fetchone()
        if not row or row["n"] == 0:
            return True
        if time.monotonic() >= deadline:
            return False  # someone else's sessions: go ahead with what is flushed
        time.sleep(0.02)


def _force_flush(conn: psycopg.Connection[dict[str, Any]]) -> None:
    """PG 15+: have this backend flush its pending counters at once (older
    servers send them to the collector without this knob)."""
    if conn.info.server_version >= 150000:
        conn.execute(f"SELECT pg_stat_force_next_flush() {MARK}")


def _current_database(conn: psycopg.Connection[dict[str, Any]]) -> str:
    row = conn.execute(f"SELECT current_database() AS name {MARK}").fetchone()
    return str(row["name"]) if row else "?"


def _database(
    conn: psycopg.Connection[dict[str, Any]], name: str
) -> tuple[frozenset[int], dict[str, int] | None, str | None, str | None]:
    """The database's client backends now, its pg_stat_database counters
    and their last reset, or why there are none."""
    pids = frozenset(
        int(r["pid"])
        for r in conn.execute(
            f"SELECT pid FROM pg_stat_activity {MARK}"
            " WHERE datname = current_database() AND backend_type = 'client backend'"
        ).fetchall()
    )
    row = conn.execute(
        f"SELECT *, stats_reset::text AS reset FROM pg_stat_database {MARK}"
        " WHERE datname = current_database()"
    ).fetchone()
    if row is None:
        return pids, None, None, f"pg_stat_database has no row for {name}"
    counters = {key: int(row.get(key) or 0) for key in COUNTERS}
    return pids, counters, row.get("reset"), None


def _extension(
    conn: psycopg.Connection[dict[str, Any]], database: str
) -> tuple[str | None, str | None]:
    """The schema of pg_stat_statements in this database (created if need
    be), or why it is not there."""
    schema = _extension_schema(conn)
    if schema is None:
        why = _install(conn, database)
        if why is not None:
            return None, why
        schema = _extension_schema(conn)
        if schema is None:  # pragma: no cover - created but not visible
            return None, f"pg_stat_statements is not installed in database {database}"
    return schema, None


def _statements(
    conn: psycopg.Connection[dict[str, Any]], schema: str
) -> tuple[dict[StatementKey, StatementCounters] | None, str | None, str | None]:
    """pg_stat_statements entries of this database, or why there are none."""
    view = sql.Identifier(schema, "pg_stat_statements")
    try:
        rows = conn.execute(
            sql.SQL(
                "SELECT * FROM {} {} WHERE dbid = (SELECT oid FROM pg_database {}"
                " WHERE datname = current_database())"
            ).format(view, sql.SQL(MARK), sql.SQL(MARK))
        ).fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return None, None, "pg_stat_statements is not in shared_preload_libraries"
    except psycopg.Error as exc:
        return None, None, f"pg_stat_statements could not be read: {_first_line(exc)}"
    entries: dict[StatementKey, StatementCounters] = {}
    for row in rows:
        query = str(row.get("query") or "")
        if row.get("queryid") is None or MARK in query:
            continue
        total = row.get("total_exec_time", row.get("total_time")) or 0.0
        toplevel = bool(row.get("toplevel", True))  # PG 14+
        key = (int(row["userid"]), int(row["dbid"]), int(row["queryid"]), toplevel)
        entries[key] = StatementCounters(query, int(row["calls"]), float(total), int(row["rows"]))
    return entries, _statements_reset(conn, schema), None


def _extension_schema(conn: psycopg.Connection[dict[str, Any]]) -> str | None:
    row = conn.execute(
        f"SELECT n.nspname AS schema FROM pg_extension e {MARK}"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    return None if row is None else str(row["schema"])


def _install(conn: psycopg.Connection[dict[str, Any]], database: str) -> str | None:
    """CREATE EXTENSION pg_stat_statements where the server preloads it;
    None when done, else why not."""
    available = conn.execute(
        f"SELECT 1 FROM pg_available_extensions {MARK} WHERE name = 'pg_stat_statements'"
    ).fetchone()
    if available is None:
        return "pg_stat_statements is not available on this server (contrib not installed)"
    try:
        row = conn.execute(
            f"SELECT current_setting('shared_preload_libraries') AS libs {MARK}"
        ).fetchone()
        libs = [s.strip().strip('"') for s in str(row["libs"] if row else "").split(",")]
        if "pg_stat_statements" not in libs:
            return "pg_stat_statements is not in shared_preload_libraries"
    except psycopg.errors.InsufficientPrivilege:
        pass  # this role may not read the setting: CREATE EXTENSION tells
    try:
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS pg_stat_statements {MARK}")
    except psycopg.Error as exc:
        return (
            f"pg_stat_statements is not installed in database {database}"
            f" and this role cannot CREATE EXTENSION ({_first_line(exc)})"
        )
    return None


def _statements_reset(conn: psycopg.Connection[dict[str, Any]], schema: str) -> str | None:
    """When pg_stat_statements was last reset (PG 14+), to spot a reset mid-run."""
    try:
        row = conn.execute(
            sql.SQL("SELECT stats_reset::text AS reset FROM {} {}").format(
                sql.Identifier(schema, "pg_stat_statements_info"), sql.SQL(MARK)
            )
        ).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else row["reset"]
