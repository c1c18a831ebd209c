"""--cluster on real Dask processes: a ``dask scheduler`` and ``dask worker``
processes on loopback, and workers in network namespaces of their own (two
hosts as far as Dask and PostgreSQL can tell), against the session database.

Nothing is mocked: the workers are the ``dask`` command of this interpreter's
environment, and a lost worker is a SIGKILLed process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from dbload.api import prepare_options, run_on
from dbload.cli import app
from dbload.cluster.address import ClusterSpec, check_cluster_mode, parse_cluster
from dbload.database.resolve import Database
from dbload.errors import DatabaseError, UsageError
from dbload.measure.histogram import decode
from dbload.measure.result import ClusterInfo, Result
from dbload.modes.processes import client_ranges

distributed = pytest.importorskip("distributed")

DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT_S = 30.0
# what a run says on stderr besides its error (the database line, notes)
# wide enough that no line of the report wraps
WIDE = {**os.environ, "COLUMNS": "250"}
CHATTER = ("database:", "note:", "stopping,", "written to", "report written", "progress:")


# -- address parsing (fast) -----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        (" tls://scheduler.example:9000/ ", "tls://scheduler.example:9000"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_a_scheduler_address_is_normalised(given: str, address: str) -> None:
    assert parse_cluster(given) == ClusterSpec(address=address)


def test_local_n_starts_n_workers_and_cluster_workers_picks_fewer() -> None:
    assert parse_cluster("local:3") == ClusterSpec(address=None, local_workers=3)
    assert parse_cluster("local:3", 2).workers == 2
    assert parse_cluster("local:3").label == "local:3"


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("tcp://127.0.0.1", "no valid port"),
        ("tcp://127.0.0.1:abc", "no valid port"),
        ("tcp://127.0.0.1:70000", "no valid port"),
        ("tcp://:8786", "no host"),
        ("http://127.0.0.1:8786", "scheme 'http'"),
        ("tcp://127.0.0.1:8786/status", "a path or query"),
        ("", "no host"),
    ],
)
def test_a_malformed_address_is_refused_with_the_reason(given: str, why: str) -> None:
    with pytest.raises(UsageError, match="not a Dask scheduler address") as caught:
        parse_cluster(given)
    assert why in str(caught.value)


@pytest.mark.parametrize("given", ["local:0", "local:", "local:-1", "local:two"])
def test_local_needs_at_least_one_worker(given: str) -> None:
    with pytest.raises(UsageError, match=r"local:N needs N >= 1"):
        parse_cluster(given)


def test_cluster_workers_must_fit() -> None:
    with pytest.raises(UsageError, match="local:2 starts only 2 workers"):
        parse_cluster("local:2", 3)
    with pytest.raises(UsageError, match="at least 1"):
        parse_cluster("tcp://127.0.0.1:8786", 0)


def test_only_the_async_executor_runs_on_the_workers() -> None:
    check_cluster_mode("async")
    for mode in ("sequential", "threads", "processes"):
        with pytest.raises(UsageError, match=f"not --mode {mode}"):
            check_cluster_mode(mode)


# -- the CLI refuses bad input before anything runs ------------------------------------

runner = CliRunner()


def _one_line_error(code: int, err: str, *needles: str) -> str:
    """The single ``dbload: error:`` line of a failed command, checked."""
    assert code != 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith(CHATTER)]
    assert len(errors) == 1, err
    assert errors[0].startswith("dbload: error: ") and lines[-1] == errors[0], err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--cluster", "tcp://127.0.0.1:notaport"], ["not a Dask scheduler address"]),
        (["--cluster", "local:0"], ["local:N needs N >= 1"]),
        (["--cluster", "local:2", "--mode", "sequential"], ["not --mode sequential"]),
        (["--cluster", "local:2", "--cluster-workers", "3"], ["starts only 2 workers"]),
        (["--cluster-workers", "2"], ["give both"]),
    ],
)
def test_bad_cluster_options_are_one_line_and_exit_2(
    seeded_dsn: str, args: list[str], needles: list[str]
) -> None:
    result = runner.invoke(app, ["run", "--dsn", seeded_dsn, "-n", "5", *args])
    assert result.exit_code == 2, result.stderr
    _one_line_error(result.exit_code, result.stderr, *needles)


# -- real Dask processes ---------------------------------------------------------------


@dataclass
class Dask:
    """A running ``dask scheduler`` and its ``dask worker`` processes."""

    address: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # by name
    addresses: dict[str, str] = field(default_factory=dict)  # name -> worker address

    def add_worker(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        command: Sequence[str] = (DASK, "worker"),
        nanny: bool = True,
    ) -> None:
        argv = [*prefix, *command, self.address, "--nthreads", "1", "--name", name]
        # its scratch space with the logs: a SIGKILLed worker leaves it behind
        argv += ["--host", host, "--no-dashboard", "--local-directory", str(self.logs)]
        argv += [] if nanny else ["--no-nanny"]
        self.workers[name] = self._spawn(argv, name)

    def wait_for(self, *names: str) -> None:
        """Until the scheduler lists every named worker; their addresses."""
        with distributed.Client(self.address, timeout=START_TIMEOUT_S) as client:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                info = client.scheduler_info(n_workers=-1)["workers"]
                named = {str(w["name"]): address for address, w in info.items()}
                if all(name in named for name in names):
                    self.addresses.update({name: named[name] for name in names})
                    return
                crashed = [n for n in names if self.workers[n].poll() is not None]
                assert not crashed and time.monotonic() < deadline, self._log_tail(names)
                time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its nanny (its own process group)."""
        process = self.workers[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        # a group of its own: the nanny and its worker die together, and a
        # Ctrl-C of the test run does not reach them half-way
        process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.processes.append(process)
        return process

    def _log_tail(self, names: Sequence[str]) -> str:
        return "\n".join(
            f"--- {n}\n" + (self.logs / f"{n}.log").read_text(errors="replace")[-2000:]
            for n in names
        )


@contextlib.contextmanager
def dask_scheduler(
    logs: Path, host: str = "127.0.0.1", prefix: Sequence[str] = ()
) -> Iterator[Dask]:
    """A ``dask scheduler`` on a free port of ``host``, stopped (with every
    worker added to it) at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    file = logs / f"scheduler-{secrets.token_hex(3)}.json"
    argv = [*prefix, DASK, "scheduler", "--host", host, "--port", "0", "--no-dashboard"]
    dask = Dask(address="", logs=logs)
    scheduler = dask._spawn([*argv, "--scheduler-file", str(file)], "scheduler")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not file.exists() or not file.read_text().strip().endswith("}"):
            assert scheduler.poll() is None, dask._log_tail(["scheduler"])
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.05)
        dask.address = json.loads(file.read_text())["address"]
        yield dask
    finally:
        dask.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dask]:
    """A scheduler and two single-thread workers, w1 and w2, on loopback."""
    with dask_scheduler(tmp_path_factory.mktemp("dask")) as dask:
        dask.add_worker("w1")
        dask.add_worker("w2")
        dask.wait_for("w1", "w2")
        yield dask


def _db(dsn: str) -> Database:
    return Database(kind="dsn", dsn=dsn)


def _run(dsn: str, **options: object) -> Result:
    return run_on(_db(dsn), 1, prepare_options(**options))  # type: ignore[arg-type]


def _info(result: Result) -> ClusterInfo:
    assert result.cluster is not None
    return result.cluster


def _expected_shares(transactions: int, clients: int, workers: int) -> list[int]:
    """Each worker's transactions: the per-client split of -n (as in every
    mode) summed over the worker's range of clients (as in processes mode)."""
    share, extra = divmod(transactions, clients)
    quota = [share + (1 if i < extra else 0) for i in range(clients)]
    return [sum(quota[i] for i in r) for r in client_ranges(clients, workers)]


