"""dbload's threads mode vs the plainest psycopg 3 threads loop, select-only.

What it measures: the overhead dbload's threads executor (parameter stream,
per-transaction timing, the shared recorder and its lock) adds on top of N
Python threads driving psycopg 3. Both sides run N threads, each with its own
autocommit connection, executing the same server-side prepared point lookup
with a uniformly random aid:

- ``raw``: ``cur.execute("SELECT abalance FROM pgbench_accounts WHERE aid =
  %s", (aid,), prepare=True)`` in a loop and a counter;
- ``dbload threads``: ``dbload.api.run_on`` with the built-in ``select``
  workload, ``mode="threads"``, ``-c N``, a fixed seed and duration.

The two alternate in one process (raw, dbload, raw, dbload, ...); the result
is the ratio of the median tps, with per-round ratios. Target (issue, as for
async): dbload/raw >= 0.90.

How to read it: threads share one GIL, so the client saturates about one
core; "client CPU" near 100 % means the GIL, not the server, is the limit,
and "µs CPU/txn" (client CPU microseconds per transaction) is the per-query
Python cost each side pays. "server CPU" and "machine CPU" (out of 200 % on
2 cores) show what is left for the server and whether anything else ran.

    /work/venv/bin/python bench/threads_vs_raw.py --dsn postgresql://postgres@127.0.0.1/dbload_bench
"""

from __future__ import annotations

import argparse
import random
import threading
import time

import psycopg

from common import (
    ACCOUNTS_PER_SCALE,
    Run,
    Target,
    add_common_args,
    alternate,
    conclude,
    open_target,
    print_context,
    run_dbload,
)

RAW = "raw psycopg"
DBLOAD = "dbload threads"
SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = %s"


def _raw(target: Target, args: argparse.Namespace, round_: int) -> Run:
    clients, n_accounts = args.clients, ACCOUNTS_PER_SCALE * target.scale
    cpu = target.cpu_window()
    cpu.settle()  # the previous run's backends are gone: their CPU is not ours
    conns = [psycopg.connect(target.dsn, autocommit=True) for _ in range(clients)]
    counts = [0] * clients
    errors: list[BaseException] = []
    go = threading.Event()
    clock: dict[str, float] = {}
    perf = time.perf_counter

    def worker(i: int, conn: psycopg.Connection[object]) -> None:
        try:
            randint = random.Random(args.seed + round_ * 1000 + i).randint
            cur = conn.cursor()
            execute = cur.execute
            execute(SQL, (1,), prepare=True)
            go.wait()
            measure_from, deadline = clock["from"], clock["deadline"]
            while perf() < measure_from:
                execute(SQL, (randint(1, n_accounts),), prepare=True)
            n = 0
            while perf() < deadline:
                execute(SQL, (randint(1, n_accounts),), prepare=True)
                n += 1
            counts[i] = n
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(i, c), name=f"raw-{i}") for i, c in enumerate(conns)
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
        for conn in conns:
            conn.close()
    if errors:
        raise errors[0]
    total = sum(counts)
    return Run(
        variant=RAW,
        round=round_,
        tps=total / wall,
        transactions=total,
        wall_s=wall,
        client_pct=use.client_pct,
        server_pct=use.server_pct,
        machine_pct=use.machine_pct,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    args = parser.parse_args()
    with open_target(args.dsn) as target:
        print_context(target, args)
        print(f"raw: psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}), {SQL}")
        print()
        runs = alternate(
            args.rounds,
            [
                lambda k: _raw(target, args, k),
                lambda k: run_dbload(
                    target,
                    mode="threads",
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
