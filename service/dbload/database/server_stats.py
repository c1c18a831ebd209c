"""Reading the server's cumulative statistics for the server-side view.

:func:`snapshot` reads pg_stat_database and pg_stat_statements for the
database of a DSN on a short-lived connection of its own; subtract two with
:func:`dbload.measure.server.delta`. A run is watched by a :class:`RunWatch`
instead: one session of dbload's own reads the counters when measurement
starts (the end of the warm-up, or before the workers connect when there is
none) and after the run, finds the run's backends by the application_name
the run's connections carry (for their CPU, apart from other sessions'),
and samples pg_stat_activity for other sessions busy meanwhile. Nothing here
may fail a run: on any database error the snapshot holds the reason instead.

Cumulative statistics reach pg_stat_database with a delay: a backend flushes
its counters at transaction end at most once a second, and at exit. The
run's connections are closed before the "after" snapshot, which first waits
(up to :data:`SETTLE_S`) for their backends to be gone: a backend flushes
its counters before it leaves pg_stat_activity. The reading at the end of a
warm-up cannot wait so: it misses what the run's backends counted since
they last flushed, at most a second each (pg_stat_statements has no such
delay). The workers all start at one instant and flush in step from it, so
with a warm-up of whole seconds that is the last few milliseconds of it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Any, LiteralString, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from dbload.database.container import cpu_clock_for
from dbload.database.redact import redact
from dbload.measure.cpu import Backends, CpuMeter, find_postmaster
from dbload.measure.server import (
    COUNTERS,
    MEASURED,
    RUN,
    OtherSessions,
    ServerSnapshot,
    ServerStats,
    StatementCounters,
    StatementKey,
    delta,
)

# Marks dbload's own snapshot queries, so that they are left out of
# pg_stat_statements' figures (its stored text keeps the comment).
MARK = "/* dbload:server-view */"

CONNECT_TIMEOUT_S = 5
SETTLE_S = 3.0  # at most this long for the run's backends to exit
SAMPLE_S = 0.2  # pg_stat_activity is sampled this often for other sessions
# the monitor publishes its own counters this long before the end of a
# warm-up, so that the reading then is a single statement
FLUSH_AHEAD_NS = 50_000_000
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


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
            return _read(conn, name, schema, st_skipped)
    except psycopg.Error as exc:
        return _unreadable(exc)


def _unreadable(exc: psycopg.Error) -> ServerSnapshot:
    why = f"no server statistics: {redact(_first_line(exc))}"
    return ServerSnapshot(database_skipped=why, statements_skipped=why)


def _read(
    conn: psycopg.Connection[DictRow], name: str, schema: str | None, st_skipped: str | None
) -> ServerSnapshot:
    """The counters now; pg_stat_database first (pg_stat_statements takes longer)."""
    _force_flush(conn)  # so that this session's own counters are in before we read
    own = conn.transactions if isinstance(conn, _Counting) else 0
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
        reader_pid=conn.info.backend_pid if isinstance(conn, _Counting) else None,
        own_transactions=own,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _settle(conn: psycopg.Connection[DictRow], since: ServerSnapshot) -> bool:
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


def _force_flush(conn: psycopg.Connection[DictRow]) -> None:
    """PG 15+: have this backend flush its pending counters at once (older
    servers send them to the collector without this knob).

    The statement reads a table: a backend with no table counters pending
    takes its flush for "nothing to do" and keeps its commit count back
    (seen on 15: a session of pg_stat_activity samples flushed no commit).
    """
    if conn.info.server_version >= 150000:
        conn.execute(
            f"SELECT pg_stat_force_next_flush() FROM pg_database {MARK}"
            " WHERE datname = current_database()"
        )


def _current_database(conn: psycopg.Connection[DictRow]) -> str:
    row = conn.execute(f"SELECT current_database() AS name {MARK}").fetchone()
    return str(row["name"]) if row else "?"


def _database(
    conn: psycopg.Connection[DictRow], name: str
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


def _extension(conn: psycopg.Connection[DictRow], database: str) -> tuple[str | None, str | None]:
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
    conn: psycopg.Connection[DictRow], schema: str
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
    return _entries(rows), _statements_reset(conn, schema), None


def _entries(rows: list[dict[str, Any]]) -> dict[StatementKey, StatementCounters]:
    """pg_stat_statements rows by key, dbload's own left out."""
    entries: dict[StatementKey, StatementCounters] = {}
    for row in rows:
        query = str(row.get("query") or "")
        if row.get("queryid") is None or MARK in query:
            continue
        total = row.get("total_exec_time", row.get("total_time")) or 0.0
        toplevel = bool(row.get("toplevel", True))  # PG 14+
        key = (int(row["userid"]), int(row["dbid"]), int(row["queryid"]), toplevel)
        entries[key] = StatementCounters(query, int(row["calls"]), float(total), int(row["rows"]))
    return entries