def _dbload(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbload", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=WIDE,
    )


@pytest.mark.slow
def test_n_is_split_exactly_over_the_workers(cluster: Dask, seeded_dsn: str) -> None:
    result = _run(
        seeded_dsn, workload="select", concurrency=5, transactions=1001, seed=3,
        cluster=cluster.address,
    )  # fmt: skip
    info = _info(result)
    assert result.ok == 1001 and result.failed == 0 and result.incidents == ()
    assert info.scheduler == cluster.address
    assert [w.address for w in info.workers] == sorted(cluster.addresses.values())
    assert [w.ok for w in info.workers] == _expected_shares(1001, 5, 2) == [601, 400]
    assert [w.clients for w in info.workers] == ["clients 0-2", "clients 3-4"]
    assert all(w.host == "127.0.0.1" and not w.lost for w in info.workers)
    assert all(w.client_cpu_s is not None and w.client_cpu_s > 0 for w in info.workers)
    # the run's events are not left on the scheduler, which outlives it
    with distributed.Client(cluster.address, timeout=START_TIMEOUT_S) as client:
        assert not [t for t in client.get_events() if t.startswith("dbload-")]


@pytest.mark.slow
def test_cluster_workers_uses_fewer_of_the_workers(cluster: Dask, seeded_dsn: str) -> None:
    result = _run(
        seeded_dsn, workload="select", concurrency=3, transactions=90, cluster=cluster.address,
        cluster_workers=1,
    )  # fmt: skip
    (only,) = _info(result).workers
    assert only.ok == result.ok == 90 and only.clients == "clients 0-2"


