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
from dbload.report.load import load_result


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


# -- several scripts: pgbench's per-script figures ------------------------------------


@pytest.fixture(scope="module")
def two_scripts(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    folder = tmp_path_factory.mktemp("scripts")
    fast, slow = folder / "fast.sql", folder / "slow.sql"
    fast.write_text("SELECT 1;\n")
    slow.write_text("\\set x random(0, 3)\nSELECT 1 / :x;\nSELECT pg_sleep(0.002);\n")
    options = prepare_options(
        files=[f"{fast}@3", f"{slow}@1"], mode="threads", concurrency=2,
        transactions_per_client=100, seed=9,
    )  # fmt: skip
    return run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)


def test_per_script_figures_add_up(two_scripts: Result) -> None:
    fast, slow = two_scripts.per_script
    assert [s.weight for s in two_scripts.per_script] == [3, 1]
    assert fast.transactions + slow.transactions == two_scripts.ok + two_scripts.failed == 200
    assert fast.ok + slow.ok == two_scripts.ok and fast.failed + slow.failed == two_scripts.failed
    assert fast.transactions > slow.transactions > 0  # weights 3:1, roughly
    assert fast.failed == 0 and slow.failed > 0  # 1 / 0 a quarter of the time
    assert slow.latency.p50 > fast.latency.p50  # the sleep
    assert [two_scripts.statements[i].source.endswith("slow.sql") for i in slow.statements] == [
        True,
        True,
    ]


def test_per_script_json_and_console(two_scripts: Result, tmp_path: Path) -> None:
    data = json.loads(json.dumps(to_dict(two_scripts)))
    per_script = data["per_script"]
    assert [s["weight_share"] for s in per_script] == [0.75, 0.25]
    assert sum(s["count"] for s in per_script) == data["transactions"]["count"]
    assert per_script[1]["statements"] == [1, 2]
    assert set(per_script[0]) == {
        "name", "weight", "weight_share", "count", "ok", "failed", "per_second", "latency_ms",
        "statements",
    }  # fmt: skip
    console = Console(record=True, width=160)
    console.print(render(two_scripts))
    text = console.export_text()
    assert "per script" in text and "3 (75.0 %)" in text and "1 (25.0 %)" in text
    # the saved file reads back with its per-script figures
    target = tmp_path / "two.json"
    write_json(target, to_dict(two_scripts))
    loaded = load_result(target)
    assert [(s.name, s.ok, s.failed, s.statements) for s in loaded.per_script] == [
        (s.name, s.ok, s.failed, s.statements) for s in two_scripts.per_script
    ]


def test_one_script_has_no_per_script_section(result: Result) -> None:
    console = Console(record=True, width=160)
    console.print(render(result))
    assert "per script" not in console.export_text()
    assert len(result.per_script) == 1 and result.per_script[0].transactions == 50


def test_a_file_without_per_script_figures_still_loads(result: Result, tmp_path: Path) -> None:
    data = to_dict(result)
    for key in ("per_script", "log_files"):
        del data[key]
    for key in ("query_mode", "connect_per_transaction"):
        del data["planned"][key]
    target = tmp_path / "old.json"
    target.write_text(json.dumps(data))
    loaded = load_result(target)
    assert loaded.per_script == () and loaded.query_mode == "prepared"
