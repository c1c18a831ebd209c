"""What a run shows while it goes on: one :class:`Point` per second of each
cell, from the recorder's own per-second series (the figures the final
report's series holds), with the CPU of the client and of the run's
backends over that second, what the backends were doing, and which of them
bounded the second (:func:`dbload.measure.comparison.classify_cpu`, the
report's own verdict, on the second's figures).

:class:`LiveObserver` is an :class:`dbload.api.Observer`: it only reads
snapshots, from a thread of its own, and never holds up the workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psutil
from psycopg.conninfo import conninfo_to_dict

from dbload.api import Observer
from dbload.config import Plan
from dbload.database.live_view import LiveView, ServerTick
from dbload.measure.comparison import classify_cpu
from dbload.measure.cpu import CpuUse, own_cpu
from dbload.measure.recorder import PARTIAL_SHARE, Interval, Snapshot
from dbload.measure.result import DatabaseInfo

POLL_S = 0.25  # how often the recorder's series is looked at for a new second
# the run's last interval is often a sliver (transactions in flight at the
# deadline end just after it): its rate over a few ms is noise on a chart, so
# the page leaves it out, as the charts do (recorder.without_sliver, whose
# share of the recorder's 1 s interval this is, applied as the series grows);
# the result's series keeps it
MIN_SPAN_S = PARTIAL_SHARE * 1.0


@dataclass(frozen=True, slots=True)
class Point:
    """One second of one cell."""

    t: float  # seconds since the cell's measuring began (end of this second)
    tps: float
    p99_ms: float
    errors: int
    client_cpu_pct: float  # % of one core, as top shows it
    server_cpu_pct: float | None  # the run's backends; None: not visible from here
    running: int | None  # the run's backends running a statement ...
    waiting: int | None  # ... waiting inside one (locks, I/O) ...
    idle: int | None  # ... or idle, waiting for the client
    top_wait: str | None
    bound: str  # client CPU, server CPU, server wait, unknown
    why: str


class LiveObserver(Observer):
    """Hands each cell's points to ``on_point(cell, point)``; ``on_cell``
    is told when a cell begins, ``on_database`` which database it runs on."""

    def __init__(
        self,
        on_cell: Callable[[int], None],
        on_point: Callable[[int, Point], None],
        on_database: Callable[[DatabaseInfo], None],
    ) -> None:
        self._on_cell = on_cell
        self._on_point = on_point
        self._on_database = on_database
        self._cell = 0

    def database(self, info: DatabaseInfo) -> None:
        self._on_database(info)

    def cell(self, mode: str, concurrency: int, index: int, total: int, driver: str = "") -> None:
        self._cell = index

    @contextmanager
    def running(self, plan: Plan, snapshot: Callable[[], Snapshot]) -> Iterator[None]:
        cell = self._cell
        self._on_cell(cell)
        done = threading.Event()
        thread = threading.Thread(
            target=self._watch,
            args=(plan, snapshot, done, lambda point: self._on_point(cell, point)),
            name="dbload-live",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _watch(
        self,
        plan: Plan,
        snapshot: Callable[[], Snapshot],
        done: threading.Event,
        emit: Callable[[Point], None],
    ) -> None:
        tag = str(conninfo_to_dict(plan.dsn).get("application_name") or "")
        view = LiveView(plan.dsn, tag)
        seconds = _Seconds(plan, view)
        try:
            while True:
                ended = done.wait(POLL_S)
                for point in seconds.new(snapshot()):
                    emit(point)
                if ended:  # after a last look: the run's final seconds
                    return
        finally:
            view.close()


class _Seconds:
    """Turns each new interval of the series into a Point, with the CPU
    spent since the previous one."""

    def __init__(self, plan: Plan, view: LiveView) -> None:
        self._plan = plan
        self._view = view
        self._last_t = 0.0
        self._cpu0 = own_cpu()
        self._wall0 = time.perf_counter()
        self._cores = psutil.cpu_count() or 1
        view.read()  # the server CPU's baseline

    def new(self, snap: Snapshot) -> list[Point]:
        """A point per interval ended since the last call; the CPU since then
        is shared among them by their length."""
        fresh = [i for i in snap.recent if i.t > self._last_t]
        if not fresh:
            return []
        now, cpu = time.perf_counter(), own_cpu()
        wall, client = now - self._wall0, cpu - self._cpu0
        self._wall0, self._cpu0 = now, cpu
        tick = self._view.read()
        points = []
        covered = fresh[-1].t - self._last_t
        for interval in fresh:
            span, self._last_t = interval.t - self._last_t, interval.t
            if span >= MIN_SPAN_S:
                share = span / covered if covered > 0 else 1.0
                mine = (
                    tick
                    if tick is None or tick.cpu_s is None
                    else replace(tick, cpu_s=tick.cpu_s * share)
                )
                points.append(self._point(interval, span, wall * share, client * share, mine))
        return points

    def _point(
        self, last: Interval, span: float, wall: float, client: float, tick: ServerTick | None
    ) -> Point:
        server = None if tick is None else tick.cpu_s
        use = CpuUse(
            wall_s=wall,
            cores=self._cores,
            client_s=client,
            server_s=server,
            server_note="not visible from here",
        )
        bound, why = classify_cpu(self._plan.mode, self._plan.concurrency, use)
        if tick is not None and tick.waiting > tick.running and tick.top_wait:
            why += f"; backends waiting on {tick.top_wait}"
        return Point(
            t=last.t,
            tps=last.transactions / span if span > 0 else 0.0,
            p99_ms=last.p99_ms,
            errors=last.errors,
            client_cpu_pct=round(use.client_pct, 1),
            server_cpu_pct=None if use.server_pct is None else round(use.server_pct, 1),
            running=None if tick is None else tick.running,
            waiting=None if tick is None else tick.waiting,
            idle=None if tick is None else tick.idle,
            top_wait=None if tick is None else tick.top_wait,
            bound=bound,
            why=why,
        )
