"""Database resolution, redaction and the embedded server, on real servers."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psycopg
import pytest
import sqlalchemy
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import password_required
from dbload.database import embedded
from dbload.database.container import docker_available
from dbload.database.redact import redact
from dbload.database.resolve import Database, normalize_dsn, open_database, server_version
from dbload.errors import DatabaseError, UsageError

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"
SECRET = "s3cret-Pw"
ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("dsn", "kept"),
    [
        (f"postgresql://u:{SECRET}@h:5432/db", "postgresql://u:***@h:5432/db"),
        (f"postgres://u:{SECRET}@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        (f"postgresql+psycopg://u:{SECRET}@h/db", "postgresql+psycopg://u:***@h/db"),
        (f"postgresql+asyncpg://u:{SECRET}@h/db", "postgresql+asyncpg://u:***@h/db"),
        (f"POSTGRESQL://u:{SECRET}@h/db", "POSTGRESQL://u:***@h/db"),
        (f"postgresql://u:{SECRET}@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        (f"postgresql://u:{SECRET}@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        # unencoded '@' and '/' in a password: invalid, but the tail must not leak
        (f"postgresql://u:{SECRET}@x@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{SECRET}/x@h/db", "postgresql://u:***@h/db"),
        (f"host=h user=u password={SECRET} dbname=d", "host=h user=u password=*** dbname=d"),
        (f"host=h password = {SECRET} dbname=d", "host=h password = *** dbname=d"),
        (f"host=h password='{SECRET} x' dbname=d", "host=h password=*** dbname=d"),
        (f"host=h password='{SECRET} \\' x' dbname=d", "host=h password=*** dbname=d"),
        (f"host=h PASSWORD={SECRET}&x", "host=h PASSWORD=***"),
        (f"host=h password='{SECRET} unterminated", "host=h password=***"),
        (f"postgresql://u@h/db?password={SECRET}&x=1", "postgresql://u@h/db?password=***&x=1"),
        (f"postgresql://u@h/db?sslmode=disable&password={SECRET}", "&password=***"),
        (f"error near postgresql://u:{SECRET}@h/db: boom", "postgresql://u:***@h/db: boom"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:@/db?host=/tmp", "postgresql://u:@/db?host=/tmp"),
        ("not a dsn at all", "not a dsn at all"),
        ("", ""),
        ("://:@@::", "://:@@::"),
    ],
)
def test_redact_masks_every_password_shape(dsn: str, kept: str) -> None:
    shown = redact(dsn)
    assert SECRET not in shown
    assert kept in shown


def test_redact_never_raises_on_garbage() -> None:
    for garbage in ("\x00\xff", "password=" * 1000, "postgresql://" + ":" * 10_000 + "@", "'"):
        assert isinstance(redact(garbage), str)


def test_normalize_accepts_sqlalchemy_urls_and_rejects_garbage() -> None:
    assert normalize_dsn("postgresql+asyncpg://u@h/db") == "postgresql://u@h/db"
    assert normalize_dsn(" postgres+psycopg://u@h/db ") == "postgresql://u@h/db"
    assert normalize_dsn("host=h port=5432,5433 dbname=d") == "host=h port=5432,5433 dbname=d"
    for bad in (f"postgresql://u:{SECRET}@h:notaport/db", "a=b=c", "host", f"password={SECRET} x"):
        with pytest.raises(UsageError, match="malformed DSN") as info:
            normalize_dsn(bad)
        assert SECRET not in str(info.value)


def test_open_database_rejects_a_malformed_dsn_before_connecting() -> None:
    with (
        pytest.raises(UsageError, match="malformed DSN") as info,
        open_database("auto", f"postgresql://u:{SECRET}@h:port/db"),
    ):
        pass
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
        assert database.kind == "dsn" and database.dsn == seeded_dsn


def test_database_url_is_used_and_empty_counts_as_unset(
    seeded_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBLOAD_DSN", "")
    monkeypatch.setenv("DATABASE_URL", seeded_dsn)
    with open_database("dsn") as database:
        assert database.dsn == seeded_dsn


def test_sqlalchemy_style_database_url(seeded_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # DATABASE_URL often carries SQLAlchemy's +driver, which libpq refuses
    params = conninfo_to_dict(seeded_dsn)
    host, port = str(params.get("host", "")), params.get("port") or "5432"
    where = (
        f"/{params['dbname']}?host={host}"
        if host.startswith("/")
        else (f"{host}:{port}/{params['dbname']}")
    )
    password = params.get("password")
    who = f"{params['user']}:{quote(password)}" if password else params["user"]
    monkeypatch.delenv("DBLOAD_DSN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://{who}@{where}")
    with open_database() as database:
        assert database.dsn == f"postgresql://{who}@{where}"


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
    # port 1 on loopback: nothing listens, the kernel refuses at once
    message = _fails(f"postgresql://postgres:{SECRET}@127.0.0.1:1/x", "connection refused")
    assert message.startswith("cannot connect to postgresql://postgres:***@127.0.0.1:1/x")


def test_unreachable_socket_directory() -> None:
    _fails("postgresql://postgres@/x?host=/nonexistent-dbload-dir", "connection refused")


def test_unknown_role(seeded_dsn: str) -> None:
    params = conninfo_to_dict(seeded_dsn)
    dsn = make_conninfo(**{**params, "user": "dbload_no_such_role", "password": SECRET})
    _fails(dsn, "role 'dbload_no_such_role' does not exist")


def test_unknown_database(seeded_dsn: str) -> None:
    dsn = make_conninfo(seeded_dsn, dbname="dbload_no_such_db")
    _fails(dsn, "database 'dbload_no_such_db' does not exist")


def test_server_version(seeded_dsn: str) -> None:
    version = server_version(seeded_dsn)
    assert version[0].isdigit() and " " not in version
    with pytest.raises(DatabaseError, match="connection refused"):
        server_version(UNREACHABLE)


def test_wrong_password(hba_server: str) -> None:
    with psycopg.connect(hba_server, autocommit=True) as conn:
        conn.execute("CREATE ROLE dbload_pw_role LOGIN PASSWORD 'right-password'")
        try:
            with password_required(hba_server, "dbload_pw_role"):
                dsn = make_conninfo(hba_server, user="dbload_pw_role", password=SECRET)
                _fails(dsn, "authentication failed for user 'dbload_pw_role'")
                right = make_conninfo(hba_server, user="dbload_pw_role", password="right-password")
                with open_database("dsn", right) as database:
                    assert database.kind == "dsn" and "right-password" not in database.url
        finally:
            conn.execute("DROP ROLE dbload_pw_role")


def test_docker_probe_answers_quickly() -> None:
    # the probe must give up after its timeout, never hang a command
    started = time.monotonic()
    assert docker_available(timeout=1.0) in (True, False)
    assert time.monotonic() - started < 2.0


def test_container_path() -> None:
    if not docker_available():
        pytest.skip("no Docker engine answered within 1 s")
    with open_database("container") as database:
        assert database.kind == "container"
        with psycopg.connect(database.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        dsn = database.dsn
    with pytest.raises(psycopg.OperationalError):  # removed at exit
        psycopg.connect(dsn, connect_timeout=2)


def test_forced_container_without_docker() -> None:
    if docker_available():
        pytest.skip("a Docker engine answers here")
    with pytest.raises(DatabaseError, match="no Docker engine"), open_database("container"):
        pass


@pytest.fixture
def embedded_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated data directory, also as $DBLOAD_EMBEDDED_DIR; its server is
    stopped at the end. Outside pytest's basetemp, which a concurrent session
    may delete while our server runs."""
    root = Path(tempfile.mkdtemp(prefix="dbload-emb-"))
    pgdata = root / "pg"
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(pgdata))
    try:
        yield pgdata
    finally:
        embedded.stop(pgdata)
        shutil.rmtree(root, ignore_errors=True)


