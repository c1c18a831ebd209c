"""Passwords: every way libpq takes one works in every mode, and none leaks.

On a server that really asks for the password (scram, see ``hba_server``):
trust auth would accept any password and prove nothing.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import setproctitle
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import create_database, drop_database, password_required
from dbload.database.redact import hide_password_in_title
from dbload.database.resolve import LIBPQ_ENV
from dbload.schema.seed import ensure_ready
from test_cli import _cli, _one_line_error, _script, _subprocess

ROLE = "dbload_secret_role"
# ':', '@' and '/' must be escaped in a URI and in .pgpass: each form is tried.
SECRET = "pw:zebra@crane/heron-swift"
# A leak may be partial (a mask that stops at the wrong '@'): look for every
# word, and for the URI-encoded form. A chance match of a 5-letter word in
# the base64 histogram of the JSON file is a one in a million event.
LEAKS = (SECRET, quote(SECRET, safe=""), "zebra", "crane", "heron", "swift")
MODES = ("sequential", "threads", "async")


def _leaks(text: str) -> list[str]:
    return [word for word in LEAKS if word in text]


@pytest.fixture(scope="module")
def role_dsn(hba_server: str) -> Iterator[str]:
    """A seeded database owned by ROLE, who logs in only with SECRET; its DSN
    without a password."""
    admin = psycopg.connect(hba_server, autocommit=True)
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(ROLE), sql.Literal(SECRET)
        )
    )
    database = create_database(hba_server)
    name = str(conninfo_to_dict(database)["dbname"])
    try:
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(ROLE)
            )
        )
        with password_required(hba_server, ROLE):
            dsn = make_conninfo(database, user=ROLE)
            # the control: without the password the server says no
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(make_conninfo(dsn, passfile="/nonexistent"), connect_timeout=5)
            ensure_ready(make_conninfo(dsn, password=SECRET))
            yield dsn
    finally:
        drop_database(hba_server, database)
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        admin.close()


def _uri(dsn: str, password: str | None = None) -> str:
    """``dsn`` as a postgresql:// URI; a socket directory goes in ``?host=``."""
    params = conninfo_to_dict(dsn)
    who = quote(str(params["user"]), safe="")
    if password is not None:
        who += ":" + quote(password, safe="")
    host, port = str(params.get("host") or ""), str(params.get("port") or "5432")
    database = quote(str(params["dbname"]), safe="")
    if host.startswith("/"):
        return f"postgresql://{who}@/{database}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{who}@{host}:{port}/{database}"


def _pgpass_line(dsn: str) -> str:
    """The .pgpass line libpq documents for ``dsn``: a unix socket is named
    by its directory."""
    params = conninfo_to_dict(dsn)

    def field(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    parts = (params.get("host") or "localhost", params.get("port") or "5432")
    parts += (params["dbname"], params["user"], SECRET)
    return ":".join(field(p) for p in parts) + "\n"


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)  # libpq and asyncpg ignore a password file others may read
    return path


def _password_source(source: str, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Give SECRET to dbload the ``source`` way; returns the DSN to run with."""
    for name in ("PGPASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass but ours
    if source == "uri":
        return _uri(dsn, SECRET)
    if source == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", SECRET)
        return _uri(dsn)
    if source == "~/.pgpass":
        _private_file(tmp_path / ".pgpass", _pgpass_line(dsn))
        return _uri(dsn)
    assert source == "passfile="
    passfile = _private_file(tmp_path / "elsewhere.pgpass", _pgpass_line(dsn))
    return make_conninfo(dsn, passfile=str(passfile))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", ["uri", "PGPASSWORD", "~/.pgpass", "passfile="])
@pytest.mark.slow
def test_every_password_source_works_in_every_mode(
    role_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, mode: str
) -> None:
    dsn = _password_source(source, role_dsn, tmp_path, monkeypatch)
    code, out, err = _cli("run", "--mode", mode, "-c", "2", "-n", "20", "--dsn", dsn)
    assert code == 0, err
    assert "20 ok, 0 failed" in out
    assert not _leaks(out + err)


@pytest.mark.parametrize("mode", MODES)
def test_libpq_environment_and_its_password_work_in_every_mode(
    role_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # psql's way: no --dsn, the server and the password in PG* variables
    for name in ("DBLOAD_DSN", "DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(tmp_path / "embedded"))
    params = conninfo_to_dict(role_dsn)
    monkeypatch.setenv("PGHOST", str(params.get("host") or "localhost"))
    monkeypatch.setenv("PGPORT", str(params.get("port") or "5432"))
    monkeypatch.setenv("PGDATABASE", str(params["dbname"]))
    monkeypatch.setenv("PGUSER", ROLE)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    code, out, err = _cli("run", "--mode", mode, "-c", "2", "-n", "20")
    assert code == 0, err
    assert "20 ok, 0 failed" in out
    assert f"dbname={params['dbname']}" in out + err  # the database line names it
    assert not _leaks(out + err)
    assert not (tmp_path / "embedded").exists()  # no embedded server instead


@pytest.mark.parametrize("mode", MODES)
def test_no_password_is_a_clear_error(
    role_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    code, _, err = _cli("run", "--mode", mode, "-n", "5", "--dsn", _uri(role_dsn))
    _one_line_error(code, err, "the server wants a password", "PGPASSWORD")


def _grep_everything(proc_out: str, proc_err: str, root: Path) -> None:
    """The password is in no output and in no file under ``root``."""
    assert not _leaks(proc_out), proc_out
    assert not _leaks(proc_err), proc_err
    for path in root.rglob("*"):
        if path.is_file():
            assert not _leaks(path.read_text(errors="replace")), path


def _start(args: list[str], **popen: Any) -> tuple[subprocess.Popen[str], str]:
    """``dbload run ARGS`` in the background, once it has printed the line
    naming the database (connected, the data set ready); and what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
    )  # fmt: skip
    assert proc.stderr is not None  # the database line is chatter: stderr
    printed = ""
    while not printed.endswith("\n") or not printed.splitlines()[-1].startswith("database:"):
        line = proc.stderr.readline()
        if not line:
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the run did not start: {printed}{err}")
        printed += line
    return proc, printed