@pytest.fixture
def probe_table(seeded_dsn: str) -> Iterator[str]:
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbload_cluster_probe (client int, x bigint, y float8)")
    yield "dbload_cluster_probe"
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE dbload_cluster_probe")


PROBE = """\
-- records the parameters it was given
\\set x random(1, 1000000000)
\\set y random_gaussian(1, 1000, 2.5)
INSERT INTO dbload_cluster_probe (client, x, y) VALUES (:client_id, :x, :y);
"""


def _probe_rows(dsn: str) -> list[tuple[int, int, float]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client, x, y FROM dbload_cluster_probe ORDER BY client, x, y"
        ).fetchall()
        conn.execute("TRUNCATE dbload_cluster_probe")
    return [(int(c), int(x), float(y)) for c, x, y in rows]


@pytest.mark.slow
def test_the_same_seed_sends_what_async_mode_sends(
    cluster: Dask, seeded_dsn: str, probe_table: str, tmp_path: Path
) -> None:
    script = tmp_path / "probe.sql"
    script.write_text(PROBE)
    common = {"files": [str(script)], "concurrency": 3, "transactions": 31}
    _run(seeded_dsn, mode="async", seed=42, **common)
    alone = _probe_rows(seeded_dsn)
    _run(seeded_dsn, seed=42, cluster=cluster.address, **common)
    spread = _probe_rows(seeded_dsn)
    assert len(spread) == 31 and {c for c, _, _ in spread} == {0, 1, 2}
    assert spread == alone
    _run(seeded_dsn, seed=43, cluster=cluster.address, **common)
    assert _probe_rows(seeded_dsn) != alone


@pytest.mark.slow
def test_the_merge_loses_nothing(cluster: Dask, seeded_dsn: str) -> None:
    result = _run(
        seeded_dsn, workload="select", concurrency=4, duration=2.0, cluster=cluster.address
    )
    info = _info(result)
    assert result.ok > 0 and result.incidents == ()
    assert result.ok == sum(w.ok for w in info.workers)
    assert all(w.ok > 0 for w in info.workers)
    assert decode(result.histogram).get_total_count() == result.ok
    assert sum(s.transactions for s in result.series) == result.ok
    (statement,) = result.statements
    assert statement.latency.count == result.ok


# -- faults ------------------------------------------------------------------------------


def _run_backends(dsn: str) -> int:
    """The run's connections to the session database (dbload tags them)."""
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name LIKE 'dbload-%%'",
            [name],
        ).fetchone()
    return int(row[0]) if row else 0


