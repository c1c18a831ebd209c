"""threads: N workers in a ThreadPoolExecutor, connections from psycopg_pool.

Each worker takes one connection for the whole run, like a pgbench client;
a barrier releases them together once every statement is prepared
everywhere, so connection setup never counts as latency.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from dbload.config import Plan
from dbload.errors import DatabaseError
from dbload.measure.recorder import Recorder
from dbload.modes._psycopg import (
    InFlight,
    connect_kwargs,
    prepare_all,
    retry_connect,
    run_worker,
)
from dbload.modes.base import Executor, cancel_after_grace, check_plan, deadline_ns


class ThreadsExecutor(Executor):
    name = "threads"
    driver = f"psycopg {psycopg.__version__} + psycopg_pool"

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        check_plan(plan)
        n = plan.concurrency
        ready = threading.Barrier(n + 1)
        go = threading.Event()
        setup_errors: list[BaseException] = []
        deadline: list[int | None] = [None]
        in_flight, finished = InFlight(), threading.Event()

        def worker(pool: ConnectionPool, client_id: int) -> None:
            pooled: list[psycopg.Connection[Any]] = [pool.getconn()]  # until handed back

            def release(conn: psycopg.Connection[Any]) -> None:
                if pooled and conn is pooled[0] and not conn.closed:
                    pool.putconn(pooled.pop())
                else:
                    # one of ours, or the pool's, lost: not handed back, for
                    # the pool would open a replacement that nobody uses
                    # beside the worker's own (41 backends for -c 20 after
                    # a kill); close() is idempotent, putconn is not
                    conn.close()

            def connect() -> psycopg.Connection[Any]:
                return psycopg.connect(plan.dsn, connect_timeout=10, **connect_kwargs(plan))

            def reconnect(
                lost: psycopg.Connection[Any], until: int
            ) -> psycopg.Connection[Any] | None:
                # Straight to the server, not pool.getconn(): the pool refills
                # in the background and, after a failed attempt, waits 1 s
                # before the next (psycopg_pool's fixed initial delay), so a
                # 0.3 s server restart cost threads mode ~1 s of throughput
                # (bench/faults.py); dbload's own backoff starts at 50 ms.
                release(lost)
                return retry_connect(connect, release, plan, stop, until)

            conn = pooled[0]
            try:
                try:
                    prepare_all(conn, plan)
                except BaseException as exc:
                    setup_errors.append(exc)
                ready.wait()
                go.wait()
                if not stop.is_set():
                    conn = run_worker(
                        conn, plan, (client_id,), recorder, deadline[0], stop, reconnect,
                        in_flight, connect,
                    )  # fmt: skip
            finally:
                release(conn)

        pool = ConnectionPool(
            plan.dsn, min_size=n, max_size=n, kwargs=connect_kwargs(plan), open=False
        )
        with pool, ThreadPoolExecutor(max_workers=n, thread_name_prefix="dbload") as threads:
            try:
                pool.wait(timeout=30)
            except PoolTimeout:
                raise DatabaseError(f"could not open {n} connections within 30 s") from None
            futures = [threads.submit(worker, pool, i) for i in range(n)]
            ready.wait()
            if setup_errors:
                stop.set()
                go.set()
                raise setup_errors[0]
            recorder.begin(plan.warmup_s)
            deadline[0] = deadline_ns(plan, recorder)
            cancel_after_grace(stop, finished, in_flight.cancel_all)
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
