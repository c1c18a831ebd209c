"""async: N worker coroutines on one event loop, each with its own asyncpg connection.

Each worker holds one connection for the whole run and executes statements
it prepared itself (asyncpg's per-query pool checkout costs about two thirds
of the throughput, SPEC §3). uvloop is used when installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from dbload.config import Plan
from dbload.errors import DatabaseError, UsageError, WorkloadError
from dbload.measure.recorder import Recorder
from dbload.modes._timer import PreciseTimer, precise_timer
from dbload.modes.base import (
    CLIENT_CHECK_MS,
    RETRYABLE,
    Executor,
    Schedule,
    cancel_after_grace,
    deadline_ns,
    first_line,
    gave_up,
    prepare_error,
    reconnect_until,
    script_failed,
)
from dbload.workload.cpu import burn
from dbload.workload.model import SLEEP, ScriptRuntimeError, Statement, Value
from dbload.workload.stream import ParameterStream

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

# A lost connection has no SQLSTATE of its own when the socket just closes.
LOST_CONNECTION = "08006"  # connection_failure
RECONNECT_FIRST_S = 0.05
# open loop: a start due within this long waits on the precise timer; a
# later one sleeps on the loop's timers first, checking for Ctrl-C
NEAR_NS = 100_000_000
RECONNECT_MAX_S = 2.0

# Parameter types whose asyncpg codec takes the stream's text as it is.
_TEXT = {"text", "varchar", "bpchar", "name", "unknown", "char"}

# libpq's connection parameters, as asyncpg takes them (see connect_kwargs).
# Read from a URI's query by asyncpg itself, as libpq reads them:
_PASSED = frozenset(
    {"host", "port", "dbname", "user", "password", "passfile", "service", "sslmode",
     "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
     "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
     "krbsrvname", "gsslib"}
)  # fmt: skip
# Sent in the startup packet, where the server reads them as it does from libpq:
_STARTUP = frozenset({"application_name", "options", "client_encoding"})
# Values that ask for what asyncpg does anyway (it has no GSS encryption,
# channel binding or keepalives, and tries hosts in order):
_SAME = {
    "gssencmode": {"disable", "prefer"},
    "channel_binding": {"disable", "prefer"},
    "keepalives": {"0"},
    "load_balance_hosts": {"disable"},
}
# Translated below; sslcompression is ignored by libpq too.
_TRANSLATED = frozenset({"connect_timeout", "fallback_application_name", "sslcompression"})
CONNECT_TIMEOUT_S = 30.0


def connect_kwargs(plan: Plan, timeout_s: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """``asyncpg.connect`` keywords for the plan's DSN, a URI
    or libpq's key=value form, read as libpq reads it.

    asyncpg sends a parameter it does not know to the server as a setting
    (``connect_timeout`` then fails the connection: "unrecognized
    configuration parameter"), so each one is passed on, translated
    (``connect_timeout`` is asyncpg's ``timeout``; ``application_name``,
    ``options`` go in the startup packet) or refused here, before the run,
    with a UsageError that names it. For a unix-socket host the .pgpass
    password is looked up as libpq does, by the socket directory (asyncpg
    looks for "localhost"), so that the file psql and the sync modes accept
    works in this mode too.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(plan.dsn).items()}
    refused = [
        f"{k}={v}" if k in _SAME else k
        for k, v in params.items()
        if k not in _PASSED | _STARTUP | _TRANSLATED and v not in _SAME.get(k, ())
    ]
    if refused:
        raise UsageError(
            f"the async and processes modes (asyncpg) cannot honour the connection"
            f" parameter{'s' if len(refused) > 1 else ''} {', '.join(refused)} of the DSN;"
            " drop it there or run --mode threads"
        )
    query = {k: v for k, v in params.items() if k in _PASSED}
    if "host" in query:  # a bare IPv6 address would read as host:port
        query["host"] = ",".join(_bracketed(h) for h in query["host"].split(","))
    given = params.get("password") or os.environ.get("PGPASSWORD")
    if not given and (password := _socket_pgpass(params)) is not None:
        query["password"] = password
    settings = {k: v for k, v in params.items() if k in _STARTUP}
    if "application_name" not in settings and "fallback_application_name" in params:
        settings["application_name"] = params["fallback_application_name"]
    timeout = float(params.get("connect_timeout") or 0)
    return {
        "dsn": "postgresql://?" + urlencode(query),
        "timeout": max(timeout, 2.0) if timeout > 0 else timeout_s,  # libpq's minimum: 2 s
        "server_settings": {**settings, **plan.server_settings()},
    }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith(("/", "[")) else host


