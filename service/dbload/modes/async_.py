"""async: N worker coroutines on one event loop, each holding one connection.

The driver (--driver: asyncpg by default, psycopg's AsyncConnection,
SQLAlchemy's AsyncEngine) opens the connections; every worker runs the one
loop of dbload.modes.loop_async. uvloop is used when installed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from dbload.config import Plan
from dbload.drivers import async_driver
from dbload.drivers.link_async import AsyncDriver
from dbload.measure.recorder import Recorder
from dbload.modes import rt_async
from dbload.modes._timer import precise_timer
from dbload.modes.base import Executor, cancel_after_grace, check_plan, deadline_ns
from dbload.modes.loop_async import run_clients

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]


def checked_driver(plan: Plan) -> AsyncDriver:
    """The plan's driver, once the script and the query mode passed its checks."""
    check_plan(plan)
    driver = async_driver(plan)
    driver.check(plan)  # type: ignore[attr-defined]
    return driver


async def run_async(
    plan: Plan, recorder: Recorder, stop: threading.Event, clients: range | None = None
) -> None:
    """The async executor as a coroutine, for callers that own an event loop.

    ``clients`` picks which of the plan's workers this loop runs (processes
    mode gives each process its share); by default, all of them.
    """
    driver = checked_driver(plan)
    clients = range(plan.concurrency) if clients is None else clients
    links = await driver.open(len(clients))
    waker = rt_async.Waker()
    for worker, link in zip(clients, links, strict=True):
        waker.use(worker, link)
    try:
        lazy: set[int] | None = None  # found by the first connection's check
        for link in links:
            lazy = await link.prepare_all(lazy)
        recorder.begin(plan.warmup_s)
        deadline = deadline_ns(plan, recorder)
        known = lazy or set()
        finished = threading.Event()
        waker.timer = precise_timer(asyncio.get_running_loop()) if plan.rate else None
        try:
            tasks = [
                asyncio.create_task(
                    run_clients(driver, link, plan, (i,), recorder, deadline, stop, waker, known),
                    name=f"worker-{i}",
                )
                for i, link in zip(clients, links, strict=True)
            ]
            cancel_after_grace(stop, finished, _canceller(tasks))
            await _gather_or_fail(tasks, stop)
        finally:
            finished.set()
            recorder.finish()
            if waker.timer is not None:
                waker.timer.close()
    finally:
        await asyncio.gather(*(driver.release(link) for link in waker.links.values()))
        await driver.close()


def _canceller(tasks: Sequence[asyncio.Task[Any]]) -> Callable[[], None]:
    """Cancel the workers from the grace watcher's thread; the driver then
    cancels their statements on the server."""
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        for task in tasks:
            loop.call_soon_threadsafe(task.cancel)

    return cancel


async def _gather_or_fail(tasks: Sequence[asyncio.Task[Any]], stop: threading.Event) -> None:
    """Wait for every worker; the first failure stops the others and is raised."""
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    failed = [t for t in done if not t.cancelled() and t.exception() is not None]
    if failed:
        stop.set()
        await asyncio.gather(*pending, return_exceptions=True)
        raise failed[0].exception()  # type: ignore[misc]


class AsyncExecutor(Executor):
    name = "async"
    driver = "asyncpg"  # until a run names its own (the plan's --driver)

    def run(self, plan: Plan, recorder: Recorder, stop: threading.Event) -> None:
        self.driver = async_driver(plan).label
        coro = run_async(plan, recorder, stop)
        if uvloop is not None:
            uvloop.run(coro)
        else:
            asyncio.run(coro)
