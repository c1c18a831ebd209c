"""The public Python API: what the CLI (and a team's own tests) call.

``run()`` resolves a database, prepares it, runs one workload in one mode and
returns a typed :class:`~dbload.measure.result.Result`. It raises
:class:`~dbload.errors.DbloadError` subclasses and prints nothing; callers
that want to watch pass an :class:`Observer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import difflib
import os
import platform
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import NamedTuple, TypedDict, Unpack

import asyncpg
import psycopg
from psycopg.conninfo import make_conninfo

from dbload import __version__
from dbload.cluster.address import ClusterSpec, check_cluster_mode, parse_cluster
from dbload.config import (
    Plan,
    check_batch,
    check_concurrency,
    check_cpu_work,
    check_isolation,
    check_jobs,
    check_max_errors,
    check_max_tries,
    check_per_client,
    check_query_mode,
    check_rate,
    check_scale,
    check_scale_matches,
    check_scale_option,
    check_stages,
    check_sweep,
    check_warmup,
    parse_duration_ms,
    parse_random_seed,
    parse_timeout_ms,
    pick_seed,
    resolve_builtin,
)
from dbload.database.resolve import Database, check_connections, open_database, server_version
from dbload.database.server_stats import RunWatch
from dbload.database.servers import ServerSpec, open_server, parse_servers, server_settings
from dbload.database.wait import connect_timeout_s
from dbload.drivers import ALL_DRIVERS, check_driver, default_driver, style_of
from dbload.errors import DatabaseError, UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.cpu import CpuMeter, CpuUse
from dbload.measure.histogram import summarize
from dbload.measure.recorder import Recorder, Snapshot
from dbload.measure.result import (
    ClusterInfo,
    DatabaseInfo,
    Result,
    latency_of,
    script_stats,
    statement_stats,
)
from dbload.measure.server import ServerStats
from dbload.modes import MODES, Executor, get_executor
from dbload.modes.processes import worker_processes
from dbload.report.pgbench_log import DEFAULT_PREFIX, LogSpec, check_log_files, check_log_options
from dbload.schema.seed import Readiness, prepare_data
from dbload.workload.arrivals import RateProfile
from dbload.workload.cpu import loops_for
from dbload.workload.model import Workload
from dbload.workload.parser import builtin_names, load_workload
from dbload.workload.parser import check_query_mode as check_script_mode
from dbload.workload.python import check_python_style, workload_tables


class Observer:
    """Hooks for a caller that shows what happens; the defaults do nothing."""

    def database(self, info: DatabaseInfo) -> None:
        """The database in use (URL redacted), once it is ready."""

    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> AbstractContextManager[None]:
        """Entered for the duration of the run (progress displays)."""
        return contextlib.nullcontext()

    def cell(self, mode: str, concurrency: int, index: int, total: int, driver: str = "") -> None:
        """``compare``: cell ``index`` of ``total`` is about to run. ``driver``
        (its canonical name) is given only when the comparison varies the
        driver (some cell runs another than its mode's default), so an
        observer written before the driver axis keeps working."""

    def server(self, label: str, index: int, total: int) -> None:
        """``compare --servers``: the cells of server ``index`` of ``total`` begin."""

    def data_prepared(self, readiness: Readiness) -> None:
        """dbload created or seeded pgbench's tables for the workload
        (``readiness.message`` says so in one line): tell the user."""

    def waiting(self, message: str) -> None:
        """The server is still starting and dbload waits for it (once, one line)."""


class Observers(Observer):
    """Several observers told the same things in turn (``run --dashboard``:
    the terminal's progress and the page's)."""

    def __init__(self, *observers: Observer) -> None:
        self._all = observers

    def database(self, info: DatabaseInfo) -> None:
        for each in self._all:
            each.database(info)

    @contextlib.contextmanager
    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for each in self._all:
                stack.enter_context(each.running(plan, snapshot))
            yield

    def cell(self, mode: str, concurrency: int, index: int, total: int, driver: str = "") -> None:
        for each in self._all:
            each.cell(mode, concurrency, index, total, driver)

    def server(self, label: str, index: int, total: int) -> None:
        for each in self._all:
            each.server(label, index, total)

    def data_prepared(self, readiness: Readiness) -> None:
        for each in self._all:
            each.data_prepared(readiness)

    def waiting(self, message: str) -> None:
        for each in self._all:
            each.waiting(message)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything ``run()`` needs besides the database, already validated."""

    workload: Workload
    mode: str
    concurrency: int
    transactions: int | None
    duration_s: float | None
    warmup_s: float
    seed: int
    statement_timeout_ms: int = 0
    max_errors: int = 0  # 0: never abort
    max_tries: int = 1  # 1: no retry
    isolation: str | None = None  # PostgreSQL's spelling; None: the server's default
    cpu_work_ms: float = 0.0
    rate: float | None = None  # open loop (--rate), transactions/s in all
    latency_limit_ms: float = 0.0
    stages: RateProfile | None = None  # open loop, the rate over time (--stages)
    init: bool = True  # create and seed pgbench's tables when the workload uses them
    connect_timeout_s: float | None = None  # wait for a starting server (None: the default)
    # pgbench's flags (issue 12): -M, -C, -j, -s and -l
    query_mode: str = "prepared"
    connect_per_transaction: bool = False
    processes: int | None = None  # processes mode's worker processes (-j); None: a core each
    scale: int | None = None  # -s: reported, and checked against the data
    log: LogSpec | None = None
    driver: str = ""  # --driver, canonical (dbload.drivers); "" for the mode's default
    cluster: ClusterSpec | None = None  # --cluster: the Dask cluster that runs the load


class Options(TypedDict, total=False):
    """The run options shared by :func:`run`, :func:`compare` and the CLI.

    ``files`` adds pgbench-syntax scripts as ``PATH[@WEIGHT]``; give
    ``transactions`` (a batch shared by the workers) or ``duration`` seconds.
    ``max_tries`` runs a transaction again after a serialization failure or
    deadlock (40001, 40P01) under ``isolation`` (``serializable``,
    ``repeatable-read``, ``read-committed``); ``cpu_work`` adds that many
    milliseconds of Python work per transaction (the CPU-bound contrast).
    ``rate`` runs open loop: transactions start on a Poisson schedule of
    that many per second in all, and latency counts from the scheduled start;
    ``latency_limit`` (``10ms``) counts slower ones as late and skips those
    already that late when due, as pgbench -R -L does. ``stages``
    (``10s:100,30s:500,10s:0``) ramps the rate from ``rate`` (else 0) to each
    target in turn, k6 style; the stages are the whole run.
    """

    files: Sequence[str]
    defines: Mapping[str, str] | None
    transactions: int | None
    duration: float | None
    warmup: float
    seed: int | None
    statement_timeout: str | None
    max_errors: int | None
    max_tries: int | None
    isolation: str | None
    cpu_work: float | None
    rate: float | None
    latency_limit: str | None
    stages: str | None
    init: bool  # False (--no-init): never create or seed pgbench's tables
    connect_timeout: float | None  # seconds to wait for a server still starting (default 30)
    # pgbench's flags, with its names and meaning: builtins are -b NAME[@W]
    # (pgbench's names or unique prefixes, or dbload's), transactions_per_client
    # is -t, query_mode -M (simple, extended, prepared), connect_per_transaction
    # -C, jobs -j (processes mode's worker processes), scale -s, random_seed
    # --random-seed (an integer, "time" or "rand"); log (-l) writes pgbench's
    # transaction log to log_prefix.PID[.N], aggregated with
    # aggregate_interval seconds or sampled with sampling_rate.
    builtins: Sequence[str]
    transactions_per_client: int | None
    query_mode: str | None
    connect_per_transaction: bool
    jobs: int | None
    scale: int | None
    random_seed: str | None
    log: bool
    log_prefix: str | None
    aggregate_interval: int | None
    sampling_rate: float | None
    # the client library under the mode (--driver): asyncpg, psycopg,
    # sqlalchemy (sqlalchemy+asyncpg, sqlalchemy+psycopg); None: the mode's default
    driver: str | None
    # a Dask scheduler (tcp://host:8786) or local:N, to generate the load
    # from its workers (cluster_workers of them; default all): --cluster
    cluster: str | None
    cluster_workers: int | None


def prepare_options(
    workload: str | None = None,
    mode: str = "async",
    concurrency: int | None = None,
    **options: Unpack[Options],
) -> RunOptions:
    """Validate every option and parse the scripts, before touching a database."""
    check_known(options)
    get_executor(mode)  # unknown mode fails here, first
    driver = check_driver(mode, options.get("driver"))
    cluster = _cluster_spec(mode, options)
    clients = check_concurrency(mode, concurrency)
    total = check_per_client(
        options.get("transactions_per_client"),
        options.get("transactions"),
        options.get("duration"),
        clients,
    )
    batch = total, options.get("duration")
    warmup = check_warmup(options.get("warmup", 0.0))
    rate = check_rate(options.get("rate"))
    stages = check_stages(options.get("stages"), rate, batch, warmup)
    n, t = check_batch(*batch) if stages is None else (None, stages.duration_s)
    known = builtin_names()
    builtins = [resolve_builtin(spec, known) for spec in options.get("builtins", ())]
    chosen = ([workload] if workload is not None else []) + builtins
    defines = options.get("defines") or {}
    if "scale" in defines:  # before the script's checks, which would call it "not a number"
        check_scale(defines["scale"])
    loaded = load_workload(options.get("files", ()), chosen or None, defines)
    seed = pick_seed(parse_random_seed(options.get("random_seed"), options.get("seed")))
    query_mode = check_query_mode(options.get("query_mode"))
    check_script_mode(loaded, query_mode)  # \; needs -M simple, a pipeline the other two
    check_python_style(loaded, style_of(mode), mode)  # a def for sync modes, async def for async
    return RunOptions(
        workload=loaded,
        mode=mode,
        concurrency=check_concurrency(mode, concurrency),
        transactions=n,
        duration_s=t,
        warmup_s=warmup,
        seed=seed,
        statement_timeout_ms=parse_timeout_ms(options.get("statement_timeout")),
        max_errors=check_max_errors(options.get("max_errors")),
        max_tries=check_max_tries(options.get("max_tries")),
        isolation=check_isolation(options.get("isolation")),
        cpu_work_ms=check_cpu_work(options.get("cpu_work")),
        rate=rate if stages is None else stages.peak,
        latency_limit_ms=parse_duration_ms(options.get("latency_limit"), "--latency-limit"),
        stages=stages,
        init=options.get("init", True),
        connect_timeout_s=connect_timeout_s(options.get("connect_timeout")),
        query_mode=query_mode,
        connect_per_transaction=bool(options.get("connect_per_transaction", False)),
        processes=check_jobs(mode, options.get("jobs")),
        scale=check_scale_option(options.get("scale"), loaded.defines),
        log=_log_spec(mode, clients, seed, t, options),
        driver=driver,
        cluster=cluster,
    )


def _cluster_spec(mode: str, options: Options) -> ClusterSpec | None:
    """--cluster and --cluster-workers, checked with the mode."""
    text, workers = options.get("cluster"), options.get("cluster_workers")
    if text is None:
        if workers is not None:
            raise UsageError("--cluster-workers is for --cluster; give both")
        return None
    spec = parse_cluster(text, workers)
    check_cluster_mode(mode)
    if options.get("log"):
        raise UsageError("-l/--log writes files on this machine; drop it with --cluster")
    return spec


def _log_spec(
    mode: str, clients: int, seed: int, duration_s: float | None, options: Options
) -> LogSpec | None:
    """-l and its companions, checked as pgbench checks them; the files of
    every worker that may write one are refused now if they exist."""
    log, prefix = bool(options.get("log", False)), options.get("log_prefix")
    aggregate, sampling = options.get("aggregate_interval"), options.get("sampling_rate")
    check_log_options(log, prefix, aggregate, sampling, duration_s)
    if not log:
        return None
    spec = LogSpec(
        prefix=prefix or DEFAULT_PREFIX,
        pid=os.getpid(),
        aggregate_s=aggregate or 0,
        sampling_rate=sampling or 0.0,
        throttled=options.get("rate") is not None or options.get("stages") is not None,
        latency_limit=options.get("latency_limit") is not None,
        retries=(options.get("max_tries") or 1) != 1,
        seed=seed,
    )
    # processes mode: at most a worker process a client
    check_log_files(spec, clients if mode == "processes" else 1)
    return spec


def check_known(options: Mapping[str, object]) -> None:
    """A misspelt keyword (``queries=10``) must not fall back to a default
    silently: ``**options`` would swallow it, so it is checked by name."""
    known = Options.__annotations__
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            if name == "queries":  # -n's old long name
                close = ["transactions"]
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"dbload: unknown option {name!r}{hint}")


