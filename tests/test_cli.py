"""The command line: bad input gives one clear line and a non-zero exit.

Through Typer's CliRunner (in process) and through a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctrl_c_twice import ctrl_c_twice, until_in_grace
from dbload.cli import app, main

runner = CliRunner()
UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/x"


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# what a run says on stderr besides its error: the database line and notes
CHATTER = ("database:", "note:", "stopping,", "written to", "report written", "progress:", "[")


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith(CHATTER)]
    assert len(errors) == 1, err
    assert errors[0].startswith("dbload: error: ") and lines[-1] == errors[0]
    assert "Traceback" not in err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def test_run_reports_and_writes_json(seeded_dsn: str, tmp_path: Path) -> None:
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-n", "40", "-c", "2", "--seed", "1", "--json", str(out_file)
    )
    assert code == 0, err
    assert "tps" in out and "p99" in out
    data = json.loads(out_file.read_text())
    assert data["transactions"]["count"] == 40 and data["seed"] == 1


def test_sequential_runs_n_streams_on_one_connection_and_says_so(
    seeded_dsn: str, tmp_path: Path
) -> None:
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--mode", "sequential", "-c", "8", "--dsn", seeded_dsn, "-n", "16",
        "--json", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    assert "8 clients' parameter streams one after another" in err
    assert "1 client running 8 clients' streams in turn" in out
    data = json.loads(out_file.read_text())
    assert (data["concurrency"], data["streams"]) == (1, 8)


def test_quiet_prints_nothing(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--dsn", seeded_dsn, "-n", "10", "--quiet")
    assert code == 0, err
    assert out == ""


@pytest.mark.slow
def test_progress_lines_for_logs(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--dsn", seeded_dsn, "-T", "1.3", "-c", "2", "--progress", "0.5")
    assert code == 0
    # on stderr, as pgbench's: `> report.txt` keeps only the report
    assert err.count("progress:") >= 2 and "progress:" not in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--mode", "warp"], ["unknown mode 'warp'"]),
        (["-f", "/nonexistent/script.sql"], ["/nonexistent/script.sql"]),
        (["-c", "0"], ["-c/--concurrency", "at least 1"]),
        (["-n", "-5"], ["-n/--iterations"]),
        (["-n", "5", "-T", "3"], ["not both"]),
        (["--workload", "nosuch"], ["nosuch"]),
        (["--json", "/nonexistent/dir/out.json"], ["--json", "/nonexistent/dir"]),
        (["-D", "novalue"], ["NAME=VALUE"]),
    ],
)
def test_bad_options_fail_before_any_database(args: list[str], needles: list[str]) -> None:
    # an unreachable DSN proves the check happened before connecting
    code, _, err = _cli("run", "--dsn", "postgresql://postgres@127.0.0.1:1/x", *args)
    _one_line_error(code, err, *needles)


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_unparsable_script_names_file_and_line(tmp_path: Path) -> None:
    path = _script(tmp_path, "broken.sql", "SELECT 1;\n\\set x random(1,\n")
    code, _, err = _cli("run", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "-f", path)
    _one_line_error(code, err, "broken.sql:2")


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    path = _script(tmp_path, "undef.sql", "-- uses :nope\n\nSELECT :nope;\n")
    code, _, err = _cli("run", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "-f", path)
    _one_line_error(code, err, "undef.sql:3", "nope")


def test_empty_script_is_refused(tmp_path: Path) -> None:
    path = _script(tmp_path, "empty.sql", "-- nothing here\n\n")
    code, _, err = _cli("run", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "-f", path)
    _one_line_error(code, err, "empty.sql")


def test_unknown_table_is_refused_before_the_run(seeded_dsn: str, tmp_path: Path) -> None:
    path = _script(tmp_path, "tbl.sql", "SELECT * FROM nosuchtable;\n")
    out_file = tmp_path / "r.json"
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-f", path, "-n", "5", "--json", str(out_file))
    _one_line_error(code, err, "tbl.sql:1", "nosuchtable")
    assert not out_file.exists()


def test_unreachable_server() -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://postgres:hunter2@127.0.0.1:1/x", "-n", "5")
    _one_line_error(code, err, "127.0.0.1")
    assert "hunter2" not in err


def test_malformed_dsn() -> None:
    code, _, err = _cli("run", "--dsn", "postgresql://u:hunter2@host:notaport/db", "-n", "5")
    _one_line_error(code, err)
    assert "hunter2" not in err


def test_unknown_role(seeded_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(seeded_dsn)
    params["user"] = "no_such_role_dbload"
    params["password"] = "hunter2"
    code, _, err = _cli("run", "--dsn", make_conninfo("", **params), "-n", "5")
    _one_line_error(code, err, "no_such_role_dbload")
    assert "hunter2" not in err


def test_password_never_shown(seeded_dsn: str, tmp_path: Path) -> None:
    """Trust auth ignores the password, so the run succeeds and must hide it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(seeded_dsn)
    params["password"] = "s3cret-pw-xyz"
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--dsn", make_conninfo("", **params), "-n", "5", "--json", str(out_file)
    )
    assert code == 0, err
    assert "s3cret-pw-xyz" not in out + err + out_file.read_text()


