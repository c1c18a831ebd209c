"""What ``dbload serve`` accepts before any database is touched: its
options (targets, bind address, token) and the run requests' checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dbload.api import Options
from dbload.errors import DbloadError, UsageError
from dbload.serve import runs as runs_module
from dbload.serve.app import strict_json
from dbload.serve.config import TargetSpec, check_bind, is_loopback, parse_targets
from dbload.serve.live import Point
from dbload.serve.request import OPTION_FIELDS, RunRequest, check_request, workloads
from dbload.serve.store import valid_id


def test_targets_are_name_equals_dsn_and_default_to_the_resolved_one() -> None:
    assert parse_targets([]) == (TargetSpec("default"),)
    assert parse_targets(["a=postgresql://h/db", "b=host=x dbname=y"]) == (
        TargetSpec("a", "postgresql://h/db"),
        TargetSpec("b", "host=x dbname=y"),
    )


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        (["nodsn"], "NAME=DSN"),
        (["a="], "NAME=DSN"),
        (["bad name=postgresql://h/db"], "a name is"),
        (["a=postgresql://h/x", "a=postgresql://h/y"], "twice"),
    ],
)
def test_a_bad_target_is_one_line(texts: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        parse_targets(texts)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com", "::"])
def test_another_host_needs_a_token(host: str) -> None:
    with pytest.raises(UsageError, match="--token"):
        check_bind(host, None)
    check_bind(host, "s3cret")


def test_a_blank_token_is_refused() -> None:
    with pytest.raises(UsageError, match="non-empty"):
        check_bind("0.0.0.0", "  ")


@pytest.mark.parametrize(
    "body",
    [
        {"dsn": "postgresql://u:secret@h/db"},
        {"DSN": "x"},
        {"target": "postgresql://u:secret@h/db"},
        {"workload": "host=h password=secret"},
        {"servers": "embedded"},
    ],
)
def test_a_request_never_carries_a_database(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        RunRequest.model_validate(body)
    assert "never carries a DSN" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"concurrency": 0},
        {"concurrency": -3},
        {"concurrency": 10**9},
        {"concurrency": [1, 0]},
        {"duration": -1},
        {"transactions": 0},
        {"unknown": 1},
    ],
)
def test_absurd_numbers_and_unknown_fields_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RunRequest.model_validate(body)


def test_the_run_options_are_the_apis_own() -> None:
    # a field the body passes on must be an Options key of the same meaning
    assert set(OPTION_FIELDS) <= set(Options.__annotations__)
    assert set(OPTION_FIELDS) <= set(RunRequest.model_fields)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"workload": "nope"}, "unknown workload 'nope'"),
        ({"workload": "../etc/passwd"}, "unknown workload"),
        ({"modes": ["warp"]}, "unknown mode 'warp'"),
        ({"mode": "warp"}, "warp"),
        ({"modes": ["async"], "drivers": ["odbc"]}, "unknown driver 'odbc'"),
        ({"mode": "async", "driver": "odbc"}, "odbc"),
        ({"mode": "async", "modes": ["async"]}, "not both"),
        ({"mode": "async", "concurrency": [1, 2]}, "sweep"),
        ({"mode": "async", "drivers": ["psycopg"]}, "drivers is the axis"),
    ],
)
def test_a_bad_run_is_refused_before_it_is_queued(body: dict[str, object], says: str) -> None:
    with pytest.raises(DbloadError, match=says) as caught:
        check_request(RunRequest.model_validate(body), "main", None)
    assert "\n" not in str(caught.value)


def test_a_comparison_lists_its_cells_as_compare_runs_them() -> None:
    job = check_request(
        RunRequest.model_validate({"modes": ["async", "sequential"], "concurrency": [2, 4]}),
        "main",
        None,
    )
    assert [(c.mode, c.concurrency) for c in job.cells] == [
        ("sequential", 4),
        ("async", 2),
        ("async", 4),
    ]
    assert job.kind == "compare" and job.sweep == (2, 4)


def test_the_workloads_folder_offers_its_scripts_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "mine.sql").write_text("SELECT 1;\n")
    (tmp_path / "notes.txt").write_text("not a workload\n")
    names = [w.name for w in workloads(tmp_path)]
    assert "mine.sql" in names and "notes.txt" not in names and "select" in names
    job = check_request(RunRequest.model_validate({"workload": "mine.sql"}), "main", tmp_path)
    assert job.files == (str(tmp_path / "mine.sql"),) and job.builtin is None


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", ".hidden", "x" * 200])
def test_a_run_id_never_names_a_path_outside_the_folder(run_id: str) -> None:
    assert not valid_id(run_id)


def test_api_json_has_no_nan() -> None:
    assert strict_json({"a": [float("nan"), 1.0, {"b": float("inf")}]}) == {
        "a": [None, 1.0, {"b": None}]
    }


def test_a_late_reader_gets_the_last_hour_then_every_new_point() -> None:
    job = check_request(RunRequest.model_validate({"mode": "async"}), "main", None)
    state = runs_module.RunState("r1", job)
    point = Point(1.0, 1.0, 1.0, 0, 1.0, None, None, None, None, None, "unknown", "")
    for _ in range(runs_module.REPLAY_POINTS + 10):
        state.add_point(0, point)
    sent = [0]
    first = state.view(sent)["cells"][0]
    assert (first["points_from"], len(first["points"])) == (10, runs_module.REPLAY_POINTS)
    state.add_point(0, point)
    again = state.view(sent)["cells"][0]
    assert (again["points_from"], len(again["points"])) == (runs_module.REPLAY_POINTS + 10, 1)
