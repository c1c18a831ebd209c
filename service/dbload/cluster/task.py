"""The Dask worker's side of --cluster: one share of the clients.

:func:`run_share` runs in a worker thread (no event loop runs there, so the
async executor gets a loop of its own). It reports through the run's Dask
events topic: ``ready`` once its connections are prepared, a ``delta`` per
interval (what it measured since the last one: dbload.measure.merge),
``final`` at the end, ``error`` for a failure that stops the run. It starts
at the instant the coordinator writes into its ``go`` variable (in this
host's wall clock) and stops when the run's ``stop`` event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from dbload.cluster.job import Job, unpack
from dbload.errors import DbloadError
from dbload.measure.merge import DeltaTaker
from dbload.measure.recorder import Recorder
from dbload.modes.async_ import run_async

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

POLL_S = 0.2
RELEASE_TIMEOUT_S = 30.0
Send = Callable[[str, Any], None]


def run_share(blob: bytes) -> str | None:
    """Run one job (``pack``'d) on this Dask worker; what stopped it, if
    anything (also the task's result: a job that does not even unpickle
    here, e.g. from another dbload version, has no topic to report to)."""
    from distributed import Event, Variable, get_client, get_worker

    worker, client = get_worker(), get_client()
    topic, index = "", -1

    def send(kind: str, data: Any) -> None:
        worker.log_event(topic, {"share": index, "kind": kind, "data": data})

    def failed(message: str) -> str:
        send("error", message)
        return message

    try:
        job = unpack(blob)
    except BaseException as exc:  # e.g. a Python workload that imports here but not there
        topic, index = _names(blob)
        return failed(f"Dask worker {worker.address}: {type(exc).__name__}: {exc}")
    topic, index = job.topic, job.index
    stop = threading.Event()
    done = threading.Event()
    # created in this thread, with its client: see the distributed docs' "not
    # properly initialized" pitfall for primitives used from other threads
    stopper = Event(job.stop, client=client)
    threading.Thread(target=_watch, args=(stopper, stop, done), daemon=True).start()
    release = Event(job.release, client=client)
    recorder = _ShareRecorder(job, send, Variable(job.go, client=client), stop, release)
    try:
        coro = run_async(job.plan, recorder, stop, job.clients)
        if uvloop is not None:
            uvloop.run(coro)
        else:  # pragma: no cover
            asyncio.run(coro)
    except DbloadError as exc:
        return failed(str(exc))
    except BaseException as exc:  # a bug: say where, without a traceback
        return failed(f"Dask worker {worker.address} failed: {type(exc).__name__}: {exc}")
    finally:
        done.set()
    return None


def _names(blob: bytes) -> tuple[str, int]:
    """The topic and share of a job that did not unpack, from its bytes."""
    try:
        job = pickle.loads(blob)
        return str(job.topic), int(job.index)
    except Exception:
        return "", -1


def _watch(stopper: Any, stop: threading.Event, done: threading.Event) -> None:
    """The run's stop event, seen from this worker, until its share is done."""
    while not done.is_set() and not stop.is_set():
        try:
            if stopper.wait(timeout=POLL_S):
                stop.set()
        except Exception:  # the scheduler is gone: stop too
            stop.set()


def _cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


class _ShareRecorder(Recorder):
    """A recorder that waits for the common start and sends each interval."""

    def __init__(self, job: Job, send: Send, go: Any, stop: threading.Event, release: Any) -> None:
        plan = job.plan
        super().__init__(
            len(plan.workload.statements),
            interval_s=job.interval_ns / 1e9,
            scripts=len(plan.workload.scripts),
        )
        self.interval_ns = job.interval_ns
        self.latency_limit_ns = plan.latency_limit_ns
        self.delta = DeltaTaker()
        self.on_interval = self._send_interval
        self._send = send
        self._go = go
        self._run_stop = stop
        self._release = release
        self._cpu0 = 0.0
        self._cpu_timer: threading.Timer | None = None

    def begin(self, warmup_s: float = 0.0, at_ns: int | None = None) -> int:
        self._send("ready", None)
        start_wall = self._wait_go()
        at = time.perf_counter_ns() + (start_wall - time.time_ns())
        # before the run: nothing else wants this thread's loop meanwhile
        while (wait := at - time.perf_counter_ns()) > 0 and not self._run_stop.is_set():
            time.sleep(min(wait / 1e9, 0.05))
        self._cpu0 = _cpu_s()
        started = super().begin(warmup_s, at_ns=min(at, time.perf_counter_ns()))
        if warmup_s > 0:  # the CPU of the measured window only, as the other modes report it
            self._cpu_timer = threading.Timer(warmup_s, self._sample_cpu)
            self._cpu_timer.daemon = True
            self._cpu_timer.start()
        return started

    def _sample_cpu(self) -> None:
        self._cpu0 = _cpu_s()

    def _wait_go(self) -> int:
        """The start instant in this host's clock (now, when stopped first)."""
        while not self._run_stop.is_set():
            try:
                return int(self._go.get(timeout=POLL_S))
            except TimeoutError:
                continue
        return time.time_ns()

    def finish(self) -> None:
        super().finish()
        if self._cpu_timer is not None:
            self._cpu_timer.cancel()
        state = self.delta.take(self)
        cpu = _cpu_s() - self._cpu0
        self._send("final", {"state": pickle.dumps(state), "cpu_s": cpu})
        # run_async closes the connections after this returns
        with contextlib.suppress(Exception):  # the coordinator is gone: close anyway
            self._release.wait(timeout=RELEASE_TIMEOUT_S)

    def _send_interval(self) -> None:
        # the recorder spreads an interval's latencies over the next records,
        # but a delta must hold those of every transaction it counts: a
        # worker lost after it would leave the counters ahead of the
        # histograms for good (a few ms a second, once per interval)
        self._drain(len(self._pending))
        self._send("delta", pickle.dumps(self.delta.take(self)))
