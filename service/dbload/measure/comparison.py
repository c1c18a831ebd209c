"""Several runs of one workload side by side: the arithmetic of ``dbload compare``.

Pure functions of :class:`~dbload.measure.result.Result` records: speedup
against the sequential run, how close that comes to the ideal, and which
resource bounded each run according to its CPU figures. Reports (console,
HTML, charts) render these rows; they compute nothing of their own.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from dbload.drivers import default_driver
from dbload.measure.cpu import CpuUse
from dbload.measure.result import Result

# Bound verdicts, as shown to the user.
CLIENT_CPU = "client CPU"
SERVER_CPU = "server CPU"
SERVER_WAIT = "server wait"
UNKNOWN = "unknown"

# A resource counts as saturated at 85 % of its ceiling: CPU figures are
# sampled over the whole window (start-up and the tail of the batch
# included), so a resource that was the bottleneck rarely shows 100 %.
NEAR_CEILING = 0.85

# CPU times tick at 10 ms per process (and the server has one per client):
# over a shorter window the percentages are mostly rounding.
MIN_CPU_WINDOW_S = 0.5

# Modes whose client runs Python in one process: the GIL allows one core.
ONE_PROCESS_MODES = frozenset({"sequential", "threads", "async"})

# Other sessions count as busy on the server from this share of one core
# (their CPU, when the server is local) or of the pg_stat_activity samples
# in which one of them was running a statement.
OTHERS_BUSY = 0.10


@dataclass(frozen=True, slots=True)
class Comparison:
    """One workload run in several modes (and clients), ``created_at`` ISO 8601 UTC."""

    workload: str
    results: tuple[Result, ...]
    created_at: str

    @classmethod
    def of(cls, results: Iterable[Result], workload: str | None = None) -> Comparison:
        """A comparison made now; the workload name defaults to the runs' own names."""
        runs = tuple(results)
        name = workload or ", ".join(dict.fromkeys(r.workload for r in runs))
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return cls(workload=name, results=runs, created_at=created)


@dataclass(frozen=True, slots=True)
class Row:
    """One run as the compare table shows it (latencies in ms, CPU in % of one core)."""

    label: str  # "async c=8" ("async psycopg c=8": see shows_drivers), "(run N)" when runs repeat
    mode: str
    concurrency: int
    tps: float
    p50_ms: float
    p99_ms: float
    speedup: float | None  # tps / tps of the sequential run; None without one
    ideal_pct: float | None  # 100 * speedup / concurrency
    client_cpu_pct: float | None
    server_cpu_pct: float | None
    bound: str  # CLIENT_CPU, SERVER_CPU, SERVER_WAIT or UNKNOWN
    why: str  # the figures behind ``bound``, one line
    server: str = ""  # compare --servers: the server it ran on ("": the only one)
    driver: str = ""  # the canonical driver name (Result.driver)
    client_us_per_txn: float | None = None  # client CPU µs per successful transaction


@dataclass(frozen=True, slots=True)
class Delta:
    """Change from a reference run, in % of the reference (None: reference is 0)."""

    tps_pct: float | None
    p99_pct: float | None


def rows(comparison: Comparison) -> list[Row]:
    """The compare table, one row per run in the comparison's order.

    ``speedup`` is throughput over the first sequential run's throughput
    (with ``--servers``, the first sequential run on the same server),
    whatever its driver: with ``--drivers`` naming several sync drivers,
    sequential runs once per driver and the first of them, the first cell,
    is every run's baseline, so that a driver's cost shows in the speedups.
    ``ideal_pct`` relates it to ``concurrency``, the speedup that perfect
    overlap of server waits would give: N clients that each spend all their
    time waiting on the server finish N times the work of one. 100 % means
    the mode hid every wait; far below means something else (client CPU,
    server CPU, locks) capped it.
    """
    labels = run_labels(comparison.results)
    return [
        _row(r, label, baseline(comparison.results, r.database.server))
        for r, label in zip(comparison.results, labels, strict=True)
    ]


def baseline(results: Iterable[Result], server: str | None = None) -> Result | None:
    """The run speedups are measured against: the first sequential one (of
    ``server``'s runs, when given: ``compare --servers``)."""
    return next(
        (
            r
            for r in results
            if r.mode == "sequential" and (server is None or r.database.server == server)
        ),
        None,
    )


def servers(results: Iterable[Result]) -> list[str]:
    """The ``--servers`` labels of the runs, each once, in run order ([] without)."""
    return list(dict.fromkeys(r.database.server for r in results if r.database.server))


def shows_drivers(results: Iterable[Result]) -> bool:
    """Whether the driver is an axis of these runs: some run used another
    driver than its mode's default. A plain ``compare`` runs each mode's
    default (psycopg for sequential and threads, asyncpg for the others),
    and its reports stay as they were without a driver column."""
    return any(r.driver != default_driver(r.mode) for r in results)


