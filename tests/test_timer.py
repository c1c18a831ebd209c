"""The timerfd wake-ups of the async open loop (modes/_timer.py).

No wall-clock bound here (the machine is shared): only that every waiter
wakes, never before its instant, in order, and that cancelled waiters and a
closed timer are handled. Lag figures are bench/open_loop.py's business.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from dbload.modes._timer import PreciseTimer, precise_timer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


def _timer() -> PreciseTimer:
    timer = precise_timer(asyncio.get_running_loop())
    assert timer is not None
    return timer


async def _wake_all(timer: PreciseTimer, dues: list[int]) -> list[tuple[int, int]]:
    """Wait for every due time at once; (due, woken at) in waking order."""
    woke: list[tuple[int, int]] = []

    async def wait(due: int) -> None:
        await timer.wait_until(due)
        woke.append((due, time.perf_counter_ns()))

    await asyncio.gather(*(wait(d) for d in dues))
    timer.close()
    return woke


def test_waiters_wake_in_order_never_early() -> None:
    async def main() -> list[tuple[int, int]]:
        now = time.perf_counter_ns()
        # out of order, some in the past, two at the same instant
        return await _wake_all(_timer(), [now + ms * 1_000_000 for ms in (30, 5, -1, 20, 20, 1, 0)])

    woke = asyncio.run(main())
    assert len(woke) == 7
    assert all(at >= due for due, at in woke)
    assert [due for due, _ in woke] == sorted(due for due, _ in woke)


def test_a_cancelled_waiter_does_not_stop_the_others() -> None:
    async def main() -> bool:
        timer = _timer()
        now = time.perf_counter_ns()
        first = timer.wait_until(now + 5_000_000)
        second = timer.wait_until(now + 10_000_000)
        first.cancel()  # Ctrl-C cancels a worker waiting on its schedule
        await second
        timer.close()
        return first.cancelled() and second.done()

    assert asyncio.run(main())


def test_close_cancels_pending_waiters_and_frees_the_fd() -> None:
    async def main() -> bool:
        timer = _timer()
        pending = timer.wait_until(time.perf_counter_ns() + 60 * 1_000_000_000)
        timer.close()
        return pending.cancelled()

    assert asyncio.run(main())


def test_works_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> bool:
        timer = _timer()
        due = time.perf_counter_ns() + 2_000_000
        await timer.wait_until(due)
        timer.close()
        return time.perf_counter_ns() >= due

    assert uvloop.run(main())


def test_wake_ups_are_grouped_never_early() -> None:
    # 50 waiters 20 µs apart: with 200 µs between wake-ups they are woken in
    # groups (fewer wake-ups than waiters), each at or after its due time
    async def main() -> tuple[list[tuple[int, int]], int]:
        timer = _timer()
        fires = 0
        fire = timer._fire

        def counting() -> None:
            nonlocal fires
            fires += 1
            fire()

        loop = asyncio.get_running_loop()
        loop.remove_reader(timer._fd)
        loop.add_reader(timer._fd, counting)
        start = time.perf_counter_ns() + 5_000_000
        woke = await _wake_all(timer, [start + i * 20_000 for i in range(50)])
        return woke, fires

    woke, fires = asyncio.run(main())
    assert all(at >= due for due, at in woke)
    assert len(woke) == 50 and fires < 50
