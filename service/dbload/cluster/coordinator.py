"""The coordinator of --cluster: Dask workers as one run's load generators.

It connects (or starts a LocalCluster), checks the workers (enough of
them, dbload importable on each), measures each host's clock offset, splits
the clients into contiguous shares (client ``i`` draws the same stream as
in any mode: ``-n`` and ``--rate`` split exactly as in processes mode),
submits one task per share pinned to its worker, and merges what the
workers send into the run's recorder as it arrives, so progress, -P lines
and --max-errors work as in the other modes.

Everything travels through Dask: the jobs as task arguments, the deltas as
events of the run's topic (``Worker.log_event``), the start instant as a
Variable per worker, the stop as an Event. A worker the scheduler removes
mid-run (its ``remove-worker`` event), or that stops reporting, is an
incident; its share's task is cancelled, never re-run elsewhere (it would
send its share's transactions twice).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import queue
import secrets
import signal
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dbload.cluster.address import ClusterSpec
from dbload.cluster.job import Job, pack
from dbload.config import Plan
from dbload.errors import DatabaseError, DbloadError, UsageError
from dbload.measure.histogram import decode, new_histogram
from dbload.measure.merge import RecorderState, merge_into
from dbload.measure.recorder import NS_PER_S, Recorder
from dbload.measure.result import ClusterInfo, ClusterWorker
from dbload.modes.async_ import checked_driver
from dbload.modes.base import Executor, clients_label, lost_share
from dbload.modes.processes import client_ranges

CONNECT_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 120.0  # connect and prepare, on every worker
LEAD_NS = 300_000_000  # the start instant, this far after the last worker is ready
POLL_S = 0.05
# a running worker that sends nothing this long (and this many intervals) is lost:
# the scheduler notices a frozen host only after its worker-ttl (minutes)
STALL_S = 10.0
STALL_INTERVALS = 5
END_TIMEOUT_S = 30.0  # after the stop, for the last states


@dataclass(eq=False)
class _Share:
    """The coordinator's view of one worker's share."""

    job: Job
    address: str
    host: str
    offset_ns: int
    future: Any = None
    ready: bool = False
    done: bool = False
    gone: bool = False
    heard_at: float = field(default_factory=time.monotonic)
    reported_t: float | None = None
    ok: int = 0
    failed: int = 0
    cpu_s: float | None = None
    latency: Any = field(default_factory=new_histogram)
    error: DbloadError | None = None

    @property
    def settled(self) -> bool:
        return self.done or self.gone or self.error is not None


class ClusterExecutor(Executor):
    """The async executor on every Dask worker of ``spec``."""

    name = "async"

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.driver = "asyncpg"
        self.cluster: ClusterInfo | None = None

    def run(self, plan: Plan, recorder: Recorder, stop: Any) -> None:
        driver = checked_driver(plan)  # a script the driver cannot run fails here, once
        with open_client(self.spec) as (client, scheduler):
            workers = pick_workers(client, self.spec, plan.concurrency)
            self.driver = f"{driver.label} × {len(workers)} Dask workers"  # noqa: RUF001
            shares = self._shares(client, plan, recorder, workers)
            run = _Run(client, plan, recorder, stop, shares)
            try:
                run.go()
            finally:
                self.cluster = ClusterInfo(
                    scheduler=scheduler, workers=tuple(_figures(s, recorder) for s in shares)
                )
                run.close()

    def _shares(
        self, client: Any, plan: Plan, recorder: Recorder, workers: list[tuple[str, str]]
    ) -> list[_Share]:
        offsets = clock_offsets(client, [address for address, _ in workers])
        topic = f"dbload-{secrets.token_hex(6)}"
        ranges = client_ranges(plan.concurrency, len(workers))
        return [
            _Share(
                job=Job(
                    index=k,
                    plan=plan,
                    clients=clients,
                    interval_ns=recorder.interval_ns,
                    topic=topic,
                    go=f"{topic}-go-{k}",
                    stop=f"{topic}-stop",
                    release=f"{topic}-release",
                ),
                address=address,
                host=host,
                offset_ns=offsets[address],
            )
            for k, ((address, host), clients) in enumerate(zip(workers, ranges, strict=True))
        ]


@contextlib.contextmanager
def open_client(spec: ClusterSpec) -> Iterator[tuple[Any, str]]:
    """A Dask client of the scheduler, or of a LocalCluster started for the
    run (and closed after it); yields it and the scheduler's address."""
    try:
        import distributed
        from distributed.versions import VersionMismatchWarning
    except ImportError:
        raise UsageError("--cluster needs Dask's distributed: pip install 'dbload[dask]'") from None
    with contextlib.ExitStack() as stack:
        if spec.address is None:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=spec.local_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
            # the terminal's Ctrl-C reaches the worker processes too (one
            # process group): they leave the stop to the coordinator
            client.run(_ignore_sigint)
        else:
            _probe(spec.address)
            try:
                with warnings.catch_warnings():
                    # a multi-line table on stderr about packages dbload does
                    # not use; what dbload needs on the workers it checks itself
                    warnings.simplefilter("ignore", VersionMismatchWarning)
                    client = stack.enter_context(
                        distributed.Client(spec.address, timeout=CONNECT_TIMEOUT_S)
                    )
            except (OSError, TimeoutError) as exc:
                raise DatabaseError(_unreachable(spec.address, exc)) from None
            except ImportError as exc:  # the scheduler refused our versions
                raise DatabaseError(f"--cluster {spec.address}: {_first_line(exc)}") from None
        yield client, str(client.scheduler.address)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unreachable(address: str, exc: BaseException | str) -> str:
    why = exc if isinstance(exc, str) else _first_line(exc)
    return f"--cluster {address}: no Dask scheduler answers there ({why})"


