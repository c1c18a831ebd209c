"""processes: P worker processes, each running the async executor over its share.

The N clients are split into P contiguous ranges (worker process ``k`` runs
clients ``a..b``), so client ``i`` draws the same parameter stream as worker
``i`` of the async mode for the same ``--seed``. Each process opens and
prepares its connections, then waits at the start barrier; the parent
releases them all at one instant, which every process uses as its clock's
start (``perf_counter_ns`` is CLOCK_MONOTONIC: one clock for all processes
on Linux), so warm-up, interval ticks and the ``-T`` deadline line up.

While the run goes on, each process streams one delta per interval
(encoded histograms, counters, its intervals: :mod:`dbload.measure.merge`)
to the parent, which adds it into the run's recorder: progress moves live,
``--max-errors`` counts every process's failures, and a process that dies
loses only what it had not yet sent. A dead process is an *incident*: the
run goes on with the others and the result says which one died and what is
missing.

Everything crosses over one duplex pipe per process; there is no lock,
queue or semaphore shared between processes, because a process killed
while holding one (SIGKILL, the OOM killer) would hang the others.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from dbload.config import Plan
from dbload.drivers import async_driver
from dbload.errors import DbloadError
from dbload.measure.merge import DeltaTaker, RecorderState, merge_into
from dbload.measure.recorder import Recorder
from dbload.modes.async_ import checked_driver, run_async
from dbload.modes.base import Executor, clients_label, lost_share
from dbload.workload.expr import Expression, compile_expression

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

# How a worker process starts: a fresh interpreter (what multiprocessing
# calls spawn), launched with subprocess and given its job over its pipe.
# Not fork: the parent has threads by then (the progress display's refresher,
# the CPU meter's timer, a caller's own), and a lock one of them held would
# stay locked forever in the child. Not multiprocessing's spawn or
# forkserver either: both run the caller's __main__ again in the child, so
# a script calling dbload.run() without an `if __name__ == "__main__"` guard
# (or python -c, a notebook) would fail; forkserver would also save the
# ~0.2 s a child spends importing dbload only from the second run of a
# process on. The start-up is spent before the start barrier, outside any
# measurement. The child gets the parent's sys.path, as spawn does.
_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from dbload.modes.processes import worker_entry; "
    "worker_entry(int(sys.argv[2]), int(sys.argv[3]))"
)

# A parsed workload holds compiled \set expressions (closures), which pickle
# cannot carry; an expression crosses as its text and is compiled again on
# the other side. The parser compiles without constants, as here.
ForkingPickler.register(Expression, lambda e: (compile_expression, (e.text,)))

POLL_S = 0.05  # how often a waiting side looks at stop flags
EXIT_TIMEOUT_S = 10.0  # a worker process not gone this long after its end is killed


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (a container's cpuset, taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))  # pragma: no cover - not Linux


def worker_processes(plan: Plan) -> int:
    """P: ``plan.processes``, else one per usable core, never more than the clients."""
    wanted = plan.processes or len(usable_cpus())
    return max(1, min(wanted, plan.concurrency))


def worker_cpus(processes: int) -> list[int | None]:
    """The core each worker process is pinned to, when there is one each.

    With one worker per core, pinning keeps each on its core with its caches
    warm instead of migrating around the server's backends; measured here
    (2 cores, select, 8 clients, local server; medians of 4-6 alternated
    runs, four times) 5-15 % less client CPU per transaction and 6-30 % more
    throughput. With fewer workers than cores the scheduler is left free to
    use the idle ones.
    """
    cpus = usable_cpus()
    if processes < 2 or processes != len(cpus):
        return [None] * processes
    return list(cpus)


def client_ranges(concurrency: int, processes: int) -> list[range]:
    """Contiguous shares of the client ids, the first ones one larger."""
    share, extra = divmod(concurrency, processes)
    ranges, start = [], 0
    for k in range(processes):
        size = share + (1 if k < extra else 0)
        ranges.append(range(start, start + size))
        start += size
    return ranges


@dataclass(frozen=True, slots=True)
class _Job:
    """What one worker process runs (pickled to it)."""

    index: int
    plan: Plan
    clients: range
    interval_ns: int
    report_failures: bool  # --max-errors: tell the parent about every failure
    log_levels: dict[str, int]  # the parent's driver loggers (the CLI quiets them)
    cpu: int | None = None  # the core to pin it to (see worker_cpus)


_LOGGERS = ("asyncpg", "psycopg", "psycopg.pool", "sqlalchemy")


# -- the worker process --------------------------------------------------------
#
# Messages are (tag, payload) tuples. Parent to worker: ("job", _Job) first,
# then ("go", start_ns), ("stop", None), ("release", None). Worker to parent:
# ("ready", None), ("delta", RecorderState), ("failed", count),
# ("final", RecorderState), ("error", (exception class, message)).
#
# A worker's life: connect and prepare; "ready"; wait for "go" (the start
# barrier); run, sending a delta per interval; at the end "final" and wait
# for "release" (the end barrier: the parent samples client and server CPU
# while every worker and its connections still exist, as in the other
# modes); close its connections and exit.


class _ParentLink:
    """The worker side of the pipe: a thread receives, the run's thread sends."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stop = threading.Event()
        self.start_ns: int | None = None
        self._go = threading.Event()
        self._release = threading.Event()
        self._send_lock = threading.Lock()
        threading.Thread(target=self._listen, name="dbload-parent-link", daemon=True).start()

    def _listen(self) -> None:
        while True:
            try:
                tag, payload = self.conn.recv()
            except (EOFError, OSError):  # the parent is gone: stop, wait for nothing
                self.stop.set()
                self._go.set()
                self._release.set()
                return
            if tag == "go":
                self.start_ns = int(payload)
                self._go.set()
            elif tag == "stop":
                self.stop.set()
            elif tag == "release":
                self._release.set()

    def send(self, tag: str, payload: object = None) -> None:
        with self._send_lock:
            try:
                self.conn.send((tag, payload))
            except OSError:  # the parent is gone
                self.stop.set()

    def wait_go(self) -> int | None:
        """Block at the start barrier; the start instant (None: stopped first)."""
        while not self._go.wait(POLL_S):
            if self.stop.is_set():
                return None
        return self.start_ns

    def wait_release(self) -> None:
        self._release.wait()


