"""Reading saved results back: the inverse of :func:`dbload.report.json_.to_dict`.

``dbload report`` re-renders files written by ``run --json`` (schema
``dbload/result@1``) and ``compare --out`` (``dbload/compare@1``). Every
field is checked for presence and type, so a corrupt, truncated or foreign
file fails with one line naming the file and the first bad field, never
with a traceback from deep inside a renderer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.cpu import CpuUse
from dbload.measure.histogram import LatencySummary, decode
from dbload.measure.recorder import Interval
from dbload.measure.result import DatabaseInfo, Result, StatementStats
from dbload.measure.server import COUNTERS, DatabaseDelta, ServerStatement, ServerStats
from dbload.report.json_ import CAPACITY_SCHEMA, COMPARE_SCHEMA, SCHEMA
from dbload.workload.arrivals import RateProfile, Stage

T = TypeVar("T")

_RESULT_FIELDS = {f.name for f in dataclasses.fields(Result)}


class _Invalid(Exception):
    """A field is missing or has the wrong type; ``args[0]`` is its dotted path."""


class _Obj:
    """Typed, path-aware access to one JSON object (a dict)."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise _Invalid(where or "the top level")
        self._data: dict[str, Any] = data
        self._where = where

    def has(self, key: str) -> bool:
        return key in self._data

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str, types: tuple[type, ...], optional: bool = False) -> Any:
        value = self._data.get(key)
        if value is None and optional and key in self._data:
            return None
        # bool is an int subclass: never accept it where a number is meant
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise _Invalid(self._path(key))
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, (str,)))

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, (str,), optional=True)
        return None if value is None else str(value)

    def integer(self, key: str) -> int:
        return int(self._get(key, (int,)))

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, (int,), optional=True)
        return None if value is None else int(value)

    def number(self, key: str) -> float:
        return float(self._get(key, (int, float)))

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, (int, float), optional=True)
        return None if value is None else float(value)

    def flag(self, key: str) -> bool:
        return bool(self._get(key, (bool,)))

    def obj(self, key: str) -> _Obj:
        return _Obj(self._get(key, (dict,)), self._path(key))

    def opt_obj(self, key: str) -> _Obj | None:
        value = self._get(key, (dict,), optional=True)
        return None if value is None else _Obj(value, self._path(key))

    def objs(self, key: str) -> list[_Obj]:
        items = self._get(key, (list,))
        return [_Obj(item, f"{self._path(key)}[{i}]") for i, item in enumerate(items)]

    def texts(self, key: str) -> list[str]:
        items = self._get(key, (list,))
        if not all(isinstance(item, str) for item in items):
            raise _Invalid(self._path(key))
        return [str(item) for item in items]

    def mapping(self, key: str, value_type: type) -> dict[str, Any]:
        items = self._get(key, (dict,))
        if not all(isinstance(v, value_type) and not isinstance(v, bool) for v in items.values()):
            raise _Invalid(self._path(key))
        return dict(items)


