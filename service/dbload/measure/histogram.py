"""HDR histogram helpers: one place that knows hdrhistogram's API and units.

Latencies are recorded in microseconds; summaries are reported in
milliseconds. Encoded histograms (base64 HdrHistogram V2) are what crosses
process boundaries and lands in JSON, so merging stays lossless.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: anything slower is clamped, not dropped
SIGNIFICANT_FIGURES = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def record(hist: HdrHistogram, value_us: int, count: int = 1) -> None:
    """Record ``count`` latencies of ``value_us``, clamped to the histogram's
    range: slower than an hour is kept as an hour, not dropped."""
    hist.record_value(min(max(value_us, LOWEST_US), HIGHEST_US), count)


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")  # type: ignore[no-any-return]


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode("ascii"))


def merge(encoded: Iterable[str]) -> HdrHistogram:
    total = new_histogram()
    for item in encoded:
        total.decode_and_add(item.encode("ascii"))
    return total


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one histogram, in milliseconds."""

    count: int
    mean: float
    stddev: float
    min: float
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float


PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def summarize(hist: HdrHistogram) -> LatencySummary:
    """The histogram's percentiles, mean and stddev, as hdrhistogram's own
    getters compute them.

    Those getters walk all ~23,000 buckets in Python, three times: ~0.17 s a
    histogram, so a 10,000-statement script took half an hour to sum up.
    Here numpy finds the few hundred buckets in use and only they are
    walked; tests/test_histogram.py checks the figures against the getters.
    """
    count = hist.get_total_count()
    if count == 0:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
    used = np.flatnonzero(counts)
    weights = counts[used].astype(np.float64)
    values = [hist.get_value_from_index(int(i)) for i in used]
    medians = np.array([hist._hdr_median_equiv_value(v) for v in values], dtype=np.float64)
    mean = float(np.dot(weights, medians) / count)
    stddev = float(np.sqrt(np.dot(weights, (medians - mean) ** 2) / count))
    cumulative = np.cumsum(counts[used])
    pct = {}
    for p in PERCENTILES:
        at = int(np.searchsorted(cumulative, hist.get_target_count_at_percentile(p)))
        pct[p] = hist.get_highest_equivalent_value(values[min(at, len(values) - 1)])

    def ms(us: float) -> float:
        return round(us / 1000.0, 3)

    return LatencySummary(
        count=count,
        mean=ms(mean),
        stddev=ms(stddev),
        min=ms(hist.get_min_value()),
        p50=ms(pct[50.0]),
        p90=ms(pct[90.0]),
        p99=ms(pct[99.0]),
        p99_9=ms(pct[99.9]),
        max=ms(hist.get_max_value()),
    )


def percentile_of_counts(counts: dict[int, int], pct: float) -> int:
    """Nearest-rank percentile of ``value -> count`` (0 when empty)."""
    total = sum(counts.values())
    if not total:
        return 0
    rank = max(1, -(-total * pct // 100))  # ceil without floats drifting
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    return max(counts)
