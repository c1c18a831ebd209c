"""The psycopg (sync) worker shared by the sequential and threads modes.

Parameters are sent as text of unknown type, as pgbench does (the stream
makes every value text; psycopg dumps a str with no type, oid 0), so the
server infers each one's type from the statement and parses the text: a
value binds the same way in pgbench, in psycopg and in asyncpg.

The worker drives the interpreter (dbload.workload.stream) and does its I/O:
``-M prepared`` executes with prepare=True (psycopg prepares each statement
once per connection), ``extended`` with prepare=False (unnamed statements),
``simple`` sends the interpolated text without parameters (psycopg then uses
the simple query protocol); ``\\startpipeline`` enters psycopg's pipeline mode.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import pq

from dbload.config import Plan
from dbload.measure.recorder import Recorder
from dbload.modes.base import (
    CLIENT_CHECK_MS,
    NOT_SQL,
    QUERY_CANCELED,
    RETRYABLE,
    SCRIPT_FAILED,
    Client,
    clients_label,
    first_line,
    gave_up,
    interpolate,
    lazy_statements,
    make_clients,
    reconnect_until,
    run_shell,
    settle,
    skip_check,
)
from dbload.workload.cpu import burn
from dbload.workload.model import ScriptRuntimeError
from dbload.workload.stream import QUERY, SHELL, SLEEP, Request, Txn

_IDLE = pq.TransactionStatus.IDLE
LOST_CONNECTION = "08006"  # connection_failure: the socket closed with no SQLSTATE
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 2.0


def connect_kwargs(plan: Plan) -> dict[str, Any]:
    """Connection options shared by the sequential and threads modes."""
    options = " ".join(f"-c {k}={_escape(v)}" for k, v in plan.server_settings().items())
    return {"autocommit": True, **({"options": options} if options else {})}


def _escape(value: str) -> str:
    """libpq splits ``options`` on spaces: "repeatable read" needs its backslash."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def prepare_all(conn: psycopg.Connection[Any], plan: Plan) -> set[int]:
    """Ask the server to prepare every statement, to fail before the clock starts.

    psycopg keeps its own prepared statements (prepare=True on execute); this
    check prepares under a private name and deallocates, on the libpq level,
    so a bad table or column is reported with its file and line. Returns the
    statements left to be prepared when first run (see ``lazy_statements``).
    """
    pgconn = conn.pgconn
    if conn.info.server_version >= 140000:
        # see CLIENT_CHECK_MS; refused only by a server on a platform without it
        pgconn.exec_(b"SET client_connection_check_interval = %d" % CLIENT_CHECK_MS)
    refused: dict[int, str] = {}
    for index, statement in enumerate(plan.workload.statements):
        if skip_check(plan, statement):
            continue
        name = f"dbload_check_{index}".encode()
        result = pgconn.prepare(name, statement.sql.encode())
        if pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection was lost while preparing")
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_message or b"").decode(errors="replace")
            refused[index] = _strip_severity(message)
            continue
        pgconn.exec_(b"DEALLOCATE " + name)
    return lazy_statements(plan, refused)


def _strip_severity(message: str) -> str:
    return message.removeprefix("ERROR:").strip()


# (the lost connection, until when to try) -> a new one, or None
Reconnect = Callable[[psycopg.Connection[Any], int], "psycopg.Connection[Any] | None"]


class InFlight:
    """The connection each worker uses now, so another thread can cancel
    their statements when the grace period after Ctrl-C runs out; ``cancelled``
    wakes the workers out of a \\sleep then."""

    def __init__(self) -> None:
        self._conns: dict[int, psycopg.Connection[Any]] = {}
        self.cancelled = threading.Event()

    def use(self, client_id: int, conn: psycopg.Connection[Any]) -> None:
        self._conns[client_id] = conn

    def cancel_all(self) -> None:
        self.cancelled.set()
        for conn in list(self._conns.values()):
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=2)


class _Cancelled(Exception):
    """A \\sleep cut short by the cancel after the grace period."""


