"""``--find-max-rate``: the curve the search walked, in the terminal and as
JSON (schema ``dbload/capacity@2``, every step's full run inside)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from dbload.capacity import Capacity, Step
from dbload.report.compare_console import DASH, fmt_latency, fmt_ms, fmt_tps
from dbload.report.console import Trimmed
from dbload.report.json_ import CAPACITY_SCHEMA, to_dict


def step_line(step: Step, index: int) -> str:
    """One line per step as it ends (progress of a search that takes minutes)."""
    verdict = "[green]pass[/]" if step.passed else "[red]fail[/]"
    return (
        f"[dim]step {index}:[/] rate {fmt_tps(step.rate)}/s → {fmt_tps(step.result.tps)} tps,"
        f" p99 {fmt_latency(step.result, step.result.latency.p99)} ms: {verdict}"
    )


def capacity_table(capacity: Capacity) -> Table:
    """Scheduled rate, achieved tps, latency, schedule lag and the verdict, in
    the order walked, below the closed-loop probe (errors only when any)."""
    slo = ", ".join(t.text for t in capacity.slo)
    table = Table(title=f"find-max-rate: {slo}", title_justify="left", title_style="bold")
    runs = [capacity.probe, *(s.result for s in capacity.steps)]
    errors = any(r.failed for r in runs)
    table.add_column("step", justify="right", style="dim", no_wrap=True)
    for name in ("rate/s", "tps", "p50 ms", "p99 ms", "lag p99", *(["errors"] * errors)):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for index, (rate, verdict) in enumerate(
        [("closed", "[dim]capacity[/]"), *((fmt_tps(s.rate), _verdict(s)) for s in capacity.steps)]
    ):
        result = runs[index]
        lag = DASH if result.lag is None else fmt_ms(result.lag.p99)
        lat = result.latency
        cells = [
            rate,
            fmt_tps(result.tps),
            fmt_latency(result, lat.p50),
            fmt_latency(result, lat.p99),
        ]
        table.add_row(
            str(index) if index else "probe",
            *cells,
            lag,
            *([f"{result.failed:,}"] * errors),
            verdict,
        )
    return table


def _verdict(step: Step) -> str:
    """``pass``, or ``fail`` and what failed: the SLO (figures are in the
    row) or the schedule."""
    if step.passed:
        return "[green]pass[/]"
    broken = [v.threshold.text for v in step.verdicts if not v.passed]
    if not step.kept_up:
        broken.append("behind")
    return f"[red]fail[/] {', '.join(broken)}"


def summary(capacity: Capacity) -> str:
    """The answer in one line (the CLI prints it last)."""
    best = capacity.max_rate
    slo = ", ".join(t.text for t in capacity.slo)
    if best is None:
        lowest = min(capacity.steps, key=lambda s: s.rate, default=None)
        if lowest is None:  # interrupted before the first step
            return f"no rate was tried against {slo}"
        why = [v.describe() for v in lowest.verdicts if not v.passed] or ["it fell behind"]
        return f"no rate meets {slo}: even {fmt_tps(lowest.rate)}/s failed, {why[0]}"
    share = 100 * best / capacity.capacity_tps if capacity.capacity_tps else 0.0
    closed = fmt_tps(capacity.capacity_tps)
    return f"max rate meeting {slo}: {fmt_tps(best)} tps, {share:.0f} % of the closed-loop {closed}"


def print_capacity(out: Console, capacity: Capacity) -> None:
    out.print(Trimmed(capacity_table(capacity)))
    out.print(summary(capacity), highlight=False)


def capacity_to_dict(capacity: Capacity) -> dict[str, Any]:
    return {
        "schema": CAPACITY_SCHEMA,
        "slo": [t.text for t in capacity.slo],
        "capacity_tps": round(capacity.capacity_tps, 3),
        "max_rate": None if capacity.max_rate is None else round(capacity.max_rate, 3),
        "interrupted": capacity.interrupted,
        "probe": to_dict(capacity.probe),
        "steps": [
            {
                "rate": round(step.rate, 3),
                "kept_up": step.kept_up,
                "passed": step.passed,
                "run": to_dict(step.result, step.verdicts),
            }
            for step in capacity.steps
        ],
    }
