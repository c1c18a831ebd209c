"""A run as the HTTP API asks for it, checked, and turned into the
:mod:`dbload.api` call the CLI would make.

The body's run options carry :class:`dbload.api.Options`' own names and
meaning (``transactions``, ``duration``, ``rate``...), so a field here is
the CLI flag and the API keyword of the same name; the checks are the
API's own (:func:`dbload.api.prepare_options`, :func:`dbload.api.compare_cells`),
run when the request arrives, so a bad request is refused before it is
queued. What a browser must not do from here: name a DSN, read or write
files of the server's (workloads come from the built-ins and the server's
``--workloads`` folder, results go to its results folder).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dbload.api import Cell, Options, compare_cells, prepare_options
from dbload.config import DEFAULT_CONCURRENCY
from dbload.errors import UsageError
from dbload.modes import MODES
from dbload.workload.parser import builtin_description, builtin_names
from dbload.workload.python import is_python

MAX_CLIENTS = 10_000  # beyond any server's max_connections; the server's own limit is checked
Clients = Annotated[int, Field(ge=1, le=MAX_CLIENTS)]

# fields a request might use to smuggle a database in
_DATABASE_KEYS = {"dsn", "url", "uri", "database_url", "db", "servers", "host", "password"}
_DSN_TEXT = re.compile(r"://|\b(host|password|dbname|user)\s*=", re.IGNORECASE)


class RunRequest(BaseModel):
    """``POST /api/runs``. ``mode`` runs one cell (``dbload run``'s result);
    ``modes`` (default: all) a comparison (``dbload compare``'s)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # the schema's types, no coercion

    target: str | None = Field(None, description="A name of GET /api/targets; default: the first")
    workload: str = Field("select", description="A name of GET /api/workloads")
    mode: str | None = Field(None, description="One mode: a single run (dbload run)")
    modes: list[str] | None = Field(
        None, min_length=1, max_length=8, description="Modes compared (dbload compare)"
    )
    driver: str | None = Field(None, description="With mode: the client library")
    drivers: list[str] | None = Field(None, min_length=1, max_length=8)
    concurrency: Clients | list[Clients] | None = Field(
        None, description="Clients; with modes, a sweep [1, 2, 4, 8]"
    )
    transactions: int | None = Field(None, ge=1, le=1_000_000_000)
    duration: float | None = Field(None, gt=0, le=86_400, description="Seconds (per cell)")
    warmup: float = Field(0.0, ge=0, le=3_600)
    rate: float | None = Field(None, gt=0, le=10_000_000, description="Open loop: tps in all")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    cpu_work: float | None = Field(None, ge=0, le=10_000, description="ms of Python per txn")
    max_tries: int | None = Field(None, ge=1, le=100)
    defines: dict[str, str] | None = Field(None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _no_database(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, value in data.items():
                texts = value if isinstance(value, list | tuple) else [value]
                if isinstance(value, Mapping):  # defines: its keys and values
                    texts = [*value.keys(), *value.values()]
                if str(key).lower() in _DATABASE_KEYS or any(
                    isinstance(text, str) and _DSN_TEXT.search(text) for text in texts
                ):
                    raise ValueError(
                        f"{key!r}: a request names a target (GET /api/targets) and never"
                        " carries a DSN; the server holds those"
                    )
        return data


# the body's fields that are dbload.api.Options, by the same name
OPTION_FIELDS = ("transactions", "duration", "warmup", "rate", "seed", "cpu_work", "max_tries")


@dataclass(frozen=True, slots=True)
class Job:
    """A checked request: what the run queue hands to :mod:`dbload.api`."""

    target: str
    kind: Literal["run", "compare"]
    workload: str  # as the request named it
    builtin: str | None  # dbload.api's ``workload``
    files: tuple[str, ...]  # or a script of the server's --workloads folder
    cells: tuple[Cell, ...]
    options: Options
    # a comparison's axes, as given (dbload.api.compare recomputes its cells from them)
    modes: tuple[str, ...] | None = None
    sweep: tuple[int, ...] | None = None
    drivers: tuple[str, ...] | None = None

    def describe(self) -> dict[str, Any]:
        """The request as the run record shows it (no paths of the server's)."""
        return {
            "target": self.target,
            "kind": self.kind,
            "workload": self.workload,
            "cells": [cell._asdict() for cell in self.cells],
            **{k: v for k, v in self.options.items() if k != "files"},
        }


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    name: str
    source: Literal["builtin", "folder"]
    description: str


def workloads(folder: Path | None) -> list[WorkloadInfo]:
    """The built-ins, then the ``--workloads`` folder's scripts (``*.sql``,
    ``*.py``) by file name."""
    found = [WorkloadInfo(n, "builtin", builtin_description(n)) for n in builtin_names()]
    if folder is not None:
        for path in sorted(folder.iterdir()):
            if path.is_file() and (path.suffix == ".sql" or is_python(str(path))):
                kind = "Python workload" if path.suffix == ".py" else "pgbench script"
                found.append(WorkloadInfo(path.name, "folder", f"{kind} of {folder}"))
    return found


def check_request(request: RunRequest, target: str, folder: Path | None) -> Job:
    """The request checked as ``dbload run``/``compare`` would check its
    flags; a UsageError (or WorkloadError) says what is wrong in one line."""
    if request.mode is not None and request.modes is not None:
        raise UsageError("give mode (one run) or modes (a comparison), not both")
    if request.mode is not None and request.drivers is not None:
        raise UsageError("drivers is the axis of a comparison: with mode, give driver")
    if request.modes is not None and request.driver is not None:
        raise UsageError("driver is for one run: a comparison takes drivers")
    builtin, files = _workload(request.workload, folder)
    options = Options(files=files)
    for name in OPTION_FIELDS:
        if (value := getattr(request, name)) is not None:
            options[name] = value  # type: ignore[literal-required]
    if request.defines:
        options["defines"] = dict(request.defines)
    if request.mode is not None:
        clients = request.concurrency
        if isinstance(clients, list):
            if len(clients) != 1:
                raise UsageError("a sweep of concurrencies is for modes (a comparison)")
            clients = clients[0]
        options["driver"] = request.driver
        prepare_options(builtin, request.mode, clients, **options)
        mode_clients = clients or (1 if request.mode == "sequential" else DEFAULT_CONCURRENCY)
        cells: tuple[Cell, ...] = (Cell(request.mode, request.driver or "", mode_clients),)
        return Job(target, "run", request.workload, builtin, tuple(files), cells, options)
    given = request.concurrency
    sweep = [DEFAULT_CONCURRENCY] if given is None else [given] if isinstance(given, int) else given
    modes = list(MODES) if request.modes is None else request.modes
    cells = tuple(compare_cells(modes, sweep, request.drivers))
    for cell in cells:
        for_cell = options.copy()
        for_cell["driver"] = cell.driver
        prepare_options(builtin, cell.mode, cell.concurrency, **for_cell)
    drivers = None if request.drivers is None else tuple(request.drivers)
    return Job(
        target, "compare", request.workload, builtin, tuple(files), cells, options,
        modes=tuple(modes), sweep=tuple(sweep), drivers=drivers,
    )  # fmt: skip


def _workload(name: str, folder: Path | None) -> tuple[str | None, list[str]]:
    """A built-in's name, or the path of a script of the server's folder."""
    if name in builtin_names():
        return name, []
    if folder is not None and "/" not in name and "\\" not in name and name not in ("", ".", ".."):
        path = folder / name
        if path.is_file() and (path.suffix == ".sql" or is_python(str(path))):
            return None, [str(path)]
    known = [w.name for w in workloads(folder)]
    raise UsageError(f"unknown workload {name!r}; this server has {', '.join(known)}")
