"""The psycopg (sync) worker shared by the sequential and threads modes.

Parameters are sent as text of unknown type, as pgbench does (the stream
makes every value text; psycopg dumps a str with no type, oid 0), so the
server infers each one's type from the statement and parses the text: a
value binds the same way in pgbench, in psycopg and in asyncpg.
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
from dbload.errors import WorkloadError
from dbload.measure.recorder import Recorder
from dbload.modes.base import (
    CLIENT_CHECK_MS,
    QUERY_CANCELED,
    RETRYABLE,
    Schedule,
    clients_label,
    first_line,
    gave_up,
    prepare_error,
    reconnect_until,
    script_failed,
)
from dbload.workload.cpu import burn
from dbload.workload.model import SLEEP, ScriptRuntimeError
from dbload.workload.stream import ParameterStream

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


def prepare_all(conn: psycopg.Connection[Any], plan: Plan) -> None:
    """Ask the server to prepare every statement, to fail before the clock starts.

    psycopg keeps its own prepared statements (prepare=True on execute); this
    check prepares under a private name and deallocates, on the libpq level,
    so a bad table or column is reported with its file and line.
    """
    pgconn = conn.pgconn
    if conn.info.server_version >= 140000:
        # see CLIENT_CHECK_MS; refused only by a server on a platform without it
        pgconn.exec_(b"SET client_connection_check_interval = %d" % CLIENT_CHECK_MS)
    for index, statement in enumerate(plan.workload.statements):
        name = f"dbload_check_{index}".encode()
        result = pgconn.prepare(name, statement.sql.encode())
        if pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("the connection was lost while preparing")
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_message or b"").decode(errors="replace")
            raise prepare_error(statement, _strip_severity(message))
        pgconn.exec_(b"DEALLOCATE " + name)


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


class _Client:
    """One client's stream and its share of the batch, on a worker's connection."""

    __slots__ = ("done", "due", "id", "quota", "schedule", "stream")

    def __init__(self, plan: Plan, client_id: int, recorder: Recorder) -> None:
        self.id = client_id
        self.stream = ParameterStream(
            plan.workload, seed=plan.seed, client_id=client_id, scale=plan.scale
        )
        self.quota = plan.quota(client_id)
        self.done = 0
        self.schedule = Schedule(plan, client_id, recorder.started_ns) if plan.rate else None
        # open loop: when its next transaction is due (the earliest goes first)
        self.due = 0 if self.schedule is None else self.schedule.next()

    @property
    def has_work(self) -> bool:
        return self.quota is None or self.done < self.quota


def run_worker(
    conn: psycopg.Connection[Any],
    plan: Plan,
    clients: Sequence[int],
    recorder: Recorder,
    deadline: int | None,
    stop: threading.Event,
    reconnect: Reconnect,
    in_flight: InFlight,
) -> psycopg.Connection[Any]:
    """Run ``clients``' shares of the batch on one connection: one client
    per thread in threads mode; in sequential mode all of them, their
    streams taken in turn (the earliest due, open loop), so that the one
    connection sends what N clients would.

    A lost connection counts as a failed transaction; ``reconnect`` gives a
    new one (or None once the run is stopping). A serialization failure or
    deadlock is run again with the same parameters, up to ``plan.max_tries``
    tries. A script that fails on the client side aborts its client only.
    Returns the connection in use.

    Twin of ``async_._worker``: a change to one belongs in the other.
    """
    active = _clients(plan, clients, recorder)
    execute = psycopg.RawCursor(conn).execute
    sqls = [s.sql for s in plan.workload.statements]
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
        try:
            txn = client.stream.next()
        except ScriptRuntimeError as exc:
            script_failed(recorder, f"client {client.id}", str(exc), perf())
            active.remove(client)
            continue
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
        tries = 0
        while True:
            tries += 1
            step_ns: list[int] = []
            error: str | None = None
            message: str | None = None
            t = perf() if tries > 1 or loops or lag is not None else start
            try:
                for index, args in txn.steps:
                    if index == SLEEP:
                        if cancelled.wait(args[0]):  # type: ignore[arg-type]
                            raise _Cancelled
                    else:
                        execute(sqls[index], args, prepare=True)
                    # one clock read per step: the end of one is the start of the next
                    now = perf()
                    step_ns.append(now - t)
                    t = now
            except psycopg.Error as exc:
                error, message = _recover(conn, exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(conn, stop, deadline, t):
                    continue
            except _Cancelled:
                error = QUERY_CANCELED
            break
        if error == QUERY_CANCELED and stop.is_set():
            recorder.cancel()
        else:
            record(start, t, txn.steps, step_ns, error, tries, lag, message)
        if start >= measure_from:
            client.done += 1
            if not client.has_work:
                active.remove(client)
        if conn.closed:
            until = reconnect_until(plan, deadline)
            fresh = reconnect(conn, until)
            if fresh is None:
                gave_up(plan, recorder, clients_label(clients), t, until, deadline)
                break
            conn = fresh
            execute = psycopg.RawCursor(conn).execute
            in_flight.use(worker, conn)
    return conn


def _clients(plan: Plan, clients: Sequence[int], recorder: Recorder) -> list[_Client]:
    """The clients with work to do; one whose script fails already (a \\set
    that folds to a division by zero with its :client_id) is aborted."""
    made = []
    for client_id in clients:
        try:
            client = _Client(plan, client_id, recorder)
        except WorkloadError as exc:
            script_failed(recorder, f"client {client_id}", str(exc), time.perf_counter_ns())
            continue
        if client.has_work:
            made.append(client)
    return made


def _due(client: _Client) -> int:
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
