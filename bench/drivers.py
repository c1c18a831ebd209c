"""dbload per driver vs the plainest loop of that driver, and the cost of each layer.

What it measures: for each driver dbload runs (``--driver``), how much of
that driver's throughput dbload keeps. Each pair runs the same statements at
the same concurrency, every client holding its own connection:

select (``SELECT abalance FROM pgbench_accounts WHERE aid = $1``, a uniformly
random aid):

- ``async/asyncpg``: N coroutines on uvloop, ``conn.prepare(sql)`` then
  ``await stmt.fetch(aid)`` vs ``dbload --mode async --driver asyncpg``;
- ``async/psycopg``: N ``AsyncConnection`` (autocommit) coroutines on uvloop,
  ``await AsyncRawCursor.execute(sql, (aid,), prepare=True)`` vs
  ``--mode async --driver psycopg``;
- ``threads/psycopg``: N threads, ``RawCursor.execute(sql, (aid,),
  prepare=True)`` vs ``--mode threads`` (psycopg);
- ``async/sqlalchemy``: an ``AsyncEngine`` on asyncpg (pool of exactly N), N
  held ``AsyncConnection`` in AUTOCOMMIT, ``await conn.execute(text(sql),
  {"aid": aid})`` vs ``--mode async --driver sqlalchemy`` (the built-in
  script as ``text()``);
- ``threads/sqlalchemy``: the same with an ``Engine`` on psycopg and threads
  vs ``--mode threads --driver sqlalchemy``;
- ``async/orm``: ``session.get(Account, aid)`` in a new ``AsyncSession``
  bound to each held connection (bench/workloads/orm_select.py) vs dbload
  running that file (``--driver sqlalchemy``).

tpcb (pgbench's tpcb-like, the examples/ scripts): the raw loop calls the
example's own ``async_transaction(db, ctx)`` on held connections with a
bare ``ctx`` (seeded random, a ``step()`` that does nothing), dbload runs
the file with ``-f``: ``raw_tpcb.py`` on asyncpg and psycopg async,
``core_tpcb.py`` and ``orm_tpcb.py`` on SQLAlchemy's ``AsyncSession``.

Neither side reads rows the driver has not already read (dbload's built-in
select has no ``\\gset``). The raw loops time every transaction (two
``perf_counter_ns`` and a list append, for p99): the floor cost of measuring
latency at all, < 1 µs a transaction.

All variants alternate in one process, round after round (raw, dbload, raw,
dbload, ...). Printed: every run, then per pair the medians (tps, client CPU
µs per transaction, p99, client/server/machine CPU), the dbload/raw ratio of
median tps with the per-round ratios, and the target (issue 14: each
>= 0.90; async/asyncpg and threads/psycopg >= 0.95). Last, the "cost of each
layer" table: async mode, raw asyncpg, raw psycopg async, SQLAlchemy Core
and ORM, for select and tpcb, through dbload and as raw loops.

    /work/venv/bin/python bench/drivers.py --dsn postgresql://postgres@127.0.0.1/dbload_bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import asyncpg
import psycopg
import sqlalchemy
import uvloop
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, create_async_engine

from common import (
    ACCOUNTS_PER_SCALE,
    REPO,
    SELECT_SQL,
    CpuWindow,
    Run,
    Target,
    add_common_args,
    alternate,
    dbload_api,
    fmt,
    open_target,
    print_context,
    print_ratio,
    print_table,
    round_ratios,
    summarize,
)

EXAMPLES = REPO / "examples"
ORM_SELECT = REPO / "bench" / "workloads" / "orm_select.py"
SA_SELECT = "SELECT abalance FROM pgbench_accounts WHERE aid = :aid"

AsyncTxn = Callable[[], Awaitable[object]]
SyncTxn = Callable[[], object]
# opens the clients of one raw run: per client a transaction, and the closer
AsyncOpen = Callable[[Target, int, list[random.Random]], Awaitable[tuple[list[AsyncTxn], Any]]]
SyncOpen = Callable[[Target, int, list[random.Random]], tuple[list[SyncTxn], Callable[[], None]]]


@dataclass(frozen=True)
class Pair:
    """dbload in one mode and driver, and the raw loop it is measured against."""

    key: str  # "select async/asyncpg"
    workload: str  # "select" | "tpcb": the layer table's rows
    layer: str  # the layer table's row name ("" : not a row of it)
    mode: str
    driver: str
    builtin: str | None  # dbload's built-in script, or
    file: str | None  # a workload file (-f)
    raw_async: AsyncOpen | None
    raw_sync: SyncOpen | None
    target: float | None

    @property
    def raw(self) -> str:
        return f"raw {self.key}"

    @property
    def dbload(self) -> str:
        return f"dbload {self.key}"


# -- a bare ctx for the Python workloads' functions ----------------------------


class _Ctx:
    """What the examples read of dbload's ctx; ``step()`` times nothing."""

    __slots__ = ("client_id", "defines", "random", "scale")
    _NOSTEP = contextlib.nullcontext()

    def __init__(self, rnd: random.Random, client_id: int, scale: int) -> None:
        self.random = rnd
        self.client_id = client_id
        self.scale = scale
        self.defines: dict[str, str] = {}

    def step(self, name: str) -> contextlib.nullcontext[None]:
        return self._NOSTEP