async def _asyncpg_select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def _pgbench() -> str | None:
    shipped = Path(embedded._library()._commands.POSTGRES_BIN_PATH) / "pgbench"
    return shutil.which("pgbench") or (str(shipped) if shipped.exists() else None)


def test_embedded_lifecycle(embedded_dir: Path) -> None:
    assert embedded.data_dir() == embedded_dir  # $DBLOAD_EMBEDDED_DIR wins
    assert not embedded.status().running and embedded.stop() is False
    first = embedded.start()
    assert first.running and first.pid
    assert first.url == f"postgresql://postgres@/dbload?host={embedded_dir}"
    assert embedded.status() == first
    assert embedded.start().pid == first.pid  # reused, not restarted
    with psycopg.connect(first.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert preload is not None and "pg_stat_statements" in preload[0]
    assert embedded.stop() is True
    stopped = embedded.status()
    assert not stopped.running and stopped.pid is None
    assert embedded.stop() is False
    again = embedded.start()
    assert again.pid != first.pid and again.url == first.url
    with psycopg.connect(again.url) as conn:  # the data directory is reused
        assert conn.execute("SELECT to_regclass('kept') IS NOT NULL").fetchone() == (True,)


def test_embedded_url_suits_every_client(embedded_dir: Path) -> None:
    url = embedded.start().url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("dbload",)
    assert asyncio.run(_asyncpg_select_one(url)) == 1
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    if (pgbench := _pgbench()) is None:
        pytest.skip("no pgbench binary to try the URL with")
    done = subprocess.run(
        [pgbench, "-i", "-s", "1", "-q", url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_open_database_stops_only_what_it_started(embedded_dir: Path) -> None:
    with open_database("embedded") as database:
        assert database.kind == "embedded" and embedded.status().running
    assert not embedded.status().running  # started here, so stopped here
    embedded.start()  # as `dbload db up` does
    with open_database("embedded"):
        pass
    assert embedded.status().running  # it was running before: left running


def test_docker_compose_matches_the_readme() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["postgres"]
    assert service["image"] == "postgres:17-alpine"
    env = service["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == ("dbload",) * 3
    assert "127.0.0.1:55432:5432" in service["ports"]
    assert "pg_isready" in " ".join(service["healthcheck"]["test"])
    documented = "postgresql://dbload:dbload@127.0.0.1:55432/dbload"
    assert documented in (ROOT / "README.md").read_text()
    params = conninfo_to_dict(documented)
    assert (params["user"], params["port"], params["dbname"]) == ("dbload", "55432", "dbload")
