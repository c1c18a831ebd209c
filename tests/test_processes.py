"""processes mode: lossless merging, and real runs of worker processes.

The merge tests feed recorders known values and compare the merged result
with one recorder fed them all; the run tests start real worker processes
against the session database, kill one, and stop them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psutil
import pytest

from ctrl_c_twice import ctrl_c_twice, until_in_grace
from dbload.api import Observer, RunOptions, prepare_options, run_on
from dbload.config import Plan
from dbload.database.resolve import Database
from dbload.measure.histogram import decode, encode
from dbload.measure.merge import DeltaTaker, RecorderState, merge_into, state_of
from dbload.measure.recorder import NS_PER_S, Recorder, Snapshot, without_sliver
from dbload.measure.result import Result
from dbload.modes import get_executor
from dbload.modes.processes import client_ranges, worker_cpus, worker_processes
from dbload.workload.model import Step
from dbload.workload.parser import load_workload

# the probe table of the mode tests: what each client was sent, row by row
from test_cli import _one_line_error
from test_modes import PROBE, _probe_rows, probe_table  # noqa: F401

# -- merging -------------------------------------------------------------------

STEPS: tuple[Step, ...] = ((0, (1,)), (1, (2,)))
PERCENTILES = (0.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0)


def _transactions(rng: random.Random, base_ns: int, n: int) -> list[tuple[int, int, str | None]]:
    """(start, end, error) of ``n`` transactions within 5 s of ``base_ns``,
    latencies log-uniform from 20 µs to 2 s, some failed; in end order."""
    out = []
    for _ in range(n):
        start = base_ns + rng.randrange(0, 5 * NS_PER_S)
        latency = int(10 ** rng.uniform(4.3, 9.3))
        error = rng.choice(["40001", "57014"]) if rng.random() < 0.05 else None
        out.append((start, start + latency, error))
    return sorted(out, key=lambda t: t[1])


def _feed(recorder: Recorder, transactions: list[tuple[int, int, str | None]]) -> None:
    for start, end, error in transactions:
        latency = end - start
        recorder.record(start, end, STEPS, (latency // 3, latency // 2), error)


def _recorder(base_ns: int) -> Recorder:
    recorder = Recorder(len(STEPS))
    recorder.begin(0.0, at_ns=base_ns)
    return recorder


def _assert_same_histogram(merged: object, reference: object) -> None:
    a, b = decode(encode(merged)), decode(encode(reference))
    assert a.get_total_count() == b.get_total_count()
    assert a.get_min_value() == b.get_min_value()
    assert a.get_max_value() == b.get_max_value()
    assert a.get_mean_value() == pytest.approx(b.get_mean_value())
    for pct in PERCENTILES:
        assert a.get_value_at_percentile(pct) == b.get_value_at_percentile(pct), pct


def _assert_merged_equals(merged: Recorder, reference: Recorder) -> None:
    _assert_same_histogram(merged.transactions, reference.transactions)
    for mine, theirs in zip(merged.statements, reference.statements, strict=True):
        _assert_same_histogram(mine, theirs)
    for name in ("ok", "failed", "statement_count", "warmup_transactions"):
        assert getattr(merged, name) == getattr(reference, name), name
    assert merged.errors == reference.errors
    assert len(merged.series) == len(reference.series)
    for part, whole in zip(merged.series, reference.series, strict=True):
        assert (part.transactions, part.errors) == (whole.transactions, whole.errors)
        # the merged p99 of an interval is the largest of the parts': an upper bound
        assert part.p99_ms >= whole.p99_ms


def _split(
    rng: random.Random, base_ns: int, parts: int
) -> tuple[list[list[tuple[int, int, str | None]]], list[tuple[int, int, str | None]]]:
    shares = [_transactions(rng, base_ns, rng.randrange(0, 800)) for _ in range(parts)]
    everything = sorted((t for share in shares for t in share), key=lambda t: t[1])
    return shares, everything


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.slow
def test_merged_states_equal_one_recorder_fed_everything(seed: int) -> None:
    rng = random.Random(seed)
    # mid-interval at the end, so every recorder's last (partial) interval
    # has the same index however long the test takes
    base = time.perf_counter_ns() - int(5.5 * NS_PER_S)
    shares, everything = _split(rng, base, rng.randrange(1, 5))
    reference = _recorder(base)
    _feed(reference, everything)
    merged = _recorder(base)
    for share in shares:
        part = _recorder(base)
        _feed(part, share)
        part.finish()
        merge_into(merged, state_of(part))
    reference.finish()
    _assert_merged_equals(merged, reference)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.slow
def test_streamed_deltas_add_up_to_the_whole(seed: int) -> None:
    """What a worker process does: a delta per interval, one at the end."""
    rng = random.Random(1000 + seed)
    base = time.perf_counter_ns() - int(5.5 * NS_PER_S)
    shares, everything = _split(rng, base, rng.randrange(1, 5))
    reference = _recorder(base)
    _feed(reference, everything)
    reference.finish()
    streams: list[list[RecorderState]] = []
    for share in shares:
        part, taker = _recorder(base), DeltaTaker()
        deltas: list[RecorderState] = []
        part.on_interval = lambda part=part, taker=taker, deltas=deltas: deltas.append(  # type: ignore[misc]
            taker.take(part)
        )
        _feed(part, share)
        part.finish()
        deltas.append(taker.take(part))
        streams.append(deltas)
    # the parent receives the processes' deltas interleaved, each stream in order
    merged = _recorder(base)
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        merge_into(merged, stream.pop(0))
    _assert_merged_equals(merged, reference)


def test_empty_parts_change_nothing() -> None:
    base = time.perf_counter_ns() - int(2.5 * NS_PER_S)
    merged, empty = _recorder(base), _recorder(base)
    _feed(merged, _transactions(random.Random(5), base, 100))
    before = state_of(merged)
    merge_into(merged, state_of(empty))
    after = state_of(merged)
    assert after.transactions == before.transactions
    assert after.counters == before.counters


def test_error_messages_reach_the_parent_once_per_code() -> None:
    base = time.perf_counter_ns() - int(2.5 * NS_PER_S)
    merged = _recorder(base)
    for messages in (("a1", "a2"), ("b1", "b2")):
        part, taker = _recorder(base), DeltaTaker()
        part.record(base, base + 1000, STEPS, (1, 1), "22012", message=messages[0])
        merge_into(merged, taker.take(part))
        part.record(base, base + 1000, STEPS, (1, 1), "22012", message=messages[1])
        part.record(base, base + 1000, STEPS, (1, 1), "57014", message=f"{messages[1]} cancel")
        second = taker.take(part)
        assert second.error_examples == {"57014": f"{messages[1]} cancel"}
        merge_into(merged, second)
    assert merged.errors == {"22012": 4, "57014": 2}
    assert merged.error_examples == {"22012": "a1", "57014": "a2 cancel"}
    assert state_of(merged).error_examples == merged.error_examples


def test_client_ranges_are_contiguous_and_cover_every_client() -> None:
    assert client_ranges(8, 2) == [range(0, 4), range(4, 8)]
    assert client_ranges(7, 3) == [range(0, 3), range(3, 5), range(5, 7)]
    for n in range(1, 20):
        for p in range(1, n + 1):
            ranges = client_ranges(n, p)
            assert [i for r in ranges for i in r] == list(range(n))
            assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_never_more_processes_than_clients(seeded_dsn: str) -> None:
    plan = _plan(seeded_dsn, "select", concurrency=1, transactions=1, seed=1)
    assert worker_processes(plan) == 1
    assert worker_processes(_plan(seeded_dsn, "select", 8, 1, 1, processes=3)) == 3


# -- real runs -----------------------------------------------------------------


def _db(dsn: str) -> Database:
    return Database(kind="dsn", dsn=dsn)


def _run(dsn: str, observer: Observer | None = None, **kwargs: object) -> Result:
    options: RunOptions = prepare_options(mode="processes", **kwargs)  # type: ignore[arg-type]
    return run_on(_db(dsn), 1, options, observer=observer)


def _plan(
    dsn: str,
    workload: str,
    concurrency: int,
    transactions: int,
    seed: int,
    *,
    files: tuple[str, ...] = (),
    processes: int | None = None,
) -> Plan:
    return Plan(
        workload=load_workload(files, None if files else workload),
        mode="processes",
        concurrency=concurrency,
        transactions=transactions,
        duration_s=None,
        warmup_s=0.0,
        seed=seed,
        scale=1,
        dsn=dsn,
        processes=processes,
    )


def _workers() -> list[psutil.Process]:
    """This process's worker processes (their title names them)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "dbload worker process" in " ".join(child.cmdline()):
                found.append(child)
    return found


