"""threads: N worker threads, each holding one connection.

The driver (--driver: psycopg from a psycopg_pool pool by default, or
SQLAlchemy's Engine and its pool) opens the connections; a barrier releases
the workers together once every statement is prepared everywhere, so
connection setup never counts as latency. Every worker runs the one loop
of dbload.modes.loop_sync. Sequential mode is this with one worker that
runs every client's stream.

Workers are daemon threads, joined in short waits, not a ThreadPoolExecutor:
a Python workload stuck outside the database (``time.sleep(3600)``) cannot
be cancelled the way a statement can, and the pool's join would keep the
run (and the interpreter's exit) waiting for it. Such a worker is left
behind ABANDON_S after the cancel, counted as cancelled, with an incident.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from dbload.config import Plan
from dbload.drivers import sync_driver
from dbload.drivers.link_sync import SyncDriver, SyncLink
from dbload.measure.recorder import Recorder
from dbload.modes import rt_sync
from dbload.modes.base import Executor, cancel_after_grace, check_plan, deadline_ns
from dbload.modes.loop_sync import run_clients

# how long a worker may take to return once its statement was cancelled
ABANDON_S = 2.0
POLL_S = 0.1


def checked_driver(plan: Plan) -> SyncDriver:
    """The plan's driver, once the script and the query mode passed its checks."""
    check_plan(plan)
    driver = sync_driver(plan)
    driver.check(plan)  # type: ignore[attr-defined]
    return driver


def run_sync(plan: Plan, recorder: Recorder, stop: threading.Event, shares: list[range]) -> str:
    """Run one worker thread per share of the clients, each on a held
    connection of the plan's driver; returns the driver's label."""
    driver = checked_driver(plan)
    waker = rt_sync.Waker()
    try:
        links = driver.open(len(shares))
        for share, link in zip(shares, links, strict=True):
            waker.use(share[0], link)
        _Workers(driver, plan, recorder, stop, waker).run(shares, links)
    finally:
        for held in waker.links.values():
            driver.release(held)
        driver.close()
    return driver.label


class _Workers:
    """The run's worker threads: started, released together, joined."""

    def __init__(
        self,
        driver: SyncDriver,
        plan: Plan,
        recorder: Recorder,
        stop: threading.Event,
        waker: rt_sync.Waker,
    ) -> None:
        self.driver, self.plan, self.recorder = driver, plan, recorder
        self.stop, self.waker = stop, waker
        self.errors: list[BaseException] = []
        self.deadline: int | None = None
        self.go = threading.Event()

    def run(self, shares: Sequence[range], links: Sequence[SyncLink]) -> None:
        ready = threading.Barrier(len(shares) + 1)
        threads = [
            threading.Thread(
                target=self._work, args=(share, link, ready), name=f"dbload-{share[0]}",
                daemon=True,
            )
            for share, link in zip(shares, links, strict=True)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        ready.wait()
        if self.errors:
            self.stop.set()
            self.go.set()
            for thread in threads:
                thread.join()
            raise self.errors[0]
        recorder = self.recorder
        recorder.begin(self.plan.warmup_s)
        self.deadline = deadline_ns(self.plan, recorder)
        finished = threading.Event()
        cancel_after_grace(self.stop, finished, self.waker.cancel_all)
        self.go.set()
        try:
            self._join(threads)
        finally:
            finished.set()
            recorder.finish()
        if self.errors:
            raise self.errors[0]

    def _work(self, clients: range, link: SyncLink, ready: threading.Barrier) -> None:
        try:
            lazy = link.prepare_all(None)
        except BaseException as exc:
            self.errors.append(exc)
            ready.wait()
            return
        ready.wait()
        self.go.wait()
        if self.stop.is_set():
            return
        try:
            run_clients(self.driver, link, self.plan, clients, self.recorder, self.deadline,
                        self.stop, self.waker, lazy)  # fmt: skip
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()  # one worker failed: the others stop too

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for every worker, in short waits (the main thread stays free
        for Ctrl-C); leave behind one still running ABANDON_S after the cancel."""
        cancelled = self.waker.cancelled
        abandon_at: float | None = None
        for thread in threads:
            while thread.is_alive():
                thread.join(POLL_S)
                if cancelled.is_set() and abandon_at is None:
                    abandon_at = time.monotonic() + ABANDON_S
                if abandon_at is not None and time.monotonic() > abandon_at:
                    self._abandon([t for t in threads if t.is_alive()])
                    return

    def _abandon(self, stuck: list[threading.Thread]) -> None:
        for thread in stuck:
            self.recorder.cancel()
            self.recorder.incidents.append(
                f"worker thread {thread.name} did not return {ABANDON_S:g} s after its cancel"
                " (Python code blocking outside the database); it was left behind"
            )


class ThreadsExecutor(Executor):
    name = "threads"
    driver = "psycopg"  # until a run names its own (the plan's --driver)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        shares = [range(i, i + 1) for i in range(plan.concurrency)]
        label = run_sync(plan, recorder, stop, shares)
        self.driver = label + (" + psycopg_pool" if label.startswith("psycopg") else "")
