"""--driver: what each driver keeps of the modes' guarantees, against a real
PostgreSQL, and the combinations refused in one line before the run.

The guarantees that every mode shares (retries, timeouts, reconnects,
Ctrl-C) are tests/test_modes.py's, run for every pair of
tests/drivers_matrix.py; these are the ones about the driver itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.errors import UsageError, WorkloadError
from dbload.measure.result import Result
from drivers_matrix import MODE_DRIVERS, SQLALCHEMY_DRIVERS, assert_ran_on, pairs
from test_cli import _cli, _one_line_error

UNREACHABLE_DSN = "postgresql://x@127.0.0.1:1/x"


def _run(dsn: str, **kwargs: object) -> Result:
    return run_on(Database(kind="dsn", dsn=dsn), 1, prepare_options(**kwargs))  # type: ignore[arg-type]


def _clients(mode: str, c: int) -> int | None:
    return None if mode == "sequential" else c


# -- refused before the run ---------------------------------------------------


def test_an_unknown_driver_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown driver 'pg8000'; choose one of asyncpg, psycopg"):
        prepare_options(workload="select", mode="async", driver="pg8000")


def test_cli_an_unknown_driver_is_one_line_before_any_database() -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "-w", "select", "--driver", "pg8000")
    _one_line_error(code, err, "unknown driver 'pg8000'")
    assert code == 2


# the drivers of the async modes, asked of a sync one: named, and where they do run
MISFITS = [
    ("threads", "asyncpg"),
    ("sequential", "asyncpg"),
    ("threads", "sqlalchemy+asyncpg"),
]


@pytest.mark.parametrize(("mode", "driver"), MISFITS)
def test_a_driver_that_does_not_fit_the_mode_is_refused(mode: str, driver: str) -> None:
    with pytest.raises(UsageError) as caught:
        prepare_options(workload="select", mode=mode, concurrency=2, driver=driver)
    message = str(caught.value)
    assert message.startswith(f"--driver {driver} does not fit --mode {mode}: {mode} runs psycopg")
    assert message.endswith(f"{driver} runs in async, processes"), message
    assert "\n" not in message


@pytest.mark.parametrize(("mode", "driver"), MISFITS[:2])
def test_cli_a_driver_that_does_not_fit_the_mode_is_one_line(mode: str, driver: str) -> None:
    code, _, err = _cli(
        "run", "--dsn", UNREACHABLE_DSN, "-w", "select", "--mode", mode, "--driver", driver
    )
    _one_line_error(code, err, f"--driver {driver} does not fit --mode {mode}")
    assert code == 2


# -- the driver that ran ----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "given", "canonical"),
    [
        *((m, d, d) for m, d in MODE_DRIVERS),
        ("threads", "sqlalchemy", "sqlalchemy+psycopg"),  # the style's default DBAPI
        ("async", "sqlalchemy", "sqlalchemy+asyncpg"),
        ("processes", "SQLAlchemy", "sqlalchemy+asyncpg"),
        ("sequential", None, "psycopg"),  # the mode's default
        ("processes", None, "asyncpg"),
    ],
    ids=lambda v: str(v),
)
@pytest.mark.slow
def test_the_result_names_the_driver_that_ran(
    seeded_dsn: str, mode: str, given: str | None, canonical: str
) -> None:
    result = _run(
        seeded_dsn, workload="select", mode=mode, driver=given, concurrency=_clients(mode, 2),
        transactions=20,
    )  # fmt: skip
    assert (result.ok, result.failed) == (20, 0)
    assert_ran_on(result, canonical)
    # the library's version is shown only for the runs that load it
    assert ("sqlalchemy" in result.versions) == canonical.startswith("sqlalchemy+")


# -- held connections -------------------------------------------------------------


def _run_backends(dsn: str) -> int:
    """The run's backends: dbload names them by the run's tag, dbload-<8 hex>
    (its monitor session is "<tag> monitor")."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name ~ '^dbload-[0-9a-f]{8}$'"
        ).fetchone()
    return int(row[0]) if row else -1


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_every_driver_holds_exactly_n_backends(seeded_dsn: str, mode: str, driver: str) -> None:
    """N workers hold N backends for the whole run, whatever pool the driver
    has (sequential: one, running the three clients' streams)."""
    seen: list[int] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            seen.append(_run_backends(seeded_dsn))
            time.sleep(0.05)

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    try:
        result = _run(
            seeded_dsn, workload="select", mode=mode, driver=driver, concurrency=3,
            duration=1.5 + (1.5 if mode == "processes" else 0.0),
        )  # fmt: skip
    finally:
        done.set()
        counter.join(timeout=10)
    assert_ran_on(result, driver)
    held = 1 if mode == "sequential" else 3
    assert result.ok > 0 and result.failed == 0
    assert max(seen) == held and seen.count(held) >= 5, seen  # never more, held throughout
    assert _run_backends(seeded_dsn) == 0  # all closed at the end


