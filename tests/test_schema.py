"""Migrations and the demo data set, compared with pgbench -i itself."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from conftest import create_database, drop_database
from dbload.errors import UsageError
from dbload.schema.migrate import migrate
from dbload.schema.seed import current_scale, ensure_ready, seed

TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrate_creates_pgbench_tables_and_is_idempotent(scratch_dsn: str) -> None:
    migrate(scratch_dsn)
    assert _tables(scratch_dsn) == {*TABLES, "alembic_version"}
    migrate(scratch_dsn)
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]


def test_current_scale_of_an_empty_database(scratch_dsn: str) -> None:
    assert current_scale(scratch_dsn) is None
    migrate(scratch_dsn)
    assert current_scale(scratch_dsn) is None


def test_seed_is_idempotent_and_reloads_on_demand(scratch_dsn: str) -> None:
    migrate(scratch_dsn)
    first = seed(scratch_dsn, 1)
    assert (first.skipped, first.rows) == (False, 100_011)
    assert seed(scratch_dsn, 1).skipped
    assert not seed(scratch_dsn, 1, force=True).skipped
    assert seed(scratch_dsn, 2).rows == 200_022
    assert current_scale(scratch_dsn) == 2


def test_scale_zero_is_refused(scratch_dsn: str) -> None:
    with pytest.raises(UsageError, match="at least 1"):
        seed(scratch_dsn, 0)


def test_ensure_ready_migrates_and_seeds_once(scratch_dsn: str) -> None:
    assert ensure_ready(scratch_dsn) == 1
    assert current_scale(scratch_dsn) == 1
    assert ensure_ready(scratch_dsn) == 1


@pytest.fixture
def pgbench_dsn(pg_server: str) -> Iterator[str]:
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


FINGERPRINT = """
SELECT (SELECT (count(*), sum(aid), sum(bid), sum(abalance), max(length(filler)))::text
          FROM pgbench_accounts),
       (SELECT (count(*), sum(tid), sum(bid), sum(tbalance))::text FROM pgbench_tellers),
       (SELECT (count(*), sum(bid), sum(bbalance))::text FROM pgbench_branches),
       (SELECT count(*) FROM pgbench_history)
"""

COLUMNS = """
SELECT table_name, column_name, data_type, character_maximum_length, is_nullable
  FROM information_schema.columns
 WHERE table_name LIKE 'pgbench_%' AND table_schema = current_schema()
 ORDER BY 1, 2
"""

KEYS = """
SELECT conrelid::regclass::text, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text LIKE 'pgbench_%'
 ORDER BY 1
"""


def _describe(dsn: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute(FINGERPRINT).fetchone(),
            conn.execute(COLUMNS).fetchall(),
            conn.execute(KEYS).fetchall(),
        )


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="pgbench is not on PATH")
def test_seed_loads_the_same_rows_as_pgbench_init(scratch_dsn: str, pgbench_dsn: str) -> None:
    subprocess.run(
        ["pgbench", "-i", "-s", "1", "-q", pgbench_dsn],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ensure_ready(scratch_dsn)
    assert _describe(scratch_dsn) == _describe(pgbench_dsn)


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="pgbench is not on PATH")
def test_dbload_adopts_a_database_pgbench_initialised(pgbench_dsn: str) -> None:
    subprocess.run(
        ["pgbench", "-i", "-s", "1", "-q", pgbench_dsn],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert ensure_ready(pgbench_dsn) == 1
    assert seed(pgbench_dsn, 1).skipped
