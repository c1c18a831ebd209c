"""The public API's compare(), and the compare/report commands, on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbload.api import Cell, Observer, compare, compare_cells, run
from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.modes import MODES
from test_cli import _cli, _one_line_error

UNREACHABLE_DSN = "postgresql://nobody@127.0.0.1:1/none"


@pytest.mark.slow
def test_tiny_compare_runs_every_mode_with_one_seed(seeded_dsn: str) -> None:
    comparison = compare("select", concurrency=2, transactions=40, seed=11, dsn=seeded_dsn)
    assert [r.mode for r in comparison.results] == list(MODES)
    assert comparison.workload == "select"
    for result in comparison.results:
        assert (result.ok, result.failed, result.seed) == (40, 0, 11)
        assert result.concurrency == (1 if result.mode == "sequential" else 2)


@pytest.mark.slow
def test_concurrency_sweep_runs_sequential_once(seeded_dsn: str) -> None:
    comparison = compare(
        "select", modes=["async", "sequential"], concurrency=[1, 3], duration=0.3,
        dsn=seeded_dsn,
    )  # fmt: skip
    cells = [(r.mode, r.concurrency) for r in comparison.results]
    assert cells == [("sequential", 1), ("async", 1), ("async", 3)]
    assert len({r.seed for r in comparison.results}) == 1


def test_cpu_work_is_client_time_in_every_transaction(seeded_dsn: str) -> None:
    result = run("select", mode="async", concurrency=1, transactions=20, cpu_work=3, dsn=seeded_dsn)
    assert result.cpu_work_ms == 3
    # calibrated work of ~3 ms on a point lookup of ~0.1 ms
    assert result.latency.min >= 1.5


@pytest.mark.parametrize(
    ("modes", "sweep", "needle"),
    [
        (["async", "fibers"], [8], "--modes: unknown mode 'fibers'"),
        ([], [8], "--modes"),
        (["async"], [], "sweep is empty"),
        (["async"], [0, 2], "at least 1"),
    ],
)
def test_bad_cells_are_refused(modes: list[str], sweep: list[int], needle: str) -> None:
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        compare_cells(modes, sweep)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--modes", "async,fibers"], ["--modes", "fibers"]),
        (["--modes", ","], ["--modes"]),
        (["-c", ""], ["sweep is empty"]),
        (["-c", "1,two,4"], ["-c/--concurrency", "1,two,4"]),
        (["-c", "4,-1"], ["at least 1"]),
    ],
)
def test_compare_bad_input_is_one_line(args: list[str], needles: list[str]) -> None:
    code, _, err = _cli("compare", "--dsn", UNREACHABLE_DSN, *args)
    _one_line_error(code, err, *needles)
    assert code == 2


def test_compare_unwritable_out_fails_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    code, _, err = _cli("compare", "--dsn", UNREACHABLE_DSN, "--out", str(blocker / "sub"))
    _one_line_error(code, err, "file.txt")


@pytest.mark.slow
def test_compare_cli_writes_every_output(seeded_dsn: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = _cli(
        "compare", "--dsn", seeded_dsn, "-w", "select", "--modes", "sequential,async",
        "-c", "1,2", "-n", "60", "--seed", "3", "--out", str(out_dir),
    )  # fmt: skip
    assert code == 0, err
    assert "speedup" in out.lower()
    data = json.loads((out_dir / "results.json").read_text())
    assert data["schema"] == "dbload/compare@2"
    assert [(r["mode"], r["concurrency"]) for r in data["runs"]] == [
        ("sequential", 1), ("async", 1), ("async", 2),
    ]  # fmt: skip
    assert (out_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert list(out_dir.glob("*.png")) and list(out_dir.glob("*.svg"))

    # and the saved comparison renders again, with deltas against the first run
    code, out, err = _cli("report", str(out_dir / "results.json"))
    assert code == 0, err
    assert "%" in out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"schema": "dbload/result@1", "mode": ', "not valid JSON"),
        ("\x00\x01garbage", "not valid JSON"),
        ('{"schema": "k6/summary", "metrics": {}}', "not a dbload result"),
        ("[1, 2, 3]", "not a dbload result"),
    ],
)
def test_report_refuses_corrupt_truncated_or_foreign_json(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "A.json"
    path.write_text(content)
    code, _, err = _cli("report", str(path))
    _one_line_error(code, err, needle, "A.json")


def test_report_missing_file(tmp_path: Path) -> None:
    code, _, err = _cli("report", str(tmp_path / "nope.json"))
    _one_line_error(code, err, "nope.json")


@pytest.mark.slow
def test_package_exposes_the_api_lazily() -> None:
    """``import dbload`` loads no driver; the API appears on first use."""
    import subprocess
    import sys

    code = (
        "import sys, dbload; assert 'asyncpg' not in sys.modules and 'psycopg' not in sys.modules;"
        "from dbload import api, capacity;"
        "assert dbload.run is api.run and dbload.compare is api.compare;"
        "assert dbload.run_async is api.run_async;"
        "assert dbload.find_max_rate is capacity.find_max_rate"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("call", "keyword", "hint"),
    [
        (run, "queries", "transactions"),
        (run, "transaction", "transactions"),
        (run, "duraton", "duration"),
        (compare, "sed", "seed"),
        (run, "frobnicate", None),
    ],
)
def test_unknown_keywords_raise_at_once(call: object, keyword: str, hint: str | None) -> None:
    # the unreachable DSN proves nothing ran: the check comes first
    with pytest.raises(TypeError, match=f"unknown option '{keyword}'") as caught:
        call("select", dsn=UNREACHABLE_DSN, **{keyword: 10})  # type: ignore[operator]
    if hint is not None:
        assert f"did you mean '{hint}'" in str(caught.value)


async def test_run_async_rejects_unknown_keywords_too() -> None:
    from dbload.api import run_async

    with pytest.raises(TypeError, match="unknown option 'queries'"):
        await run_async("select", dsn=UNREACHABLE_DSN, queries=10)  # type: ignore[call-arg]


# -- the driver axis (compare --drivers) ---------------------------------------


def test_without_drivers_each_mode_runs_its_default_as_before() -> None:
    assert compare_cells(None, [2, 4]) == [
        Cell("sequential", "psycopg", 4),
        Cell("threads", "psycopg", 2), Cell("async", "asyncpg", 2),
        Cell("processes", "asyncpg", 2),
        Cell("threads", "psycopg", 4), Cell("async", "asyncpg", 4),
        Cell("processes", "asyncpg", 4),
    ]  # fmt: skip


def test_cells_of_drivers_modes_and_a_sweep() -> None:
    """Sequential once per sync driver (at the sweep's largest), then per
    concurrency each mode with each driver that fits it, in the order given;
    "sqlalchemy" is each style's own spelling, asyncpg skips the sync modes."""
    cells = compare_cells(["sequential", "threads", "async"], [1, 4], "asyncpg, psycopg,sqlalchemy")
    assert cells == [
        Cell("sequential", "psycopg", 4), Cell("sequential", "sqlalchemy+psycopg", 4),
        Cell("threads", "psycopg", 1), Cell("threads", "sqlalchemy+psycopg", 1),
        Cell("async", "asyncpg", 1), Cell("async", "psycopg", 1),
        Cell("async", "sqlalchemy+asyncpg", 1),
        Cell("threads", "psycopg", 4), Cell("threads", "sqlalchemy+psycopg", 4),
        Cell("async", "asyncpg", 4), Cell("async", "psycopg", 4),
        Cell("async", "sqlalchemy+asyncpg", 4),
    ]  # fmt: skip


def test_a_driver_named_twice_runs_once_per_mode() -> None:
    cells = compare_cells(["async"], 2, ["sqlalchemy", "sqlalchemy+asyncpg", "ASYNCPG"])
    assert cells == [Cell("async", "sqlalchemy+asyncpg", 2), Cell("async", "asyncpg", 2)]


@pytest.mark.parametrize(
    ("modes", "drivers", "needle"),
    [
        (["async"], ["asyncpg", "pg8000"], "--drivers: unknown driver 'pg8000'; choose from"),
        (
            ["sequential", "threads"],
            ["psycopg", "asyncpg"],
            "--drivers: asyncpg fits none of the modes compared (sequential, threads);"
            " it runs in async, processes",
        ),
        (["async"], " , ", "--drivers: give at least one driver"),
    ],
)
def test_bad_drivers_are_refused(modes: list[str], drivers: list[str] | str, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        compare_cells(modes, [2], drivers)
    assert str(caught.value) == needle or str(caught.value).startswith(needle)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--drivers", "asyncpg,pg8000"], ["--drivers", "unknown driver 'pg8000'"]),
        (["--modes", "threads", "--drivers", "asyncpg"], ["asyncpg fits none", "threads"]),
        (["--drivers", ","], ["--drivers", "at least one"]),
    ],
)
def test_compare_bad_drivers_are_one_line_before_any_database(
    args: list[str], needles: list[str]
) -> None:
    code, _, err = _cli("compare", "--dsn", UNREACHABLE_DSN, *args)
    _one_line_error(code, err, *needles)
    assert code == 2


