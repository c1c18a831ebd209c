"""The results folder: each finished run as its ``--json`` file, named by
the run's id, written atomically and never overwritten; read back with
``dbload report``'s own loader, so a file saved by ``dbload run --json``
and copied here is listed too."""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison, rows
from dbload.report.files import why_unwritable, write_atomically
from dbload.report.json_ import json_text
from dbload.report.load import Saved, load_saved

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def new_id() -> str:
    """Sortable by time, unique without a counter: ``20261201-185301-3fa2c1``."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def valid_id(run_id: str) -> bool:
    return bool(_ID.fullmatch(run_id)) and ".." not in run_id


@dataclass(frozen=True, slots=True)
class Stored:
    """A saved run as the history lists it."""

    id: str
    kind: str  # result, comparison, capacity
    workload: str
    created_at: str
    cells: list[dict[str, Any]]
    interrupted: bool


class ResultsDir:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if (problem := why_unwritable(path / f"{new_id()}.json")) is not None:
            raise UsageError(f"--results {path}: {problem}")
        self.path = path
        self._cache: dict[Path, tuple[float, Saved | None]] = {}
        self._lock = threading.Lock()

    def save(self, run_id: str, document: dict[str, Any]) -> Path:
        path = self.path / f"{run_id}.json"
        if path.exists():  # an id is never reused: a copied-in file keeps its name
            raise FileExistsError(path)
        write_atomically(path, json_text(document).encode("utf-8"))
        return path

    def load(self, run_id: str) -> Saved | None:
        if not valid_id(run_id):
            return None
        path = self.path / f"{run_id}.json"
        return self._read(path) if path.is_file() else None

    def history(self) -> list[Stored]:
        """Every readable result of the folder, newest first (unreadable files are left out)."""
        found = []
        for path in sorted(self.path.glob("*.json"), reverse=True):
            saved = self._read(path)
            if saved is not None and valid_id(path.stem):
                found.append(_stored(path.stem, saved))
        return found

    def _read(self, path: Path) -> Saved | None:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            saved: Saved | None = load_saved(path)
        except UsageError:
            saved = None
        with self._lock:
            self._cache[path] = (mtime, saved)
        return saved


def finite(value: float | None) -> float | None:
    """JSON has no NaN: a latency nothing measured is null."""
    return value if value is not None and math.isfinite(value) else None


def cell_summaries(comparison: Comparison) -> list[dict[str, Any]]:
    """Per cell: mode, driver, clients, tps, p99 and what bounded it."""
    return [
        {
            "mode": row.mode,
            "driver": row.driver,
            "concurrency": row.concurrency,
            "tps": finite(round(row.tps, 1)),
            "p99_ms": finite(row.p99_ms),
            "speedup": finite(row.speedup),
            "bound": row.bound,
        }
        for row in rows(comparison)
    ]


def _stored(run_id: str, saved: Saved) -> Stored:
    results = saved.results
    return Stored(
        id=run_id,
        kind=saved.kind,
        workload=saved.comparison.workload,
        created_at=saved.comparison.created_at or (results[0].started_at if results else ""),
        cells=cell_summaries(saved.comparison),
        interrupted=any(r.interrupted for r in results),
    )
