"""HDR histogram helpers: one place that knows hdrhistogram's API and units.

Latencies are recorded in microseconds; summaries are reported in
milliseconds. Encoded histograms (base64 HdrHistogram V2) are what crosses
process boundaries and lands in JSON, so merging stays lossless.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

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


class BucketIndex:
    """:func:`record`, with each distinct value's bucket looked up once.

    hdrhistogram finds a value's bucket in five Python calls (~3 µs), and the
    recorder records each interval's distinct latencies into three
    histograms: at 12k tps that was 7 % of the async worker's time (a
    sampling profile of ``-w select``). Every histogram of dbload has the
    same layout (:func:`new_histogram`), so a value's counts index is the
    same in all of them; this keeps it, for at most one entry per bucket a
    run meets, and updates the histogram as ``record_value`` does.
    """

    __slots__ = ("_index", "_of")

    def __init__(self) -> None:
        self._of = new_histogram()._counts_index_for
        self._index: dict[int, int] = {}

    def record(self, hist: HdrHistogram, value_us: int, count: int = 1) -> None:
        value = min(max(value_us, LOWEST_US), HIGHEST_US)
        index = self._index.get(value)
        if index is None:
            index = self._index[value] = self._of(value)
        hist.counts[index] += count
        hist.total_count += count
        if value < hist.min_value:
            hist.min_value = value
        if value > hist.max_value:
            hist.max_value = value


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


_CHUNK = 512  # bytes of the counts array compared at once against zeros
_ZEROS = bytes(_CHUNK)


def _used_buckets(hist: HdrHistogram) -> list[tuple[int, int]]:
    """(bucket index, count) of the non-empty buckets, in order.

    Blocks of the counts array are compared against zeros (a memcmp each)
    and only the blocks with something in them are read word by word.
    numpy would find them too, but importing it in every run starts
    OpenBLAS's thread pool, which takes the workers' CPU for nothing.
    """
    raw = bytes(memoryview(hist.counts).cast("B"))[: hist.counts_len * 8]
    words = memoryview(raw).cast("Q")
    used: list[tuple[int, int]] = []
    for offset in range(0, len(raw), _CHUNK):
        block = raw[offset : offset + _CHUNK]
        if block != _ZEROS[: len(block)]:
            first = offset // 8
            used += [(i, words[i]) for i in range(first, first + len(block) // 8) if words[i]]
    return used


def summarize(hist: HdrHistogram) -> LatencySummary:
    """The histogram's percentiles, mean and stddev, as hdrhistogram's own
    getters compute them.

    Those getters walk all ~23,000 buckets in Python, three times: ~0.17 s a
    histogram, so a 10,000-statement script took half an hour to sum up.
    Here only the few hundred buckets in use are walked;
    tests/test_histogram.py checks the figures against the getters.
    """
    count = hist.get_total_count()
    if count == 0:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    used = _used_buckets(hist)
    values = [hist.get_value_from_index(i) for i, _ in used]
    weights = [n for _, n in used]
    medians = [hist._hdr_median_equiv_value(v) for v in values]
    mean = math.fsum(n * m for n, m in zip(weights, medians, strict=True)) / count
    spread = math.fsum(n * (m - mean) ** 2 for n, m in zip(weights, medians, strict=True))
    cumulative = list(accumulate(weights))
    pct = {}
    for p in PERCENTILES:
        at = bisect_left(cumulative, hist.get_target_count_at_percentile(p))
        pct[p] = hist.get_highest_equivalent_value(values[min(at, len(values) - 1)])

    def ms(us: float) -> float:
        return round(us / 1000.0, 3)

    return LatencySummary(
        count=count,
        mean=ms(mean),
        stddev=ms(math.sqrt(spread / count)),
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
