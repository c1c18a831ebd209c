"""dbload's async mode vs the fastest plain asyncpg loop, select-only.

What it measures: the overhead dbload's async executor (parameter stream,
per-transaction timing, recorder) adds on top of what asyncpg + uvloop can
do on this machine. Both sides run N coroutines on one uvloop event loop,
each holding its own connection and executing the same prepared point lookup
``SELECT abalance FROM pgbench_accounts WHERE aid = $1`` with a uniformly
random aid:

- ``raw``: ``conn.prepare(...)`` then ``await stmt.fetch(random.randint(...))``
  in a loop and a counter, nothing else (``--raw-timing`` adds a
  perf_counter_ns pair and a list append per query, i.e. the floor cost of
  measuring latency at all);
- ``dbload async``: ``dbload.api.run_on`` with the built-in ``select``
  workload, ``-c N``, a fixed seed and duration.

The two alternate (raw, dbload, raw, dbload, ...) in one process so that
machine noise hits both alike; the result is the ratio of the median tps,
with the per-round ratios beside it. Target (issue): dbload/raw >= 0.90.

How to read it: on a 2-core machine that runs client and server, both sides
are CPU-bound, so look at "client CPU" and "µs CPU/txn": the client's CPU
microseconds per transaction is the cost dbload adds, independent of how
busy the server is; "server CPU" tells how much of the other core the server
took and "machine CPU" (out of 200 %) whether anything else was running.

    /work/venv/bin/python bench/async_vs_raw.py --dsn postgresql://postgres@127.0.0.1/dbload_bench
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import asyncpg
import uvloop

from common import (
    ACCOUNTS_PER_SCALE,
    SELECT_SQL,
    Run,
    Target,
    add_common_args,
    alternate,
    conclude,
    open_target,
    print_context,
    run_dbload,
)

RAW = "raw asyncpg"
DBLOAD = "dbload async"


async def _raw(target: Target, args: argparse.Namespace, round_: int, timing: bool) -> Run:
    clients, n_accounts = args.clients, ACCOUNTS_PER_SCALE * target.scale
    cpu = target.cpu_window()
    cpu.settle()  # the previous run's backends are gone: their CPU is not ours
    conns = [await asyncpg.connect(target.dsn) for _ in range(clients)]
    try:
        stmts = [await conn.prepare(SELECT_SQL) for conn in conns]
        counts = [0] * clients
        latencies: list[list[int]] = [[] for _ in range(clients)]
        perf = time.perf_counter
        t0 = perf()
        measure_from = t0 + args.warmup
        deadline = measure_from + args.duration

        async def worker(i: int, stmt: asyncpg.prepared_stmt.PreparedStatement) -> None:
            fetch = stmt.fetch
            randint = random.Random(args.seed + round_ * 1000 + i).randint
            while perf() < measure_from:
                await fetch(randint(1, n_accounts))
            if not cpu.started:
                cpu.start()
            n = 0
            if timing:
                ns = time.perf_counter_ns
                lat = latencies[i]
                while perf() < deadline:
                    t = ns()
                    await fetch(randint(1, n_accounts))
                    lat.append(ns() - t)
                    n += 1
            else:
                while perf() < deadline:
                    await fetch(randint(1, n_accounts))
                    n += 1
            counts[i] = n

        await asyncio.gather(*(worker(i, s) for i, s in enumerate(stmts)))
        use = cpu.stop()
        wall = perf() - measure_from
    finally:
        for conn in conns:
            await conn.close()
    total = sum(counts)
    all_lat = [x for lat in latencies for x in lat]
    return Run(
        variant=RAW,
        round=round_,
        tps=total / wall,
        transactions=total,
        wall_s=wall,
        client_pct=use.client_pct,
        server_pct=use.server_pct,
        machine_pct=use.machine_pct,
        latency_ms=sum(all_lat) / len(all_lat) / 1e6 if all_lat else None,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument(
        "--raw-timing",
        action="store_true",
        help="time every query in the raw loop too (perf_counter_ns + list append)",
    )
    args = parser.parse_args()
    with open_target(args.dsn) as target:
        print_context(target, args)
        print(f"raw: asyncpg {asyncpg.__version__} + uvloop {uvloop.__version__}, {SELECT_SQL}")
        print()
        runs = alternate(
            args.rounds,
            [
                lambda k: uvloop.run(_raw(target, args, k, args.raw_timing)),
                lambda k: run_dbload(
                    target,
                    mode="async",
                    workload="select",
                    clients=args.clients,
                    duration=args.duration,
                    warmup=args.warmup,
                    seed=args.seed,
                    round_=k,
                ),
            ],
        )
    conclude(runs, RAW, [DBLOAD], target=0.90)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