def test_main_returns_exit_codes_without_raising(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--mode", "warp"]) == 2
    assert main(["--version"]) == 0
    assert main(["run", "-c", "notanint"]) == 2
    err = capsys.readouterr().err
    assert err.count("dbload: error:") == 2
    assert "Traceback" not in err


def test_workloads_lists_builtins() -> None:
    code, out, _ = _cli("workloads")
    assert code == 0
    for name in ("select", "tpcb", "join", "aggregate", "slow"):
        assert name in out


def _subprocess(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbload", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_subprocess_run_and_json(seeded_dsn: str, tmp_path: Path) -> None:
    out_file = tmp_path / "r.json"
    proc = _subprocess(
        "run",
        "--mode",
        "threads",
        "-c",
        "2",
        "-n",
        "30",
        "--json",
        str(out_file),
        env={"DBLOAD_DSN": seeded_dsn},
    )
    assert proc.returncode == 0, proc.stderr
    assert "tps" in proc.stdout
    assert json.loads(out_file.read_text())["mode"] == "threads"


@pytest.mark.slow
def test_subprocess_errors_are_one_line(tmp_path: Path) -> None:
    proc = _subprocess("run", "--mode", "warp")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown mode" in proc.stderr
    proc = _subprocess(
        "run", "-n", "5", env={"DBLOAD_DSN": "postgresql://postgres:pw123@127.0.0.1:1/x"}
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "pw123" not in proc.stderr
    assert proc.stderr.startswith("dbload: error:")


def test_migrate_then_seed_then_seed_again(scratch_dsn: str) -> None:
    code, out, err = _cli("migrate", "--dsn", scratch_dsn)
    assert code == 0, err
    assert "schema up to date" in out
    code, out, err = _cli("seed", "--scale", "1", "--dsn", scratch_dsn)
    assert code == 0, err
    assert "loaded scale 1: 100,011 rows" in out
    code, out, err = _cli("seed", "--scale", "1", "--dsn", scratch_dsn)
    assert code == 0, err
    assert "already loaded" in out


def test_seed_scale_zero_is_refused() -> None:
    code, _, err = _cli("seed", "--scale", "0", "--dsn", "postgresql://postgres@127.0.0.1:1/x")
    _one_line_error(code, err, "--scale")


def test_unknown_db_choice_is_refused() -> None:
    code, _, err = _cli("run", "--db", "cloud", "-n", "5")
    _one_line_error(code, err, "--db", "cloud")


def test_db_url_when_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBLOAD_EMBEDDED_DIR", str(tmp_path / "pg"))
    code, out, _ = _cli("db", "status")
    assert code == 1 and "stopped" in out
    code, _, err = _cli("db", "url")
    _one_line_error(code, err, "dbload db up")


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_and_keeps_the_partial_result(
    seeded_dsn: str, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    out_file = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "-T", "60", "-c", "2", "--json", str(out_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DBLOAD_DSN": seeded_dsn},
    )
    # wait until the run has started (the database line is printed first)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("database:")
    time.sleep(1.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        "dbload: error: interrupted"
    )
    assert "stopping, finishing transactions in flight (Ctrl-C again to quit)" in err
    assert "tps" in out
    data = json.loads(out_file.read_text())
    assert data["interrupted"] is True
    assert data["transactions"]["count"] > 0


@pytest.mark.parametrize("value", ["soon", "-5ms", "0.5us"])
def test_bad_statement_timeout(value: str) -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "--statement-timeout", value, "-n", "5")
    _one_line_error(code, err, "--statement-timeout")


@pytest.mark.parametrize("mode", ["sequential", "threads", "async"])
def test_max_errors_aborts_and_keeps_the_partial_result(
    seeded_dsn: str, tmp_path: Path, mode: str
) -> None:
    path = _script(tmp_path, "div.sql", "\\set d random(0, 1)\nSELECT 1 / :d;\n")
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--mode", mode, "-c", "2", "--dsn", seeded_dsn, "-f", path, "-n", "100000",
        "--max-errors", "5", "--seed", "2", "--json", str(out_file),
    )  # fmt: skip
    _one_line_error(code, err, "aborted after", "--max-errors")
    assert code == 1
    assert "aborted" in out and "tps" in out
    data = json.loads(out_file.read_text())
    assert data["aborted"] is True and data["interrupted"] is False
    assert data["transactions"]["failed"] >= 5
    assert data["transactions"]["count"] < 100000
    assert {code: e["count"] for code, e in data["errors"].items()} == {
        "22012": data["transactions"]["failed"]
    }


def test_max_errors_must_be_positive() -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "--max-errors", "0")
    _one_line_error(code, err, "--max-errors")


def _start_long_run(dsn: str, tmp_path: Path, mode: str, *extra: str) -> subprocess.Popen[str]:
    """A run whose every transaction waits 60 s on the server, once it has started."""
    script = _script(tmp_path, "long.sql", "SELECT pg_sleep(60);\n")
    clients = ["-c", "2"] if mode != "sequential" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "--mode", mode, *clients, "-f", script, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DBLOAD_DSN": dsn},
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    if not first.startswith("database:"):
        proc.kill()  # not left behind, waiting on its 60 s sleeps
        pytest.fail(f"the run did not start: {first!r}")
    time.sleep(0.5)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "threads", "async"])