def test_compare_takes_drivers_or_driver_not_both() -> None:
    with pytest.raises(UsageError, match=r"give --drivers \(the axis\) or --driver, not both"):
        compare("select", drivers=["psycopg"], driver="asyncpg", dsn=UNREACHABLE_DSN)


def test_the_driver_axis_runs_every_cell_on_one_batch_and_seed(
    drivers_comparison: Comparison,
) -> None:
    runs = drivers_comparison.results
    assert [(r.mode, r.driver, r.concurrency) for r in runs] == [
        ("sequential", "psycopg", 1), ("threads", "psycopg", 2),
        ("async", "psycopg", 2), ("async", "asyncpg", 2),
    ]  # fmt: skip
    assert {(r.ok, r.failed, r.seed, r.streams) for r in runs} == {(200, 0, 11, 2)}
    # the label with versions stays beside the name
    assert all(r.versions["driver"] and r.driver_label == r.versions["driver"] for r in runs)


class _Cells(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[object, ...]] = []

    def cell(self, mode: str, concurrency: int, index: int, total: int, driver: str = "") -> None:
        self.seen.append((mode, driver, concurrency, index, total))


class _OldCells(Observer):
    """An observer written before the driver axis: its cell() has no driver."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, ...]] = []

    def cell(self, mode: str, concurrency: int, index: int, total: int) -> None:  # type: ignore[override]
        self.seen.append((mode, concurrency, index, total))


def test_the_observer_hears_the_driver_only_on_the_driver_axis(seeded_dsn: str) -> None:
    axis = _Cells()
    compare("select", modes=["async"], drivers="asyncpg,psycopg", concurrency=1,
            transactions=5, dsn=seeded_dsn, observer=axis)  # fmt: skip
    assert axis.seen == [("async", "asyncpg", 1, 0, 2), ("async", "psycopg", 1, 1, 2)]
    old = _OldCells()
    compare("select", modes=["async"], concurrency=1, transactions=5, dsn=seeded_dsn, observer=old)
    assert old.seen == [("async", 1, 0, 1)]


@pytest.mark.slow
def test_compare_cli_runs_each_requested_driver(seeded_dsn: str, tmp_path: Path) -> None:
    """End to end: every cell reports the driver it asked for, by its
    canonical name, and its version label names that library."""
    out = tmp_path / "drivers.json"
    code, text, err = _cli(
        "compare", "--dsn", seeded_dsn, "-w", "select", "--modes", "threads,async",
        "--drivers", "psycopg,asyncpg", "-c", "2", "-n", "200", "--seed", "5",
        "--json", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "[3/3] async asyncpg c=2" in err and "[2/3] async psycopg c=2" in err
    runs = json.loads(out.read_text())["runs"]
    assert [(r["mode"], r["driver"]) for r in runs] == [
        ("threads", "psycopg"), ("async", "psycopg"), ("async", "asyncpg"),
    ]  # fmt: skip
    for cell in runs:
        assert cell["transactions"]["ok"] == 200 and cell["seed"] == 5
        # the library that really ran (async psycopg: once the executors select it)
        assert cell["versions"]["driver"].split()[0] == cell["driver"], cell["versions"]
    assert "driver=asyncpg" in text and "driver=psycopg" in text
