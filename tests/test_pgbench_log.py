"""-l: pgbench's transaction logs, compared line for line with a real ``pgbench -l``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.errors import DbloadError, UsageError
from dbload.report.pgbench_log import LogSpec, check_log_files, check_log_options
from test_cli import UNREACHABLE_DSN, _cli, _one_line_error

PGBENCH = shutil.which("pgbench")
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="pgbench is not on PATH")
SELECT = (
    "\\set aid random(1, 100000 * :scale)\n"
    "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
)
NOW = time.time()


def _pgbench_log(dsn: str, cwd: Path, script: Path, *args: str) -> list[list[str]]:
    """pgbench's own log of a run (one thread), as lists of fields."""
    assert PGBENCH is not None
    subprocess.run(
        [PGBENCH, "-n", "-f", str(script), "-l", *args, dsn],
        cwd=cwd, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (log,) = cwd.glob("pgbench_log.*")
    return [line.split() for line in log.read_text().splitlines()]


def _dbload_log(dsn: str, prefix: Path, script: Path, *args: str) -> list[list[str]]:
    prefix.parent.mkdir(exist_ok=True)
    code, _, err = _cli("run", "--dsn", dsn, "-f", str(script), "-l", "--log-prefix",
                        str(prefix), "-q", *args)  # fmt: skip
    assert code == 0, err
    lines: list[list[str]] = []
    for log in sorted(prefix.parent.glob(f"{prefix.name}.*")):
        lines += [line.split() for line in log.read_text().splitlines()]
    return lines


def _shape(fields: list[str]) -> list[str]:
    """What a field is: an integer, or the word it is (failed, skipped)."""
    return ["int" if f.lstrip("-").isdigit() else f for f in fields]


@pytest.fixture
def select_script(tmp_path: Path) -> Path:
    script = tmp_path / "select.sql"
    script.write_text(SELECT)
    return script


@needs_pgbench
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["threads", "async"])
def test_a_line_per_transaction_as_pgbench_writes_it(
    seeded_dsn: str, tmp_path: Path, select_script: Path, mode: str
) -> None:
    theirs = _pgbench_log(seeded_dsn, tmp_path, select_script, "-c", "2", "-t", "5")
    ours = _dbload_log(seeded_dsn, tmp_path / "ours" / "x", select_script, "-m", mode,
                       "-c", "2", "-t", "5")  # fmt: skip
    assert len(theirs) == len(ours) == 10  # a line per transaction
    assert {tuple(_shape(f)) for f in theirs} == {tuple(_shape(f)) for f in ours} == {("int",) * 6}
    for lines in (theirs, ours):
        # client_id, transaction_no from 1 per client, script_no, time_epoch, time_us
        assert sorted((int(f[0]), int(f[1])) for f in lines) == [
            (c, n) for c in (0, 1) for n in range(1, 6)
        ]
        assert {f[3] for f in lines} == {"0"}
        assert all(abs(int(f[4]) - NOW) < 3600 and 0 <= int(f[5]) < 1_000_000 for f in lines)
        assert all(int(f[2]) >= 0 for f in lines)


@needs_pgbench
@pytest.mark.slow
def test_rate_and_retries_add_the_lag_and_retries_columns(
    seeded_dsn: str, tmp_path: Path, select_script: Path
) -> None:
    args = ("-c", "2", "-T", "1", "-R", "50", "--max-tries", "2")
    theirs = _pgbench_log(seeded_dsn, tmp_path, select_script, *args)
    ours = _dbload_log(seeded_dsn, tmp_path / "ours" / "x", select_script, "-m", "threads", *args)
    assert theirs and ours
    assert {len(f) for f in theirs} == {len(f) for f in ours} == {8}
    assert all(f[7] == "0" for f in ours)  # no retry: a select does not conflict


@needs_pgbench
@pytest.mark.slow
def test_aggregate_lines_have_pgbench_fields_and_add_up(
    seeded_dsn: str, tmp_path: Path, select_script: Path
) -> None:
    args = ("-c", "2", "-T", "2", "--aggregate-interval", "1")
    theirs = _pgbench_log(seeded_dsn, tmp_path, select_script, *args)
    out = tmp_path / "r.json"
    ours = _dbload_log(seeded_dsn, tmp_path / "ours" / "x", select_script, "-m", "threads",
                       "--json", str(out), *args)  # fmt: skip
    assert theirs and ours
    assert {tuple(_shape(f)) for f in theirs} == {tuple(_shape(f)) for f in ours} == {("int",) * 15}
    import json

    data = json.loads(out.read_text())
    # the last, partial interval is written too: the counts add up to the run's
    assert sum(int(f[1]) for f in ours) == data["transactions"]["ok"]
    starts = sorted({int(f[0]) for f in ours})
    assert starts == list(range(starts[0], starts[0] + len(starts)))
    for f in ours:  # sum, sum of squares, min, max of µs latencies
        count, total, squares, low, high = map(int, f[1:6])
        if count:
            assert low <= total / count <= high and squares >= low * low * count


