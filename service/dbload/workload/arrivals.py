"""When transactions arrive, open loop: a constant ``--rate`` or ``--stages``.

``--stages 10s:100,30s:500,10s:0`` ramps the rate linearly from one target to
the next, k6's ramping-arrival-rate: from ``--rate`` (else 0) to 100/s over
the first 10 s, then to 500/s over 30 s, then down to 0. The stages are the
whole run.

A :class:`RateProfile` maps a count of arrivals to the time they are due, by
inverting the cumulative rate Λ(t) = ∫ rate. Drawing unit exponential gaps
on that count and mapping them through Λ⁻¹ gives a Poisson process whose rate
follows the profile (the time-change theorem), with the same draws, hence
the same seed behaviour, as a constant rate.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field

from dbload.errors import UsageError


@dataclass(frozen=True, slots=True)
class Stage:
    duration_s: float
    target: float  # transactions/s reached at the end of the stage


@dataclass(frozen=True, slots=True)
class RateProfile:
    """A piecewise-linear rate over time; no stages is a constant ``start``."""

    start: float
    stages: tuple[Stage, ...] = ()
    # when each stage starts, and the expected arrivals before it (and after
    # the last): computed once, since seconds_at runs per transaction
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _areas: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, areas, rate0 = [0.0], [0.0], self.start
        for stage in self.stages:
            starts.append(starts[-1] + stage.duration_s)
            areas.append(areas[-1] + (rate0 + stage.target) / 2 * stage.duration_s)
            rate0 = stage.target
        object.__setattr__(self, "_starts", tuple(starts))
        object.__setattr__(self, "_areas", tuple(areas))

    @property
    def duration_s(self) -> float | None:
        """How long the profile lasts (None: a constant rate runs as long as asked)."""
        return sum(s.duration_s for s in self.stages) if self.stages else None

    @property
    def peak(self) -> float:
        return max([self.start, *(s.target for s in self.stages)])

    def seconds_at(self, arrivals: float) -> float:
        """When the ``arrivals``-th expected transaction is due, in seconds
        from the start; ``math.inf`` once the stages have none left."""
        if not self.stages:
            return arrivals / self.start
        index = bisect.bisect_right(self._areas, arrivals) - 1
        if index >= len(self.stages):
            return math.inf
        rate0 = self.start if index == 0 else self.stages[index - 1].target
        stage = self.stages[index]
        slope = (stage.target - rate0) / stage.duration_s
        left = arrivals - self._areas[index]
        # rate0·τ + slope·τ²/2 = left, solved in the form that stays exact
        # when the slope is 0 or negative (a plateau, a ramp down)
        root = math.sqrt(max(rate0 * rate0 + 2 * slope * left, 0.0))
        if left <= 0:
            return self._starts[index]
        tau = 2 * left / (rate0 + root)
        return self._starts[index] + min(tau, stage.duration_s)

    def rate_at(self, t: float) -> float:
        """The scheduled rate ``t`` seconds from the start."""
        if not self.stages:
            return self.start
        index = bisect.bisect_right(self._starts, t) - 1
        if index >= len(self.stages):
            return 0.0
        rate0 = self.start if index == 0 else self.stages[index - 1].target
        stage = self.stages[index]
        return rate0 + (stage.target - rate0) * (t - self._starts[index]) / stage.duration_s

    def describe(self) -> str:
        """``0→100/s in 10 s, →500/s in 30 s, →0/s in 10 s``."""
        if not self.stages:
            return f"{self.start:,.6g}/s"
        head = f"{self.start:,.6g}"
        parts = [f"→{s.target:,.6g}/s in {s.duration_s:g} s" for s in self.stages]
        return head + ", ".join(parts)


_STAGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*:\s*(\d+(?:\.\d+)?)\s*\Z")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, None: 1.0}


def parse_stages(text: str, start: float | None = None) -> RateProfile:
    """``10s:100,30s:500,10s:0`` (DURATION:TARGET, comma-separated)."""
    stages = []
    for item in text.split(","):
        match = _STAGE.match(item)
        if match is None:
            raise UsageError(
                f"--stages: {item.strip()!r} is not DURATION:RATE; write e.g. 10s:100,30s:500,10s:0"
            )
        duration = float(match[1]) * _UNIT_S[match[2]]
        if duration <= 0:
            raise UsageError(f"--stages: {item.strip()!r}: a stage lasts more than 0 s")
        stages.append(Stage(duration_s=duration, target=float(match[3])))
    profile = RateProfile(start=start or 0.0, stages=tuple(stages))
    if profile.peak <= 0:
        raise UsageError("--stages: every rate is 0, so no transaction would run")
    return profile
