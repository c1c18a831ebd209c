"""Sub-millisecond wake-ups for the async open loop, on Linux's timerfd.

asyncio's and uvloop's timers fire up to ~1 ms late: epoll_wait takes its
timeout in whole milliseconds (rounded up), and libuv counts time in ms. At
``--rate`` that millisecond shows as schedule lag and, since latency counts
from the scheduled start, as latency too. A timerfd armed at an absolute
CLOCK_MONOTONIC instant (the clock of ``time.perf_counter_ns``) becomes
readable on time, and the loop's epoll wakes on it like any socket: no
thread, no spinning. ``os.timerfd_create`` only exists from Python 3.13, so
the two calls go through ctypes; elsewhere :func:`precise_timer` returns
None and callers keep the loop's own timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import sys
import time

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
NS_PER_S = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


# Wake-ups are at least this far apart; the waiters due in between are
# woken together, late by at most this much, never early (see PreciseTimer).
COALESCE_NS = 200_000


class PreciseTimer:
    """Futures resolved at absolute ``perf_counter_ns`` instants, for one loop.

    Waiters sit in a heap; the timerfd is armed for the earliest, but never
    sooner than ``coalesce_ns`` after the last wake-up: the waiters due
    meanwhile are resolved in one callback. At a few thousand starts a
    second, one wake-up per start cost the loop as much as the transactions
    themselves (a loop pass, two syscalls and a lone reply to read each);
    woken in small groups, their queries go out and come back together.
    The price is up to ``coalesce_ns`` of schedule lag, which is measured
    and reported like any other (latency counts from the schedule), and
    never a start before its time.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        libc: ctypes.CDLL,
        coalesce_ns: int = COALESCE_NS,
    ) -> None:
        self._loop = loop
        self._settime = libc.timerfd_settime
        self._fd: int = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = _Itimerspec()
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties: first come, first woken
        self._armed_ns = 0
        self._coalesce_ns = coalesce_ns
        self._fired_ns = 0  # the last wake-up
        loop.add_reader(self._fd, self._fire)

    def wait_until(self, due_ns: int) -> asyncio.Future[None]:
        """A future done at ``due_ns`` (at once when that has passed)."""
        future: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._heap, (due_ns, next(self._order), future))
        if self._armed_ns == 0 or due_ns < self._armed_ns:
            self._arm(due_ns)
        return future

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        for _, _, future in self._heap:
            future.cancel()
        self._heap.clear()

    def _arm(self, due_ns: int) -> None:
        # an absolute instant of 0 would disarm the timer: 1 ns is "now"
        at = max(due_ns, self._fired_ns + self._coalesce_ns, 1)
        seconds, nanos = divmod(at, NS_PER_S)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = nanos
        if self._settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed_ns = due_ns

    def _fire(self) -> None:
        # not readable after all when re-armed for later meanwhile
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)
        now = self._fired_ns = time.perf_counter_ns()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, future = heapq.heappop(heap)
            if not future.done():  # a cancelled waiter (Ctrl-C)
                future.set_result(None)
        self._armed_ns = 0
        if heap:
            self._arm(heap[0][0])


def precise_timer(
    loop: asyncio.AbstractEventLoop, coalesce_ns: int = COALESCE_NS
) -> PreciseTimer | None:
    """A timer for ``loop`` where Linux's timerfd is at hand, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return PreciseTimer(loop, libc, coalesce_ns)
    except (OSError, AttributeError, NotImplementedError):
        return None