def test_ctrl_c_cancels_in_flight_transactions_after_the_grace_period(
    seeded_dsn: str, tmp_path: Path, mode: str
) -> None:
    out_file = tmp_path / "r.json"
    proc = _start_long_run(seeded_dsn, tmp_path, mode, "--json", str(out_file))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # 60 s without the cancel
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(
        "dbload: error: interrupted"
    )
    assert "cancelled" in out
    data = json.loads(out_file.read_text())
    assert data["interrupted"] is True
    assert data["transactions"]["cancelled"] == (1 if mode == "sequential" else 2)
    assert data["transactions"]["failed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "threads", "async"])
def test_second_ctrl_c_exits_at_once_without_a_traceback(
    seeded_dsn: str, tmp_path: Path, mode: str
) -> None:
    out_file = tmp_path / "r.json"

    def attempt() -> tuple[bool, tuple[int, str]]:
        out_file.unlink(missing_ok=True)  # a try that ended on the first Ctrl-C wrote it
        proc = _start_long_run(seeded_dsn, tmp_path, mode, "--json", str(out_file))
        in_grace, err = ctrl_c_twice(proc, 0.3)
        proc.communicate(timeout=30)
        return in_grace, (proc.returncode, err)

    code, err = until_in_grace(attempt)
    assert code == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "dbload: error: interrupted"
    assert [line for line in err.splitlines() if line.startswith("dbload:")] == [
        "dbload: error: interrupted"
    ]
    assert not out_file.exists()  # nothing half-written either


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-T", "nan"], "-T/--duration"),
        (["-T", "inf"], "-T/--duration"),
        (["-T", "1e99"], "-T/--duration"),
        (["--warmup", "inf"], "--warmup"),
        (["--warmup", "nan"], "--warmup"),
        (["-D", "scale=1e999"], "-D scale"),
        (["-D", "scale=0"], "-D scale"),
        (["-D", "scale=2.5"], "-D scale"),
        (["-P", "inf"], "--progress"),
        (["-P", "nan"], "--progress"),
        (["-P", "0"], "--progress"),
        (["--statement-timeout", "99999999999s"], "--statement-timeout"),
        (["-R", "inf"], "--rate"),
        (["-R", "nan"], "--rate"),
        (["-R", "1e300"], "--rate"),
        (["-L", "1e300s"], "--latency-limit"),
    ],
)
def test_numbers_are_finite_and_in_range(args: list[str], needle: str) -> None:
    # exit 2 with one line, before any database (the DSN is unreachable)
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, *args)
    _one_line_error(code, err, needle)
    assert code == 2