class _WorkerRecorder(Recorder):
    """A recorder that waits at both barriers and sends each interval."""

    def __init__(self, job: _Job, link: _ParentLink) -> None:
        super().__init__(len(job.plan.workload.statements))
        self.interval_ns = job.interval_ns
        self.delta = DeltaTaker()
        self.link = link
        self.on_interval = self._send_interval

    def begin(self, warmup_s: float = 0.0, at_ns: int | None = None) -> int:
        self.link.send("ready")
        return super().begin(warmup_s, at_ns=self.link.wait_go())

    def finish(self) -> None:
        # run_async calls this before it closes its connections
        super().finish()
        self.link.send("final", self.delta.take(self))
        self.link.wait_release()

    def _send_interval(self) -> None:
        self.link.send("delta", self.delta.take(self))


class _CountingRecorder(_WorkerRecorder):
    """--max-errors: every failure is reported at once; the parent sums them
    over the processes and stops the run (an interval's delay would let an
    error storm run on for a second)."""

    def record(self, *args: Any, **kwargs: Any) -> None:
        failed = self.failed
        super().record(*args, **kwargs)
        if self.failed != failed:
            self.link.send("failed", self.failed)


def worker_entry(fd: int, parent_pid: int) -> None:
    """Entry point of a worker process: its end of the pipe is ``fd``."""
    _die_with_parent(parent_pid)
    conn = Connection(fd)
    try:
        tag, job = conn.recv()
    except (EOFError, OSError):  # the parent is gone already
        return
    assert tag == "job", tag
    _worker_main(job, conn)


