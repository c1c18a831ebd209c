"""Every mode, end to end, against a real PostgreSQL (the session database)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import asyncpg
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ctrl_c_twice import ctrl_c_twice, until_in_grace
from dbload.api import RunOptions, prepare_options, run_on
from dbload.config import Plan
from dbload.database import embedded
from dbload.database.resolve import Database
from dbload.drivers.asyncpg_dsn import connect_kwargs
from dbload.errors import DatabaseError, UsageError, WorkloadError
from dbload.measure.recorder import Recorder, without_sliver
from dbload.measure.result import Result
from dbload.modes import MODES, get_executor
from dbload.schema.seed import ensure_ready
from dbload.workload.parser import load_workload
from drivers_matrix import (
    CONCURRENT_MODE_DRIVERS,
    MODE_DRIVERS,
    assert_ran_on,
    label_of,
    pair_id,
    pairs,
)

ALL_MODES = sorted(MODES)


def _db(dsn: str) -> Database:
    return Database(kind="dsn", dsn=dsn)


def _run(dsn: str, **kwargs: object) -> Result:
    options: RunOptions = prepare_options(**kwargs)  # type: ignore[arg-type]
    return run_on(_db(dsn), 1, options)


def _concurrency(mode: str, c: int) -> int | None:
    return None if mode == "sequential" else c


def _into_run(mode: str, seconds: float, driver: str = "") -> float:
    """When a stop or a fault aimed ``seconds`` into the run must come, and
    how long a run must be to be still going then: the processes mode first
    starts its worker processes (fresh interpreters, 0.2 s to over a second
    on a busy machine; each imports SQLAlchemy too under its drivers, 0.6 s
    more measured here)."""
    if mode != "processes":
        return seconds
    return seconds + (2.5 if driver.startswith("sqlalchemy") else 1.5)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_select_batch_runs_every_transaction_once(seeded_dsn: str, mode: str, driver: str) -> None:
    result = _run(
        seeded_dsn,
        workload="select",
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 4),
        transactions=203,
        seed=7,
    )
    assert (result.ok, result.failed) == (203, 0)
    assert_ran_on(result, driver)
    assert not result.interrupted
    assert result.statement_count == 203
    assert result.latency.count == 203
    assert sum(p.transactions for p in result.series) == 203
    assert result.statements[0].latency.count == 203
    assert result.latency.p50 <= result.latency.p99 <= result.latency.max
    assert result.tps > 0
    assert result.cpu is not None and result.cpu.client_s >= 0


def _sums(dsn: str) -> tuple[int, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT sum(bbalance) FROM pgbench_branches),"
            " (SELECT sum(tbalance) FROM pgbench_tellers),"
            " (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
            " (SELECT count(*) FROM pgbench_history)"
        ).fetchone()
    assert row is not None
    return tuple(int(v) for v in row)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_tpcb_transactions_commit_and_balance(
    seeded_dsn: str, mode: str, driver: str, restore_balances: None
) -> None:
    result = _run(
        seeded_dsn,
        workload="tpcb",
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 3),
        transactions=60,
        seed=1,
    )
    assert (result.ok, result.failed) == (60, 0)
    assert_ran_on(result, driver)
    assert result.statement_count == 60 * 7  # BEGIN, 5 statements, END
    accounts, branches, tellers, history, rows = _sums(seeded_dsn)
    assert rows == 60
    assert accounts == branches == tellers == history


@pytest.fixture
def probe_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbload_probe (client int, x bigint, y double precision)")
    yield "dbload_probe"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_probe")


PROBE = """\
-- records the parameters it was given
\\set x random(1, 1000000000)
\\set y random_gaussian(1, 1000, 2.5)
INSERT INTO dbload_probe (client, x, y) VALUES (:client_id, :x, :y);
"""


def _probe_rows(dsn: str) -> list[tuple[int, int, float]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client, x, y FROM dbload_probe ORDER BY client, x, y"
        ).fetchall()
        conn.execute("TRUNCATE dbload_probe")
    return [(int(c), int(x), float(y)) for c, x, y in rows]


def test_same_seed_sends_the_same_parameters_in_every_mode(
    seeded_dsn: str, probe_table: str, tmp_path: Path
) -> None:
    script = tmp_path / "probe.sql"
    script.write_text(PROBE)
    seen = {}
    for mode in ("threads", "async"):
        _run(seeded_dsn, files=[str(script)], mode=mode, concurrency=3, transactions=31, seed=42)
        seen[mode] = _probe_rows(seeded_dsn)
    assert len(seen["async"]) == 31
    assert seen["threads"] == seen["async"]
    # sequential is one worker: the stream of client 0
    for mode in ("sequential", "async"):
        _run(
            seeded_dsn,
            files=[str(script)],
            mode=mode,
            concurrency=_concurrency(mode, 1),
            transactions=12,
            seed=42,
        )
        seen[mode] = _probe_rows(seeded_dsn)
    assert seen["sequential"] == seen["async"]
    _run(seeded_dsn, files=[str(script)], mode="async", concurrency=1, transactions=12, seed=43)
    assert _probe_rows(seeded_dsn) != seen["async"]


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_statement_the_server_rejects_is_reported_before_the_run(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "bad.sql"
    script.write_text(
        "\\set aid random(1, 10)\nSELECT nosuchcolumn\n  FROM pgbench_accounts WHERE aid = :aid;\n"
    )
    with pytest.raises(WorkloadError, match=r"bad\.sql:2: .*nosuchcolumn.*does not exist"):
        _run(seeded_dsn, files=[str(script)], mode=mode, driver=driver, transactions=5)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_unknown_table_is_reported_with_file_and_line(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "t.sql"
    script.write_text("-- a comment\nSELECT 1;\nSELECT * FROM no_such_table;\n")
    with pytest.raises(WorkloadError, match=r"t\.sql:3: .*no_such_table"):
        _run(seeded_dsn, files=[str(script)], mode=mode, driver=driver, transactions=5)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_sql_errors_are_counted_by_sqlstate_and_the_run_goes_on(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "div.sql"
    # half the transactions divide by zero inside an explicit transaction:
    # the worker must roll back and carry on with the same connection
    script.write_text("\\set d random(0, 1)\nBEGIN;\nSELECT 1 / :d;\nEND;\n")
    result = _run(
        seeded_dsn,
        files=[str(script)],
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 2),
        transactions=80,
        seed=3,
    )
    assert_ran_on(result, driver)
    assert result.ok + result.failed == 80
    assert 0 < result.failed < 80
    assert result.errors == {"22012": result.failed}
    assert sum(p.errors for p in result.series) == result.failed
    assert result.latency.count == result.ok


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_duration_and_warmup(seeded_dsn: str, mode: str, driver: str) -> None:
    result = _run(
        seeded_dsn,
        workload="select",
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 2),
        duration=1.0,
        warmup=0.3,
    )
    assert_ran_on(result, driver)
    assert result.duration_s == pytest.approx(1.0, abs=0.5)
    assert result.warmup_transactions > 0
    assert result.ok > 0
    assert result.series[0].t == pytest.approx(1.0, abs=0.05)


def test_sleep_counts_in_transaction_latency_but_not_as_a_statement(
    seeded_dsn: str, tmp_path: Path
) -> None:
    script = tmp_path / "nap.sql"
    script.write_text("\\sleep 20 ms\nSELECT 1;\n")
    result = _run(seeded_dsn, files=[str(script)], mode="async", concurrency=4, transactions=8)
    # libuv's timers have millisecond granularity and a cached clock: a 20 ms
    # sleep may end up to a millisecond early
    assert result.latency.min >= 19.0
    assert result.statements[0].latency.max < result.latency.min
    assert result.statement_count == 8


def test_slow_workload_waits_on_the_server(seeded_dsn: str) -> None:
    result = _run(seeded_dsn, workload="slow", mode="async", concurrency=4, transactions=8)
    assert result.ok == 8
    assert result.latency.min >= 50.0


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_stop_event_ends_the_run_early_and_marks_it_interrupted(
    seeded_dsn: str, mode: str, driver: str
) -> None:
    stop = threading.Event()
    timer = threading.Timer(_into_run(mode, 0.5, driver), stop.set)
    timer.start()
    options = prepare_options(
        workload="select", mode=mode, driver=driver, concurrency=_concurrency(mode, 2), duration=60
    )
    result = run_on(_db(seeded_dsn), 1, options, stop=stop)
    assert_ran_on(result, driver)
    assert result.interrupted
    assert result.ok > 0
    assert len(result.series) < 30  # intervals: it stopped long before the planned 60 s


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_statement_timeout_fails_the_transaction_and_keeps_the_connection(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "maybe_slow.sql"
    # half the transactions sleep past the timeout; the others must still succeed
    # on the same connections afterwards
    script.write_text("\\set d random(0, 1)\nSELECT pg_sleep(:d * 0.2);\n")
    result = _run(
        seeded_dsn,
        files=[str(script)],
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 2),
        transactions=16,
        seed=11,
        statement_timeout="30ms",
    )
    assert_ran_on(result, driver)
    assert result.ok + result.failed == 16
    assert 0 < result.failed < 16
    assert result.errors == {"57014": result.failed}


def _kill_backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_killed_connections_are_counted_and_the_run_goes_on(
    seeded_dsn: str, mode: str, driver: str
) -> None:
    killed: list[int] = []
    timer = threading.Timer(
        _into_run(mode, 0.8, driver), lambda: killed.append(_kill_backends(seeded_dsn))
    )
    timer.start()
    options = prepare_options(
        workload="select",
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 3),
        duration=_into_run(mode, 2.5, driver),
    )
    result = run_on(_db(seeded_dsn), 1, options)
    timer.join()
    assert_ran_on(result, driver)
    assert killed and killed[0] >= 1
    assert not result.interrupted
    assert 1 <= result.failed <= killed[0]
    # admin_shutdown, or a class 08 connection exception, depending on the driver
    assert all(code == "57P01" or code.startswith("08") for code in result.errors)
    # the workers reconnected: transactions succeeded in the last interval
    assert without_sliver(result.series)[-1].transactions > 0
    assert result.ok > 0


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_tpcb_balances_stay_consistent_through_killed_connections(
    seeded_dsn: str, mode: str, driver: str, restore_balances: None
) -> None:
    """A transaction cut by a kill is rolled back by the server, never half applied."""
    killed: list[int] = []
    timer = threading.Timer(
        _into_run(mode, 0.7, driver), lambda: killed.append(_kill_backends(seeded_dsn))
    )
    timer.start()
    options = prepare_options(
        workload="tpcb",
        mode=mode,
        driver=driver,
        concurrency=_concurrency(mode, 3),
        duration=_into_run(mode, 2.0, driver),
        seed=4,
    )
    result = run_on(_db(seeded_dsn), 1, options)
    timer.join()
    assert_ran_on(result, driver)
    assert killed and killed[0] >= 1 and result.failed >= 1
    accounts, branches, tellers, history, rows = _sums(seeded_dsn)
    assert accounts == branches == tellers == history
    # every transaction dbload counted ok committed; one cut between the
    # server's COMMIT and its reply may have committed too (outcome unknown)
    assert result.ok <= rows <= result.ok + result.failed


# Read, wait, then write the same row: under REPEATABLE READ a concurrent
# client's commit in between makes the UPDATE fail with 40001, every time.
CONFLICT_SCRIPT = """\
BEGIN;
SELECT n FROM dbload_test_conflict WHERE id = 1;
\\sleep 2 ms
UPDATE dbload_test_conflict SET n = n + 1 WHERE id = 1;
END;
"""


@pytest.fixture
def conflict_script(seeded_dsn: str, tmp_path: Path) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbload_test_conflict (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("INSERT INTO dbload_test_conflict VALUES (1, 0)")
    path = tmp_path / "conflict.sql"
    path.write_text(CONFLICT_SCRIPT)
    yield str(path)
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_test_conflict")


def _conflict_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT n FROM dbload_test_conflict WHERE id = 1").fetchone()
    return int(row[0]) if row else -1


@pytest.mark.parametrize(("mode", "driver"), pairs(CONCURRENT_MODE_DRIVERS))
@pytest.mark.slow
def test_serialization_failures_fail_without_retries(
    seeded_dsn: str, mode: str, driver: str, conflict_script: str
) -> None:
    result = _run(
        seeded_dsn,
        files=[conflict_script],
        mode=mode,
        driver=driver,
        concurrency=4,
        transactions=120,
        isolation="repeatable-read",
    )
    assert_ran_on(result, driver)
    assert result.ok + result.failed == 120
    assert result.failed > 0 and result.errors == {"40001": result.failed}
    assert (result.retried, result.retries) == (0, 0)
    assert _conflict_count(seeded_dsn) == result.ok  # a failed try left nothing behind


@pytest.mark.parametrize(("mode", "driver"), pairs(CONCURRENT_MODE_DRIVERS))
@pytest.mark.slow
def test_serialization_failures_are_retried_up_to_max_tries(
    seeded_dsn: str, mode: str, driver: str, conflict_script: str
) -> None:
    result = _run(
        seeded_dsn,
        files=[conflict_script],
        mode=mode,
        driver=driver,
        concurrency=4,
        transactions=120,
        isolation="repeatable-read",
        max_tries=50,
    )
    assert_ran_on(result, driver)
    assert result.ok + result.failed == 120
    assert result.retried > 0 and result.retries >= result.retried
    # each transaction is counted once, however many tries it took
    assert result.latency.count == result.ok
    assert set(result.errors) <= {"40001"}
    assert result.failed < 120 - result.retried
    assert _conflict_count(seeded_dsn) == result.ok
    assert (result.max_tries, result.isolation) == (50, "repeatable read")


@pytest.mark.parametrize(("mode", "driver"), pairs(CONCURRENT_MODE_DRIVERS))
@pytest.mark.slow
def test_tpcb_invariant_holds_with_retries_and_kills(
    seeded_dsn: str, mode: str, driver: str, restore_balances: None
) -> None:
    """Issue 5's invariant: balances and history agree after conflicts, retries and kills."""
    killed: list[int] = []
    timer = threading.Timer(
        _into_run(mode, 0.7, driver), lambda: killed.append(_kill_backends(seeded_dsn))
    )
    timer.start()
    options = prepare_options(
        workload="tpcb",
        mode=mode,
        driver=driver,
        concurrency=4,
        duration=_into_run(mode, 2.0, driver),
        seed=5,
        isolation="serializable",
        max_tries=10,
    )
    result = run_on(_db(seeded_dsn), 1, options)
    timer.join()
    assert_ran_on(result, driver)
    assert killed and killed[0] >= 1
    assert result.retried > 0  # one branch row: serializable conflicts are certain
    accounts, branches, tellers, history, rows = _sums(seeded_dsn)
    assert accounts == branches == tellers == history
    assert result.ok <= rows <= result.ok + result.failed


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_stop_cancels_transactions_still_in_flight_after_the_grace_period(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    _assert_stopped_in_flight(
        seeded_dsn, mode, driver, tmp_path / "long.sql", "SELECT pg_sleep(60);\n"
    )
    # the cancelled statements are gone from the server too
    with psycopg.connect(seeded_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None and row[0] == 0


def test_invalid_retry_options_are_refused() -> None:
    with pytest.raises(UsageError, match="--max-tries"):
        prepare_options(workload="select", max_tries=0)
    with pytest.raises(UsageError, match="--isolation"):
        prepare_options(workload="select", isolation="snapshot")
    with pytest.raises(UsageError, match="--cpu-work"):
        prepare_options(workload="select", cpu_work=-1)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_worker_gives_up_when_its_database_is_gone(
    pg_server: str, mode: str, driver: str, make_database: Callable[[], str], tmp_path: Path
) -> None:
    """A -n batch against a database dropped mid-run ends, with an incident,
    instead of reconnecting for ever."""
    dsn = make_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
    script = tmp_path / "t.sql"
    script.write_text("SELECT count(*) FROM t;\n")
    workload = load_workload([str(script)], None, None)
    plan = Plan(
        workload=workload, mode=mode, driver=driver, concurrency=1 if mode == "sequential" else 2,
        transactions=10_000_000, duration_s=None, warmup_s=0.0, seed=1, scale=1, dsn=dsn,
        reconnect_give_up_s=1.0,
    )  # fmt: skip
    recorder = Recorder(len(workload.statements))
    name = str(conninfo_to_dict(dsn)["dbname"])

    def drop_when_running() -> None:
        while recorder.ok < 50:
            time.sleep(0.05)
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    dropper = threading.Thread(target=drop_when_running, daemon=True)
    dropper.start()
    executor = get_executor(mode)
    executor.run(plan, recorder, threading.Event())
    assert executor.driver.startswith(label_of(driver)), executor.driver
    dropper.join(timeout=10)
    assert recorder.incidents
    assert all("could not reconnect" in text for text in recorder.incidents)
    assert recorder.failed >= 1 and recorder.ok >= 50


@pytest.fixture(scope="module")
def private_server() -> Iterator[tuple[Path, str]]:
    """An embedded server of this module's own, seeded, that a test may restart."""
    root = Path(tempfile.mkdtemp(prefix="dbload-restart-"))
    try:
        server = embedded.start(root / "pg")
    except DatabaseError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"cannot start a private embedded server: {exc}")
    try:
        ensure_ready(server.url)
        yield root / "pg", server.url
    finally:
        embedded.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver"), pairs())
def test_server_restart_mid_run_is_counted_and_the_run_recovers(
    private_server: tuple[Path, str], mode: str, driver: str
) -> None:
    pgdata, url = private_server

    def restart() -> None:
        embedded.stop(pgdata)
        embedded.start(pgdata)

    timer = threading.Timer(_into_run(mode, 1.0, driver), restart)
    timer.start()
    options = prepare_options(
        workload="select", mode=mode, driver=driver, concurrency=_concurrency(mode, 3),
        duration=_into_run(mode, 3.5, driver), seed=6,
    )  # fmt: skip
    result = run_on(_db(url), 1, options)
    timer.join()
    assert_ran_on(result, driver)
    assert not result.interrupted and not result.incidents
    assert result.failed >= 1
    assert all(code == "57P01" or code.startswith("08") for code in result.errors), result.errors
    # back at full speed after the restart: the last whole second has transactions
    assert result.series[-2].transactions > 0 and result.ok > 0


# -- parameters are text, typed by the server, in every mode ------------------


@pytest.fixture
def typed_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE dbload_test_typed"
            " (mode text, d date, ts timestamptz, b bytea, i int4, d2 date)"
        )
    yield "dbload_test_typed"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_test_typed")