@pytest.mark.parametrize("args", [[], ["db"]])
def test_no_arguments_print_help(args: list[str]) -> None:
    code = main(args)
    assert code == 0


@pytest.mark.slow
def test_no_arguments_print_help_without_error_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dbload", "db"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "Usage" in proc.stdout + proc.stderr
    assert "error" not in proc.stderr


@pytest.mark.parametrize("command", [["run"], ["compare"], ["--help"], ["db", "up"]])
def test_help_shows_no_python_types(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"] if command != ["--help"] else command)
    assert result.exit_code == 0
    for python_type in ("<bool>", "<str>", "<int>", "<float>", "list[", "<path>"):
        assert python_type not in result.stdout, python_type


def test_a_run_where_nothing_succeeded_fails(seeded_dsn: str, tmp_path: Path) -> None:
    path = _script(tmp_path, "div0.sql", "SELECT 1/0;\n")
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "-c", "2", "--dsn", seeded_dsn, "-f", path, "-n", "20", "--json", str(out_file)
    )
    _one_line_error(code, err, "no transaction succeeded", "22012", "division by zero")
    assert code == 1
    data = json.loads(out_file.read_text())  # still saved
    assert data["transactions"]["failed"] == 20 and data["transactions"]["per_second"] == 0
    assert data["latency_ms"] is None  # not 0.000: there is no latency to show
    assert "n/a" in out


def test_a_run_with_some_failures_succeeds(seeded_dsn: str, tmp_path: Path) -> None:
    path = _script(tmp_path, "some.sql", "\\set d random(0, 9)\nSELECT 1 / :d;\n")
    code, _, err = _cli(
        "run", "-c", "2", "--dsn", seeded_dsn, "-f", path, "-n", "200", "--seed", "3"
    )
    assert code == 0, err


