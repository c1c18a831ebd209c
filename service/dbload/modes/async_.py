"""async: N worker coroutines on one event loop, each with its own asyncpg connection.

Each worker holds one connection for the whole run and executes statements
it prepared itself (asyncpg's per-query pool checkout costs about two thirds
of the throughput, SPEC §3). uvloop is used when installed.

Both workers drive the same interpreter (dbload.workload.stream) and only do
its I/O. The query modes, with asyncpg: ``prepared`` (the default) prepares
each statement once per connection; ``extended`` runs it as asyncpg's
unnamed statement, parsed again at every execution in the same round trip
(see :func:`_unnamed`); ``simple`` interpolates the values and sends one
simple-protocol Query. asyncpg has no pipeline mode: a script with
``\\startpipeline`` is refused before the run (sequential and threads run it
with psycopg's).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import threading
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlencode

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from dbload.config import Plan
from dbload.errors import DatabaseError, UsageError, WorkloadError
from dbload.measure.recorder import Recorder
from dbload.modes._timer import PreciseTimer, precise_timer
from dbload.modes.base import (
    CLIENT_CHECK_MS,
    NOT_SQL,
    RETRYABLE,
    SCRIPT_FAILED,
    Client,
    Executor,
    cancel_after_grace,
    check_plan,
    deadline_ns,
    first_line,
    gave_up,
    interpolate,
    lazy_statements,
    make_clients,
    reconnect_until,
    settle,
    shell_command,
    skip_check,
)
from dbload.workload.commands import PipelineCommand, SqlCommand
from dbload.workload.cpu import burn
from dbload.workload.model import ScriptRuntimeError, Statement
from dbload.workload.stream import QUERY, SLEEP, Request

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


Run = Callable[[tuple[str | None, ...]], Coroutine[Any, Any, Any]]
_Stmt: TypeAlias = asyncpg.prepared_stmt.PreparedStatement


def _runner(stmt: _Stmt) -> Run:
    """``run(values)`` for a statement prepared on the connection.

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
    try:
        bind_execute = stmt._connection._protocol.bind_execute
        state = stmt._state
    except AttributeError:  # pragma: no cover - another asyncpg
        fetch = stmt.fetch
        return lambda values: fetch(*values)
    # (state, args, portal, limit 0 = all rows, no status, no timeout)
    return lambda values: bind_execute(state, values, "", 0, False, None)


async def _unnamed(conn: asyncpg.Connection, sql: str) -> _Stmt:
    """-M extended: the statement as asyncpg's *unnamed* statement, marked
    unprepared so that every execution sends Parse, Bind, Execute and Sync
    in one round trip, as pgbench's PQsendQueryParams does: the server
    parses and plans it each time and keeps nothing. (asyncpg's own way,
    ``statement_cache_size=0``, does the same after one more Parse/Describe
    round trip per query.) Private API, like :func:`_runner`."""
    state = await conn._get_statement(sql, None, named=False, use_cache=False)
    state.mark_unprepared()
    return _Stmt(conn, sql, state)


