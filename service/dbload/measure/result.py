"""The result of one run: a typed, driver-free record that reports render."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbload.measure.cpu import CpuUse
from dbload.measure.histogram import LatencySummary, encode, summarize
from dbload.measure.recorder import Interval, Recorder
from dbload.measure.server import ServerStats
from dbload.workload.arrivals import RateProfile


@dataclass(frozen=True, slots=True)
class StatementStats:
    source: str
    line: int
    sql: str
    latency: LatencySummary


@dataclass(frozen=True, slots=True)
class ScriptStats:
    """One script's figures when several run (pgbench's per-script report)."""

    name: str
    weight: int
    ok: int
    failed: int
    latency: LatencySummary  # of its successful transactions
    statements: tuple[int, ...]  # its statements: indexes into Result.statements

    @property
    def transactions(self) -> int:
        return self.ok + self.failed


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    kind: str  # "dsn" | "container" | "embedded"
    url: str  # redacted
    server_version: str
    # compare --servers: the entry that named it ("embedded", "container:IMAGE",
    # "dsn:URI" redacted), the image of a container, and settings that shape
    # the figures (shared_buffers, fsync, ...); empty for a run on one server
    server: str = ""
    image: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterWorker:
    """One Dask worker's share of a --cluster run, as it measured it."""

    address: str
    host: str
    clients: str  # "clients 0-3"
    ok: int
    failed: int
    tps: float
    p99_ms: float | None
    client_cpu_s: float | None  # its process's CPU over the measured window
    clock_offset_ms: float  # its wall clock minus the coordinator's
    lost: bool = False  # left the cluster or stopped reporting mid-run


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    scheduler: str
    workers: tuple[ClusterWorker, ...]


@dataclass(frozen=True, slots=True)
class Result:
    mode: str
    # the client library by its canonical name (dbload.drivers: "asyncpg",
    # "sqlalchemy+asyncpg"); its version label is ``versions["driver"]``
    driver: str
    workload: str
    scripts: tuple[str, ...]  # "name@weight"
    concurrency: int
    seed: int
    scale: int
    planned_transactions: int | None
    planned_duration_s: float | None
    warmup_s: float
    started_at: str  # ISO 8601, UTC
    duration_s: float  # measured window, warm-up excluded
    interrupted: bool
    aborted: bool  # stopped by --max-errors
    ok: int
    failed: int
    statement_count: int
    warmup_transactions: int
    latency: LatencySummary
    errors: dict[str, int]
    series: tuple[Interval, ...]
    statements: tuple[StatementStats, ...]
    cpu: CpuUse | None
    database: DatabaseInfo
    histogram: str  # base64 HdrHistogram of transaction latency, µs
    versions: dict[str, str] = field(default_factory=dict)
    retried: int = 0  # transactions that needed more than one try
    retries: int = 0  # tries beyond the first
    cancelled: int = 0  # in flight at Ctrl-C, cancelled after the grace period
    max_tries: int = 1
    isolation: str | None = None  # None: the server's default
    cpu_work_ms: float = 0.0  # Python work added per transaction (--cpu-work)
    incidents: tuple[str, ...] = ()  # faults that lost part of the run (a worker process died)
    rate: float | None = None  # open loop: the scheduled rate (--rate); None: closed loop
    latency_limit_ms: float = 0.0
    skipped: int = 0  # open loop: already later than --latency-limit when due, not run
    late: int = 0  # finished, but slower than --latency-limit
    lag: LatencySummary | None = None  # open loop: scheduled start to actual start
    stages: RateProfile | None = None  # open loop, --stages: the rate over time
    server: ServerStats | None = None  # pg_stat_database/pg_stat_statements deltas
    # clients' parameter streams replayed: ``concurrency`` but in sequential,
    # whose one connection runs N clients' streams in turn (0: as concurrency)
    streams: int = 0
    # the server's message (first line) seen first for each code of ``errors``
    error_examples: dict[str, str] = field(default_factory=dict)

    # per script, in the order given (pgbench's "SQL script N"); () for old files
    per_script: tuple[ScriptStats, ...] = ()
    query_mode: str = "prepared"  # -M
    connect_per_transaction: bool = False  # -C
    log_files: tuple[str, ...] = ()  # -l: pgbench-format transaction logs written
    cluster: ClusterInfo | None = None  # --cluster: the scheduler and each worker's share

    @property
    def tps(self) -> float:
        """Successful transactions per second, as pgbench counts them."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def statements_per_s(self) -> float:
        return self.statement_count / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def driver_label(self) -> str:
        """The driver as its executor names it, with versions ("asyncpg
        0.30.0 + uvloop"); the canonical name when the label is missing."""
        return self.versions.get("driver") or self.driver

    @property
    def client_us_per_transaction(self) -> float | None:
        """Client CPU per successful transaction, in µs: what the client
        library and the mode cost on this side of the wire. None without a
        CPU figure or a successful transaction."""
        if self.cpu is None or self.ok <= 0:
            return None
        return 1e6 * self.cpu.client_s / self.ok


def statement_stats(
    recorder: Recorder, sources: list[tuple[str, int, str]]
) -> tuple[StatementStats, ...]:
    return tuple(
        StatementStats(source=src, line=line, sql=sql, latency=summarize(hist))
        for (src, line, sql), hist in zip(sources, recorder.statements, strict=True)
    )


def latency_of(recorder: Recorder) -> tuple[LatencySummary, str]:
    return summarize(recorder.transactions), encode(recorder.transactions)


def script_stats(
    recorder: Recorder, scripts: list[tuple[str, int, tuple[int, ...]]]
) -> tuple[ScriptStats, ...]:
    """Per-script figures of ``scripts`` (name, weight, statement indexes)."""
    recorder.grow_scripts(len(scripts) - 1)
    return tuple(
        ScriptStats(
            name=name,
            weight=weight,
            ok=recorder.script_ok[index],
            failed=recorder.script_failed[index],
            latency=summarize(recorder.script_latency[index]),
            statements=statements,
        )
        for index, (name, weight, statements) in enumerate(scripts)
    )