def _example(name: str) -> ModuleType:
    """An examples/ module, imported as the scripts import their neighbours."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return __import__(name)


def _orm_select() -> ModuleType:
    if str(ORM_SELECT.parent) not in sys.path:
        sys.path.insert(0, str(ORM_SELECT.parent))
    return __import__(ORM_SELECT.stem)


# -- the raw loops: opening the clients ------------------------------------------


def _n_accounts(target: Target) -> int:
    return ACCOUNTS_PER_SCALE * target.scale


# one transaction of a select loop: the bound methods looked up once, as a
# hand-written loop would hold them in locals
def _with_aid(fetch: Callable[[int], Any], rnd: random.Random, top: int) -> Callable[[], Any]:
    randint = rnd.randint
    return lambda: fetch(randint(1, top))


def _psycopg_select(execute: Callable[..., Any], rnd: random.Random, top: int) -> Callable[[], Any]:
    randint = rnd.randint
    return lambda: execute(SELECT_SQL, (randint(1, top),), prepare=True)


def _text_select(
    execute: Callable[..., Any], clause: Any, rnd: random.Random, top: int
) -> Callable[[], Any]:
    randint = rnd.randint
    return lambda: execute(clause, {"aid": randint(1, top)})


async def _open_asyncpg(
    target: Target, n: int, rngs: list[random.Random]
) -> tuple[list[AsyncTxn], Any]:
    conns = [await asyncpg.connect(target.dsn) for _ in range(n)]
    top = _n_accounts(target)
    txns: list[AsyncTxn] = []
    for conn, rnd in zip(conns, rngs, strict=True):
        stmt = await conn.prepare(SELECT_SQL)
        txns.append(_with_aid(stmt.fetch, rnd, top))
    return txns, lambda: asyncio.gather(*(c.close() for c in conns))


async def _open_psycopg_async(
    target: Target, n: int, rngs: list[random.Random]
) -> tuple[list[AsyncTxn], Any]:
    conns = [await psycopg.AsyncConnection.connect(target.dsn, autocommit=True) for _ in range(n)]
    top = _n_accounts(target)
    txns: list[AsyncTxn] = []
    for conn, rnd in zip(conns, rngs, strict=True):
        txns.append(_psycopg_select(psycopg.AsyncRawCursor(conn).execute, rnd, top))
    return txns, lambda: asyncio.gather(*(c.close() for c in conns))


def _async_engine(target: Target, n: int) -> Any:
    """An AsyncEngine on asyncpg with a pool of exactly the clients."""
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(target.dsn),
        pool_size=n,
        max_overflow=0,
    )


async def _held(engine: Any, n: int, autocommit: bool) -> list[AsyncConnection]:
    conns = [await engine.connect() for _ in range(n)]
    if autocommit:
        conns = [await c.execution_options(isolation_level="AUTOCOMMIT") for c in conns]
    return conns


def _async_closer(engine: Any, conns: Sequence[AsyncConnection]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        for conn in conns:
            await conn.close()
        await engine.dispose()

    return close


async def _open_sa_core_async(
    target: Target, n: int, rngs: list[random.Random]
) -> tuple[list[AsyncTxn], Any]:
    engine = _async_engine(target, n)
    conns = await _held(engine, n, autocommit=True)
    clause, top = text(SA_SELECT), _n_accounts(target)
    txns: list[AsyncTxn] = []
    for conn, rnd in zip(conns, rngs, strict=True):
        txns.append(_text_select(conn.execute, clause, rnd, top))
    return txns, _async_closer(engine, conns)


def _session_txn(conn: AsyncConnection, fn: Callable[..., Awaitable[None]], ctx: _Ctx) -> AsyncTxn:
    """``fn(session, ctx)`` in a new AsyncSession on the held connection,
    as dbload's sqlalchemy driver calls a Python workload."""

    async def txn() -> None:
        async with AsyncSession(bind=conn) as session:
            await fn(session, ctx)

    return txn


