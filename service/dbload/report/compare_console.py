"""The terminal side of ``dbload compare`` and ``dbload report``: rich tables.

Pure rendering of :mod:`dbload.measure.comparison` rows; the cell formats
here are shared with the HTML report so both read the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
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
    servers,
    shows_drivers,
)
from dbload.measure.result import Result
from dbload.report.console import NA, Trimmed, print_run, print_summary_line, summary_lines

if TYPE_CHECKING:
    from dbload.report.load import Saved

TIMES = "\u00d7"  # the multiplication sign of "12.3x", spelled out for linters
DASH = "\u2014"  # a figure that does not exist (no sequential run, no CPU)

US_PER_TXN = "cpu \u00b5s/txn"  # client CPU per successful transaction

BOUND_STYLES = {CLIENT_CPU: "bold yellow", SERVER_CPU: "bold red", SERVER_WAIT: "bold cyan"}


def fmt_tps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def fmt_ms(value: float) -> str:
    return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"


def fmt_latency(result: Result, value: float) -> str:
    """A latency of ``result`` in ms, or n/a when no transaction succeeded
    (its zeros measure nothing)."""
    return fmt_ms(value) if result.ok else NA


def fmt_speedup(value: float | None) -> str:
    return (
        DASH if value is None else f"{value:.1f}{TIMES}" if value >= 10 else f"{value:.2f}{TIMES}"
    )


def fmt_us(value: float | None) -> str:
    """Client CPU µs per transaction; a dash where CPU was not measured."""
    if value is None:
        return DASH
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def fmt_pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.0f} %"


def fmt_cpu(row: Row) -> str:
    """``client 45 % / server 30 %`` (of one core), dashes for what was not measured."""
    if row.client_cpu_pct is None:
        return DASH
    return f"client {fmt_pct(row.client_cpu_pct)} / server {fmt_pct(row.server_cpu_pct)}"


def fmt_delta(value: float | None) -> str:
    return DASH if value is None else f"{value:+.1f} %"


def _run_columns(
    table: Table, repeated: bool, several: bool = False, with_driver: bool = False
) -> None:
    if repeated:
        table.add_column("#", justify="right", style="dim", no_wrap=True)
    if several:  # compare --servers
        table.add_column("server", overflow="fold")
    # the only column that may fold: figures are never cut. compare
    # --drivers: the driver under the mode, in the same column, as a column
    # of its own would push the figures past 80 columns
    table.add_column("mode\ndriver" if with_driver else "mode", style="bold", overflow="fold")
    table.add_column("clients", justify="right", no_wrap=True)


def _run_cells(row: Row, index: int, repeated: bool, several: bool, with_driver: bool) -> list[str]:
    """The cells of :func:`_run_columns` for one row."""
    mode = f"{row.mode}\n[not bold]{driver_lines(row.driver)}[/]" if with_driver else row.mode
    return [
        *([str(index)] if repeated else []),
        *([row.server] if several else []),
        mode,
        str(row.concurrency),
    ]


def driver_lines(driver: str) -> str:
    """``sqlalchemy+asyncpg`` over two lines (``sqlalchemy`` / ``+asyncpg``),
    no wider than the longest mode name."""
    return driver.replace("+", "\n+")


def comparison_table(comparison: Comparison) -> Table:
    """Mode (driver when they vary), clients, tps, client CPU µs per
    transaction, p50, p99, speedup and % of ideal per run: the figures,
    narrow enough for 80 columns (CPU and bound: :func:`bound_table`)."""
    table = Table(title=f"dbload compare: {comparison.workload}", title_justify="left")
    table.title_style = "bold"
    all_rows = rows(comparison)
    repeated = any("(run " in row.label for row in all_rows)
    several = len(servers(comparison.results)) > 1
    with_driver = shows_drivers(comparison.results)
    _run_columns(table, repeated, several, with_driver)
    # two-line headers where the figures are narrower than their names: 80 columns
    heads = ("tps", US_PER_TXN.replace(" ", "\n"), "p50 ms", "p99 ms", "speedup", "% of\nideal")
    for name in heads:
        table.add_column(name, justify="right", no_wrap=True)
    for i, (row, result) in enumerate(zip(all_rows, comparison.results, strict=True), start=1):
        table.add_row(
            *_run_cells(row, i, repeated, several, with_driver),
            fmt_tps(row.tps),
            fmt_us(row.client_us_per_txn),
            fmt_latency(result, row.p50_ms),
            fmt_latency(result, row.p99_ms),
            fmt_speedup(row.speedup),
            fmt_pct(row.ideal_pct),
        )
    return table


def bound_table(comparison: Comparison) -> Table:
    """Per run: client and server CPU, and which of them bounded it."""
    table = Table(title="what bounded each run", title_justify="left", title_style="bold")
    all_rows = rows(comparison)
    repeated = any("(run " in row.label for row in all_rows)
    several = len(servers(comparison.results)) > 1
    with_driver = shows_drivers(comparison.results)
    _run_columns(table, repeated, several, with_driver)
    table.add_column("cpu (% of one core)", no_wrap=True)
    table.add_column("bound", no_wrap=True)
    for i, row in enumerate(all_rows, start=1):
        bound = Text(row.bound, style=BOUND_STYLES.get(row.bound, "dim"))
        table.add_row(
            *_run_cells(row, i, repeated, several, with_driver),
            fmt_cpu(row),
            bound,
        )
    return table


# compare --servers: the settings shown side by side (all are in the JSON)
SERVER_COLUMNS = ("shared_buffers", "fsync", "synchronous_commit", "max_connections")


def servers_table(comparison: Comparison) -> Table:
    """``compare --servers``: each server's version and main settings (a
    container's image is in its name, ``container:IMAGE``)."""
    table = Table(title="servers", title_justify="left", title_style="bold")
    table.add_column("server", overflow="fold")
    table.add_column("version", no_wrap=True)
    for name in SERVER_COLUMNS:
        table.add_column(name.replace("_", " "), overflow="fold")
    shown: set[str] = set()
    for result in comparison.results:
        info = result.database
        if not info.server or info.server in shown:
            continue
        shown.add(info.server)
        settings = [info.settings.get(name, DASH) for name in SERVER_COLUMNS]
        table.add_row(info.server, info.server_version, *settings)
    return table