class _Session:
    """One worker's connection, its statements and how it does the
    interpreter's I/O; replaced whole when the connection is lost (and per
    transaction with -C).

    ``runs[i]`` executes statement i (None: not prepared yet, see
    ``lazy_statements``, or prepared per connection with -C). In -M simple
    a statement is not prepared at all: its values are interpolated and the
    text goes as one simple-protocol Query (``Connection.execute`` with no
    arguments); a ``\\gset`` query there goes as an unnamed statement, for
    asyncpg's simple-protocol call returns no rows.
    """

    def __init__(self, conn: asyncpg.Connection, plan: Plan) -> None:
        self.conn = conn
        self.plan = plan
        self.mode = plan.query_mode
        statements = plan.workload.statements
        self.statements = statements
        self.stmts: list[_Stmt | None] = [None] * len(statements)
        self.runs: list[Run | None] = [None] * len(statements)
        self.text_types: set[tuple[str, str]] = set()
        self.fetching = _fetching(plan)
        # checked after every transaction: the bound methods, not wrappers
        self.is_closed: Callable[[], bool] = conn.is_closed
        try:
            self.in_transaction: Callable[[], bool] = conn._protocol.is_in_transaction
        except AttributeError:  # pragma: no cover - another asyncpg
            self.in_transaction = conn.is_in_transaction
        if self.mode == "simple":
            execute = conn.execute
            for i, statement in enumerate(statements):
                self.runs[i] = partial(_simple_run, execute, statement)

    async def prepare_all(self, lazy: set[int] | None = None) -> set[int]:
        """Prepare every statement, with its parameters sent as text; returns
        the statements left to prepare when first run (``lazy``: already
        known; None: found here by the up-front check).

        The stream's values are text, as pgbench sends them, for the server to
        parse by the parameter's type; asyncpg would encode each in binary by
        that type, and so fail on a date given as text (22000) or store 1.5 in
        an integer column as 1. Its documented way to exchange a type as text
        is a builtin text codec for that type (``set_builtin_type_codec``: a C
        codec, no Python call per value), which asyncpg applies to statements
        prepared after it, so the statements are prepared a second time.
        Arrays and other non-scalar types keep their binary codecs (asyncpg
        allows no text alias for them). A \\gset query's result columns are
        read as text the same way, to store what pgbench stores.
        """
        conn = self.conn
        if conn.get_server_version() >= (14, 0):
            with contextlib.suppress(asyncpg.PostgresError):  # see CLIENT_CHECK_MS
                await conn.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
        refused: dict[int, str] = {}
        for i, statement in enumerate(self.statements):
            if (lazy is not None and i in lazy) or skip_check(self.plan, statement):
                continue
            try:
                self.stmts[i] = await self._statement(statement.sql)
            except asyncpg.PostgresError as exc:
                refused[i] = str(exc)
        found = lazy_statements(self.plan, refused) if lazy is None else lazy
        prepared = [i for i, stmt in enumerate(self.stmts) if stmt is not None]
        if await self._text_codecs(prepared):
            for i in prepared:
                self.stmts[i] = await self._statement(self.statements[i].sql)
        if self.mode != "simple":
            for i in prepared:
                self.runs[i] = _runner(self.stmts[i])
        return found

    async def _statement(self, sql: str) -> _Stmt:
        if self.mode == "prepared":
            return await self.conn.prepare(sql)
        # extended, and simple mode's up-front check: nothing left on the server
        return await _unnamed(self.conn, sql)

    async def _text_codecs(self, indexes: list[int]) -> bool:
        """Text codecs for the parameter (and \\gset result) types of these
        statements that lack one; True when any was added."""
        types: list[Any] = []
        for i in indexes:
            stmt = self.stmts[i]
            assert stmt is not None
            types += stmt.get_parameters()
            if i in self.fetching:
                types += [a.type for a in stmt.get_attributes()]
        return await self._register(types)

    async def _register(self, types: list[Any]) -> bool:
        wanted = {(t.schema, t.name) for t in types if t.kind == "scalar" and t.name not in _TEXT}
        new = wanted - self.text_types
        for schema, name in sorted(new):
            with contextlib.suppress(asyncpg.InterfaceError, ValueError):
                await self.conn.set_builtin_type_codec(
                    name, schema=schema, codec_name="text", format="text"
                )
        self.text_types |= new
        return bool(new)

    async def query(self, request: Request) -> Any:
        """A QUERY request off the fast path: a statement to prepare first,
        or one whose rows are read (\\gset/\\aset)."""
        index, values, fetch = request[1], request[2], request[3]
        if self.mode == "simple":
            if not fetch:
                return await self.runs[index](values)  # type: ignore[misc]
            sql = interpolate(self.statements[index], values)
            stmt = await self._prepared_once(sql)
            return _text_rows(stmt, await _runner(stmt)(()))
        run = self.runs[index]
        if run is None:
            # prepared when first run (its error fails the transaction, as
            # in pgbench); again once a new parameter type has a text codec
            self.stmts[index] = await self._statement(self.statements[index].sql)
            if await self._text_codecs([index]):
                self.stmts[index] = await self._statement(self.statements[index].sql)
            run = self.runs[index] = _runner(self.stmts[index])
        records = await run(values)
        return _text_rows(self.stmts[index], records) if fetch else None

    async def _prepared_once(self, sql: str) -> _Stmt:
        stmt = await _unnamed(self.conn, sql)
        if await self._register([a.type for a in stmt.get_attributes()]):
            stmt = await _unnamed(self.conn, sql)
        return stmt

    async def reconnect(self, stop: threading.Event, until: int, lazy: set[int]) -> bool:
        """A fresh connection, prepared again; retried with backoff (the
        server may be restarting) until it works, ``stop`` is set or the
        ``until`` instant passes. The lost one is closed first: a worker
        holds one connection, however often it reconnects."""
        await self.close()
        plan = self.plan
        delay = RECONNECT_FIRST_S
        while not stop.is_set() and time.perf_counter_ns() < until:
            conn = None
            try:
                conn = await asyncpg.connect(**connect_kwargs(plan, timeout_s=10))
                fresh = _Session(conn, plan)
                await fresh.prepare_all(lazy)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if conn is not None:
                    conn.terminate()  # connected, but lost while preparing
                await asyncio.sleep(min(delay, max(0.0, (until - time.perf_counter_ns()) / 1e9)))
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self.__dict__.update(fresh.__dict__)
            return True
        return False

    async def close(self) -> None:
        try:
            await self.conn.close(timeout=5)
        except Exception:  # dead, or stuck mid-protocol: drop the socket
            self.conn.terminate()

    async def end_aborted(self) -> None:
        """An aborted client's transaction block rolled back, so that closing
        the connection does not meet an active transaction."""
        conn = self.conn
        if not conn.is_closed() and conn.is_in_transaction():
            try:
                await conn.execute("ROLLBACK")
            except Exception:
                conn.terminate()


