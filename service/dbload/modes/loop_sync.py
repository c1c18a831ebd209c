# Generated from dbload/modes/loop_async.py by tools/async_to_sync.py:
# edit that file, then run `python tools/async_to_sync.py`.
"""The worker loop, one for every driver: async style.

This is the source of loop_sync.py, which tools/async_to_sync.py generates
from it (psycopg keeps its sync and async classes in step the same way):
the loop is written once, so that a rule of pgbench's (a retry, an aborted
client, the open-loop schedule) cannot be kept in one style and forgotten
in the other. What differs between the styles lives in rt_async/rt_sync
(sleeping, cancelling); what differs between drivers, in the driver's link
(dbload.drivers.link_async).

The loop drives the interpreter (dbload.workload.stream) and only does its
I/O through the link; it times each request (the end of one is the start
of the next) and records each transaction by pgbench's rules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from dbload.config import Plan
from dbload.drivers.link_sync import SyncDriver, SyncLink
from dbload.measure.recorder import Recorder
from dbload.modes import rt_sync as rt
from dbload.modes.base import (
    NOT_SQL,
    QUERY_CANCELED,
    RETRYABLE,
    SCRIPT_FAILED,
    Client,
    clients_label,
    first_line,
    gave_up,
    make_clients,
    reconnect_until,
    settle,
)
from dbload.workload.cpu import burn
from dbload.workload.model import ScriptRuntimeError
from dbload.workload.stream import CALL, QUERY, SHELL, SLEEP

LOST_CONNECTION = "08006"  # connection_failure: the socket closed with no SQLSTATE
RECONNECT_FIRST_S = 0.05
RECONNECT_MAX_S = 2.0
OPEN_CALL = "OpenTransaction"
OPEN_CALL_MESSAGE = "transaction(db, ctx) returned inside a transaction block; it was rolled back"


def run_clients(
    driver: SyncDriver,
    link: SyncLink,
    plan: Plan,
    clients: Sequence[int],
    recorder: Recorder,
    deadline: int | None,
    stop: threading.Event,
    waker: rt.Waker,
    lazy: set[int],
) -> SyncLink:
    """Run ``clients``' shares of the batch on one held connection: one
    client per worker (threads, async); in sequential mode all of them,
    their streams taken in turn (the earliest due, open loop), so that the
    one connection sends what N clients would.

    A lost connection counts as a failed transaction and the worker
    reconnects, with backoff, until the run ends or it gives up. A
    serialization failure or deadlock is run again from the same random
    state, up to ``plan.max_tries`` tries. A script that fails on the client
    side, or ends inside a transaction block, aborts its client only. With
    -C each transaction opens its own connection, inside its latency.
    ``lazy``: the statements prepared when first run. Returns the link in use.
    """
    active = make_clients(plan, clients, recorder)
    per_txn = plan.connect_per_transaction
    if per_txn:
        driver.release(link)  # each transaction opens its own
    perf = time.perf_counter_ns
    record = recorder.record
    measure_from = recorder.measure_from_ns
    max_tries, loops = plan.max_tries, plan.cpu_work_loops
    open_loop = bool(plan.rate)
    limit = plan.latency_limit_ns
    errors = driver.errors
    worker = clients[0]
    waker.use(worker, link)
    lag: int | None = None
    turn = 0
    while active and not stop.is_set():
        if len(active) == 1:
            client = active[0]
        elif open_loop:
            client = min(active, key=_due)
        else:
            turn %= len(active)
            client = active[turn]
            turn += 1
        stream = client.stream
        txn = stream.transaction()
        # open loop: latency counts from the scheduled start, so a worker
        # that falls behind shows up in latency, not only in lag
        start = perf() if client.schedule is None else client.due
        if deadline is not None and start >= deadline:
            break
        if client.schedule is not None:
            client.due = client.schedule.next()
            if start > perf():
                rt.wait_until(start, stop, waker)
            if stop.is_set():
                break
            lag = perf() - start
            if limit and lag > limit:
                recorder.skip(start, lag)
                client.done += start >= measure_from
                if not client.has_work:
                    active.remove(client)
                continue
        if loops:
            burn(loops)
        if per_txn:
            fresh = _connect_for(driver, recorder, client)
            if fresh is None:
                active.remove(client)
                continue
            link = fresh
            waker.use(worker, link)
        tries = 0
        kind = QUERY
        while True:
            tries += 1
            steps: list[Any] = []
            step_ns: list[int] = []
            error: str | None = None
            message: str | None = None
            t = perf() if tries > 1 or loops or lag is not None or per_txn else start
            runs = link.runs
            try:
                request = next(txn)
                while True:
                    kind = request[0]
                    if kind is QUERY:
                        # appended first: on an error, the step with no time
                        # is the statement that failed (see base.settle)
                        steps.append((request[1], request[2]))
                        run = runs[request[1]]
                        if run is None or request[3]:
                            answer = link.query(request)
                        else:
                            run(request[2])
                            answer = None
                    elif kind is CALL:
                        # a Python workload: its named steps time themselves
                        request[2].bind(steps, step_ns)
                        link.call(request[1].sync_fn, request[2])
                        answer = None
                        steps.append(NOT_SQL)
                    elif kind is SLEEP:
                        rt.sleep(request[1], waker)
                        answer = None
                        steps.append(NOT_SQL)
                    elif kind is SHELL:
                        answer = rt.shell(request[1], request[2])
                        steps.append(NOT_SQL)
                    else:
                        link.pipeline(request[1])
                        answer = None
                        steps.append(NOT_SQL)
                    now = perf()
                    step_ns.append(now - t)
                    t = now
                    request = txn.send(answer)
            except StopIteration:
                pass
            except errors as exc:
                link.abandon_pipeline()
                error, message = link.recover(exc)
                t = perf()
                retry = error in RETRYABLE and tries < max_tries
                if retry and _may_retry(link, stop, deadline, t):
                    txn = stream.transaction(retry=True)
                    continue
            except ScriptRuntimeError as exc:
                error, message = SCRIPT_FAILED, str(exc)
            except rt.Cancelled:
                if rt.CANCEL_ENDS_WORKER:
                    recorder.cancel()  # the grace period after Ctrl-C ran out
                    raise
                error = QUERY_CANCELED
            except Exception as exc:
                if kind is not CALL:
                    raise  # dbload's own bug: not the workload's failure
                error, message = _call_failed(link, exc)
                t = perf()
            break
        in_block = error is None and link.in_transaction()
        if in_block and kind is CALL:
            # a Python workload's forgotten COMMIT fails its transaction
            # only (a script's aborts its client, as in pgbench)
            link.end_aborted()
            error, message, in_block = OPEN_CALL, OPEN_CALL_MESSAGE, False
        if error is None and not in_block:  # the common case, without settle()'s call
            record(start, t, steps, step_ns, None, tries, lag, None,
                   script=stream.script, client=client.id)  # fmt: skip
            client.done += start >= measure_from
        elif error == QUERY_CANCELED and stop.is_set():
            recorder.cancel()
            client.done += start >= measure_from
        else:
            if error == SCRIPT_FAILED or in_block:
                link.end_aborted()
            if not settle(recorder, client, start, t, steps, step_ns, error, tries, lag,
                          message, in_block):  # fmt: skip
                active.remove(client)
        quota = client.quota  # client.has_work, without a property call per transaction
        if quota is not None and client.done >= quota and client in active:
            active.remove(client)
        if per_txn:
            driver.release(link)
        elif link.is_closed() and active:
            until = reconnect_until(plan, deadline)
            fresh = reconnect(driver, link, stop, until, lazy)
            if fresh is None:
                gave_up(plan, recorder, clients_label(clients), t, until, deadline)
                break
            link = fresh
            waker.use(worker, link)
    return link


def _due(client: Client) -> int:
    return client.due


def _may_retry(link: SyncLink, stop: threading.Event, deadline: int | None, now: int) -> bool:
    """pgbench's rule: no retry once the run is over or the connection is gone."""
    return not link.is_closed() and not stop.is_set() and (deadline is None or now < deadline)