def run(
    workload: str | None = None,
    *,
    mode: str = "async",
    concurrency: int | None = None,
    dsn: str | None = None,
    db: str = "auto",
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    database: Database | None = None,
    **options: Unpack[Options],
) -> Result:
    """Run one workload in one mode against a real PostgreSQL and measure it.

    ``workload`` names a built-in script (``select``, ``tpcb``, ...); the
    other options are :class:`Options` (default: 10 s). The database is
    ``dsn``, else ``$DBLOAD_DSN``/``$DATABASE_URL``, else a container, else
    the embedded server (``db`` forces one), or ``database``, one already
    open (``dbload serve``'s targets). Setting ``stop`` ends the run early;
    the result is then marked interrupted.
    """
    prepared = prepare_options(workload, mode, concurrency, **options)
    with _ready(prepared, db, dsn, observer, database) as (opened, scale):
        return run_on(opened, scale, prepared, stop=stop, observer=observer)


async def run_async(
    workload: str | None = None,
    *,
    mode: str = "async",
    concurrency: int | None = None,
    dsn: str | None = None,
    db: str = "auto",
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    **options: Unpack[Options],
) -> Result:
    """:func:`run` for a caller inside an event loop (a pytest-asyncio test,
    an async service): the run gets a thread and an event loop of its own,
    so it neither blocks the caller's loop nor competes with it."""
    return await asyncio.to_thread(
        lambda: run(
            workload,
            mode=mode,
            concurrency=concurrency,
            dsn=dsn,
            db=db,
            stop=stop,
            observer=observer,
            **options,
        )
    )


