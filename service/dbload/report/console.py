"""The terminal report: rich renderables, pure functions of a Result.

Modelled on pgbench's summary: every number a user needs, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dbload.measure.histogram import LatencySummary
from dbload.measure.result import Result
from dbload.measure.server import DatabaseDelta, ServerStats
from dbload.measure.thresholds import Verdict

# SQLSTATE codes a load test meets most; others show their code alone.
_SQLSTATE_NAMES = {
    "40001": "serialization_failure",
    "40P01": "deadlock_detected",
    "57014": "query_canceled",
    "23505": "unique_violation",
    "23503": "foreign_key_violation",
    "53300": "too_many_connections",
    "57P01": "admin_shutdown",
    "08006": "connection_failure",
    "25P02": "in_failed_sql_transaction",
}


def _fmt(value: float) -> str:
    return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"


def summary_table(result: Result) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    db = result.database
    batch = (
        f"{result.planned_transactions:,} transactions"
        if result.planned_transactions is not None
        else f"{result.planned_duration_s:g} s"
    )
    status = ""
    if result.aborted:
        status = " [bold red](aborted: too many errors)[/]"
    elif result.interrupted:
        status = " [bold red](interrupted)[/]"
    table.add_row("mode", f"{result.mode} ({result.driver}){status}")
    table.add_row("workload", f"{result.workload}  [dim]{', '.join(result.scripts)}[/]")
    table.add_row("database", f"{db.kind}: {db.url}  [dim]PostgreSQL {db.server_version}[/]")
    table.add_row("plan", _plan_line(result, batch))
    table.add_row(
        "transactions",
        f"{result.ok:,} ok, {result.failed:,} failed in {result.duration_s:.3f} s"
        + (
            f"  [dim]({result.warmup_transactions:,} in warm-up)[/]"
            if result.warmup_transactions
            else ""
        ),
    )
    if result.max_tries > 1 or result.retried:
        table.add_row("retried", _retried_line(result))
    if result.rate is not None:
        table.add_row("open loop", _open_loop_line(result))
    elif result.latency_limit_ms:
        table.add_row("late", f"{result.late:,} slower than {result.latency_limit_ms:g} ms")
    if result.cancelled:
        table.add_row(
            "cancelled", f"{result.cancelled:,} in flight at the stop, after the grace period"
        )
    table.add_row(
        "throughput",
        f"[bold green]{result.tps:,.1f} tps[/]  ·  {result.statements_per_s:,.1f} statements/s",
    )
    table.add_row("latency (ms)", _latency_line(result.latency))
    table.add_row("errors", _errors_line(result.errors))
    table.add_row("cpu", _cpu_line(result))
    for incident in result.incidents:
        table.add_row("[red]incident[/]", f"[bold red]{escape(incident)}[/]")
    return table


def _plan_line(result: Result, batch: str) -> str:
    extras = [
        f"isolation {result.isolation}" if result.isolation else "",
        f"max tries {result.max_tries}" if result.max_tries > 1 else "",
        f"cpu work {result.cpu_work_ms:g} ms/txn" if result.cpu_work_ms else "",
    ]
    return " · ".join(
        [
            f"scale {result.scale}",
            f"{result.concurrency} clients",
            batch,
            f"warm-up {result.warmup_s:g} s",
            f"seed {result.seed}",
            *(e for e in extras if e),
        ]
    )


# Lag past this means the workers could not start transactions when due.
# Not 1 ms: the async loop's timers fire up to ~1 ms late at any rate
# (modes/async_.py, _wait_until), which is not a shortage of workers.
BEHIND_MS = 2.0


def _open_loop_line(result: Result) -> str:
    """pgbench -R's figures: the schedule, how late it ran, what was skipped."""
    if result.stages is None:
        scheduled = f"scheduled {result.rate:,.1f} tps (Poisson)"
    else:
        scheduled = f"stages {result.stages.describe()} (Poisson)"
    parts = [f"{scheduled}, achieved {result.tps:,.1f}"]
    lag = result.lag
    if lag is not None:
        parts.append(f"schedule lag p50 {_fmt(lag.p50)} p99 {_fmt(lag.p99)} max {_fmt(lag.max)} ms")
    if result.latency_limit_ms:
        parts.append(
            f"{result.skipped:,} skipped, {result.late:,} late"
            f" (limit {result.latency_limit_ms:g} ms)"
        )
    line = " · ".join(parts)
    if lag is not None and lag.p99 > BEHIND_MS:
        line += (
            "\n[yellow]the workers fell behind the schedule: latency includes the wait"
            " for a free worker; add clients (-c) to measure the server alone[/]"
        )
    return line


def _retried_line(result: Result) -> str:
    """pgbench's two figures: transactions retried, and retries in all."""
    done = result.ok + result.failed
    share = 100.0 * result.retried / done if done else 0.0
    return (
        f"{result.retried:,} transactions ({share:.2f} %) · {result.retries:,} retries in all"
        f"  [dim](serialization failures and deadlocks; max tries {result.max_tries})[/]"
    )


def _latency_line(lat: LatencySummary) -> str:
    return (
        f"mean {_fmt(lat.mean)} ± {_fmt(lat.stddev)}  p50 {_fmt(lat.p50)}  p90 {_fmt(lat.p90)}"
        f"  [bold]p99 {_fmt(lat.p99)}[/]  p99.9 {_fmt(lat.p99_9)}  max {_fmt(lat.max)}"
    )