def _socket_pgpass(params: dict[str, Any]) -> str | None:
    """libpq's .pgpass password for a unix-socket host; None for a TCP host
    (asyncpg matches those as libpq does) or when no line matches."""
    host = str(params.get("host") or os.environ.get("PGHOST") or "")
    if not host.startswith("/") or "," in host:
        return None
    user = str(params.get("user") or os.environ.get("PGUSER") or getpass.getuser())
    wanted = (
        host,
        str(params.get("port") or os.environ.get("PGPORT") or "5432"),
        str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
        user,
    )
    try:
        default = os.environ.get("PGPASSFILE") or Path.home() / ".pgpass"
        path = Path(params.get("passfile") or default)
        if not path.is_file() or path.stat().st_mode & 0o077:
            return None  # libpq ignores a password file others may read
        lines = path.read_text().splitlines()
    except (OSError, RuntimeError, UnicodeDecodeError):  # RuntimeError: no home directory
        return None
    for line in lines:
        fields = _pgpass_fields(line)
        if line.startswith("#") or len(fields) < 5:
            continue
        if all(field in ("*", value) for field, value in zip(fields[:4], wanted, strict=True)):
            return fields[4]  # libpq ends the password at an unescaped ':'
    return None


def _pgpass_fields(line: str) -> list[str]:
    """host:port:database:user:password, with libpq's \\: and \\\\ escapes undone."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*fields, "".join(current)]


Run = Callable[[tuple[Value, ...]], Coroutine[Any, Any, Any]]


class _Prepared:
    """One statement prepared on one connection: ``run(values)`` executes it.

    ``run`` goes straight to the protocol's ``bind_execute``, the coroutine
    ``PreparedStatement.fetch`` ends in: the same Bind/Execute/Sync messages
    and the same decoded rows, without the three coroutine frames, the
    lambda and the connection checks stacked above it. Measured here (a
    4-client uvloop loop, select): 5.1 -> 3.5 µs user CPU per query; in
    processes mode -c 8, with the check below, 14 -> 12 µs client CPU per
    transaction and +8 % tps next to pgbench -j 2 (a machine whose cores the
    server shares turns client CPU into server throughput). A closed
    connection still fails (the protocol checks its state: an
    InterfaceError, as from ``fetch``); only ``fetch``'s schema-cache reload
    on OutdatedSchemaCacheError is skipped, and that error still fails the
    transaction. Private attributes: if a future asyncpg lacks them,
    ``fetch`` is used.
    """

    __slots__ = ("run", "stmt")

    def __init__(self, stmt: asyncpg.prepared_stmt.PreparedStatement) -> None:
        # held: a PreparedStatement that is garbage-collected closes its
        # server-side statement, which the direct path still uses
        self.stmt = stmt
        try:
            bind_execute = stmt._connection._protocol.bind_execute
            state = stmt._state
        except AttributeError:  # pragma: no cover - another asyncpg
            fetch = stmt.fetch
            run: Run = lambda values: fetch(*values)  # noqa: E731
        else:
            # (state, args, portal, limit 0 = all rows, no status, no timeout)
            run = lambda values: bind_execute(state, values, "", 0, False, None)  # noqa: E731
        self.run = run


async def _prepare_all(conn: asyncpg.Connection, plan: Plan) -> list[_Prepared]:
    """Prepare every statement, with its parameters sent as text.

    The stream's values are text, as pgbench sends them, for the server to
    parse by the parameter's type; asyncpg would encode each in binary by
    that type, and so fail on a date given as text (22000) or store 1.5 in
    an integer column as 1. Its documented way to exchange a type as text
    is a builtin text codec for that type (``set_builtin_type_codec``: a C
    codec, no Python call per value), which asyncpg applies to statements
    prepared after it, so the statements are prepared a second time.
    Arrays and other non-scalar types keep their binary codecs (asyncpg
    allows no text alias for them).
    """
    if conn.get_server_version() >= (14, 0):
        with contextlib.suppress(asyncpg.PostgresError):  # see CLIENT_CHECK_MS
            await conn.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
    statements = [await _prepare(conn, statement) for statement in plan.workload.statements]
    typed = {
        (t.schema, t.name)
        for stmt in statements
        for t in stmt.get_parameters()
        if t.kind == "scalar" and t.name not in _TEXT
    }
    if typed:
        for schema, name in sorted(typed):
            with contextlib.suppress(asyncpg.InterfaceError, ValueError):
                await conn.set_builtin_type_codec(
                    name, schema=schema, codec_name="text", format="text"
                )
        statements = [await _prepare(conn, s) for s in plan.workload.statements]
    return [_Prepared(stmt) for stmt in statements]


async def _prepare(
    conn: asyncpg.Connection, statement: Statement
) -> asyncpg.prepared_stmt.PreparedStatement:
    try:
        return await conn.prepare(statement.sql)
    except asyncpg.PostgresError as exc:
        raise prepare_error(statement, str(exc)) from None


class _Session:
    """One worker's connection and its prepared statements; replaced whole
    when the connection is lost."""

    def __init__(self, conn: asyncpg.Connection, prepared: list[_Prepared]):
        self.conn = conn
        self.prepared = prepared
        # checked after every transaction: the bound method, not a wrapper
        self.is_closed: Callable[[], bool] = conn.is_closed

    async def reconnect(self, plan: Plan, stop: threading.Event, until: int) -> bool:
        """A fresh connection, prepared again; retried with backoff (the
        server may be restarting) until it works, ``stop`` is set or the
        ``until`` instant passes. The lost one is closed first: a worker
        holds one connection, however often it reconnects."""
        await self.close()
        delay = RECONNECT_FIRST_S
        while not stop.is_set() and time.perf_counter_ns() < until:
            conn = None
            try:
                conn = await asyncpg.connect(**connect_kwargs(plan, timeout_s=10))
                self.prepared = await _prepare_all(conn, plan)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if conn is not None:
                    conn.terminate()  # connected, but lost while preparing
                await asyncio.sleep(min(delay, max(0.0, (until - time.perf_counter_ns()) / 1e9)))
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self.conn, self.is_closed = conn, conn.is_closed
            return True
        return False

    async def close(self) -> None:
        try:
            await self.conn.close(timeout=5)
        except Exception:  # dead, or stuck mid-protocol: drop the socket
            self.conn.terminate()


async def _worker(
    session: _Session,
    plan: Plan,
    client_id: int,
    recorder: Recorder,
    deadline: int | None,
    stop: threading.Event,
    timer: PreciseTimer | None = None,
) -> None:
    """Twin of ``_psycopg.run_worker``: a change to one belongs in the other
    (``timer``: open-loop wake-ups, see :func:`_wait_until`)."""
    perf = time.perf_counter_ns
    try:
        stream = ParameterStream(
            plan.workload, seed=plan.seed, client_id=client_id, scale=plan.scale
        )
    except WorkloadError as exc:  # see _psycopg._clients
        script_failed(recorder, f"client {client_id}", str(exc), perf())
        return
    quota = plan.quota(client_id)
    record = recorder.record
    measure_from = recorder.measure_from_ns
    max_tries, loops = plan.max_tries, plan.cpu_work_loops
    prepared = session.prepared
    schedule = Schedule(plan, client_id, recorder.started_ns) if plan.rate else None
    limit = plan.latency_limit_ns
    lag: int | None = None
    done = 0
    while not stop.is_set() and (quota is None or done < quota):
        try:
            txn = stream.next()
        except ScriptRuntimeError as exc:
            script_failed(recorder, f"client {client_id}", str(exc), perf())
            break
        # open loop: latency counts from the scheduled start, so a worker
        # that falls behind shows up in latency, not only in lag
        start = perf() if schedule is None else schedule.next()
        if deadline is not None and start >= deadline:
            break
        if schedule is not None:
            wait = start - perf()
            if timer is not None and 0 < wait <= NEAR_NS:
                # the common case, without _wait_until's coroutine per start
                await timer.wait_until(start)
                if stop.is_set():
                    break
            elif wait > 0 and await _wait_until(start, stop, timer):
                break
            lag = perf() - start
            if limit and lag > limit:
                recorder.skip(start, lag)
                done += start >= measure_from
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
                        await asyncio.sleep(args[0])  # type: ignore[arg-type]
                    else:
                        await prepared[index].run(args)
                    # one clock read per step: the end of one is the start of the next
                    now = perf()
                    step_ns.append(now - t)
                    t = now
            except (
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                OSError,
            ) as exc:
                error, message = await _recover(session, exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(session, stop, deadline, t):
                    continue
            except asyncio.CancelledError:
                recorder.cancel()  # the grace period after Ctrl-C ran out
                raise
            break
        record(start, t, txn.steps, step_ns, error, tries, lag, message)
        if start >= measure_from:
            done += 1
        if session.is_closed():
            until = reconnect_until(plan, deadline)
            if not await session.reconnect(plan, stop, until):
                gave_up(plan, recorder, f"client {client_id}", t, until, deadline)
                break
            prepared = session.prepared


async def _wait_until(due_ns: int, stop: threading.Event, timer: PreciseTimer | None) -> bool:
    """Sleep until ``due_ns``; True when ``stop`` was set meanwhile (checked
    every 0.1 s: ``stop`` is a thread event, set from a signal handler).

    The last 0.1 s is left to ``timer`` (a timerfd: see modes/_timer.py) when
    there is one: the loop's own timers fire up to ~1 ms late, which would
    show as schedule lag and so as latency. Spinning through the last
    millisecond also cut the lag, but cost a whole core at any rate
    (bench/open_loop.py), which on a shared machine the server needs more.
    """
    while (wait_ns := due_ns - time.perf_counter_ns()) > 0:
        if stop.is_set():
            return True
        if timer is not None and wait_ns <= NEAR_NS:
            await timer.wait_until(due_ns)
            break
        await asyncio.sleep(min(wait_ns / 1e9, 0.1))
    return stop.is_set()


def _may_retry(session: _Session, stop: threading.Event, deadline: int | None, now: int) -> bool:
    """pgbench's rule: no retry once the run is over or the connection is gone."""
    return not session.is_closed() and not stop.is_set() and (deadline is None or now < deadline)


