"""Database resolution, redaction and the embedded server, on real servers."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg
import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbload.database import embedded
from dbload.database.container import docker_available
from dbload.database.redact import redact
from dbload.database.resolve import Database, normalize_dsn, open_database
from dbload.errors import DatabaseError, UsageError

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"
SECRET = "s3cret-Pw"


@pytest.mark.parametrize(
    ("dsn", "kept"),
    [
        (f"postgresql://u:{SECRET}@h:5432/db", "postgresql://u:***@h:5432/db"),
        (f"postgres://u:{SECRET}@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        (f"postgresql+psycopg://u:{SECRET}@h/db", "postgresql+psycopg://u:***@h/db"),
        (f"host=h user=u password={SECRET} dbname=d", "host=h user=u password=*** dbname=d"),
        (f"host=h password='{SECRET} x' dbname=d", "host=h password=*** dbname=d"),
        (f"postgresql://u@h/db?password={SECRET}&x=1", "postgresql://u@h/db?password=***&x=1"),
        (f"error near postgresql://u:{SECRET}@h/db: boom", "postgresql://u:***@h/db: boom"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:@/db?host=/tmp", "postgresql://u:@/db?host=/tmp"),
        ("not a dsn at all", "not a dsn at all"),
    ],
)
def test_redact_masks_every_password_shape(dsn: str, kept: str) -> None:
    shown = redact(dsn)
    assert SECRET not in shown
    assert kept in shown


def test_normalize_accepts_sqlalchemy_urls_and_rejects_garbage() -> None:
    assert normalize_dsn("postgresql+asyncpg://u@h/db") == "postgresql://u@h/db"
    for bad in (f"postgresql://u:{SECRET}@h:notaport/db", "a=b=c", "host"):
        with pytest.raises(UsageError, match="malformed DSN") as info:
            normalize_dsn(bad)
        assert SECRET not in str(info.value)


def test_database_never_shows_its_password(seeded_dsn: str) -> None:
    params = conninfo_to_dict(seeded_dsn)
    database = Database("dsn", make_conninfo(**{**params, "password": SECRET}))
    assert SECRET not in repr(database) and SECRET not in database.url


def test_explicit_dsn_beats_environment(seeded_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBLOAD_DSN", UNREACHABLE)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    with open_database("auto", seeded_dsn) as database:
        assert database.kind == "dsn" and database.dsn == seeded_dsn


def test_dbload_dsn_beats_database_url(seeded_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBLOAD_DSN", seeded_dsn)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE)
    with open_database() as database:
        assert database.dsn == seeded_dsn


def test_database_url_is_used_and_empty_counts_as_unset(
    seeded_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_DSN", "")
    monkeypatch.setenv("DATABASE_URL", seeded_dsn)
    with open_database() as database:
        assert database.dsn == seeded_dsn


def test_db_dsn_without_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBLOAD_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(UsageError, match="--db dsn needs"), open_database("dsn"):
        pass


def test_unknown_choice() -> None:
    with pytest.raises(UsageError, match="unknown --db 'cloud'"), open_database("cloud"):
        pass


def _fails(dsn: str, pattern: str) -> str:
    with pytest.raises(DatabaseError, match=pattern) as info, open_database("dsn", dsn):
        pass
    message = str(info.value)
    assert "\n" not in message and SECRET not in message
    return message


def test_unreachable_server() -> None:
    _fails(f"postgresql://postgres:{SECRET}@127.0.0.1:1/x", "connection refused")


def test_unknown_role(seeded_dsn: str) -> None:
    params = conninfo_to_dict(seeded_dsn)
    dsn = make_conninfo(**{**params, "user": "dbload_no_such_role", "password": SECRET})
    _fails(dsn, "role 'dbload_no_such_role' does not exist")


def test_unknown_database(seeded_dsn: str) -> None:
    dsn = make_conninfo(seeded_dsn, dbname="dbload_no_such_db")
    _fails(dsn, "database 'dbload_no_such_db' does not exist")


def test_wrong_password(pg_server: str) -> None:
    """Needs a server whose pg_hba.conf we may change: the embedded one the
    session started. Trust auth elsewhere accepts any password."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        if not hba.is_relative_to(tempfile.gettempdir()) or not hba.exists():
            pytest.skip("only the session's own embedded server has a pg_hba.conf we may edit")
        original = hba.read_text()
        conn.execute("CREATE ROLE dbload_pw_role LOGIN PASSWORD 'right-password'")
        try:
            hba.write_text("local all dbload_pw_role scram-sha-256\n" + original)
            conn.execute("SELECT pg_reload_conf()")
            time.sleep(0.2)
            dsn = make_conninfo(pg_server, user="dbload_pw_role", password=SECRET)
            _fails(dsn, "authentication failed for user 'dbload_pw_role'")
        finally:
            hba.write_text(original)
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("DROP ROLE dbload_pw_role")


def test_docker_probe_answers_quickly() -> None:
    # the probe must give up after its timeout, never hang a command
    started = time.monotonic()
    docker_available(timeout=1.0)
    assert time.monotonic() - started < 5.0


def test_container_path(monkeypatch: pytest.MonkeyPatch) -> None:
    if not docker_available():
        pytest.skip("no Docker engine answered within 1 s")
    with open_database("container") as database:
        assert database.kind == "container"
        with psycopg.connect(database.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


async def _asyncpg_select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@pytest.mark.slow
def test_embedded_lifecycle(tmp_path: Path) -> None:
    pgdata = tmp_path / "pg"
    try:
        first = embedded.start(pgdata)
        assert first.running and first.pid and first.url.startswith("postgresql://postgres@/dbload")
        assert embedded.start(pgdata).pid == first.pid  # reused, not restarted
        with psycopg.connect(first.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
        assert asyncio.run(_asyncpg_select_one(first.url)) == 1
        assert embedded.stop(pgdata) is True
        assert not embedded.status(pgdata).running
        assert embedded.stop(pgdata) is False
        again = embedded.start(pgdata)
        assert again.pid != first.pid
        with psycopg.connect(again.url) as conn:  # the data directory is reused
            assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)
    finally:
        embedded.stop(pgdata)


@pytest.mark.slow
def test_open_database_stops_only_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(tmp_path / "pg"))
    try:
        with open_database("embedded") as database:
            assert database.kind == "embedded" and embedded.status().running
        assert not embedded.status().running  # started here, so stopped here
        embedded.start()  # as `dbload db up` does
        with open_database("embedded"):
            pass
        assert embedded.status().running  # it was running before: left running
    finally:
        embedded.stop()


def test_docker_compose_matches_the_readme() -> None:
    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    service = compose["services"]["postgres"]
    env = service["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == ("dbload",) * 3
    assert "127.0.0.1:55432:5432" in service["ports"]
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "postgresql://dbload:dbload@127.0.0.1:55432/dbload" in readme
