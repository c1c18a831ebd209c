"""What the async worker loop needs of its runtime besides the driver:
sleeping, waiting for an open-loop start, \\shell, and how a cancel after
Ctrl-C's grace arrives. The sync twin is rt_sync.py, written by hand: the
two differ in substance (an event loop's timers against a thread's sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable
from typing import Any

from dbload.modes._timer import PreciseTimer
from dbload.modes.base import shell_command

# A cancel is the task's CancelledError: the worker records it and lets it
# end the task, which asyncio requires of a cancelled task.
Cancelled = asyncio.CancelledError
CANCEL_ENDS_WORKER = True
# a start due within this long waits on the precise timer; a later one
# sleeps on the loop's timers first, checking for Ctrl-C
NEAR_NS = 100_000_000


class Waker:
    """The loop's open-loop timer (a timerfd where there is one), and the
    connection each worker holds now, released at the end whatever
    reconnects happened (the grace watcher cancels the tasks themselves)."""

    __slots__ = ("links", "timer")

    def __init__(self, timer: PreciseTimer | None = None) -> None:
        self.timer = timer
        self.links: dict[int, Any] = {}

    def use(self, worker: int, link: Any) -> None:
        self.links[worker] = link


async def sleep(seconds: float, waker: Waker) -> None:
    await asyncio.sleep(seconds)


async def backoff(seconds: float, stop: threading.Event) -> None:
    """A reconnect's pause (a stop is seen at the next attempt)."""
    await asyncio.sleep(seconds)


def wait_until(due_ns: int, stop: threading.Event, waker: Waker) -> Awaitable[None]:
    """Until ``due_ns``; the caller looks at ``stop`` after it. Near starts
    go straight to the timer's future, without a coroutine per start."""
    timer = waker.timer
    if timer is not None and due_ns - time.perf_counter_ns() <= NEAR_NS:
        return timer.wait_until(due_ns)
    return _wait_far(due_ns, stop, timer)


async def _wait_far(due_ns: int, stop: threading.Event, timer: PreciseTimer | None) -> None:
    """Sleep until ``due_ns`` or a stop (checked every 0.1 s: ``stop`` is a
    thread event, set from a signal handler).

    The last 0.1 s is left to ``timer`` (a timerfd: see modes/_timer.py) when
    there is one: the loop's own timers fire up to ~1 ms late, which would
    show as schedule lag and so as latency. Spinning through the last
    millisecond also cut the lag, but cost a whole core at any rate
    (bench/open_loop.py), which on a shared machine the server needs more.
    """
    while (wait_ns := due_ns - time.perf_counter_ns()) > 0:
        if stop.is_set():
            return
        if timer is not None and wait_ns <= NEAR_NS:
            await timer.wait_until(due_ns)
            return
        await asyncio.sleep(min(wait_ns / 1e9, 0.1))


async def shell(argv: tuple[str, ...], capture: bool) -> tuple[int, str]:
    """\\shell/\\setshell without blocking the loop: (exit status, stdout)."""
    try:
        process = await asyncio.create_subprocess_shell(
            shell_command(argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture else None,
        )
    except OSError:
        return 127, ""
    try:
        out, _ = await process.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace") if out else ""
