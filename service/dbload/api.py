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
import platform
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypedDict, Unpack

import asyncpg
import psycopg
from psycopg.conninfo import conninfo_to_dict

from dbload import __version__
from dbload.config import (
    Plan,
    check_batch,
    check_concurrency,
    check_cpu_work,
    check_isolation,
    check_max_errors,
    check_max_tries,
    check_rate,
    check_stages,
    check_sweep,
    check_warmup,
    parse_duration_ms,
    parse_timeout_ms,
    pick_seed,
)
from dbload.database.resolve import Database, open_database, server_version
from dbload.database.server_stats import snapshot as server_snapshot
from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.cpu import CpuMeter, find_postmaster
from dbload.measure.histogram import summarize
from dbload.measure.recorder import Recorder, Snapshot
from dbload.measure.result import DatabaseInfo, Result, latency_of, statement_stats
from dbload.measure.server import ServerStats
from dbload.measure.server import delta as server_delta
from dbload.modes import MODES, Executor, get_executor
from dbload.schema.seed import ensure_ready
from dbload.workload.arrivals import RateProfile
from dbload.workload.cpu import loops_for
from dbload.workload.model import Workload
from dbload.workload.parser import load_workload


class Observer:
    """Hooks for a caller that shows what happens; the defaults do nothing."""

    def database(self, info: DatabaseInfo) -> None:
        """The database in use (URL redacted), once it is ready."""

    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> AbstractContextManager[None]:
        """Entered for the duration of the run (progress displays)."""
        return contextlib.nullcontext()

    def cell(self, mode: str, concurrency: int, index: int, total: int) -> None:
        """``compare``: cell ``index`` of ``total`` is about to run."""


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


def prepare_options(
    workload: str | None = None,
    mode: str = "async",
    concurrency: int | None = None,
    **options: Unpack[Options],
) -> RunOptions:
    """Validate every option and parse the scripts, before touching a database."""
    get_executor(mode)  # unknown mode fails here, first
    batch = options.get("transactions"), options.get("duration")
    warmup = check_warmup(options.get("warmup", 0.0))
    rate = check_rate(options.get("rate"))
    stages = check_stages(options.get("stages"), rate, batch, warmup)
    n, t = check_batch(*batch) if stages is None else (None, stages.duration_s)
    return RunOptions(
        workload=load_workload(options.get("files", ()), workload, options.get("defines")),
        mode=mode,
        concurrency=check_concurrency(mode, concurrency),
        transactions=n,
        duration_s=t,
        warmup_s=warmup,
        seed=pick_seed(options.get("seed")),
        statement_timeout_ms=parse_timeout_ms(options.get("statement_timeout")),
        max_errors=check_max_errors(options.get("max_errors")),
        max_tries=check_max_tries(options.get("max_tries")),
        isolation=check_isolation(options.get("isolation")),
        cpu_work_ms=check_cpu_work(options.get("cpu_work")),
        rate=rate if stages is None else stages.peak,
        latency_limit_ms=parse_duration_ms(options.get("latency_limit"), "--latency-limit"),
        stages=stages,
    )


def run(
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
    """Run one workload in one mode against a real PostgreSQL and measure it.

    ``workload`` names a built-in script (``select``, ``tpcb``, ...); the
    other options are :class:`Options` (default: 10 s). The database is
    ``dsn``, else ``$DBLOAD_DSN``/``$DATABASE_URL``, else a container, else
    the embedded server (``db`` forces one). Setting ``stop`` ends the run
    early; the result is then marked interrupted.
    """
    prepared = prepare_options(workload, mode, concurrency, **options)
    with database_ready(db, dsn) as (database, scale):
        return run_on(database, scale, prepared, stop=stop, observer=observer)


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
    dsn: str | None = None,
    db: str = "auto",
    stop: threading.Event | None = None,
    observer: Observer | None = None,
    **options: Unpack[Options],
) -> Comparison:
    """Run one workload in several modes (and concurrencies) on one database.

    Every cell runs the same batch with the same seed, so they send the same
    parameters. ``modes`` defaults to all; ``concurrency`` is one value or a
    sweep (default 8). Sequential runs once, with one connection: it is the
    baseline of every speedup. Without ``transactions`` or ``duration`` each
    cell runs 5 s. Setting ``stop`` ends the comparison after the cell in
    progress, which is kept (marked interrupted).
    """
    cells = compare_cells(modes, concurrency)
    if options.get("transactions") is None and options.get("duration") is None:
        options["duration"] = COMPARE_DURATION_S
    options["seed"] = pick_seed(options.get("seed"))
    prepared = [prepare_options(workload, mode, c, **options) for mode, c in cells]
    stop = stop or threading.Event()
    with database_ready(db, dsn) as (database, scale):
        results: list[Result] = []
        for index, cell in enumerate(prepared):
            if stop.is_set():
                break
            (observer or Observer()).cell(cell.mode, cell.concurrency, index, len(prepared))
            results.append(run_on(database, scale, cell, stop=stop, observer=observer))
    name = prepared[0].workload.name
    return Comparison(workload=name, results=tuple(results), created_at=_now())