def _errors_line(errors: dict[str, int]) -> str:
    if not errors:
        return "none"
    return ", ".join(
        f"[red]{code}[/] {_SQLSTATE_NAMES.get(code, '')} x {count:,}".replace("  ", " ")
        for code, count in sorted(errors.items(), key=lambda kv: -kv[1])
    )


def _cpu_line(result: Result) -> str:
    cpu = result.cpu
    if cpu is None:
        return "not measured"
    client = f"client {cpu.client_pct:.0f} %"
    if cpu.server_pct is None:
        server = f"server not measured ({cpu.server_note})"
    else:
        server = f"server {cpu.server_pct:.0f} %"
    busy = cpu.client_pct + (cpu.server_pct or 0.0)
    hint = (
        "  [yellow]the machine's CPU is saturated: this measures the machine, not the database[/]"
        if busy >= 90.0 * cpu.cores
        else ""
    )
    return f"{client} · {server} [dim](% of one core; {cpu.cores} cores)[/]{hint}"


def statements_table(result: Result) -> Table:
    table = Table(title="per statement (ms)", title_justify="left", title_style="bold")
    # Figures never shrink; on a narrow terminal the SQL text gives way.
    table.add_column("where", style="dim", no_wrap=True, min_width=8)
    table.add_column("count", justify="right", no_wrap=True, min_width=6)
    for name in ("mean", "p50", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True, min_width=6)
    table.add_column("statement", overflow="fold")
    for stat in result.statements:
        lat = stat.latency
        table.add_row(
            f"{stat.source}:{stat.line}",
            f"{lat.count:,}",
            _fmt(lat.mean),
            _fmt(lat.p50),
            _fmt(lat.p99),
            _fmt(lat.max),
            _shorten(" ".join(stat.sql.split()), 60),
        )
    return table


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


TOP_SERVER_STATEMENTS = 5


def server_section(server: ServerStats) -> RenderableType:
    """What the server counted over the run: pg_stat_database's deltas, then
    pg_stat_statements' top statements by total time (or why not)."""
    table = Table(
        title="server (pg_stat_database, over the run)",
        title_justify="left",
        title_style="bold",
        show_header=False,
        box=None,
        pad_edge=False,
        padding=(0, 2),
    )
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    if server.database is None:
        table.add_row("skipped", escape(server.database_skipped or "no figures"))
    else:
        for label, line in _database_lines(server.database):
            table.add_row(label, line)
    parts: list[RenderableType] = [table]
    if server.statements_skipped is not None:
        parts.append(Text(f"statements skipped: {server.statements_skipped}", style="dim"))
    elif server.statements:
        parts += [Text(""), server_statements_table(server)]
    return Group(*parts)


def _database_lines(db: DatabaseDelta) -> list[tuple[str, str]]:
    lines = [
        (
            "transactions",
            f"{db.xact_commit:,} commits · {db.xact_rollback:,} rollbacks"
            f" · {db.deadlocks:,} deadlocks",
        ),
        (
            "cache",
            (
                "no block read"
                if db.cache_hit_ratio is None
                else f"{100 * db.cache_hit_ratio:.2f} % hit"
            )
            + f" [dim]({db.blks_hit:,} blocks hit, {db.blks_read:,} read)[/]",
        ),
        ("tuples read", f"{db.tup_returned:,} returned · {db.tup_fetched:,} fetched"),
        (
            "tuples written",
            f"{db.tup_inserted:,} inserted · {db.tup_updated:,} updated"
            f" · {db.tup_deleted:,} deleted",
        ),
    ]
    if db.temp_files or db.temp_bytes:
        lines.append(("temp files", f"{db.temp_files:,} ({_bytes(db.temp_bytes)})"))
    if db.conflicts:
        lines.append(("conflicts", f"{db.conflicts:,} (recovery conflicts on a standby)"))
    return lines


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def server_statements_table(server: ServerStats) -> Table:
    table = Table(
        title="server: top statements by total time (pg_stat_statements, ms)",
        title_justify="left",
        title_style="bold",
    )
    table.add_column("calls", justify="right", no_wrap=True, min_width=5)
    table.add_column("total", justify="right", no_wrap=True, min_width=6)
    table.add_column("mean", justify="right", no_wrap=True, min_width=6)
    table.add_column("rows", justify="right", no_wrap=True, min_width=5)
    table.add_column("statement", overflow="fold")
    for stat in server.statements[:TOP_SERVER_STATEMENTS]:
        table.add_row(
            f"{stat.calls:,}",
            _fmt(stat.total_ms),
            _fmt(stat.mean_ms),
            f"{stat.rows:,}",
            escape(_shorten(" ".join(stat.query.split()), 80)),
        )
    return table


def render(result: Result, verdicts: Sequence[Verdict] = ()) -> RenderableType:
    parts: list[RenderableType] = [summary_table(result)]
    if result.statements:
        parts += [Text(""), statements_table(result)]
    if result.server is not None:
        parts += [Text(""), server_section(result.server)]
    if verdicts:
        parts += [Text(""), thresholds_text(verdicts)]
    return Group(*parts)


def thresholds_text(verdicts: Sequence[Verdict]) -> Text:
    """One line per threshold, pass or fail, with the measured value."""
    text = Text("thresholds\n", style="bold")
    for verdict in verdicts:
        mark, style = ("✓ pass", "green") if verdict.passed else ("✗ FAIL", "bold red")
        text.append(f"  {mark}", style=style)
        text.append(f"  {verdict.describe()}\n")
    return text