def compare(
    workload: str | None = None,
    *,
    modes: Sequence[str] | None = None,
    concurrency: Sequence[int] | int | None = None,
    drivers: Sequence[str] | str | None = None,
    dsn: str | None = None,
    db: str = "auto",
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    servers: Sequence[str] | str | None = None,
    database: Database | None = None,
    **options: Unpack[Options],
) -> Comparison:
    """Run one workload in several modes (and drivers, and concurrencies) on
    one database, or on each of ``servers`` in turn.

    Every cell runs the same batch with the same seed: client k draws the
    same parameters in every mode, so cells of one concurrency send the same
    parameters. ``modes`` defaults to all; ``concurrency`` is one value or a
    sweep (default 8). Sequential runs once, with one connection that runs
    the largest cell's client streams in turn (with ``transactions``, the
    very transactions that cell sends): it is the baseline of every speedup.
    Without ``transactions`` or ``duration`` each cell runs 5 s. Setting
    ``stop`` ends the comparison after the cell in progress, which is kept
    (marked interrupted).

    ``drivers`` (``asyncpg``, ``psycopg``, ``sqlalchemy``,
    ``sqlalchemy+asyncpg``, ``sqlalchemy+psycopg``; a list or one
    comma-separated string) is the driver axis: each mode runs each of them
    that fits it (see :func:`compare_cells`), and a mode they all miss runs
    no cell. Default: each mode's own default driver, one cell each. The
    speedup baseline stays the first cell, sequential with the first sync
    driver given (psycopg in ``asyncpg,psycopg,sqlalchemy``): sequential
    runs once per sync driver, and every speedup, theirs included, is
    against that first one, so a layer's cost shows as a lower speedup.

    ``servers`` (``embedded``, ``container:IMAGE``, ``dsn:URI``; a list or
    one comma-separated string) replaces ``dsn`` and ``db``: every server
    is started and prepared first (they must hold the same scale), then
    the same cells, batch and seed run on each in turn. ``database`` (one
    already open) replaces them all, as in :func:`run`.
    """
    if options.get("driver") is not None:  # run()'s one driver: an axis of one here
        if drivers is not None:
            raise UsageError("give --drivers (the axis) or --driver, not both")
        drivers = [str(options["driver"])]
    options.pop("driver", None)
    cells = compare_cells(modes, concurrency, drivers)
    if options.get("log"):  # every cell would write the same files
        raise UsageError("-l/--log writes one run's transaction log: use it with `dbload run`")
    specs = None if servers is None else parse_servers(servers)
    if specs is not None and (dsn is not None or db != "auto" or database is not None):
        raise UsageError("--servers names every server; drop --dsn and --db")
    if options.get("transactions") is None and options.get("duration") is None:
        options["duration"] = COMPARE_DURATION_S
    options["seed"] = pick_seed(options.get("seed"))
    prepared = [
        prepare_options(workload, cell.mode, cell.concurrency, **_with_driver(options, cell.driver))
        for cell in cells
    ]
    stop = stop or threading.Event()
    observer = observer or Observer()
    # the driver is named to the observer only when it is an axis
    named = any(cell.driver != default_driver(cell.mode) for cell in cells)
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        targets = (
            _targets(stack, specs, prepared[0], db, dsn, observer)
            if database is None
            else [stack.enter_context(_ready(prepared[0], db, dsn, observer, database))]
        )
        for database, _ in targets:
            check_connections(database.dsn, max(cell.concurrency for cell in prepared))
        total = len(prepared) * len(targets)
        for number, (database, scale) in enumerate(targets):
            if specs is not None and not stop.is_set():
                observer.server(database.label, number, len(targets))
            for index, cell in enumerate(prepared, start=number * len(prepared)):
                if stop.is_set():
                    break
                extra = {"driver": cell.driver} if named else {}
                observer.cell(cell.mode, cell.concurrency, index, total, **extra)
                results.append(run_on(database, scale, cell, stop=stop, observer=observer))
    name = prepared[0].workload.name
    return Comparison(workload=name, results=tuple(results), created_at=_now())


