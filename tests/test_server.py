"""The server-side view: pg_stat_database and pg_stat_statements deltas of a
real run, the reasons given when a server cannot tell, the JSON round trip
and the console section."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

from conftest import create_database, drop_database
from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.database.server_stats import MARK, snapshot
from dbload.measure.result import Result
from dbload.measure.server import (
    ServerSnapshot,
    ServerStats,
    StatementCounters,
    delta,
)
from dbload.report.console import render, server_section
from dbload.report.json_ import to_dict, write_json
from dbload.report.load import load_result
from dbload.schema.seed import ensure_ready

TRANSACTIONS = 300
SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"


def _preloads(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    return "pg_stat_statements" in str(row[0] if row else "")


def _has_extension(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        return row.fetchone() is not None


def _run(dsn: str, mode: str = "async", clients: int = 2) -> Result:
    options = prepare_options(
        workload="select", mode=mode, concurrency=clients, transactions=TRANSACTIONS, seed=3
    )
    return run_on(Database(kind="dsn", dsn=dsn), 1, options)


@pytest.fixture(scope="module")
def result(seeded_dsn: str) -> Result:
    return _run(seeded_dsn)


@pytest.fixture(scope="module")
def preloading_server(pg_server: str, hba_server: str) -> str:
    """A server that preloads pg_stat_statements: the session's, else the
    embedded one ``hba_server`` gives (the 5432 server may not)."""
    server = pg_server if _preloads(pg_server) else hba_server
    if not _preloads(server):
        pytest.skip("no server here preloads pg_stat_statements")
    return server


@pytest.fixture(scope="module")
def preloading_dsn(preloading_server: str) -> Iterator[str]:
    """A seeded database of its own on ``preloading_server``."""
    url = create_database(preloading_server)
    try:
        ensure_ready(url)
        yield url
    finally:
        drop_database(preloading_server, url)


@pytest.fixture
def plain_role(pg_server: str) -> Iterator[str]:
    """A login role with no rights beyond PUBLIC's, dropped at the end; its
    name. Logs in with a password where the server asks for one."""
    role = f"dbload_view_{secrets.token_hex(3)}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(role)
            )
        )
    try:
        yield role
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_database_delta_counts_the_run(result: Result) -> None:
    server = result.server
    assert server is not None and server.database is not None, server
    db = server.database
    assert server.database_skipped is None
    # every transaction committed once; the snapshots and the pools' setup
    # add a few of their own
    assert TRANSACTIONS <= db.xact_commit <= TRANSACTIONS + 60, db
    assert db.xact_rollback == 0 and db.deadlocks == 0
    assert db.tup_fetched >= TRANSACTIONS  # one row by primary key each
    assert db.tup_inserted == db.tup_updated == db.tup_deleted == 0
    assert db.cache_hit_ratio is not None and 0.5 < db.cache_hit_ratio <= 1.0


@pytest.mark.parametrize("mode", ["sequential", "threads", "async"])
def test_every_mode_is_counted_in_full(preloading_dsn: str, mode: str) -> None:
    """The "after" snapshot waits for the run's backends to exit, so their
    last counters (flushed at exit, else at most once a second) are in."""
    server = _run(preloading_dsn, mode=mode, clients=1 if mode == "sequential" else 3).server
    assert server is not None and server.database is not None
    assert TRANSACTIONS <= server.database.xact_commit <= TRANSACTIONS + 60
    assert server.statements_skipped is None
    select = [s for s in server.statements if s.query == SELECT]
    assert len(select) == 1, server.statements
    assert select[0].calls == TRANSACTIONS and select[0].rows == TRANSACTIONS
    assert select[0].total_ms > 0 and select[0].mean_ms == pytest.approx(
        select[0].total_ms / TRANSACTIONS
    )
    assert server.statements[0] == select[0]  # the workload's one statement leads
    assert all(MARK not in s.query for s in server.statements)  # not our own queries
    totals = [s.total_ms for s in server.statements]
    assert totals == sorted(totals, reverse=True)


def test_the_extension_is_created_where_preloaded(preloading_server: str) -> None:
    fresh = create_database(preloading_server)
    try:
        assert not _has_extension(fresh)
        taken = snapshot(fresh)
        assert taken.statements_skipped is None and taken.statements is not None
        assert _has_extension(fresh)
    finally:
        drop_database(preloading_server, fresh)


def test_statements_skipped_with_the_reason_where_not_preloaded(
    pg_server: str, seeded_dsn: str
) -> None:
    if _preloads(pg_server):
        pytest.skip("the session server preloads pg_stat_statements (run with $DBLOAD_TEST_DSN)")
    server = _run(seeded_dsn).server
    assert server is not None
    assert server.statements == ()
    assert server.statements_skipped == "pg_stat_statements is not in shared_preload_libraries"
    assert server.database is not None  # pg_stat_database still works
    assert not _has_extension(seeded_dsn)


def test_a_role_without_rights_gets_the_reason_and_the_database_delta(
    make_database: Callable[[], str], plain_role: str
) -> None:
    fresh = make_database()
    dsn = make_conninfo(fresh, user=plain_role, password=plain_role)
    before = snapshot(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(50):
            conn.execute("SELECT %s::int", (i,))
    stats = delta(before, snapshot(dsn, since=before))
    name = conninfo_to_dict(fresh)["dbname"]
    # preloaded or not (a non-superuser may not read shared_preload_libraries),
    # CREATE EXTENSION tells: pg_stat_statements is not a trusted extension
    assert stats.statements_skipped is not None
    assert stats.statements_skipped.startswith(
        f"pg_stat_statements is not installed in database {name}"
        " and this role cannot CREATE EXTENSION (permission denied"
    ), stats.statements_skipped
    assert stats.statements == ()
    assert not _has_extension(fresh)
    assert stats.database is not None and stats.database.xact_commit >= 50


def test_an_unreachable_server_is_a_reason_not_a_failure() -> None:
    dead = "postgresql://nobody:hunter2@127.0.0.1:1/nothing"
    stats = delta(snapshot(dead), snapshot(dead))
    assert stats.database is None and stats.statements == ()
    assert stats.database_skipped is not None and "no server statistics" in stats.database_skipped
    assert stats.statements_skipped == stats.database_skipped
    assert "hunter2" not in stats.database_skipped


def _snap(calls: int, total: float, reset: str | None = None) -> ServerSnapshot:
    counters = dict.fromkeys(
        (
            "xact_commit",
            "xact_rollback",
            "blks_read",
            "blks_hit",
            "tup_returned",
            "tup_fetched",
            "tup_inserted",
            "tup_updated",
            "tup_deleted",
            "conflicts",
            "temp_files",
            "temp_bytes",
            "deadlocks",
        ),
        calls,
    )
    return ServerSnapshot(
        database="db",
        counters=counters,
        counters_reset=reset,
        statements={
            (10, 1, 7, True): StatementCounters("SELECT $1", calls, total, calls),
            (10, 1, 8, True): StatementCounters("UPDATE t", 5, 1.0, 5),  # idle in the run
        },
        statements_reset=reset,
    )


def test_delta_subtracts_per_entry_and_notices_a_reset() -> None:
    stats = delta(_snap(10, 2.0), _snap(30, 12.0))
    assert [(s.query, s.calls, s.total_ms, s.mean_ms, s.rows) for s in stats.statements] == [
        ("SELECT $1", 20, 10.0, 0.5, 20)
    ]
    assert stats.database is not None and stats.database.xact_commit == 20
    assert stats.database.cache_hit_ratio == 0.5
    reset = delta(_snap(10, 2.0), _snap(3, 1.5, reset="2025-01-01"))
    assert reset.database is None and reset.database_skipped is not None
    assert [s.calls for s in reset.statements] == [3, 5]  # counted from the reset
    assert delta(_snap(1, 1.0), _snap(2, 2.0), top=0).statements == ()


def test_json_round_trip(preloading_dsn: str, result: Result, tmp_path: Path) -> None:
    with_statements = _run(preloading_dsn)
    for i, run in enumerate((with_statements, result)):
        path = tmp_path / f"run{i}.json"
        write_json(path, to_dict(run))
        data = json.loads(path.read_text())
        assert set(data["server"]) == {
            "database",
            "database_skipped",
            "statements",
            "statements_skipped",
        }
        loaded = load_result(path)
        assert to_dict(loaded) == data
        assert loaded.server is not None and run.server is not None
        assert loaded.server.database is not None and run.server.database is not None
        assert loaded.server.database.xact_commit == run.server.database.xact_commit
        assert [s.calls for s in loaded.server.statements] == [
            s.calls for s in run.server.statements
        ]
    statements = json.loads((tmp_path / "run0.json").read_text())["server"]["statements"]
    assert statements[0]["query"] == SELECT and statements[0]["calls"] == TRANSACTIONS
    assert set(statements[0]) == {"query", "calls", "total_ms", "mean_ms", "rows"}


def test_older_json_without_the_server_view_still_loads(result: Result, tmp_path: Path) -> None:
    data = to_dict(result)
    for value in (None, "absent"):
        if value is None:
            data["server"] = None
        else:
            data.pop("server")
        path = tmp_path / "old.json"
        path.write_text(json.dumps(data))
        assert load_result(path).server is None


def _text(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_console_section_within_80_columns(preloading_dsn: str, result: Result) -> None:
    with_statements = _run(preloading_dsn)
    text = _text(render(with_statements))
    assert "server (pg_stat_database, over the run)" in text
    assert "commits" in text and "% hit" in text and "returned" in text
    assert "top statements by total time" in text and "pgbench_accounts" in text
    assert f"{TRANSACTIONS:,}" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_console_says_why_statements_were_skipped(result: Result) -> None:
    assert result.server is not None
    skipped = ServerStats(
        database=result.server.database,
        statements=(),
        statements_skipped="pg_stat_statements is not in shared_preload_libraries",
    )
    text = _text(server_section(skipped))
    assert "statements skipped: pg_stat_statements is not in shared_preload_libraries" in text
    assert "top statements" not in text
    nothing = ServerStats(database=None, statements=(), database_skipped="no server statistics: x")
    assert re.search(r"skipped +no server statistics: x", _text(server_section(nothing)))
