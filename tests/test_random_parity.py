"""pgbench is the judge of the random functions: with the same --random-seed,
dbload draws the values pgbench 15 draws, client by client.

Each comparison runs pgbench (the one on PATH) and dbload on the same fresh
database and compares the rows they write, or, for the expression
evaluator alone, the values pgbench's debug() prints. Nothing here says what
a draw should be: pgbench's output is the expected value.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbload.workload.expr import PgPrng, client_rng, compile_expression
from dbload.workload.model import Workload
from dbload.workload.parser import parse_script
from dbload.workload.stream import QUERY, ParameterStream, Request

PGBENCH = shutil.which("pgbench")
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="pgbench is not on PATH")
TIMEOUT = 120

PROBE = (
    "CREATE TABLE probe (id bigserial PRIMARY KEY, client int, script int,"
    " r bigint, g bigint, e bigint, z bigint, w bigint, x bigint)"
)

# Every function, fixed and variable bounds (:hi is assigned, so not folded),
# an empty range (pgbench draws nothing for it: the next draw must line up)
# and a 63-bit range.
SCRIPT = """\
\\set r random(1, 1000000)
\\set g random_gaussian(1, 1000000, 2.5)
\\set e random_exponential(1, 1000000, 3.0)
\\set z random_zipfian(1, 1000000, 1.5)
\\set hi random(100, 200)
\\set same random(7, 7)
\\set w random(:same, :hi * 1000)
\\set x random(-4611686018427387904, 4611686018427387902)
INSERT INTO probe (client, script, r, g, e, z, w, x)
  VALUES (:client_id, 0, :r, :g, :e, :z, :w, :x);