def _with_driver(options: Options, driver: str) -> Options:
    """``options`` for one cell: its driver."""
    return {**options, "driver": driver}


def _targets(
    stack: contextlib.ExitStack,
    specs: Sequence[ServerSpec] | None,
    options: RunOptions,
    db: str,
    dsn: str | None,
    observer: Observer,
) -> list[tuple[Database, int]]:
    """The databases a comparison runs on, each ready (its data prepared),
    held open by ``stack``: the one of ``db``/``dsn``, or each of ``specs``."""
    if specs is None:
        return [stack.enter_context(ready_for(options, db, dsn, observer))]
    targets = []
    for spec in specs:
        timeout = options.connect_timeout_s
        opened = open_server(spec, connect_timeout=timeout, on_wait=observer.waiting)
        database = stack.enter_context(opened)
        targets.append((database, _prepare(database, options.workload, options.init, observer)))
    scales = {database.label: scale for database, scale in targets}
    if len(set(scales.values())) > 1:
        held = ", ".join(f"{label} scale {scale}" for label, scale in scales.items())
        raise DatabaseError(
            f"--servers: the servers hold different data sets ({held}); load the same"
            " scale on each (dbload seed --scale N --force --dsn URI)"
        )
    return targets


class Cell(NamedTuple):
    """One cell of a comparison: a mode, a driver (canonical) and its clients."""

    mode: str
    driver: str
    concurrency: int


