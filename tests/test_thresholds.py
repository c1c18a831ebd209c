"""--threshold: parsing, judging a real run, and the CLI's exit code 99."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from dbload.api import run
from dbload.errors import UsageError
from dbload.measure.result import Result
from dbload.measure.thresholds import judge, parse_threshold
from test_cli import _cli, _one_line_error


@pytest.fixture(scope="module")
def small_run(seeded_dsn: str) -> Result:
    return run("select", mode="async", concurrency=2, transactions=300, seed=1, dsn=seeded_dsn)


@pytest.mark.parametrize(
    ("text", "metric", "op", "value"),
    [
        ("p99<20ms", "p99", "<", 20.0),
        ("p99.9 <= 1.5s", "p99.9", "<=", 1500.0),
        ("mean<800us", "mean", "<", 0.8),
        ("tps>500", "tps", ">", 500.0),
        ("tps>=500/s", "tps", ">=", 500.0),
        ("errors<0.1%", "errors%", "<", 0.1),
        ("errors<=3", "errors", "<=", 3.0),
    ],
)
def test_parse(text: str, metric: str, op: str, value: float) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.op, threshold.value) == (metric, op, value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("latency<20ms", "unknown metric 'latency'"),
        ("p99<20", "needs a unit"),
        ("p99<20 parsecs", "needs a unit"),
        ("p99<20h", "needs a unit"),
        ("tps>500ms", "tps takes no unit"),
        ("errors<1ms", "errors take % or a count"),
        ("p120<1ms", "between 0 and 100"),
        ("p99=20ms", "is not METRIC<VALUE"),
        ("", "is not METRIC<VALUE"),
    ],
)
def test_parse_refuses(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_threshold(text)


def test_judge_against_a_real_run(small_run: Result) -> None:
    p99 = small_run.latency.p99
    verdicts = judge(
        tuple(
            parse_threshold(t)
            for t in (f"p99<{p99 * 2 + 1}ms", f"p99<{p99 / 2}ms", "tps>0", "errors<0.1%", "p95<1s")
        ),
        small_run,
    )
    assert [v.passed for v in verdicts] == [True, False, True, True, True]
    assert verdicts[0].actual == pytest.approx(p99, rel=0.01)
    assert verdicts[1].describe().startswith(f"p99<{p99 / 2}ms (was ")


def test_latency_threshold_fails_without_successful_transactions(small_run: Result) -> None:
    empty = replace(small_run, ok=0, failed=5)
    (verdict,) = judge((parse_threshold("p99<1s"),), empty)
    assert not verdict.passed and "no successful transaction" in verdict.describe()


def test_cli_fails_a_run_with_exit_99_and_records_it(seeded_dsn: str, tmp_path: Path) -> None:
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-n", "200", "-c", "2", "--json", str(out_file),
        "--threshold", "errors<1", "--threshold", "tps>100000000",
    )  # fmt: skip
    _one_line_error(code, err, "threshold failed: tps>100000000 (was")
    assert code == 99
    assert "✗ FAIL" in out and "✓ pass" in out
    data = json.loads(out_file.read_text())
    assert [(t["threshold"], t["passed"]) for t in data["thresholds"]] == [
        ("errors<1", True),
        ("tps>100000000", False),
    ]


def test_cli_passes_when_thresholds_hold(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--dsn", seeded_dsn, "-n", "100", "--threshold", "errors<1")
    assert code == 0, err
    assert "✓ pass" in out


def test_cli_bad_threshold_fails_before_the_run() -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://x@127.0.0.1:1/x", "--threshold", "p99<5")
    _one_line_error(code, err, "--threshold", "needs a unit")
    assert code == 2
