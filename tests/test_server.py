"""The server-side view: pg_stat_database and pg_stat_statements deltas of a
real run, the reasons given when a server cannot tell, the JSON round trip
and the console section."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg.introspection
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

from conftest import create_database, drop_database
from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.database.server_stats import MARK, snapshot
from dbload.measure.comparison import SERVER_CPU, busy_others, classify
from dbload.measure.result import Result
from dbload.measure.server import (
    MEASURED,
    RUN,
    ServerSnapshot,
    ServerStats,
    StatementCounters,
    delta,
    is_housekeeping,
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


# Each client commits once every 1.2 s: PostgreSQL publishes a backend's
# counters at its first commit a second or more after the last it published,
# so here every commit is published at once, and a reading of
# pg_stat_database is exact whenever it is taken.
SLEEPY = """\\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\\sleep 1200 ms
"""


@pytest.mark.slow
def test_the_warm_up_is_left_out_of_the_server_view(seeded_dsn: str, tmp_path: Path) -> None:
    """The counters are read when the warm-up ends (t = 3 s, 0.6 s after the
    clients' last commits at 2.4 s and before their next at 3.6 s), not when
    the run starts. dbload's own reading and sampling transactions are left
    out, and nothing else of dbload's falls in the window (the setup is
    before it, and closing a connection commits nothing): the server counts
    the client's transactions, give or take what PostgreSQL commits on its
    own in a session now and then (an idle connection here counted a commit
    or two every few seconds that it never sent: catalog invalidation
    catch-up); before the fix, the 12 or more warm-up transactions too."""
    script = tmp_path / "sleepy.sql"
    script.write_text(SLEEPY)
    options = prepare_options(
        mode="async", concurrency=4, files=[str(script)], warmup=3.0, duration=2.0, seed=5
    )
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)
    assert result.warmup_transactions >= 8 and result.ok >= 4 and result.failed == 0
    server = result.server
    assert server is not None and server.database is not None, server
    assert result.ok <= server.database.xact_commit <= result.ok + 3, server.database
    assert server.window == MEASURED
    if server.statements_skipped is None:  # pg_stat_statements: exact at any instant
        assert [(s.query, s.calls) for s in server.statements] == [(SELECT, result.ok)]


@pytest.mark.slow
def test_a_run_stopped_within_its_warm_up_has_no_server_window(seeded_dsn: str) -> None:
    options = prepare_options(
        workload="select", mode="async", concurrency=2, duration=5.0, warmup=30.0, seed=5
    )
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()  # Ctrl-C
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options, stop=stop)
    assert result.interrupted and result.ok == 0 and result.warmup_transactions > 0
    server = result.server
    assert server is not None and server.database is None and server.statements == ()
    assert server.database_skipped == "the run ended before its warm-up did: no measured window"
    assert result.cpu is None


def test_without_a_warm_up_the_window_is_the_run(result: Result) -> None:
    assert result.server is not None and result.server.window == RUN


# generate_series in the select list streams its rows; in FROM it would
# fill a tuplestore, spilling to disk
BURN = "SELECT count(*) FROM (SELECT generate_series(1, 10000000000)) AS s"


@pytest.fixture
def busy_session(seeded_dsn: str) -> Iterator[int]:
    """Another session keeping one backend of the server busy (its pid)
    until the test ends."""
    conn = psycopg.connect(seeded_dsn, autocommit=True)
    pid = conn.info.backend_pid

    def burn() -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):  # the test's end
            conn.execute(BURN)

    burner = threading.Thread(target=burn)
    burner.start()
    with psycopg.connect(seeded_dsn, autocommit=True) as watcher:
        query = "SELECT state FROM pg_stat_activity WHERE pid = %s"
        while (row := watcher.execute(query, (pid,)).fetchone()) is None or row[0] != "active":
            time.sleep(0.01)
    try:
        yield pid
    finally:
        conn.cancel_safe()
        burner.join()
        conn.close()


@pytest.mark.slow
def test_another_sessions_cpu_is_not_the_runs(seeded_dsn: str, busy_session: int) -> None:
    """A run of 20 lookups a second next to a session burning a core: server
    CPU is the run's own backend's, the other session's is reported apart
    (its CPU, pg_stat_activity's samples), and the verdict is not "server
    CPU" because of it."""
    options = prepare_options(
        workload="select", mode="async", concurrency=1, rate=20, duration=2.0, seed=7
    )
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)
    cpu = result.cpu
    assert cpu is not None
    if cpu.server_pct is None:
        pytest.skip(f"server CPU is not measurable here: {cpu.server_note}")
    assert cpu.others_pct is not None and cpu.others_pct > cpu.server_pct, cpu
    assert cpu.server_note.startswith("1 backend of this run"), cpu.server_note
    assert result.server is not None and result.server.others is not None
    others = result.server.others
    assert others.samples > 0 and others.busy_samples == others.samples, others
    assert others.max_active >= 1  # a shared test server may have more
    line = busy_others(result)
    assert line is not None and line.startswith("other sessions were busy on the server: up to")
    verdict, why = classify(result)
    assert verdict != SERVER_CPU, why
    assert "other sessions used" in why


@pytest.mark.parametrize("mode", ["sequential", "threads", "async", "processes"])
@pytest.mark.slow
def test_top_statements_are_only_the_workloads(preloading_dsn: str, mode: str) -> None:
    """Without a warm-up the window includes the workers' setup (session
    settings, psycopg's statement check) and teardown: none of it is listed."""
    server = _run(preloading_dsn, mode=mode, clients=1 if mode == "sequential" else 2).server
    assert server is not None and server.statements_skipped is None
    assert [(s.query, s.calls) for s in server.statements] == [(SELECT, TRANSACTIONS)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT pg_advisory_unlock_all()",
        "CLOSE ALL",
        "UNLISTEN *",
        "RESET ALL",
        "DISCARD ALL",
        "DEALLOCATE $1",
        "SET client_connection_check_interval = $1",
        asyncpg.introspection.INTRO_LOOKUP_TYPES_13,
        asyncpg.introspection.TYPE_BY_NAME,
        "SELECT\n    typname AS name, oid, typarray AS array_oid,\n    oid::regtype::text",
    ],
)
def test_driver_housekeeping_is_recognised(query: str) -> None:
    assert is_housekeeping(query)


@pytest.mark.parametrize("query", [SELECT, "UPDATE pgbench_accounts SET abalance = $1", "END"])
def test_the_workloads_statements_are_not_housekeeping(query: str) -> None:
    assert not is_housekeeping(query)


def test_delta_leaves_out_the_readers_own_transactions() -> None:
    before = dataclasses.replace(_snap(10, 2.0), reader_pid=42, own_transactions=5)
    after = dataclasses.replace(_snap(30, 12.0), reader_pid=42, own_transactions=8)
    stats = delta(before, after)
    assert stats.database is not None and stats.database.xact_commit == 20 - 3
    other_reader = dataclasses.replace(after, reader_pid=43)
    assert delta(before, other_reader).database.xact_commit == 20  # type: ignore[union-attr]


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
            "window",
            "others",
        }
        loaded = load_result(path)
        assert to_dict(loaded) == data
        assert loaded.server is not None and run.server is not None
        assert (loaded.server.window, loaded.server.others) == (
            run.server.window,
            run.server.others,
        )
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
