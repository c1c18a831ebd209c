"""sequential: one psycopg connection, one statement after another."""

from __future__ import annotations

import threading

import psycopg

from dbload.config import Plan
from dbload.measure.recorder import Recorder
from dbload.modes._psycopg import connect_kwargs, prepare_all, run_worker
from dbload.modes.base import Executor, deadline_ns


class SequentialExecutor(Executor):
    name = "sequential"
    driver = f"psycopg {psycopg.__version__}"

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        with psycopg.connect(plan.dsn, **connect_kwargs(plan)) as conn:
            prepare_all(conn, plan)
            recorder.begin(plan.warmup_s)
            try:
                run_worker(conn, plan, 0, recorder, deadline_ns(plan, recorder), stop)
            finally:
                recorder.finish()