@pytest.mark.slow
def test_failed_transactions_are_logged_as_failed(seeded_dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "half.sql"
    script.write_text("\\set x random(0, 1)\nSELECT 1 / :x;\n")
    prefix = tmp_path / "log"
    out = tmp_path / "r.json"
    lines = _dbload_log(seeded_dsn, prefix, script, "-m", "threads", "-c", "2", "-t", "40",
                        "--seed", "3", "--json", str(out))  # fmt: skip
    import json

    data = json.loads(out.read_text())
    failed = [f for f in lines if f[2] == "failed"]
    assert len(lines) == 80 == data["transactions"]["count"]
    assert len(failed) == data["transactions"]["failed"] > 0
    assert all(len(f) == 6 for f in failed)


@pytest.mark.slow
def test_skipped_transactions_are_logged_as_skipped(seeded_dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "sleep.sql"
    script.write_text("SELECT pg_sleep(0.01);\n")
    out = tmp_path / "r.json"
    lines = _dbload_log(seeded_dsn, tmp_path / "log", script, "-m", "threads", "-c", "1",
                        "-T", "1", "-R", "500", "-L", "1ms", "--json", str(out))  # fmt: skip
    import json

    data = json.loads(out.read_text())
    skipped = [f for f in lines if f[2] == "skipped"]
    assert len(skipped) == data["open_loop"]["skipped"] > 0
    assert all(len(f) == 7 and f[6] == "0" for f in skipped)  # lag column: 0, as pgbench's
    assert len(lines) == data["transactions"]["count"] + len(skipped)


@pytest.mark.slow
def test_processes_mode_writes_a_file_per_worker_process(
    seeded_dsn: str, tmp_path: Path, select_script: Path
) -> None:
    prefix = tmp_path / "log"
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-m", "processes", "-j", "2", "-c", "4",
                        "-t", "10", "-f", str(select_script), "-l", "--log-prefix", str(prefix),
                        "-q")  # fmt: skip
    assert code == 0, err
    pid = os.getpid()
    files = sorted(p.name for p in tmp_path.glob("log.*"))
    assert files == [f"log.{pid}", f"log.{pid}.1"]
    counts = [len((tmp_path / name).read_text().splitlines()) for name in files]
    assert sum(counts) == 40 and all(counts)


def test_sampling_logs_a_fraction(seeded_dsn: str, tmp_path: Path, select_script: Path) -> None:
    lines = _dbload_log(seeded_dsn, tmp_path / "log", select_script, "-m", "threads", "-c", "2",
                        "-t", "100", "--sampling-rate", "0.5", "--seed", "1")  # fmt: skip
    assert 0 < len(lines) < 200
    assert all(len(f) == 6 for f in lines)


def test_an_unwritable_prefix_is_one_line_and_runs_nothing(select_script: Path) -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "-f",
                        str(select_script), "-l", "--log-prefix", "/nonexistent/dir/x")  # fmt: skip
    assert code == 2
    _one_line_error(code, err, "-l:", "/nonexistent/dir")


def test_an_existing_log_file_is_never_overwritten(tmp_path: Path, select_script: Path) -> None:
    existing = tmp_path / f"log.{os.getpid()}"
    existing.write_text("keep me\n")
    prefix = str(tmp_path / "log")
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "-f", str(select_script), "-l",
                        "--log-prefix", prefix)  # fmt: skip
    _one_line_error(code, err, "exists", "does not overwrite")
    assert existing.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sampling-rate", "0.5"], "allowed only when logging transactions (-l)"),
        (["--aggregate-interval", "1"], "only with -l"),
        (["--log-prefix", "x"], "allowed only when logging transactions (-l)"),
        (["-l", "--sampling-rate", "0.5", "--aggregate-interval", "1"], "at the same time"),
        (["-l", "--sampling-rate", "2"], "at most 1"),
        (["-l", "--aggregate-interval", "0"], "in range 1.."),
        (["-l", "--aggregate-interval", "2", "-T", "3"], "must be a multiple"),
        (["-l", "--aggregate-interval", "3", "-T", "2"], "must not be higher"),
    ],
)
def test_bad_log_options_are_pgbench_errors(args: list[str], needle: str) -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, *args)
    assert code == 2
    _one_line_error(code, err, needle)