def read_json(path: Path) -> Any:
    """The parsed content of ``path``, or a one-line UsageError."""
    if not path.exists():
        raise UsageError(f"report: {path} does not exist")
    if path.is_dir():
        raise UsageError(f"report: {path} is a directory, not a result file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"report: {path} is not valid JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise UsageError(f"report: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"report: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from None
    except RecursionError:
        raise UsageError(f"report: {path} is not valid JSON (nested too deeply)") from None


def load_any(path: Path) -> list[Result]:
    """The runs in a result@1 file (one), a compare@1 file (each of them) or
    a capacity@1 file (the probe, then each step of the search)."""
    data = read_json(path)
    schema = _schema_of(path, data)
    if schema == SCHEMA:
        return [_parse(path, schema, lambda: _result(_Obj(data, "")))]
    if schema == CAPACITY_SCHEMA:
        return _parse(path, schema, lambda: _capacity_runs(_Obj(data, "")))
    return list(_comparison(path, data).results)


def _capacity_runs(top: _Obj) -> list[Result]:
    return [_result(top.obj("probe")), *(_result(step.obj("run")) for step in top.objs("steps"))]


def load_result(path: Path) -> Result:
    """One run saved by ``dbload run --json`` (schema ``dbload/result@1``)."""
    data = read_json(path)
    schema = _schema_of(path, data)
    if schema != SCHEMA:
        raise UsageError(f"report: {path} holds several runs ({schema}), not one result")
    return _parse(path, schema, lambda: _result(_Obj(data, "")))


def load_comparison(path: Path) -> Comparison:
    """A comparison saved by ``dbload compare --out`` (``results.json``), or a
    single result as a comparison of one run."""
    data = read_json(path)
    if _schema_of(path, data) == SCHEMA:
        return Comparison.of([_parse(path, SCHEMA, lambda: _result(_Obj(data, "")))])
    return _comparison(path, data)


def _schema_of(path: Path, data: Any) -> str:
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in (SCHEMA, COMPARE_SCHEMA, CAPACITY_SCHEMA):
        found = "no schema field" if schema is None else f"schema {schema!r}"
        raise UsageError(f"report: {path} is not a dbload result ({found})")
    return str(schema)


def _comparison(path: Path, data: Any) -> Comparison:
    def parse() -> Comparison:
        top = _Obj(data, "")
        runs = tuple(_result(run) for run in top.objs("runs"))
        if not runs:  # nothing to report, and every chart needs a run
            raise _Invalid("runs")
        return Comparison(
            workload=top.text("workload"), results=runs, created_at=top.text("created_at")
        )

    return _parse(path, COMPARE_SCHEMA, parse)


def _parse(path: Path, schema: str, build: Callable[[], T]) -> T:
    """Run ``build()``, turning a bad field into the one-line message."""
    try:
        value: T = build()
    except _Invalid as exc:
        raise UsageError(
            f"report: {path} is not a dbload result (schema {schema}):"
            f" field {exc.args[0]} is missing or invalid"
        ) from None
    return value


def _latency(obj: _Obj, count: int) -> LatencySummary:
    # result@1 leaves the count out of latency_ms; the caller knows it
    return LatencySummary(
        count=obj.integer("count") if obj.has("count") else count,
        mean=obj.number("mean"),
        stddev=obj.number("stddev"),
        min=obj.number("min"),
        p50=obj.number("p50"),
        p90=obj.number("p90"),
        p99=obj.number("p99"),
        p99_9=obj.number("p99_9"),
        max=obj.number("max"),
    )


def _histogram_count(top: _Obj) -> tuple[str, int]:
    hist = top.obj("histogram")
    data = hist.text("data")
    try:
        # hdrh's codec raises assorted exception types with no common base
        count = int(decode(data).get_total_count())
    except Exception:
        raise _Invalid("histogram.data") from None
    return data, count


def _cpu(obj: _Obj | None) -> CpuUse | None:
    if obj is None:
        return None
    return CpuUse(
        wall_s=obj.number("wall_s"),
        cores=obj.integer("cores"),
        client_s=obj.number("client_s"),
        server_s=obj.opt_number("server_s"),
        server_note=obj.text("server_note"),
    )


def _statement(obj: _Obj) -> StatementStats:
    return StatementStats(
        source=obj.text("source"),
        line=obj.integer("line"),
        sql=obj.text("sql"),
        # the per-statement count is not in result@1 files: 0 (unknown)
        latency=_latency(obj.obj("latency_ms"), 0),
    )


def _interval(obj: _Obj) -> Interval:
    return Interval(
        t=obj.number("t"),
        transactions=obj.integer("transactions"),
        errors=obj.integer("errors"),
        p99_ms=obj.number("p99_ms"),
    )


def _result(top: _Obj) -> Result:
    planned, txn, stmts = top.obj("planned"), top.obj("transactions"), top.obj("statements")
    db = top.obj("database")
    histogram, count = _histogram_count(top)
    fields: dict[str, Any] = {
        "mode": top.text("mode"),
        "driver": top.text("driver"),
        "workload": top.text("workload"),
        "scripts": tuple(top.texts("scripts")),
        "concurrency": top.integer("concurrency"),
        "seed": top.integer("seed"),
        "scale": top.integer("scale"),
        "planned_transactions": planned.opt_integer("transactions"),
        "planned_duration_s": planned.opt_number("duration_s"),
        "warmup_s": planned.number("warmup_s"),
        "started_at": top.text("started_at"),
        "duration_s": _duration(top, txn, stmts),
        "interrupted": top.flag("interrupted"),
        "aborted": top.flag("aborted"),
        "ok": txn.integer("ok"),
        "failed": txn.integer("failed"),
        "statement_count": stmts.integer("count"),
        "warmup_transactions": txn.integer("warmup"),
        "latency": _latency(top.obj("latency_ms"), count),
        "errors": top.mapping("errors", int),
        "series": tuple(_interval(p) for p in top.objs("series")),
        "statements": tuple(_statement(s) for s in stmts.objs("detail")),
        "cpu": _cpu(top.opt_obj("cpu")),
        "database": DatabaseInfo(
            kind=db.text("kind"), url=db.text("url"), server_version=db.text("server_version")
        ),
        "histogram": histogram,
        "versions": top.mapping("versions", str),
    }
    fields.update(_optional_fields(top, planned, txn))
    return Result(**fields)


def _optional_fields(top: _Obj, planned: _Obj, txn: _Obj) -> dict[str, Any]:
    """Fields added after result@1 first shipped: older files lack them, and
    the Result defaults stand in."""
    found: dict[str, Any] = {}
    for name, obj, read in (
        ("retried", txn, txn.integer),
        ("retries", txn, txn.integer),
        ("cancelled", txn, txn.integer),
        ("max_tries", planned, planned.integer),
        ("isolation", planned, planned.opt_text),
        ("cpu_work_ms", planned, planned.number),
    ):
        if obj.has(name) and name in _RESULT_FIELDS:
            found[name] = read(name)
    if top.has("incidents") and "incidents" in _RESULT_FIELDS:
        found["incidents"] = tuple(top.texts("incidents"))
    if (loop := top.opt_obj("open_loop")) is not None:
        lag = loop.opt_obj("lag_ms")
        found.update(
            rate=loop.number("rate"),
            latency_limit_ms=loop.number("latency_limit_ms"),
            skipped=loop.integer("skipped"),
            late=loop.integer("late"),
            lag=None if lag is None else _latency(lag, 0),
        )
        if (stages := loop.opt_obj("stages")) is not None:
            found["stages"] = _stages(stages)
    if top.has("server") and "server" in _RESULT_FIELDS:
        found["server"] = _server(top.opt_obj("server"))
    return found


def _server(obj: _Obj | None) -> ServerStats | None:
    if obj is None:
        return None
    db = obj.opt_obj("database")
    return ServerStats(
        database=None
        if db is None
        else DatabaseDelta(
            cache_hit_ratio=db.opt_number("cache_hit_ratio"),
            **{key: db.integer(key) for key in COUNTERS},
        ),
        database_skipped=obj.opt_text("database_skipped"),
        statements=tuple(
            ServerStatement(
                query=s.text("query"),
                calls=s.integer("calls"),
                total_ms=s.number("total_ms"),
                mean_ms=s.number("mean_ms"),
                rows=s.integer("rows"),
            )
            for s in obj.objs("statements")
        ),
        statements_skipped=obj.opt_text("statements_skipped"),
    )


def _stages(obj: _Obj) -> RateProfile:
    stages = tuple(
        Stage(duration_s=item.number("duration_s"), target=item.number("target"))
        for item in obj.objs("stages")
    )
    if not stages or any(s.duration_s <= 0 or s.target < 0 for s in stages):
        raise _Invalid(obj._path("stages"))
    return RateProfile(start=obj.number("start_rate"), stages=stages)


def _duration(top: _Obj, txn: _Obj, stmts: _Obj) -> float:
    """The measured window, as exactly as the file allows.

    The file holds it rounded to 0.1 ms next to rates rounded to 0.001/s;
    the rates pin it down further. Reporting the middle of the interval
    consistent with all three reproduces every rounded figure, so a file
    read and written again is identical.
    """
    stored = top.number("duration_s")
    low, high = stored - 0.00005, stored + 0.00005
    for count, rate in (
        (txn.integer("ok"), txn.number("per_second")),
        (stmts.integer("count"), stmts.number("per_second")),
    ):
        if count > 0 and rate > 0.0005:
            low, high = max(low, count / (rate + 0.0005)), min(high, count / (rate - 0.0005))
    return (low + high) / 2 if 0 < low <= high else stored