def _extension_schema(conn: psycopg.Connection[DictRow]) -> str | None:
    row = conn.execute(
        f"SELECT n.nspname AS schema FROM pg_extension e {MARK}"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
    ).fetchone()
    return None if row is None else str(row["schema"])


def _install(conn: psycopg.Connection[DictRow], database: str) -> str | None:
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


def _statements_reset(conn: psycopg.Connection[DictRow], schema: str) -> str | None:
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


class _Counting(psycopg.Connection[DictRow]):
    """A connection that counts the statements it ran: in autocommit each is
    a transaction of dbload's own, to leave out of the run's commits."""

    transactions = 0

    def execute(self, *args: Any, **kwargs: Any) -> psycopg.Cursor[DictRow]:
        cursor = super().execute(*args, **kwargs)
        self.transactions += 1  # after: a statement that failed rolled back
        return cursor


class Monitor:
    """dbload's own session on the server during one run.

    The run's connections carry ``application_name = tag``; this session
    finds their backends by it, reads the counters and samples the others.
    Every method may be called from another thread than the last one (not
    at once); none raises a database error: it returns None or a snapshot
    with the reason.
    """

    def __init__(self, conn: _Counting, tag: str, name: str) -> None:
        self._conn = conn
        self.tag = tag
        self.database = name
        self._schema, self._statements_skipped = _extension(conn, name)
        self._lock = threading.Lock()
        self._query, self._with = self._one_query()

    @classmethod
    def open(cls, dsn: str, tag: str) -> Monitor | ServerSnapshot:
        """A monitor for the run tagged ``tag``, or a snapshot saying why not."""
        try:
            conn = _Counting.connect(
                dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                row_factory=dict_row,
                application_name=f"{tag} monitor",
            )
        except psycopg.Error as exc:
            return _unreadable(exc)
        try:
            return cls(conn, tag, _current_database(conn))
        except psycopg.Error as exc:
            conn.close()
            return _unreadable(exc)

    def close(self) -> None:
        self._conn.close()

    @property
    def lost(self) -> bool:
        """The session is gone (terminated, or the server restarted)."""
        return self._conn.closed or self._conn.broken

    def _one_query(self) -> tuple[sql.Composed | None, tuple[str, ...]]:
        """One statement that reads pg_stat_database and pg_stat_statements
        at one instant (one round trip: at the end of a warm-up every
        millisecond counts), with the parts this server has; tried once."""
        parts: dict[str, sql.Composable] = {
            "db": sql.SQL(
                "(SELECT row_to_json(d) FROM (SELECT *, stats_reset::text AS reset"
                " FROM pg_stat_database WHERE datname = current_database()) d)"
            )
        }
        if self._schema is not None:
            parts["statements"] = sql.SQL(
                "(SELECT json_agg(s) FROM {} s WHERE dbid ="
                " (SELECT oid FROM pg_database WHERE datname = current_database()))"
            ).format(sql.Identifier(self._schema, "pg_stat_statements"))
            parts["statements_reset"] = sql.SQL("(SELECT stats_reset::text FROM {})").format(
                sql.Identifier(self._schema, "pg_stat_statements_info")  # PG 14+
            )
        for names in (tuple(parts), ("db", "statements"), ("db",)):
            query = sql.SQL("SELECT {} {}").format(
                sql.SQL(", ").join(sql.SQL("{} AS {}").format(parts[n], sql.SQL(n)) for n in names),
                sql.SQL(MARK),
            )
            try:
                self._conn.execute(query)
            except psycopg.errors.ObjectNotInPrerequisiteState:
                self._statements_skipped = "pg_stat_statements is not in shared_preload_libraries"
            except psycopg.Error:
                continue
            else:
                return query, names
        return None, ()

    def read(self, *, flush: bool = True) -> ServerSnapshot:
        """The counters now; ``flush=False`` when :meth:`flush` was called
        just before (nothing of this session's since then)."""
        with self._lock:
            try:
                if self._query is None:
                    return _read(self._conn, self.database, self._schema, self._statements_skipped)
                if flush:
                    _force_flush(self._conn)
                return self._read_at_once(self._query)
            except psycopg.Error as exc:
                return _unreadable(exc)

    def flush(self) -> None:
        """Publish this session's own counters now, ahead of a read that
        must be quick (see :meth:`read`)."""
        with self._lock, contextlib.suppress(psycopg.Error):
            _force_flush(self._conn)

    def _read_at_once(self, query: sql.Composed) -> ServerSnapshot:
        own = self._conn.transactions  # already in the counters read next
        row = self._conn.execute(query).fetchone() or {}
        db = row.get("db")
        statements = None
        if "statements" in self._with:
            statements = _entries(row.get("statements") or [])
        return ServerSnapshot(
            database=self.database,
            counters=None if db is None else {key: int(db.get(key) or 0) for key in COUNTERS},
            counters_reset=None if db is None else db.get("reset"),
            database_skipped=None if db else f"pg_stat_database has no row for {self.database}",
            statements=statements,
            statements_reset=row.get("statements_reset"),
            statements_skipped=None if statements is not None else self._statements_skipped,
            reader_pid=self._conn.info.backend_pid,
            own_transactions=own,
        )

    def settle_and_read(self) -> ServerSnapshot:
        """The counters once the run's backends have exited (see :data:`SETTLE_S`)."""
        query = f"SELECT count(*) AS n FROM pg_stat_activity {MARK} WHERE application_name = %s"
        deadline = time.monotonic() + SETTLE_S
        # a failure here shows in the read that follows
        with self._lock, contextlib.suppress(psycopg.Error):
            while (row := self._conn.execute(query, (self.tag,)).fetchone()) and row["n"]:
                if time.monotonic() >= deadline:
                    break  # go ahead with what is flushed
                time.sleep(0.02)
        return self.read()

    def backends(self) -> Backends | None:
        """The run's backends and the other sessions' (see :func:`backends`)."""
        with self._lock:
            return backends(self._conn, self.tag)

    def others_active(self) -> int | None:
        """How many other sessions' client backends run a statement now."""
        query = (
            f"SELECT count(*) AS n FROM pg_stat_activity {MARK}"
            " WHERE state = 'active' AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM %s"
        )
        with self._lock:
            try:
                row = self._conn.execute(query, (self.tag,)).fetchone()
            except psycopg.Error:
                return None
        return int(row["n"]) if row else 0

    def postmaster_cpu(self, dsn: str) -> CpuMeter:
        """A CPU meter for the server's processes when they run on this machine,
        or for the container's cgroup when ``dsn`` reaches a container."""
        if (clock := cpu_clock_for(dsn)) is not None:
            return CpuMeter(None, clock.note, clock=clock.read)
        with self._lock:
            return CpuMeter(*find_postmaster(data_directory(self._conn, dsn)))