# -- the writer itself, fed by hand --------------------------------------------


def _sink(tmp_path: Path, **spec: object) -> tuple[LogSpec, Path]:
    log = LogSpec(prefix=str(tmp_path / "t"), pid=7, **spec)  # type: ignore[arg-type]
    return log, tmp_path / "t.7"


def test_line_fields_in_pgbench_order(tmp_path: Path) -> None:
    spec, path = _sink(tmp_path, throttled=True, retries=True)
    sink = spec.open()
    t0 = time.perf_counter_ns()
    sink.begin(t0)
    sink.transaction(3, 1, t0, t0 + 2_500_000, None, 2, 400_000)
    sink.transaction(3, 1, t0, t0 + 1_000, "40001", 3, 0)
    sink.skipped(4, 0, t0)
    sink.close(t0 + 3_000_000)
    lines = [line.split() for line in path.read_text().splitlines()]
    assert [f[:4] for f in lines] == [["3", "1", "2500", "1"], ["3", "2", "failed", "1"],
                                      ["4", "1", "skipped", "0"]]  # fmt: skip
    assert [f[6:] for f in lines] == [["400", "1"], ["0", "2"], ["0", "0"]]
    assert all(abs(int(f[4]) - time.time()) < 60 for f in lines)


def test_aggregate_intervals_empty_ones_and_the_last(tmp_path: Path) -> None:
    spec, path = _sink(tmp_path, aggregate_s=1)
    sink = spec.open()
    t0 = time.perf_counter_ns()
    sink.begin(t0)
    sink.transaction(0, 0, t0, t0 + 1_000_000, None, 1, None)  # 1000 µs
    sink.transaction(0, 0, t0, t0 + 3_000_000, None, 1, None)  # 3000 µs
    sink.transaction(0, 0, t0, t0 + 2_500_000_000, "40P01", 2, None)  # third interval
    sink.close(t0 + 2_600_000_000)
    lines = [list(map(int, line.split())) for line in path.read_text().splitlines()]
    assert [line[1:6] for line in lines] == [[2, 4000, 10_000_000, 1000, 3000], [0] * 5, [0] * 5]
    assert [line[0] - lines[0][0] for line in lines] == [0, 1, 2]
    assert lines[2][11:] == [1, 1, 0, 1]  # retried, retries, serialization, deadlock


def test_the_file_is_never_replaced(tmp_path: Path) -> None:
    spec, path = _sink(tmp_path)
    path.write_text("mine\n")
    with pytest.raises(UsageError, match="exists"):
        check_log_files(spec, 1)
    with pytest.raises(DbloadError, match="cannot create"):
        spec.open()
    assert path.read_text() == "mine\n"


def test_check_log_options_accepts_what_pgbench_accepts() -> None:
    check_log_options(True, "p", 2, None, 10.0)
    check_log_options(True, None, None, 0.01, None)
    check_log_options(False, None, None, None, None)


def test_api_log_option(seeded_dsn: str, tmp_path: Path, select_script: Path) -> None:
    options = prepare_options(files=[str(select_script)], mode="threads", concurrency=2,
                              transactions_per_client=3, log=True,
                              log_prefix=str(tmp_path / "api"))  # fmt: skip
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)
    (name,) = result.log_files
    assert len(Path(name).read_text().splitlines()) == 6 == result.ok


def test_a_run_that_never_starts_leaves_no_log(seeded_dsn: str, tmp_path: Path) -> None:
    script = tmp_path / "bad.sql"
    script.write_text("SELECT * FROM no_such_table_dbload;\n")
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-m", "threads", "-f", str(script), "-t", "1",
                        "-l", "--log-prefix", str(tmp_path / "log"))  # fmt: skip
    _one_line_error(code, err, "no_such_table_dbload")
    assert not list(tmp_path.glob("log.*"))


def test_compare_refuses_a_log() -> None:
    from dbload.api import compare

    with pytest.raises(UsageError, match="-l/--log writes one run's transaction log"):
        compare("select", dsn=UNREACHABLE_DSN, log=True)