def test_json_to_stdout_moves_the_report_to_stderr(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--dsn", seeded_dsn, "-n", "20", "-c", "2", "--json", "-")
    assert code == 0, err
    data = json.loads(out)  # nothing but the JSON on stdout
    assert data["transactions"]["count"] == 20
    assert "tps" in err


def test_compare_judges_thresholds_per_cell_and_writes_json(
    seeded_dsn: str, tmp_path: Path
) -> None:
    out_file = tmp_path / "c.json"
    code, _, err = _cli(
        "compare", "--dsn", seeded_dsn, "--modes", "sequential,async", "-c", "2", "-n", "40",
        "--seed", "1", "--threshold", "p99<1us", "--threshold", "errors<1%", "--json",
        str(out_file),
    )  # fmt: skip
    _one_line_error(code, err, "threshold failed in sequential c=1", "p99<1us")
    assert code == 99
    data = json.loads(out_file.read_text())
    assert data["schema"].startswith("dbload/compare@")
    cells = [[(t["threshold"], t["passed"]) for t in run["thresholds"]] for run in data["runs"]]
    assert cells == [[("p99<1us", False), ("errors<1%", True)]] * 2


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.8])
def test_an_early_ctrl_c_is_one_line(seeded_dsn: str, delay: float) -> None:
    # wherever it lands (imports, option checks, database preparation, the
    # run's first moments) it is one line and exit 130, never a traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbload", "run", "-T", "30", "-c", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DBLOAD_DSN": seeded_dsn},
        # a terminal's Ctrl-C: Python's own handler, even when this suite runs
        # in the background (a shell's & hands its children SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    # -2: the process died of the SIGINT itself, the line already printed
    # (seen once on a loaded CI machine, cause not found); a shell reports
    # that as 130 too
    assert proc.returncode in (130, -signal.SIGINT), err
    assert err.strip().splitlines()[-1].startswith("dbload: error: interrupted")


@pytest.mark.slow
def test_run_writes_junit_and_csv_for_ci(seeded_dsn: str, tmp_path: Path) -> None:
    import csv
    import xml.etree.ElementTree as ET

    junit, series = tmp_path / "r.xml", tmp_path / "r.csv"
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-T", "1.5", "-c", "2", "--threshold", "p99<1us",
        "--junit", str(junit), "--csv", str(series),
    )  # fmt: skip
    assert code == 99, err
    cases = ET.parse(junit).getroot().findall(".//testcase")
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert any("p99<1us" in str(name) for name in failed)
    rows = list(csv.DictReader(series.read_text().splitlines()))
    assert rows and sum(int(r["transactions"]) for r in rows) > 0
    assert out.strip().splitlines()[-1].startswith("mode=async c=2 tps=")


def test_outputs_are_checked_before_the_run(tmp_path: Path) -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "--csv", str(tmp_path / "no" / "x.csv"))
    _one_line_error(code, err, "--csv")
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, "--json", "-", "--junit", "-")
    _one_line_error(code, err, "stdout")


def test_report_renders_one_run_as_its_report_and_warns_on_different_workloads(
    seeded_dsn: str, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, workload in ((a, "select"), (b, "join")):
        code, _, err = _cli(
            "run", "--dsn", seeded_dsn, "-w", workload, "-n", "20", "--json", str(path)
        )
        assert code == 0, err
    code, out, err = _cli("report", str(a))
    assert code == 0, err
    assert "transactions" in out and out.strip().splitlines()[-1].startswith("mode=async")
    code, out, err = _cli("report", str(a), str(b))
    assert code == 0, err
    assert "warning: these runs ran different workloads" in out


def test_ctrl_c_outside_a_run_interrupts_at_once() -> None:
    # after the executor returns (summing up the result) there is nothing in
    # flight to finish: the first Ctrl-C must interrupt, not wait unheard
    import threading

    from dbload.cli import _stop_on_signals
    from dbload.report.console import make_console

    stop, idle = threading.Event(), threading.Event()
    idle.set()
    with pytest.raises(KeyboardInterrupt), _stop_on_signals(stop, make_console(), idle):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises here, at once
    assert stop.is_set()


def test_ctrl_c_during_a_run_asks_the_workers_to_stop() -> None:
    import threading

    from dbload.cli import _stop_on_signals
    from dbload.report.console import make_console

    stop, idle = threading.Event(), threading.Event()  # idle clear: a run is on
    with _stop_on_signals(stop, make_console(stderr=True), idle) as caught:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.wait(5)
    assert caught == [signal.SIGINT]


# -- pgbench's flags -------------------------------------------------------------

PGBENCH_BIN = shutil.which("pgbench")


def _run_json(tmp_path: Path, *args: str) -> dict[str, Any]:
    out_file = tmp_path / "r.json"
    code, _, err = _cli("run", *args, "--json", str(out_file), "-q")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out_file.read_text())
    return data


