"""The terminal side of ``dbload compare`` and ``dbload report``: rich tables.

Pure rendering of :mod:`dbload.measure.comparison` rows; the cell formats
here are shared with the HTML report so both read the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dbload.measure.comparison import (
    CLIENT_CPU,
    NEAR_CEILING,
    SERVER_CPU,
    SERVER_WAIT,
    Comparison,
    Delta,
    Row,
    diff,
    rows,
)
from dbload.measure.result import Result

TIMES = "\u00d7"  # the multiplication sign of "12.3x", spelled out for linters
DASH = "\u2014"  # a figure that does not exist (no sequential run, no CPU)

BOUND_STYLES = {CLIENT_CPU: "bold yellow", SERVER_CPU: "bold red", SERVER_WAIT: "bold cyan"}


def fmt_tps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_ms(value: float) -> str:
    return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"


def fmt_speedup(value: float | None) -> str:
    return (
        DASH if value is None else f"{value:.1f}{TIMES}" if value >= 10 else f"{value:.2f}{TIMES}"
    )


def fmt_pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f} %"


def fmt_cpu(row: Row) -> str:
    """``client 45 % / server 30 %`` (of one core), dashes for what was not measured."""
    if row.client_cpu_pct is None:
        return DASH
    return f"client {fmt_pct(row.client_cpu_pct)} / server {fmt_pct(row.server_cpu_pct)}"


def fmt_delta(value: float | None) -> str:
    return DASH if value is None else f"{value:+.1f} %"


def comparison_table(comparison: Comparison) -> Table:
    """Mode, clients, tps, p50, p99, speedup, % of ideal, CPU and bound per run."""
    table = Table(title=f"dbload compare: {comparison.workload}", title_justify="left")
    table.title_style = "bold"
    all_rows = rows(comparison)
    repeated = any("(run " in row.label for row in all_rows)
    if repeated:
        table.add_column("#", justify="right", style="dim")
    table.add_column("mode", style="bold", no_wrap=True)
    for name in ("clients", "tps", "p50 ms", "p99 ms", "speedup", "% of ideal"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("cpu (% of one core)", no_wrap=True)
    table.add_column("bound", no_wrap=True)
    for i, row in enumerate(all_rows, start=1):
        cells = [
            row.mode,
            str(row.concurrency),
            fmt_tps(row.tps),
            fmt_ms(row.p50_ms),
            fmt_ms(row.p99_ms),
            fmt_speedup(row.speedup),
            fmt_pct(row.ideal_pct),
            fmt_cpu(row),
        ]
        bound = Text(row.bound, style=BOUND_STYLES.get(row.bound, "dim"))
        table.add_row(*([str(i)] if repeated else []), *cells, bound)
    return table


def print_comparison(console: Console, comparison: Comparison) -> None:
    """The compare table, then one line per run saying why it got its bound."""
    console.print(comparison_table(comparison))
    all_rows = rows(comparison)
    if not any(row.speedup is not None for row in all_rows):
        console.print("[dim]no sequential run: no speedup to show[/]", highlight=False)
    for row in all_rows:
        style = BOUND_STYLES.get(row.bound, "dim")
        console.print(
            f"  {row.label}: [{style}]{row.bound}[/] [dim]({row.why})[/]", highlight=False
        )
    console.print(
        f"[dim]% of ideal: speedup / clients, what overlapping every server wait would give."
        f" Bound at {NEAR_CEILING * 100:.0f} % of a ceiling: the client's is one core in one"
        f" process (the GIL), the server's one core per client.[/]",
        highlight=False,
    )


def diff_table(results: Sequence[Result], names: Sequence[str] | None = None) -> Table:
    """Each run's summary and its tps and p99 change relative to the first run.

    Narrow enough for an 80-column terminal: what all runs share (workload,
    file) goes in the title, and each run is one label.
    """
    workloads = list(dict.fromkeys(r.workload for r in results))
    files = list(dict.fromkeys(names or ()))
    title = f"{', '.join(workloads)}: runs compared with run 1"
    if len(files) == 1:
        title += f" ({files[0]})"
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("run", overflow="fold")
    for name in ("tps", "\u0394 tps", "p99 ms", "\u0394 p99"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, result in enumerate(results):
        delta = diff(results[0], result) if i else Delta(None, None)
        label = f"{result.mode} c={result.concurrency}"
        if len(workloads) > 1:
            label += f" {result.workload}"
        if names is not None and len(files) > 1:
            label += f" [dim]{names[i]}[/]"
        table.add_row(
            str(i + 1),
            label,
            fmt_tps(result.tps),
            _delta_text(delta.tps_pct, higher_is_better=True),
            fmt_ms(result.latency.p99),
            _delta_text(delta.p99_pct, higher_is_better=False),
        )
    return table


def _delta_text(value: float | None, *, higher_is_better: bool) -> Text:
    """Green when the change is an improvement, red when it is a regression."""
    if value is None or abs(value) < 0.05:
        return Text(fmt_delta(value), style="dim")
    better = (value > 0) == higher_is_better
    return Text(fmt_delta(value), style="green" if better else "red")


def print_diff(
    console: Console, results: Sequence[Result], names: Sequence[str] | None = None
) -> None:
    """``dbload report A B ...``: the runs side by side, deltas relative to the
    first; ``names`` (e.g. the file names) label the rows when given."""
    if names is not None and len(names) != len(results):
        raise ValueError("one name per result")
    console.print(diff_table(results, names))
