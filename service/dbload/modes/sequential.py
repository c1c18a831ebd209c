"""sequential: one connection, one statement after another.

With a concurrency of N, the one connection runs the N clients' parameter
streams in turn (each with its own variables and ``client_id``, and with
``-n`` each its own share), so sequential sends exactly the transactions N
clients would: the baseline of a comparison runs the same parameters. It is
the threads mode with one worker (modes/threads.py).
"""

from __future__ import annotations

import threading

from dbload.config import Plan
from dbload.measure.recorder import Recorder
from dbload.modes.base import Executor
from dbload.modes.threads import run_sync


class SequentialExecutor(Executor):
    name = "sequential"
    driver = "psycopg"  # until a run names its own (the plan's --driver)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        self.driver = run_sync(plan, recorder, stop, [range(plan.concurrency)])