"""

# Expressions for the evaluator alone, checked against pgbench's debug():
# parameters at their edges, skewed and tiny ranges, double arguments.
EXPRESSIONS = (
    "random(1, 100000 * :scale)",
    "random(0, 1)",
    "random(-3, 3)",
    "random(1.9, 10.2)",
    "random_gaussian(-5, 5, 2.0)",
    "random_gaussian(1, 10, 100)",
    "random_exponential(0, 9, 0.001)",
    "random_exponential(1, 1000, 20)",
    "random_zipfian(1, 1000, 1.001)",
    "random_zipfian(1, 10, 1000)",
    "random_zipfian(1, 2, 3.5)",
    "random(1, 9223372036854775807)",
)


def _psql(dsn: str, *sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in sql:
            cur = conn.execute(statement)
            if cur.description is not None:
                rows = list(cur.fetchall())
        return rows


def _probe(dsn: str) -> dict[int, list[tuple[Any, ...]]]:
    """What each client wrote, in the order it wrote it (its ids increase)."""
    rows = _psql(dsn, "SELECT client, script, r, g, e, z, w, x FROM probe ORDER BY client, id")
    per_client: dict[int, list[tuple[Any, ...]]] = {}
    for client, *values in rows:
        per_client.setdefault(client, []).append(tuple(values))
    return per_client


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_DEBUG"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def run_pgbench(dsn: str, scripts: list[str], clients: int, per_client: int, seed: int) -> None:
    assert PGBENCH is not None
    command = [PGBENCH, "-n", "-c", str(clients), "-t", str(per_client), f"--random-seed={seed}"]
    for script in scripts:
        command += ["-f", script]
    _run([*command, dsn])


def run_dbload(
    dsn: str, scripts: list[str], clients: int, per_client: int, seed: int, mode: str
) -> None:
    command = [sys.executable, "-m", "dbload", "run", "--mode", mode, "--quiet", "--no-init"]
    command += ["-c", str(clients), "-t", str(per_client), "--random-seed", str(seed)]
    for script in scripts:
        command += ["-f", script]
    _run([*command, "--dsn", dsn])


def both_write(
    dsn: str, scripts: list[str], clients: int, per_client: int, seed: int, mode: str
) -> tuple[dict[int, list[tuple[Any, ...]]], dict[int, list[tuple[Any, ...]]]]:
    """The probe rows of pgbench's run, then of dbload's, per client."""
    _psql(dsn, PROBE)
    run_pgbench(dsn, scripts, clients, per_client, seed)
    theirs = _probe(dsn)
    _psql(dsn, "TRUNCATE probe")
    run_dbload(dsn, scripts, clients, per_client, seed, mode)
    return theirs, _probe(dsn)


@needs_pgbench
@pytest.mark.slow
@pytest.mark.parametrize("clients", [1, 3])
@pytest.mark.parametrize("seed", [1, 42, 2**64 - 1])
def test_random_functions_write_pgbench_values_per_client(
    make_database: Callable[[], str], tmp_path: Path, seed: int, clients: int
) -> None:
    script = tmp_path / "random.sql"
    script.write_text(SCRIPT)
    theirs, ours = both_write(make_database(), [str(script)], clients, 6, seed, "sequential")
    assert sorted(theirs) == list(range(clients))
    assert all(len(rows) == 6 for rows in theirs.values())
    assert ours == theirs


@needs_pgbench
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["threads", "async", "processes"])
def test_every_mode_writes_pgbench_values(
    make_database: Callable[[], str], tmp_path: Path, mode: str
) -> None:
    script = tmp_path / "random.sql"
    script.write_text(SCRIPT)
    theirs, ours = both_write(make_database(), [str(script)], 3, 4, 5, mode)
    assert len(theirs) == 3
    assert ours == theirs


@needs_pgbench
@pytest.mark.slow
def test_choosing_a_script_by_weight_leaves_the_draws_alone(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    # pgbench chooses scripts from a per-thread state, apart from each
    # client's: with two scripts drawing alike, a client's sequence of values
    # is pgbench's whichever scripts run (dbload's choice is its own).
    paths = []
    for tag in (1, 2):
        path = tmp_path / f"s{tag}.sql"
        path.write_text(
            "\\set r random(1, 1000000)\n"
            f"INSERT INTO probe (client, script, r) VALUES (:client_id, {tag}, :r);\n"
        )
        paths.append(f"{path}@{tag}")
    theirs, ours = both_write(make_database(), paths, 2, 12, 9, "sequential")

    def draws(rows: dict[int, list[tuple[Any, ...]]]) -> dict[int, list[Any]]:
        return {client: [row[1] for row in values] for client, values in rows.items()}

    assert len(theirs) == 2
    assert draws(ours) == draws(theirs)


def _debug_values(stderr: str) -> list[str]:
    return re.findall(r"^debug\(script=0,command=\d+\): (.*)$", stderr, flags=re.MULTILINE)


@needs_pgbench
@pytest.mark.parametrize("seed", [0, 7, 123456789])
def test_expression_draws_equal_pgbench_debug(dsn: str, tmp_path: Path, seed: int) -> None:
    script = tmp_path / "debug.sql"
    script.write_text(
        "".join(f"\\set v{i} debug({text})\n" for i, text in enumerate(EXPRESSIONS)) + "SELECT 1;\n"
    )
    assert PGBENCH is not None
    proc = _run(
        [PGBENCH, "-n", "-c", "1", "-t", "25", f"--random-seed={seed}", "-f", str(script), dsn]
    )
    theirs = _debug_values(proc.stderr)
    rng = client_rng(seed, 0)
    compiled = [compile_expression(text) for text in EXPRESSIONS]
    ours = [f"int {c.evaluate({'scale': 1}, rng)}" for _ in range(25) for c in compiled]
    assert len(theirs) == len(ours)
    assert ours == theirs


# -- the per-client state, without pgbench --------------------------------------


def test_a_client_state_depends_only_on_the_seed_and_the_client() -> None:
    # pgbench seeds client k with the k-th draw of one base sequence: how many
    # clients there are, or which run the others are in, changes nothing
    base = PgPrng(11)
    seeds = [base.uint64() for _ in range(4)]
    for client, seed in enumerate(seeds):
        assert client_rng(11, client).getstate() == PgPrng(seed).getstate()
    assert client_rng(11, 2).getstate() != client_rng(12, 2).getstate()


def test_state_round_trips_through_getstate() -> None:
    rng = client_rng(3, 1)
    state = rng.getstate()
    first = [rng.random(), rng.getrandbits(17), rng.uint64()]
    rng.setstate(state)
    assert [rng.random(), rng.getrandbits(17), rng.uint64()] == first


def _workload(text: str) -> Workload:
    script, statements = parse_script(text, name="t", source="t.sql", defines={})
    return Workload(name="t", scripts=(script,), statements=tuple(statements), defines={})


def _values(stream: ParameterStream, retry: bool = False) -> list[tuple[str | None, ...]]:
    txn = stream.transaction(retry=retry)
    seen: list[Request] = []
    try:
        request = next(txn)
        while True:
            seen.append(request)
            request = txn.send(None)
    except StopIteration:
        pass
    return [r[2] for r in seen if r[0] is QUERY]


def test_a_retry_replays_the_draws_and_the_run_goes_on_as_without_it() -> None:
    # pgbench's rule: a retried transaction starts again from the state it
    # started with, so the run's values are those of a run without the retry
    text = "\\set a random(1, 1000000)\n\\set b random_zipfian(1, 100, 1.2)\nSELECT :a, :b;\n"
    straight = ParameterStream(_workload(text), seed=21, client_id=1, scale=1)
    retried = ParameterStream(_workload(text), seed=21, client_id=1, scale=1)
    expected = [_values(straight) for _ in range(3)]
    first = _values(retried)
    assert _values(retried, retry=True) == first == expected[0]
    assert [_values(retried) for _ in range(2)] == expected[1:]