@pytest.mark.skipif(PGBENCH_BIN is None, reason="pgbench is not on PATH")
@pytest.mark.parametrize("name", ["tpcb-like", "simple-update", "select-only", "t", "si"])
def test_show_script_prints_pgbench_text(name: str) -> None:
    assert PGBENCH_BIN is not None
    theirs = subprocess.run(
        [PGBENCH_BIN, f"--show-script={name}"], capture_output=True, text=True, check=True
    )
    for args in (("run", "--show-script", name), ("workloads", "--show", name)):
        code, out, err = _cli(*args)
        assert code == 0, err
        assert out == theirs.stderr  # pgbench prints it on stderr, dbload on stdout


def test_show_an_ambiguous_or_unknown_name_is_one_line() -> None:
    code, _, err = _cli("workloads", "--show", "s")
    _one_line_error(code, err, "--show: ambiguous built-in name", "'s'")
    code, _, err = _cli("run", "--show-script", "nope")
    _one_line_error(code, err, "--show-script: no built-in script found for name 'nope'")


def test_workloads_lists_pgbench_builtins_too() -> None:
    code, out, _ = _cli("workloads")
    assert code == 0
    for name in ("tpcb-like", "simple-update", "select-only"):
        assert name in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-b", "s"], "-b: ambiguous built-in name: 2 built-in scripts found for prefix 's'"),
        (["-b", "zz"], "-b: no built-in script found"),
        (["-t", "5", "-T", "5"], "specify either a number of transactions (-t) or a duration"),
        (["-t", "5", "-n", "5"], "not both"),
        (["-t", "0"], "-t/--transactions must be at least 1"),
        (["-M", "bogus"], "invalid query mode (-M)"),
        (["-j", "2"], "-j 2: worker processes are for -m processes"),
        (["--random-seed", "foo"], "unrecognized random seed option"),
        (["--random-seed", "1", "--seed", "1"], "give --seed or --random-seed, not both"),
        (["-s", "0"], "-s/--scale must be at least 1"),
        (["-s", "2", "-D", "scale=2"], "give -s or -D scale=N, not both"),
        (["-p", "x5432"], "-p/--port"),
    ],
)
def test_bad_pgbench_flags_are_one_line(args: list[str], needle: str) -> None:
    code, _, err = _cli("run", "--dsn", UNREACHABLE_DSN, *args)
    assert code == 2
    _one_line_error(code, err, needle)


@pytest.mark.slow
def test_builtins_by_pgbench_names_with_weights(seeded_dsn: str, tmp_path: Path) -> None:
    data = _run_json(
        tmp_path, "--dsn", seeded_dsn, "-m", "threads", "-c", "2", "-t", "150",
        "-b", "se@3", "-N", "--seed", "11",
    )  # fmt: skip
    assert data["scripts"] == ["select-only@3", "simple-update@1"]
    per_script = data["per_script"]
    assert [(s["name"], s["weight"], s["weight_share"]) for s in per_script] == [
        ("select-only", 3, 0.75),
        ("simple-update", 1, 0.25),
    ]
    counts = [s["count"] for s in per_script]
    assert sum(counts) == data["transactions"]["count"] == 300  # -t is per client
    assert counts[0] > counts[1] > 0  # 3:1, roughly
    assert sum(s["ok"] for s in per_script) == data["transactions"]["ok"]
    detail = data["statements"]["detail"]
    assert [detail[i]["source"] for i in per_script[1]["statements"]] == ["simple-update"] * 5
    assert all(s["latency_ms"]["p50"] > 0 for s in per_script)