Action = Callable[[Callable[[], Snapshot], threading.Event], None]


class _Watcher(Observer):
    """Runs ``action(snapshot, ended)`` in a thread while the run goes on."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> AbstractContextManager[None]:
        @contextlib.contextmanager
        def watch() -> Iterator[None]:
            ended = threading.Event()
            thread = threading.Thread(target=self.action, args=(snapshot, ended), daemon=True)
            thread.start()
            try:
                yield
            finally:
                ended.set()
                thread.join(timeout=10)

        return watch()


@pytest.mark.slow
def test_batch_runs_every_transaction_once(seeded_dsn: str) -> None:
    result = _run(seeded_dsn, workload="select", concurrency=4, transactions=203, seed=7)
    assert (result.ok, result.failed) == (203, 0)
    assert result.mode == "processes" and "processes" in result.driver_label
    assert result.latency.count == result.statement_count == 203
    assert result.statements[0].latency.count == 203
    assert sum(p.transactions for p in result.series) == 203
    assert result.incidents == () and not result.interrupted
    assert result.cpu is not None and result.cpu.client_s >= 0
    assert _workers() == []  # every worker process has exited


@pytest.mark.parametrize(("concurrency", "processes"), [(3, None), (7, 3)])
@pytest.mark.slow
def test_each_client_gets_the_parameters_it_gets_in_async_mode(
    seeded_dsn: str,
    probe_table: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
    concurrency: int,
    processes: int | None,
) -> None:
    script = tmp_path / "probe.sql"
    script.write_text(PROBE)
    files = (str(script),)
    seen = {}
    for mode in ("async", "processes"):
        plan = _plan(seeded_dsn, "", concurrency, 41, 42, files=files, processes=processes)
        recorder = Recorder(len(plan.workload.statements))
        get_executor(mode).run(plan, recorder, threading.Event())
        assert recorder.ok == 41
        seen[mode] = _probe_rows(seeded_dsn)
    assert len(seen["async"]) == 41
    assert {client for client, _, _ in seen["async"]} == set(range(concurrency))
    assert seen["processes"] == seen["async"]


@pytest.mark.slow
def test_duration_warmup_and_live_progress(seeded_dsn: str) -> None:
    seen: list[Snapshot] = []
    pinned: dict[int, list[int]] = {}

    def sample(snapshot: Callable[[], Snapshot], ended: threading.Event) -> None:
        while not ended.wait(0.1):
            seen.append(snapshot())
            if seen[-1].transactions and not pinned:
                for proc in _workers():
                    index = _index(proc)
                    with contextlib.suppress(psutil.Error):
                        if index is not None:
                            pinned[index] = proc.cpu_affinity()

    result = _run(
        seeded_dsn,
        _Watcher(sample),
        workload="select",
        concurrency=4,
        duration=1.5,
        warmup=0.5,
    )
    assert result.duration_s == pytest.approx(1.5, abs=0.3)
    assert result.warmup_transactions > 0 and result.ok > 0
    # every process ticks on the parent's clock: one series, aligned
    assert result.series[0].t == pytest.approx(1.0, abs=0.05)
    assert sum(p.transactions for p in result.series) == result.ok + result.failed
    # the workers' intervals reached the parent while the run went on
    during = [s.transactions for s in seen if 0 < s.transactions < result.ok]
    assert during, seen
    # one worker per core: each on its own (else the scheduler's choice)
    processes = worker_processes(_plan(seeded_dsn, "select", 4, 1, 1))
    assert result.driver_label.endswith(f"× {processes} processes")  # noqa: RUF001
    expected = worker_cpus(processes)
    assert sorted(pinned) == list(range(processes))
    for index, cpu in enumerate(expected):
        if cpu is not None:
            assert pinned[index] == [cpu]


@pytest.mark.slow
def test_max_errors_counts_the_failures_of_every_process(seeded_dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "div.sql"
    script.write_text("\\set d random(0, 1)\nSELECT 1 / :d;\n")
    result = _run(
        seeded_dsn,
        files=[str(script)],
        concurrency=4,
        transactions=100_000,
        seed=2,
        max_errors=5,
    )
    assert result.aborted and not result.interrupted
    assert result.failed >= 5 and result.ok + result.failed < 100_000
    assert result.errors == {"22012": result.failed}


@pytest.mark.slow
def test_stop_event_ends_every_worker_process_promptly(seeded_dsn: str) -> None:
    stop = threading.Event()
    stopped: list[float] = []

    def stop_once_running(snapshot: Callable[[], Snapshot], ended: threading.Event) -> None:
        while snapshot().transactions == 0:
            if ended.wait(0.05):
                return
        stopped.append(time.monotonic())
        stop.set()

    options = prepare_options(workload="select", mode="processes", concurrency=4, duration=60)
    result = run_on(_db(seeded_dsn), 1, options, stop=stop, observer=_Watcher(stop_once_running))
    assert stopped and result.interrupted and result.ok > 0
    # every process stopped, reported and exited (the planned run is 60 s)
    assert time.monotonic() - stopped[0] < 3.0
    assert _workers() == []


def _kill_worker_once_running(index: int, killed: list[int]) -> Action:
    def action(snapshot: Callable[[], Snapshot], ended: threading.Event) -> None:
        while snapshot().transactions == 0:  # the first interval has reached the parent
            if ended.wait(0.05):
                return
        for proc in _workers():
            if _index(proc) == index:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGKILL)
                    killed.append(proc.pid)

    return action


@pytest.mark.slow
def test_a_killed_worker_process_is_an_incident_and_the_others_go_on(seeded_dsn: str) -> None:
    if _expected(4, seeded_dsn)[0] < 2:
        pytest.skip("one core: a single worker process, no survivor to watch")
    killed: list[int] = []
    result = _run(
        seeded_dsn,
        _Watcher(_kill_worker_once_running(1, killed)),
        workload="select",
        concurrency=4,
        duration=3.0,
        seed=3,
    )
    assert len(killed) == 1
    assert len(result.incidents) == 1
    incident = result.incidents[0]
    label = _expected(4, seeded_dsn)[1][1]
    assert incident.startswith(f"worker process 1 (pid {killed[0]}, {label}) died with SIGKILL")
    assert "are not in the result" in incident
    assert not result.interrupted and not result.aborted
    # worker process 0 ran to the end: its last intervals are there
    assert result.duration_s == pytest.approx(3.0, abs=0.5)
    assert without_sliver(result.series)[-1].transactions > 0 and result.ok > 0
    assert _workers() == []


@contextlib.contextmanager
def _dbload(*args: str, dsn: str, **popen: object) -> Iterator[subprocess.Popen[str]]:
    """``dbload run --mode processes ...``; stopped (SIGTERM, the CLI's own
    clean stop) if a failed assertion leaves it running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "--mode", "processes", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DBLOAD_DSN": dsn},
        **popen,  # type: ignore[call-overload]
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _index(proc: psutil.Process) -> int | None:
    """Which worker process this is, from its title (None: not a worker, or gone)."""
    with contextlib.suppress(psutil.Error):
        title = " ".join(proc.cmdline())
        if "dbload worker process " in title:
            return int(title.split("worker process ")[1].split()[0])
    return None