def backends(conn: psycopg.Connection[DictRow], tag: str) -> Backends | None:
    """The run's backends (with their parallel workers) and the other
    sessions' client backends, by pid; None when they cannot be listed."""
    own_test: LiteralString = "application_name = %(tag)s"
    if conn.info.server_version >= 130000:
        own_test += (
            " OR leader_pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = %(tag)s)"
        )
    query: LiteralString = (
        f"SELECT pid, ({own_test}) AS own FROM pg_stat_activity {MARK}"
        " WHERE pid <> pg_backend_pid()"
        " AND backend_type IN ('client backend', 'parallel worker')"
    )
    try:
        rows = conn.execute(query, {"tag": tag}).fetchall()
    except psycopg.Error:
        return None
    own = frozenset(int(r["pid"]) for r in rows if r["own"])
    return Backends(own=own, others=frozenset(int(r["pid"]) for r in rows) - own)


def _backends_anew(dsn: str, tag: str) -> Backends | None:
    try:
        with psycopg.connect(
            dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, row_factory=dict_row
        ) as conn:
            return backends(conn, tag)
    except psycopg.Error:
        return None


def data_directory(conn: psycopg.Connection[DictRow], dsn: str) -> str | None:
    """The server's data directory when it runs on this machine (for its CPU)."""
    try:
        host = str(conninfo_to_dict(dsn).get("host") or "")
    except psycopg.Error:
        return None
    if not (host.startswith("/") or host in _LOCAL_HOSTS):
        return None
    try:
        row = conn.execute(f"SELECT current_setting('data_directory') AS dir {MARK}").fetchone()
    except psycopg.Error:
        return None
    return str(row["dir"]) if row else None