async def _recover(session: _Session, exc: Exception) -> tuple[str, str]:
    """The error's SQLSTATE and message, with the connection back to idle
    when it survived."""
    conn = session.conn
    lost = session.is_closed()
    code = getattr(exc, "sqlstate", None) or (LOST_CONNECTION if lost else type(exc).__name__)
    # a server error's own message (str() may add DETAIL); asyncpg's or the OS's otherwise
    message = getattr(exc, "message", None) or first_line(str(exc), type(exc).__name__)
    if not lost and conn.is_in_transaction():
        try:
            await conn.execute("ROLLBACK")
        except Exception:  # mid-protocol after a fault (InternalClientError): give up on it
            with contextlib.suppress(Exception):
                conn.terminate()  # the worker sees it closed and reconnects
    return str(code), str(message)


async def run_async(
    plan: Plan, recorder: Recorder, stop: threading.Event, clients: range | None = None
) -> None:
    """The async executor as a coroutine, for callers that own an event loop.

    ``clients`` picks which of the plan's workers this loop runs (processes
    mode gives each process its share); by default, all of them.
    """
    clients = range(plan.concurrency) if clients is None else clients
    n = len(clients)
    sessions = [_Session(conn, []) for conn in await _connect_all(n, connect_kwargs(plan))]
    try:
        for session in sessions:
            session.prepared = await _prepare_all(session.conn, plan)
        recorder.begin(plan.warmup_s)
        deadline = deadline_ns(plan, recorder)
        finished = threading.Event()
        timer = precise_timer(asyncio.get_running_loop()) if plan.rate else None
        try:
            tasks = [
                asyncio.create_task(
                    _worker(session, plan, i, recorder, deadline, stop, timer),
                    name=f"worker-{i}",
                )
                for i, session in zip(clients, sessions, strict=True)
            ]
            cancel_after_grace(stop, finished, _canceller(tasks))
            await _gather_or_fail(tasks, stop)
        finally:
            finished.set()
            recorder.finish()
            if timer is not None:
                timer.close()
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


