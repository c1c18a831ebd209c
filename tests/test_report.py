"""The JSON result file and the terminal report, from a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.errors import DbloadError
from dbload.measure.histogram import decode
from dbload.measure.result import Result
from dbload.report.console import render
from dbload.report.json_ import SCHEMA, to_dict, write_json


@pytest.fixture(scope="module")
def result(seeded_dsn: str) -> Result:
    options = prepare_options(
        workload="select", mode="async", concurrency=2, transactions=50, seed=5
    )
    return run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)


def test_json_has_the_documented_schema(result: Result) -> None:
    data = json.loads(json.dumps(to_dict(result)))
    assert data["schema"] == SCHEMA == "dbload/result@2"
    for key in (
        "mode",
        "workload",
        "concurrency",
        "started_at",
        "duration_s",
        "interrupted",
        "transactions",
        "statements",
        "latency_ms",
        "errors",
        "series",
        "database",
        "cpu",
        "histogram",
        "versions",
        "seed",
        "scale",
    ):
        assert key in data, key
    assert data["mode"] == "async" and data["concurrency"] == 2 and data["seed"] == 5
    assert data["interrupted"] is False
    assert set(data["transactions"]) >= {"count", "failed", "per_second"}
    assert data["transactions"]["count"] == 50
    assert set(data["statements"]) >= {"count", "per_second"}
    assert set(data["latency_ms"]) == {"mean", "stddev", "min", "p50", "p90", "p99", "p99_9", "max"}
    assert all(set(p) == {"t", "transactions", "errors", "p99_ms"} for p in data["series"])
    assert set(data["database"]) == {"kind", "url", "server_version"}
    assert data["versions"]["dbload"]
    # the histogram decodes to the same count
    assert decode(data["histogram"]["data"]).get_total_count() == 50


def test_write_json_is_atomic_and_leaves_no_temp_file(result: Result, tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_json(target, to_dict(result))
    write_json(target, to_dict(result))  # overwrite in place
    assert json.loads(target.read_text())["schema"] == SCHEMA
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_write_json_into_missing_directory_is_a_clear_error(result: Result, tmp_path: Path) -> None:
    with pytest.raises(DbloadError, match="cannot write"):
        write_json(tmp_path / "missing" / "run.json", to_dict(result))


def test_console_report_shows_every_figure(result: Result) -> None:
    console = Console(record=True, width=160)
    console.print(render(result))
    text = console.export_text()
    for needle in (
        "async",
        "select",
        "tps",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors",
        "cpu",
        "client",
    ):
        assert needle in text, needle
    assert f"{result.ok:,} ok" in text
    assert "pgbench_accounts" in text and "per statement" in text


def test_a_script_of_many_statements_shows_the_slowest_and_says_so(
    seeded_dsn: str, tmp_path: Path
) -> None:
    from dbload.api import prepare_options, run_on
    from dbload.database.resolve import Database
    from dbload.report.console import MAX_STATEMENT_ROWS, statements_table

    script = tmp_path / "many.sql"
    script.write_text("".join(f"SELECT {i};\n" for i in range(60)) + "SELECT pg_sleep(0.01);\n")
    options = prepare_options(mode="sequential", files=[str(script)], transactions=2)
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)
    table = statements_table(result)
    assert table.row_count == MAX_STATEMENT_ROWS
    assert "slowest in total of 61" in str(table.title)
    wheres = list(table.columns[0].cells)
    assert f"{script}:61" in wheres  # the pg_sleep, by far the slowest
    assert len(result.statements) == 61  # the result keeps them all