def _probe(address: str) -> None:
    """Fail at once when nothing listens (Dask's connect retries a refused
    port until its timeout), and within CONNECT_TIMEOUT_S when what answers
    is not a scheduler: distributed's Client waits for ever on a peer that
    accepts the connection but never speaks (its handshake has no timeout),
    and reads another service's banner as a frame length."""
    import asyncio

    from distributed.comm.core import connect

    where = urlsplit(address)
    try:
        socket.create_connection((where.hostname, where.port), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise DatabaseError(_unreachable(address, exc)) from None

    async def knock() -> None:
        comm = await asyncio.wait_for(
            connect(address, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S
        )
        await comm.close()

    try:
        asyncio.run(knock())
    except TimeoutError:
        why = f"it accepts connections but sent no Dask handshake in {CONNECT_TIMEOUT_S:g} s"
        raise DatabaseError(_unreachable(address, why)) from None
    except Exception as exc:  # e.g. MemoryError: a banner read as a frame length
        why = f"what listens there does not speak Dask's protocol: {type(exc).__name__}"
        raise DatabaseError(_unreachable(address, why)) from None


def pick_workers(client: Any, spec: ClusterSpec, clients: int) -> list[tuple[str, str]]:
    """The workers to use, (address, host), checked: enough of them, and
    dbload importable on each."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    present = sorted(info)
    wanted = spec.workers or len(present)
    if not present:
        raise DatabaseError(f"--cluster {spec.label}: the scheduler has no workers")
    if wanted > len(present):
        raise UsageError(
            f"--cluster-workers {wanted}: the scheduler at {spec.label} has only"
            f" {len(present)} worker{'s' if len(present) != 1 else ''}"
        )
    chosen = present[: min(wanted, clients)]
    missing = _without_dbload(client, chosen)
    if missing:
        raise UsageError(
            f"--cluster: dbload is not installed on the Dask worker"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}:"
            " pip install 'dbload[dask]' there"
        )
    return [(address, str(info[address].get("host") or address)) for address in chosen]


def _without_dbload(client: Any, workers: list[str]) -> list[str]:
    # a lambda, pickled by value: a worker without dbload can still run it
    found = client.run(
        lambda: __import__("importlib.util").util.find_spec("dbload") is not None,
        workers=workers,
    )
    return [address for address in workers if not found.get(address)]


def clock_offsets(client: Any, workers: list[str], tries: int = 5) -> dict[str, int]:
    """Each worker's wall clock minus ours, in ns: the midpoint of the
    quickest of a few round trips (an error of at most half of it)."""
    best: dict[str, tuple[int, int]] = {}
    for _ in range(tries):
        for address in workers:
            sent = time.time_ns()
            theirs = client.run(time.time_ns, workers=[address])[address]
            back = time.time_ns()
            trip = back - sent
            if address not in best or trip < best[address][0]:
                best[address] = (trip, int(theirs) - (sent + back) // 2)
    return {address: offset for address, (_, offset) in best.items()}


class _Run:
    """One run's shares on the cluster, driven to their end."""

    def __init__(
        self, client: Any, plan: Plan, recorder: Recorder, stop: Any, shares: list[_Share]
    ) -> None:
        self.client, self.plan, self.recorder, self.stop = client, plan, recorder, stop
        self.shares = shares
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.topic = shares[0].job.topic
        self.error: DbloadError | None = None
        self._stop_sent = False
        self._begun = False

    def go(self) -> None:
        self._submit()
        self._pump(lambda: all(s.ready or s.settled for s in self.shares), READY_TIMEOUT_S)
        if self.error is None and not self.stop.is_set():
            self._start()
            self._pump(lambda: all(s.settled for s in self.shares), None)
            self._finish()
        if self.error is not None:
            raise self.error

    def _submit(self) -> None:
        import cloudpickle
        from dask.utils import apply

        from dbload.cluster.task import run_share

        client = self.client
        client.subscribe_topic(self.topic, lambda event: self.inbox.put(("event", event)))
        client.subscribe_topic("all", lambda event: self.inbox.put(("all", event)))
        # the task function crosses as bytes too: the scheduler unpickles the
        # graph, and dbload need not be installed there
        function = cloudpickle.dumps(run_share)
        for share in self.shares:
            pinned = {"workers": [share.address], "allow_other_workers": False, "pure": False}
            loaded = client.submit(cloudpickle.loads, function, **pinned)
            share.future = client.submit(apply, loaded, [pack(share.job)], retries=0, **pinned)

    def _start(self) -> None:
        """One instant for every worker, in each one's own clock."""
        from distributed import Variable

        start_wall = time.time_ns() + LEAD_NS
        self.recorder.begin(self.plan.warmup_s, at_ns=time.perf_counter_ns() + LEAD_NS)
        self._begun = True
        for share in self.shares:
            if share.ready and not share.settled:
                Variable(share.job.go, client=self.client).set(start_wall + share.offset_ns)
                share.heard_at = time.monotonic() + LEAD_NS / NS_PER_S

    def _pump(self, until: Any, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not until():
            if self.stop.is_set() and not self._stop_sent:
                self._send_stop()
            if deadline is not None and time.monotonic() > deadline:
                waiting = [s.address for s in self.shares if not (s.ready or s.settled)]
                self._fail(DatabaseError(f"Dask workers {', '.join(waiting)} did not get ready"
                                         f" within {timeout_s:g} s"))  # fmt: skip
                return
            try:
                kind, event = self.inbox.get(timeout=POLL_S)
            except queue.Empty:
                self._check_stalled()
                self._check_futures()
                continue
            if kind == "event":
                self._handle(event[1] if isinstance(event, tuple) else event)
            else:
                self._removed(event[1] if isinstance(event, tuple) else event)

    def _handle(self, message: dict[str, Any]) -> None:
        index = int(message.get("share", -1))
        if not 0 <= index < len(self.shares):
            if message.get("kind") == "error":
                self._fail(DbloadError(str(message.get("data"))))
            return
        share = self.shares[index]
        share.heard_at = time.monotonic()
        kind = message.get("kind")
        data: Any = message.get("data")
        if kind == "ready":
            share.ready = True
        elif kind == "delta":
            self._merge(share, pickle.loads(data))
        elif kind == "final":
            self._merge(share, pickle.loads(data["state"]))
            share.cpu_s = float(data["cpu_s"])
            share.done = True
        elif kind == "error":
            share.error = DbloadError(str(data))
            self._fail(share.error)

    def _merge(self, share: _Share, state: RecorderState) -> None:
        merge_into(self.recorder, state)
        share.ok += state.counters.get("ok", 0)
        share.failed += state.counters.get("failed", 0)
        if state.transactions:
            share.latency.add(decode(state.transactions))
        if state.series:
            share.reported_t = state.series[-1].t
        recorder = self.recorder
        limit = recorder.max_errors
        if limit and recorder.failed >= limit and not recorder.aborted:
            recorder.aborted = True
            self.stop.set()

    def _removed(self, message: Any) -> None:
        """The scheduler's own events: a worker of ours removed mid-run."""
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        address = message.get("worker")
        for share in self.shares:
            if share.address == address and not share.settled:
                self._lost(share, "left the cluster")

    def _check_stalled(self) -> None:
        if not self._begun:
            return
        quiet_s = max(STALL_S, STALL_INTERVALS * self.recorder.interval_ns / NS_PER_S)
        now = time.monotonic()
        for share in self.shares:
            if not share.settled and now - share.heard_at > quiet_s:
                self._lost(share, f"sent nothing for {quiet_s:g} s")

    def _check_futures(self) -> None:
        for share in self.shares:
            future = share.future
            if share.settled or future is None or future.status == "pending":
                continue
            if future.status == "error":
                exc = future.exception()
                self._lost(share, f"failed: {type(exc).__name__}: {_first_line(exc)}")
            elif future.status == "cancelled":
                self._lost(share, "was cancelled")
            elif isinstance(said := _outcome(future), str):  # it could not report it
                share.error = DbloadError(said)
                self._fail(share.error)
            elif time.monotonic() - share.heard_at > END_TIMEOUT_S:
                # its last events are behind the task's end on the way: give them time
                self._lost(share, "ended without sending its figures")

    def _lost(self, share: _Share, how: str) -> None:
        share.gone = True
        with contextlib.suppress(Exception):
            share.future.cancel()
        when, lost = lost_share(self.recorder, self._begun, share.reported_t)
        self.recorder.incidents.append(
            f"Dask worker {share.address} (host {share.host},"
            f" {clients_label(share.job.clients)}) {how} {when}; {lost}"
        )
        if not self._begun:
            self._fail(DatabaseError(self.recorder.incidents[-1]))

    def _send_stop(self) -> None:
        from distributed import Event

        self._stop_sent = True
        Event(self.shares[0].job.stop, client=self.client).set()

    def _fail(self, error: DbloadError) -> None:
        self.error = self.error or error
        self.stop.set()
        if not self._stop_sent:
            self._send_stop()

    def _finish(self) -> None:
        """Stop the clock, let the CPU meter sample while every worker still
        holds its connections, then release them."""
        from distributed import Event

        recorder = self.recorder
        if not recorder.ended_ns:
            recorder.ended_ns = time.perf_counter_ns()
        try:
            if recorder.on_finish is not None:
                recorder.on_finish()
        finally:
            Event(self.shares[0].job.release, client=self.client).set()

    def close(self) -> None:
        from distributed import Event

        with contextlib.suppress(Exception):
            Event(self.shares[0].job.release, client=self.client).set()
        if not self._stop_sent:
            with contextlib.suppress(Exception):
                self._send_stop()
        for share in self.shares:
            if share.future is not None and not share.done:
                with contextlib.suppress(Exception):
                    share.future.cancel()
        for topic in (self.topic, "all"):
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic)
        with contextlib.suppress(Exception):
            # a scheduler keeps each topic's last 1000 events for as long as it
            # runs: a shared one would hold every run's deltas (MBs a run).
            # A lambda travels by value: the scheduler need not have dbload.
            self.client.run_on_scheduler(
                lambda topic, dask_scheduler: dask_scheduler._broker.truncate(topic), self.topic
            )


def _outcome(future: Any) -> Any:
    """A finished share's result: what stopped it (None: nothing did, or
    its worker is gone and took the result with it)."""
    try:
        return future.result(timeout=POLL_S * 20)
    except Exception:
        return None


def _figures(share: _Share, recorder: Recorder) -> ClusterWorker:
    measured = recorder.measured_s if recorder.ended_ns else 0.0
    p99 = share.latency.get_value_at_percentile(99.0) / 1000.0 if share.ok else None
    return ClusterWorker(
        address=share.address,
        host=share.host,
        clients=clients_label(share.job.clients),
        ok=share.ok,
        failed=share.failed,
        tps=share.ok / measured if measured > 0 else 0.0,
        p99_ms=p99,
        client_cpu_s=share.cpu_s,
        clock_offset_ms=share.offset_ns / 1e6,
        lost=share.gone,
    )
