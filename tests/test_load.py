"""Reading saved results back (``dbload report``): round trip and bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.result import Result
from dbload.report.json_ import (
    COMPARE_SCHEMA,
    compare_to_dict,
    to_dict,
    write_compare_json,
    write_json,
)
from dbload.report.load import load_any, load_comparison, load_result


def _saved(tmp_path: Path, result: Result, name: str = "run.json") -> Path:
    path = tmp_path / name
    write_json(path, to_dict(result))
    return path


def _error(path: Path) -> str:
    with pytest.raises(UsageError) as info:
        load_any(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("report: "), message
    assert info.value.exit_code == 2
    return message


def test_round_trip_is_identical(small_comparison: Comparison, tmp_path: Path) -> None:
    for i, result in enumerate(small_comparison.results):
        original = json.loads(json.dumps(to_dict(result)))
        loaded = load_result(_saved(tmp_path, result, f"run{i}.json"))
        assert to_dict(loaded) == original
        assert loaded.tps == pytest.approx(result.tps, rel=1e-6)
        assert loaded.latency == result.latency  # count comes from the histogram
        assert loaded.series == result.series and loaded.cpu == result.cpu


def test_compare_file_round_trip(small_comparison: Comparison, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_compare_json(path, small_comparison)
    data = json.loads(path.read_text())
    assert data["schema"] == COMPARE_SCHEMA == "dbload/compare@2"
    assert set(data) == {"schema", "workload", "created_at", "runs"}
    runs = load_any(path)
    assert [to_dict(r) for r in runs] == data["runs"]
    again = load_comparison(path)
    assert again.workload == small_comparison.workload
    assert again.created_at == small_comparison.created_at
    assert compare_to_dict(again) == data


def test_a_single_result_loads_as_a_list_and_as_a_comparison(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    path = _saved(tmp_path, small_comparison.results[0])
    assert len(load_any(path)) == 1
    assert load_comparison(path).results[0].mode == "sequential"


def test_load_result_refuses_a_compare_file(small_comparison: Comparison, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_compare_json(path, small_comparison)
    with pytest.raises(UsageError, match="several runs"):
        load_result(path)


def test_older_files_without_later_fields_still_load(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    data = to_dict(small_comparison.results[0])
    for key in ("retried", "retries", "cancelled"):
        data["transactions"].pop(key, None)
    for key in ("max_tries", "isolation", "cpu_work_ms"):
        data["planned"].pop(key, None)
    data.pop("incidents", None)
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    loaded = load_result(path)
    assert loaded.retried == 0 and loaded.max_tries == 1 and loaded.isolation is None
    assert getattr(loaded, "incidents", ()) == ()


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "nope.json") == f"report: {tmp_path / 'nope.json'} does not exist"


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in _error(tmp_path)


def test_truncated_file_names_line_and_column(small_comparison: Comparison, tmp_path: Path) -> None:
    path = _saved(tmp_path, small_comparison.results[0])
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    message = _error(path)
    assert message.startswith(f"report: {path} is not valid JSON (line ")
    assert ", column " in message


@pytest.mark.parametrize(
    "content",
    [b"", b"not json at all", b"{'schema': 'dbload/result@1'}", b"\xff\xfe\x00garbage\x80"],
)
def test_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "A.json"
    path.write_bytes(content)
    assert "is not valid JSON" in _error(path)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"name": "left-pad", "version": "1.3.0"}, "(no schema field)"),
        ([1, 2, 3], "(no schema field)"),
        ({"schema": "k6/summary@2"}, "(schema 'k6/summary@2')"),
        ("dbload/result@1", "(no schema field)"),
    ],
)
def test_foreign_json(tmp_path: Path, data: Any, expected: str) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(data))
    message = _error(path)
    assert message == f"report: {path} is not a dbload result {expected}"


def _break(data: dict[str, Any], dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    if value is KeyError:
        del data[leaf]
    else:
        data[leaf] = value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms.p99", KeyError),
        ("mode", KeyError),
        ("concurrency", "8"),
        ("interrupted", 1),
        ("transactions.ok", None),
        ("cpu.cores", KeyError),
        ("histogram.data", "bm90IGEgaGlzdG9ncmFt"),
        ("series", {"t": 1}),
        ("versions", {"dbload": 1}),
    ],
)
def test_missing_or_invalid_field_is_named(
    small_comparison: Comparison, tmp_path: Path, field: str, value: object
) -> None:
    data = to_dict(small_comparison.results[1])
    assert data["cpu"] is not None
    _break(data, field, value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    message = _error(path)
    assert message == (
        f"report: {path} is not a dbload result (schema dbload/result@2):"
        f" field {field} is missing or invalid"
    )


def test_compare_file_without_runs(small_comparison: Comparison, tmp_path: Path) -> None:
    data = compare_to_dict(small_comparison)
    data["runs"] = []
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert _error(path).endswith("field runs is missing or invalid")


def test_bad_run_inside_a_compare_file_is_named(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    data = compare_to_dict(small_comparison)
    del data["runs"][2]["statements"]["detail"][0]["sql"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert _error(path).endswith(
        "(schema dbload/compare@2): field runs[2].statements.detail[0].sql is missing or invalid"
    )


# -- the driver: its canonical name, and the label of older files --------------

DATA = Path(__file__).parent / "data" / "report"


def test_a_comparison_of_two_drivers_round_trips(
    drivers_comparison: Comparison, tmp_path: Path
) -> None:
    path = tmp_path / "results.json"
    write_compare_json(path, drivers_comparison)
    data = json.loads(path.read_text())
    assert [r["driver"] for r in data["runs"]] == ["psycopg", "psycopg", "psycopg", "asyncpg"]
    again = load_comparison(path)
    assert [(r.mode, r.driver) for r in again.results] == [
        (r.mode, r.driver) for r in drivers_comparison.results
    ]
    assert [r.driver_label for r in again.results] == [
        r.versions["driver"] for r in drivers_comparison.results
    ]
    assert compare_to_dict(again) == data


def test_older_files_name_the_driver_by_its_label() -> None:
    """Files before the driver axis held the executor's label in "driver"
    (versions.driver too): the name is its first word, the label stays."""
    old = load_comparison(DATA / "compare_v1.json")
    assert [(r.mode, r.driver) for r in old.results] == [
        ("sequential", "psycopg"), ("threads", "psycopg"), ("async", "asyncpg"),
        ("threads", "psycopg"), ("async", "asyncpg"),
    ]  # fmt: skip
    assert old.results[2].driver_label == "asyncpg 0.32.0 + uvloop"
    assert old.results[1].driver_label == "psycopg 3.3.9 + psycopg_pool"


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("asyncpg 0.30.0 + uvloop", "asyncpg"),
        ("psycopg 3.2.1 + psycopg_pool", "psycopg"),
        ("asyncpg 0.30.0 + uvloop \u00d7 4 processes", "asyncpg"),
    ],
)
def test_a_label_without_versions_driver_is_kept_as_the_label(
    small_comparison: Comparison, tmp_path: Path, label: str, name: str
) -> None:
    data = to_dict(small_comparison.results[0])
    data["driver"] = label
    data["versions"].pop("driver")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    loaded = load_result(path)
    assert (loaded.driver, loaded.driver_label) == (name, label)
    assert to_dict(loaded)["driver"] == name and to_dict(loaded)["versions"]["driver"] == label