def compare_cells(
    modes: Sequence[str] | None,
    concurrency: Sequence[int] | int | None,
    drivers: Sequence[str] | str | None = None,
) -> list[Cell]:
    """The cells in run order: sequential first, once per sync driver, then
    each concurrency of the sweep in every other mode, with each of its
    drivers in the order given.

    Without ``drivers`` each mode runs its default driver (one cell per
    mode and concurrency). With them, a mode runs those that fit it, by
    their canonical names (``sqlalchemy`` is ``sqlalchemy+psycopg`` in
    sequential and threads, ``sqlalchemy+asyncpg`` in async and processes);
    a pair that does not fit is skipped. An unknown driver, or one that
    fits none of the modes, is a UsageError.
    """
    chosen = _check_modes(list(MODES) if modes is None else modes)
    sweep = check_sweep([concurrency] if isinstance(concurrency, int) else concurrency)
    fitting = _check_drivers(chosen, drivers)
    # the baseline replays the streams of the sweep's largest cell: with -n
    # it sends exactly the transactions that cell's workers send
    cells = [Cell("sequential", driver, max(sweep)) for driver in fitting.get("sequential", [])]
    cells += [
        Cell(mode, driver, c)
        for c in sweep
        for mode in chosen
        if mode != "sequential"
        for driver in fitting[mode]
    ]
    return cells