class _Link:
    """A worker's connection and how it does the interpreter's I/O
    (one per connection: a new one after a reconnect, or per transaction
    with -C)."""

    __slots__ = ("conn", "cursor", "encoding", "execute", "pgconn", "pipe", "query",
                 "sqls", "statements")  # fmt: skip

    def __init__(self, conn: psycopg.Connection[Any], plan: Plan) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.cursor = psycopg.RawCursor(conn)
        self.execute = self.cursor.execute
        self.encoding = conn.info.encoding
        self.statements = plan.workload.statements
        self.sqls = [s.sql for s in self.statements]
        # the open \startpipeline: psycopg's context manager and its pipeline
        self.pipe: tuple[Any, psycopg.Pipeline] | None = None
        modes = {"simple": self._simple, "extended": self._extended}
        self.query: Callable[[Request], Any] = modes.get(plan.query_mode, self._prepared)

    def _prepared(self, request: Request) -> Any:
        self.execute(self.sqls[request[1]], request[2], prepare=True)
        return self._rows(request[3]) if request[3] else None

    def _extended(self, request: Request) -> Any:
        # prepare=False: an unnamed statement, parsed again each time
        self.execute(self.sqls[request[1]], request[2], prepare=False)
        return self._rows(request[3]) if request[3] else None

    def _simple(self, request: Request) -> Any:
        # no parameters: psycopg sends one simple-protocol Query message
        # (outside a pipeline), which may hold several statements (\;)
        self.execute(interpolate(self.statements[request[1]], request[2]), prepare=False)
        return self._rows(request[3]) if request[3] else None

    def _rows(self, fetch: int) -> Any:
        """The results as text, as pgbench stores them: the last one for
        \\gset, every one for \\aset."""
        results = []
        cursor = self.cursor
        while True:
            if (res := cursor.pgresult) is not None:
                results.append(_text_result(res, self.encoding))
            if not cursor.nextset():
                break
        if fetch == 2:
            return results
        return results[-1] if results else ((), [])

    def pipeline(self, kind: str) -> None:
        if kind == "start":
            manager = self.conn.pipeline()
            self.pipe = (manager, manager.__enter__())
        elif kind == "sync":
            assert self.pipe is not None  # the interpreter checks the order
            self.pipe[1].sync()
        else:
            assert self.pipe is not None
            manager, self.pipe = self.pipe[0], None
            manager.__exit__(None, None, None)

    def abandon_pipeline(self) -> None:
        """Leave pipeline mode after a failure, dropping what is still queued."""
        if self.pipe is not None:
            manager, self.pipe = self.pipe[0], None
            # a plain exit: the server already discards what follows an
            # error until the sync; an exit "with" the error would log it
            with contextlib.suppress(Exception):
                manager.__exit__(None, None, None)


def _text_result(res: pq.abc.PGresult, encoding: str) -> tuple[tuple[str, ...], list[Any]]:
    fields = range(res.nfields)
    columns = tuple((res.fname(i) or b"").decode(encoding) for i in fields)
    rows = [
        tuple(None if (v := res.get_value(r, c)) is None else v.decode(encoding) for c in fields)
        for r in range(res.ntuples)
    ]
    return columns, rows


def _execute(
    link: _Link, txn: Txn, cancelled: threading.Event, steps: list[Any], step_ns: list[int], t: int
) -> int:
    """Run one try of a transaction: the interpreter's requests, each timed
    (the end of one is the start of the next). Returns its end."""
    perf = time.perf_counter_ns
    query = link.query
    try:
        request = next(txn)
        while True:
            kind = request[0]
            if kind is QUERY:
                # appended first: on an error, the step with no time is the
                # statement that failed (see base.settle)
                steps.append((request[1], request[2]))
                answer = query(request)
            elif kind is SLEEP:
                if cancelled.wait(request[1]):
                    raise _Cancelled
                answer = None
                steps.append(NOT_SQL)
            elif kind is SHELL:
                answer = run_shell(request[1], request[2])
                steps.append(NOT_SQL)
            else:
                link.pipeline(request[1])
                answer = None
                steps.append(NOT_SQL)
            now = perf()
            step_ns.append(now - t)
            t = now
            request = txn.send(answer)
    except StopIteration:
        return t