async def _connect_all(n: int, connect: dict[str, Any]) -> list[asyncpg.Connection]:
    """N connections, opened together. Not asyncpg's pool: it replaces a
    connection that dies on its own, beside the worker's reconnect (40
    backends for -c 20 after a kill), and each worker holds one anyway."""
    opened = await asyncio.gather(
        *(asyncpg.connect(**connect) for _ in range(n)), return_exceptions=True
    )
    conns = [c for c in opened if isinstance(c, asyncpg.Connection)]
    failed = [e for e in opened if isinstance(e, BaseException)]
    if failed:
        for conn in conns:
            conn.terminate()
        if not isinstance(failed[0], (TimeoutError, OSError, asyncpg.PostgresError)):
            raise failed[0]
        why = type(failed[0]).__name__
        raise DatabaseError(f"could not open {n} connections ({len(failed)} failed: {why})")
    return conns


def _canceller(tasks: list[asyncio.Task[None]]) -> Callable[[], None]:
    """Cancel the workers from the grace watcher's thread; asyncpg then
    cancels their statements on the server."""
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        for task in tasks:
            loop.call_soon_threadsafe(task.cancel)

    return cancel


async def _gather_or_fail(tasks: list[asyncio.Task[None]], stop: threading.Event) -> None:
    """Wait for every worker; the first failure stops the others and is raised."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = [t for t in done if not t.cancelled() and t.exception() is not None]
    if failed:
        stop.set()
        await asyncio.gather(*pending, return_exceptions=True)
        raise failed[0].exception()  # type: ignore[misc]


class AsyncExecutor(Executor):
    name = "async"
    driver = f"asyncpg {asyncpg.__version__}" + (" + uvloop" if uvloop is not None else "")

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        coro = run_async(plan, recorder, stop)
        if uvloop is not None:
            uvloop.run(coro)
        else:
            asyncio.run(coro)