def _open_sa_session(module: Callable[[], ModuleType]) -> AsyncOpen:
    async def open_(
        target: Target, n: int, rngs: list[random.Random]
    ) -> tuple[list[AsyncTxn], Any]:
        fn = module().async_transaction
        engine = _async_engine(target, n)
        conns = await _held(engine, n, autocommit=False)
        txns = [
            _session_txn(conn, fn, _Ctx(rnd, i, target.scale))
            for i, (conn, rnd) in enumerate(zip(conns, rngs, strict=True))
        ]
        return txns, _async_closer(engine, conns)

    return open_


def _open_example_on(connect: Callable[[str], Awaitable[Any]], name: str) -> AsyncOpen:
    """The example's ``async_transaction(conn, ctx)`` on held driver connections."""

    async def open_(
        target: Target, n: int, rngs: list[random.Random]
    ) -> tuple[list[AsyncTxn], Any]:
        fn = _example(name).async_transaction
        conns = [await connect(target.dsn) for _ in range(n)]
        txns: list[AsyncTxn] = [
            functools.partial(fn, conn, _Ctx(rnd, i, target.scale))
            for i, (conn, rnd) in enumerate(zip(conns, rngs, strict=True))
        ]
        return txns, lambda: asyncio.gather(*(c.close() for c in conns))

    return open_


def _psycopg_async_connect(dsn: str) -> Awaitable[Any]:
    return psycopg.AsyncConnection.connect(dsn, autocommit=True)


def _open_psycopg_threads(
    target: Target, n: int, rngs: list[random.Random]
) -> tuple[list[SyncTxn], Callable[[], None]]:
    conns = [psycopg.connect(target.dsn, autocommit=True) for _ in range(n)]
    top = _n_accounts(target)
    txns: list[SyncTxn] = []
    for conn, rnd in zip(conns, rngs, strict=True):
        txns.append(_psycopg_select(psycopg.RawCursor(conn).execute, rnd, top))

    def close() -> None:
        for conn in conns:
            conn.close()

    return txns, close


def _open_sa_core_threads(
    target: Target, n: int, rngs: list[random.Random]
) -> tuple[list[SyncTxn], Callable[[], None]]:
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(target.dsn),
        pool_size=n,
        max_overflow=0,
    )
    conns = [engine.connect().execution_options(isolation_level="AUTOCOMMIT") for _ in range(n)]
    clause, top = text(SA_SELECT), _n_accounts(target)
    txns: list[SyncTxn] = []
    for conn, rnd in zip(conns, rngs, strict=True):
        txns.append(_text_select(conn.execute, clause, rnd, top))

    def close() -> None:
        for conn in conns:
            conn.close()
        engine.dispose()

    return txns, close


# -- the raw loops: driving them --------------------------------------------------


def _rngs(args: argparse.Namespace, round_: int) -> list[random.Random]:
    return [random.Random(args.seed + round_ * 1000 + i) for i in range(args.clients)]


def _p99_ms(latencies: list[list[int]]) -> float | None:
    flat = sorted(x for lat in latencies for x in lat)
    return flat[min(len(flat) - 1, int(len(flat) * 0.99))] / 1e6 if flat else None


def _raw_run(name: str, round_: int, counts: list[list[int]], wall: float, use: Any) -> Run:
    total = sum(len(lat) for lat in counts)
    flat_sum = sum(sum(lat) for lat in counts)
    return Run(
        variant=name,
        round=round_,
        tps=total / wall if wall > 0 else 0.0,
        transactions=total,
        wall_s=wall,
        client_pct=use.client_pct,
        server_pct=use.server_pct,
        machine_pct=use.machine_pct,
        latency_ms=flat_sum / total / 1e6 if total else None,
        p99_ms=_p99_ms(counts),
    )