@pytest.mark.parametrize("driver", ["asyncpg", "sqlalchemy+asyncpg"])
@pytest.mark.slow
def test_a_connection_refused_under_connect_per_transaction_is_counted_by_its_sqlstate(
    pg_server: str, make_database: Callable[[], str], driver: str, tmp_path: Path
) -> None:
    """-C: the server's refusal (55000, a database not accepting
    connections) as the DBAPI driver gives it, not SQLAlchemy's wrapper."""
    dsn = make_database()
    name = str(conninfo_to_dict(dsn)["dbname"])
    script = tmp_path / "one.sql"
    script.write_text("SELECT 1;\n")

    def refuse(allow: bool) -> None:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.Literal(allow)
                )
            )

    timer = threading.Timer(0.7, refuse, args=(False,))
    timer.start()
    try:
        result = _run(
            dsn, files=[str(script)], mode="async", driver=driver, concurrency=1, duration=2.0,
            connect_per_transaction=True,
        )  # fmt: skip
    finally:
        timer.join()
        refuse(True)  # for the fixture to drop it
    assert_ran_on(result, driver)
    assert result.ok > 0 and result.errors == {"55000": 1}, result.errors
    assert result.error_examples["55000"] == (
        f'could not connect: database "{name}" is not currently accepting connections'
    )
    assert result.incidents == ("client 0 aborted while establishing connection",)


# -- statements checked before the clock ------------------------------------------