class RunWatch:
    """The server view and server CPU of one run, over its measured window.

    Hooked to the run's recorder: :meth:`begin` (``on_begin``) starts a
    thread that, at the end of the warm-up, reads the counters (with no
    warm-up they were read when the watch opened, before the workers
    connected), starts the CPU meter on the run's backends and samples
    pg_stat_activity until :meth:`end` (``on_finish``, while the run's
    connections still exist) stops the meter; :meth:`result` reads the
    counters once the run's backends have exited. Off the workers' path:
    nothing here holds them up.
    """

    def __init__(self, dsn: str, tag: str, warmup_s: float) -> None:
        self._dsn = dsn
        self._warmup_s = warmup_s
        opened = Monitor.open(dsn, tag)
        self._monitor: Monitor | None = None
        self._before: ServerSnapshot | None = None
        if isinstance(opened, Monitor):
            self._monitor = opened
            self.cpu = opened.postmaster_cpu(dsn)
            if warmup_s <= 0:
                self._before = opened.read()
        else:
            self._before = opened  # says why there are no figures
            self.cpu = CpuMeter(None, opened.database_skipped or "no server statistics")
        self._backends: Backends | None = None
        self._samples: list[int] = []
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._join()
        if self._monitor is not None:
            self._monitor.close()

    def begin(self, measure_from_ns: int) -> None:
        """The run's clock started; measurement starts at ``measure_from_ns``."""
        self._thread = threading.Thread(
            target=self._watch, args=(measure_from_ns,), name="dbload-server-watch", daemon=True
        )
        self._thread.start()

    def end(self) -> None:
        """The measured window ended: stop sampling, sample CPU again."""
        self._join()
        if self.cpu.started:
            listed = self._monitor.backends() if self._monitor else None
            if listed is None and self._monitor is not None and self._monitor.lost:
                listed = _backends_anew(self._dsn, self._monitor.tag)  # reconnected ones too
            self.cpu.stop(listed or self._backends)  # a failed listing: those of the start

    def result(self) -> ServerStats:
        """The server's counters over the measured window."""
        self._join()
        window = MEASURED if self._warmup_s > 0 else RUN
        if self._monitor is None:
            before = self._before or ServerSnapshot()
            return delta(before, before, window=window)
        if self._before is None:
            why = "the run ended before its warm-up did: no measured window"
            return ServerStats(
                database=None,
                statements=(),
                database_skipped=why,
                statements_skipped=why,
                window=window,
            )
        after = self._monitor.settle_and_read()
        if self._monitor.lost:  # e.g. a fault test terminated it: read on a new session
            after = self._read_anew(self._monitor.tag) or after
        return delta(self._before, after, window=window, others=self._others())

    def _read_anew(self, tag: str) -> ServerSnapshot | None:
        """The "after" reading on a session of its own (whose own commits
        then count: it is not the one that read "before")."""
        fresh = Monitor.open(self._dsn, tag)
        if not isinstance(fresh, Monitor):
            return None
        try:
            return fresh.settle_and_read()
        finally:
            fresh.close()

    def _others(self) -> OtherSessions | None:
        if not self._samples:
            return None
        return OtherSessions(
            samples=len(self._samples),
            busy_samples=sum(1 for n in self._samples if n > 0),
            max_active=max(self._samples),
        )

    def _wait_until(self, ns: int) -> bool:
        """False when the run ended first."""
        while (wait_ns := ns - time.perf_counter_ns()) > 0:
            if self._done.wait(wait_ns / 1e9):
                return False
        return not self._done.is_set()

    def _join(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self, measure_from_ns: int) -> None:
        monitor = self._monitor
        if not self._wait_until(measure_from_ns - FLUSH_AHEAD_NS):
            return  # the run ended within its warm-up
        if monitor is not None and self._warmup_s > 0:
            monitor.flush()
        if not self._wait_until(measure_from_ns):
            return
        if monitor is None:
            self.cpu.start()
            return
        if self._warmup_s > 0:
            self._before = monitor.read(flush=False)
        self._backends = monitor.backends()
        if self._backends is None:  # never the whole server in their stead
            self.cpu = CpuMeter(None, "the run's backends could not be listed")
        self.cpu.start(self._backends)
        while not self._done.is_set():
            active = monitor.others_active()
            if active is None:
                return
            self._samples.append(active)
            self._done.wait(SAMPLE_S)
