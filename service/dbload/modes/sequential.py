"""sequential: one psycopg connection, one statement after another.

With a concurrency of N, the one connection runs the N clients' parameter
streams in turn (each with its own variables and ``client_id``, and with
``-n`` each its own share), so sequential sends exactly the transactions N
clients would: the baseline of a comparison runs the same parameters.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from dbload.config import Plan
from dbload.measure.recorder import Recorder
from dbload.modes._psycopg import (
    InFlight,
    connect_kwargs,
    prepare_all,
    retry_connect,
    run_worker,
)
from dbload.modes.base import Executor, cancel_after_grace, check_plan, deadline_ns


class SequentialExecutor(Executor):
    name = "sequential"
    driver = f"psycopg {psycopg.__version__}"

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        check_plan(plan)

        def connect() -> psycopg.Connection[Any]:
            return psycopg.connect(plan.dsn, **connect_kwargs(plan))

        conn = connect()
        try:
            prepare_all(conn, plan)
            recorder.begin(plan.warmup_s)
            in_flight, finished = InFlight(), threading.Event()
            cancel_after_grace(stop, finished, in_flight.cancel_all)
            try:
                conn = run_worker(
                    conn,
                    plan,
                    range(plan.concurrency),
                    recorder,
                    deadline_ns(plan, recorder),
                    stop,
                    lambda _lost, until: retry_connect(
                        connect, psycopg.Connection.close, plan, stop, until
                    ),
                    in_flight,
                    connect,
                )
            finally:
                finished.set()
                recorder.finish()
        finally:
            conn.close()
