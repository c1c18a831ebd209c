"""The runs of a server: queued per target (one runs at a time on each, the
others wait, visibly), executed through :mod:`dbload.api` on a thread per
target, watched through :class:`~dbload.serve.live.LiveObserver` and saved
to the results folder when they end, stopped or not.

A :class:`RunState` is the one record of a run that the API reads: its
status, its cells with their live points, and at the end the result in the
``--json`` schema. Every change goes through its lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import queue
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Literal

from dbload import api
from dbload.database.redact import redact
from dbload.errors import DbloadError
from dbload.measure.comparison import Comparison
from dbload.measure.result import DatabaseInfo, Result
from dbload.report.console import outcome
from dbload.report.json_ import compare_to_dict, to_dict
from dbload.serve.live import LiveObserver, Point
from dbload.serve.request import Job
from dbload.serve.store import ResultsDir, cell_summaries, new_id
from dbload.serve.targets import Targets

# a day-long run is 86,400 points a cell: a page opened late gets the last
# hour of each (the whole series is in the result, once the run has ended)
REPLAY_POINTS = 3600

Status = Literal["queued", "preparing", "running", "done", "stopped", "failed"]
ENDED: frozenset[str] = frozenset({"done", "stopped", "failed"})


@dataclass
class CellState:
    mode: str
    driver: str
    concurrency: int
    state: Literal["pending", "running", "done"] = "pending"
    points: list[Point] = field(default_factory=list)


class Conflict(Exception):
    """What was asked cannot be done in the run's state (stop a finished run)."""


class RunState:
    """One run, from its request to its saved result."""

    def __init__(self, run_id: str, job: Job, stop: threading.Event | None = None) -> None:
        self.id = run_id
        self.job = job
        self.created_at = _now()
        self.status: Status = "queued"
        self.error: str | None = None  # one line: why it failed, or what it lost
        self.database: DatabaseInfo | None = None
        self.cells = [CellState(c.mode, c.driver, c.concurrency) for c in job.cells]
        self.current: int | None = None
        self.result: dict[str, Any] | None = None  # the --json document, once ended
        self.saved: bool = False
        self.summary: list[dict[str, Any]] | None = None  # per cell, once ended
        self.stop = stop or threading.Event()
        self.ended = threading.Event()
        self.lock = threading.Lock()

    # -- fed by the run's thread and its observer --------------------------------

    def cell_began(self, index: int) -> None:
        with self.lock:
            self.status = "running"
            for i, cell in enumerate(self.cells[:index]):
                if cell.state == "running":
                    self.cells[i].state = "done"
            if index < len(self.cells):
                self.cells[index].state = "running"
            self.current = index

    def add_point(self, index: int, point: Point) -> None:
        with self.lock:
            if index < len(self.cells):
                self.cells[index].points.append(point)

    def set_database(self, info: DatabaseInfo) -> None:
        with self.lock:
            self.database = info

    def finish(self, status: Status, result: dict[str, Any] | None, error: str | None) -> None:
        with self.lock:
            self.status, self.result, self.error = status, result, error
            for cell in self.cells:
                if cell.state == "running":
                    cell.state = "done"
            self.current = None
        self.ended.set()

    # -- read by the API -----------------------------------------------------------

    def view(self, sent: list[int] | None = None, position: int | None = None) -> dict[str, Any]:
        """The run now. ``sent[i]``: cell i's points the reader has (updated
        in place); only the points after those are included (on a first
        look, at most the last REPLAY_POINTS), each cell saying from which
        point on (``points_from``)."""
        with self.lock:
            cells = []
            for i, cell in enumerate(self.cells):
                start = 0 if sent is None else sent[i]
                if start == 0:  # a reader's first look: the last hour at most
                    start = max(0, len(cell.points) - REPLAY_POINTS)
                cells.append(
                    {
                        "mode": cell.mode,
                        "driver": cell.driver,
                        "concurrency": cell.concurrency,
                        "state": cell.state,
                        "points_from": start,
                        "points": [dataclasses.asdict(p) for p in cell.points[start:]],
                    }
                )
                if sent is not None:
                    sent[i] = len(cell.points)
            return {
                "id": self.id,
                "status": self.status,
                "queue_position": position if self.status == "queued" else None,
                "error": self.error,
                "created_at": self.created_at,
                "request": self.job.describe(),
                "database": None if self.database is None else _database(self.database),
                "current_cell": self.current,
                "cells": cells,
                "saved": self.saved,
                "summary": self.summary,
            }


