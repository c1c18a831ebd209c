"""Waiting for a server that is still starting (dbload.database.wait), on real servers.

A PostgreSQL 15 cluster of our own (pg_ctl on a temporary data directory and
a free port) is started while dbload waits; a standby with hot_standby=off
answers 57P03 until it is promoted (or for ever); a relay on a free port
accepts and closes connections, as Docker's port proxy does while the
container's server is not up yet, before it relays to the real server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conftest import password_required, with_database
from dbload.database.resolve import open_database
from dbload.database.wait import DEFAULT_CONNECT_TIMEOUT_S, connect_timeout_s, is_starting
from dbload.errors import DatabaseError, UsageError

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"  # the OS user that runs the cluster when we are root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A PostgreSQL 15 data directory of our own; started and stopped with pg_ctl."""

    data: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(_as_owner(command), check=True, capture_output=True, timeout=60)

    def start(self, *settings: str) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {s}" for s in settings)
        log = str(self.data.parent / "log")
        self.pg_ctl("-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.pg_ctl("-m", "immediate", "stop")


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", PG_USER, "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def cluster_dir() -> Iterator[Path]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL 15 binaries in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="dbload-wait-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, PG_USER)
        initdb = [str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust"]
        subprocess.run(_as_owner(initdb), check=True, capture_output=True, timeout=120)
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(cluster_dir: Path) -> Iterator[Cluster]:
    """The module's cluster, stopped, on a port nobody listens on yet."""
    found = Cluster(cluster_dir, free_port())
    try:
        yield found
    finally:
        found.stop()
        (cluster_dir / "standby.signal").unlink(missing_ok=True)


def _later(seconds: float, action: object) -> threading.Timer:
    timer = threading.Timer(seconds, action)  # type: ignore[arg-type]
    timer.start()
    return timer


class Told:
    """The ``on_wait`` messages a call made; ``then`` is started (in a
    thread) at the first: the server comes up once dbload waits for it."""

    def __init__(self, then: Callable[[], object] | None = None) -> None:
        self.messages: list[str] = []
        self.then = then
        self.thread: threading.Thread | None = None

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        if self.then is not None and self.thread is None:
            self.thread = threading.Thread(target=self.then)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


# --- the timeout itself ---------------------------------------------------


def test_connect_timeout_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBLOAD_CONNECT_TIMEOUT", raising=False)
    assert connect_timeout_s() == DEFAULT_CONNECT_TIMEOUT_S == 30
    assert connect_timeout_s(2.5) == 2.5
    monkeypatch.setenv("DBLOAD_CONNECT_TIMEOUT", "7")
    assert connect_timeout_s() == 7
    assert connect_timeout_s(0) == 0  # the option wins over the environment
    monkeypatch.setenv("DBLOAD_CONNECT_TIMEOUT", " ")
    assert connect_timeout_s() == 30  # blank counts as unset


@pytest.mark.parametrize("value", ["-1", "soon", "nan"])
def test_bad_connect_timeout_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DBLOAD_CONNECT_TIMEOUT", value)
    with pytest.raises(UsageError, match=r"\$DBLOAD_CONNECT_TIMEOUT must be"):
        connect_timeout_s()


@pytest.mark.slow
def test_bad_connect_timeout_option_is_a_usage_error() -> None:
    code, err = _dbload("seed", "--dsn", "postgresql://x@127.0.0.1:1/x", "--connect-timeout", "-1")
    assert code == 2
    assert err.strip() == "dbload: error: --connect-timeout must be 0 or more seconds, got -1"


# --- what is waited for, and what is not ------------------------------------


@pytest.mark.slow
def test_a_server_started_while_dbload_waits_is_used(cluster: Cluster) -> None:
    told = Told(then=cluster.start)
    try:
        with (
            open_database("dsn", cluster.dsn, connect_timeout=60, on_wait=told) as database,
            psycopg.connect(database.dsn) as conn,
        ):
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        told.join()
    assert len(told.messages) == 1
    assert told.messages[0] == (
        f"waiting for the server at {cluster.dsn} (connection refused), up to 60 s…"
    )


@pytest.mark.slow
def test_a_server_answering_57P03_is_waited_for_until_it_accepts(cluster: Cluster) -> None:
    """A standby with hot_standby=off says "the database system is not
    accepting connections" (57P03) until it is promoted."""
    (cluster.data / "standby.signal").touch()
    if os.geteuid() == 0:
        shutil.chown(cluster.data / "standby.signal", PG_USER)
    cluster.start("hot_standby=off")
    with pytest.raises(psycopg.OperationalError, match="not accepting connections") as refused:
        psycopg.connect(cluster.dsn)
    assert is_starting(refused.value)
    told = Told(then=lambda: cluster.pg_ctl("-W", "promote"))
    try:
        with open_database("dsn", cluster.dsn, connect_timeout=60, on_wait=told) as database:
            assert database.kind == "dsn"
    finally:
        told.join()
    assert told.messages == [
        f"waiting for the server at {cluster.dsn}"
        " (the database system is not accepting connections), up to 60 s…"
    ]


@pytest.mark.slow
def test_a_port_that_closes_connections_then_relays_is_waited_for(dsn: str) -> None:
    """Docker's port proxy accepts and closes ("server closed the connection
    unexpectedly") until the container's server listens."""
    target = conninfo_to_dict(dsn)
    if str(target.get("host") or "/").startswith("/"):
        pytest.skip("the test server is on a unix socket: nothing to relay over TCP")
    with relay(str(target.get("host") or "127.0.0.1"), int(target.get("port") or 5432)) as r:
        proxied = make_conninfo(dsn, host="127.0.0.1", port=str(r.port))
        with pytest.raises(psycopg.OperationalError, match="closed the connection"):
            psycopg.connect(proxied, connect_timeout=5)
        told = Told(then=r.ready.set)
        try:
            with open_database("dsn", proxied, connect_timeout=60, on_wait=told):
                pass
        finally:
            told.join()
    assert len(told.messages) == 1
    assert "(it closed the connection)" in told.messages[0]


@pytest.mark.slow
def test_a_server_that_never_comes_up_times_out_clearly(cluster: Cluster) -> None:
    code, err = _dbload("run", "--dsn", cluster.dsn, "-n", "5", "--connect-timeout", "1")
    assert code == 3
    lines = err.strip().splitlines()
    assert lines == [
        f"waiting for the server at {cluster.dsn} (connection refused), up to 1 s…",
        f"dbload: error: cannot connect to {cluster.dsn}: connection refused"
        " (is the server running?); still so after waiting 1 s (--connect-timeout)",
    ]


@pytest.mark.slow
def test_a_standby_that_is_never_promoted_times_out_clearly(cluster: Cluster) -> None:
    (cluster.data / "standby.signal").touch()
    if os.geteuid() == 0:
        shutil.chown(cluster.data / "standby.signal", PG_USER)
    cluster.start("hot_standby=off")
    told = Told()
    with (
        pytest.raises(DatabaseError) as info,
        open_database("dsn", cluster.dsn, connect_timeout=1, on_wait=told),
    ):
        pass
    assert len(told.messages) == 1
    message = str(info.value)
    assert message.startswith(f"cannot connect to {cluster.dsn}: FATAL:  the database system")
    assert message.endswith("; still so after waiting 1 s (--connect-timeout)")


@pytest.mark.slow
def test_run_waits_for_a_server_started_by_hand(cluster: Cluster) -> None:
    """The CLI end to end: `dbload run` started before the server; one
    waiting line on stderr, none with --quiet."""
    argv = ["run", "--dsn", cluster.dsn, "-n", "20", "-c", "2", "--connect-timeout", "60"]
    code, _, err = dbload_then(cluster.start, *argv)
    assert code == 0, err
    assert [line for line in err.splitlines() if "waiting for" in line] == [
        f"waiting for the server at {cluster.dsn} (connection refused), up to 60 s…"
    ]
    cluster.stop()
    timer = _later(1.0, cluster.start)
    try:
        code, err = _dbload(*argv, "--quiet")
    finally:
        timer.join()
    assert (code, err) == (0, "")


@pytest.mark.slow
def test_seed_and_migrate_wait_too(cluster: Cluster) -> None:
    for command in (["migrate"], ["seed", "--scale", "1"]):
        cluster.stop()
        argv = [*command, "--dsn", cluster.dsn, "--connect-timeout", "60"]
        code, _, err = dbload_then(cluster.start, *argv)
        assert code == 0, err
        assert err.count("waiting for the server at") == 1, err


@pytest.mark.slow
def test_wrong_password_fails_at_once(hba_server: str) -> None:
    role = "dbload_wait_pw"
    with psycopg.connect(hba_server, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right'")
    try:
        with password_required(hba_server, role):
            wrong = make_conninfo(hba_server, user=role, password="wrong")
            told = Told()
            with (
                pytest.raises(DatabaseError, match=f"authentication failed for user '{role}'"),
                open_database("dsn", wrong, connect_timeout=60, on_wait=told),
            ):
                pass
            assert told.messages == []
    finally:
        with psycopg.connect(hba_server, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_missing_database_fails_at_once(dsn: str) -> None:
    told = Told()
    missing = with_database(dsn, "dbload_no_such_database")
    with (
        pytest.raises(DatabaseError, match="database 'dbload_no_such_database' does not exist"),
        open_database("dsn", missing, connect_timeout=60, on_wait=told),
    ):
        pass
    assert told.messages == []


def test_a_reachable_server_is_not_waited_for(dsn: str) -> None:
    told = Told()
    with open_database("dsn", dsn, connect_timeout=60, on_wait=told):
        pass
    assert told.messages == []


# --- helpers ------------------------------------------------------------------


def _dbload(*args: str) -> tuple[int, str]:
    """``python -m dbload ARGS`` in a process of its own: exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_CONNECT_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-m", "dbload", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return done.returncode, done.stderr


def dbload_then(then: Callable[[], object], *args: str) -> tuple[int, str, str]:
    """``python -m dbload ARGS``, running ``then`` once it says it waits for
    the server: exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_CONNECT_TIMEOUT"}
    with tempfile.TemporaryFile("w+") as out:
        # stdout to a file: only stderr is read as it comes, and no pipe fills
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbload", *args],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        err: list[str] = []
        started: threading.Thread | None = None
        for line in proc.stderr:
            err.append(line)
            if started is None and line.startswith("waiting for the server"):
                started = threading.Thread(target=then)
                started.start()
        code = proc.wait(timeout=300)
        if started is not None:
            started.join()
        out.seek(0)
        return code, out.read(), "".join(err)


@dataclass
class Relay:
    port: int
    ready: threading.Event


@contextmanager
def relay(host: str, port: int) -> Iterator[Relay]:
    """A TCP port that accepts and closes every connection until ``ready``
    is set, then relays each to ``host:port``: what Docker's port proxy
    does while the container's server does not listen yet."""
    listener = socket.create_server(("127.0.0.1", 0))
    found = Relay(int(listener.getsockname()[1]), threading.Event())
    done = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    listener.settimeout(0.1)  # so that the loop sees ``done``

    def serve() -> None:
        while not done.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if not found.ready.is_set():
                client.close()
                continue
            upstream = socket.create_connection((host, port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        done.set()
        listener.close()
        thread.join(5)
