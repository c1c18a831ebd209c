"""The terminal report: rich renderables, pure functions of a Result.

Modelled on pgbench's summary: every number a user needs, nothing else.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from dbload.measure.comparison import busy_others
from dbload.measure.histogram import LatencySummary
from dbload.measure.result import ClusterInfo, ClusterWorker, Result
from dbload.measure.server import DatabaseDelta, ServerStats
from dbload.measure.sqlstate import condition_name, is_sqlstate
from dbload.measure.thresholds import Verdict

NA = "n/a"  # a latency with no successful transaction to measure it

# Width of a console that is not a terminal (a file, a pipe, CI's log):
# wide enough that no table is squeezed and no URL split, as no reader of
# the file has a window to fit.
PIPE_WIDTH = 400


def make_console(
    *, stderr: bool = False, quiet: bool = False, file: IO[str] | None = None
) -> Console:
    """The console every command prints through: a terminal's own width,
    else (``> report.txt``, a pipe) :data:`PIPE_WIDTH` with soft wrapping, so
    a line is never cut at 80 columns. ``$COLUMNS`` still wins when set."""
    console = Console(stderr=stderr, quiet=quiet, file=file)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
        console.soft_wrap = True
    return console


class Trimmed:
    """A renderable without the spaces rich pads each line with (table
    cells, titles): they end up as trailing whitespace in a saved report."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.renderable, options, pad=False):
            yield from _rstrip(line)
            yield Segment.line()


def _rstrip(line: list[Segment]) -> Iterator[Segment]:
    """``line`` up to its last visible character (control codes kept)."""
    end = len(line)
    while end and not line[end - 1].control and not line[end - 1].text.strip():
        end -= 1
    for i, segment in enumerate(line):
        if segment.control or i < end - 1:
            yield segment
        elif i == end - 1:
            yield Segment(segment.text.rstrip(), segment.style)


def _fmt(value: float) -> str:
    return f"{value:,.3f}" if value < 100 else f"{value:,.1f}"


def measured(lat: LatencySummary) -> bool:
    """Whether ``lat`` holds any sample. Files of schema result@1 do not
    hold per-statement counts (loaded as 0): their figures are the proof."""
    return lat.count > 0 or lat.max > 0


def _ms(value: float, lat: LatencySummary) -> str:
    return _fmt(value) if measured(lat) else NA


def _clients(n: int) -> str:
    return f"{n} client" if n == 1 else f"{n} clients"


def driver_text(result: Result) -> str:
    """The driver as the report names it: its version label ("asyncpg 0.30.0
    + uvloop"), after its canonical name when the label does not start with
    it ("sqlalchemy+asyncpg: SQLAlchemy 2.0.36 ...")."""
    label = result.driver_label
    if label == result.driver or label.split()[:1] == [result.driver]:
        return label
    return f"{result.driver}: {label}"


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
    table.add_row("mode", f"{result.mode} ({escape(driver_text(result))}){status}")
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
    table.add_row("latency (ms)", _latency_line(result))
    table.add_row("errors", _errors_text(result))
    table.add_row("cpu", _cpu_line(result))
    if (others := busy_others(result)) is not None:
        table.add_row("", f"[yellow]{escape(others)}[/]")
    for incident in result.incidents:
        table.add_row("[red]incident[/]", f"[bold red]{escape(incident)}[/]")
    return table


def _streams(result: Result) -> str:
    """Sequential with -c N: whose parameters its one connection sends."""
    if result.streams in (0, result.concurrency):
        return ""
    return f" running {result.streams} clients' streams in turn"


def _plan_line(result: Result, batch: str) -> str:
    extras = [
        f"isolation {result.isolation}" if result.isolation else "",
        f"max tries {result.max_tries}" if result.max_tries > 1 else "",
        f"cpu work {result.cpu_work_ms:g} ms/txn" if result.cpu_work_ms else "",
        f"query mode {result.query_mode}" if result.query_mode != "prepared" else "",
        "a connection per transaction (-C)" if result.connect_per_transaction else "",
    ]
    return " · ".join(
        [
            f"scale {result.scale}",
            _clients(result.concurrency) + _streams(result),
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


def _latency_line(result: Result) -> str:
    if result.ok == 0:
        return f"{NA} [dim](no transaction succeeded)[/]"
    lat = result.latency
    return (
        f"mean {_fmt(lat.mean)} ± {_fmt(lat.stddev)}  p50 {_fmt(lat.p50)}  p90 {_fmt(lat.p90)}"
        f"  [bold]p99 {_fmt(lat.p99)}[/]  p99.9 {_fmt(lat.p99_9)}  max {_fmt(lat.max)}"
    )


def by_count(errors: dict[str, int]) -> list[tuple[str, int]]:
    """The error codes, most frequent first (ties in code order)."""
    return sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))