@pytest.fixture
def log_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbload_test_drivers_log (x int)")
    yield "dbload_test_drivers_log"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_test_drivers_log")


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_a_bad_column_is_reported_with_file_and_line_before_any_transaction(
    seeded_dsn: str, log_table: str, mode: str, driver: str, tmp_path: Path
) -> None:
    script = tmp_path / "bad.sql"
    script.write_text(
        f"INSERT INTO {log_table} VALUES (1);\n"
        "\\set aid random(1, 10)\n"
        "SELECT nosuchcolumn FROM pgbench_accounts WHERE aid = :aid;\n"
    )
    with pytest.raises(
        WorkloadError, match=r"bad\.sql:3: .*nosuchcolumn.*does not exist"
    ) as caught:
        _run(seeded_dsn, files=[str(script)], mode=mode, driver=driver, transactions=5)
    assert "\n" not in str(caught.value)
    with psycopg.connect(seeded_dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {log_table}").fetchone()
    assert row == (0,)  # not one transaction ran: the INSERT before it neither


# -- errors by SQLSTATE -------------------------------------------------------------


@pytest.fixture
def unique_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbload_test_drivers_unique (id int PRIMARY KEY)")
        conn.execute("INSERT INTO dbload_test_drivers_unique VALUES (1)")
    yield "dbload_test_drivers_unique"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_test_drivers_unique")


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_errors_are_counted_by_sqlstate_in_every_driver(
    seeded_dsn: str, unique_table: str, mode: str, driver: str, tmp_path: Path
) -> None:
    """A third of the transactions divide by zero, a third insert the key
    that is there, inside a transaction block: each failure by its
    SQLSTATE, and the connection goes on."""
    script = tmp_path / "fails.sql"
    script.write_text(
        "\\set d random(0, 2)\n"
        "BEGIN;\n"
        "\\if :d = 0\n"
        "SELECT 1 / :d;\n"
        "\\elif :d = 1\n"
        f"INSERT INTO {unique_table} VALUES (:d);\n"
        "\\else\n"
        "SELECT :d;\n"
        "\\endif\n"
        "END;\n"
    )
    result = _run(
        seeded_dsn, files=[str(script)], mode=mode, driver=driver,
        concurrency=_clients(mode, 2), transactions=60, seed=8,
    )  # fmt: skip
    assert_ran_on(result, driver)
    assert result.ok + result.failed == 60 and result.ok > 0
    assert set(result.errors) == {"22012", "23505"}, result.errors
    assert sum(result.errors.values()) == result.failed
    assert result.error_examples["22012"] == f"{script}:4: division by zero"
    assert result.error_examples["23505"].startswith(
        f'{script}:6: duplicate key value violates unique constraint "{unique_table}_pkey"'
    )


# -- a value its type cannot take --------------------------------------------------

# (column, value): each fails on the server when sent as text, as pgbench
# sends it; SQLAlchemy's asyncpg dialect binds Python objects, so dbload
# converts them first and must fail them the same way
BAD_VALUES = [
    ("i4", "1.5"), ("i4", "3000000000"), ("i2", "40000"), ("i8", "12ab"), ("n", "abc"),
    ("f8", "abc"), ("b", "maybe"), ("d", "2024-13-01"), ("ts", "noon"), ("by", "\\xZZ"),
    ("by", "\\x012"),
]  # fmt: skip


@pytest.fixture
def typed_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE dbload_test_drivers_typed (i4 int4, i2 int2, i8 int8, n numeric,"
            " f8 float8, b bool, d date, ts timestamptz, by bytea)"
        )
    yield "dbload_test_drivers_typed"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_test_drivers_typed")


@pytest.mark.slow
def test_a_value_its_type_cannot_take_fails_alike_in_every_driver(
    seeded_dsn: str, typed_table: str, tmp_path: Path
) -> None:
    drivers = ["asyncpg", "psycopg", *SQLALCHEMY_DRIVERS]
    for column, value in BAD_VALUES:
        script = tmp_path / "bad.sql"
        script.write_text(f"INSERT INTO {typed_table} ({column}) VALUES (:v);\n")
        seen = {}
        for driver in drivers:
            result = _run(
                seeded_dsn, files=[str(script)], mode="async", driver=driver, concurrency=1,
                transactions=1, defines={"v": value},
            )  # fmt: skip
            seen[driver] = (result.errors, result.error_examples)
        assert len({repr(v) for v in seen.values()}) == 1, (column, value, seen)
        assert seen["psycopg"][0] != {}, (column, value)  # the server refused it
    with psycopg.connect(seeded_dsn) as conn:
        assert conn.execute(f"SELECT count(*) FROM {typed_table}").fetchone() == (0,)


# -- -M extended and prepared under SQLAlchemy (its Core path, no ORM) ---------------

NAMED = (
    "SELECT count(*) AS named FROM pg_prepared_statements \\gset\n"
    "INSERT INTO dbload_test_drivers_log VALUES (:named);\n"
)


@pytest.mark.parametrize("query_mode", ["prepared", "extended"])
@pytest.mark.parametrize(
    ("mode", "driver"),
    pairs([("threads", "sqlalchemy+psycopg"), *(("async", d) for d in SQLALCHEMY_DRIVERS)]),
)
@pytest.mark.slow
def test_sqlalchemy_runs_scripts_in_extended_and_prepared_mode(
    seeded_dsn: str, log_table: str, mode: str, driver: str, query_mode: str, tmp_path: Path
) -> None:
    """-M prepared leaves the statements prepared on the server, -M
    extended none: what pgbench's two modes do, through text() constructs."""
    script = tmp_path / "named.sql"
    script.write_text(NAMED)
    result = _run(
        seeded_dsn, files=[str(script)], mode=mode, driver=driver, concurrency=2,
        transactions=6, query_mode=query_mode,
    )  # fmt: skip
    assert_ran_on(result, driver)
    assert (result.ok, result.failed, result.query_mode) == (6, 0, query_mode)
    with psycopg.connect(seeded_dsn) as conn:
        named = {int(r[0]) for r in conn.execute(f"SELECT x FROM {log_table}")}
    if query_mode == "prepared":
        assert min(named) >= 1, named  # at least the statement counting them
    else:
        assert named == {0}


# -- a DSN asyncpg cannot honour, under SQLAlchemy -----------------------------------


@pytest.mark.parametrize("mode", ["async", "processes"])
def test_a_dsn_asyncpg_cannot_honour_is_refused_under_sqlalchemy(
    seeded_dsn: str, mode: str
) -> None:
    dsn = make_conninfo(seeded_dsn, keepalives="1")
    with pytest.raises(UsageError) as caught:
        _run(dsn, workload="select", mode=mode, driver="sqlalchemy", transactions=5)
    message = str(caught.value)
    assert message.startswith("SQLAlchemy on asyncpg"), message
    assert "parameter keepalives=1" in message and "--driver sqlalchemy+psycopg" in message
    assert "\n" not in message
    # on psycopg, under SQLAlchemy too, libpq takes it
    result = _run(dsn, workload="select", mode=mode, driver="sqlalchemy+psycopg", concurrency=2,
                  transactions=5)  # fmt: skip
    assert result.ok == 5


def test_cli_a_dsn_asyncpg_cannot_honour_under_sqlalchemy_is_one_line(seeded_dsn: str) -> None:
    dsn = make_conninfo(seeded_dsn, tcp_user_timeout="1000")
    code, _, err = _cli(
        "run", "--dsn", dsn, "-w", "select", "--mode", "async", "--driver", "sqlalchemy", "-n", "5"
    )
    _one_line_error(code, err, "SQLAlchemy on asyncpg", "tcp_user_timeout", "sqlalchemy+psycopg")
    assert code == 2
