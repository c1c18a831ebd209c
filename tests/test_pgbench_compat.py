"""Scripts are shared with pgbench both ways, against the same data.

dbload's built-ins run unchanged in ``pgbench -f`` and pgbench's own built-in
scripts run unchanged in dbload.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.workload.parser import builtin_names

PGBENCH = shutil.which("pgbench")
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="pgbench is not on PATH")


@needs_pgbench
@pytest.mark.parametrize("name", ["select", "tpcb", "join", "aggregate", "slow"])
def test_builtin_runs_unchanged_in_pgbench(
    seeded_dsn: str, name: str, restore_balances: None
) -> None:
    assert name in builtin_names()
    script = files("dbload") / "queries" / f"{name}.sql"
    proc = subprocess.run(
        [str(PGBENCH), "-n", "-M", "prepared", "-t", "3", "-c", "2", "-f", str(script), seeded_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "number of failed transactions: 0" in proc.stdout


@needs_pgbench
@pytest.mark.parametrize("builtin", ["tpcb-like", "simple-update", "select-only"])
def test_pgbench_builtin_runs_unchanged_in_dbload(
    seeded_dsn: str, builtin: str, tmp_path: Path, restore_balances: None
) -> None:
    shown = subprocess.run(
        [str(PGBENCH), f"--show-script={builtin}"], capture_output=True, text=True, check=True
    )
    # pgbench prints a header line before the script itself, on stderr
    text = shown.stdout or shown.stderr
    lines = [line for line in text.splitlines() if not line.startswith('"')]
    script = tmp_path / f"{builtin}.sql"
    script.write_text("\n".join(lines) + "\n")
    options = prepare_options(files=[str(script)], mode="async", concurrency=2, transactions=20)
    result = run_on(Database(kind="dsn", dsn=seeded_dsn), 1, options)
    assert (result.ok, result.failed) == (20, 0)