EXAMPLE_WIDTH = 120


def error_line(result: Result, code: str, *, prefix: bool = False) -> str:
    """``22012 division_by_zero x 20,933 — division by zero``: the code,
    its name, the count and the first message seen (plain text).
    ``prefix`` adds psql's ``ERROR:`` to a server's message."""
    count = result.errors[code]
    line = f"{code} {condition_name(code)} x {count:,}"
    example = result.error_examples.get(code, "").strip()
    if example:
        first = _shorten(example.splitlines()[0], EXAMPLE_WIDTH)
        if prefix and is_sqlstate(code):
            # after the statement's file:line, when the executor named it
            where, sep, rest = first.partition(": ")
            first = f"{where}: ERROR: {rest}" if sep and _WHERE.match(where) else f"ERROR: {first}"
        line += f" \u2014 {first}"
    return line


_WHERE = re.compile(r"\S+:[0-9]+\Z")


def _errors_text(result: Result) -> Text | str:
    if not result.errors:
        return "none"
    text = Text()
    for i, (code, _) in enumerate(by_count(result.errors)):
        if i:
            text.append("\n")
        code_part, _, rest = error_line(result, code).partition(" ")
        text.append(code_part, style="red")
        text.append(f" {rest}")
    return text


@dataclass(frozen=True, slots=True)
class Outcome:
    """What went wrong in a run that finished: ``error`` when no transaction
    succeeded (the CLI's exit 1), ``warning`` when some failed (exit 0, as
    in k6: a ``--threshold 'errors<…'`` fails CI on them)."""

    level: Literal["error", "warning"]
    message: str  # one line, plain text, no "error:"/"warning:" prefix


def outcome(result: Result) -> Outcome | None:
    """None when every transaction of ``result`` succeeded."""
    done = result.ok + result.failed
    if done == 0:
        return Outcome("error", "no transaction completed in the measured window")
    if result.ok == 0:
        ranked = by_count(result.errors)
        if not ranked:
            return Outcome("error", f"no transaction succeeded ({result.failed:,} failed)")
        message = "no transaction succeeded: " + error_line(result, ranked[0][0], prefix=True)
        if len(ranked) > 1:
            others = sum(count for _, count in ranked[1:])
            codes = ", ".join(code for code, _ in ranked[1:4]) + (", …" if len(ranked) > 4 else "")
            message += f" (and {others:,} more: {codes})"
        return Outcome("error", message)
    if result.failed:
        share = 100.0 * result.failed / done
        pct = f"{share:.1f}" if share >= 0.1 else f"{share:.2g}"
        return Outcome("warning", f"{result.failed:,} of {done:,} transactions failed ({pct} %)")
    return None


def outcome_text(result: Result) -> Text | None:
    """:func:`outcome` as the report shows it (None: nothing to say)."""
    found = outcome(result)
    if found is None:
        return None
    if found.level == "error":
        return Text(found.message, style="bold red")
    return Text(f"warning: {found.message}", style="yellow")


def _number(value: float, digits: int = 3) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def summary_fields(result: Result) -> list[tuple[str, str]]:
    """The run's headline figures as (key, value): plain numbers, no units
    (the unit is in the key), ``nan`` for a latency nothing measured."""
    lat = result.latency
    nan = float("nan")
    done = result.ok + result.failed

    def ms(value: float) -> str:
        return _number(value if result.ok else nan)

    return [
        ("mode", result.mode),
        ("c", str(result.concurrency)),
        ("tps", _number(result.tps)),
        ("p50_ms", ms(lat.p50)),
        ("p99_ms", ms(lat.p99)),
        ("max_ms", ms(lat.max)),
        ("ok", str(result.ok)),
        ("failed", str(result.failed)),
        ("failed_pct", _number(100.0 * result.failed / done if done else 0.0)),
        ("duration_s", _number(result.duration_s)),
        # 0: a partial result (Ctrl-C, --max-errors, a lost worker)
        ("complete", "0" if result.interrupted or result.aborted or result.incidents else "1"),
    ]


