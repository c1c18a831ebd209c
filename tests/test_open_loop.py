"""--rate (open loop) and --latency-limit in every mode, on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.errors import UsageError
from dbload.measure.recorder import without_sliver
from dbload.measure.result import Result
from dbload.report.json_ import to_dict, write_json
from dbload.report.load import load_result
from drivers_matrix import CONCURRENT_MODE_DRIVERS, MODE_DRIVERS, assert_ran_on, pair_id, pairs
from test_cli import _cli, _one_line_error


def _run(dsn: str, **kwargs: object) -> Result:
    return run_on(Database(kind="dsn", dsn=dsn), 1, prepare_options(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "driver"), pairs())
@pytest.mark.slow
def test_rate_schedules_the_batch(seeded_dsn: str, mode: str, driver: str) -> None:
    concurrency = None if mode == "sequential" else 2
    result = _run(
        seeded_dsn, workload="select", mode=mode, driver=driver, concurrency=concurrency,
        transactions=200, rate=400, seed=3,
    )  # fmt: skip
    assert_ran_on(result, driver)
    assert (result.ok, result.failed, result.rate) == (200, 0, 400)
    assert result.lag is not None and result.lag.count == 200
    # 200 Poisson arrivals at 400/s: the run lasts about half a second
    assert 0.5 < result.tps / 400 < 1.5


@pytest.mark.slow
def test_the_same_seed_schedules_the_same_arrivals_in_every_mode(seeded_dsn: str) -> None:
    """Every arrival due before the deadline runs, late or not: with a seed,
    how many there are depends on the schedule alone, never on the mode or
    the driver (a worker that drew its first due time twice would skip an
    arrival)."""
    for seed in (1, 2):
        counts = {
            pair_id(mode, driver): _run(
                seeded_dsn,
                workload="select",
                mode=mode,
                driver=driver,
                concurrency=4,
                duration=0.5,
                rate=40,
                seed=seed,
            ).ok
            for mode, driver in MODE_DRIVERS
        }
        assert len(set(counts.values())) == 1, (seed, counts)


@pytest.mark.slow
def test_open_loop_latency_includes_the_queue_closed_loop_hides(seeded_dsn: str) -> None:
    """One worker, a 50 ms transaction, 40 arrivals a second: twice what it can
    serve. Closed loop reports 50 ms; open loop reports the growing queue."""
    common = {"workload": "slow", "mode": "async", "concurrency": 1, "duration": 2.0, "seed": 1}
    closed = _run(seeded_dsn, **common)
    opened = _run(seeded_dsn, **common, rate=40)
    assert closed.latency.p50 < 60
    assert opened.lag is not None and opened.lag.p50 > 100
    assert opened.latency.p50 > 4 * closed.latency.p50
    assert opened.tps == pytest.approx(closed.tps, rel=0.2)  # the same server capacity


@pytest.mark.slow
def test_latency_limit_skips_what_is_already_late_and_counts_late_ones(seeded_dsn: str) -> None:
    result = _run(
        seeded_dsn, workload="slow", mode="async", concurrency=1, duration=2.0, rate=40,
        latency_limit="80ms", seed=1,
    )  # fmt: skip
    assert result.skipped > 0
    assert result.latency_limit_ms == 80
    assert result.ok + result.failed > 0


def test_latency_limit_closed_loop_counts_late(seeded_dsn: str) -> None:
    result = _run(
        seeded_dsn, workload="slow", mode="async", concurrency=2, transactions=10,
        latency_limit="10ms",
    )  # fmt: skip
    assert (result.late, result.skipped) == (10, 0)  # every 50 ms transaction is late


def test_open_loop_figures_survive_json(seeded_dsn: str, tmp_path: Path) -> None:
    result = _run(
        seeded_dsn, workload="select", mode="threads", concurrency=2, transactions=50, rate=500,
        latency_limit="50ms",
    )  # fmt: skip
    path = tmp_path / "r.json"
    write_json(path, to_dict(result))
    data = json.loads(path.read_text())
    assert data["open_loop"]["rate"] == 500 and data["open_loop"]["lag_ms"]["p99"] >= 0
    assert to_dict(load_result(path)) == data


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"rate": 0}, "--rate must be a positive"),
        ({"rate": -5}, "--rate must be a positive"),
        ({"latency_limit": "soon"}, "--latency-limit"),
        ({"latency_limit": "0ms"}, "--latency-limit"),
    ],
)
def test_bad_open_loop_options(options: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        prepare_options(workload="select", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "needle"), [(["-R", "0"], "--rate"), (["-L", "x"], "--latency")])
def test_cli_bad_open_loop_options_are_one_line(args: list[str], needle: str) -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://x@127.0.0.1:1/x", *args)
    _one_line_error(code, err, needle)
    assert code == 2


@pytest.mark.parametrize(("mode", "driver"), pairs(CONCURRENT_MODE_DRIVERS))
@pytest.mark.slow
def test_stages_ramp_the_rate(seeded_dsn: str, mode: str, driver: str) -> None:
    """0→600/s over 2 s: about 150 transactions in the first second and 450
    in the second (the area under the ramp), in the per-second series."""
    result = _run(
        seeded_dsn, workload="select", mode=mode, driver=driver, concurrency=4, stages="2s:600",
        seed=2,
    )  # fmt: skip
    assert_ran_on(result, driver)
    assert result.stages is not None and result.rate == 600
    assert result.planned_duration_s == 2
    # a run ending over 1 ms past its deadline (a busy machine) adds a sliver
    counts = [interval.transactions for interval in without_sliver(result.series)]
    assert len(counts) == 2, counts
    for got, want in zip(counts, [150, 450], strict=True):
        assert abs(got - want) < 5 * want**0.5, counts


@pytest.mark.slow
def test_stages_survive_json(seeded_dsn: str, tmp_path: Path) -> None:
    result = _run(
        seeded_dsn, workload="select", concurrency=2, stages="500ms:100,500ms:300", rate=50
    )
    path = tmp_path / "r.json"
    write_json(path, to_dict(result))
    data = json.loads(path.read_text())
    assert data["open_loop"]["stages"] == {
        "start_rate": 50,
        "stages": [{"duration_s": 0.5, "target": 100}, {"duration_s": 0.5, "target": 300}],
    }
    assert load_result(path).stages == result.stages


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"stages": "10s"}, "is not DURATION:RATE"),
        ({"stages": "10s:-1"}, "is not DURATION:RATE"),
        ({"stages": "0s:10"}, "lasts more than 0 s"),
        ({"stages": "5s:0"}, "every rate is 0"),
        ({"stages": "5s:10", "duration": 3.0}, r"drop -n/--\w+ and -T"),
        ({"stages": "5s:10", "transactions": 30}, r"drop -n/--\w+ and -T"),
        ({"stages": "5s:10", "warmup": 1.0}, "drop --warmup"),
    ],
)
def test_bad_stages(options: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        prepare_options(workload="select", **options)  # type: ignore[arg-type]


def test_cli_malformed_stages_are_one_line() -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://x@127.0.0.1:1/x", "--stages", "10s:1,x")
    _one_line_error(code, err, "--stages", "'x'")
    assert code == 2
