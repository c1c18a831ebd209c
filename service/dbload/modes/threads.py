"""threads: N workers in a ThreadPoolExecutor, each holding one connection.

The driver (--driver: psycopg from a psycopg_pool pool by default, or
SQLAlchemy's Engine and its pool) opens the connections; a barrier releases
the workers together once every statement is prepared everywhere, so
connection setup never counts as latency. Every worker runs the one loop
of dbload.modes.loop_sync.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dbload.config import Plan
from dbload.drivers.link_sync import SyncDriver, SyncLink
from dbload.measure.recorder import Recorder
from dbload.modes import rt_sync
from dbload.modes.base import Executor, cancel_after_grace, deadline_ns
from dbload.modes.loop_sync import run_clients
from dbload.modes.sequential import checked_driver


class ThreadsExecutor(Executor):
    name = "threads"
    driver = "psycopg"  # until a run names its own (the plan's --driver)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        driver = checked_driver(plan)
        self.driver = driver.label + (
            " + psycopg_pool" if driver.label.startswith("psycopg") else ""
        )
        n = plan.concurrency
        waker = rt_sync.Waker()
        try:
            links = driver.open(n)
            for worker, link in enumerate(links):
                waker.use(worker, link)
            self._run(driver, links, plan, recorder, stop, waker)
        finally:
            for held in waker.links.values():
                driver.release(held)
            driver.close()

    def _run(
        self,
        driver: SyncDriver,
        links: Sequence[SyncLink],
        plan: Plan,
        recorder: Recorder,
        stop: threading.Event,
        waker: rt_sync.Waker,
    ) -> None:
        n = plan.concurrency
        ready = threading.Barrier(n + 1)
        go = threading.Event()
        setup_errors: list[BaseException] = []
        deadline: list[int | None] = [None]
        finished = threading.Event()

        def worker(client_id: int) -> None:
            link = links[client_id]
            try:
                lazy = link.prepare_all(None)
            except BaseException as exc:
                setup_errors.append(exc)
            ready.wait()
            go.wait()
            if not stop.is_set():
                run_clients(driver, link, plan, (client_id,), recorder, deadline[0], stop,
                            waker, lazy)  # fmt: skip

        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="dbload") as threads:
            futures = [threads.submit(worker, i) for i in range(n)]
            ready.wait()
            if setup_errors:
                stop.set()
                go.set()
                raise setup_errors[0]
            recorder.begin(plan.warmup_s)
            deadline[0] = deadline_ns(plan, recorder)
            cancel_after_grace(stop, finished, waker.cancel_all)
            go.set()
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stop.set()  # one worker failed (or Ctrl-C): the others stop too
                raise
            finally:
                finished.set()
                recorder.finish()
