"""The command line: bad input gives one clear line and a non-zero exit.

Through Typer's CliRunner (in process) and through a real subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dbload.cli import app, main

runner = CliRunner()
UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/x"


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("dbload: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_run_reports_and_writes_json(seeded_dsn: str, tmp_path: Path) -> None:
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--dsn", seeded_dsn, "-n", "40", "-c", "2", "--seed", "1", "--json", str(out_file)
    )
    assert code == 0, err
    assert "tps" in out and "p99" in out
    data = json.loads(out_file.read_text())
    assert data["transactions"]["count"] == 40 and data["seed"] == 1


def test_sequential_ignores_concurrency_and_says_so(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--mode", "sequential", "-c", "8", "--dsn", seeded_dsn, "-n", "5")
    assert code == 0, err
    assert "-c is ignored" in out
    assert "1 clients" in out


def test_quiet_prints_nothing(seeded_dsn: str) -> None:
    code, out, err = _cli("run", "--dsn", seeded_dsn, "-n", "10", "--quiet")
    assert code == 0, err
    assert out == ""


def test_progress_lines_for_logs(seeded_dsn: str) -> None:
    code, out, _ = _cli("run", "--dsn", seeded_dsn, "-T", "1.3", "-c", "2", "--progress", "0.5")
    assert code == 0
    assert out.count("progress:") >= 2


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--mode", "warp"], ["unknown mode 'warp'"]),
        (["-f", "/nonexistent/script.sql"], ["/nonexistent/script.sql"]),
        (["-c", "0"], ["-c/--concurrency", "at least 1"]),
        (["-n", "-5"], ["-n/--queries"]),
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
    code, _, err = _cli("run", "--dsn", make_conninfo(**params), "-n", "5")
    _one_line_error(code, err, "no_such_role_dbload")
    assert "hunter2" not in err


def test_password_never_shown(seeded_dsn: str, tmp_path: Path) -> None:
    """Trust auth ignores the password, so the run succeeds and must hide it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(seeded_dsn)
    params["password"] = "s3cret-pw-xyz"
    out_file = tmp_path / "r.json"
    code, out, err = _cli(
        "run", "--dsn", make_conninfo(**params), "-n", "5", "--json", str(out_file)
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
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("database:")
    time.sleep(1.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.startswith("dbload: error: interrupted")
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
    assert data["errors"] == {"22012": data["transactions"]["failed"]}


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
    assert proc.stdout is not None
    first = proc.stdout.readline()
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
    assert "Traceback" not in err and err.startswith("dbload: error: interrupted")
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
    proc = _start_long_run(seeded_dsn, tmp_path, mode, "--json", str(out_file))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["dbload: error: interrupted"]
    assert not out_file.exists()  # nothing half-written either
