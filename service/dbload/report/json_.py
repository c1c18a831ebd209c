"""The JSON result file (schema ``dbload/result@2``), written atomically.

The layout is documented in README.md; change both together. @2 (from @1):
``errors`` maps each code to ``{count, name, example}`` rather than to a
count, ``latency_ms`` is null when no transaction succeeded (as is a
statement's when it never completed), and each statement has its ``count``.
The compare and capacity files hold runs in this layout, so their schema
moved to @2 with it. report/load.py reads both versions. Added within @2
(older files lack them): ``per_script`` (pgbench's per-script figures),
``log_files`` (-l) and ``planned.query_mode`` / ``connect_per_transaction``.
Changed within @2: ``driver`` is the driver's canonical name (``asyncpg``,
``sqlalchemy+asyncpg``); its label with versions is ``versions.driver``,
which older files held in ``driver`` too (report/load.py reads both).
Added within @2: ``cluster`` (--cluster: the scheduler and each Dask
worker's figures; null otherwise, and read as null from files without it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dbload.measure.comparison import Comparison
from dbload.measure.result import ClusterInfo, DatabaseInfo, Result, ScriptStats
from dbload.measure.server import ServerStats
from dbload.measure.sqlstate import condition_name
from dbload.measure.thresholds import Verdict
from dbload.report.console import measured
from dbload.report.files import write_atomically
from dbload.workload.arrivals import RateProfile

SCHEMA = "dbload/result@2"
COMPARE_SCHEMA = "dbload/compare@2"
CAPACITY_SCHEMA = "dbload/capacity@2"  # run --find-max-rate: see report/capacity.py


def to_dict(result: Result, verdicts: Sequence[Verdict] = ()) -> dict[str, Any]:
    """The result as JSON data; ``verdicts`` (of ``--threshold``) add a
    ``thresholds`` key."""
    data = _result_dict(result)
    if verdicts:
        data["thresholds"] = _verdicts(verdicts)
    return data


def _verdicts(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [
        {
            "threshold": v.threshold.text,
            "metric": v.threshold.metric,
            "limit": v.threshold.value,
            "actual": None if v.actual != v.actual else round(v.actual, 6),  # NaN: no data
            "passed": v.passed,
        }
        for v in verdicts
    ]


def _result_dict(result: Result) -> dict[str, Any]:
    lat = result.latency
    cpu = result.cpu
    return {
        "schema": SCHEMA,
        "mode": result.mode,
        "driver": result.driver,
        "workload": result.workload,
        "scripts": list(result.scripts),
        "concurrency": result.concurrency,
        "streams": result.streams or result.concurrency,
        "seed": result.seed,
        "scale": result.scale,
        "planned": {
            "transactions": result.planned_transactions,
            "duration_s": result.planned_duration_s,
            "warmup_s": result.warmup_s,
            "max_tries": result.max_tries,
            "isolation": result.isolation,
            "cpu_work_ms": result.cpu_work_ms,
            "query_mode": result.query_mode,
            "connect_per_transaction": result.connect_per_transaction,
        },
        "started_at": result.started_at,
        "duration_s": round(result.duration_s, 4),
        "interrupted": result.interrupted,
        "aborted": result.aborted,
        "incidents": list(result.incidents),
        "transactions": {
            "count": result.ok + result.failed,
            "ok": result.ok,
            "failed": result.failed,
            "retried": result.retried,
            "retries": result.retries,
            "cancelled": result.cancelled,
            "per_second": round(result.tps, 3),
            "warmup": result.warmup_transactions,
        },
        "statements": {
            "count": result.statement_count,
            "per_second": round(result.statements_per_s, 3),
            "detail": [
                {
                    "source": s.source,
                    "line": s.line,
                    "sql": s.sql,
                    "count": s.latency.count,
                    "latency_ms": _latency(s.latency) if measured(s.latency) else None,
                }
                for s in result.statements
            ],
        },
        # no successful transaction, no latency: null, not zeros to chart
        "latency_ms": _latency(lat) if result.ok else None,
        "errors": _errors(result),
        "series": [asdict(point) for point in result.series],
        "database": _database(result.database),
        "cpu": None
        if cpu is None
        else {
            "cores": cpu.cores,
            "wall_s": cpu.wall_s,
            "client_s": cpu.client_s,
            "client_pct": round(cpu.client_pct, 1),
            "server_s": cpu.server_s,
            "server_pct": None if cpu.server_pct is None else round(cpu.server_pct, 1),
            "server_note": cpu.server_note,
            "others_s": cpu.others_s,
            "others_pct": None if cpu.others_pct is None else round(cpu.others_pct, 1),
        },
        "open_loop": None
        if result.rate is None
        else {
            "rate": result.rate,
            "latency_limit_ms": result.latency_limit_ms,
            "skipped": result.skipped,
            "late": result.late,
            "lag_ms": None if result.lag is None else _latency(result.lag),
            "stages": None if result.stages is None else _stages(result.stages),
        },
        "histogram": {"unit": "us", "encoding": "HdrHistogram-V2-base64", "data": result.histogram},
        "versions": dict(result.versions),  # a copy: the data may be edited, the result not
        "server": None if result.server is None else _server(result.server),
        "per_script": [_script(result, s) for s in result.per_script],
        "log_files": list(result.log_files),
        "cluster": None if result.cluster is None else _cluster(result.cluster),
    }


def _cluster(cluster: ClusterInfo) -> dict[str, Any]:
    """--cluster: the scheduler, and each Dask worker's share as it measured it."""
    return {
        "scheduler": cluster.scheduler,
        "workers": [
            {
                "address": w.address,
                "host": w.host,
                "clients": w.clients,
                "ok": w.ok,
                "failed": w.failed,
                "tps": round(w.tps, 3),
                "p99_ms": None if w.p99_ms is None else round(w.p99_ms, 4),
                "client_cpu_s": None if w.client_cpu_s is None else round(w.client_cpu_s, 4),
                "clock_offset_ms": round(w.clock_offset_ms, 4),
                "lost": w.lost,
            }
            for w in cluster.workers
        ],
    }