def _check_drivers(
    modes: Sequence[str], drivers: Sequence[str] | str | None
) -> dict[str, list[str]]:
    """Per mode, the canonical drivers of ``drivers`` that fit it (``compare --drivers``)."""
    if drivers is None:
        return {mode: [default_driver(mode)] for mode in modes}
    given = drivers.split(",") if isinstance(drivers, str) else list(drivers)
    names = list(dict.fromkeys(d.strip().lower() for d in given if d.strip()))
    if not names:
        raise UsageError("--drivers: give at least one driver")
    unknown = [name for name in names if name not in ALL_DRIVERS]
    if unknown:
        raise UsageError(
            f"--drivers: unknown driver {unknown[0]!r}; choose from {', '.join(ALL_DRIVERS)}"
        )
    fitting: dict[str, list[str]] = {mode: [] for mode in modes}
    for name in names:
        fits = {mode: canonical for mode in MODES if (canonical := _fit(mode, name))}
        if not any(mode in fits for mode in modes):
            raise UsageError(
                f"--drivers: {name} fits none of the modes compared ({', '.join(modes)});"
                f" it runs in {', '.join(fits)}"
            )
        for mode in modes:
            if mode in fits and fits[mode] not in fitting[mode]:
                fitting[mode].append(fits[mode])
    return fitting


def _fit(mode: str, driver: str) -> str | None:
    """``driver``'s canonical name in ``mode``, or None where it does not fit."""
    try:
        return check_driver(mode, driver)
    except UsageError:
        return None


@contextlib.contextmanager
def database_ready(
    db: str = "auto",
    dsn: str | None = None,
    *,
    workload: Workload | None = None,
    init: bool = True,
    observer: Observer | None = None,
    connect_timeout: float | None = None,
) -> Iterator[tuple[Database, int]]:
    """Resolve the database and prepare what ``workload`` needs; yields it and its scale.

    pgbench's tables are created and seeded (scale 1) only when the workload
    names one of them (no ``workload``: always), and ``observer`` is told;
    ``init=False`` (``--no-init``) makes missing or empty tables an error.
    A server still starting is waited for up to ``connect_timeout`` s.
    """
    told = (observer or Observer()).waiting
    with open_database(db, dsn, connect_timeout=connect_timeout, on_wait=told) as database:
        yield database, _prepare(database, workload, init, observer or Observer())


def _prepare(database: Database, workload: Workload | None, init: bool, observer: Observer) -> int:
    """Create and seed what ``workload`` needs on ``database`` (see
    :func:`database_ready`); its scale."""
    names = None if workload is None else workload_tables(workload)
    ready = prepare_data(database.dsn, names, init=init)
    if ready.message:
        observer.data_prepared(ready)
    return ready.scale


def ready_for(
    options: RunOptions, db: str, dsn: str | None, observer: Observer | None
) -> AbstractContextManager[tuple[Database, int]]:
    """:func:`database_ready` for what ``options`` will run."""
    return database_ready(
        db,
        dsn,
        workload=options.workload,
        init=options.init,
        observer=observer,
        connect_timeout=options.connect_timeout_s,
    )


