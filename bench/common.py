"""Shared helpers of the benchmark scripts in bench/ (not a test module).

- :func:`add_common_args` / :func:`open_target`: pick the database (``--dsn``,
  else ``$DBLOAD_DSN``, else dbload's own resolution: container or embedded
  server) and make sure pgbench's schema exists in it;
- :class:`CpuWindow`: client, child-process, server and machine CPU over a
  window, as percent of one core (200 % = both cores of a 2-core machine);
- :func:`run_dbload`: one dbload run through its public Python API;
- :func:`print_table`, :func:`median`, :func:`verdict`: printing.

Run the scripts from the repository root, e.g.
``/work/venv/bin/python bench/async_vs_raw.py --dsn postgresql://...``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "service") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO / "service"))

ACCOUNTS_PER_SCALE = 100_000
SELECT_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"

# pgbench's own built-in scripts, used only while dbload's queries/ is missing.
_PGBENCH_BUILTIN = {
    "select": "\\set aid random(1, 100000 * :scale)\n"
    "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n",
    "tpcb": "\\set aid random(1, 100000 * :scale)\n"
    "\\set bid random(1, 1 * :scale)\n"
    "\\set tid random(1, 10 * :scale)\n"
    "\\set delta random(-5000, 5000)\n"
    "BEGIN;\n"
    "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
    "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
    "UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;\n"
    "UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;\n"
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)"
    " VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);\n"
    "END;\n",
}


# -- arguments ---------------------------------------------------------------


def add_common_args(
    parser: argparse.ArgumentParser, *, duration: float = 5.0, rounds: int = 3
) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL URL (default: $DBLOAD_DSN, else dbload's own resolution: "
        "container, else the embedded server)",
    )
    parser.add_argument(
        "--duration", type=float, default=duration, help="measured seconds per run (%(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=rounds, help="alternations of the variants (%(default)s)"
    )
    parser.add_argument(
        "--clients", type=int, default=8, help="connections/workers per run (%(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="unmeasured seconds at the start of every run, same for all (%(default)s)",
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (%(default)s)")


# -- dbload availability -----------------------------------------------------


def dbload_api() -> tuple[Any | None, str]:
    """``dbload.api`` if it imports (its parts may still be missing), else why not."""
    try:
        import dbload.api as api
    except ImportError as exc:
        return None, f"dbload.api does not import yet: {exc}"
    return api, ""


# -- the database ------------------------------------------------------------


@dataclass
class Target:
    """The database every variant of one benchmark runs against."""

    dsn: str
    kind: str  # "dsn" | "container" | "embedded" (dbload's Database.kind) or "dsn"
    url: str  # for printing (password redacted)
    scale: int
    server_version: str
    postmaster: psutil.Process | None
    postmaster_note: str
    database: Any | None  # dbload's Database when dbload is usable, else None
    dbname: str | None = None

    def cpu_window(self) -> CpuWindow:
        return CpuWindow(self.postmaster, self.dbname)

    def describe(self) -> str:
        return (
            f"database: {self.url} ({self.kind}, PostgreSQL {self.server_version}, "
            f"scale {self.scale}); server CPU: {self.postmaster_note}"
        )


def redact(dsn: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


@contextlib.contextmanager
def open_target(dsn: str | None) -> Iterator[Target]:
    """Resolve the database, ensure pgbench's schema (scale 1 if empty), yield it."""
    dsn = dsn or os.environ.get("DBLOAD_DSN") or None
    api, why = dbload_api()
    if api is not None:
        if dsn:
            _ensure_database_exists(dsn)
        with api.database_ready("auto", dsn) as (database, scale):
            yield _target(database.dsn, database.kind, database.url, scale, database)
        return
    if not dsn:
        raise SystemExit(f"{why}\nno --dsn or $DBLOAD_DSN given, and no embedded server without it")
    print(f"note: {why}; seeding with pgbench -i instead", file=sys.stderr)
    _ensure_database_exists(dsn)
    scale = _ensure_pgbench_schema(dsn)
    yield _target(dsn, "dsn", redact(dsn), scale, None)


def _target(dsn: str, kind: str, url: str, scale: int, database: Any | None) -> Target:
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        dbname = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        try:
            data_dir = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
        except psycopg.Error:
            data_dir = None
    postmaster, note = find_postmaster(data_dir)
    return Target(dsn, kind, url, scale, version, postmaster, note, database, dbname)


