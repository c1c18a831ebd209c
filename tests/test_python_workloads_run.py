"""Python workloads run for real (`dbload run -f tasks.py`), every mode and
driver: named steps as per-statement rows, driver errors by SQLSTATE, other
exceptions by type, a .py/.sql weight mix, statement timeout and Ctrl-C on
a transaction that never returns, seeding what the module names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from dbload.cli import app
from tpcb_totals import tpcb_totals

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SELECT_SQL = Path(__file__).resolve().parent.parent / "queries" / "select.sql"
runner = CliRunner()


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _run(dsn: str, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out_file = tmp_path / "r.json"
    result = runner.invoke(
        app, ["run", "--dsn", dsn, "--seed", "5", *args, "--json", str(out_file)]
    )
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(out_file.read_text()) if out_file.exists() else {}
    return result.exit_code, data, result.stderr


def _rows(data: dict[str, Any]) -> dict[str, int]:
    return {s["sql"]: s["count"] for s in data["statements"]["detail"]}


CELLS = [
    ("sequential", "psycopg", "raw_tpcb.py"),
    ("threads", "psycopg", "raw_tpcb.py"),
    ("threads", "sqlalchemy", "orm_tpcb.py"),
    ("threads", "sqlalchemy", "core_tpcb.py"),
    ("async", "asyncpg", "raw_tpcb.py"),
    ("async", "psycopg", "raw_tpcb.py"),
    ("async", "sqlalchemy", "orm_tpcb.py"),
    ("async", "sqlalchemy+psycopg", "orm_tpcb.py"),
    ("async", "sqlalchemy", "core_tpcb.py"),
    ("processes", "asyncpg", "raw_tpcb.py"),
    ("processes", "sqlalchemy", "orm_tpcb.py"),
]


@pytest.mark.parametrize(("mode", "driver", "example"), CELLS)
def test_the_tpcb_examples_run_in_every_mode_and_driver(
    seeded_dsn: str, restore_balances: None, tmp_path: Path, mode: str, driver: str, example: str
) -> None:
    jobs = ["-j", "2"] if mode == "processes" else []
    before = tpcb_totals(seeded_dsn)
    code, data, err = _run(
        seeded_dsn, tmp_path, "--mode", mode, "--driver", driver, "-c", "4", *jobs,
        "-n", "80", "-f", str(EXAMPLES / example),
    )  # fmt: skip
    assert code == 0, err
    assert data["transactions"]["ok"] == 80 and data["transactions"]["failed"] == 0
    rows = _rows(data)
    for step in ("account", "teller", "branch"):
        assert rows[f'step "{step}"'] == 80, rows
    count, delta, accounts, tellers, branches = (
        a - b for a, b in zip(tpcb_totals(seeded_dsn), before, strict=True)
    )
    assert count == 80 and delta == accounts == tellers == branches  # all four got each delta


def test_sql_and_python_scripts_mix_by_weight(seeded_dsn: str, tmp_path: Path) -> None:
    tasks = _write(
        tmp_path,
        "lookup.py",
        """\
        def transaction(db, ctx):
            with ctx.step("lookup"):
                aid = ctx.random.randint(1, 100000 * ctx.scale)
                db.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s", (aid,))
        """,
    )
    code, data, err = _run(
        seeded_dsn, tmp_path, "--mode", "threads", "-c", "2", "-n", "400",
        "-f", f"{SELECT_SQL}@1", "-f", f"{tasks}@3",
    )  # fmt: skip
    assert code == 0, err
    counts = {s["name"]: s["count"] for s in data["per_script"]}
    assert sum(counts.values()) == 400
    assert 0.65 < counts[tasks] / 400 < 0.85  # weight 3 of 4
    assert _rows(data)['step "lookup"'] == counts[tasks]


@pytest.mark.parametrize(
    ("mode", "driver"),
    [("threads", "sqlalchemy"), ("async", "sqlalchemy"), ("async", "sqlalchemy+psycopg")],
)
@pytest.mark.parametrize("with_script", [False, True])
def test_an_orm_session_commits_only_what_it_commits(
    seeded_dsn: str, tmp_path: Path, mode: str, driver: str, with_script: bool
) -> None:
    # the session runs in the dialect's isolation, never AUTOCOMMIT (the
    # scripts' mode): its work is rolled back unless it commits, alone or
    # mixed with a .sql script
    with psycopg.connect(seeded_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orm_probe (client int, kept bool)")
    try:
        tasks = _write(
            tmp_path,
            "probe.py",
            """\
            from sqlalchemy import text

            KEEP, DROP = text("INSERT INTO orm_probe VALUES (1, true)"), text(
                "INSERT INTO orm_probe VALUES (1, false)"
            )

            def transaction(db, ctx):
                db.execute(DROP)
                db.rollback()
                db.execute(KEEP)
                db.commit()
                db.execute(DROP)

            async def async_transaction(db, ctx):
                await db.execute(DROP)
                await db.rollback()
                await db.execute(KEEP)
                await db.commit()
                await db.execute(DROP)
            """,
        )
        files = ["-f", f"{tasks}@1"] + (["-f", f"{SELECT_SQL}@1"] if with_script else [])
        code, data, err = _run(
            seeded_dsn, tmp_path, "--mode", mode, "--driver", driver, "-c", "2", "-n", "20", *files
        )
        assert code == 0, err
        calls = {s["name"]: s["count"] for s in data["per_script"]}[tasks]
        with psycopg.connect(seeded_dsn) as conn:
            kept = conn.execute(
                "SELECT count(*) FILTER (WHERE kept), count(*) FROM orm_probe"
            ).fetchone()
        assert kept == (calls, calls)
    finally:
        with psycopg.connect(seeded_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE orm_probe")


def test_a_driver_error_is_counted_by_sqlstate(seeded_dsn: str, tmp_path: Path) -> None:
    tasks = _write(
        tmp_path,
        "div0.py",
        """\
        async def transaction(db, ctx):
            await db.execute("SELECT 1/0")
        """,
    )
    code, data, _ = _run(
        seeded_dsn, tmp_path, "--mode", "async", "-c", "2", "-n", "10", "-f", tasks
    )
    assert code == 1  # nothing succeeded
    assert data["errors"]["22012"]["count"] == 10


def test_another_exception_fails_the_transaction_with_its_type(
    seeded_dsn: str, tmp_path: Path
) -> None:
    tasks = _write(
        tmp_path,
        "raises.py",
        """\
        def transaction(db, ctx):
            if ctx.random.random() < 0.5:
                raise LookupError("no such order\\nsecond line")
            db.execute("SELECT 1")
        """,
    )
    code, data, err = _run(
        seeded_dsn, tmp_path, "--mode", "threads", "-c", "2", "-n", "60", "-f", tasks
    )
    assert code == 0, err
    failed = data["transactions"]["failed"]
    assert 0 < failed < 60 and data["errors"]["LookupError"]["count"] == failed
    assert data["errors"]["LookupError"]["example"] == "no such order"


def test_an_exception_on_every_call_is_one_line(seeded_dsn: str, tmp_path: Path) -> None:
    tasks = _write(
        tmp_path, "always.py", "def transaction(db, ctx):\n    raise RuntimeError('down')\n"
    )
    code, _, err = _run(seeded_dsn, tmp_path, "--mode", "sequential", "-n", "5", "-f", tasks)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("dbload: error:")]
    assert len(lines) == 1 and "RuntimeError" in lines[0] and "down" in lines[0], err


@pytest.mark.parametrize(("mode", "driver"), [("threads", "psycopg"), ("async", "asyncpg")])
def test_a_transaction_left_open_fails_and_is_rolled_back(
    seeded_dsn: str, tmp_path: Path, mode: str, driver: str
) -> None:
    # pgbench aborts a client whose script ends inside a block; a Python
    # workload's forgotten COMMIT fails that transaction only
    tasks = _write(
        tmp_path,
        "open.py",
        """\
        def transaction(db, ctx):
            db.execute("BEGIN")
            db.execute("SELECT 1")

        async def async_transaction(db, ctx):
            await db.execute("BEGIN")
            await db.execute("SELECT 1")
        """,
    )
    args = ("--mode", mode, "--driver", driver, "-c", "2", "-n", "6", "-f", tasks)
    _, data, _ = _run(seeded_dsn, tmp_path, *args)
    assert data["errors"]["OpenTransaction"]["count"] == 6  # every client went on
    assert "rolled back" in data["errors"]["OpenTransaction"]["example"]
    assert data["transactions"]["ok"] == 0


def test_an_unknown_step_name_fails_the_transaction(seeded_dsn: str, tmp_path: Path) -> None:
    tasks = _write(
        tmp_path,
        "dyn.py",
        """\
        def transaction(db, ctx):
            name = "dyn" + "amic"
            with ctx.step(name):
                db.execute("SELECT 1")
        """,
    )
    _, data, _ = _run(seeded_dsn, tmp_path, "--mode", "sequential", "-n", "3", "-f", tasks)
    assert data["errors"]["StepError"]["count"] == 3
    assert "string literal" in data["errors"]["StepError"]["example"]


def test_a_failed_step_is_named_by_file_and_line(seeded_dsn: str, tmp_path: Path) -> None:
    tasks = _write(
        tmp_path,
        "fails.py",
        """\
        def transaction(db, ctx):
            with ctx.step("ok"):
                db.execute("SELECT 1")
            with ctx.step("bad"):
                db.execute("SELECT 1/0")
        """,
    )
    _, data, _ = _run(seeded_dsn, tmp_path, "--mode", "sequential", "-n", "2", "-f", tasks)
    assert data["errors"]["22012"]["count"] == 2
    assert _rows(data)['step "ok"'] == 2
    assert f"{tasks}:4" in json.dumps(data["errors"]) or f"{tasks}:4" in json.dumps(
        data["statements"]
    )


def test_a_transaction_that_never_returns_meets_the_statement_timeout(
    seeded_dsn: str, tmp_path: Path
) -> None:
    tasks = _write(
        tmp_path,
        "stuck.py",
        """\
        async def transaction(db, ctx):
            await db.execute("SELECT pg_sleep(60)")
        """,
    )
    code, data, _ = _run(
        seeded_dsn, tmp_path, "--mode", "async", "-c", "2", "-n", "4",
        "--statement-timeout", "200ms", "-f", tasks,
    )  # fmt: skip
    assert code == 1
    assert data["errors"]["57014"]["count"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "async"])
def test_ctrl_c_stops_a_python_transaction_that_never_returns(
    seeded_dsn: str, tmp_path: Path, mode: str
) -> None:
    body = (
        "import time\n\ndef transaction(db, ctx):\n    time.sleep(3600)\n"
        if mode == "sequential"
        else "import asyncio\n\nasync def transaction(db, ctx):\n    await asyncio.sleep(3600)\n"
    )
    tasks = _write(tmp_path, "forever.py", body)
    out_file = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dbload",
            "run",
            "--mode",
            mode,
            "-f",
            tasks,
            "--json",
            str(out_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DBLOAD_DSN": seeded_dsn},
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    if not first.startswith("database:"):
        proc.kill()
        pytest.fail(f"the run did not start: {first!r}")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert json.loads(out_file.read_text())["interrupted"] is True


def test_a_python_workload_seeds_the_tables_it_names(scratch_dsn: str, tmp_path: Path) -> None:
    code, data, err = _run(
        scratch_dsn, tmp_path, "--mode", "threads", "--driver", "sqlalchemy", "-n", "5",
        "-f", str(EXAMPLES / "orm_tpcb.py"),
    )  # fmt: skip
    assert code == 0, err
    assert data["transactions"]["ok"] == 5 and data["scale"] == 1