@contextlib.contextmanager
def _ready(
    options: RunOptions,
    db: str,
    dsn: str | None,
    observer: Observer | None,
    database: Database | None,
) -> Iterator[tuple[Database, int]]:
    """:func:`ready_for`, or ``database`` (already open) with its data prepared."""
    if database is None:
        with ready_for(options, db, dsn, observer) as ready:
            yield ready
        return
    if dsn is not None or db != "auto":
        raise UsageError("give an open database or --dsn/--db, not both")
    yield database, _prepare(database, options.workload, options.init, observer or Observer())


def run_on(
    database: Database,
    scale: int,
    options: RunOptions,
    *,
    stop: threading.Event | None = None,
    observer: Observer | None = None,
) -> Result:
    """Run validated options on a ready database."""
    observer = observer or Observer()
    stop = stop or threading.Event()
    executor = get_executor(options.mode) if options.cluster is None else _cluster(options.cluster)
    info = DatabaseInfo(
        kind=database.kind, url=database.url, server_version=server_version(database.dsn)
    )
    if database.label:  # compare --servers: say which, and how it is set up
        settings = server_settings(database.dsn)
        info = replace(info, server=database.label, image=database.image, settings=settings)
    observer.database(info)
    # asked for more than the server has, the extra workers would fail one
    # by one (or a pool wait for ever): say it before anything runs
    check_connections(database.dsn, options.concurrency)
    workload = options.workload
    # the run's connections say whose they are: the server view finds their backends by it
    tag = f"dbload-{secrets.token_hex(4)}"
    plan = Plan(
        workload=workload,
        mode=options.mode,
        concurrency=options.concurrency,
        transactions=options.transactions,
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        seed=options.seed,
        scale=_scale(options.scale, scale, workload),
        dsn=make_conninfo(database.dsn, application_name=tag),
        statement_timeout_ms=options.statement_timeout_ms,
        max_tries=options.max_tries,
        isolation=options.isolation,
        cpu_work_ms=options.cpu_work_ms,
        cpu_work_loops=loops_for(options.cpu_work_ms),
        rate=options.rate,
        latency_limit_ms=options.latency_limit_ms,
        stages=options.stages,
        query_mode=options.query_mode,
        connect_per_transaction=options.connect_per_transaction,
        processes=options.processes,
        log=options.log,
        driver=options.driver,
    )
    recorder = Recorder(len(workload.statements), scripts=len(workload.scripts))
    recorder.latency_limit_ns = plan.latency_limit_ns
    if plan.mode != "processes":  # there each worker process writes its own file
        recorder.attach_log(plan.log)
    if options.max_errors:
        recorder.abort_after(options.max_errors, stop)
    # the server view and CPU, over the measured window (after the warm-up)
    with RunWatch(database.dsn, tag, plan.warmup_s) as watch:
        recorder.on_begin = lambda: watch.begin(recorder.measure_from_ns)
        recorder.on_finish = watch.end
        started = _now()
        with observer.running(plan, recorder.snapshot):
            executor.run(plan, recorder, stop)
        interrupted = stop.is_set() and not recorder.aborted
        server = watch.result()
    return _result(
        plan, executor, recorder, watch.cpu, info, started, interrupted=interrupted, server=server
    )


def _scale(given: int | None, data_scale: int, workload: Workload) -> int:
    """The run's scale: ``-D scale=N``, else ``-s`` checked against the data
    when the workload reads pgbench's tables, else the data's."""
    if "scale" in workload.defines:
        return check_scale(workload.defines["scale"])
    tables = workload_tables(workload)
    return check_scale_matches(given, data_scale, bool(tables))


