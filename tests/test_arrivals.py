"""--stages: the rate profile, its parsing and its Poisson schedule.

The math is checked on its own (no server); the schedule end to end, with the
per-second series of a real run, in test_open_loop.py.
"""

from __future__ import annotations

import math
import random

import pytest

from dbload.errors import UsageError
from dbload.workload.arrivals import RateProfile, Stage, parse_stages


def test_parse_stages_ramps_from_zero_k6_style() -> None:
    profile = parse_stages("10s:100,30s:500,10s:0")
    assert profile == RateProfile(0.0, (Stage(10, 100), Stage(30, 500), Stage(10, 0)))
    assert (profile.duration_s, profile.peak) == (50, 500)
    assert [profile.rate_at(t) for t in (0, 5, 10, 25, 45, 50, 60)] == [
        0, 50, 100, 300, 250, 0, 0
    ]  # fmt: skip


def test_parse_stages_units_and_start_rate() -> None:
    profile = parse_stages("500ms:10, 1m:20 ,0.5h:30", start=5)
    assert [s.duration_s for s in profile.stages] == [0.5, 60, 1800]
    assert profile.start == 5 and profile.rate_at(0) == 5


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "is not DURATION:RATE"),
        ("10s", "is not DURATION:RATE"),
        ("10s:100,", "is not DURATION:RATE"),
        ("10x:100", "is not DURATION:RATE"),
        ("10s:-5", "is not DURATION:RATE"),
        ("10s:fast", "is not DURATION:RATE"),
        ("0s:100", "lasts more than 0 s"),
        ("10s:0,5s:0", "every rate is 0"),
    ],
)
def test_malformed_stages_are_usage_errors(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_stages(text)


def test_seconds_at_inverts_the_cumulative_rate() -> None:
    """The n-th expected arrival is due when the area under the rate reaches n."""
    profile = parse_stages("10s:100,30s:500,10s:0")
    # areas: 500 after the first ramp, 9,500 after the second, 12,000 in all
    assert profile.seconds_at(500) == pytest.approx(10)
    assert profile.seconds_at(9_500) == pytest.approx(40)
    assert profile.seconds_at(125) == pytest.approx(5)  # 0→50/s over 5 s: 125
    for t in (0.5, 7.0, 12.0, 33.3, 41.0, 49.9):
        area = _area(profile, t)
        assert profile.seconds_at(area) == pytest.approx(t, rel=1e-6)
    assert profile.seconds_at(12_000.5) == math.inf


def test_plateau_and_constant_rate() -> None:
    assert RateProfile(200.0).seconds_at(400) == pytest.approx(2.0)
    plateau = parse_stages("10s:100", start=100)
    assert plateau.seconds_at(250) == pytest.approx(2.5)


def test_poisson_draws_follow_the_profile() -> None:
    """Unit exponential gaps mapped through the profile: the count per second
    follows the rate (within 5 standard deviations of a Poisson count)."""
    profile = parse_stages("4s:2000,4s:0")
    draw = random.Random(1).expovariate
    counts = [0] * 8
    arrivals = 0.0
    while (t := profile.seconds_at(arrivals := arrivals + draw(1.0))) < 8:
        counts[int(t)] += 1
    expected = [_area(profile, s + 1) - _area(profile, s) for s in range(8)]
    for got, want in zip(counts, expected, strict=True):
        assert abs(got - want) < 5 * math.sqrt(want) + 1, (counts, expected)


def _area(profile: RateProfile, t: float, steps: int = 20_000) -> float:
    """∫₀ᵗ rate, by the trapezoid rule: independent of the closed form."""
    h = t / steps
    inner = sum(profile.rate_at(i * h) for i in range(1, steps))
    return h * (profile.rate_at(0) / 2 + inner + profile.rate_at(t) / 2)
