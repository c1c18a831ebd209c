"""The recorder and histograms: pure measurement, no database needed."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil
import pytest
from hdrh.histogram import HdrHistogram

from dbload.measure.cpu import CpuMeter, find_postmaster
from dbload.measure.histogram import decode, encode, merge, new_histogram, record, summarize
from dbload.measure.recorder import NS_PER_S, Recorder
from dbload.workload.model import SLEEP

MS = 1_000_000  # ns


def record_many(hist: HdrHistogram, values_us: Iterable[int]) -> None:
    for value in values_us:
        record(hist, value)


def _record(rec: Recorder, start: int, latency_ns: int, error: str | None = None) -> None:
    steps = ((0, (1,)), (SLEEP, (0.0,)), (1, (2,)))
    rec.record(start, start + latency_ns, steps, [latency_ns // 2, 0, latency_ns // 2], error)


def test_summary_percentiles_match_recorded_values() -> None:
    hist = new_histogram()
    record_many(hist, range(1, 1001))  # 1..1000 µs
    s = summarize(hist)
    assert s.count == 1000
    assert s.p50 == pytest.approx(0.5, rel=0.01)
    assert s.p99 == pytest.approx(0.99, rel=0.01)
    assert s.max == pytest.approx(1.0, rel=0.01)
    assert s.mean == pytest.approx(0.5005, rel=0.01)


def test_empty_summary_is_zero() -> None:
    assert summarize(new_histogram()).count == 0


def test_encoded_histograms_merge_losslessly() -> None:
    a, b = new_histogram(), new_histogram()
    record_many(a, [100] * 50 + [5000] * 3)
    record_many(b, [200] * 20 + [90_000])
    both = new_histogram()
    record_many(both, [100] * 50 + [5000] * 3 + [200] * 20 + [90_000])
    merged = merge([encode(a), encode(b)])
    assert merged.get_total_count() == both.get_total_count() == 74
    assert summarize(merged) == summarize(both)
    assert summarize(decode(encode(a))) == summarize(a)


def test_recorder_counts_transactions_statements_and_errors() -> None:
    rec = Recorder(n_statements=2)
    t0 = rec.begin()
    for i in range(10):
        _record(rec, t0 + i * MS, 2 * MS)
    _record(rec, t0 + 20 * MS, 1 * MS, error="40001")
    rec.finish()
    assert (rec.ok, rec.failed) == (10, 1)
    assert rec.errors == {"40001": 1}
    # sleeps are not statements; the failed transaction's statements still ran
    assert rec.statement_count == 22
    assert rec.transactions.get_total_count() == 10
    assert [h.get_total_count() for h in rec.statements] == [11, 11]
    assert sum(p.transactions for p in rec.series) == 11
    assert sum(p.errors for p in rec.series) == 1


def test_warmup_transactions_are_left_out() -> None:
    rec = Recorder(n_statements=2)
    t0 = rec.begin(warmup_s=0.05)
    _record(rec, t0 + MS, MS)  # inside warm-up
    time.sleep(0.06)
    _record(rec, time.perf_counter_ns(), MS)
    rec.finish()
    assert rec.warmup_transactions == 1
    assert rec.ok == 1


def test_series_has_one_point_per_interval_including_idle_ones() -> None:
    rec = Recorder(n_statements=2, interval_s=0.01)
    t0 = rec.begin()
    _record(rec, t0, MS)
    # a transaction finishing 5 intervals later rolls the idle ones too
    _record(rec, t0 + 50 * MS, MS)
    time.sleep(max(0.0, (t0 + 60 * MS - time.perf_counter_ns()) / NS_PER_S))
    rec.finish()
    ticks = [p.t for p in rec.series]
    assert ticks == sorted(ticks)
    assert len(rec.series) >= 5
    assert sum(p.transactions for p in rec.series) == 2
    assert any(p.transactions == 0 for p in rec.series)
    assert rec.series[0].p99_ms == pytest.approx(1.0, rel=0.01)


def test_cpu_meter_measures_this_process() -> None:
    meter = CpuMeter(None, "no server")
    meter.start()
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        pass
    use = meter.stop()
    assert use.client_s > 0
    assert use.server_s is None and use.server_pct is None
    assert use.cores == psutil.cpu_count()


def test_postmaster_lookup_explains_a_missing_server() -> None:
    proc, note = find_postmaster(None)
    assert proc is None and "not visible" in note
    proc, note = find_postmaster("/nonexistent/data/dir")
    assert proc is None and "not on this machine" in note


def test_interval_is_a_second_by_default() -> None:
    assert Recorder(1).interval_ns == NS_PER_S


def test_interval_latencies_reach_the_histograms_a_few_at_a_time() -> None:
    """An interval's distinct latencies are queued, not recorded at once
    (that stalled the loop), drained by the next records faster than they
    come, and all recorded by finish(); the interval's p99 is exact."""
    rec = Recorder(n_statements=2, interval_s=0.01)
    t0 = rec.begin()
    for us in range(1, 1001):  # 1,000 distinct latencies in the first interval
        _record(rec, t0, us * 1000)
    _record(rec, t0 + 20 * MS, MS)  # rolls the first interval
    pending = len(rec._pending)
    assert pending >= 1000 and rec.transactions.get_total_count() < 1000
    assert rec.series[0].p99_ms == pytest.approx(0.99)
    _record(rec, t0 + 20 * MS, MS)
    assert len(rec._pending) < pending  # drained faster than one record adds
    rec.finish()
    assert not rec._pending
    assert rec.transactions.get_total_count() == rec.ok == 1002
    assert rec.statements[0].get_total_count() == 1002
    assert summarize(rec.transactions).max == pytest.approx(1000 / 1000, rel=0.01)


