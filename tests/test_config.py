"""Option validation: pure checks that run before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbload.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DURATION_S,
    Plan,
    check_batch,
    check_concurrency,
    check_output,
    parse_timeout_ms,
)
from dbload.errors import UsageError
from dbload.workload.parser import load_workload


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (None, 0),
        ("0", 0),
        ("250", 250),
        ("100ms", 100),
        ("2s", 2000),
        ("1.5s", 1500),
        ("1min", 60_000),
    ],
)
def test_timeouts(text: str | None, ms: int) -> None:
    assert parse_timeout_ms(text) == ms


def test_defaults() -> None:
    assert check_batch(None, None) == (None, DEFAULT_DURATION_S)
    assert check_concurrency("async", None) == DEFAULT_CONCURRENCY
    assert check_concurrency("sequential", None) == 1
    # one connection running 8 clients' streams (modes/sequential.py)
    assert check_concurrency("sequential", 8) == 8


@pytest.mark.parametrize("n", [1, 7, 8, 100, 1001])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_quota_splits_the_batch_exactly(n: int, c: int) -> None:
    plan = Plan(load_workload(), "async", c, n, None, 0.0, 1, 1, "postgresql://x")
    quotas = [plan.quota(w) for w in range(c)]
    assert sum(q or 0 for q in quotas) == n
    assert max(q or 0 for q in quotas) - min(q or 0 for q in quotas) <= 1


def test_output_checks(tmp_path: Path) -> None:
    assert check_output(tmp_path / "ok.json") == tmp_path / "ok.json"
    with pytest.raises(UsageError, match="is a directory"):
        check_output(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        check_output(tmp_path / "no" / "r.json")