async def _drive_async(
    target: Target, args: argparse.Namespace, round_: int, name: str, open_: AsyncOpen
) -> Run:
    cpu = target.cpu_window()
    cpu.settle()  # the previous run's backends are gone: their CPU is not ours
    txns, close = await open_(target, args.clients, _rngs(args, round_))
    latencies: list[list[int]] = [[] for _ in txns]
    perf, ns = time.perf_counter, time.perf_counter_ns
    try:
        measure_from = perf() + args.warmup
        deadline = measure_from + args.duration

        async def worker(txn: AsyncTxn, lat: list[int]) -> None:
            while perf() < measure_from:
                await txn()
            if not cpu.started:
                cpu.start()
            append = lat.append
            while perf() < deadline:
                t = ns()
                await txn()
                append(ns() - t)

        await asyncio.gather(*(worker(t, lat) for t, lat in zip(txns, latencies, strict=True)))
        use = cpu.stop()
        wall = perf() - measure_from
    finally:
        await close()
    return _raw_run(name, round_, latencies, wall, use)


def _drive_threads(
    target: Target, args: argparse.Namespace, round_: int, name: str, open_: SyncOpen
) -> Run:
    cpu = target.cpu_window()
    cpu.settle()
    txns, close = open_(target, args.clients, _rngs(args, round_))
    latencies: list[list[int]] = [[] for _ in txns]
    errors: list[BaseException] = []
    go = threading.Event()
    clock: dict[str, float] = {}
    perf, ns = time.perf_counter, time.perf_counter_ns

    def worker(txn: SyncTxn, lat: list[int]) -> None:
        try:
            txn()  # the statement prepared before the clock, as dbload does
            go.wait()
            measure_from, deadline = clock["from"], clock["deadline"]
            while perf() < measure_from:
                txn()
            append = lat.append
            while perf() < deadline:
                t = ns()
                txn()
                append(ns() - t)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(t, lat), name=f"raw-{i}")
        for i, (t, lat) in enumerate(zip(txns, latencies, strict=True))
    ]
    try:
        for t in threads:
            t.start()
        clock["from"] = perf() + args.warmup
        clock["deadline"] = clock["from"] + args.duration
        go.set()
        time.sleep(max(0.0, clock["from"] - perf()))
        cpu.start()
        for t in threads:
            t.join()
        use = cpu.stop()
        wall = perf() - clock["from"]
    finally:
        close()
    if errors:
        raise errors[0]
    return _raw_run(name, round_, latencies, wall, use)


def _raw(target: Target, args: argparse.Namespace, pair: Pair, round_: int) -> Run:
    try:
        if pair.raw_async is not None:
            return uvloop.run(_drive_async(target, args, round_, pair.raw, pair.raw_async))
        assert pair.raw_sync is not None
        return _drive_threads(target, args, round_, pair.raw, pair.raw_sync)
    except Exception as exc:  # a bench: say what failed and go on with the others
        return _failed(pair.raw, round_, exc)


# -- dbload ------------------------------------------------------------------------


def _failed(name: str, round_: int, exc: BaseException) -> Run:
    first = (str(exc).strip().splitlines() or [""])[0]
    return Run(name, round_, 0.0, 0, 0.0, None, None, None, note=f"{type(exc).__name__}: {first}")


def _dbload(target: Target, args: argparse.Namespace, pair: Pair, round_: int) -> Run:
    """One dbload run through its public API, CPU measured as common.run_dbload does."""
    api, why = dbload_api()
    if api is None or target.database is None:
        return Run(pair.dbload, round_, 0.0, 0, 0.0, None, None, None, note=why or "unavailable")
    window: CpuWindow = target.cpu_window()
    try:
        options = api.prepare_options(
            workload=pair.builtin,
            files=[pair.file] if pair.file else [],
            mode=pair.mode,
            concurrency=args.clients,
            duration=args.duration,
            warmup=args.warmup,
            seed=args.seed,
            driver=pair.driver,
        )
        window.settle()
        window.start()
        result = api.run_on(target.database, target.scale, options)
    except Exception as exc:
        return _failed(pair.dbload, round_, exc)
    outer = window.stop(settle=True)
    cpu = result.cpu
    return Run(
        variant=pair.dbload,
        round=round_,
        tps=result.tps,
        transactions=result.ok,
        wall_s=result.duration_s,
        client_pct=cpu.client_pct if cpu else None,
        server_pct=outer.server_pct,
        machine_pct=outer.machine_pct,
        latency_ms=result.latency.mean,
        p99_ms=result.latency.p99,
        note=f"{result.failed} errors" if result.failed else "",
    )