def _script(result: Result, stat: ScriptStats) -> dict[str, Any]:
    """One script's figures (pgbench's per-script report); ``statements``
    index ``statements.detail``."""
    total_weight = sum(s.weight for s in result.per_script) or 1
    return {
        "name": stat.name,
        "weight": stat.weight,
        "weight_share": round(stat.weight / total_weight, 6),
        "count": stat.transactions,
        "ok": stat.ok,
        "failed": stat.failed,
        "per_second": round(stat.ok / result.duration_s, 3) if result.duration_s > 0 else 0.0,
        "latency_ms": _latency(stat.latency) if stat.ok else None,
        "statements": list(stat.statements),
    }


def _database(info: DatabaseInfo) -> dict[str, Any]:
    """kind, url, server_version; on a ``compare --servers`` axis also the
    entry (``server``), ``image`` and ``settings``: files of one server keep
    their layout."""
    data = asdict(info)
    if not info.server:
        for name in ("server", "image", "settings"):
            data.pop(name, None)
    return data


def _errors(result: Result) -> dict[str, dict[str, Any]]:
    """``{code: {count, name, example}}``: the name from PostgreSQL's table
    (see measure/sqlstate.py), the first message seen (null: none kept)."""
    return {
        code: {
            "count": count,
            "name": condition_name(code),
            "example": result.error_examples.get(code),
        }
        for code, count in sorted(result.errors.items())
    }


def _latency(lat: Any) -> dict[str, float]:
    return {
        "mean": lat.mean,
        "stddev": lat.stddev,
        "min": lat.min,
        "p50": lat.p50,
        "p90": lat.p90,
        "p99": lat.p99,
        "p99_9": lat.p99_9,
        "max": lat.max,
    }


def json_text(data: dict[str, Any]) -> str:
    """``data`` as the indented JSON every dbload file holds."""
    return json.dumps(data, indent=2) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically (see :func:`write_atomically`)."""
    write_atomically(path, json_text(data).encode("utf-8"))


def compare_to_dict(
    comparison: Comparison, verdicts: Sequence[Sequence[Verdict]] = ()
) -> dict[str, Any]:
    """``dbload compare``'s results.json: every run, each in the result@2
    layout; ``verdicts[i]`` (compare --threshold) are run i's."""
    cells = list(verdicts) or [()] * len(comparison.results)
    data: dict[str, Any] = {
        "schema": COMPARE_SCHEMA,
        "workload": comparison.workload,
        "created_at": comparison.created_at,
        "runs": [to_dict(r, v) for r, v in zip(comparison.results, cells, strict=True)],
    }
    listed = _servers(comparison.results)
    if listed:  # compare --servers; each run's "database" names its own
        data["servers"] = listed
    return data


def _servers(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Each ``--servers`` entry once, in run order, with what it is."""
    seen: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.database.server and r.database.server not in seen:
            seen[r.database.server] = _database(r.database)
    return [{"name": name, **info} for name, info in seen.items()]


def write_compare_json(path: Path, comparison: Comparison) -> None:
    """Write :func:`compare_to_dict` atomically (see :func:`write_json`)."""
    write_json(path, compare_to_dict(comparison))


def _stages(profile: RateProfile) -> dict[str, Any]:
    """--stages: the rate at the start, then each stage's length and target."""
    return {
        "start_rate": profile.start,
        "stages": [{"duration_s": s.duration_s, "target": s.target} for s in profile.stages],
    }


def _server(server: ServerStats) -> dict[str, Any]:
    """The server-side view: pg_stat_database and pg_stat_statements deltas."""
    db = server.database
    return {
        "database": None
        if db is None
        else {
            **asdict(db),
            "cache_hit_ratio": None if db.cache_hit_ratio is None else round(db.cache_hit_ratio, 6),
        },
        "database_skipped": server.database_skipped,
        "statements": [
            {
                "query": s.query,
                "calls": s.calls,
                "total_ms": round(s.total_ms, 4),
                "mean_ms": round(s.mean_ms, 4),
                "rows": s.rows,
            }
            for s in server.statements
        ],
        "statements_skipped": server.statements_skipped,
        "window": server.window,
        "others": None if server.others is None else asdict(server.others),
    }