def _simple_run(
    execute: Callable[[str], Coroutine[Any, Any, Any]],
    statement: Statement,
    values: tuple[str | None, ...],
) -> Coroutine[Any, Any, Any]:
    # no arguments: asyncpg sends one simple-protocol Query (several statements for \;)
    return execute(interpolate(statement, values))


def _fetching(plan: Plan) -> set[int]:
    """The statements whose rows a script reads (\\gset, \\aset)."""
    return {
        c.statement
        for s in plan.workload.scripts
        for c in s.commands
        if isinstance(c, SqlCommand) and c.gset is not None
    }


def _text_rows(stmt: _Stmt, records: list[Any]) -> tuple[tuple[str, ...], list[Any]]:
    """Rows as pgbench reads them: text, None for NULL (a type asyncpg
    cannot read as text, an array, is shown by Python)."""
    columns = tuple(a.name for a in stmt.get_attributes())
    rows = [
        tuple(v if v is None or isinstance(v, str) else str(v) for v in record)
        for record in records
    ]
    return columns, rows


def refuse_unsupported(plan: Plan) -> None:
    """What asyncpg cannot run, refused before the run with file and line:
    a pipeline (asyncpg has no pipeline mode) and, in -M simple, a \\gset
    on a \\; compound (asyncpg returns no rows from the simple protocol)."""
    for script in plan.workload.scripts:
        for command in script.commands:
            if isinstance(command, PipelineCommand) and command.kind == "start":
                raise WorkloadError(
                    "\\startpipeline: the async and processes modes (asyncpg) have no pipeline"
                    " mode; run --mode sequential or threads",
                    source=script.source,
                    line=command.line,
                )
            if (
                plan.query_mode == "simple"
                and isinstance(command, SqlCommand)
                and command.gset is not None
                and plan.workload.statements[command.statement].compound
            ):
                raise WorkloadError(
                    "\\gset/\\aset on a \\; compound: asyncpg reads no rows of a"
                    " simple-protocol query; run --mode sequential or threads",
                    source=script.source,
                    line=command.line,
                )


