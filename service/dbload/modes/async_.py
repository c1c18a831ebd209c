"""async: N worker coroutines on one event loop, connections from asyncpg's pool.

Each worker acquires one connection for the whole run and executes
statements it prepared itself (asyncpg's per-query pool checkout costs about
two thirds of the throughput, SPEC §3). uvloop is used when installed.
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

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from dbload.config import Plan
from dbload.errors import DatabaseError
from dbload.measure.recorder import Recorder
from dbload.modes._timer import PreciseTimer, precise_timer
from dbload.modes.base import (
    RETRYABLE,
    Executor,
    Schedule,
    cancel_after_grace,
    deadline_ns,
    gave_up,
    prepare_error,
    reconnect_until,
)
from dbload.workload.cpu import burn
from dbload.workload.model import SLEEP, Value
from dbload.workload.stream import ParameterStream

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

# A lost connection has no SQLSTATE of its own when the socket just closes.
LOST_CONNECTION = "08006"  # connection_failure
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 2.0

# asyncpg encodes parameters in binary by their server-inferred type, so a
# value must have a matching Python type; pgbench sends text and lets the
# server cast. \set yields int or float, which asyncpg's numeric codecs
# accept as they are; only text-typed parameters need a conversion.
_TEXT = {"text", "varchar", "bpchar", "name", "unknown", "char"}


Converter = Callable[[Value], Any] | None


def _converter(type_name: str) -> Converter:
    return str if type_name in _TEXT else None


def connect_kwargs(dsn: str) -> dict[str, Any]:
    """asyncpg takes only URIs; libpq's key=value form becomes keywords.

    For a unix-socket host the .pgpass password is looked up as libpq does,
    by the socket directory (asyncpg looks for "localhost"), so that the
    file psql and the sync modes accept works in this mode too.
    """
    params = conninfo_to_dict(dsn)
    if dsn.startswith(("postgresql://", "postgres://")):
        kwargs: dict[str, Any] = {"dsn": dsn}
    else:
        names = {"dbname": "database", "host": "host", "port": "port", "user": "user",
                 "password": "password", "passfile": "passfile", "sslmode": "ssl"}  # fmt: skip
        kwargs = {names[k]: v for k, v in params.items() if k in names}
    given = params.get("password") or os.environ.get("PGPASSWORD")
    if not given and (password := _socket_pgpass(params)) is not None:
        kwargs["password"] = password
    return kwargs


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
        converters = [_converter(t.name) for t in stmt.get_parameters()]
        convert = converters if any(c is not None for c in converters) else None
        try:
            bind_execute = stmt._connection._protocol.bind_execute
            state = stmt._state
        except AttributeError:  # pragma: no cover - another asyncpg
            fetch = stmt.fetch
            run: Run = lambda values: fetch(*values)  # noqa: E731
        else:
            # (state, args, portal, limit 0 = all rows, no status, no timeout)
            run = lambda values: bind_execute(state, values, "", 0, False, None)  # noqa: E731
        if convert is not None:
            raw = run
            run = lambda values: raw(_convert(convert, values))  # noqa: E731
        self.run = run


def _convert(convert: list[Converter], values: tuple[Value, ...]) -> tuple[Any, ...]:
    return tuple(v if c is None else c(v) for c, v in zip(convert, values, strict=True))


async def _prepare_all(conn: asyncpg.Connection, plan: Plan) -> list[_Prepared]:
    prepared = []
    for statement in plan.workload.statements:
        try:
            prepared.append(_Prepared(await conn.prepare(statement.sql)))
        except asyncpg.PostgresError as exc:
            raise prepare_error(statement, str(exc)) from None
    return prepared


class _Session:
    """One worker's connection and its prepared statements; replaced whole
    when the connection is lost."""

    def __init__(self, pool: asyncpg.Pool, conn: asyncpg.Connection, prepared: list[_Prepared]):
        self.pool = pool
        self.conn = conn
        self.prepared = prepared
        self.from_pool = True
        self.is_closed = _is_closed(conn)

    async def reconnect(self, plan: Plan, stop: threading.Event, until: int) -> bool:
        """A fresh connection, prepared again; retried with backoff (the
        server may be restarting) until it works, ``stop`` is set or the
        ``until`` instant passes.

        The replacement is a connection of its own, not the pool's: asyncpg's
        pool detaches a connection it sees die, and handing the dead proxy
        back races with that bookkeeping.
        """
        await self.close()
        delay = RECONNECT_FIRST_S
        while not stop.is_set() and time.perf_counter_ns() < until:
            try:
                conn = await asyncpg.connect(
                    timeout=10, server_settings=plan.server_settings(), **connect_kwargs(plan.dsn)
                )
                self.prepared = await _prepare_all(conn, plan)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self.conn, self.from_pool = conn, False
            self.is_closed = conn.is_closed
            return True
        return False

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # it may be dead or detached already
            if self.from_pool:
                await self.pool.release(self.conn, timeout=5)
            else:
                await self.conn.close(timeout=5)


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
    stream = ParameterStream(plan.workload, seed=plan.seed, client_id=client_id, scale=plan.scale)
    quota = plan.quota(client_id)
    perf = time.perf_counter_ns
    record = recorder.record
    measure_from = recorder.measure_from_ns
    max_tries, loops = plan.max_tries, plan.cpu_work_loops
    prepared = session.prepared
    schedule = Schedule(plan, client_id, recorder.started_ns) if plan.rate else None
    limit = plan.latency_limit_ns
    lag: int | None = None
    done = 0
    while not stop.is_set() and (quota is None or done < quota):
        txn = stream.next()
        # open loop: latency counts from the scheduled start, so a worker
        # that falls behind shows up in latency, not only in lag
        start = perf() if schedule is None else schedule.next()
        if deadline is not None and start >= deadline:
            break
        if schedule is not None:
            if await _wait_until(start, stop, timer):
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
            t = perf() if tries > 1 or loops or lag is not None else start
            try:
                for index, args in txn.steps:
                    if index == SLEEP:
                        await asyncio.sleep(float(args[0]))
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
                error = await _recover(session, exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(session, stop, deadline, t):
                    continue
            except asyncio.CancelledError:
                recorder.cancel()  # the grace period after Ctrl-C ran out
                raise
            break
        record(start, t, txn.steps, step_ns, error, tries, lag)
        if start >= measure_from:
            done += 1
        if session.is_closed():
            until = reconnect_until(plan, deadline)
            if not await session.reconnect(plan, stop, until):
                gave_up(plan, recorder, client_id, until, deadline)
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
        if timer is not None and wait_ns <= 100_000_000:
            await timer.wait_until(due_ns)
            break
        await asyncio.sleep(min(wait_ns / 1e9, 0.1))
    return stop.is_set()


def _may_retry(session: _Session, stop: threading.Event, deadline: int | None, now: int) -> bool:
    """pgbench's rule: no retry once the run is over or the connection is gone."""
    return not _lost(session.conn) and not stop.is_set() and (deadline is None or now < deadline)