# -- the pairs ---------------------------------------------------------------------


def _pairs() -> list[Pair]:
    def tpcb(key: str, layer: str, driver: str, example: str, raw: AsyncOpen) -> Pair:
        file = str(EXAMPLES / f"{example}.py")
        return Pair(
            f"tpcb async/{key}", "tpcb", layer, "async", driver, None, file, raw, None, None
        )

    return [
        Pair("select async/asyncpg", "select", "raw asyncpg", "async", "asyncpg",
             "select", None, _open_asyncpg, None, 0.95),
        Pair("select async/psycopg", "select", "raw psycopg async", "async", "psycopg",
             "select", None, _open_psycopg_async, None, 0.90),
        Pair("select threads/psycopg", "select", "", "threads", "psycopg",
             "select", None, None, _open_psycopg_threads, 0.95),
        Pair("select async/sqlalchemy", "select", "SQLAlchemy Core async", "async", "sqlalchemy",
             "select", None, _open_sa_core_async, None, 0.90),
        Pair("select threads/sqlalchemy", "select", "", "threads", "sqlalchemy",
             "select", None, None, _open_sa_core_threads, 0.90),
        Pair("select async/orm", "select", "SQLAlchemy ORM async", "async", "sqlalchemy",
             None, str(ORM_SELECT), _open_sa_session(_orm_select), None, None),
        tpcb("asyncpg", "raw asyncpg", "asyncpg", "raw_tpcb",
             _open_example_on(asyncpg.connect, "raw_tpcb")),
        tpcb("psycopg", "raw psycopg async", "psycopg", "raw_tpcb",
             _open_example_on(_psycopg_async_connect, "raw_tpcb")),
        tpcb("core", "SQLAlchemy Core async", "sqlalchemy", "core_tpcb",
             _open_sa_session(lambda: _example("core_tpcb"))),
        tpcb("orm", "SQLAlchemy ORM async", "sqlalchemy", "orm_tpcb",
             _open_sa_session(lambda: _example("orm_tpcb"))),
    ]  # fmt: skip


def _chosen(pairs: list[Pair], spec: str) -> list[Pair]:
    """``--pairs``: keys, or a workload name for all its pairs."""
    if spec == "all":
        return pairs
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    out = [p for p in pairs if p.key in wanted or p.workload in wanted]
    unknown = [w for w in wanted if not any(w in (p.key, p.workload) for p in pairs)]
    if unknown or not out:
        keys = ", ".join(p.key for p in pairs)
        raise SystemExit(f"--pairs: unknown {', '.join(unknown) or spec!r}; choose from {keys}")
    return out


# -- printing ----------------------------------------------------------------------

HEADERS = (
    "round", "variant", "tps", "lat ms", "p99 ms", "client CPU", "µs CPU/txn",
    "server CPU", "machine CPU", "note",
)  # fmt: skip


def _row(run: Run) -> list[object]:
    return [
        run.round,
        run.variant,
        fmt(run.tps) if run.transactions else "-",
        fmt(run.latency_ms, ".3f"),
        fmt(run.p99_ms, ".2f"),
        fmt(run.client_pct, ".0f", " %"),
        fmt(run.cpu_us_per_txn, ".0f"),
        fmt(run.server_pct, ".0f", " %"),
        fmt(run.machine_pct, ".0f", " %"),
        run.note,
    ]


def _print_pairs(runs: Sequence[Run], pairs: Sequence[Pair], medians: dict[str, Run]) -> None:
    print()
    print("pairs (medians):")
    rows = [_row(medians[v])[1:] for p in pairs for v in (p.raw, p.dbload) if v in medians]
    print_table(HEADERS[1:], rows)
    print()
    for pair in pairs:
        print_ratio(runs, medians, pair.dbload, pair.raw, target=pair.target)  # type: ignore[arg-type]
        raw, ours = medians.get(pair.raw), medians.get(pair.dbload)
        a = raw.cpu_us_per_txn if raw else None
        b = ours.cpu_us_per_txn if ours else None
        if a and b:
            print(f"    client CPU/txn: dbload {b:.0f} µs vs raw {a:.0f} µs ({b - a:+.0f} µs)")
        failed = [r for r in runs if r.variant in (pair.raw, pair.dbload) and not r.transactions]
        for run in failed[:1]:
            print(f"    {run.variant} round {run.round}: {run.note}")