TYPED_DEFINES = {"d": "2024-01-01", "ts": "2024-01-01 10:00:00+00", "b": "\\x0102"}
# each: a script, and the SQLSTATE every mode must give (None: it succeeds)
TYPED_SCRIPTS = {
    # typed by a cast, and by the column the value goes to
    "casts": (
        "INSERT INTO dbload_test_typed (mode, d, ts, b, d2)"
        " VALUES (:mode, :d::date, :ts::timestamptz, :b::bytea, :d);\n",
        None,
    ),
    "double_into_int4": (
        "\\set x 1.5\nINSERT INTO dbload_test_typed (mode, i) VALUES (:mode, :x);\n",
        "22P02",
    ),
    "int4_overflow": (
        "\\set x 3000000000\nINSERT INTO dbload_test_typed (mode, i) VALUES (:mode, :x);\n",
        "22003",
    ),
}


@pytest.mark.slow
def test_typed_parameters_bind_alike_in_every_mode(
    seeded_dsn: str, typed_table: str, tmp_path: Path
) -> None:
    """pgbench's rule in every driver: values go as text, the server types them."""
    outcomes: dict[str, dict[str, object]] = {}
    for mode, driver in MODE_DRIVERS:
        pair = pair_id(mode, driver)
        for name, (text, _) in TYPED_SCRIPTS.items():
            script = tmp_path / f"{name}.sql"
            script.write_text(text)
            result = _run(
                seeded_dsn, files=[str(script)], mode=mode, driver=driver,
                concurrency=_concurrency(mode, 2), transactions=2,
                defines={**TYPED_DEFINES, "mode": pair},
            )  # fmt: skip
            outcomes.setdefault(name, {})[pair] = (result.ok, result.errors)
    pairs_run = [pair_id(m, d) for m, d in MODE_DRIVERS]
    for name, (_, code) in TYPED_SCRIPTS.items():
        expected = (2, {}) if code is None else (0, {code: 2})
        assert outcomes[name] == dict.fromkeys(pairs_run, expected), name
    with psycopg.connect(seeded_dsn) as conn:
        rows = conn.execute("SELECT mode, d, ts, b, i, d2 FROM dbload_test_typed").fetchall()
    stored = {tuple(row[1:]) for row in rows}
    assert sorted(row[0] for row in rows) == sorted(pairs_run * 2)
    assert len(stored) == 1, rows
    d, ts, b, i, d2 = stored.pop()
    assert (str(d), ts.isoformat(), bytes(b), i, str(d2)) == (
        "2024-01-01", "2024-01-01T10:00:00+00:00", b"\x01\x02", None, "2024-01-01",
    )  # fmt: skip