def summary_line(result: Result) -> str:
    """``mode=async c=8 tps=1234.567 p50_ms=… p99_ms=… failed=0 …``: one line,
    key=value (logfmt), the same keys in the same order for every run, for
    a CI script to grep. ``nan`` (which float() reads) stands for a latency
    when no transaction succeeded."""
    return " ".join(f"{key}={value}" for key, value in summary_fields(result))


def summary_lines(results: Iterable[Result]) -> list[str]:
    """:func:`summary_line` per run (``compare``: one per cell)."""
    return [summary_line(result) for result in results]


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


# A script of thousands of statements makes a table nobody reads (and rich
# takes seconds to lay out): the slowest in total are shown, --json has all.
MAX_STATEMENT_ROWS = 25


def statements_table(result: Result, limit: int = MAX_STATEMENT_ROWS) -> Table:
    shown = list(result.statements)
    if len(shown) > limit:
        shown = sorted(shown, key=lambda s: s.latency.mean * s.latency.count, reverse=True)
        shown = sorted(shown[:limit], key=lambda s: (s.source, s.line))
    title = "per statement (ms)"
    if len(shown) < len(result.statements):
        title += f": the {limit} slowest in total of {len(result.statements):,} (all in --json)"
    table = Table(title=title, title_justify="left", title_style="bold")
    # Figures never shrink; on a narrow terminal the SQL text gives way.
    table.add_column("where", style="dim", no_wrap=True, min_width=8)
    table.add_column("count", justify="right", no_wrap=True, min_width=6)
    for name in ("mean", "p50", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True, min_width=6)
    table.add_column("statement", overflow="fold")
    for stat in shown:
        lat = stat.latency
        table.add_row(
            f"{stat.source}:{stat.line}",
            # result@1 files have no per-statement count: a dash, not a 0
            f"{lat.count:,}" if lat.count or not measured(lat) else "\u2014",
            _ms(lat.mean, lat),
            _ms(lat.p50, lat),
            _ms(lat.p99, lat),
            _ms(lat.max, lat),
            _shorten(" ".join(stat.sql.split()), 60),
        )
    return table


def scripts_table(result: Result) -> Table:
    """pgbench's per-script report, as a table: each script's weight (and the
    share it targets), transactions (and the share it got), tps, failures
    and latency. Its statements are those of the per-statement table whose
    ``where`` names it."""
    total_weight = sum(s.weight for s in result.per_script) or 1
    total = sum(s.transactions for s in result.per_script) or 1
    table = Table(title="per script", title_justify="left", title_style="bold")
    table.add_column("script", no_wrap=True)
    for name in ("weight", "transactions", "tps", "failed"):
        table.add_column(name, justify="right", no_wrap=True)
    for name in ("mean ms", "p50", "p99"):
        table.add_column(name, justify="right", no_wrap=True, min_width=6)
    for index, stat in enumerate(result.per_script, start=1):
        lat = stat.latency
        tps = stat.ok / result.duration_s if result.duration_s > 0 else 0.0
        failed_pct = 100.0 * stat.failed / stat.transactions if stat.transactions else 0.0
        table.add_row(
            f"{index}: {escape(stat.name)}",
            f"{stat.weight} ({100.0 * stat.weight / total_weight:.1f} %)",
            f"{stat.transactions:,} ({100.0 * stat.transactions / total:.1f} %)",
            f"{tps:,.1f}",
            f"{stat.failed:,} ({failed_pct:.3f} %)",
            _ms(lat.mean, lat),
            _ms(lat.p50, lat),
            _ms(lat.p99, lat),
        )
    return table


# --cluster's per-worker columns; the first three and the last are text
CLUSTER_HEADS = (
    "worker",
    "host",
    "clients",
    "ok",
    "failed",
    "tps",
    "p99 ms",
    "CPU s",
    "CPU %",
    "offset ms",
    "lost",
)
CLUSTER_NOTE = (
    "CPU: the worker's client CPU over the measured window (% of one core);"
    " offset: its host's wall clock minus that of the machine running dbload,"
    " corrected for in the common start"
)
LOST = "LOST"