def _poll(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    until = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_an_incident_and_the_rest_is_saved(
    seeded_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    with dask_scheduler(tmp_path / "dask") as dask:
        dask.add_worker("w1", nanny=False)
        dask.add_worker("w2")  # with its nanny: the whole process group goes
        dask.wait_for("w1", "w2")
        victim = dask.addresses["w2"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbload", "run", "--cluster", dask.address, "-w", "select",
             "-c", "4", "-T", "4", "--dsn", seeded_dsn, "--json", str(out), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=WIDE,
        )  # fmt: skip
        try:
            assert _poll(lambda: _run_backends(seeded_dsn) >= 4), "the run did not start"
            time.sleep(1.5)
            dask.kill("w2")
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1, err
    # the shares go to the workers in the order of their addresses
    share = client_ranges(4, 2)[sorted(dask.addresses.values()).index(victim)]
    clients = f"clients {share.start}-{share.stop - 1}"
    _one_line_error(proc.returncode, err, victim, "host 127.0.0.1", clients, "left the cluster")
    data = json.loads(out.read_text())
    assert data["incidents"] and victim in data["incidents"][0]
    assert data["interrupted"] is False
    # the survivor ran on after the kill, and what it did is in the result
    seconds = [s for s in data["series"] if s["transactions"]]
    assert data["transactions"]["ok"] == sum(s["transactions"] for s in seconds) > 0
    lost_at = float(re.findall(r"left the cluster after ([\d.]+) s", data["incidents"][0])[0])
    assert seconds[-1]["t"] >= lost_at + 1
    assert _poll(lambda: _run_backends(seeded_dsn) == 0, 10), "connections left behind"


def _kill_when_running(dask: Dask, name: str, dsn: str, clients: int) -> None:
    if _poll(lambda: _run_backends(dsn) >= clients):
        time.sleep(2.5)  # after its first interval's figures are in
        dask.kill(name)


@pytest.mark.slow
def test_a_lost_worker_is_marked_and_the_survivors_figures_are_kept(
    seeded_dsn: str, tmp_path: Path
) -> None:
    with dask_scheduler(tmp_path / "dask") as dask:
        dask.add_worker("w1", nanny=False)
        dask.add_worker("w2", nanny=False)
        dask.wait_for("w1", "w2")
        victim = dask.addresses["w1"]
        killer = threading.Thread(target=_kill_when_running, args=(dask, "w1", seeded_dsn, 2))
        killer.start()
        try:
            result = _run(
                seeded_dsn, workload="select", concurrency=2, duration=4.0,
                cluster=dask.address,
            )  # fmt: skip
        finally:
            killer.join()
    workers = _info(result).workers
    (lost,) = [w for w in workers if w.address == victim]
    (kept,) = [w for w in workers if w.address != victim]
    assert lost.lost and not kept.lost
    assert len(result.incidents) == 1 and victim in result.incidents[0]
    assert lost.ok > 0 and kept.ok > 0  # what the victim reported before it died stays
    assert result.ok == lost.ok + kept.ok
    assert decode(result.histogram).get_total_count() == result.ok, result.incidents


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_saves_the_merged_partial_result(
    seeded_dsn: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "--cluster", "local:2", "-w", "select",
         "-c", "2", "-T", "30", "--dsn", seeded_dsn, "--json", str(out), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert _poll(lambda: _run_backends(seeded_dsn) >= 2), "the run did not start"
        time.sleep(1.0)
        # as a terminal's Ctrl-C: to the whole group, the local workers included
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("dbload: error: interrupted"), err
    data = json.loads(out.read_text())
    assert data["interrupted"] is True and data["incidents"] == []
    assert data["transactions"]["ok"] == sum(s["transactions"] for s in data["series"]) > 0
    assert data["duration_s"] < 10
    with contextlib.suppress(ProcessLookupError):  # no process of the run is left
        assert _poll(lambda: not _group_alive(proc.pid), 10), "a worker outlived the run"
    assert _run_backends(seeded_dsn) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- bad input that needs a scheduler -----------------------------------------------------


@pytest.mark.slow
def test_more_workers_asked_than_present_is_one_line(cluster: Dask, seeded_dsn: str) -> None:
    done = _dbload("--cluster", cluster.address, "--cluster-workers", "3", "-n", "5",
                   "--dsn", seeded_dsn)  # fmt: skip
    assert done.returncode == 2, done.stderr
    _one_line_error(done.returncode, done.stderr, "--cluster-workers 3", "has only 2 workers")


@pytest.mark.slow
def test_a_closed_port_is_one_line_at_once(seeded_dsn: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    done = _dbload("--cluster", f"tcp://127.0.0.1:{port}", "-n", "5", "--dsn", seeded_dsn)
    assert done.returncode == 3, done.stderr
    _one_line_error(done.returncode, done.stderr, f"127.0.0.1:{port}", "no Dask scheduler")
    assert time.monotonic() - started < 8, "a refused connection must not wait for the timeout"


@pytest.mark.slow
@pytest.mark.parametrize("speaks", [b"", b"SSH-2.0-OpenSSH_9.6\r\n"], ids=["silent", "ssh"])
def test_a_port_that_is_not_a_scheduler_is_one_line(seeded_dsn: str, speaks: bytes) -> None:
    """A listener that accepts the connection and says nothing (Dask's own
    handshake would wait for ever), or another service's banner."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        stop = threading.Event()
        server = threading.Thread(target=_serve, args=(listener, speaks, stop))
        server.start()
        try:
            done = _dbload("--cluster", f"127.0.0.1:{port}", "-n", "5", "--dsn", seeded_dsn)
        finally:
            stop.set()
            server.join()
    assert done.returncode == 3, done.stderr
    _one_line_error(done.returncode, done.stderr, f"tcp://127.0.0.1:{port}", "no Dask scheduler")


def _serve(listener: socket.socket, speaks: bytes, stop: threading.Event) -> None:
    listener.settimeout(0.1)
    held = []
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        held.append(conn)  # kept open, silent after its banner
        if speaks:
            conn.sendall(speaks)
    for conn in held:
        conn.close()


# a dask worker in which dbload cannot be imported (sys.modules[name] = None
# makes both import and find_spec fail): a machine where only dask is installed
_WITHOUT_DBLOAD = (
    sys.executable,
    "-c",
    "import sys; sys.modules['dbload'] = None;"
    " from distributed.cli.dask_worker import main; sys.argv[0] = 'dask-worker'; main()",
)


@pytest.mark.slow
def test_a_worker_without_dbload_is_named(seeded_dsn: str, tmp_path: Path) -> None:
    with dask_scheduler(tmp_path / "dask") as dask:
        dask.add_worker("w1")
        dask.add_worker("bare", command=_WITHOUT_DBLOAD, nanny=False)
        dask.wait_for("w1", "bare")
        done = _dbload("--cluster", dask.address, "-c", "2", "-n", "5", "--dsn", seeded_dsn)
        bare = dask.addresses["bare"]
    assert done.returncode == 2, done.stderr
    line = _one_line_error(done.returncode, done.stderr, "dbload is not installed", bare)
    assert dask.addresses["w1"] not in line
    assert _run_backends(seeded_dsn) == 0  # nothing ran


def test_a_worker_without_dbload_really_lacks_it() -> None:
    """The stand-in above is a real one: dbload does not import there."""
    check = "import sys; sys.modules['dbload'] = None; import dbload"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr


# -- two hosts: workers in network namespaces ----------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _free_subnets(count: int) -> list[int]:
    """Third octets of 10.200.x.0/24 no interface of this host uses."""
    used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    free = [x for x in range(1, 250) if f"10.200.{x}." not in used]
    return free[:count]


@dataclass
class _Host:
    netns: str
    address: str  # its own, on its veth
    gateway: str  # the root namespace's end of the pair


@contextlib.contextmanager
def _hosts(count: int) -> Iterator[list[_Host]]:
    """``count`` network namespaces, each linked to this one by a veth pair."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip")
    tag = secrets.token_hex(3)
    made: list[_Host] = []
    try:
        for k, octet in enumerate(_free_subnets(count)):
            ns, outer, inner = f"dbload-{tag}-{k}", f"vd{tag}{k}o", f"vd{tag}{k}i"
            try:
                _ip("netns", "add", ns)
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"ip netns add failed: {exc.stderr.decode().strip()}")
            host = _Host(ns, f"10.200.{octet}.2", f"10.200.{octet}.1")
            made.append(host)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("addr", "add", f"{host.gateway}/24", "dev", outer)
            _ip("link", "set", outer, "up")
            for step in (
                ["addr", "add", f"{host.address}/24", "dev", inner],
                ["link", "set", inner, "up"],
                ["link", "set", "lo", "up"],
                ["route", "add", "default", "via", host.gateway],
            ):
                _ip("-n", ns, *step)
        yield made
    finally:
        for host in made:  # deleting a namespace deletes its end, and so the pair
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=10)


@contextlib.contextmanager
def _relay(bind: str, target: tuple[str, int], logs: Path) -> Iterator[int]:
    """A TCP relay on ``bind`` to ``target``: the server listens on loopback
    only, which a namespace cannot reach."""
    with socket.socket() as probe:
        probe.bind((bind, 0))
        port = int(probe.getsockname()[1])
    code = (
        "import asyncio, sys\n"
        "async def pipe(r, w):\n"
        "    try:\n"
        "        while data := await r.read(65536):\n"
        "            w.write(data); await w.drain()\n"
        "    finally:\n"
        "        w.close()\n"
        "async def serve(r, w):\n"
        "    tr, tw = await asyncio.open_connection(sys.argv[3], int(sys.argv[4]))\n"
        "    await asyncio.gather(pipe(r, tw), pipe(tr, w), return_exceptions=True)\n"
        "async def main():\n"
        "    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))\n"
        "    print('ready', flush=True)\n"
        "    await server.serve_forever()\n"
        "asyncio.run(main())\n"
    )
    argv = [sys.executable, "-c", code, bind, str(port), target[0], str(target[1])]
    with (logs / "relay.log").open("wb") as log:
        relay = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
    try:
        assert relay.stdout is not None and relay.stdout.readline().strip() == b"ready"
        yield port
    finally:
        relay.terminate()
        relay.wait(timeout=10)


@pytest.mark.slow
def test_workers_on_two_hosts_report_two_hosts(seeded_dsn: str, tmp_path: Path) -> None:
    logs = tmp_path / "dask"
    logs.mkdir()
    params = conninfo_to_dict(seeded_dsn)
    server = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    if server[0].startswith("/"):
        pytest.skip("the session database is on a unix socket: no namespace reaches it")
    with _hosts(2) as (one, two), _relay(one.gateway, server, logs) as port:
        # as the workers see the server: through the relay, on the root side
        dsn = make_conninfo(seeded_dsn, host=one.gateway, port=str(port))
        with dask_scheduler(logs, host=one.gateway) as dask:
            for name, host in (("ns1", one), ("ns2", two)):
                prefix = ("ip", "netns", "exec", host.netns)
                dask.add_worker(name, host=host.address, prefix=prefix)
            dask.wait_for("ns1", "ns2")
            result = _run(
                dsn, workload="select", concurrency=4, transactions=400, seed=5,
                cluster=dask.address,
            )  # fmt: skip
    info = _info(result)
    assert result.ok == 400 and result.incidents == ()
    assert {w.host for w in info.workers} == {one.address, two.address}
    assert sorted(w.ok for w in info.workers) == [200, 200]
    assert all(abs(w.clock_offset_ms) < 1000 for w in info.workers)  # one kernel clock


@pytest.mark.slow
def test_an_unreachable_scheduler_raises_before_anything_runs(seeded_dsn: str) -> None:
    """Through the API too: the error type the CLI maps to its exit code."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DatabaseError, match="no Dask scheduler answers"):
        _run(seeded_dsn, workload="select", transactions=5, cluster=f"tcp://127.0.0.1:{port}")


@pytest.mark.slow
def test_a_python_workload_is_shipped_to_the_workers(
    cluster: Dask, seeded_dsn: str, tmp_path: Path
) -> None:
    # the module and the helper it imports from its folder travel as source:
    # each worker loads them from a folder of its own, not from this one
    (tmp_path / "helper.py").write_text("def table():\n    return 'shipped_probe'\n")
    (tmp_path / "tasks.py").write_text(
        "import os\n\nfrom helper import table\n\n\n"
        "async def transaction(db, ctx):\n"
        "    with ctx.step('insert'):\n"
        "        await db.execute(\n"
        "            f'INSERT INTO {table()} VALUES ($1, $2)', ctx.client_id,"
        " os.path.dirname(__file__)\n"
        "        )\n"
    )
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shipped_probe (client int, folder text)")
    try:
        result = _run(
            seeded_dsn, files=[str(tmp_path / "tasks.py")], concurrency=4, transactions=40,
            cluster=cluster.address,
        )  # fmt: skip
        assert result.ok == 40 and result.failed == 0, result.errors
        with psycopg.connect(seeded_dsn) as conn:
            rows = conn.execute("SELECT DISTINCT client, folder FROM shipped_probe").fetchall()
    finally:
        with psycopg.connect(seeded_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE shipped_probe")
    assert {client for client, _ in rows} == {0, 1, 2, 3}
    folders = {folder for _, folder in rows}
    assert str(tmp_path) not in folders
    assert len(folders) == 2  # one per worker's share
    assert all("dbload-" in folder for folder in folders)