class Runs:
    """Every run of this server, and a worker thread per target."""

    def __init__(self, targets: Targets, store: ResultsDir) -> None:
        self.targets = targets
        self.store = store
        self._runs: dict[str, RunState] = {}
        self._queues: dict[str, queue.Queue[RunState | None]] = {}
        self._waiting: dict[str, list[str]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()

    def submit(self, job: Job) -> RunState:
        state = RunState(new_id(), job)
        with self._lock:
            if self.closing.is_set():
                raise Conflict("the server is shutting down")
            self._runs[state.id] = state
            self._waiting.setdefault(job.target, []).append(state.id)
            if job.target not in self._queues:
                self._queues[job.target] = queue.Queue()
                thread = threading.Thread(
                    target=self._work, args=(job.target,), name=f"dbload-target-{job.target}"
                )
                self._threads.append(thread)
                thread.start()
            self._queues[job.target].put(state)
        return state

    def adopt(self, job: Job, stop: threading.Event) -> RunState:
        """A run that another caller executes (``dbload run --dashboard``):
        listed and watched here, not queued; stopping it sets ``stop``."""
        state = RunState(new_id(), job, stop)
        with self._lock:
            self._runs[state.id] = state
        return state

    def get(self, run_id: str) -> RunState | None:
        with self._lock:
            return self._runs.get(run_id)

    def position(self, state: RunState) -> int | None:
        """How many runs go before this queued one on its target (0: next)."""
        with self._lock:
            waiting = self._waiting.get(state.job.target, [])
            return waiting.index(state.id) if state.id in waiting else None

    def current(self) -> list[RunState]:
        with self._lock:
            return list(self._runs.values())

    def stop(self, run_id: str) -> RunState:
        state = self.get(run_id)
        if state is None:
            raise KeyError(run_id)
        with state.lock:
            if state.status in ENDED:
                raise Conflict(f"run {run_id} has already ended ({state.status})")
            state.stop.set()
            queued = state.status == "queued"
        if queued:  # dropped now, not when its turn comes
            with self._lock:
                waiting = self._waiting.get(state.job.target, [])
                if state.id in waiting:
                    waiting.remove(state.id)
            state.finish("stopped", None, "stopped before it started")
        return state

    def close(self, wait: bool = True) -> None:
        """Stop what runs, drop what waits, and (``wait``) let the running
        runs save their partial results."""
        with self._lock:
            self.closing.set()
            states = list(self._runs.values())
            queues = list(self._queues.values())
        for state in states:
            state.stop.set()
        for q in queues:
            q.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    # -- the target's thread ---------------------------------------------------------

    def _work(self, target: str) -> None:
        q = self._queues[target]
        while (state := q.get()) is not None:
            with self._lock:
                if state.id in self._waiting[target]:
                    self._waiting[target].remove(state.id)
            if state.ended.is_set():  # stopped while it waited
                continue
            if state.stop.is_set():
                state.finish("stopped", None, "stopped before it started")
                continue
            execute(state, self.targets, self.store)
        # what is still queued at shutdown ends here, never run
        while not q.empty():
            if (left := q.get_nowait()) is not None and not left.ended.is_set():
                left.finish("stopped", None, "the server stopped before it started")


def execute(state: RunState, targets: Targets, store: ResultsDir) -> None:
    """Run ``state``'s job to its end and save what it measured."""
    job = state.job
    with state.lock:
        state.status = "preparing"
    observer = LiveObserver(state.cell_began, state.add_point, state.set_database)
    try:
        database = targets.database(job.target)
        results, document = _run(job, database, state.stop, observer)
    except DbloadError as exc:
        state.finish("failed", None, redact(str(exc).strip()).splitlines()[0])
        return
    except Exception as exc:  # the server (and the target's queue) outlive a bug in one run
        traceback.print_exc()
        state.finish("failed", None, redact(f"internal error: {type(exc).__name__}: {exc}"))
        return
    save(state, store, results, document)


def save(
    state: RunState, store: ResultsDir, results: tuple[Result, ...], document: dict[str, Any]
) -> None:
    """Save and finish ``state``: stopped when interrupted, failed when a
    cell did not succeed (its reason), else done."""
    problem = failure(results)
    state.summary = cell_summaries(Comparison.of(list(results)))
    interrupted = state.stop.is_set() or any(r.interrupted for r in results)
    status: Status = "failed" if problem else "stopped" if interrupted else "done"
    try:
        store.save(state.id, document)
        state.saved = True
    except OSError as exc:
        problem = problem or f"the result could not be saved: {exc}"
        status = "failed"
    state.finish(status, document, problem)


def failure(results: tuple[Result, ...]) -> str | None:
    """The first reason a cell did not succeed, as the CLI's exit line says it."""
    for result in results:
        label = f"{result.mode} c={result.concurrency}"
        if result.aborted:
            return f"{label}: aborted after {result.failed} failed transactions"
        if result.incidents:
            return f"{label}: {result.incidents[0]}"
        found = outcome(result)
        if found is not None and found.level == "error" and not result.interrupted:
            return f"{label}: {found.message}"
    return None


def _run(
    job: Job, database: Any, stop: threading.Event, observer: LiveObserver
) -> tuple[tuple[Result, ...], dict[str, Any]]:
    if job.kind == "run":
        cell = job.cells[0]
        observer.cell(cell.mode, cell.concurrency, 0, 1)
        options = job.options.copy()
        options["driver"] = cell.driver or None
        result = api.run(
            job.builtin,
            mode=cell.mode,
            concurrency=cell.concurrency,
            database=database,
            stop=stop,
            observer=observer,
            **options,
        )
        return (result,), to_dict(result)
    comparison: Comparison = api.compare(
        job.builtin,
        modes=list(job.modes or ()),
        concurrency=list(job.sweep or ()),
        drivers=None if job.drivers is None else list(job.drivers),
        database=database,
        stop=stop,
        observer=observer,
        **job.options,
    )
    return comparison.results, compare_to_dict(comparison)


def _database(info: DatabaseInfo) -> dict[str, Any]:
    return {"kind": info.kind, "url": info.url, "server_version": info.server_version}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