def run_worker(
    conn: psycopg.Connection[Any],
    plan: Plan,
    clients: Sequence[int],
    recorder: Recorder,
    deadline: int | None,
    stop: threading.Event,
    reconnect: Reconnect,
    in_flight: InFlight,
    connect: Callable[[], psycopg.Connection[Any]] | None = None,
) -> psycopg.Connection[Any]:
    """Run ``clients``' shares of the batch on one connection: one client
    per thread in threads mode; in sequential mode all of them, their
    streams taken in turn (the earliest due, open loop), so that the one
    connection sends what N clients would.

    A lost connection counts as a failed transaction; ``reconnect`` gives a
    new one (or None once the run is stopping). A serialization failure or
    deadlock is run again from the same random state, up to
    ``plan.max_tries`` tries. A script that fails on the client side, or
    ends inside a transaction block, aborts its client only. With -C
    (``plan.connect_per_transaction``) each transaction opens its own
    connection with ``connect``, inside its latency. Returns the connection
    in use.

    Twin of ``async_._worker``: a change to one belongs in the other.
    """
    active = make_clients(plan, clients, recorder)
    per_txn = plan.connect_per_transaction and connect is not None
    if per_txn:
        conn.close()  # each transaction opens its own
    link = _Link(conn, plan)
    perf = time.perf_counter_ns
    record = recorder.record
    measure_from = recorder.measure_from_ns
    max_tries, loops = plan.max_tries, plan.cpu_work_loops
    open_loop = bool(plan.rate)
    worker = clients[0]
    in_flight.use(worker, conn)
    cancelled = in_flight.cancelled
    limit = plan.latency_limit_ns
    lag: int | None = None
    turn = 0
    while active and not stop.is_set():
        if len(active) == 1:
            client = active[0]
        elif open_loop:
            client = min(active, key=_due)
        else:
            turn %= len(active)
            client = active[turn]
            turn += 1
        stream = client.stream
        txn = stream.transaction()
        # open loop: latency counts from the scheduled start, so a worker
        # that falls behind shows up in latency, not only in lag
        start = perf() if client.schedule is None else client.due
        if deadline is not None and start >= deadline:
            break
        if client.schedule is not None:
            client.due = client.schedule.next()
            if _wait_until(start, stop):
                break
            lag = perf() - start
            if limit and lag > limit:
                recorder.skip(start, lag)
                client.done += start >= measure_from
                if not client.has_work:
                    active.remove(client)
                continue
        if loops:
            burn(loops)
        if per_txn:
            assert connect is not None
            fresh = _connect_for(connect, recorder, client)
            if fresh is None:
                active.remove(client)
                continue
            conn, link = fresh, _Link(fresh, plan)
            in_flight.use(worker, conn)
        tries = 0
        while True:
            tries += 1
            steps: list[Any] = []
            step_ns: list[int] = []
            error: str | None = None
            message: str | None = None
            t = perf() if tries > 1 or loops or lag is not None or per_txn else start
            try:
                t = _execute(link, txn, cancelled, steps, step_ns, t)
            except psycopg.Error as exc:
                link.abandon_pipeline()
                error, message = _recover(conn, exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(conn, stop, deadline, t):
                    txn = stream.transaction(retry=True)
                    continue
            except _Cancelled:
                error = QUERY_CANCELED
            except ScriptRuntimeError as exc:
                error = SCRIPT_FAILED
                message = str(exc)
            break
        if error is None and link.pgconn.transaction_status == _IDLE:
            # the common case, without settle()'s call
            record(start, t, steps, step_ns, None, tries, lag, None,
                   script=stream.script, client=client.id)  # fmt: skip
            client.done += start >= measure_from
        elif error == QUERY_CANCELED and stop.is_set():
            recorder.cancel()
            client.done += start >= measure_from
        else:
            in_block = error is None and link.pgconn.transaction_status != _IDLE
            if error == SCRIPT_FAILED or in_block:
                _end_aborted(link)
            if not settle(recorder, client, start, t, steps, step_ns, error, tries, lag,
                          message, in_block):  # fmt: skip
                active.remove(client)
        if not client.has_work and client in active:
            active.remove(client)
        if per_txn:
            conn.close()
        elif conn.closed and active:
            until = reconnect_until(plan, deadline)
            fresh = reconnect(conn, until)
            if fresh is None:
                gave_up(plan, recorder, clients_label(clients), t, until, deadline)
                break
            conn, link = fresh, _Link(fresh, plan)
            in_flight.use(worker, conn)
    return conn


def _connect_for(
    connect: Callable[[], psycopg.Connection[Any]], recorder: Recorder, client: Client
) -> psycopg.Connection[Any] | None:
    """-C: a connection for one transaction; None (the client is aborted,
    as pgbench aborts it) when the server refuses."""
    try:
        return connect()
    except psycopg.Error as exc:
        code = exc.sqlstate or LOST_CONNECTION
        message = f"could not connect: {first_line(str(exc), type(exc).__name__)}"
        now = time.perf_counter_ns()
        recorder.record(now, now, (), (), code, 1, None, message,
                        script=client.stream.script, client=client.id)  # fmt: skip
        recorder.incidents.append(f"client {client.id} aborted while establishing connection")
        return None


def _end_aborted(link: _Link) -> None:
    """An aborted client's connection back to idle (sequential mode's
    connection goes on with the other clients). Inside a pipeline it is
    closed instead, as pgbench's abort closes it: what the pipeline holds
    was never synced, and a sync would commit it."""
    conn = link.conn
    if link.pipe is not None:
        conn.close()  # first: psycopg's pipeline syncs when it is left
        manager, link.pipe = link.pipe[0], None
        with contextlib.suppress(Exception):  # "the connection is closed"
            manager.__exit__(None, None, None)
        return
    if not conn.closed and link.pgconn.transaction_status != _IDLE:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()


def _due(client: Client) -> int:
    return client.due


def _wait_until(due_ns: int, stop: threading.Event) -> bool:
    """Sleep until ``due_ns``; True when ``stop`` was set meanwhile.

    time.sleep, not ``stop.wait``: an Event wait builds a lock and a
    condition each time (~20 µs of GIL per transaction, the threads' scarce
    resource); sleeping in slices of at most 0.1 s still notices a stop.
    """
    while (wait_ns := due_ns - time.perf_counter_ns()) > 0:
        if stop.is_set():
            return True
        time.sleep(min(wait_ns / 1e9, 0.1))
    return stop.is_set()


def _may_retry(
    conn: psycopg.Connection[Any], stop: threading.Event, deadline: int | None, now: int
) -> bool:
    """pgbench's rule: no retry once the run is over or the connection is gone."""
    return not conn.closed and not stop.is_set() and (deadline is None or now < deadline)


def _recover(conn: psycopg.Connection[Any], exc: psycopg.Error) -> tuple[str, str]:
    """The error's SQLSTATE and message, with the connection back to idle
    when it survived."""
    lost = conn.closed or conn.broken
    code = exc.sqlstate or (LOST_CONNECTION if lost else type(exc).__name__)
    message = exc.diag.message_primary or first_line(str(exc), type(exc).__name__)
    if not lost and conn.info.transaction_status != _IDLE:
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            lost = True
    if lost:
        conn.close()  # the worker asks for a new one
    return code, message


def retry_connect(
    connect: Callable[[], psycopg.Connection[Any]],
    release: Callable[[psycopg.Connection[Any]], None],
    plan: Plan,
    stop: threading.Event,
    until: int,
) -> psycopg.Connection[Any] | None:
    """``connect()`` and prepare again, with backoff while the server is away,
    until ``stop`` or the ``until`` instant (None then); a connection that
    fails on the way is handed to ``release``."""
    delay = RECONNECT_FIRST_S
    while not stop.is_set() and time.perf_counter_ns() < until:
        try:
            conn = connect()
        except psycopg.Error:
            stop.wait(min(delay, max(0.0, (until - time.perf_counter_ns()) / 1e9)))
            delay = min(delay * 2, RECONNECT_MAX_S)
            continue
        try:
            prepare_all(conn, plan)
            return conn
        except psycopg.Error:
            release(conn)
    return None