def _kill_backends(server: str) -> int:
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
            [ROLE],
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_no_password_in_output_or_files_of_a_run_with_faults(
    role_dsn: str, hba_server: str, tmp_path: Path, mode: str
) -> None:
    """A run with --json and --progress whose connections are killed midway:
    the report, the progress lines, the JSON file and HOME hold no password."""
    home, out_dir = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    out_dir.mkdir()
    out_file = out_dir / "r.json"
    proc, first = _start(
        ["--mode", mode, "-c", "2", "-T", "3", "--progress", "1", "--json", str(out_file),
         "--dsn", _uri(role_dsn, SECRET)],
        cwd=out_dir, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    try:
        time.sleep(1.2)
        assert _kill_backends(hba_server) >= 1
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    err = first + err  # the database and progress lines are chatter: stderr
    assert err.count("progress:") >= 2 and "tps" in out
    data = json.loads(out_file.read_text())
    assert data["transactions"]["failed"] >= 1  # the kill was seen, and counted
    _grep_everything(out, err, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("script", "needle", "exit_code"),
    [
        ("\\set d random(0, 1)\nSELECT 1 / :d;\n", "--max-errors", 1),  # fails at run time
        ("SELECT * FROM nosuchtable;\n", "nosuchtable", 2),  # fails when prepared
    ],
)
def test_no_password_when_the_script_fails(
    role_dsn: str, tmp_path: Path, mode: str, script: str, needle: str, exit_code: int
) -> None:
    path = _script(tmp_path, "bad.sql", script)
    out_file = tmp_path / "r.json"
    proc = _subprocess(
        "run", "--mode", mode, "-c", "2", "-n", "10000", "-f", path, "--max-errors", "3",
        "--json", str(out_file), "--dsn", _uri(role_dsn, SECRET),
        env={"HOME": str(tmp_path)},
    )  # fmt: skip
    _one_line_error(proc.returncode, proc.stderr, needle)
    assert proc.returncode == exit_code
    _grep_everything(proc.stdout, proc.stderr, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"dbname": "dbload_no_such_db"}, "does not exist"),
        ({"password": SECRET.upper()}, "authentication failed for user"),
    ],
)
def test_no_password_when_the_connection_fails(
    role_dsn: str, tmp_path: Path, change: dict[str, str], needle: str
) -> None:
    params = {**conninfo_to_dict(role_dsn), **change}
    dsn = _uri(make_conninfo(**params), params.get("password", SECRET))
    proc = _subprocess(
        "run", "-n", "5", "--json", str(tmp_path / "r.json"), "--dsn", dsn,
        env={"HOME": str(tmp_path)},
    )  # fmt: skip
    _one_line_error(proc.returncode, proc.stderr, needle)
    assert not (tmp_path / "r.json").exists()
    wrong = SECRET.upper()
    assert wrong not in proc.stderr and quote(wrong, safe="") not in proc.stderr
    _grep_everything(proc.stdout, proc.stderr, tmp_path)


def _sessions(server: str, at_least: int) -> list[str]:
    """ROLE's rows of pg_stat_activity, every column, once there are enough."""
    deadline = time.monotonic() + 10
    with psycopg.connect(server, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT to_jsonb(a)::text FROM pg_stat_activity a WHERE usename = %s", [ROLE]
            ).fetchall()
            if len(rows) >= at_least or time.monotonic() > deadline:
                return [row[0] for row in rows]
            time.sleep(0.05)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="no /proc to read")
@pytest.mark.parametrize("form", ["uri", "key=value"])
def test_process_title_and_server_hide_the_password(
    role_dsn: str, hba_server: str, form: str
) -> None:
    """What other local users see while a run goes on: ps and /proc show the
    command line, the server shows its sessions; neither has the password."""
    dsn = _uri(role_dsn, SECRET) if form == "uri" else make_conninfo(role_dsn, password=SECRET)
    proc, first = _start(["-T", "3", "-c", "2", "--dsn", dsn])
    try:
        shown = _cmdline(proc.pid)
        assert "--dsn" in shown and "***" in shown, shown
        assert not _leaks(shown), shown
        # the rename leaves the process name (pgrep, top) as it was
        comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
        assert comm == Path(sys.executable).name[:15]
        # environ is the user's own business: only the owner may read it
        assert stat.S_IMODE(os.stat(f"/proc/{proc.pid}/environ").st_mode) == 0o400
        sessions = _sessions(hba_server, at_least=2)
        assert len(sessions) >= 2, sessions  # the two workers at least
        for session in sessions:
            assert not _leaks(session), session
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert not _leaks(first + out + err)


def test_title_left_alone_when_main_is_given_argv() -> None:
    # an embedding program's (here pytest's) command line is not dbload's to rename
    before = setproctitle.getproctitle()
    hide_password_in_title(["run", "--dsn", f"postgresql://u:{quote(SECRET, safe='')}@h/db"])
    assert setproctitle.getproctitle() == before


def test_title_left_alone_when_nothing_to_hide(monkeypatch: pytest.MonkeyPatch) -> None:
    before = setproctitle.getproctitle()
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "dbload", "run", "-n", "5"])
    hide_password_in_title(None)
    assert setproctitle.getproctitle() == before
