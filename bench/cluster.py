"""dbload --cluster local:2 vs --mode processes -j 2, same clients, same machine.

What it measures: the cost of generating the load from Dask workers
instead of dbload's own worker processes. Both run two processes, each
dbload's async executor over half the clients, against the same server:

- ``dbload processes``: ``dbload.api.run_on`` with ``mode="processes"``,
  ``jobs=2``;
- ``dbload cluster``: the same with ``cluster="local:2"`` (a LocalCluster
  of two worker processes started for each run, its start-up outside the
  measured window, as processes mode's is).

They alternate (processes, cluster, processes, ...); the result is the
median tps ratio cluster/processes with the per-round ratios, against the
target of issue 15 (>= 0.90: what the coordination through Dask costs).
Client CPU is dbload's own Result.cpu over the measured window (processes:
the parent and its workers; cluster: the Dask workers, each measuring its
own process), in µs per transaction; ``whole call`` in the notes is the CPU
of this process and its reaped children over the whole run_on() call
(start-up, the LocalCluster's scheduler and nannies, and shutdown included).

    /work/venv/bin/python bench/cluster.py --dsn postgresql://postgres@127.0.0.1:5432/exec_bench
"""

from __future__ import annotations

import argparse
from typing import Any

from common import Run, Target, add_common_args, alternate, conclude, open_target, print_context
from common import dbload_api as _dbload_api

TARGET = 0.90
PROCESSES = "dbload processes"
CLUSTER = "dbload cluster"


def run(target: Target, variant: str, args: argparse.Namespace, k: int, **extra: Any) -> Run:
    """One dbload run through its public API, its CPU as in common.run_dbload."""
    api, _ = _dbload_api()
    if api is None or target.database is None:
        return Run(variant, k, 0.0, 0, 0.0, None, None, None, note="unavailable")
    options = api.prepare_options(
        workload=args.workload,
        concurrency=args.clients,
        duration=args.duration,
        warmup=args.warmup,
        seed=args.seed,
        **extra,
    )
    window = target.cpu_window()
    window.settle()
    window.start()
    result = api.run_on(target.database, target.scale, options)
    outer = window.stop(settle=True)
    whole_us = (outer.client_s + outer.children_s) / result.ok * 1e6 if result.ok else None
    notes = [f"whole call {whole_us:.0f} µs/txn" if whole_us else ""]
    notes += [f"{result.failed} errors"] if result.failed else []
    notes += [result.incidents[0]] if result.incidents else []
    return Run(
        variant=variant,
        round=k,
        tps=result.tps,
        transactions=result.ok,
        wall_s=result.duration_s,
        client_pct=result.cpu.client_pct if result.cpu else None,
        server_pct=outer.server_pct,
        machine_pct=outer.machine_pct,
        latency_ms=result.latency.mean,
        note="; ".join(n for n in notes if n),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, rounds=3)
    parser.add_argument("--workload", default="select", help="built-in workload (%(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="processes / Dask workers (2)")
    args = parser.parse_args()
    with open_target(args.dsn) as target:
        print_context(target, args)
        print(
            f"processes: mode processes, jobs {args.workers}; cluster: --cluster"
            f" local:{args.workers}; workload {args.workload}"
        )
        print("client CPU: dbload's Result.cpu over the measured window (see the docstring)")
        print()

        def processes(k: int) -> Run:
            return run(target, PROCESSES, args, k, mode="processes", jobs=args.workers)

        def cluster(k: int) -> Run:
            return run(target, CLUSTER, args, k, cluster=f"local:{args.workers}")

        runs = alternate(args.rounds, [processes, cluster])
    conclude(runs, PROCESSES, [CLUSTER], target=TARGET)
    return 0


if __name__ == "__main__":  # LocalCluster's spawned workers import this module again
    raise SystemExit(main())