def _worker_main(job: _Job, conn: Connection) -> None:
    # A worker runs in a process group of its own, so Ctrl-C at the terminal
    # reaches the parent only, which decides what it means and tells the
    # workers (a "stop" message); ignored here too, for a signal sent to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name, level in job.log_levels.items():
        logging.getLogger(name).setLevel(level)
    if job.cpu is not None and hasattr(os, "sched_setaffinity"):
        with suppress(OSError):  # a cpuset changed meanwhile: run anywhere
            os.sched_setaffinity(0, {job.cpu})
    _set_title(job)
    link = _ParentLink(conn)
    cls = _CountingRecorder if job.report_failures else _WorkerRecorder
    recorder = cls(job, link)
    recorder.latency_limit_ns = job.plan.latency_limit_ns
    try:
        recorder.attach_log(job.plan.log, worker=job.index)  # -l: this process's own file
        coro = run_async(job.plan, recorder, link.stop, job.clients)
        if uvloop is not None:
            uvloop.run(coro)
        else:  # pragma: no cover - uvloop is a dependency off Windows
            asyncio.run(coro)
    except DbloadError as exc:
        link.send("error", (type(exc), str(exc)))
    except BaseException as exc:  # a bug: say where, without a traceback
        message = f"worker process {job.index} failed: {type(exc).__name__}: {exc}"
        link.send("error", (DbloadError, message))


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Be killed by the kernel when the parent dies (Linux's PDEATHSIG).

    A parent stopped at once (a second Ctrl-C, SIGKILL) cannot tell its
    workers; a worker would notice the closed pipe, but then finish like
    after a stop, its statements running on through the grace period
    (3.5 s). Killed, its sockets close and the server ends the sessions
    (see modes.base.CLIENT_CHECK_MS). The signal comes when the parent's
    *thread* that started the worker ends: that thread waits for the
    workers' exit before it returns (``_shutdown``).
    """
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)


def _set_title(job: _Job) -> None:
    """``ps``/``top`` show which process runs which clients."""
    with suppress(ImportError):
        from setproctitle import setproctitle

        setproctitle(f"dbload worker process {job.index} ({clients_label(job.clients)})")


# -- the parent ----------------------------------------------------------------


@dataclass(eq=False)
class _Child:
    """The parent's view of one worker process."""

    job: _Job
    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False  # at the start barrier
    done: bool = False  # its final state arrived
    gone: bool = False  # its pipe closed: it exited or died
    failed: int = 0  # its failed transactions so far (--max-errors)
    reported_t: float | None = None  # end of the last interval it sent
    error: DbloadError | None = None

    @property
    def settled(self) -> bool:
        """Nothing more to wait for from it."""
        return self.done or self.gone or self.error is not None

    def send(self, tag: str, payload: object = None) -> None:
        with suppress(OSError):  # it died: its pipe says so to the reader
            self.conn.send((tag, payload))


class _Supervisor:
    """Drives the worker processes of one run and merges what they send."""

    def __init__(
        self, plan: Plan, recorder: Recorder, stop: threading.Event, children: list[_Child]
    ) -> None:
        self.plan = plan
        self.recorder = recorder
        self.stop = stop
        self.children = children
        self.error: DbloadError | None = None
        self._stop_sent = False
        self._begun = False

    def run(self) -> None:
        self._pump(until=lambda: all(c.ready or c.settled for c in self.children))
        # no start after an error (e.g. a statement the server rejected): the
        # stop it set sends the waiting workers to their end at once
        if self.error is None:
            self._start()
            self._pump(until=lambda: all(c.settled for c in self.children))
            self._finish()
        for child in self.children:
            child.send("release")
        self._pump(until=lambda: all(c.gone for c in self.children), timeout_s=EXIT_TIMEOUT_S)
        if self.error is not None:
            raise self.error

    def _start(self) -> None:
        """Release every ready worker at one instant, the run's clock start."""
        start = time.perf_counter_ns()
        self.recorder.begin(self.plan.warmup_s, at_ns=start)
        self._begun = True
        for child in self.children:
            if child.ready and not child.settled:
                child.send("go", start)

    def _pump(self, until: Callable[[], bool], timeout_s: float | None = None) -> None:
        """Receive and handle messages until ``until()`` (or the timeout)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not until() and (deadline is None or time.monotonic() < deadline):
            if self.stop.is_set() and not self._stop_sent:
                self._stop_sent = True
                for child in self.children:
                    child.send("stop")
            live = {c.conn: c for c in self.children if not c.gone}
            if not live:
                return
            for conn in wait(list(live), timeout=POLL_S):
                self._receive(live[conn])  # type: ignore[index]

    def _receive(self, child: _Child) -> None:
        try:
            while child.conn.poll():
                tag, payload = child.conn.recv()
                self._handle(child, tag, payload)
        except (EOFError, OSError):
            child.gone = True
            if not child.done and child.error is None:
                self.recorder.incidents.append(self._death(child))

    def _handle(self, child: _Child, tag: str, payload: Any) -> None:
        if tag == "ready":
            child.ready = True
        elif tag in ("delta", "final"):
            state: RecorderState = payload
            merge_into(self.recorder, state)
            if state.series:
                child.reported_t = state.series[-1].t
            if tag == "final":
                child.done = True
        elif tag == "failed":
            child.failed = int(payload)
            self._check_max_errors()
        elif tag == "error":
            cls, message = payload
            child.error = _rebuild(cls, message)
            self.error = self.error or child.error
            self.stop.set()  # as in async mode: one failure stops the others

    def _check_max_errors(self) -> None:
        limit = self.recorder.max_errors
        if limit and sum(c.failed for c in self.children) >= limit and not self.recorder.aborted:
            self.recorder.aborted = True
            self.stop.set()

    def _death(self, child: _Child) -> str:
        try:
            code: int | None = child.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            how = "closed its pipe"
        elif code < 0:
            how = f"died with {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        when, lost = lost_share(self.recorder, self._begun, child.reported_t)
        return (
            f"worker process {child.job.index} (pid {child.process.pid},"
            f" {clients_label(child.job.clients)}) {how} {when}; {lost}"
        )

    def _finish(self) -> None:
        """Stop the clock where the last process stopped it, then let the CPU
        meter sample while every worker process still exists."""
        recorder = self.recorder
        if not recorder.ended_ns:  # no process finished normally
            recorder.ended_ns = time.perf_counter_ns()
        if recorder.on_finish is not None:
            recorder.on_finish()


def _rebuild(cls: type[BaseException], message: str) -> DbloadError:
    """The worker's error, as its own class when that takes a message."""
    if isinstance(cls, type) and issubclass(cls, DbloadError):
        with suppress(TypeError):
            return cls(message)
    return DbloadError(message)


def _spawn(jobs: list[_Job], children: list[_Child]) -> None:
    for job in jobs:
        parent_end, child_end = socket.socketpair()
        with child_end:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOT,
                    json.dumps(sys.path),
                    str(child_end.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=[child_end.fileno()],
                stdin=subprocess.DEVNULL,
                process_group=0,  # out of the terminal's foreground group: see _worker_main
            )
        # the child's end now exists only in the child: its death closes the pipe
        conn = Connection(parent_end.detach())
        children.append(_Child(job, process, conn))
        conn.send(("job", job))


def _shutdown(children: list[_Child]) -> None:
    """Reap the worker processes. They have exited by now unless the run
    failed in the parent: then they are stopped, given time, and killed."""
    for child in children:
        child.send("stop")
        child.send("release")
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    for child in children:
        with suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        child.conn.close()


class ProcessesExecutor(Executor):
    name = "processes"
    driver = "asyncpg × processes"  # noqa: RUF001 (a times sign, on purpose)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        p = worker_processes(plan)
        self.driver = f"{async_driver(plan).label} × {p} processes"  # noqa: RUF001
        # a DSN, script or query mode the driver cannot run fails here, not in P workers
        checked_driver(plan)
        jobs = [
            _Job(
                index=k,
                plan=plan,
                clients=clients,
                interval_ns=recorder.interval_ns,
                report_failures=recorder.max_errors > 0,
                log_levels={name: logging.getLogger(name).level for name in _LOGGERS},
                cpu=cpu,
            )
            for k, (clients, cpu) in enumerate(
                zip(client_ranges(plan.concurrency, p), worker_cpus(p), strict=True)
            )
        ]
        children: list[_Child] = []
        try:
            try:
                _spawn(jobs, children)
            except OSError as exc:  # e.g. out of processes or memory
                raise DbloadError(f"could not start {p} worker processes: {exc}") from None
            _Supervisor(plan, recorder, stop, children).run()
        finally:
            _shutdown(children)
