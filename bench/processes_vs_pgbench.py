"""dbload processes vs pgbench -j 2, on the same select script and clients.

What it measures: whether P Python processes, each running dbload's async
executor over its share of the clients, come close to pgbench's C client
with as many threads:

- ``pgbench``: ``pgbench -M prepared -c N -j J -T S -n -s SCALE
  --random-seed SEED -f queries/select.sql DSN`` (J = 2 by default);
- ``dbload processes``: ``dbload.api.run_on`` with ``mode="processes"``,
  ``-c N`` (P = one worker process per core, at most N).

They alternate (pgbench, dbload processes, pgbench, ...); the result is the
median tps ratio with the per-round ratios, against the target of issue 4
(>= 0.65; a raw single-process Python client measured 0.52-0.57 here).
Client CPU is pgbench's own (getrusage of the reaped child) and, for dbload,
its Result.cpu: the parent and its worker processes over the measured
window. On a 2-core machine shared with the server, read the CPU columns
first (see bench/README.md).

    /work/venv/bin/python bench/processes_vs_pgbench.py
    /work/venv/bin/python bench/processes_vs_pgbench.py --dsn postgresql://postgres@127.0.0.1:5432/dbload_bench
"""

from __future__ import annotations

import argparse
from functools import partial

from common import (
    Run,
    add_common_args,
    alternate,
    builtin_script,
    conclude,
    open_target,
    print_context,
    run_dbload,
)
from vs_pgbench import PGBENCH, pgbench_binary, run_pgbench

TARGET = 0.65
MODE = "processes"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, rounds=5)
    parser.set_defaults(warmup=0.0)
    parser.add_argument("--jobs", type=int, default=2, help="pgbench -j threads (%(default)s)")
    parser.add_argument("--workload", default="select", help="built-in script (%(default)s)")
    args = parser.parse_args()
    with open_target(args.dsn) as target:
        exe, version = pgbench_binary(target)
        script, origin = builtin_script(args.workload)
        print_context(target, args)
        print(f"pgbench: {exe} ({version}), -M prepared -c {args.clients} -j {args.jobs}")
        print(f"script: {script} ({origin})")
        print("dbload client CPU: the parent and its worker processes (Result.cpu)")
        print()

        def dbload_processes(k: int) -> Run:
            return run_dbload(
                target,
                mode=MODE,
                workload=args.workload,
                clients=args.clients,
                duration=args.duration,
                warmup=args.warmup,
                seed=args.seed,
                round_=k,
            )

        pgbench = partial(run_pgbench, exe, target, args, script)
        runs = alternate(args.rounds, [pgbench, dbload_processes])
    conclude(runs, PGBENCH, [f"dbload {MODE}"], target=TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