def test_pending_values_go_to_the_histograms_of_their_time() -> None:
    """processes mode swaps in fresh histograms at each interval: a value
    queued before the swap is recorded in the new ones, never lost."""
    rec = Recorder(n_statements=2, interval_s=0.01)
    t0 = rec.begin()
    taken: list[int] = []
    for us in range(1, 201):
        _record(rec, t0, us * 1000)
    _record(rec, t0 + 20 * MS, MS)
    taken.append(rec.transactions.get_total_count())
    rec.transactions = new_histogram()  # what DeltaTaker.take does
    rec.finish()
    assert taken[0] + rec.transactions.get_total_count() == rec.ok == 201


def test_the_first_message_of_each_error_code_is_kept() -> None:
    rec = Recorder(n_statements=2)
    t0 = rec.begin()
    steps = ((0, ("1",)),)
    rec.record(t0, t0 + MS, steps, [MS], "22012", message="division by zero")
    rec.record(t0, t0 + MS, steps, [MS], "22012", message="another division")
    rec.record(t0, t0 + MS, steps, [MS], "08006")  # no message: nothing to keep
    rec.record(t0, t0 + MS, steps, [MS], "08006", message="server closed the connection")
    rec.record(t0, t0 + MS, steps, [MS], None, message="ignored: not an error")
    rec.finish()
    assert rec.errors == {"22012": 2, "08006": 2}
    assert rec.error_examples == {
        "22012": "division by zero",
        "08006": "server closed the connection",
    }


@pytest.mark.parametrize("after_tick_us", [0, 100, 400, 999, 1001, 1500, 30_000])
def test_the_series_never_ends_with_two_points_at_the_same_t(after_tick_us: int) -> None:
    """A run ends just after a tick (a -T deadline is one) with a few
    transactions still in flight: they belong to the last interval, not to
    a point of their own whose t rounds to the tick's."""
    rec = Recorder(n_statements=2)
    offset_ns = after_tick_us * 1000 - 100_000  # finish() comes ~0.1 ms after the last end
    t0 = rec.begin(0.0, at_ns=time.perf_counter_ns() - NS_PER_S - offset_ns)
    _record(rec, t0 + 500 * MS, MS)
    _record(rec, t0 + NS_PER_S + offset_ns - MS, MS)  # ends ~0.1 ms before finish()
    rec.finish()
    times = [point.t for point in rec.series]
    assert len(set(times)) == len(times) and times == sorted(times), times
    assert sum(point.transactions for point in rec.series) == 2
