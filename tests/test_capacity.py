"""--find-max-rate --slo: the bisection, its verdicts, its report, its exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from dbload.capacity import Capacity, find_max_rate, parse_slo, search_options
from dbload.errors import UsageError
from dbload.report.capacity import capacity_table, summary
from dbload.report.load import load_any
from test_cli import _cli, _one_line_error


@pytest.fixture(scope="module")
def loose(seeded_dsn: str) -> Capacity:
    """An SLO every rate meets: the search stops at the closed-loop capacity
    (`slow`: two workers, 50 ms each, 40/s; a step at exactly the capacity
    keeps up within its Poisson noise)."""
    return find_max_rate(
        "slow", slo=["p99<10s"], mode="async", concurrency=2, duration=1.0, dsn=seeded_dsn,
        seed=1,
    )  # fmt: skip


@pytest.mark.slow
def test_a_loose_slo_holds_at_capacity_and_the_search_stops(loose: Capacity) -> None:
    assert loose.probe.rate is None and loose.probe.ok > 0  # closed loop
    assert len(loose.steps) == 1
    (step,) = loose.steps
    assert step.rate == loose.capacity_tps and step.result.rate == step.rate
    assert step.passed and loose.max_rate == step.rate
    assert "tps, 100 % of the closed-loop " in summary(loose)


@pytest.mark.slow
def test_the_bisection_walks_down_from_capacity(seeded_dsn: str) -> None:
    """`slow` waits 50 ms per transaction: p99<30ms fails at every rate, so
    the walk halves the rate at every step, from the capacity down."""
    capacity = find_max_rate(
        "slow", slo=["p99<30ms"], mode="async", concurrency=4, duration=0.5, steps=3,
        dsn=seeded_dsn, seed=1,
    )  # fmt: skip
    rates = [s.rate for s in capacity.steps]
    c = capacity.capacity_tps
    assert rates == pytest.approx([c, c / 2, c / 4, c / 8])
    assert not any(s.passed for s in capacity.steps) and capacity.max_rate is None
    assert all(s.result.latency.p99 > 30 for s in capacity.steps)
    assert summary(capacity).startswith("no rate meets p99<30ms: even ")


@pytest.mark.slow
def test_a_step_passes_only_when_the_workers_kept_up(seeded_dsn: str) -> None:
    """p99<10s holds at any rate within a second, but one worker and a 50 ms
    transaction cannot serve 4x its capacity: that step fails as "behind"."""
    capacity = find_max_rate(
        "slow", slo=["p99<10s"], mode="async", concurrency=1, duration=1.0, steps=1,
        dsn=seeded_dsn, seed=1,
    )  # fmt: skip
    assert capacity.steps[0].passed  # at capacity: kept up
    from dbload.capacity import _kept_up

    overloaded = capacity.steps[0].result
    assert not _kept_up(4 * overloaded.tps, overloaded)


def test_report_table_and_json(loose: Capacity, tmp_path: Path) -> None:
    out = Console(width=80, record=True)
    out.print(capacity_table(loose))
    text = out.export_text()
    assert "probe" in text and "closed" in text and "pass" in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.slow
def test_cli_finds_a_rate_writes_json_and_report_reads_it(seeded_dsn: str, tmp_path: Path) -> None:
    path = tmp_path / "cap.json"
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-w", "select", "-c", "2", "-T", "0.5", "--seed", "1",
        "--find-max-rate", "--slo", "p99<10s", "--slo", "errors<1%", "--json", str(path),
    )  # fmt: skip
    assert code == 0, err
    assert "max rate meeting p99<10s, errors<1%" in out
    data = json.loads(path.read_text())
    assert data["schema"] == "dbload/capacity@2" and data["max_rate"] > 0
    assert data["steps"][0]["run"]["thresholds"][0]["passed"] is True
    assert len(load_any(path)) == 1 + len(data["steps"])  # `dbload report` reads it


@pytest.mark.slow
def test_cli_an_slo_no_rate_can_meet_exits_99(seeded_dsn: str) -> None:
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-w", "select", "-c", "2", "-T", "0.3", "--seed", "1",
        "--find-max-rate", "--slo", "p99<1us",
    )  # fmt: skip
    assert code == 99
    _one_line_error(code, err, "no rate meets p99<1us: even ", "(was ")
    assert "find-max-rate: p99<1us" in out  # the walk is still shown


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--find-max-rate"], "needs an objective: --slo"),
        (["--slo", "p99<5ms"], "give both"),
        (["--find-max-rate", "--slo", "p99<5"], "a latency needs a unit"),
        (["--find-max-rate", "--slo", "speed>5"], "unknown metric 'speed'"),
        (["--find-max-rate", "--slo", "p99<5ms", "-R", "100"], "drop --rate and --stages"),
        (["--find-max-rate", "--slo", "p99<5ms", "--stages", "1s:5"], "drop --rate and --stages"),
        (["--find-max-rate", "--slo", "p99<5ms", "-n", "100"], "use -T, not -n"),
        (["--find-max-rate", "--slo", "p99<5ms", "--threshold", "tps>1"], "drop --threshold"),
    ],
)
def test_cli_bad_search_options_are_one_line(args: list[str], needle: str) -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://x@127.0.0.1:1/x", *args)
    _one_line_error(code, err, needle)
    assert code == 2


def test_slo_errors_name_the_slo_flag() -> None:
    with pytest.raises(UsageError, match=r"^--slo: "):
        parse_slo(["p99<"])
    with pytest.raises(UsageError, match="use -T, not -n"):
        search_options({"transactions": 10})
    assert search_options({"duration": 2.0}) == {"duration": 2.0}
    assert search_options({}) == {"duration": 5.0}