def _lost(conn: asyncpg.Connection) -> bool:
    """Closed, or already detached by the pool (it does that to a dead one)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def _is_closed(conn: asyncpg.Connection) -> Callable[[], bool]:
    """The connection's own ``is_closed``, checked after every transaction.

    A pooled connection is a proxy whose every method call goes through a
    wrapper (0.34 µs a call, against 0.05 µs); the connection under it says the same thing, and
    stays closed once the pool detaches it (the pool detaches only a closed
    one), so the check needs no proxy.
    """
    inner = getattr(conn, "_con", None)  # asyncpg's PoolConnectionProxy
    is_closed: Callable[[], bool] = (
        inner if isinstance(inner, asyncpg.Connection) else conn
    ).is_closed
    return is_closed


async def _recover(session: _Session, exc: Exception) -> str:
    """The error's SQLSTATE, with the connection back to idle when it survived."""
    conn = session.conn
    lost = _lost(conn)
    code = getattr(exc, "sqlstate", None) or (LOST_CONNECTION if lost else type(exc).__name__)
    if not lost and conn.is_in_transaction():
        try:
            await conn.execute("ROLLBACK")
        except Exception:  # mid-protocol after a fault (InternalClientError): give up on it
            with contextlib.suppress(Exception):
                conn.terminate()  # the worker sees it closed and reconnects
    return str(code)


async def run_async(
    plan: Plan, recorder: Recorder, stop: threading.Event, clients: range | None = None
) -> None:
    """The async executor as a coroutine, for callers that own an event loop.

    ``clients`` picks which of the plan's workers this loop runs (processes
    mode gives each process its share); by default, all of them.
    """
    clients = range(plan.concurrency) if clients is None else clients
    n = len(clients)
    try:
        pool = await asyncpg.create_pool(
            min_size=n,
            max_size=n,
            timeout=30,
            server_settings=plan.server_settings(),
            **connect_kwargs(plan.dsn),
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"could not open {n} connections: {type(exc).__name__}") from None
    try:
        sessions = [_Session(pool, await pool.acquire(), []) for _ in range(n)]
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
            for session in sessions:
                await session.close()
    finally:
        # terminate, not close: close() would wait on connections the pool
        # detached when they died
        pool.terminate()


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