def _cli_workers(pid: int, count: int, timeout_s: float = 30) -> dict[int, psutil.Process]:
    """The CLI's ``count`` worker processes by index, once they have all started."""
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        found = {}
        for proc in psutil.Process(pid).children():
            index = _index(proc)
            if index is not None:
                found[index] = proc
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} worker processes did not start")


def _expected(concurrency: int, dsn: str) -> tuple[int, list[str]]:
    """P for ``-c concurrency`` on this machine, and each worker's clients."""
    p = worker_processes(_plan(dsn, "select", concurrency, 1, 1))
    labels = [
        f"client {r[0]}" if len(r) == 1 else f"clients {r[0]}-{r[-1]}"
        for r in client_ranges(concurrency, p)
    ]
    return p, labels


@pytest.mark.slow
def test_cli_exits_1_with_one_line_naming_the_dead_worker(seeded_dsn: str, tmp_path: Path) -> None:
    p, labels = _expected(4, seeded_dsn)
    if p < 2:
        pytest.skip("one core: a single worker process, no survivor to watch")
    out_file = tmp_path / "r.json"
    with _dbload("-c", "4", "-T", "4", "--json", str(out_file), dsn=seeded_dsn) as proc:
        victim = _cli_workers(proc.pid, p)[0]
        time.sleep(2.0)  # connected, released, running
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    _one_line_error(
        proc.returncode, err, f"dbload: error: worker process 0 (pid {victim.pid}, {labels[0]})"
    )
    assert "SIGKILL" in err
    assert "incident" in out and "tps" in out
    data = json.loads(out_file.read_text())
    assert len(data["incidents"]) == 1 and data["transactions"]["ok"] > 0