def _call_failed(link: SyncLink, exc: Exception) -> tuple[str, str]:
    """A Python workload that raised something not the driver's: the
    transaction fails with the exception's type and first line, and the
    connection is brought back to idle for the next one."""
    if not link.is_closed() and link.in_transaction():
        link.end_aborted()
    return type(exc).__name__, first_line(str(exc), type(exc).__name__)


def _connect_for(driver: SyncDriver, recorder: Recorder, client: Client) -> SyncLink | None:
    """-C: a connection for one transaction, its statements prepared when
    first run (inside the latency, as pgbench -C re-prepares); None (the
    client is aborted, as pgbench aborts it) when the server refuses."""
    errors: tuple[type[BaseException], ...] = (*driver.errors, OSError, TimeoutError)
    try:
        return driver.connect()
    except errors as exc:
        # a wrapping driver's error (SQLAlchemy's) holds the DBAPI's in ``orig``
        code = getattr(exc, "sqlstate", None) or getattr(
            getattr(exc, "orig", None), "sqlstate", None
        )
        code = code or LOST_CONNECTION
        message = f"could not connect: {first_line(str(exc), type(exc).__name__)}"
        now = time.perf_counter_ns()
        recorder.record(now, now, (), (), str(code), 1, None, message,
                        script=client.stream.script, client=client.id)  # fmt: skip
        recorder.incidents.append(f"client {client.id} aborted while establishing connection")
        return None


def reconnect(
    driver: SyncDriver, lost: SyncLink, stop: threading.Event, until: int, lazy: set[int]
) -> SyncLink | None:
    """A fresh connection, prepared again; retried with backoff (the server
    may be restarting) until it works, ``stop`` is set or the ``until``
    instant passes (None then). The lost one is released first: a worker
    holds one connection, however often it reconnects."""
    driver.release(lost)
    errors: tuple[type[BaseException], ...] = (*driver.errors, OSError, TimeoutError)
    delay = RECONNECT_FIRST_S
    while not stop.is_set() and time.perf_counter_ns() < until:
        link: SyncLink | None = None
        try:
            link = driver.connect()
            link.prepare_all(lazy)
            return link
        except errors:
            if link is not None:
                driver.release(link)  # connected, but lost while preparing
            rt.backoff(min(delay, max(0.0, (until - time.perf_counter_ns()) / 1e9)), stop)
            delay = min(delay * 2, RECONNECT_MAX_S)
    return None