def cluster_table(cluster: ClusterInfo, duration_s: float) -> RenderableType:
    """--cluster: each Dask worker's share as it measured it, under the
    scheduler's address. Figures never shrink; on a narrow terminal the
    addresses fold. To fit 80 columns there are no rules, and a lost
    worker's mark follows its address rather than taking a column."""
    table = Table(
        title=f"per Dask worker (scheduler {escape(cluster.scheduler)})",
        title_justify="left",
        title_style="bold",
        box=None,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold",
    )
    rows = [cluster_cells(worker, duration_s) for worker in cluster.workers]
    for i, head in enumerate(CLUSTER_HEADS[:-1]):
        widest = max((len(row[i]) for row in rows), default=0)
        if i >= 3:
            table.add_column(head, justify="right", min_width=max(widest, 5))
        else:
            table.add_column(head, overflow="fold", min_width=min(widest, 5))
    for row in rows:
        *cells, lost = (escape(cell) for cell in row)
        if lost:
            cells[0] += f" [bold red]{lost}[/]"
        table.add_row(*cells)
    return Group(table, Text(CLUSTER_NOTE, style="dim"))


def cluster_cells(worker: ClusterWorker, duration_s: float) -> list[str]:
    """One worker's row under :data:`CLUSTER_HEADS`, plain text. CPU % is
    of one core over the measured window (``duration_s``), as the summary's
    client figure; the last cell marks a worker lost mid-run."""
    cpu_s, cpu_pct = NA, NA
    if worker.client_cpu_s is not None:
        cpu_s = f"{worker.client_cpu_s:.2f}"
        if duration_s > 0:
            cpu_pct = f"{100.0 * worker.client_cpu_s / duration_s:.0f} %"
    return [
        worker.address,
        worker.host,
        # "clients 0-3" under a "clients" head: the ids alone
        re.sub(r"\Aclients? ", "", worker.clients),
        f"{worker.ok:,}",
        f"{worker.failed:,}",
        f"{worker.tps:,.1f}",
        NA if worker.p99_ms is None else _fmt(worker.p99_ms),
        cpu_s,
        cpu_pct,
        f"{worker.clock_offset_ms:+.3f}",
        LOST if worker.lost else "",
    ]


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


TOP_SERVER_STATEMENTS = 5


def server_section(server: ServerStats) -> RenderableType:
    """What the server counted over the run: pg_stat_database's deltas, then
    pg_stat_statements' top statements by total time (or why not)."""
    window = "after the warm-up" if server.window == "measured" else "over the run"
    table = Table(
        title=f"server (pg_stat_database, {window})",
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
    """The whole report of one run but its :func:`summary_line` (see
    :func:`print_run`); it ends with what went wrong, if anything did."""
    parts: list[RenderableType] = [summary_table(result)]
    if result.cluster is not None:
        parts += [Text(""), cluster_table(result.cluster, result.duration_s)]
    if len(result.per_script) > 1:
        parts += [Text(""), scripts_table(result)]
    if result.statements:
        parts += [Text(""), statements_table(result)]
    if result.log_files:
        shown = ", ".join(result.log_files)
        parts += [Text(f"transaction log (pgbench's format): {shown}", style="dim")]
    if result.server is not None:
        parts += [Text(""), server_section(result.server)]
    if verdicts:
        parts += [Text(""), thresholds_text(verdicts)]
    if (said := outcome_text(result)) is not None:
        parts += [Text(""), said]
    return Trimmed(Group(*parts))


def print_summary_line(console: Console, line: str) -> None:
    """A summary line as it is, never wrapped nor cut by rich (a terminal
    wraps it on screen and copies it as one line)."""
    console.print(line, style="dim", soft_wrap=True, highlight=False, markup=False)


def print_run(console: Console, result: Result, verdicts: Sequence[Verdict] = ()) -> None:
    """``dbload run``'s report: :func:`render`, then :func:`summary_line` last."""
    if console.quiet:  # rich would lay the tables out only to drop them
        return
    console.print(render(result, verdicts))
    print_summary_line(console, summary_line(result))


def thresholds_text(verdicts: Sequence[Verdict]) -> Text:
    """One line per threshold, pass or fail, with the measured value."""
    text = Text("thresholds\n", style="bold")
    for verdict in verdicts:
        mark, style = ("✓ pass", "green") if verdict.passed else ("✗ FAIL", "bold red")
        text.append(f"  {mark}", style=style)
        text.append(f"  {verdict.describe()}\n")
    return text
