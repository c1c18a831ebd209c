"""One session-scoped database for the whole suite, on a real server.

The server is, in order: ``$DBLOAD_TEST_DSN`` (CI sets it to the machine's
127.0.0.1:5432), a testcontainers PostgreSQL when a Docker engine answers,
else the embedded server in a temporary data directory. On it the session
creates a fresh database and drops it at the end, so the suite leaves the
server as it found it. With no server at all, database tests are skipped
with the reason; a ``$DBLOAD_TEST_DSN`` that does not answer is an error
(CI asked for that server: skipping would turn a broken setup green).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.database import embedded
from dbload.database.container import docker_available, postgres_container
from dbload.database.redact import redact
from dbload.errors import DatabaseError
from dbload.measure.comparison import Comparison
from dbload.schema.seed import ensure_ready

pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs a user's suite

TEST_DB_PREFIX = "dbload_test_"

# Hypothesis keeps a folder of its own (constants it read, examples) in the
# working directory whatever a test's settings say: a temporary one instead,
# so that a run leaves the work tree as it found it.
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="dbload-hypothesis-"))

# The suite's unreachable DSNs (port 1) must fail at once, not after the 30 s
# a server still starting is given; tests/test_wait.py sets its own timeouts.
os.environ.setdefault("DBLOAD_CONNECT_TIMEOUT", "0")


def with_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at another database of the same server."""
    return make_conninfo(dsn, dbname=dbname)


def _usable(dsn: str) -> str | None:
    """None when ``dsn`` lets us create databases, else why not."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None if row and row[0] else "the role may not create databases"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A DSN of a real server, with rights to create databases."""
    if dsn := os.environ.get("DBLOAD_TEST_DSN", "").strip():  # blank: unset
        if (why := _usable(dsn)) is not None:
            pytest.fail(f"$DBLOAD_TEST_DSN={redact(dsn)} is not usable: {redact(why)}")
        yield dsn
        return
    # .ci/run's embedded pass sets "embedded": a running engine must not
    # silently turn it into a container pass (tests/test_container.py is that).
    if os.environ.get("DBLOAD_TEST_SERVER", "").strip() != "embedded" and docker_available():
        try:
            with postgres_container() as url:
                yield url
            return
        except DatabaseError:  # engine up but no image (offline): try embedded
            pass
    # Not under pytest's basetemp: pytest deletes old basetemp dirs, which
    # would pull the data directory from under a concurrent session's server.
    root = Path(tempfile.mkdtemp(prefix="dbload-test-"))
    pgdata = root / "pg"
    try:
        server = embedded.start(pgdata)
    except DatabaseError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no PostgreSQL: $DBLOAD_TEST_DSN unset, no Docker engine, and {exc}")
    try:
        yield server.url
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip the test when no Docker engine answers, with the reason; under
    $DBLOAD_TEST_REQUIRE_ENGINE (CI's container pass) fail instead: there a
    missing engine is a broken setup, not a machine without Docker."""
    if docker_available():
        return
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    why = f"no Docker engine answered within 1 s at {where}"
    if os.environ.get("DBLOAD_TEST_REQUIRE_ENGINE", "").strip():
        pytest.fail(f"{why}, and $DBLOAD_TEST_REQUIRE_ENGINE is set")
    pytest.skip(why)


@pytest.fixture(scope="session")
def hba_server(pg_server: str) -> Iterator[str]:
    """A server whose pg_hba.conf tests may change: the session's own
    embedded server, else a private one (the 5432 server and containers are
    not ours to reconfigure, and trust auth accepts any password)."""
    with psycopg.connect(pg_server) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
    if hba.is_relative_to(tempfile.gettempdir()) and hba.exists():
        yield pg_server
        return
    root = Path(tempfile.mkdtemp(prefix="dbload-hba-"))
    try:
        yield embedded.start(root / "pg").url
    except DatabaseError as exc:
        pytest.skip(f"no server whose pg_hba.conf we may change: {exc}")
    finally:
        embedded.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def password_required(server: str, role: str) -> Iterator[None]:
    """In the block, ``role`` must give its password (scram) to log in to
    ``server``, an ``hba_server``; pg_hba.conf is restored after it."""
    with psycopg.connect(server, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        original = hba.read_text()
        try:
            hba.write_text(
                f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n" + original
            )
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)  # the postmaster rereads the file asynchronously
            yield
        finally:
            hba.write_text(original)
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)


def create_database(server: str) -> str:
    """A new, empty database ``dbload_test_<random>`` on ``server``; its DSN."""
    name = f"{TEST_DB_PREFIX}{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server, name)


def drop_database(server: str, dsn: str) -> None:
    """Drop a database made by :func:`create_database`, even with sessions open."""
    name = conninfo_to_dict(dsn)["dbname"]
    assert str(name).startswith(TEST_DB_PREFIX), "only ever drop the suite's own databases"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


@pytest.fixture(scope="session")
def dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for this session."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture(scope="session")
def seeded_dsn(dsn: str) -> str:
    """The session database with pgbench's schema at scale 1.

    Tests that write restore what they changed (see ``restore_balances``)."""
    ensure_ready(dsn)
    return dsn


@pytest.fixture
def scratch_dsn(pg_server: str) -> Iterator[str]:
    """An empty database of its own, for tests that need to start from nothing."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture
def make_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """A factory of extra empty databases, all dropped when the test ends."""
    made: list[str] = []

    def make() -> str:
        made.append(create_database(pg_server))
        return made[-1]

    yield make
    for url in made:
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


@pytest.fixture(scope="session")
def small_comparison(seeded_dsn: str) -> Comparison:
    """Real runs for the report tests, as ``dbload compare`` makes them: the
    select workload, 200 transactions and the same seed in every cell;
    sequential, threads, and async at two concurrencies (a small sweep)."""
    from dbload.api import prepare_options, run_on
    from dbload.database.resolve import Database

    runs = []
    for mode, clients in (("sequential", 1), ("threads", 4), ("async", 2), ("async", 4)):
        options = prepare_options(
            workload="select", mode=mode, concurrency=clients, transactions=200, seed=11
        )
        runs.append(run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options))
    return Comparison.of(runs)


@pytest.fixture(scope="session")
def drivers_comparison(seeded_dsn: str) -> Comparison:
    """``dbload compare --modes sequential,threads,async --drivers
    psycopg,asyncpg -c 2 -n 200``, through the public API: sequential,
    threads and async on psycopg, async on asyncpg too (the driver axis)."""
    from dbload.api import compare

    return compare(
        "select",
        modes=["sequential", "threads", "async"],
        drivers=["psycopg", "asyncpg"],
        concurrency=2,
        transactions=200,
        seed=11,
        dsn=seeded_dsn,
    )
