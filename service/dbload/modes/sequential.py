"""sequential: one connection, one statement after another.

With a concurrency of N, the one connection runs the N clients' parameter
streams in turn (each with its own variables and ``client_id``, and with
``-n`` each its own share), so sequential sends exactly the transactions N
clients would: the baseline of a comparison runs the same parameters.
"""

from __future__ import annotations

import threading

from dbload.config import Plan
from dbload.drivers import sync_driver
from dbload.drivers.link_sync import SyncDriver
from dbload.measure.recorder import Recorder
from dbload.modes import rt_sync
from dbload.modes.base import Executor, cancel_after_grace, check_plan, deadline_ns
from dbload.modes.loop_sync import run_clients


def checked_driver(plan: Plan) -> SyncDriver:
    """The plan's driver, once the script and the query mode passed its checks."""
    check_plan(plan)
    driver = sync_driver(plan)
    driver.check(plan)  # type: ignore[attr-defined]
    return driver


class SequentialExecutor(Executor):
    name = "sequential"
    driver = "psycopg"  # until a run names its own (the plan's --driver)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        driver = checked_driver(plan)
        self.driver = driver.label
        waker = rt_sync.Waker()
        try:
            (link,) = driver.open(1)
            waker.use(0, link)
            lazy = link.prepare_all(None)
            recorder.begin(plan.warmup_s)
            finished = threading.Event()
            cancel_after_grace(stop, finished, waker.cancel_all)
            try:
                clients = range(plan.concurrency)
                deadline = deadline_ns(plan, recorder)
                run_clients(driver, link, plan, clients, recorder, deadline, stop, waker, lazy)
            finally:
                finished.set()
                recorder.finish()
        finally:
            for held in waker.links.values():
                driver.release(held)
            driver.close()