def run_labels(results: tuple[Result, ...]) -> list[str]:
    """``mode c=clients`` per run (``server mode c=clients`` when the runs
    span several servers, ``mode driver c=clients`` when they vary the
    driver: :func:`shows_drivers`); repeated ones (``dbload report A B``)
    get ``(run N)``."""
    several = len(servers(results)) > 1
    with_driver = shows_drivers(results)
    plain = [
        f"{r.database.server + ' ' if several else ''}{r.mode}"
        f"{' ' + r.driver if with_driver else ''} c={r.concurrency}"
        for r in results
    ]
    counts = Counter(plain)
    return [
        label if counts[label] == 1 else f"{label} (run {i})"
        for i, label in enumerate(plain, start=1)
    ]


def _row(result: Result, label: str, base: Result | None) -> Row:
    speedup = None
    if base is not None and base.tps > 0:
        speedup = result.tps / base.tps
    ideal = None if speedup is None else 100.0 * speedup / max(result.concurrency, 1)
    cpu = result.cpu
    bound, why = classify(result)
    return Row(
        label=label,
        mode=result.mode,
        concurrency=result.concurrency,
        tps=result.tps,
        p50_ms=result.latency.p50,
        p99_ms=result.latency.p99,
        speedup=speedup,
        ideal_pct=ideal,
        client_cpu_pct=None if cpu is None else cpu.client_pct,
        server_cpu_pct=None if cpu is None else cpu.server_pct,
        bound=bound,
        why=why,
        server=result.database.server,
        driver=result.driver,
        client_us_per_txn=result.client_us_per_transaction,
    )


def client_ceiling_pct(mode: str, concurrency: int, cores: int) -> float:
    """The most CPU the client can use, in % of one core.

    One core for the single-process modes (the GIL lets one thread run
    Python at a time); for ``processes``, one core per process, at most the
    machine's. The process count is not recorded in a result; the executor
    starts one per client up to the core count, so ``min(clients, cores)``.
    """
    if mode in ONE_PROCESS_MODES:
        return 100.0
    return 100.0 * max(1, min(concurrency, cores))


def server_ceiling_pct(concurrency: int, cores: int) -> float:
    """The most CPU the server can spend on the run: one backend per client,
    each on at most one core, and no more than the machine has."""
    return 100.0 * max(1, min(concurrency, cores))


def classify(result: Result) -> tuple[str, str]:
    """Which resource bounded the run, from its CPU figures, and why (one line).

    In order: the client is bound when it used 85 % of its ceiling
    (:func:`client_ceiling_pct`); the server's CPU when the server used 85 %
    of its ceiling (:func:`server_ceiling_pct`) or client and server together
    used 85 % of all cores (the machine is saturated, and the server gets no
    more CPU); otherwise the clients were mostly waiting on the server
    (network, disk, locks, sleeps). Without CPU figures, or over less than
    ``MIN_CPU_WINDOW_S``, the verdict is unknown; without server CPU it is
    unknown unless the client is bound.
    """
    cpu = result.cpu
    if cpu is None or cpu.wall_s <= 0:
        return UNKNOWN, "CPU was not measured"
    if cpu.wall_s < MIN_CPU_WINDOW_S:
        return UNKNOWN, f"the run was too short ({cpu.wall_s:.2f} s) to judge its CPU use"
    return classify_cpu(result.mode, result.concurrency, cpu)


def classify_cpu(mode: str, concurrency: int, cpu: CpuUse) -> tuple[str, str]:
    """:func:`classify` on bare figures (see there). Server CPU is the run's
    own backends': another session's is named in the reason, never the
    cause of a "server CPU" verdict."""
    bound, why = _classify_cpu(mode, concurrency, cpu)
    others = cpu.others_pct
    if others is not None and others >= 100.0 * OTHERS_BUSY:
        why += f"; other sessions used {others:.0f} % on the server"
    return bound, why


