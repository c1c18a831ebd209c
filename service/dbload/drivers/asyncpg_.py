"""asyncpg: the async modes' default driver.

Each worker holds one connection and executes statements it prepared itself
(asyncpg's per-query pool checkout costs about two thirds of the
throughput, SPEC §3). The query modes: ``prepared`` (the default) prepares
each statement once per connection; ``extended`` runs it as asyncpg's
unnamed statement, parsed again at every execution in the same round trip
(see :func:`_unnamed`); ``simple`` interpolates the values and sends one
simple-protocol Query. asyncpg has no pipeline mode: a script with
``\\startpipeline`` is refused before the run (--driver psycopg runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeAlias

import asyncpg

from dbload.config import Plan
from dbload.drivers.asyncpg_dsn import connect_kwargs
from dbload.drivers.link_async import Run
from dbload.errors import DatabaseError, WorkloadError
from dbload.modes.base import (
    CLIENT_CHECK_MS,
    first_line,
    interpolate,
    lazy_statements,
    skip_check,
)
from dbload.workload.commands import PipelineCommand, SqlCommand
from dbload.workload.model import Statement
from dbload.workload.stream import Request

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

LOST_CONNECTION = "08006"  # connection_failure: the socket closed with no SQLSTATE
RECONNECT_TIMEOUT_S = 10.0
# Parameter types whose asyncpg codec takes the stream's text as it is.
_TEXT = {"text", "varchar", "bpchar", "name", "unknown", "char"}
ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)

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


class AsyncpgLink:
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

    async def call(self, fn: Callable[..., Any], ctx: Any) -> None:
        await fn(self.conn, ctx)

    async def pipeline(self, kind: str) -> None:  # pragma: no cover - refused by check()
        raise WorkloadError("asyncpg has no pipeline mode")

    async def abandon_pipeline(self) -> None:
        """Nothing to leave: asyncpg runs no pipeline."""

    async def recover(self, exc: BaseException) -> tuple[str, str]:
        """The error's SQLSTATE and message, with the connection back to idle
        when it survived."""
        conn = self.conn
        lost = self.is_closed()
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

    def cancel(self) -> None:  # pragma: no cover - the async modes cancel the task
        """The async modes cancel the worker's task; asyncpg then cancels
        its statement on the server."""

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


class AsyncpgDriver:
    """Direct connections, not asyncpg's pool: the pool replaces a
    connection that dies on its own, beside the worker's reconnect (40
    backends for -c 20 after a kill), and each worker holds one anyway."""

    label = f"asyncpg {asyncpg.__version__}" + (" + uvloop" if uvloop is not None else "")
    errors: tuple[type[BaseException], ...] = ERRORS

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._connect = connect_kwargs(plan)
        self._reconnect = connect_kwargs(plan, timeout_s=RECONNECT_TIMEOUT_S)

    @staticmethod
    def check(plan: Plan) -> None:
        connect_kwargs(plan)  # a DSN asyncpg cannot honour fails here
        refuse_unsupported(plan)

    async def open(self, n: int) -> list[AsyncpgLink]:
        opened = await asyncio.gather(
            *(asyncpg.connect(**self._connect) for _ in range(n)), return_exceptions=True
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
        return [AsyncpgLink(conn, self.plan) for conn in conns]

    async def connect(self) -> AsyncpgLink:
        return AsyncpgLink(await asyncpg.connect(**self._reconnect), self.plan)

    async def release(self, link: AsyncpgLink) -> None:
        await link.close()

    async def close(self) -> None:
        """Nothing shared to close: every connection is a link's own."""


def refuse_unsupported(plan: Plan) -> None:
    """What asyncpg cannot run, refused before the run with file and line:
    a pipeline (asyncpg has no pipeline mode) and, in -M simple, a \\gset
    on a \\; compound (asyncpg returns no rows from the simple protocol)."""
    for script in plan.workload.scripts:
        for command in script.commands:
            if isinstance(command, PipelineCommand) and command.kind == "start":
                raise WorkloadError(
                    "\\startpipeline: asyncpg has no pipeline mode; run --driver psycopg",
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
                    " simple-protocol query; run --driver psycopg",
                    source=script.source,
                    line=command.line,
                )