def find_postmaster(data_dir: str | None) -> tuple[psutil.Process | None, str]:
    if not data_dir:
        return None, "not measured (data directory not visible)"
    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
        return psutil.Process(pid), f"postmaster pid {pid} and its children"
    except (OSError, ValueError, psutil.Error):
        return None, "not measured (server not on this machine or postmaster.pid unreadable)"


def _ensure_database_exists(dsn: str) -> None:
    """Create the DSN's database when it is missing (a scratch database)."""
    try:
        psycopg.connect(dsn, connect_timeout=10).close()
        return
    except psycopg.errors.InvalidCatalogName:
        pass
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    name = str(info.get("dbname"))
    admin = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"note: created scratch database {name!r}", file=sys.stderr)


def _ensure_pgbench_schema(dsn: str) -> int:
    """pgbench's tables at scale 1 (pgbench -i) unless they are there; returns the scale."""
    scale = current_scale(dsn)
    if scale:
        return scale
    exe = shutil.which("pgbench") or "pgbench"
    subprocess.run([exe, "-i", "-s", "1", "-q", dsn], check=True, capture_output=True)
    return current_scale(dsn) or 1


def current_scale(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM pgbench_branches").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
        accounts = conn.execute("SELECT count(*) > 0 FROM pgbench_accounts").fetchone()
    if not accounts or not accounts[0]:
        return 0
    return int(row[0]) if row else 0


def builtin_script(name: str) -> tuple[Path, str]:
    """The built-in workload file (dbload/queries/NAME.sql) and where it came from."""
    path = Path(str(importlib.resources.files("dbload") / "queries" / f"{name}.sql"))
    if path.is_file():
        return path, f"dbload built-in {path.relative_to(REPO / 'service')}"
    if name not in _PGBENCH_BUILTIN:
        raise SystemExit(f"no built-in script {name!r} at {path}")
    tmp = Path(tempfile.gettempdir()) / f"dbload-bench-{name}.sql"
    tmp.write_text(_PGBENCH_BUILTIN[name])
    return tmp, f"pgbench's own {name} script ({path} does not exist yet)"


# -- CPU ---------------------------------------------------------------------


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of a server: live processes of the tree plus reaped children.

    The postmaster reaps its backends, so the CPU of backends that ended in
    the window (pgbench's, short-lived connections) lands in its
    children_user/children_system and is not lost.
    """
    total = 0.0
    try:
        t = root.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        children = root.children(recursive=True)
    except psutil.Error:
        return total
    for proc in children:
        with contextlib.suppress(psutil.Error):
            c = proc.cpu_times()
            total += c.user + c.system
    return total


def _own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _machine_cpu() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


@dataclass(frozen=True)
class Cpu:
    """CPU use over one window, each as % of one core (like top)."""

    wall_s: float
    client_s: float  # this process (all threads)
    children_s: float  # reaped child processes (pgbench)
    server_s: float | None
    machine_s: float  # every process on the machine

    def pct(self, seconds: float | None) -> float | None:
        if seconds is None or self.wall_s <= 0:
            return None
        return 100.0 * seconds / self.wall_s

    @property
    def client_pct(self) -> float:
        return self.pct(self.client_s) or 0.0

    @property
    def children_pct(self) -> float:
        return self.pct(self.children_s) or 0.0

    @property
    def server_pct(self) -> float | None:
        return self.pct(self.server_s)

    @property
    def machine_pct(self) -> float:
        return self.pct(self.machine_s) or 0.0


class CpuWindow:
    """Sample at :meth:`start` and :meth:`stop`; everything in CPU seconds.

    A backend's CPU moves into the postmaster's children times when it is
    reaped, all of its lifetime at once: a run's backends must be gone before
    the next window starts (:meth:`settle` before connecting), and a run that
    closes its connections inside the window (pgbench, dbload) must stop with
    ``settle=True`` so that they are counted in it.
    """

    def __init__(self, postmaster: psutil.Process | None, dbname: str | None = None) -> None:
        self.postmaster = postmaster
        self.dbname = dbname
        self.started = False

    def settle(self, timeout_s: float = 3.0) -> None:
        """Wait until no backend of the benchmark database is left (or timeout)."""
        if self.postmaster is None or not self.dbname:
            return
        marker = f" {self.dbname} "
        until = time.perf_counter() + timeout_s
        while time.perf_counter() < until:
            try:
                kids = self.postmaster.children()
            except psutil.Error:
                return
            busy = False
            for kid in kids:
                with contextlib.suppress(psutil.Error):
                    if kid.status() == psutil.STATUS_ZOMBIE or marker in " ".join(kid.cmdline()):
                        busy = True
                        break
            if not busy:
                return
            time.sleep(0.02)

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.own0 = _own_cpu()
        self.kids0 = _children_cpu()
        self.server0 = _tree_cpu(self.postmaster) if self.postmaster else None
        self.machine0 = _machine_cpu()
        self.started = True

    def stop(self, *, settle: bool = False) -> Cpu:
        wall = time.perf_counter() - self.t0
        if settle:
            self.settle()
        server = None
        if self.postmaster is not None and self.server0 is not None:
            server = _tree_cpu(self.postmaster) - self.server0
        return Cpu(
            wall_s=wall,
            client_s=_own_cpu() - self.own0,
            children_s=_children_cpu() - self.kids0,
            server_s=server,
            machine_s=_machine_cpu() - self.machine0,
        )


# -- one row of results ------------------------------------------------------


@dataclass
class Run:
    """One measured run of one variant."""

    variant: str
    round: int
    tps: float
    transactions: int
    wall_s: float
    client_pct: float | None  # the load generator's CPU (% of one core)
    server_pct: float | None
    machine_pct: float | None
    latency_ms: float | None = None  # mean
    note: str = ""
    p99_ms: float | None = None  # transaction latency, where the variant measures it

    @property
    def cpu_us_per_txn(self) -> float | None:
        """Client CPU microseconds per transaction: the generator's own cost."""
        if self.client_pct is None or not self.transactions:
            return None
        return self.client_pct / 100.0 * self.wall_s / self.transactions * 1e6


def run_dbload(
    target: Target,
    *,
    mode: str,
    workload: str,
    clients: int,
    duration: float,
    warmup: float,
    seed: int,
    round_: int,
    files: Sequence[str] = (),
) -> Run:
    """One dbload run through its public API (prepare_options + run_on)."""
    api, _ = dbload_api()
    if api is None or target.database is None:
        return Run(f"dbload {mode}", round_, 0.0, 0, 0.0, None, None, None, note="unavailable")
    options = api.prepare_options(
        workload=None if files else workload,
        files=files,
        mode=mode,
        concurrency=clients,
        duration=duration,
        warmup=warmup,
        seed=seed,
    )
    # dbload's Result.cpu gives the client figure over its measured window. Its
    # server figure is sampled after the executor has closed its connections,
    # so the backends' CPU is lost (reads 0): the server and machine figures
    # come from this window around the whole run_on() call instead.
    window = target.cpu_window()
    window.settle()
    window.start()
    result = api.run_on(target.database, target.scale, options)
    outer = window.stop(settle=True)
    cpu = result.cpu
    note = f"{result.failed} errors" if result.failed else ""
    return Run(
        variant=f"dbload {mode}",
        round=round_,
        tps=result.tps,
        transactions=result.ok,
        wall_s=result.duration_s,
        client_pct=cpu.client_pct if cpu else None,
        server_pct=outer.server_pct,
        machine_pct=outer.machine_pct,
        latency_ms=result.latency.mean,
        note=note,
    )


# -- printing ----------------------------------------------------------------


def fmt(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain fixed-width table: first column left-aligned, the rest right."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


RUN_HEADERS = (
    "round",
    "variant",
    "tps",
    "lat ms",
    "client CPU",
    "µs CPU/txn",
    "server CPU",
    "machine CPU",
    "note",
)


def run_row(run: Run) -> list[object]:
    return [
        run.round,
        run.variant,
        fmt(run.tps) if run.transactions else "-",
        fmt(run.latency_ms, ".3f"),
        fmt(run.client_pct, ".0f", " %"),
        fmt(run.cpu_us_per_txn, ".0f"),
        fmt(run.server_pct, ".0f", " %"),
        fmt(run.machine_pct, ".0f", " %"),
        run.note,
    ]


def progress(run: Run) -> None:
    """One line per finished run, as it happens."""
    print(
        f"round {run.round}  {run.variant:<16} {fmt(run.tps) if run.transactions else '-':>7} tps"
        f"  client {fmt(run.client_pct, '.0f', ' %'):>6}"
        f"  server {fmt(run.server_pct, '.0f', ' %'):>6}"
        f"  machine {fmt(run.machine_pct, '.0f', ' %'):>6}  {run.note}".rstrip(),
        flush=True,
    )


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: Sequence[Run], variants: Sequence[str]) -> dict[str, Run]:
    """Per variant, a Run holding the medians of its measured rounds."""
    out: dict[str, Run] = {}
    for variant in variants:
        mine = [r for r in runs if r.variant == variant and r.transactions]
        if not mine:
            continue
        out[variant] = Run(
            variant=variant,
            round=0,
            tps=median([r.tps for r in mine]) or 0.0,
            transactions=int(median([r.transactions for r in mine]) or 0),
            wall_s=median([r.wall_s for r in mine]) or 0.0,
            client_pct=median([r.client_pct for r in mine]),
            server_pct=median([r.server_pct for r in mine]),
            machine_pct=median([r.machine_pct for r in mine]),
            latency_ms=median([r.latency_ms for r in mine]),
            note=f"median of {len(mine)}",
            p99_ms=median([r.p99_ms for r in mine]),
        )
    return out


def print_summary(runs: Sequence[Run], variants: Sequence[str]) -> dict[str, Run]:
    medians = summarize(runs, variants)
    print()
    print("medians:")
    print_table(RUN_HEADERS[1:], [run_row(m)[1:] for m in medians.values()])
    return medians


def round_ratios(runs: Sequence[Run], num: str, den: str) -> list[float]:
    """num/den tps for each round where both ran (paired, same conditions)."""
    by = {(r.variant, r.round): r for r in runs if r.transactions}
    return [
        by[(num, k)].tps / by[(den, k)].tps
        for k in sorted({r.round for r in runs})
        if (num, k) in by and (den, k) in by and by[(den, k)].tps > 0
    ]


def print_ratio(
    runs: Sequence[Run], medians: dict[str, Run], num: str, den: str, target: float | None
) -> None:
    if num not in medians or den not in medians or medians[den].tps <= 0:
        print(f"{num} / {den}: not measured")
        return
    ratio = medians[num].tps / medians[den].tps
    paired = round_ratios(runs, num, den)
    line = f"{num} / {den}: {ratio:.3f} (median tps ratio)"
    if paired:
        line += f"; per round {', '.join(f'{p:.3f}' for p in paired)}"
    if target is not None:
        line += f"; target >= {target:.2f}: {'met' if ratio >= target else 'NOT met'}"
    print(line)


def print_context(target: Target, args: argparse.Namespace) -> None:
    print(target.describe())
    print(
        f"machine: {psutil.cpu_count()} logical cores, load avg "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; python {sys.version.split()[0]}"
    )
    print(
        f"clients {args.clients}, {args.rounds} rounds x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up each), seed {args.seed}"
    )
    print("CPU figures are % of one core over the measured window (200 % = 2 cores)")
    api, why = dbload_api()
    if api is None:
        print(f"dbload rows unavailable: {why}")
    print()


def alternate(rounds: int, variants: Sequence[Callable[[int], Run]]) -> list[Run]:
    """Run every variant once per round, in turn, so drift hits them alike."""
    runs: list[Run] = []
    for k in range(1, rounds + 1):
        for make in variants:
            run = make(k)
            runs.append(run)
            progress(run)
    return runs


def conclude(
    runs: Sequence[Run], baseline: str, others: Sequence[str], target: float | None
) -> None:
    """All rounds, the medians, and each variant's ratio to the baseline."""
    print()
    print("all rounds:")
    print_table(RUN_HEADERS, [run_row(r) for r in runs])
    medians = print_summary(runs, [baseline, *others])
    print()
    for variant in others:
        print_ratio(runs, medians, variant, baseline, target=target)
        if baseline in medians and variant in medians:
            a, b = medians[baseline].cpu_us_per_txn, medians[variant].cpu_us_per_txn
            if a and b:
                print(
                    f"client CPU per transaction: {variant} {b:.0f} µs"
                    f" vs {baseline} {a:.0f} µs ({b / a:.2f}x)"
                )