def _classify_cpu(mode: str, concurrency: int, cpu: CpuUse) -> tuple[str, str]:
    machine = 100.0 * cpu.cores
    client_max = min(client_ceiling_pct(mode, concurrency, cpu.cores), machine)
    if cpu.client_pct >= NEAR_CEILING * client_max:
        return CLIENT_CPU, (
            f"client used {cpu.client_pct:.0f} % of a {client_max:.0f} % ceiling"
            f" ({_ceiling_reason(mode)})"
        )
    server = cpu.server_pct
    if server is None:
        return UNKNOWN, f"client below its ceiling; server CPU not measured ({cpu.server_note})"
    server_max = server_ceiling_pct(concurrency, cpu.cores)
    if server >= NEAR_CEILING * server_max:
        return SERVER_CPU, (
            f"server used {server:.0f} % of a {server_max:.0f} % ceiling"
            f" ({min(concurrency, cpu.cores)} busy backends)"
        )
    if cpu.client_pct + server >= NEAR_CEILING * machine:
        return SERVER_CPU, (
            f"client and server used {cpu.client_pct + server:.0f} % of {machine:.0f} %"
            f" ({cpu.cores} cores): the machine is saturated"
        )
    return SERVER_WAIT, (
        f"client {cpu.client_pct:.0f} % of {client_max:.0f} %, server {server:.0f} %"
        f" of {server_max:.0f} %: clients mostly waited on the server"
    )


def busy_others(result: Result) -> str | None:
    """One line when other sessions were busy on the server during the run
    (their CPU, where measured, and pg_stat_activity's samples), else None.
    The server figures of the run leave their work out."""
    cpu = result.cpu.others_pct if result.cpu is not None else None
    sampled = result.server.others if result.server is not None else None
    busy_cpu = cpu is not None and cpu >= 100.0 * OTHERS_BUSY
    busy_samples = sampled is not None and sampled.busy_share >= OTHERS_BUSY
    if not (busy_cpu or busy_samples):
        return None
    parts = []
    if sampled is not None and sampled.busy_samples:
        parts.append(
            f"up to {sampled.max_active} running a statement in"
            f" {100 * sampled.busy_share:.0f} % of {sampled.samples}"
            f" sample{'' if sampled.samples == 1 else 's'}"
        )
    if cpu is not None:
        parts.append(f"{cpu:.0f} % CPU (% of one core)")
    return f"other sessions were busy on the server: {', '.join(parts)}; not counted as this run's"


def _ceiling_reason(mode: str) -> str:
    return "one core: the GIL" if mode in ONE_PROCESS_MODES else "one core per process"


def diff(a: Result, b: Result) -> Delta:
    """How ``b`` differs from ``a``: tps and p99 change in % of ``a``'s."""
    return Delta(
        tps_pct=_pct_change(a.tps, b.tps), p99_pct=_pct_change(a.latency.p99, b.latency.p99)
    )


def _pct_change(old: float, new: float) -> float | None:
    return None if old == 0 else 100.0 * (new - old) / old


def environment(comparison: Comparison) -> list[tuple[str, str]]:
    """Where and how the runs ran, as (label, value) pairs for a report header.

    Values that differ between runs are all listed, joined by ", ", so a
    report of runs from different machines or seeds says so.
    """
    runs = comparison.results

    def each(values: Iterable[object]) -> str:
        return ", ".join(dict.fromkeys(str(v) for v in values if v not in (None, ""))) or "—"

    versions = [r.versions for r in runs]
    return [
        ("workload", comparison.workload),
        ("scripts", each(s for r in runs for s in r.scripts)),
        ("batch", each(_batch(r) for r in runs)),
        ("seed", each(r.seed for r in runs)),
        ("scale", each(r.scale for r in runs)),
        ("server", each(f"PostgreSQL {r.database.server_version}" for r in runs)),
        ("database", each(f"{r.database.kind}: {r.database.url}" for r in runs)),
        *_servers_environment(runs),
        ("drivers", each(_drivers(v) for v in versions)),
        ("CPU cores", each(r.cpu.cores if r.cpu else None for r in runs)),
        ("python", each(v.get("python") for v in versions)),
        ("platform", each(v.get("platform") for v in versions)),
        ("dbload", each(v.get("dbload") for v in versions)),
        ("created", comparison.created_at),
    ]


def _servers_environment(runs: Iterable[Result]) -> list[tuple[str, str]]:
    """``compare --servers``: per server, its version and image, and its settings."""
    seen: dict[str, Result] = {}
    for r in runs:
        if r.database.server:
            seen.setdefault(r.database.server, r)
    pairs: list[tuple[str, str]] = []
    for label, r in seen.items():
        info = r.database
        about = f"PostgreSQL {info.server_version}"
        if info.image:
            about += f", image {info.image}"
        pairs.append((f"server {label}", about))
        if info.settings:
            shown = ", ".join(f"{k}={v}" for k, v in info.settings.items() if k != "version")
            pairs.append((f"settings {label}", shown))
    return pairs


def _batch(result: Result) -> str:
    if result.planned_transactions is not None:
        return f"{result.planned_transactions:,} transactions"
    return f"{result.planned_duration_s:g} s" if result.planned_duration_s is not None else ""


def _drivers(versions: dict[str, str]) -> str:
    return " · ".join(
        f"{name} {versions[name]}"
        for name in ("asyncpg", "psycopg", "sqlalchemy")
        if name in versions
    )
