"""What the sync worker loop needs of its runtime besides the driver (the
twin of rt_async.py, by hand: a thread sleeps where a coroutine awaits).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dbload.modes.base import run_shell


class Cancelled(Exception):
    """A \\sleep cut short by the cancel after Ctrl-C's grace period."""


# The cancelled transaction is recorded and the worker goes on to see the
# stop: a thread has no task to end.
CANCEL_ENDS_WORKER = False


class Waker:
    """The connection each worker uses now, so that the grace watcher's
    thread can cancel their statements; ``cancelled`` wakes the workers out
    of a \\sleep then."""

    def __init__(self) -> None:
        self.links: dict[int, Any] = {}
        self.cancelled = threading.Event()

    def use(self, worker: int, link: Any) -> None:
        self.links[worker] = link

    def cancel_all(self) -> None:
        self.cancelled.set()
        for link in list(self.links.values()):
            link.cancel()


def sleep(seconds: float, waker: Waker) -> None:
    if waker.cancelled.wait(seconds):
        raise Cancelled


def backoff(seconds: float, stop: threading.Event) -> None:
    stop.wait(seconds)


def wait_until(due_ns: int, stop: threading.Event, waker: Waker) -> None:
    """Sleep until ``due_ns``; the caller looks at ``stop`` after it.

    time.sleep, not ``stop.wait``: an Event wait builds a lock and a
    condition each time (~20 µs of GIL per transaction, the threads' scarce
    resource); sleeping in slices of at most 0.1 s still notices a stop.
    """
    while (wait_ns := due_ns - time.perf_counter_ns()) > 0:
        if stop.is_set():
            return
        time.sleep(min(wait_ns / 1e9, 0.1))


def shell(argv: tuple[str, ...], capture: bool) -> tuple[int, str]:
    return run_shell(argv, capture)
