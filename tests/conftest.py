"""One session-scoped database for the whole suite, on a real server.

The server is, in order: ``$DBLOAD_TEST_DSN`` (CI sets it to the machine's
127.0.0.1:5432), a testcontainers PostgreSQL when a Docker engine answers,
else the embedded server in a temporary data directory. On it the session
creates a fresh database and drops it at the end, so the suite leaves the
server as it found it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.database import embedded
from dbload.database.container import docker_available, postgres_container
from dbload.schema.seed import ensure_ready


def with_database(dsn: str, dbname: str) -> str:
    return make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A DSN with rights to create databases."""
    if dsn := os.environ.get("DBLOAD_TEST_DSN"):
        yield dsn
    elif docker_available():
        with postgres_container() as url:
            yield url
    else:
        # Not under pytest's basetemp: pytest deletes old basetemp dirs, which
        # would pull the data directory from under a concurrent session's server.
        root = Path(tempfile.mkdtemp(prefix="dbload-test-"))
        pgdata = root / "pg"
        server = embedded.start(pgdata)
        try:
            yield server.url
        finally:
            embedded.stop(pgdata)
            shutil.rmtree(root, ignore_errors=True)


def create_database(server: str) -> str:
    name = f"dbload_test_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server, name)


def drop_database(server: str, dsn: str) -> None:
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for this session."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture(scope="session")
def seeded_dsn(dsn: str) -> str:
    """The session database with pgbench's schema at scale 1.

    Tests that write restore what they changed."""
    ensure_ready(dsn)
    return dsn


@pytest.fixture
def scratch_dsn(pg_server: str) -> Iterator[str]:
    """An empty database of its own, for tests that need to start from nothing."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture
def restore_balances(seeded_dsn: str) -> Iterator[None]:
    """For tests that write (tpcb): put the data back as pgbench -i left it."""
    yield
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgbench_accounts SET abalance = 0 WHERE abalance <> 0")
        conn.execute("UPDATE pgbench_tellers SET tbalance = 0 WHERE tbalance <> 0")
        conn.execute("UPDATE pgbench_branches SET bbalance = 0 WHERE bbalance <> 0")
        conn.execute("TRUNCATE pgbench_history")
