"""Python-side work per transaction (``--cpu-work MS``): the CPU-bound contrast.

The work is a fixed number of loop iterations, calibrated once to take MS on
an idle core, and not a spin that watches the clock: a clock spin finishes
on time in every thread while the GIL time-slices them, and threads would
look as if they ran Python in parallel. Fixed work shows what really
happens: threads and async gain nothing, processes scale with the cores.
"""

from __future__ import annotations

import time

_CALIBRATION_LOOPS = 50_000


def burn(loops: int) -> int:
    """Spend ``loops`` iterations of pure-Python arithmetic, holding the GIL."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def loops_for(ms: float) -> int:
    """How many :func:`burn` loops take ``ms`` milliseconds on this machine.

    The best of a few timings, so a busy moment during calibration does not
    shrink the work.
    """
    if ms <= 0:
        return 0
    best = min(_time_burn(_CALIBRATION_LOOPS) for _ in range(5))
    return max(1, round(_CALIBRATION_LOOPS * ms * 1e6 / best))


def _time_burn(loops: int) -> int:
    start = time.perf_counter_ns()
    burn(loops)
    return max(1, time.perf_counter_ns() - start)
