"""dbload's pytest plugin (entry point ``pytest11``): load tests in a team's suite.

Two fixtures::

    def test_async_overlaps_server_waits(dbload_runner):
        result = dbload_runner.run("slow", mode="async", concurrency=20, transactions=200)
        assert result.speedup_vs("sequential") > 5
        assert result.latency.p99 < 100  # ms

``dbload_database`` (session scope) resolves a server as ``dbload run`` does
($DBLOAD_DSN or $DATABASE_URL or libpq's PG* variables, else a
testcontainers PostgreSQL, else the embedded server; ``--dbload-db`` forces
one), creates a fresh database on it for the session, seeds it and drops it
at the end. A server that was configured (a DSN, PG* variables, a forced
``--dbload-db``) and cannot be reached fails the tests that use it: a
misconfigured CI must not go green. Only with nothing configured and no
server available are they skipped, with the reason.

``transactions`` is the batch, shared by the workers (``-n``); pgbench's
flags have their keywords too (``builtins=["tpcb-like@3"]``,
``transactions_per_client`` for ``-t``, ``query_mode``, ``log``...: see
:class:`dbload.api.Options`, the one list the CLI, the API and this plugin
share); an unknown keyword is a TypeError.

The runner's runs execute in their own thread and event loop, so they work
in plain tests and, through ``await dbload_runner.run_async(...)``, in
pytest-asyncio tests whose loop is already running.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Unpack

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.api import Options, run
from dbload.database.redact import redact
from dbload.database.resolve import env_dsn, libpq_environment, open_database
from dbload.errors import DbloadError
from dbload.measure.result import Result
from dbload.schema.seed import ensure_ready

DB_PREFIX = "dbload_pytest_"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--dbload-db",
        default="auto",
        choices=("auto", "dsn", "container", "embedded"),
        help="dbload: where dbload_database comes from (default: auto).",
    )


@dataclass(frozen=True)
class DbloadDatabase:
    """The session's database: ``dsn`` (may hold a password), ``url`` redacted."""

    dsn: str
    kind: str  # "dsn" | "container" | "embedded"
    scale: int

    @property
    def url(self) -> str:
        return redact(self.dsn)


@pytest.fixture(scope="session")
def dbload_database(request: pytest.FixtureRequest) -> Iterator[DbloadDatabase]:
    """A fresh, seeded database for the session, dropped at its end."""
    choice = str(request.config.getoption("--dbload-db"))
    with ExitStack() as stack:
        try:
            server = stack.enter_context(open_database(choice))
            dsn = _create_database(server.dsn)
            stack.callback(_drop_database, server.dsn, dsn)
            database = DbloadDatabase(dsn=dsn, kind=server.kind, scale=ensure_ready(dsn))
        except DbloadError as exc:
            reason = redact(str(exc))
            if (told := _configured(choice)) is not None:
                pytest.fail(f"dbload: {told}, but it gives no database: {reason}", pytrace=False)
            pytest.skip(f"dbload: no PostgreSQL available (none configured): {reason}")
        yield database


def _configured(choice: str) -> str | None:
    """What the session was told about where its database is; None: nothing."""
    if choice != "auto":
        return f"--dbload-db {choice} was asked for"
    if env_dsn() is not None:
        return "$DBLOAD_DSN or $DATABASE_URL is set"
    if names := libpq_environment():
        return f"libpq's {', '.join(names)} {'is' if len(names) == 1 else 'are'} set"
    return None


def _create_database(server: str) -> str:
    name = f"{DB_PREFIX}{secrets.token_hex(4)}"
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise DbloadError(f"cannot create a database for the session: {exc}") from None
    return make_conninfo(server, dbname=name)


def _drop_database(server: str, dsn: str) -> None:
    name = str(conninfo_to_dict(dsn)["dbname"])
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class RunnerResult:
    """A :class:`~dbload.measure.result.Result` (its fields read through, e.g.
    ``.tps``, ``.latency.p99``) that can also compare itself with another mode."""

    result: Result
    _runner: DbloadRunner = field(repr=False)
    _request: dict[str, Any] = field(repr=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def speedup_vs(self, mode: str) -> float:
        """tps of this run over the tps of the same workload in ``mode``.

        The baseline runs once per workload and options (then cached), with
        the same seed; for a batch it runs this run's share of one worker
        (transactions / concurrency, at least 10), which takes about the same
        time as this run did and measures the same rate.
        """
        base = self._runner.baseline(mode, self._request, self.result)
        return self.result.tps / base.tps if base.tps > 0 else float("inf")


class DbloadRunner:
    """Runs workloads on the session's database (see the module docstring)."""

    def __init__(self, database: DbloadDatabase) -> None:
        self.database = database
        self._baselines: dict[tuple[Any, ...], Result] = {}

    def run(
        self,
        workload: str | None = None,
        *,
        mode: str = "async",
        concurrency: int | None = None,
        **options: Unpack[Options],
    ) -> RunnerResult:
        """``dbload.api.run`` on the session database; ``transactions`` is ``-n``."""
        if options.get("transactions") is None and options.get("duration") is None:
            options["duration"] = 2.0  # a test's default, not the CLI's 10 s
        request: dict[str, Any] = {"workload": workload, **options}
        result = run(workload, mode=mode, concurrency=concurrency, dsn=self.database.dsn, **options)
        request["seed"] = result.seed
        return RunnerResult(result, self, request)

    async def run_async(
        self,
        workload: str | None = None,
        *,
        mode: str = "async",
        concurrency: int | None = None,
        **options: Unpack[Options],
    ) -> RunnerResult:
        """:meth:`run` from a coroutine: in a thread, beside the test's own loop."""
        return await asyncio.to_thread(
            lambda: self.run(workload, mode=mode, concurrency=concurrency, **options)
        )

    def baseline(self, mode: str, request: dict[str, Any], measured: Result) -> Result:
        options = dict(request)
        workload = options.pop("workload")
        for name in ("log", "log_prefix", "aggregate_interval", "sampling_rate"):
            options.pop(name, None)  # -l is this run's log, not the baseline's
        if measured.planned_transactions is not None:
            share = measured.planned_transactions // max(1, measured.concurrency)
            options["transactions"] = max(10, share)
        key = (mode, workload, tuple(sorted((k, repr(v)) for k, v in options.items())))
        if key not in self._baselines:
            self._baselines[key] = run(workload, mode=mode, dsn=self.database.dsn, **options)
        return self._baselines[key]


@pytest.fixture(scope="session")
def dbload_runner(dbload_database: DbloadDatabase) -> DbloadRunner:
    """Runs dbload workloads against ``dbload_database``."""
    return DbloadRunner(dbload_database)