def compare_cells(
    modes: Sequence[str] | None, concurrency: Sequence[int] | int | None
) -> list[tuple[str, int | None]]:
    """(mode, concurrency) in run order: sequential once first, then each
    concurrency of the sweep in every other mode."""
    chosen = _check_modes(list(MODES) if modes is None else modes)
    sweep = check_sweep([concurrency] if isinstance(concurrency, int) else concurrency)
    cells: list[tuple[str, int | None]] = [("sequential", None)] if "sequential" in chosen else []
    cells += [(mode, c) for c in sweep for mode in chosen if mode != "sequential"]
    return cells


@contextlib.contextmanager
def database_ready(db: str = "auto", dsn: str | None = None) -> Iterator[tuple[Database, int]]:
    """Resolve the database, migrate and seed it if empty; yields it and its scale."""
    with open_database(db, dsn) as database:
        scale = ensure_ready(database.dsn)
        yield database, scale


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
    executor = get_executor(options.mode)
    info = DatabaseInfo(
        kind=database.kind, url=database.url, server_version=server_version(database.dsn)
    )
    observer.database(info)
    workload = options.workload
    plan = Plan(
        workload=workload,
        mode=options.mode,
        concurrency=options.concurrency,
        transactions=options.transactions,
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        seed=options.seed,
        scale=int(workload.defines.get("scale", scale)),
        dsn=database.dsn,
        statement_timeout_ms=options.statement_timeout_ms,
        max_tries=options.max_tries,
        isolation=options.isolation,
        cpu_work_ms=options.cpu_work_ms,
        cpu_work_loops=loops_for(options.cpu_work_ms),
        rate=options.rate,
        latency_limit_ms=options.latency_limit_ms,
        stages=options.stages,
    )
    cpu = CpuMeter(*find_postmaster(_data_directory(database.dsn)))
    recorder = Recorder(len(workload.statements))
    recorder.latency_limit_ns = plan.latency_limit_ns
    recorder.on_begin = lambda: _start_cpu_after(cpu, plan.warmup_s)
    recorder.on_finish = cpu.stop
    if options.max_errors:
        recorder.abort_after(options.max_errors, stop)
    before = server_snapshot(database.dsn)  # the server-side view: counters before...
    started = _now()
    with observer.running(plan, recorder.snapshot):
        executor.run(plan, recorder, stop)
    interrupted = stop.is_set() and not recorder.aborted
    server = server_delta(before, server_snapshot(database.dsn, since=before))  # ...and after
    return _result(
        plan, executor, recorder, cpu, info, started, interrupted=interrupted, server=server
    )


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


def _start_cpu_after(cpu: CpuMeter, warmup_s: float) -> None:
    """CPU is measured over the same window as latency: after the warm-up."""
    if warmup_s > 0:
        timer = threading.Timer(warmup_s, cpu.start)
        timer.daemon = True
        timer.start()
    else:
        cpu.start()


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
    return Result(
        mode=plan.mode,
        driver=executor.driver,
        workload=workload.name,
        scripts=tuple(f"{s.name}@{s.weight}" for s in workload.scripts),
        concurrency=plan.concurrency,
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
        series=tuple(recorder.series),
        statements=statement_stats(
            recorder, [(s.source, s.line, s.sql) for s in workload.statements]
        ),
        cpu=cpu.result,
        database=info,
        histogram=encoded,
        versions=_versions(info.server_version, executor.driver),
        incidents=tuple(recorder.incidents),
        rate=plan.rate,
        latency_limit_ms=plan.latency_limit_ms,
        skipped=recorder.skipped,
        late=recorder.late,
        lag=summarize(recorder.lag) if plan.rate else None,
        stages=plan.stages,
        server=server,
    )


def _versions(server: str, driver: str) -> dict[str, str]:
    return {
        "dbload": __version__,
        "python": platform.python_version(),
        "driver": driver,
        "asyncpg": asyncpg.__version__,
        "psycopg": psycopg.__version__,
        "server": server,
        "platform": platform.platform(terse=True),
    }


_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


def _data_directory(dsn: str) -> str | None:
    """The server's data directory when it runs on this machine (for its CPU)."""
    try:
        host = conninfo_to_dict(dsn).get("host") or ""
    except psycopg.Error:
        return None
    if not (str(host).startswith("/") or str(host) in _LOCAL_HOSTS):
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


COMPARE_DURATION_S = 5.0

__all__ = [
    "Comparison",
    "Observer",
    "Options",
    "RunOptions",
    "compare",
    "database_ready",
    "prepare_options",
    "run",
    "run_async",
    "run_on",
]
