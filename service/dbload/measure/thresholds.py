"""Pass/fail criteria on a run (``--threshold 'p99<20ms'``), k6 style.

A threshold is parsed before the run, so a typo fails at once, and judged on
the finished :class:`~dbload.measure.result.Result`. The CLI exits 99 when
any fails, k6's convention, so a CI step fails on a regression.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from dbload.errors import UsageError
from dbload.measure.histogram import decode
from dbload.measure.result import Result

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_SPEC = re.compile(
    r"\s*(?P<metric>[a-z][a-z0-9_.]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>[a-z%/]*)\s*\Z",
    re.IGNORECASE,
)
_LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_NAMED_LATENCIES = ("mean", "min", "max")
_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)\Z")
METRICS = "p50, p90, p95, p99, p99.9 (any pN), mean, min, max, tps, errors"


@dataclass(frozen=True, slots=True)
class Threshold:
    text: str  # as the user wrote it
    metric: str  # "p99", "mean", "tps", "errors", "errors%"
    op: str
    value: float  # in the metric's unit: ms for latencies, % or a count for errors


@dataclass(frozen=True, slots=True)
class Verdict:
    threshold: Threshold
    actual: float
    passed: bool

    def describe(self) -> str:
        """``p99<20ms (was 23.456 ms)``: the threshold and what was measured."""
        if self.actual != self.actual:  # NaN: no successful transaction to measure
            return f"{self.threshold.text} (no successful transaction)"
        metric = self.threshold.metric
        if metric == "errors":
            return f"{self.threshold.text} (was {self.actual:,.0f})"
        if metric == "tps":
            return f"{self.threshold.text} (was {self.actual:,.1f})"
        unit = " %" if metric == "errors%" else " ms"
        return f"{self.threshold.text} (was {self.actual:,.3f}{unit})"


def parse_threshold(text: str, option: str = "--threshold") -> Threshold:
    """``p99<20ms``, ``mean<=5ms``, ``tps>500``, ``errors<0.1%``, ``errors<=10``
    (``option`` names the flag in errors: ``--slo`` takes the same syntax)."""
    match = _SPEC.match(text)
    if match is None:
        raise UsageError(f"{option}: {text!r} is not METRIC<VALUE, e.g. 'p99<20ms' or 'tps>500'")
    metric, op = match["metric"].lower(), match["op"]
    value, unit = float(match["value"]), match["unit"].lower()
    if metric in _NAMED_LATENCIES or _PERCENTILE.match(metric):
        return Threshold(
            text,
            _latency_metric(text, metric, option),
            op,
            value * _latency_unit(text, unit, option),
        )
    if metric == "tps":
        if unit not in ("", "/s"):
            raise UsageError(f"{option}: {text!r}: tps takes no unit, got {unit!r}")
        return Threshold(text, "tps", op, value)
    if metric == "errors":
        if unit not in ("", "%"):
            raise UsageError(f"{option}: {text!r}: errors take % or a count, got {unit!r}")
        return Threshold(text, "errors%" if unit == "%" else "errors", op, value)
    raise UsageError(f"{option}: unknown metric {metric!r} in {text!r}; use one of {METRICS}")


def _latency_metric(text: str, metric: str, option: str) -> str:
    found = _PERCENTILE.match(metric)
    if found and not 0 < float(found[1]) <= 100:
        raise UsageError(f"{option}: {text!r}: a percentile is between 0 and 100")
    return metric


def _latency_unit(text: str, unit: str, option: str) -> float:
    if unit not in _LATENCY_UNITS_MS:
        raise UsageError(
            f"{option}: {text!r}: a latency needs a unit: us, ms or s, got {unit or 'none'!r}"
        )
    return _LATENCY_UNITS_MS[unit]


def judge(thresholds: tuple[Threshold, ...], result: Result) -> tuple[Verdict, ...]:
    """Each threshold against ``result``; a run with no successful
    transaction fails every latency threshold (there is nothing to meet it)."""
    return tuple(_judge(t, result) for t in thresholds)


def _judge(threshold: Threshold, result: Result) -> Verdict:
    actual = _actual(threshold.metric, result)
    if actual is None:
        return Verdict(threshold, float("nan"), passed=False)
    return Verdict(threshold, actual, passed=_OPS[threshold.op](actual, threshold.value))


def _actual(metric: str, result: Result) -> float | None:
    done = result.ok + result.failed
    if metric == "tps":
        return result.tps
    if metric == "errors":
        return float(result.failed)
    if metric == "errors%":
        return 100.0 * result.failed / done if done else 0.0
    if result.ok == 0:
        return None
    if metric in _NAMED_LATENCIES:
        return float(getattr(result.latency, metric))
    pct = float(metric[1:])
    return float(decode(result.histogram).get_value_at_percentile(pct)) / 1000.0
