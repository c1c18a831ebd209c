"""The fast summary against hdrhistogram's own getters (the reference)."""

from __future__ import annotations

import random

import pytest

from dbload.measure.histogram import new_histogram, record, summarize


def _reference(hist):  # type: ignore[no-untyped-def]
    pct = hist.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])

    def ms(us: float) -> float:
        return round(us / 1000.0, 3)

    return (
        hist.get_total_count(),
        ms(hist.get_mean_value()),
        ms(hist.get_stddev()),
        ms(hist.get_min_value()),
        ms(pct[50.0]),
        ms(pct[90.0]),
        ms(pct[99.0]),
        ms(pct[99.9]),
        ms(hist.get_max_value()),
    )


@pytest.mark.parametrize("seed", range(6))
def test_summary_matches_hdrhistogram_getters(seed: int) -> None:
    rng = random.Random(seed)
    hist = new_histogram()
    shape = seed % 3
    for _ in range(rng.randint(1, 3000)):
        if shape == 0:
            value = int(rng.lognormvariate(6, 1.5))
        elif shape == 1:
            value = rng.choice([120, 121, 5000, 5_000_000])
        else:
            value = rng.randint(1, 3_600_000_000)
        record(hist, value, rng.randint(1, 5))
    got = summarize(hist)
    expected = _reference(hist)
    assert (got.count, got.min, got.p50, got.p90, got.p99, got.p99_9, got.max) == (
        expected[0], expected[3], expected[4], expected[5], expected[6], expected[7], expected[8]
    )  # fmt: skip
    assert got.mean == pytest.approx(expected[1], rel=1e-9, abs=0.001)
    assert got.stddev == pytest.approx(expected[2], rel=1e-6, abs=0.001)


def test_single_value_and_empty() -> None:
    hist = new_histogram()
    assert summarize(hist).count == 0
    record(hist, 250)
    assert summarize(hist) == summarize(hist)
    assert summarize(hist).p50 == _reference(hist)[4]


def test_the_bucket_index_records_what_record_value_records() -> None:
    import random

    from dbload.measure.histogram import BucketIndex, encode, new_histogram, record

    draw = random.Random(7)
    values = [draw.choice([0, 1, 2, 999, 2047, 2048, 2049, 10**6, 10**10]) for _ in range(50)]
    values += [int(draw.lognormvariate(7, 2)) for _ in range(5000)]
    plain, fast, other = new_histogram(), new_histogram(), new_histogram()
    buckets = BucketIndex()
    for value in values:
        n = draw.randint(1, 3)
        record(plain, value, n)
        buckets.record(fast, value, n)
        buckets.record(other, value, n)  # one index, several histograms
    assert encode(fast) == encode(plain) == encode(other)
    assert (fast.get_total_count(), fast.get_min_value(), fast.get_max_value()) == (
        plain.get_total_count(),
        plain.get_min_value(),
        plain.get_max_value(),
    )