def print_comparison(console: Console, comparison: Comparison) -> None:
    """The compare table, the bound table and one line per run saying why
    it got its bound; last, :func:`~dbload.report.console.summary_line` per cell.
    With ``--servers``, a table of the servers comes first."""
    all_rows = rows(comparison)
    parts: list[RenderableType] = [comparison_table(comparison)]
    if servers(comparison.results):
        parts[:0] = [servers_table(comparison), Text("")]
    if not any(row.speedup is not None for row in all_rows):
        parts.append(Text("no sequential run: no speedup to show", style="dim"))
    parts += [Text(""), bound_table(comparison)]
    for row in all_rows:
        line = Text(f"  {row.label}: ")
        line.append(row.bound, style=BOUND_STYLES.get(row.bound, "dim"))
        line.append(f" ({row.why})", style="dim")
        parts.append(line)
    parts.append(
        Text(
            f"{US_PER_TXN}: client CPU (dbload's process) per successful transaction."
            " % of ideal: speedup / clients, what overlapping every server wait would give."
            f" Bound at {NEAR_CEILING * 100:.0f} % of a ceiling: the client's is one core in one"
            " process (the GIL), the server's one core per client.",
            style="dim",
        )
    )
    console.print(Trimmed(Group(*parts)))
    _print_summaries(console, comparison.results)


def _print_summaries(console: Console, results: Sequence[Result]) -> None:
    console.print()
    with_driver = shows_drivers(results)
    for line, result in zip(summary_lines(results), results, strict=True):
        # compare --drivers, --servers: which, last, so the other keys keep their places
        if with_driver:
            line += f" driver={result.driver}"
        server = result.database.server
        print_summary_line(console, f"{line} server={server}" if server else line)


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
    with_driver = shows_drivers(results)
    for i, result in enumerate(results):
        delta = diff(results[0], result) if i else Delta(None, None)
        driver = f" {result.driver}" if with_driver else ""
        label = f"{result.mode}{driver} c={result.concurrency}"
        if len(workloads) > 1:
            label += f" {result.workload}"
        if names is not None and len(files) > 1:
            label += f" [dim]{names[i]}[/]"
        table.add_row(
            str(i + 1),
            label,
            fmt_tps(result.tps),
            _delta_text(delta.tps_pct, higher_is_better=True),
            fmt_latency(result, result.latency.p99),
            _delta_text(
                delta.p99_pct if result.ok and results[0].ok else None, higher_is_better=False
            ),
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
    console.print(Trimmed(diff_table(results, names)))


def workload_mismatch(results: Sequence[Result], names: Sequence[str]) -> str | None:
    """Why the runs' deltas mean little, when they ran different workloads
    (a workload's name, or its scripts and weights), else None.
    ``names[i]`` (a file name) says where run i comes from."""
    seen: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for result, name in zip(results, names, strict=True):
        where = seen.setdefault((result.workload, result.scripts), [])
        if name not in where:
            where.append(name)
    if len(seen) < 2:
        return None
    kinds = "; ".join(
        f"{workload} ({', '.join(scripts)}) in {', '.join(where)}"
        for (workload, scripts), where in seen.items()
    )
    return f"these runs ran different workloads, so their deltas compare different work: {kinds}"


def report_warnings(files: Sequence[Saved]) -> list[str]:
    """What :func:`print_report` warns of before its tables (plain text, no
    "warning:" prefix), for a caller that would rather refuse."""
    runs = [(r, f.path.name) for f in files if f.kind != "capacity" for r in f.results]
    warning = workload_mismatch([r for r, _ in runs], [n for _, n in runs])
    return [] if warning is None else [warning]


def print_report(console: Console, files: Sequence[Saved]) -> None:
    """``dbload report FILE...``. One file renders as it was first shown: a
    run as ``dbload run``'s report, a comparison as ``compare``'s tables, a
    capacity search as its walk. Several files: each capacity walk, then the
    other runs side by side with deltas against the first, loudly warned
    when they ran different workloads; a summary line per run ends it."""
    # imported here: report/capacity.py imports this module's formats
    from dbload.report.capacity import print_capacity

    if len(files) == 1 and files[0].kind == "result":
        print_run(console, files[0].results[0], files[0].verdicts[0])
        return
    if len(files) == 1 and files[0].kind == "compare":
        print_comparison(console, files[0].comparison)
        return
    for saved in files:
        if saved.capacity is not None:
            print_capacity(console, saved.capacity)
    others = [f for f in files if f.kind != "capacity"]
    if not others:
        return
    for warning in report_warnings(files):
        console.print(Text(f"warning: {warning}", style="bold red"))
    results = [r for f in others for r in f.results]
    print_diff(console, results, [f.path.name for f in others for _ in f.results])
    _print_summaries(console, results)