def _check_modes(modes: Sequence[str]) -> list[str]:
    """Known modes, each once, in the order given (``compare --modes``)."""
    chosen = [m.strip() for m in modes if m.strip()]
    if not chosen:
        raise UsageError("--modes: give at least one mode")
    unknown = [m for m in chosen if m not in MODES]
    if unknown:
        raise UsageError(f"--modes: unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    return list(dict.fromkeys(chosen))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _result(
    plan: Plan,
    executor: Executor,
    recorder: Recorder,
    cpu: CpuMeter,
    info: DatabaseInfo,
    started: str,
    *,
    interrupted: bool,
    server: ServerStats | None = None,
) -> Result:
    latency, encoded = latency_of(recorder)
    workload = plan.workload
    # the canonical name; the executor's label (versions and all) goes in versions
    driver = plan.driver or default_driver(plan.mode)
    return Result(
        mode=plan.mode,
        driver=driver,
        workload=workload.name,
        scripts=tuple(f"{s.name}@{s.weight}" for s in workload.scripts),
        # connections: sequential's one runs the streams of plan.concurrency clients
        concurrency=1 if plan.mode == "sequential" else plan.concurrency,
        streams=plan.concurrency,
        seed=plan.seed,
        scale=plan.scale,
        planned_transactions=plan.transactions,
        planned_duration_s=plan.duration_s,
        warmup_s=plan.warmup_s,
        started_at=started,
        duration_s=recorder.measured_s,
        interrupted=interrupted,
        aborted=recorder.aborted,
        ok=recorder.ok,
        failed=recorder.failed,
        retried=recorder.retried,
        retries=recorder.retries,
        cancelled=recorder.cancelled,
        max_tries=plan.max_tries,
        isolation=plan.isolation,
        cpu_work_ms=plan.cpu_work_ms,
        statement_count=recorder.statement_count,
        warmup_transactions=recorder.warmup_transactions,
        latency=latency,
        errors=dict(recorder.errors),
        error_examples=dict(recorder.error_examples),
        series=tuple(recorder.series),
        statements=statement_stats(
            recorder, [(s.source, s.line, s.sql) for s in workload.statements]
        ),
        cpu=_cluster_cpu(cpu.result, getattr(executor, "cluster", None)),
        database=info,
        histogram=encoded,
        versions=_versions(info.server_version, executor.driver, driver),
        incidents=tuple(recorder.incidents),
        rate=plan.rate,
        latency_limit_ms=plan.latency_limit_ms,
        skipped=recorder.skipped,
        late=recorder.late,
        lag=summarize(recorder.lag) if plan.rate else None,
        stages=plan.stages,
        server=server,
        per_script=script_stats(
            recorder, [(s.name, s.weight, s.statements) for s in workload.scripts]
        ),
        query_mode=plan.query_mode,
        connect_per_transaction=plan.connect_per_transaction,
        log_files=_log_files(plan),
        cluster=getattr(executor, "cluster", None),
    )


def _cluster_cpu(cpu: CpuUse | None, cluster: ClusterInfo | None) -> CpuUse | None:
    """--cluster: the client CPU is the workers', each measured on its host
    (this process only coordinates)."""
    if cpu is None or cluster is None:
        return cpu
    spent = [w.client_cpu_s for w in cluster.workers if w.client_cpu_s is not None]
    return replace(cpu, client_s=sum(spent)) if spent else cpu


def _cluster(spec: ClusterSpec) -> Executor:
    from dbload.cluster.coordinator import ClusterExecutor

    return ClusterExecutor(spec)


def _log_files(plan: Plan) -> tuple[str, ...]:
    """The -l files the run wrote (processes mode: those of its workers)."""
    if plan.log is None:
        return ()
    workers = worker_processes(plan) if plan.mode == "processes" else 1
    return tuple(str(path) for path in plan.log.paths(workers) if path.exists())


def _versions(server: str, label: str, driver: str) -> dict[str, str]:
    versions = {
        "dbload": __version__,
        "python": platform.python_version(),
        "driver": label,
        "asyncpg": asyncpg.__version__,
        "psycopg": psycopg.__version__,
        "server": server,
        "platform": platform.platform(terse=True),
    }
    if driver.startswith("sqlalchemy"):
        import sqlalchemy  # only then: the other drivers' runs need not load it

        versions["sqlalchemy"] = sqlalchemy.__version__
    return versions


COMPARE_DURATION_S = 5.0

__all__ = [
    "Cell",
    "Comparison",
    "Observer",
    "Observers",
    "Options",
    "RunOptions",
    "compare",
    "database_ready",
    "prepare_options",
    "run",
    "run_async",
    "run_on",
]
