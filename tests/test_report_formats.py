"""How a run reads: failures, error names, dbload report's files, 80
columns and pipes, progress, the summary line, JUnit and CSV. Real runs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import psycopg.errors
import pytest
from rich.console import Console

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.measure.comparison import Comparison
from dbload.measure.recorder import Recorder
from dbload.measure.result import Result
from dbload.measure.sqlstate import CLIENT_ERROR, SCRIPT, condition_name
from dbload.measure.thresholds import judge, parse_threshold
from dbload.report import progress
from dbload.report.compare_console import print_comparison, print_diff, print_report
from dbload.report.console import make_console, outcome, print_run, render, summary_line
from dbload.report.csv_ import compare_series_csv, series_csv
from dbload.report.json_ import to_dict, write_compare_json, write_json
from dbload.report.junit import RUN_SUCCEEDED, junit_compare, junit_run
from dbload.report.load import load_result, load_saved

DATA = Path(__file__).parent / "data" / "report"


def _run(dsn: str, script: Path, transactions: int, mode: str = "async") -> Result:
    options = prepare_options(
        mode=mode, concurrency=2, transactions=transactions, seed=3, files=[str(script)]
    )
    return run_on(Database(kind="dsn", dsn=dsn), 1, options)


@pytest.fixture(scope="module")
def all_failed(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    script = tmp_path_factory.mktemp("scripts") / "div0.sql"
    script.write_text("SELECT 1/0;\n")
    return _run(seeded_dsn, script, 200)


@pytest.fixture(scope="module")
def some_failed(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Result:
    script = tmp_path_factory.mktemp("scripts") / "some.sql"
    script.write_text("\\set x random(0, 3)\nSELECT 1/:x;\n")
    return _run(seeded_dsn, script, 400, mode="threads")


def _text(*print_calls: Callable[[Console], None], width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    for call in print_calls:
        call(console)
    return console.export_text()


# -- 1. a run where nothing succeeded; a run where some failed ----------------


def test_a_run_where_everything_failed_shows_no_latency(all_failed: Result) -> None:
    assert all_failed.ok == 0 and all_failed.failed == 200
    text = _text(lambda c: c.print(render(all_failed)))
    latency = next(line for line in text.splitlines() if line.startswith("latency"))
    assert "n/a" in latency and "0.000" not in latency
    statement = next(
        line
        for line in text.splitlines()
        if "div0.sql:1" in line and "division" not in line  # not the errors' lines
    )
    assert "n/a" in statement and "0.000" not in statement
    assert "no transaction succeeded: 22012 division_by_zero x 200 — " in text
    assert "div0.sql:1: ERROR: division by zero" in text
    data = to_dict(all_failed)
    assert data["latency_ms"] is None and data["transactions"]["per_second"] == 0
    assert data["statements"]["detail"][0]["latency_ms"] is None
    found = outcome(all_failed)
    assert found is not None and found.level == "error"
    assert found.message.startswith("no transaction succeeded: 22012 division_by_zero x 200")


def test_a_run_with_some_failures_warns(some_failed: Result) -> None:
    done = some_failed.ok + some_failed.failed
    assert 0 < some_failed.failed < done
    found = outcome(some_failed)
    assert found is not None and found.level == "warning"
    share = 100 * some_failed.failed / done
    assert (
        found.message == f"{some_failed.failed:,} of {done:,} transactions failed ({share:.1f} %)"
    )
    assert f"warning: {found.message}" in _text(lambda c: c.print(render(some_failed)))


def test_a_clean_run_has_no_outcome_to_report(small_comparison: Comparison) -> None:
    assert outcome(small_comparison.results[0]) is None


def test_all_failed_survives_the_json_round_trip(all_failed: Result, tmp_path: Path) -> None:
    path = tmp_path / "failed.json"
    write_json(path, to_dict(all_failed))
    loaded = load_result(path)
    assert to_dict(loaded) == json.loads(path.read_text())
    assert "n/a" in _text(lambda c: c.print(render(loaded)))


# -- 2. errors named by PostgreSQL's table, with an example -------------------


def test_every_sqlstate_psycopg_knows_is_named() -> None:
    classes = [
        cls
        for cls in vars(psycopg.errors).values()
        if isinstance(cls, type)
        and issubclass(cls, psycopg.errors.Error)
        and isinstance(getattr(cls, "sqlstate", None), str)
    ]
    assert len(classes) > 200
    for cls in classes:
        name = condition_name(cls.sqlstate)
        assert re.fullmatch(r"[a-z0-9_]+", name), (cls.sqlstate, name)
        # psycopg resolves the condition name too; a name PostgreSQL gives
        # two codes (22004, 39004) resolves to one of them
        assert psycopg.errors.lookup(name).__name__.rstrip("_").removesuffix("Ext") == (
            cls.__name__.rstrip("_").removesuffix("Ext")
        ), cls.sqlstate


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("22012", "division_by_zero"),
        ("57014", "query_canceled"),
        ("40P01", "deadlock_detected"),
        ("42P01", "undefined_table"),
        ("08006", "connection_failure"),
        ("22024", "unterminated_c_string"),
        ("22037", "non_unique_keys_in_a_json_object"),
        ("22004", "null_value_not_allowed"),
        ("39004", "null_value_not_allowed"),
        ("38002", "modifying_sql_data_not_permitted"),
        ("XX000", "internal_error"),
        ("22ZZZ", "data_exception (class 22)"),
        (SCRIPT, "script_error"),
        ("InterfaceError", CLIENT_ERROR),
    ],
)
def test_condition_names(code: str, name: str) -> None:
    assert condition_name(code) == name


def test_errors_are_named_and_explained(some_failed: Result) -> None:
    text = _text(lambda c: c.print(render(some_failed)))
    # the example names the statement that failed, by file and line
    assert f"22012 division_by_zero x {some_failed.failed:,} — " in text
    assert "some.sql:2: division by zero" in text
    errors = to_dict(some_failed)["errors"]
    assert errors.keys() == {"22012"}
    assert errors["22012"]["count"] == some_failed.failed
    assert errors["22012"]["name"] == "division_by_zero"
    assert errors["22012"]["example"].endswith("some.sql:2: division by zero")


def test_files_of_the_previous_schema_still_load() -> None:
    """tests/data/report/*_v1.json were written by dbload before result@2."""
    old = load_result(DATA / "result_v1.json")
    assert old.errors == {"22012": 86} and old.error_examples == {}
    assert to_dict(old)["errors"]["22012"] == {
        "count": 86,
        "name": "division_by_zero",
        "example": None,
    }
    assert "22012 division_by_zero x 86" in _text(lambda c: c.print(render(old)))
    assert len(load_saved(DATA / "compare_v1.json").results) == 5
    assert load_saved(DATA / "capacity_v1.json").capacity is not None


# -- 3. dbload report: one run, a capacity walk, different workloads ----------


def test_report_of_one_run_is_that_runs_report() -> None:
    text = _text(lambda c: print_report(c, [load_saved(DATA / "result_v1.json")]))
    assert "latency (ms)" in text and "per statement" in text
    assert "runs compared with run 1" not in text
    assert text.rstrip().splitlines()[-1].startswith("mode=async c=2 tps=")


def test_report_of_a_capacity_file_is_its_walk() -> None:
    text = _text(lambda c: print_report(c, [load_saved(DATA / "capacity_v1.json")]))
    assert "find-max-rate: p99<5ms" in text
    assert "max rate meeting p99<5ms: 13,031 tps" in text
    assert "fail p99<5ms, behind" in text
    assert "async c=2" not in text  # not a table of runs


def test_report_warns_when_the_workloads_differ() -> None:
    files = [load_saved(DATA / "compare_v1.json"), load_saved(DATA / "result_v1.json")]
    text = _text(lambda c: print_report(c, files))
    assert "warning: these runs ran different workloads" in text
    assert "select (select@1) in compare_v1.json" in text
    assert "some (some.sql@1) in result_v1.json" in text


def test_report_of_runs_of_one_workload_does_not_warn(
    small_comparison: Comparison, tmp_path: Path
) -> None:
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        write_compare_json(path, small_comparison)
    text = _text(lambda c: print_report(c, [load_saved(p) for p in paths]))
    assert "warning" not in text and "runs compared with run 1" in text


# -- 4. 80 columns, pipes -----------------------------------------------------


def test_compare_fits_80_columns(small_comparison: Comparison) -> None:
    text = _text(lambda c: print_comparison(c, small_comparison), width=80)
    assert "…" not in text
    # the summary lines are for scripts: one line each, the terminal wraps them
    table = [line for line in text.splitlines() if not line.startswith("mode=")]
    assert max(len(line) for line in table) <= 80
    for result in small_comparison.results:
        assert f"{result.latency.p99:,.3f}" in text  # every figure in full
    assert "1.00\u00d7" in text and "client " in text
    names = [f"run{i}.json" for i in range(len(small_comparison.results))]
    diff = _text(lambda c: print_diff(c, small_comparison.results, names), width=80)
    assert "…" not in diff and max(len(line) for line in diff.splitlines()) <= 80


def test_piped_output_is_not_wrapped_nor_padded(
    small_comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    result = small_comparison.results[1]
    file = io.StringIO()
    console = make_console(file=file)
    print_run(console, result)
    print_comparison(console, small_comparison)
    lines = file.getvalue().splitlines()
    assert [line for line in lines if line != line.rstrip()] == []
    database = next(line for line in lines if line.startswith("database"))
    assert result.database.url in database and result.database.server_version in database
    assert any(line.startswith("mode=threads c=4 tps=") for line in lines)


# -- 5. progress --------------------------------------------------------------


def _recorder() -> Recorder:
    recorder = Recorder(0)
    recorder.begin()
    return recorder


def _until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (bounded, so a bug fails rather than hangs)."""
    for _ in range(200):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize(
    ("planned", "needle"),
    [
        (progress.Planned(duration_s=10), " / 10 s"),
        (progress.Planned(transactions=4000), " / 4,000 txns"),
    ],
)
def test_progress_shows_how_far_of_the_plan(planned: progress.Planned, needle: str) -> None:
    file = io.StringIO()
    console = Console(file=file, width=200)
    with progress.plain(console, _recorder().snapshot, "async c=1", 0.05, planned):
        _until(lambda: "progress:" in file.getvalue())
    assert needle in file.getvalue().splitlines()[0]


@pytest.mark.slow
def test_live_line_ends_with_a_newline() -> None:
    file = io.StringIO()
    console = Console(file=file, width=200, force_terminal=True)
    with progress.live(console, _recorder().snapshot, "async c=1", progress.Planned(duration_s=5)):
        _until(lambda: " / 5 s" in file.getvalue())
    console.print("next message")
    out = re.sub(r"\x1b\[\?25[hl]", "", file.getvalue())
    before = out[: out.rindex("next message")]
    assert before.endswith("\n")  # the message starts a line of its own
    last = before.rstrip("\n").rsplit("\n", 1)[-1]
    assert " / 5 s" in last and "tps" in last  # and the last status stays


def test_one_client_is_singular(small_comparison: Comparison) -> None:
    sequential = small_comparison.results[0]
    assert sequential.concurrency == 1
    text = _text(lambda c: c.print(render(sequential)))
    assert "1 client ·" in text and "1 clients" not in text


# -- 6. the summary line ------------------------------------------------------


def _fields(line: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in line.split(" ")]
    assert all(len(pair) == 2 for pair in pairs), line
    return {key: value for key, value in pairs}


def test_summary_line_is_key_value_without_units(some_failed: Result, all_failed: Result) -> None:
    fields = _fields(summary_line(some_failed))
    assert list(fields)[:2] == ["mode", "c"] and fields["mode"] == "threads"
    assert {"tps", "p50_ms", "p99_ms", "max_ms", "ok", "failed", "duration_s"} <= set(fields)
    numbers = {k: float(v) for k, v in fields.items() if k != "mode"}  # all parse
    assert numbers["failed"] == some_failed.failed and numbers["p99_ms"] == some_failed.latency.p99
    failed = _fields(summary_line(all_failed))
    assert failed["tps"] == "0.000" and failed["p99_ms"] == "nan" and failed["ok"] == "0"


def test_run_and_compare_output_end_with_summary_lines(small_comparison: Comparison) -> None:
    run = _text(lambda c: print_run(c, small_comparison.results[0]))
    assert run.rstrip().splitlines()[-1] == summary_line(small_comparison.results[0])
    compared = _text(lambda c: print_comparison(c, small_comparison))
    tail = compared.rstrip().splitlines()[-len(small_comparison.results) :]
    assert tail == [summary_line(r) for r in small_comparison.results]
    assert [line.split(" ")[:2] for line in tail] == [
        ["mode=sequential", "c=1"],
        ["mode=threads", "c=4"],
        ["mode=async", "c=2"],
        ["mode=async", "c=4"],
    ]


# -- 7. JUnit XML and CSV -----------------------------------------------------


def _suites(xml: str) -> list[ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert int(root.get("tests", "")) == sum(int(s.get("tests", "")) for s in suites)
    assert int(root.get("failures", "")) == sum(int(s.get("failures", "")) for s in suites)
    for suite in suites:
        for attribute in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname"):
            assert suite.get(attribute) is not None, attribute
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp", ""))
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(
            1 for c in cases if c.find("failure") is not None
        )
        for case in cases:
            assert case.get("name") and case.get("classname") and case.get("time") is not None
            float(case.get("time", ""))
    return suites


def test_junit_has_a_case_per_threshold(small_comparison: Comparison) -> None:
    result = small_comparison.results[1]
    # thresholds on the error count alone, whose verdicts no timing can
    # change: a select run has no error, so the first holds and the second fails
    assert result.failed == 0
    verdicts = judge((parse_threshold("errors<=0"), parse_threshold("errors>=1")), result)
    (suite,) = _suites(junit_run(result, verdicts))
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == [RUN_SUCCEEDED, "errors<=0", "errors>=1"]
    assert cases[RUN_SUCCEEDED].find("failure") is None
    assert cases["errors<=0"].find("failure") is None
    failure = cases["errors>=1"].find("failure")
    assert failure is not None and failure.get("type") == "threshold"
    assert failure.get("message") == verdicts[1].describe()
    assert "observed 0" in (failure.text or "")
    assert suite.findtext("system-out") == summary_line(result)


def test_junit_of_a_run_where_nothing_succeeded(all_failed: Result) -> None:
    verdicts = judge((parse_threshold("p99<10ms"),), all_failed)
    (suite,) = _suites(junit_run(all_failed, verdicts))
    failures = [case.find("failure") for case in suite.findall("testcase")]
    assert all(f is not None for f in failures) and suite.get("failures") == "2"
    assert "no transaction succeeded: 22012 division_by_zero" in (failures[0].get("message") or "")  # type: ignore[union-attr]
    assert "no successful transaction" in (failures[1].text or "")  # type: ignore[union-attr]


def test_junit_of_a_comparison_has_a_suite_per_cell(small_comparison: Comparison) -> None:
    suites = _suites(junit_compare(small_comparison))
    assert [s.get("name") for s in suites] == [
        "dbload select: sequential c=1",
        "dbload select: threads c=4",
        "dbload select: async c=2",
        "dbload select: async c=4",
    ]
    classnames = {case.get("classname") for s in suites for case in s.findall("testcase")}
    assert len(classnames) == 4  # a dashboard tells the cells apart


def test_csv_holds_the_per_second_series(some_failed: Result, small_comparison: Comparison) -> None:
    rows = list(csv.DictReader(io.StringIO(series_csv(some_failed))))
    assert rows and list(rows[0]) == ["t", "transactions", "tps", "errors", "p99_ms"]
    assert sum(int(r["transactions"]) for r in rows) == some_failed.ok + some_failed.failed
    assert sum(int(r["errors"]) for r in rows) == some_failed.failed
    assert [float(r["t"]) for r in rows] == [p.t for p in some_failed.series]
    compared = list(csv.DictReader(io.StringIO(compare_series_csv(small_comparison))))
    assert list(compared[0])[:2] == ["mode", "concurrency"]
    cells = {(r["mode"], r["concurrency"]) for r in compared}
    assert cells == {(r.mode, str(r.concurrency)) for r in small_comparison.results}
    assert len(compared) == sum(len(r.series) for r in small_comparison.results)


# -- 7. the driver: its name in the figures, its label in the report ----------


def test_a_run_report_shows_the_drivers_version_label(drivers_comparison: Comparison) -> None:
    for result in drivers_comparison.results:
        label = result.versions["driver"]
        text = _text(lambda c, r=result: c.print(render(r)))
        # the label names the library (psycopg 3.x ..., asyncpg 0.x + uvloop)
        expected = label if label.split()[0] == result.driver else f"{result.driver}: {label}"
        assert re.search(rf"^mode +{result.mode} \({re.escape(expected)}\)$", text, re.M), text


def test_a_label_of_another_library_is_shown_after_the_name(small_comparison: Comparison) -> None:
    orm = dataclasses.replace(
        small_comparison.results[2],
        driver="sqlalchemy+asyncpg",
        versions={**small_comparison.results[2].versions, "driver": "SQLAlchemy 2.0 on asyncpg"},
    )
    text = _text(lambda c: c.print(render(orm)))
    assert "async (sqlalchemy+asyncpg: SQLAlchemy 2.0 on asyncpg)" in text


def test_junit_names_the_driver_of_each_cell(drivers_comparison: Comparison) -> None:
    suites = _suites(junit_compare(drivers_comparison))
    assert [s.get("name") for s in suites] == [
        "dbload select: sequential psycopg c=1", "dbload select: threads psycopg c=2",
        "dbload select: async psycopg c=2", "dbload select: async asyncpg c=2",
    ]  # fmt: skip
    classnames = {case.get("classname") for s in suites for case in s.findall("testcase")}
    assert "dbload.select.async_psycopg_c2" in classnames and len(classnames) == 4
    for suite, result in zip(suites, drivers_comparison.results, strict=True):
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["driver"] == result.driver
        assert props["driver_version"] == result.versions["driver"]
