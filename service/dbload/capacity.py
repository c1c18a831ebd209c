"""``--find-max-rate --slo 'p99<20ms'``: the highest open-loop rate that
meets a service-level objective, found by bisection.

A closed-loop probe measures the capacity C first. The search then runs open
loop, each step as long as the probe: at C itself (a loose SLO may hold
there: no higher rate can be sustained, so the search stops), else bisects
(0, C). A step passes when every SLO holds *and* the workers kept up with
the schedule: under overload an open-loop run stretches past its end while
the backlog drains, which a short step's latency alone may not show.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Unpack

from dbload.api import (
    Observer,
    Options,
    RunOptions,
    prepare_options,
    ready_for,
    run_on,
)
from dbload.database.resolve import Database
from dbload.errors import DbloadError, UsageError
from dbload.measure.result import Result
from dbload.measure.thresholds import Threshold, Verdict, judge, parse_threshold

DEFAULT_STEPS = 6  # after the probe and the step at C: C/64 resolution
STEP_DURATION_S = 5.0
# Tolerance of the "kept up" test: achieved tps may fall short of the
# schedule by this fraction, plus 3 standard deviations of a Poisson count.
SHORTFALL = 0.05


@dataclass(frozen=True, slots=True)
class Step:
    rate: float  # scheduled, transactions/s
    result: Result
    verdicts: tuple[Verdict, ...]
    kept_up: bool  # achieved the scheduled rate, within Poisson noise

    @property
    def passed(self) -> bool:
        return self.kept_up and all(v.passed for v in self.verdicts)


@dataclass(frozen=True, slots=True)
class Capacity:
    slo: tuple[Threshold, ...]
    probe: Result  # closed loop: the capacity the search starts from
    steps: tuple[Step, ...]  # in the order walked
    interrupted: bool = False

    @property
    def capacity_tps(self) -> float:
        return self.probe.tps

    @property
    def max_rate(self) -> float | None:
        """The highest rate that passed (None: none did)."""
        passed = [s.rate for s in self.steps if s.passed]
        return max(passed) if passed else None


def parse_slo(texts: Sequence[str]) -> tuple[Threshold, ...]:
    if not texts:
        raise UsageError("--find-max-rate needs an objective: --slo 'p99<20ms' (repeatable)")
    return tuple(parse_threshold(text, "--slo") for text in texts)


def search_options(options: Options) -> Options:
    """A search sets the rate itself and runs each step for a time (5 s
    unless ``duration`` says otherwise)."""
    if options.get("rate") is not None or options.get("stages") is not None:
        raise UsageError("--find-max-rate sets the rate itself; drop --rate and --stages")
    if options.get("transactions") is not None:
        raise UsageError("--find-max-rate runs each step for a time; use -T, not -n")
    return Options(**{**options, "duration": options.get("duration") or STEP_DURATION_S})


def find_max_rate(
    workload: str | None = None,
    *,
    slo: Sequence[str],
    mode: str = "async",
    concurrency: int | None = None,
    steps: int = DEFAULT_STEPS,
    dsn: str | None = None,
    db: str = "auto",
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    on_step: Callable[[Step], None] | None = None,
    **options: Unpack[Options],
) -> Capacity:
    """Find the highest open-loop rate at which ``slo`` (``p99<20ms``, ...)
    holds; ``duration`` is each step's length (default 5 s). When no rate
    tried meets it, the result's ``max_rate`` is None."""
    objectives = parse_slo(slo)
    prepared = prepare_options(workload, mode, concurrency, **search_options(options))
    with ready_for(prepared, db, dsn, observer) as (database, scale):
        capacity = search(
            database, scale, prepared, objectives,
            steps=steps, stop=stop, observer=observer, on_step=on_step,
        )  # fmt: skip
    return capacity


def search(
    database: Database,
    scale: int,
    options: RunOptions,
    slo: tuple[Threshold, ...],
    *,
    steps: int = DEFAULT_STEPS,
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Capacity:
    """The probe, then the bisection, on a ready database."""
    stop = stop or threading.Event()
    probe = run_on(database, scale, options, stop=stop, observer=observer)
    if probe.ok == 0:
        raise DbloadError("the closed-loop probe completed no transaction: nothing to search")
    walked: list[Step] = []

    def step(rate: float) -> Step:
        result = run_on(
            database, scale, dataclasses.replace(options, rate=rate), stop=stop, observer=observer
        )
        done = Step(rate, result, judge(slo, result), _kept_up(rate, result))
        walked.append(done)
        if on_step is not None:
            on_step(done)
        return done

    low, high = 0.0, probe.tps
    if not stop.is_set() and not step(high).passed:
        for _ in range(steps):
            if stop.is_set():
                break
            middle = (low + high) / 2
            if step(middle).passed:
                low = middle
            else:
                high = middle
    return Capacity(slo=slo, probe=probe, steps=tuple(walked), interrupted=stop.is_set())


def _kept_up(rate: float, result: Result) -> bool:
    """Did the run achieve its schedule? Poisson noise on the count allowed."""
    if result.duration_s <= 0:
        return False
    noise = 3 * math.sqrt(rate / result.duration_s)
    return result.tps >= rate * (1 - SHORTFALL) - noise