def _print_layers(runs: Sequence[Run], pairs: Sequence[Pair], medians: dict[str, Run]) -> None:
    layered = [p for p in pairs if p.layer]
    if not layered:
        return
    print()
    print("cost of each layer (async mode, medians; Δµs: dbload µs/txn minus the first row's):")
    headers = (
        "workload", "layer", "tps", "µs/txn", "p99 ms", "Δµs",
        "raw tps", "raw µs/txn", "raw p99 ms", "dbload/raw",
    )  # fmt: skip
    rows: list[list[object]] = []
    for workload in dict.fromkeys(p.workload for p in layered):
        base: float | None = None
        for pair in (p for p in layered if p.workload == workload):
            ours, raw = medians.get(pair.dbload), medians.get(pair.raw)
            us = ours.cpu_us_per_txn if ours else None
            base = us if base is None else base
            ratio = ours.tps / raw.tps if ours and raw and raw.tps > 0 else None
            rows.append([
                workload, pair.layer,
                fmt(ours.tps) if ours else "-", fmt(us), fmt(ours.p99_ms if ours else None, ".2f"),
                fmt(us - base if us is not None and base is not None else None, "+.0f"),
                fmt(raw.tps) if raw else "-", fmt(raw.cpu_us_per_txn if raw else None),
                fmt(raw.p99_ms if raw else None, ".2f"), fmt(ratio, ".3f"),
            ])  # fmt: skip
    print_table(headers, rows)


def _verdicts(runs: Sequence[Run], pairs: Sequence[Pair], medians: dict[str, Run]) -> None:
    print()
    for pair in pairs:
        if pair.target is None:
            continue
        raw, ours = medians.get(pair.raw), medians.get(pair.dbload)
        if not raw or not ours or raw.tps <= 0:
            print(f"{pair.key:<28} not measured")
            continue
        ratio = ours.tps / raw.tps
        per = round_ratios(runs, pair.dbload, pair.raw)
        verdict = "PASS" if ratio >= pair.target else "FAIL"
        # on a saturated machine tps follows the scheduler; the client CPU
        # a transaction costs does not, so its ratio is printed beside
        a, b = raw.cpu_us_per_txn, ours.cpu_us_per_txn
        cpu = f"; raw/dbload µs CPU/txn {a / b:.2f}" if a and b else ""
        print(
            f"{pair.key:<26} dbload/raw tps {ratio:.3f}"
            f" (rounds {', '.join(f'{x:.2f}' for x in per)})"
            f"  target >= {pair.target:.2f}: {verdict}{cpu}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, duration=3.0, rounds=3)
    parser.add_argument(
        "--pairs",
        default="all",
        help="comma-separated pair keys, or 'select'/'tpcb' for all of one workload (all)",
    )
    args = parser.parse_args()
    pairs = _chosen(_pairs(), args.pairs)
    with open_target(args.dsn) as target:
        print_context(target, args)
        uv = getattr(uvloop, "__version__", "?")
        print(
            f"drivers: asyncpg {asyncpg.__version__} + uvloop {uv},"
            f" psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}),"
            f" SQLAlchemy {sqlalchemy.__version__}"
        )
        print(f"pairs: {', '.join(p.key for p in pairs)}")
        print()
        variants: list[Callable[[int], Run]] = []
        for pair in pairs:
            variants.append(functools.partial(_raw, target, args, pair))
            variants.append(functools.partial(_dbload, target, args, pair))
        runs: list[Run] = alternate(args.rounds, variants)  # type: ignore[assignment]
    print()
    print("all rounds:")
    print_table(HEADERS, [_row(r) for r in runs])
    medians = summarize(runs, [v for p in pairs for v in (p.raw, p.dbload)])
    _print_pairs(runs, pairs, medians)
    _print_layers(runs, pairs, medians)
    _verdicts(runs, pairs, medians)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
