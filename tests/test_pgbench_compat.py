"""Scripts are shared with pgbench both ways, against the same data.

dbload's built-ins run unchanged in ``pgbench -f`` and pgbench's own built-in
scripts run unchanged in dbload.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from dbload.api import prepare_options, run_on
from dbload.database.resolve import Database
from dbload.errors import WorkloadError
from dbload.workload.expr import EvalError, ExprError, compile_expression
from dbload.workload.parser import builtin_names, parse_script

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


# -- pgbench 15 is the judge of the script language ---------------------------


def _pgbench(dsn: str, tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "judge.sql"
    script.write_text(text)
    return subprocess.run(
        [str(PGBENCH), "-n", "-t", "1", "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _shown(value: object) -> str:
    """A value as pgbench's debug() prints it."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"int {value}"
    assert isinstance(value, float)
    if math.isnan(value):
        return "double NaN"
    if math.isinf(value):
        return "double Infinity" if value > 0 else "double -Infinity"
    return f"double {value:.15g}"


@needs_pgbench
@pytest.mark.parametrize(
    "expression",
    [
        "~1 + 2", "~1 | 2", "-~1", "- - 1", "not 1 < 2", "1 < 2 < 3", "1 = 1 = 1",
        "-9223372036854775808", "9223372036854775808", "99999999999999999999",
        "1e400", "1e-310", "0e-400", "1.", "1.0 / 0", "0.0 / 0", "-1.0 / 0", "1 / 0",
        "exp(1000)", "pow(0, -1)", "pow(-8, 0.5)", "pow(-10, 1001.0)", "sqrt(-1)",
        "ln(0)", "ln(-1)", "~1e308", "int(1e308 * 10)", "abs(-9223372036854775807 - 1)",
        "1 << 64", "1 << -1", "1 << 63", "1 >> 65", "-8 >> 1", "1 << 2.5",
        "(-9223372036854775807 - 1) / -1", "(-9223372036854775807 - 1) % -1",
        "9223372036854775807 = 9223372036854775808.0", "least(1, 0.0 / 0)",
        "greatest(0.0 / 0, 1)", "least(1, 2.0)", "random(0, 9223372036854775807)",
        "true + 1", "1 and 2", "not 0", "true and 1", "sqrt(true)", "random(true, 3)",
        "case when 1 then 2 else 3 end", "case when false then 1 / 0 else 3 end",
        "false and 1 / 0 = 1", "random_zipfian(1, 100, 1.0)", "random_gaussian(1, 10, 1.9)",
        "random_exponential(1, 10, 0)", "-0.0", "5.5 % 2", "int(-0.5)", "12abc", "0x10",
        "(" * 500 + "1" + ")" * 500,
    ],
)  # fmt: skip
def test_expression_values_match_pgbench(dsn: str, tmp_path: Path, expression: str) -> None:
    proc = _pgbench(dsn, tmp_path, f"\\set x debug({expression})\n")
    found = re.search(r"debug\(script=0,command=1\): (.*)", proc.stderr)
    theirs = found.group(1) if found else "error"
    try:
        ours = _shown(compile_expression(expression).evaluate({}, random.Random(1)))
    except (ExprError, EvalError):
        ours = "error"
    assert ours == theirs, proc.stderr


@needs_pgbench
@pytest.mark.parametrize(
    "text",
    [
        "\\sleep 10ms\nSELECT 1;",
        "\\sleep -1\nSELECT 1;",
        "\\sleep +5 us\nSELECT 1;",
        "SELECT 1;\n\\sleep 10ms s",
        "SELECT 1;\n\\sleep 1e3 us",
        "SELECT 1;\n\\sleep 5 5",
        "SELECT 1;\n\\sleep 1 ms x",
        "SELECT 1;\n\n\\set x 1 < 2 < 3",
        "SELECT 1;\n\\set x 9223372036854775808",
        "\\set x " + "(" * 9996 + "1" + ")" * 9996 + "\nSELECT :x;",
        "SELECT 1;\n\\set x " + "(" * 9997 + "1" + ")" * 9997,
    ],
)
def test_scripts_are_accepted_and_refused_like_pgbench(dsn: str, tmp_path: Path, text: str) -> None:
    proc = _pgbench(dsn, tmp_path, text)
    # pgbench exits 1 for a script it cannot parse, naming the line
    refused = re.search(r"judge\.sql:(\d+): ", proc.stderr)
    assert (proc.returncode == 1) == (refused is not None), proc.stderr
    try:
        parse_script(text, name="judge", source="judge.sql")
    except WorkloadError as exc:
        assert refused is not None, f"pgbench accepts it, dbload says: {exc}"
        assert str(exc).startswith(f"judge.sql:{refused.group(1)}: ")
    else:
        assert refused is None, f"dbload accepts it, pgbench says: {proc.stderr}"