def test_select_only_flag_and_per_client_in_sequential(seeded_dsn: str, tmp_path: Path) -> None:
    data = _run_json(tmp_path, "--dsn", seeded_dsn, "-m", "sequential", "-c", "3", "-t", "4", "-S")
    assert data["scripts"] == ["select-only@1"]
    assert data["transactions"]["count"] == 12 and data["planned"]["transactions"] == 12


def test_per_script_report_in_the_terminal(seeded_dsn: str, restore_balances: None) -> None:
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-m", "threads", "-c", "2", "-t", "20", "-b", "tpcb-like@1",
        "-b", "select-only@1",
    )  # fmt: skip
    assert code == 0, err
    assert "per script" in out
    assert "1: tpcb-like" in out and "2: select-only" in out
    assert "1 (50.0 %)" in out


@pytest.mark.slow
def test_query_mode_connect_and_random_seed_reach_the_result(
    seeded_dsn: str, tmp_path: Path
) -> None:
    data = _run_json(
        tmp_path, "--dsn", seeded_dsn, "-m", "threads", "-c", "1", "-t", "3", "-S",
        "-M", "extended", "-C", "--random-seed", "12345",
    )  # fmt: skip
    assert data["planned"]["query_mode"] == "extended"
    assert data["planned"]["connect_per_transaction"] is True
    assert data["seed"] == 12345
    seeded = _run_json(tmp_path, "--dsn", seeded_dsn, "-t", "1", "-c", "1", "--random-seed", "rand")
    assert isinstance(seeded["seed"], int) and seeded["planned"]["query_mode"] == "prepared"


@pytest.mark.slow
def test_jobs_sets_the_worker_processes(seeded_dsn: str, tmp_path: Path) -> None:
    data = _run_json(tmp_path, "--dsn", seeded_dsn, "-m", "processes", "-j", "2", "-c", "4",
                     "-t", "5")  # fmt: skip
    assert data["versions"]["driver"].endswith("× 2 processes")  # noqa: RUF001
    assert data["transactions"]["count"] == 20


@pytest.mark.slow
def test_scale_option_checked_against_the_data(seeded_dsn: str, tmp_path: Path) -> None:
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-S", "-t", "1", "-s", "7")
    _one_line_error(code, err, "-s 7: the pgbench tables hold scale 1", "dbload seed -s 7")
    script = tmp_path / "own.sql"
    script.write_text("SELECT :scale;\n")  # on no pgbench table: -s is :scale and the report's
    data = _run_json(tmp_path, "--dsn", seeded_dsn, "-f", str(script), "-t", "2", "-s", "7")
    assert data["scale"] == 7
    same = _run_json(tmp_path, "--dsn", seeded_dsn, "-S", "-t", "1", "-c", "1", "-s", "1")
    assert same["scale"] == 1


def test_host_port_user_dbname_options(seeded_dsn: str, tmp_path: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(seeded_dsn)
    data = _run_json(
        tmp_path, "-h", str(params.get("host", "127.0.0.1")), "-p", str(params.get("port", 5432)),
        "-U", str(params.get("user", "postgres")), "-d", str(params["dbname"]),
        "-S", "-t", "2", "-c", "1",
    )  # fmt: skip
    assert data["database"]["kind"] == "dsn"
    assert str(params["dbname"]) in data["database"]["url"]
    # -d over --dsn: the named database, not the DSN's
    code, _, err = _cli("run", "--dsn", seeded_dsn, "-d", "no_such_db_dbload", "-t", "1", "-S")
    _one_line_error(code, err, "no_such_db_dbload")


def test_builtin_list_lists_and_exits() -> None:
    code, out, _ = _cli("run", "--dsn", UNREACHABLE_DSN, "-b", "list")
    assert code == 0
    assert "tpcb-like" in out and "<builtin: TPC-B (sort of)>" in out