PGBENCH = shutil.which("pgbench")


@pytest.mark.skipif(PGBENCH is None, reason="no pgbench on PATH")
def test_values_are_sent_as_pgbench_sends_them(
    seeded_dsn: str, typed_table: str, tmp_path: Path
) -> None:
    """The text of doubles, booleans and big integers, byte for byte pgbench's."""
    script = tmp_path / "text.sql"
    script.write_text(
        "\\set a 1.0 / 3\n\\set b 1e20 * 1.0\n\\set c 2.0 * 0.5\n\\set e 123456789.123456789\n"
        "\\set f 1 = 1\n\\set g 3000000000\n\\set h -0.000012345\n"
        "INSERT INTO dbload_test_typed (mode) VALUES"
        " (:a), (:b), (:c), (:e), (:f), (:g), (:h);\n"
    )
    assert PGBENCH is not None
    subprocess.run(
        [PGBENCH, "-n", "-t", "1", "-M", "prepared", "-f", str(script), seeded_dsn],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    _run(seeded_dsn, files=[str(script)], mode="async", concurrency=1, transactions=1)
    with psycopg.connect(seeded_dsn) as conn:
        texts = [r[0] for r in conn.execute("SELECT mode FROM dbload_test_typed ORDER BY ctid")]
    assert texts[:7] == texts[7:], texts
    assert texts[:7] == ["0.333333333333333", "1e+20", "1", "123456789.123457", "true",
                         "3000000000", "-1.2345e-05"]  # fmt: skip


# -- error messages -------------------------------------------------------------


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_the_first_message_of_each_error_code_is_kept(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "two.sql"
    script.write_text("\\set d random(0, 2)\nSELECT 1 / :d, (:d - 1)::text::int4 + 2147483647;\n")
    result = _run(
        seeded_dsn, files=[str(script)], mode=mode, driver=driver,
        concurrency=_concurrency(mode, 2), transactions=40, seed=5,
    )  # fmt: skip
    assert_ran_on(result, driver)
    assert set(result.errors) == {"22012", "22003"}
    where = f"{script}:2"  # the failed statement, named
    assert result.error_examples == {
        "22012": f"{where}: division by zero",
        "22003": f"{where}: integer out of range",
    }


# -- a server that goes away for good -----------------------------------------


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_a_server_that_stays_away_until_the_end_is_an_incident(
    private_server: tuple[Path, str], mode: str, driver: str
) -> None:
    """Reconnecting until the -T deadline is no success: an incident says
    which clients lost the server, and when."""
    pgdata, url = private_server
    timer = threading.Timer(_into_run(mode, 1.0, driver), embedded.stop, args=(pgdata,))
    timer.start()
    try:
        options = prepare_options(
            workload="select", mode=mode, driver=driver, concurrency=_concurrency(mode, 2),
            duration=_into_run(mode, 3.0, driver), seed=6,
        )  # fmt: skip
        result = run_on(_db(url), 1, options)
    finally:
        timer.join()
        embedded.start(pgdata)
    assert_ran_on(result, driver)
    clients = 1 if mode == "sequential" else 2
    assert result.ok > 0 and result.failed >= 1 and not result.interrupted
    assert len(result.incidents) == clients, result.incidents
    for incident in result.incidents:
        assert re.match(r"client \d lost the server \d+\.\d s into the run", incident), incident
        assert "could not reconnect (tried until the end of the run" in incident


# -- a script that fails on the client side -------------------------------------

# client 1 divides by zero: at its first transaction (the division folds to
# a constant for it), or at run time (z is a variable)
FAILING_SCRIPTS = {
    "constant": "\\set x 1 / (:client_id - 1)\nSELECT :x;\n",
    "runtime": "\\set z :client_id - 1\n\\set x 1 / :z\nSELECT :x;\n",
}


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.parametrize("kind", sorted(FAILING_SCRIPTS))
@pytest.mark.slow
def test_a_script_error_aborts_its_client_and_the_others_go_on(
    seeded_dsn: str, mode: str, driver: str, kind: str, tmp_path: Path
) -> None:
    script = tmp_path / "fails.sql"
    script.write_text(FAILING_SCRIPTS[kind])
    workload = load_workload([str(script)], None, None)
    # sequential too: one connection runs the three clients' streams
    plan = Plan(
        workload=workload, mode=mode, driver=driver, concurrency=3, transactions=30,
        duration_s=None, warmup_s=0.0, seed=1, scale=1, dsn=seeded_dsn,
    )  # fmt: skip
    recorder = Recorder(len(workload.statements))
    executor = get_executor(mode)
    executor.run(plan, recorder, threading.Event())
    assert executor.driver.startswith(label_of(driver)), executor.driver
    assert recorder.ok == plan.quota(0) + plan.quota(2)  # type: ignore[operator]
    assert recorder.errors == {"script": 1}
    assert "fails.sql:" in recorder.error_examples["script"]
    assert "division by zero" in recorder.error_examples["script"]
    assert recorder.incidents == [f"client 1 aborted: {recorder.error_examples['script']}"]


@pytest.mark.parametrize(("mode", "driver"), pairs())
def test_a_script_error_of_every_client_is_reported_not_raised(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "div.sql"
    script.write_text("\\set x 1 / :i\nSELECT :x;\n")
    result = _run(
        seeded_dsn, files=[str(script)], mode=mode, driver=driver,
        concurrency=_concurrency(mode, 2), transactions=10, defines={"i": "0"},
    )  # fmt: skip
    assert_ran_on(result, driver)
    clients = 1 if mode == "sequential" else 2
    assert (result.ok, result.failed, result.errors) == (0, clients, {"script": clients})
    assert sorted(result.incidents) == [
        f"client {i} aborted: {result.error_examples['script']}" for i in range(clients)
    ]


# -- sequential runs N clients' streams -------------------------------------------


def test_sequential_with_n_clients_sends_what_n_clients_send(
    seeded_dsn: str, probe_table: str, tmp_path: Path
) -> None:
    script = tmp_path / "probe.sql"
    script.write_text(PROBE)
    workload = load_workload([str(script)], None, None)
    seen = {}
    for mode in ("sequential", "async"):
        plan = Plan(
            workload=workload, mode=mode, concurrency=3, transactions=31, duration_s=None,
            warmup_s=0.0, seed=42, scale=1, dsn=seeded_dsn,
        )  # fmt: skip
        recorder = Recorder(len(workload.statements))
        get_executor(mode).run(plan, recorder, threading.Event())
        assert recorder.ok == 31
        seen[mode] = _probe_rows(seeded_dsn)
    assert {client for client, _, _ in seen["sequential"]} == {0, 1, 2}
    assert seen["sequential"] == seen["async"]


# -- reconnects close what they replace -------------------------------------------


@pytest.mark.parametrize(("mode", "driver"), pairs(CONCURRENT_MODE_DRIVERS))
@pytest.mark.slow
def test_a_reconnect_closes_what_it_replaces(
    make_database: Callable[[], str], mode: str, driver: str, tmp_path: Path
) -> None:
    dsn = make_database()
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;\n")
    counts: list[int] = []

    def kill_then_count() -> None:
        _kill_backends(dsn)
        time.sleep(1.5)  # the workers reconnect meanwhile
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()
        counts.append(int(row[0]) if row else -1)

    timer = threading.Timer(_into_run(mode, 1.0, driver), kill_then_count)
    timer.start()
    options = prepare_options(
        files=[str(script)],
        mode=mode,
        driver=driver,
        concurrency=20,
        duration=_into_run(mode, 3.5, driver),
    )
    result = run_on(_db(dsn), 1, options)
    timer.join()
    assert_ran_on(result, driver)
    assert result.failed >= 1 and without_sliver(result.series)[-1].transactions > 0
    assert counts and 0 < counts[0] <= 20, counts


# -- Ctrl-C -------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_stop_cuts_a_sleep_short_after_the_grace_period(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    _assert_stopped_in_flight(
        seeded_dsn, mode, driver, tmp_path / "nap.sql", "\\sleep 30 s\nSELECT 1;\n"
    )


def _assert_stopped_in_flight(dsn: str, mode: str, driver: str, script: Path, text: str) -> None:
    """Stop a run of ``text`` (which waits long) 0.5 s in: after the grace
    period every client's transaction is cancelled, none ok nor failed
    (without the cancel they would have finished, as ok transactions)."""
    script.write_text(text)
    stop = threading.Event()
    threading.Timer(_into_run(mode, 0.5, driver), stop.set).start()
    options = prepare_options(
        files=[str(script)], mode=mode, driver=driver, concurrency=_concurrency(mode, 2),
        duration=60,
    )  # fmt: skip
    result = run_on(_db(dsn), 1, options, stop=stop)
    assert_ran_on(result, driver)
    assert result.interrupted
    assert result.cancelled == (1 if mode == "sequential" else 2)
    assert (result.ok, result.failed) == (0, 0)


def _sleeping(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s AND state = 'active'", [sql]
        ).fetchone()
    return int(row[0]) if row else -1


def _poll(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    until = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > until:
            return False
        time.sleep(0.1)
    return True


def _interrupt_twice(
    seeded_dsn: str, mode: str, driver: str, sql: str, script: Path
) -> tuple[bool, tuple[int, str]]:
    """A run of ``script`` sent two Ctrl-C once its statements run: whether
    the second landed in the first one's grace, its exit code and stderr."""
    clients = 1 if mode == "sequential" else 2
    assert _poll(lambda: _sleeping(seeded_dsn, sql) == 0)  # a try before this one's
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "--dsn", seeded_dsn, "-f", str(script),
         "--mode", mode, "--driver", driver, "-c", "2", "-T", "120"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _poll(lambda: _sleeping(seeded_dsn, sql) == clients, 60)
        in_grace, err = ctrl_c_twice(proc)  # not --quiet: it waits for the first one's answer
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return in_grace, (proc.returncode, err)


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_a_second_ctrl_c_leaves_no_statement_running(
    seeded_dsn: str, mode: str, driver: str, tmp_path: Path
) -> None:
    """After the second Ctrl-C (exit at once) the server ends the sessions'
    statements instead of running them to their end."""
    # a statement of its own, told apart from another pair's still ending
    sql = f"SELECT pg_sleep(60.{MODE_DRIVERS.index((mode, driver))})"
    script = tmp_path / "long.sql"
    script.write_text(sql + ";\n")
    code, err = until_in_grace(lambda: _interrupt_twice(seeded_dsn, mode, driver, sql, script))
    assert code == 130, err
    # at once, not the grace's end ("interrupted by SIGINT; partial result reported")
    assert err.strip().splitlines()[-1] == "dbload: error: interrupted", err
    assert _poll(lambda: _sleeping(seeded_dsn, sql) == 0), "the statements ran on"


@pytest.mark.slow
def test_a_ctrl_c_as_the_run_ends_keeps_its_exit_code(seeded_dsn: str, tmp_path: Path) -> None:
    """A second Ctrl-C just after the grace period ended the run finds the
    process exiting: the code and message already decided stand (Python's
    finalization would otherwise die of the signal)."""
    sql = "SELECT pg_sleep(60.99)"
    script = tmp_path / "long.sql"
    script.write_text(sql + ";\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "--dsn", seeded_dsn, "-f", str(script),
         "--mode", "async", "-c", "2", "-T", "120", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert _poll(lambda: _sleeping(seeded_dsn, sql) == 2, 60)
        proc.send_signal(signal.SIGINT)
        assert _poll(lambda: _sleeping(seeded_dsn, sql) == 0, 30)  # the grace's cancel
        while proc.poll() is None:  # Ctrl-C, again and again, until it has exited
            proc.send_signal(signal.SIGINT)
            time.sleep(0.005)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] in (
        "dbload: error: interrupted by SIGINT; partial result reported",
        "dbload: error: interrupted",  # one landed while the result was summed up
    ), err


# -- libpq connection parameters in the asyncpg modes ----------------------------


def _with(dsn: str, **params: str) -> str:
    return make_conninfo(dsn, **params)


def _uri(dsn: str, **params: str) -> str:
    parts = {**conninfo_to_dict(dsn), **params}
    user, dbname = parts.pop("user"), parts.pop("dbname")
    where = ""
    if not str(parts.get("host", "")).startswith("/"):  # a socket directory stays a parameter
        where = str(parts.pop("host", "localhost"))
        where += f":{parts.pop('port')}" if "port" in parts else ""
    # %20, not +: libpq decodes only percent escapes
    return f"postgresql://{user}@{where}/{dbname}?{urlencode(parts, quote_via=quote)}"


@pytest.mark.parametrize("form", [_with, _uri])
async def test_libpq_parameters_asyncpg_honours_are_translated(
    seeded_dsn: str, form: Callable[..., str]
) -> None:
    dsn = form(
        seeded_dsn, connect_timeout="7", application_name="dbload-test-app",
        options="-c work_mem=5MB", target_session_attrs="read-write", sslmode="disable",
        gssencmode="disable", keepalives="0", client_encoding="UTF8",
    )  # fmt: skip
    plan = Plan(
        workload=load_workload([], "select", None), mode="async", concurrency=1,
        transactions=1, duration_s=None, warmup_s=0.0, seed=1, scale=1, dsn=dsn,
        statement_timeout_ms=1234,
    )  # fmt: skip
    kwargs = connect_kwargs(plan)
    assert kwargs["timeout"] == 7.0
    conn = await asyncpg.connect(**kwargs)
    try:
        settings = [
            await conn.fetchval(f"SELECT current_setting('{name}')")
            for name in ("application_name", "work_mem", "statement_timeout")
        ]
    finally:
        await conn.close()
    assert settings == ["dbload-test-app", "5MB", "1234ms"]


# the pairs that connect through asyncpg, bare or under SQLAlchemy
ASYNCPG_PAIRS = [(m, d) for m, d in MODE_DRIVERS if d in ("asyncpg", "sqlalchemy+asyncpg")]


@pytest.mark.parametrize(("mode", "driver"), pairs(ASYNCPG_PAIRS))
@pytest.mark.slow
def test_a_dsn_with_libpq_parameters_runs_in_the_asyncpg_modes(
    seeded_dsn: str, mode: str, driver: str
) -> None:
    dsn = _uri(seeded_dsn, connect_timeout="5", application_name="dbload-test", keepalives="0")
    result = _run(dsn, workload="select", mode=mode, driver=driver, concurrency=2, transactions=20)
    assert (result.ok, result.failed) == (20, 0)
    assert_ran_on(result, driver)


REFUSED = [
    {"keepalives": "1"}, {"keepalives_idle": "30"}, {"gssencmode": "require"},
    {"tcp_user_timeout": "1000"}, {"requirepeer": "postgres"}, {"channel_binding": "require"},
    {"load_balance_hosts": "random"}, {"hostaddr": "127.0.0.1"}, {"sslcertmode": "allow"},
]  # fmt: skip


@pytest.mark.parametrize("param", REFUSED)
def test_libpq_parameters_asyncpg_cannot_honour_are_refused(
    seeded_dsn: str, param: dict[str, str]
) -> None:
    [name] = param
    plan = Plan(
        workload=load_workload([], "select", None), mode="async", concurrency=1,
        transactions=1, duration_s=None, warmup_s=0.0, seed=1, scale=1,
        dsn=_with(seeded_dsn, **param),
    )  # fmt: skip
    with pytest.raises(UsageError, match=rf"parameter {name}\b.*--driver psycopg") as caught:
        connect_kwargs(plan)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("mode", "driver"), pairs(ASYNCPG_PAIRS))
@pytest.mark.parametrize("name", ["keepalives", "tcp_user_timeout"])
def test_a_refused_parameter_stops_the_run_before_it_starts(
    seeded_dsn: str, mode: str, driver: str, name: str
) -> None:
    dsn = _with(seeded_dsn, **{name: "1"})
    with pytest.raises(UsageError, match=rf"parameter {name}\b"):
        _run(dsn, workload="select", mode=mode, driver=driver, transactions=5)
    # the sync modes take any DSN libpq takes
    assert _run(dsn, workload="select", mode="threads", concurrency=2, transactions=5).ok == 5
