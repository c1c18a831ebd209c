"""Open-loop accuracy: does --rate keep its schedule, and does it show the queue?

1. Closed loop at N clients measures capacity C (tps).
2. Open loop at 50 % of C: the schedule lag (scheduled -> actual start) should
   stay small (issue 6's target: p99 under 1 ms).
3. Open loop at 150 % of C next to closed loop: closed loop reports the
   server's latency only; open loop reports what a client arriving on
   schedule would see, queue included (coordinated omission corrected).
4. The reference: ``pgbench -R`` at the same 50 % rate, same clients, one
   thread (``-j 1``, like one event loop), its lag and latency percentiles
   computed from its per-transaction log (``--log``), which has them in µs.

One run of each, printed with client and server CPU: ``python bench/open_loop.py
[--dsn URL] [--mode async|threads] [--clients 8] [--duration 5]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from common import (
    add_common_args,
    builtin_script,
    dbload_api,
    open_target,
    print_context,
    print_table,
)
from vs_pgbench import pgbench_binary


def _run(api: Any, target: Any, args: argparse.Namespace, rate: float | None) -> Any:
    options = api.prepare_options(
        "select", args.mode, args.clients, duration=args.duration, warmup=args.warmup,
        seed=args.seed, rate=rate,
    )  # fmt: skip
    return api.run_on(target.database, target.scale, options)


def _row(label: str, result: Any) -> list[object]:
    lag = result.lag
    cpu = result.cpu
    return [
        label,
        f"{result.rate:,.0f}" if result.rate else "closed",
        f"{result.tps:,.0f}",
        f"{result.latency.p50:.3f}",
        f"{result.latency.p99:.3f}",
        "-" if lag is None else f"{lag.p50:.3f}",
        "-" if lag is None else f"{lag.p99:.3f}",
        "-" if cpu is None else f"{cpu.client_pct:.0f} %",
        "-" if cpu is None or cpu.server_pct is None else f"{cpu.server_pct:.0f} %",
    ]


def _pgbench_row(target: Any, args: argparse.Namespace, rate: float) -> list[object]:
    """pgbench -R at ``rate``: percentiles from its per-transaction log."""
    exe, _ = pgbench_binary(target)
    script, _ = builtin_script("select")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            exe, "-n", "-M", "prepared", "-c", str(args.clients), "-j", "1",
            "-R", f"{rate:.0f}", "-T", str(max(1, round(args.duration))),
            "-s", str(target.scale), "--random-seed", str(args.seed), "-f", str(script),
            "--log", f"--log-prefix={tmp}/pgbench", target.dsn,
        ]  # fmt: skip
        cpu = target.cpu_window()
        cpu.settle()
        cpu.start()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        use = cpu.stop(settle=True)
        if proc.returncode != 0:
            return ["pgbench -R (50 %)", f"{rate:,.0f}", "failed", *["-"] * 6]
        # client_id transaction_no time_us script_no epoch epoch_us schedule_lag_us
        rows = [line.split() for log in Path(tmp).glob("pgbench*") for line in log.open()]
    latency = sorted(int(r[2]) / 1000 for r in rows)
    lag = sorted(int(r[6]) / 1000 for r in rows)
    wall = use.wall_s or 1.0
    return [
        "pgbench -R (50 %)", f"{rate:,.0f}", f"{len(rows) / wall:,.0f}",
        f"{_pct(latency, 50):.3f}", f"{_pct(latency, 99):.3f}",
        f"{_pct(lag, 50):.3f}", f"{_pct(lag, 99):.3f}",
        f"{use.children_pct:.0f} %",
        "-" if use.server_pct is None else f"{use.server_pct:.0f} %",
    ]  # fmt: skip


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, rounds=1)
    parser.add_argument("--mode", default="async", help="dbload mode (%(default)s)")
    args = parser.parse_args()
    api, why = dbload_api()
    if api is None:
        print(f"dbload is not importable: {why}")
        return 1
    with open_target(args.dsn) as target:
        print_context(target, args)
        capacity = _run(api, target, args, None)
        half = _run(api, target, args, capacity.tps * 0.5)
        over = _run(api, target, args, capacity.tps * 1.5)
        closed = _run(api, target, args, None)
        pgbench = _pgbench_row(target, args, capacity.tps * 0.5)
    headers = ["run", "rate", "tps", "p50 ms", "p99 ms", "lag p50", "lag p99", "client", "server"]
    print_table(
        headers,
        [
            _row("capacity (closed)", capacity),
            _row("open at 50 %", half),
            _row("open at 150 %", over),
            _row("closed, again", closed),
            pgbench,
        ],
    )
    assert half.lag is not None and over.lag is not None
    print()
    print(
        f"at 50 % of capacity the schedule lag p99 is {half.lag.p99:.3f} ms"
        f" (target < 1 ms: {'met' if half.lag.p99 < 1.0 else 'NOT met'})"
    )
    print(
        f"at 150 %: open-loop p99 {over.latency.p99:,.1f} ms vs closed-loop"
        f" {closed.latency.p99:,.3f} ms — closed loop hides the queue"
        f" ({over.latency.p99 / max(closed.latency.p99, 1e-9):,.0f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
