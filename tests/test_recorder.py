"""The recorder's per-script figures and its transaction sink (-l)."""

from __future__ import annotations

import time
from pathlib import Path

from dbload.measure.merge import DeltaTaker, merge_into
from dbload.measure.recorder import Interval, Recorder, without_sliver
from dbload.measure.result import script_stats
from dbload.report.pgbench_log import LogSpec


def _recorder(scripts: int = 2) -> tuple[Recorder, int]:
    recorder = Recorder(3, scripts=scripts)
    start = recorder.begin()
    return recorder, start


def _feed(recorder: Recorder, start: int) -> None:
    """Script 0: 6 ok (1 ms) and 1 failed; script 1: 3 ok (5 ms), by two clients."""
    for k in range(6):
        recorder.record(start, start + 1_000_000, [(0, ())], [900_000], script=0, client=k % 2)
    recorder.record(start, start + 10, [], [], "22012", script=0, client=1)
    for k in range(3):
        recorder.record(start, start + 5_000_000, [(1, ()), (2, ())], [1, 2], script=1, client=k)


def test_per_script_counts_add_up_to_the_run() -> None:
    recorder, start = _recorder()
    _feed(recorder, start)
    recorder.finish()
    assert (recorder.script_ok, recorder.script_failed) == ([6, 3], [1, 0])
    assert sum(recorder.script_ok) == recorder.ok and sum(recorder.script_failed) == recorder.failed
    stats = script_stats(recorder, [("a", 3, (0,)), ("b", 1, (1, 2))])
    assert [(s.name, s.weight, s.ok, s.failed, s.transactions) for s in stats] == [
        ("a", 3, 6, 1, 7),
        ("b", 1, 3, 0, 3),
    ]
    assert stats[0].latency.count == 6 and 0.9 < stats[0].latency.p50 < 1.1
    assert stats[1].latency.count == 3 and 4.9 < stats[1].latency.p50 < 5.1


def test_a_recorder_built_without_the_count_grows() -> None:
    recorder = Recorder(1)  # as processes mode's worker recorder is
    start = recorder.begin()
    recorder.record(start, start + 1000, [], [], script=4)
    recorder.finish()
    assert recorder.script_ok == [0, 0, 0, 0, 1]


def test_per_script_figures_merge_across_processes() -> None:
    whole, start = _recorder()
    _feed(whole, start)
    whole.finish()
    parent = Recorder(3, scripts=2)
    parent.begin(at_ns=start)
    for _ in range(2):  # two workers' deltas, as processes mode sends them
        worker = Recorder(3)  # knows no script count
        worker.begin(at_ns=start)
        taker = DeltaTaker()
        _feed(worker, start)
        merge_into(parent, taker.take(worker))
        worker.finish()
        merge_into(parent, taker.take(worker))  # nothing new: adds nothing
    assert parent.script_ok == [2 * n for n in whole.script_ok]
    assert parent.script_failed == [2 * n for n in whole.script_failed]
    assert [h.get_total_count() for h in parent.script_latency] == [12, 6]


def test_every_measured_transaction_reaches_the_sink(tmp_path: Path) -> None:
    recorder = Recorder(3, scripts=2)
    spec = LogSpec(prefix=str(tmp_path / "x"), pid=1)
    recorder.attach_log(spec)
    start = recorder.begin(warmup_s=0.5)
    # warm-up transactions are in no figure, nor in the log
    recorder.record(start, start + 10, [], [], script=0, client=0)
    measured = recorder.measure_from_ns
    _feed(recorder, measured)
    recorder.skip(measured, 0, script=1, client=5)
    recorder.finish()
    lines = [line.split() for line in (tmp_path / "x.1").read_text().splitlines()]
    assert len(lines) == recorder.ok + recorder.failed + recorder.skipped == 11
    assert [f[2] for f in lines].count("failed") == 1
    assert lines[-1][:4] == ["5", "1", "skipped", "1"]
    assert {f[3] for f in lines} == {"0", "1"}
    assert recorder.log is None  # closed


def test_no_sink_by_default() -> None:
    recorder, start = _recorder()
    recorder.attach_log(None)
    _feed(recorder, start)
    recorder.finish()
    assert recorder.log is None and recorder.ok == 9


def test_skips_count_per_run_not_per_script() -> None:
    recorder, start = _recorder()
    recorder.skip(start + 1, 5, script=1)
    recorder.finish()
    assert recorder.skipped == 1 and recorder.script_ok == [0, 0]
    assert time.perf_counter_ns() >= recorder.ended_ns


def _series(*points: tuple[float, int]) -> tuple[Interval, ...]:
    return tuple(Interval(t=t, transactions=n, errors=0, p99_ms=1.0) for t, n in points)


def test_a_last_sliver_is_left_out_of_the_rate_series() -> None:
    """A run that ends 1 ms past its last whole second (a worker finishing
    late) has no rate in that ms: the series to judge its end by stops at
    the whole second."""
    sliver = _series((1.0, 100), (2.0, 110), (2.001, 0))
    assert without_sliver(sliver) == sliver[:2]
    half = _series((1.0, 100), (2.0, 110), (2.5, 55))
    assert without_sliver(half) == half
    assert without_sliver(_series((0.3, 30))) == _series((0.3, 30))
    assert without_sliver(()) == ()