@pytest.mark.slow
def test_ctrl_c_at_the_terminal_stops_every_process_cleanly(
    seeded_dsn: str, tmp_path: Path
) -> None:
    """A terminal's Ctrl-C signals its whole foreground process group."""
    out_file = tmp_path / "r.json"
    args = ("-c", "4", "-T", "60", "--json", str(out_file))
    with _dbload(*args, dsn=seeded_dsn, process_group=0) as proc:
        workers = _cli_workers(proc.pid, _expected(4, seeded_dsn)[0]).values()
        time.sleep(2.0)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, err
    _one_line_error(proc.returncode, err, "dbload: error: interrupted")
    assert "tps" in out and "incident" not in out
    data = json.loads(out_file.read_text())
    assert data["interrupted"] is True and data["incidents"] == []
    assert data["transactions"]["ok"] > 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """In the block, this process adopts its descendants' orphans (Linux's
    child subreaper), so that it can tell how they ended."""
    if not sys.platform.startswith("linux"):
        pytest.skip("child subreapers are Linux's")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) refused")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0)


def _reap(pids: list[int], timeout_s: float = 30) -> dict[int, int]:
    """Wait for the adopted ``pids``; their wait statuses."""
    statuses: dict[int, int] = {}
    until = time.monotonic() + timeout_s
    while len(statuses) < len(pids) and time.monotonic() < until:
        for pid in pids:
            if pid not in statuses:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = status
        time.sleep(0.05)
    return statuses


@pytest.mark.slow
def test_worker_processes_die_with_a_parent_stopped_at_once(
    seeded_dsn: str, tmp_path: Path
) -> None:
    """A second Ctrl-C ends the parent at once: its workers are killed with
    it, not left to finish a stop of their own (3.5 s of pg_sleep)."""
    script = tmp_path / "long.sql"
    script.write_text("SELECT pg_sleep(60);\n")
    p = _expected(4, seeded_dsn)[0]

    def attempt() -> tuple[bool, tuple[int, str, dict[int, int]]]:
        with (
            _adopting_orphans(),
            _dbload("-c", "4", "-T", "120", "-f", str(script), dsn=seeded_dsn) as proc,
        ):
            pids = [w.pid for w in _cli_workers(proc.pid, p).values()]
            time.sleep(2.0)  # connected, released, in pg_sleep
            in_grace, err = ctrl_c_twice(proc)
            proc.communicate(timeout=30)
            return in_grace, (proc.returncode, err, _reap(pids))

    code, err, statuses = until_in_grace(attempt)
    assert code == 130, err
    assert len(statuses) == p
    killed = [
        s for s in statuses.values() if os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL
    ]
    assert len(killed) == p, statuses
