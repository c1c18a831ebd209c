"""Reading saved results back: the inverse of :func:`dbload.report.json_.to_dict`.

``dbload report`` re-renders files written by ``run --json`` (schema
``dbload/result@2``, or @1 of earlier versions), ``compare --out``
(``dbload/compare@2``, @1) and ``run --find-max-rate --json``
(``dbload/capacity@2``, @1). Every field is checked for presence and type,
so a corrupt, truncated or foreign file fails with one line naming the file
and the first bad field, never with a traceback from deep inside a renderer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.cpu import CpuUse
from dbload.measure.histogram import LatencySummary, decode
from dbload.measure.recorder import Interval
from dbload.measure.result import (
    ClusterInfo,
    ClusterWorker,
    DatabaseInfo,
    Result,
    ScriptStats,
    StatementStats,
)
from dbload.measure.server import (
    COUNTERS,
    RUN,
    DatabaseDelta,
    OtherSessions,
    ServerStatement,
    ServerStats,
)
from dbload.measure.thresholds import Verdict, parse_threshold
from dbload.report.json_ import CAPACITY_SCHEMA, COMPARE_SCHEMA, SCHEMA
from dbload.workload.arrivals import RateProfile, Stage

if TYPE_CHECKING:
    from dbload.capacity import Capacity

T = TypeVar("T")
Kind = Literal["result", "compare", "capacity"]

_RESULT_FIELDS = {f.name for f in dataclasses.fields(Result)}
# every schema read, old ones included, and what each file holds
_KINDS: dict[str, Kind] = {
    "dbload/result@1": "result",
    SCHEMA: "result",
    "dbload/compare@1": "compare",
    COMPARE_SCHEMA: "compare",
    "dbload/capacity@1": "capacity",
    CAPACITY_SCHEMA: "capacity",
}


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

    def __iter__(self) -> Iterator[str]:
        return (str(key) for key in self._data)

    def is_obj(self, key: str) -> bool:
        return isinstance(self._data.get(key), dict)

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

    def integers(self, key: str) -> list[int]:
        items = self._get(key, (list,))
        if not all(isinstance(item, int) and not isinstance(item, bool) for item in items):
            raise _Invalid(self._path(key))
        return [int(item) for item in items]

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


@dataclass(frozen=True, slots=True)
class Saved:
    """One file of ``dbload report``, with what its kind renders from:
    a run, a comparison (``compare``'s cells) or a capacity walk."""

    path: Path
    kind: Kind
    comparison: Comparison  # every run of the file, in order (the probe first)
    verdicts: tuple[tuple[Verdict, ...], ...]  # per run: the thresholds saved with it
    capacity: Capacity | None = None  # kind "capacity"

    @property
    def results(self) -> tuple[Result, ...]:
        return self.comparison.results


def load_saved(path: Path) -> Saved:
    """Any dbload file, old schemas included, or a one-line UsageError."""
    data = read_json(path)
    schema = _schema_of(path, data)
    kind = _KINDS[schema]
    top = _Obj(data, "")
    if kind == "result":
        run, judged = _parse(path, schema, lambda: _judged(top))
        return Saved(path, kind, Comparison.of([run]), (judged,))
    if kind == "capacity":
        capacity = _parse(path, schema, lambda: _capacity(top))
        runs = (capacity.probe, *(step.result for step in capacity.steps))
        verdicts = ((), *(step.verdicts for step in capacity.steps))
        return Saved(path, kind, Comparison.of(runs), verdicts, capacity)
    comparison, cells = _parse(path, schema, lambda: _comparison(top))
    return Saved(path, kind, comparison, cells)


def load_any(path: Path) -> list[Result]:
    """The runs in a result file (one), a compare file (each of them) or
    a capacity file (the probe, then each step of the search)."""
    return list(load_saved(path).results)


def load_result(path: Path) -> Result:
    """One run saved by ``dbload run --json`` (schema ``dbload/result@2``, @1)."""
    saved = load_saved(path)
    if saved.kind != "result":
        schema = read_json(path)["schema"]
        raise UsageError(f"report: {path} holds several runs ({schema}), not one result")
    return saved.results[0]


def load_comparison(path: Path) -> Comparison:
    """A comparison saved by ``dbload compare --out`` (``results.json``), or a
    single result as a comparison of one run."""
    return load_saved(path).comparison


def _schema_of(path: Path, data: Any) -> str:
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in _KINDS:
        found = "no schema field" if schema is None else f"schema {schema!r}"
        raise UsageError(f"report: {path} is not a dbload result ({found})")
    return str(schema)


def _comparison(top: _Obj) -> tuple[Comparison, tuple[tuple[Verdict, ...], ...]]:
    judged = [_judged(run) for run in top.objs("runs")]
    if not judged:  # nothing to report, and every chart needs a run
        raise _Invalid("runs")
    comparison = Comparison(
        workload=top.text("workload"),
        results=tuple(run for run, _ in judged),
        created_at=top.text("created_at"),
    )
    return comparison, tuple(verdicts for _, verdicts in judged)


def _judged(top: _Obj) -> tuple[Result, tuple[Verdict, ...]]:
    """A run and the verdicts of the thresholds saved with it (none: ())."""
    result = _result(top)
    if not top.has("thresholds"):
        return result, ()
    return result, tuple(_verdict(v, top._path("thresholds")) for v in top.objs("thresholds"))


def _verdict(obj: _Obj, where: str) -> Verdict:
    try:
        threshold = parse_threshold(obj.text("threshold"))
    except UsageError:
        raise _Invalid(obj._path("threshold")) from None
    actual = obj.opt_number("actual")
    return Verdict(threshold, float("nan") if actual is None else actual, passed=obj.flag("passed"))


def _capacity(top: _Obj) -> Capacity:
    # imported here: the search module imports the API and its drivers,
    # which re-rendering a file needs no more than any report does
    from dbload.capacity import Capacity, Step

    slo = []
    for i, text in enumerate(top.texts("slo")):
        try:
            slo.append(parse_threshold(text, "--slo"))
        except UsageError:
            raise _Invalid(f"slo[{i}]") from None
    steps = []
    for step in top.objs("steps"):
        result, verdicts = _judged(step.obj("run"))
        steps.append(Step(step.number("rate"), result, verdicts, kept_up=step.flag("kept_up")))
    probe, _ = _judged(top.obj("probe"))
    return Capacity(
        slo=tuple(slo), probe=probe, steps=tuple(steps), interrupted=top.flag("interrupted")
    )


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


def _latency(obj: _Obj | None, count: int) -> LatencySummary:
    # the file leaves the count out of latency_ms; the caller knows it
    if obj is None:  # null: nothing was measured
        return LatencySummary(count, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
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
        # other sessions' CPU: not in files written before it was measured
        others_s=obj.opt_number("others_s") if obj.has("others_s") else None,
    )


def _statement(obj: _Obj) -> StatementStats:
    return StatementStats(
        source=obj.text("source"),
        line=obj.integer("line"),
        sql=obj.text("sql"),
        # the per-statement count is not in result@1 files: 0 (unknown)
        latency=_latency(
            obj.opt_obj("latency_ms"), obj.integer("count") if obj.has("count") else 0
        ),
    )


def _interval(obj: _Obj) -> Interval:
    return Interval(
        t=obj.number("t"),
        transactions=obj.integer("transactions"),
        errors=obj.integer("errors"),
        p99_ms=obj.number("p99_ms"),
    )


def _database(db: _Obj) -> DatabaseInfo:
    """kind, url, version; the server entry, image and settings of a
    ``compare --servers`` run when present (files before it have none)."""
    return DatabaseInfo(
        kind=db.text("kind"),
        url=db.text("url"),
        server_version=db.text("server_version"),
        server=db.text("server") if db.has("server") else "",
        image=db.opt_text("image") if db.has("image") else None,
        settings=db.mapping("settings", str) if db.has("settings") else {},
    )


def _result(top: _Obj) -> Result:
    planned, txn, stmts = top.obj("planned"), top.obj("transactions"), top.obj("statements")
    db = top.obj("database")
    histogram, count = _histogram_count(top)
    fields: dict[str, Any] = {
        "mode": top.text("mode"),
        **_driver(top),
        "workload": top.text("workload"),
        "scripts": tuple(top.texts("scripts")),
        "concurrency": top.integer("concurrency"),
        # before result@2 sequential replayed one stream
        "streams": top.integer("streams") if top.has("streams") else top.integer("concurrency"),
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
        "latency": _latency(top.opt_obj("latency_ms"), count),
        **_errors(top),
        "series": tuple(_interval(p) for p in top.objs("series")),
        "statements": tuple(_statement(s) for s in stmts.objs("detail")),
        "cpu": _cpu(top.opt_obj("cpu")),
        "database": _database(db),
        "histogram": histogram,
    }
    fields.update(_optional_fields(top, planned, txn))
    return Result(**fields)


def _driver(top: _Obj) -> dict[str, Any]:
    """``driver`` (the canonical name) and ``versions``. Older files hold
    the executor's label in ``driver`` ("asyncpg 0.30.0 + uvloop", "psycopg
    3.2.1 + psycopg_pool"): its first word is the name, and the label stays
    the version label when ``versions`` lacks one."""
    text = top.text("driver")
    versions = top.mapping("versions", str)
    words = text.split()
    name = words[0] if words else text
    if name != text:
        versions.setdefault("driver", text)
    return {"driver": name, "versions": versions}


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
    found.update(_pgbench_fields(top, planned))
    if top.has("cluster"):
        found["cluster"] = _cluster(top.opt_obj("cluster"))
    return found


def _cluster(obj: _Obj | None) -> ClusterInfo | None:
    """--cluster's section (null: a run on this machine)."""
    if obj is None:
        return None
    workers = tuple(
        ClusterWorker(
            address=w.text("address"),
            host=w.text("host"),
            clients=w.text("clients"),
            ok=w.integer("ok"),
            failed=w.integer("failed"),
            tps=w.number("tps"),
            p99_ms=w.opt_number("p99_ms"),
            client_cpu_s=w.opt_number("client_cpu_s"),
            clock_offset_ms=w.number("clock_offset_ms"),
            lost=w.flag("lost"),
        )
        for w in obj.objs("workers")
    )
    return ClusterInfo(scheduler=obj.text("scheduler"), workers=workers)


def _pgbench_fields(top: _Obj, planned: _Obj) -> dict[str, Any]:
    """Issue 12's additions: per-script figures, -M, -C and the -l files."""
    found: dict[str, Any] = {}
    if top.has("per_script"):
        found["per_script"] = tuple(_script(obj) for obj in top.objs("per_script"))
    if top.has("log_files"):
        found["log_files"] = tuple(top.texts("log_files"))
    if planned.has("query_mode"):
        found["query_mode"] = planned.text("query_mode")
    if planned.has("connect_per_transaction"):
        found["connect_per_transaction"] = planned.flag("connect_per_transaction")
    return found


def _script(obj: _Obj) -> ScriptStats:
    ok = obj.integer("ok")
    return ScriptStats(
        name=obj.text("name"),
        weight=obj.integer("weight"),
        ok=ok,
        failed=obj.integer("failed"),
        latency=_latency(obj.opt_obj("latency_ms"), ok),
        statements=tuple(obj.integers("statements")),
    )


def _errors(top: _Obj) -> dict[str, Any]:
    """``errors`` as result@2 writes it, ``{code: {count, name, example}}``,
    or as result@1 did, ``{code: count}``; the name is not read back (it is
    PostgreSQL's for the code)."""
    errors = top.obj("errors")
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    for code in errors:
        if errors.is_obj(code):
            entry = errors.obj(code)
            counts[code] = entry.integer("count")
            if (example := entry.opt_text("example")) is not None:
                examples[code] = example
        else:
            counts[code] = errors.integer(code)
    return {"errors": counts, "error_examples": examples}


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
        # files before result@2 read the whole run, and sampled no others
        window=(obj.opt_text("window") if obj.has("window") else None) or RUN,
        others=_others(obj.opt_obj("others")) if obj.has("others") else None,
    )


def _others(obj: _Obj | None) -> OtherSessions | None:
    if obj is None:
        return None
    return OtherSessions(
        samples=obj.integer("samples"),
        busy_samples=obj.integer("busy_samples"),
        max_active=obj.integer("max_active"),
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