async def _shell(argv: tuple[str, ...], capture: bool) -> tuple[int, str]:
    """\\shell/\\setshell without blocking the loop: (exit status, stdout)."""
    try:
        process = await asyncio.create_subprocess_shell(
            shell_command(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture else None,
        )
    except OSError:
        return 127, ""
    try:
        out, _ = await process.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace") if out else ""


_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


async def _worker(
    session: _Session,
    plan: Plan,
    client_id: int,
    recorder: Recorder,
    deadline: int | None,
    stop: threading.Event,
    timer: PreciseTimer | None = None,
    lazy: set[int] | None = None,
) -> None:
    """Twin of ``_psycopg.run_worker``: a change to one belongs in the other
    (``timer``: open-loop wake-ups, see :func:`_wait_until`; ``lazy``: the
    statements prepared when first run)."""
    perf = time.perf_counter_ns
    made = make_clients(plan, (client_id,), recorder)
    if not made:
        return
    client = made[0]
    stream = client.stream
    lazy = lazy or set()
    per_txn = plan.connect_per_transaction
    connect = connect_kwargs(plan) if per_txn else {}
    if per_txn:
        await session.close()  # each transaction opens its own
    measure_from = recorder.measure_from_ns
    record = recorder.record
    max_tries, loops = plan.max_tries, plan.cpu_work_loops
    schedule = client.schedule
    limit = plan.latency_limit_ns
    lag: int | None = None
    quota = client.quota  # client.has_work, without a property call per transaction
    while not stop.is_set() and (quota is None or client.done < quota):
        txn = stream.transaction()
        # open loop: latency counts from the scheduled start, so a worker
        # that falls behind shows up in latency, not only in lag
        if schedule is None:
            start = perf()
        else:  # the client drew its first due time when it was made
            start, client.due = client.due, schedule.next()
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
                client.done += start >= measure_from
                continue
        if loops:
            burn(loops)
        if per_txn and not await _connect_for(session, recorder, client, connect):
            break
        tries = 0
        while True:
            tries += 1
            steps: list[Any] = []
            step_ns: list[int] = []
            error: str | None = None
            message: str | None = None
            t = perf() if tries > 1 or loops or lag is not None or per_txn else start
            runs = session.runs
            # the interpreter's requests, each timed (the end of one is the
            # start of the next); inline, not a coroutine of its own: one
            # frame less per transaction. Twin of _psycopg._execute.
            try:
                request = next(txn)
                while True:
                    kind = request[0]
                    if kind is QUERY:
                        # appended first: on an error, the step with no time
                        # is the statement that failed (see base.settle)
                        steps.append((request[1], request[2]))
                        run = runs[request[1]]
                        if run is None or request[3]:
                            answer = await session.query(request)
                        else:
                            await run(request[2])
                            answer = None
                    elif kind is SLEEP:
                        await asyncio.sleep(request[1])
                        answer = None
                        steps.append(NOT_SQL)
                    else:  # SHELL (a pipeline is refused before the run)
                        answer = await _shell(request[1], request[2])
                        steps.append(NOT_SQL)
                    now = perf()
                    step_ns.append(now - t)
                    t = now
                    request = txn.send(answer)
            except StopIteration:
                pass
            except _DRIVER_ERRORS as exc:
                error, message = await _recover(session, exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(session, stop, deadline, t):
                    txn = stream.transaction(retry=True)
                    continue
            except ScriptRuntimeError as exc:
                error, message = SCRIPT_FAILED, str(exc)
            except asyncio.CancelledError:
                recorder.cancel()  # the grace period after Ctrl-C ran out
                raise
            break
        in_block = error is None and session.in_transaction()
        if error is None and not in_block:  # the common case, without settle()'s call
            record(start, t, steps, step_ns, None, tries, lag, None,
                   script=stream.script, client=client_id)  # fmt: skip
            client.done += start >= measure_from
        else:
            if error == SCRIPT_FAILED or in_block:
                await session.end_aborted()
            if not settle(recorder, client, start, t, steps, step_ns, error, tries, lag,
                          message, in_block):  # fmt: skip
                break
        if per_txn:
            await session.close()
        elif session.is_closed():
            until = reconnect_until(plan, deadline)
            if not await session.reconnect(stop, until, lazy):
                gave_up(plan, recorder, f"client {client_id}", t, until, deadline)
                break


async def _connect_for(
    session: _Session, recorder: Recorder, client: Client, connect: dict[str, Any]
) -> bool:
    """-C: a connection for one transaction, its statements prepared when
    first run (inside the latency, as pgbench -C re-prepares); False (the
    client is aborted, as pgbench aborts it) when the server refuses."""
    try:
        conn = await asyncpg.connect(**connect)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        code = getattr(exc, "sqlstate", None) or LOST_CONNECTION
        message = f"could not connect: {first_line(str(exc), type(exc).__name__)}"
        now = time.perf_counter_ns()
        recorder.record(now, now, (), (), str(code), 1, None, message,
                        script=client.stream.script, client=client.id)  # fmt: skip
        recorder.incidents.append(f"client {client.id} aborted while establishing connection")
        return False
    session.__dict__.update(_Session(conn, session.plan).__dict__)
    return True


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
    check_plan(plan)
    refuse_unsupported(plan)
    clients = range(plan.concurrency) if clients is None else clients
    n = len(clients)
    sessions = [_Session(conn, plan) for conn in await _connect_all(n, connect_kwargs(plan))]
    try:
        lazy: set[int] | None = None  # found by the first session's check
        for session in sessions:
            lazy = await session.prepare_all(lazy)
        recorder.begin(plan.warmup_s)
        deadline = deadline_ns(plan, recorder)
        finished = threading.Event()
        timer = precise_timer(asyncio.get_running_loop()) if plan.rate else None
        try:
            tasks = [
                asyncio.create_task(
                    _worker(session, plan, i, recorder, deadline, stop, timer, lazy),
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
