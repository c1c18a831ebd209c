"""The script language at run time, in every mode, against a real PostgreSQL:
what the executors do with the interpreter's requests (\\gset, \\if,
\\shell, pipelines, -M, -C, open transactions, scripts that create what
they use). The protocol alone is tests/test_stream.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import create_database, drop_database
from dbload.config import Plan
from dbload.errors import WorkloadError
from dbload.measure.recorder import Recorder
from dbload.modes import MODES, get_executor
from dbload.workload.parser import load_workload
from drivers_matrix import MODE_DRIVERS, SQLALCHEMY_DRIVERS, label_of, pairs, with_query_modes
from test_cli import _cli, _one_line_error

ALL_MODES = sorted(MODES)
PSYCOPG_MODES = ["sequential", "threads"]
ASYNCPG_MODES = ["async", "processes"]
QUERY_MODES = ["prepared", "extended", "simple"]


@pytest.fixture(scope="module")
def probe_dsn(pg_server: str) -> Iterator[str]:
    """A database of this module's own with the probe table scripts write into."""
    url = create_database(pg_server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (k text, v text, n int)")
    yield url
    drop_database(pg_server, url)


@pytest.fixture
def probe(probe_dsn: str) -> Iterator[str]:
    """The probe database, its table emptied before and after the test."""
    with psycopg.connect(probe_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE probe")
    yield probe_dsn
    with psycopg.connect(probe_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE probe")


def rows(dsn: str, query: str = "SELECT k, v, n FROM probe ORDER BY k, v, n") -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def run(
    dsn: str,
    tmp_path: Path,
    text: str,
    mode: str,
    *,
    n: int = 2,
    clients: int = 1,
    recorder: Recorder | None = None,
    defines: dict[str, str] | None = None,
    **plan: Any,
) -> Recorder:
    """Run ``text`` as a script file for ``n`` transactions; the recorder."""
    path = tmp_path / "s.sql"
    path.write_text(text)
    workload = load_workload([str(path)], defines=defines)
    full = Plan(
        workload=workload, mode=mode, concurrency=clients, transactions=n, duration_s=None,
        warmup_s=0.0, seed=5, scale=1, dsn=dsn, **plan,
    )  # fmt: skip
    recorder = recorder or Recorder(len(workload.statements))
    executor = get_executor(mode)
    executor.run(full, recorder, threading.Event())
    if "driver" in plan:  # the run was on the driver asked for, not the mode's default
        assert executor.driver.startswith(label_of(plan["driver"])), executor.driver
    return recorder


# -- \gset, \aset ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver", "query_mode"), with_query_modes())
def test_gset_carries_values_and_null_into_the_next_query(
    probe: str, tmp_path: Path, mode: str, driver: str, query_mode: str
) -> None:
    script = (
        "SELECT 40 + 2 AS v, NULL::text AS nothing, true AS b \\gset p_\n"
        "INSERT INTO probe VALUES (:p_b, :p_v, :p_nothing);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=3, query_mode=query_mode, driver=driver)
    assert (recorder.ok, recorder.failed) == (3, 0)
    # the values as PostgreSQL's text (a boolean is "t"), NULL as SQL NULL
    assert rows(probe) == [("t", "42", None)] * 3


@pytest.mark.slow
@pytest.mark.parametrize("count", [0, 2])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_gset_on_zero_or_two_rows_fails_the_transaction(
    probe: str, tmp_path: Path, mode: str, count: int
) -> None:
    script = (
        "INSERT INTO probe VALUES ('before');\n"
        f"SELECT g FROM generate_series(1, {count}) g \\gset\n"
        "INSERT INTO probe VALUES ('after', :g);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=3)
    assert (recorder.ok, recorder.failed) == (0, 1)  # pgbench aborts the client
    message = recorder.error_examples["script"]
    assert message.endswith(f"s.sql:2: cannot evaluate: \\gset: expected one row, got {count}")
    assert rows(probe) == [("before", None, None)]


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver"), pairs())
def test_aset_stores_every_row_the_last_one_winning(
    probe: str, tmp_path: Path, mode: str, driver: str
) -> None:
    script = (
        "\\set g 0\n"
        "SELECT g FROM generate_series(1, 3) g \\aset\n"
        "INSERT INTO probe VALUES ('a', :g);\n"
        "SELECT g FROM generate_series(1, 0) g \\aset\n"
        "INSERT INTO probe VALUES ('b', :g);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=1, driver=driver)
    assert recorder.ok == 1
    assert rows(probe) == [("a", "3", None), ("b", "3", None)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", PSYCOPG_MODES)
def test_gset_and_aset_on_a_compound_in_simple_mode(probe: str, tmp_path: Path, mode: str) -> None:
    script = (
        "SELECT 1 AS a \\; SELECT 2 AS b \\aset\n"
        "SELECT 3 AS c \\; SELECT 4 AS c \\gset\n"
        "INSERT INTO probe VALUES (:a, :b, :c);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=1, query_mode="simple")
    assert recorder.ok == 1
    assert rows(probe) == [("1", "2", 4)]


@pytest.mark.parametrize("mode", ASYNCPG_MODES)
def test_gset_on_a_compound_is_refused_in_asyncpg_modes(tmp_path: Path, mode: str) -> None:
    script = "SELECT 1;\nSELECT 1 AS a \\; SELECT 2 AS b \\gset\n"
    with pytest.raises(WorkloadError, match=r"s.sql:2: .*asyncpg reads no rows"):
        run("postgresql://nowhere.invalid/x", tmp_path, script, mode, query_mode="simple")


# -- \if ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES)
def test_if_elif_else_choose_by_the_values_of_each_client(
    probe: str, tmp_path: Path, mode: str
) -> None:
    script = (
        "SELECT :client_id * 10 AS v \\gset\n"
        "\\if :v = 0\n"
        "INSERT INTO probe VALUES ('zero', :client_id);\n"
        "\\elif :v >= 20\n"
        "  \\if :v = 20\n"
        "INSERT INTO probe VALUES ('twenty', :client_id);\n"
        "  \\else\n"
        "INSERT INTO probe VALUES ('more', :client_id);\n"
        "  \\endif\n"
        "\\else\n"
        "INSERT INTO probe VALUES ('ten', :client_id);\n"
        "\\endif\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=4, clients=4)
    assert recorder.ok == 4
    assert rows(probe) == [("more", "3", None), ("ten", "1", None), ("twenty", "2", None),
                           ("zero", "0", None)]  # fmt: skip


# -- \shell, \setshell ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES)
def test_setshell_sets_a_variable_and_shell_time_counts_in_latency(
    probe: str, tmp_path: Path, mode: str
) -> None:
    script = (
        "\\set a 20\n"
        "\\setshell r echo :a\n"
        "\\shell sleep 0.05\n"
        "\\set n :r + 1\n"
        "INSERT INTO probe VALUES ('r', :r, :n);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=2)
    assert (recorder.ok, recorder.failed) == (2, 0)
    assert rows(probe) == [("r", "20", 21)] * 2
    # a lower bound, not a threshold: each transaction slept 50 ms in \shell
    assert recorder.transactions.get_min_value() >= 50_000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("\\setshell r false", "could not read result of shell command"),
        ("\\setshell r echo forty", 'must return an integer (not "forty")'),
        ("\\shell exit 3", "command failed (exit status 3)"),
    ],
)
@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_failing_shell_command_fails_the_transaction(
    probe: str, tmp_path: Path, mode: str, command: str, reason: str
) -> None:
    script = f"INSERT INTO probe VALUES ('x');\n{command}\nINSERT INTO probe VALUES ('y');\n"
    recorder = run(probe, tmp_path, script, mode, n=3)
    assert (recorder.ok, recorder.failed) == (0, 1)
    assert recorder.error_examples["script"].endswith(reason)
    assert "s.sql:2:" in recorder.error_examples["script"]
    assert rows(probe) == [("x", None, None)]


# -- pipelines --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("query_mode", ["prepared", "extended"])
@pytest.mark.parametrize("mode", PSYCOPG_MODES)
def test_pipeline_runs_its_statements(
    probe: str, tmp_path: Path, mode: str, query_mode: str
) -> None:
    script = (
        "\\set v 5\n"
        "\\startpipeline\n"
        "INSERT INTO probe VALUES ('p', :v);\n"
        "INSERT INTO probe VALUES ('q', :v + 1);\n"
        "\\endpipeline\n"
        "SELECT count(*) AS c FROM probe \\gset\n"
        "INSERT INTO probe VALUES ('count', :c);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=1, query_mode=query_mode)
    assert (recorder.ok, recorder.failed) == (1, 0)
    assert rows(probe) == [("count", "2", None), ("p", "5", None), ("q", "6", None)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", PSYCOPG_MODES)
def test_a_failing_statement_in_a_pipeline_rolls_the_pipeline_back(
    probe: str, tmp_path: Path, mode: str
) -> None:
    script = "\\startpipeline\nINSERT INTO probe VALUES ('p');\nSELECT 1 / 0;\n\\endpipeline\n"
    recorder = run(probe, tmp_path, script, mode, n=2)
    assert (recorder.ok, recorder.failed) == (0, 2)
    assert recorder.errors == {"22012": 2}
    assert rows(probe) == []  # one implicit transaction up to the sync


@pytest.mark.slow
@pytest.mark.parametrize("mode", PSYCOPG_MODES)
def test_startpipeline_twice_fails_the_transaction(probe: str, tmp_path: Path, mode: str) -> None:
    script = "\\startpipeline\nINSERT INTO probe VALUES ('p');\n\\startpipeline\n\\endpipeline\n"
    recorder = run(probe, tmp_path, script, mode, n=3)
    assert (recorder.ok, recorder.failed) == (0, 1)
    assert recorder.error_examples["script"].endswith(
        "s.sql:3: cannot evaluate: \\startpipeline: already in pipeline mode"
    )
    # aborted as pgbench aborts the client: what the pipeline held was never synced
    assert rows(probe) == []


@pytest.mark.parametrize("mode", ASYNCPG_MODES)
def test_pipelines_are_refused_before_the_run_in_asyncpg_modes(tmp_path: Path, mode: str) -> None:
    script = "SELECT 1;\n\\startpipeline\nSELECT 2;\n\\endpipeline\n"
    with pytest.raises(WorkloadError) as caught:
        run("postgresql://nowhere.invalid/x", tmp_path, script, mode)
    assert str(caught.value).endswith(
        "s.sql:2: \\startpipeline: asyncpg has no pipeline mode; run --driver psycopg"
    )


SQLALCHEMY_PAIRS = [(m, d) for m, d in MODE_DRIVERS if d in SQLALCHEMY_DRIVERS]
PIPELINE = "SELECT 1;\n\\startpipeline\nSELECT 2;\n\\endpipeline\n"


@pytest.mark.parametrize(("mode", "driver"), pairs(SQLALCHEMY_PAIRS))
def test_pipelines_are_refused_before_the_run_under_sqlalchemy(
    tmp_path: Path, mode: str, driver: str
) -> None:
    with pytest.raises(WorkloadError) as caught:
        run("postgresql://nowhere.invalid/x", tmp_path, PIPELINE, mode, driver=driver)
    assert str(caught.value).endswith(
        "s.sql:2: \\startpipeline: SQLAlchemy has no pipeline mode; run --driver psycopg"
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("mode", "driver"), pairs(SQLALCHEMY_PAIRS))
def test_simple_mode_is_refused_before_the_run_under_sqlalchemy(
    tmp_path: Path, mode: str, driver: str
) -> None:
    with pytest.raises(WorkloadError) as caught:
        run("postgresql://nowhere.invalid/x", tmp_path, "SELECT 1;\n", mode, driver=driver,
            query_mode="simple")  # fmt: skip
    message = str(caught.value)
    assert message.startswith("-M simple: SQLAlchemy always binds parameters"), message
    assert "\n" not in message
    # what fits the mode instead: asyncpg only where it runs
    assert ("asyncpg" in message.partition("; ")[2]) == (mode in ASYNCPG_MODES), message


@pytest.mark.parametrize(
    ("mode", "driver"),
    [("threads", "sqlalchemy"), ("async", "sqlalchemy"), ("async", "sqlalchemy+psycopg")],
)
@pytest.mark.parametrize("what", ["simple", "pipeline"])
def test_cli_refuses_what_sqlalchemy_cannot_run_in_one_line(
    seeded_dsn: str, tmp_path: Path, mode: str, driver: str, what: str
) -> None:
    script = tmp_path / "s.sql"
    script.write_text(PIPELINE if what == "pipeline" else "SELECT 1;\n")
    extra = ["-M", "simple"] if what == "simple" else []
    code, _, err = _cli(
        "run", "--dsn", seeded_dsn, "-f", str(script), "--mode", mode, "--driver", driver,
        "-n", "1", *extra,
    )  # fmt: skip
    needle = "-M simple: SQLAlchemy" if what == "simple" else "s.sql:2: \\startpipeline: SQLAlchemy"
    _one_line_error(code, err, needle)
    assert code == 2


# -- -M simple | extended | prepared --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver", "query_mode"), with_query_modes())
def test_values_reach_the_server_alike_in_every_query_mode(
    probe: str, tmp_path: Path, mode: str, driver: str, query_mode: str
) -> None:
    script = (
        "\\set i 7 * 6\n"
        "\\set d 2.5\n"
        "\\set nothing NULL\n"
        "\\set j :i\n"
        "INSERT INTO probe VALUES (:q, :i, :j);\n"
        "INSERT INTO probe VALUES (:b, :d, NULL);\n"
        "\\set none :nothing\n"
        "INSERT INTO probe VALUES ('null', :nothing, :none);\n"
    )
    defines = {"q": "it's", "b": "back\\slash 'and' quote"}
    recorder = run(
        probe, tmp_path, script, mode, n=1, query_mode=query_mode, driver=driver, defines=defines
    )
    assert (recorder.ok, recorder.failed) == (1, 0)
    assert rows(probe) == [
        ("back\\slash 'and' quote", "2.5", None),
        ("it's", "42", 42),
        ("null", None, None),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_failed_statement_is_named_by_file_and_line(
    probe: str, tmp_path: Path, mode: str
) -> None:
    """As pgbench names the command a client aborted in: the error's example
    says which statement failed."""
    script = "SELECT 1;\n\\set z 0\nSELECT 1 / :z;\n"
    recorder = run(probe, tmp_path, script, mode, n=1)
    assert recorder.errors == {"22012": 1}
    assert recorder.error_examples["22012"] == f"{tmp_path / 's.sql'}:3: division by zero"


def test_simple_mode_pastes_numbers_as_numbers_and_negatives_safely(
    probe: str, tmp_path: Path
) -> None:
    """-M simple pastes a number as a numeric literal, as pgbench does (1e20
    is not the text '1e+20'), and a negative one safely (``10 - :v`` with
    v = -5 would read ``10 - -5``: a comment)."""
    script = (
        "\\set v -5\n"
        "\\set big 1e20\n"
        "INSERT INTO probe VALUES ('neg', (10 - :v)::text, 10 - :v);\n"
        "INSERT INTO probe VALUES ('big', (:big)::text, NULL);\n"
    )
    recorder = run(probe, tmp_path, script, "sequential", n=1, query_mode="simple")
    assert (recorder.ok, recorder.failed) == (1, 0)
    # quoted, 1e+20 would have stayed the text '1e+20'
    assert rows(probe) == [("big", "100000000000000000000", None), ("neg", "15", 15)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES)
def test_simple_mode_runs_a_compound_as_one_request(probe: str, tmp_path: Path, mode: str) -> None:
    script = (
        "\\set v 3\nINSERT INTO probe VALUES ('a', :v) \\; INSERT INTO probe VALUES ('b', :v);\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=1, query_mode="simple")
    assert (recorder.ok, recorder.failed) == (1, 0)
    assert recorder.statement_count == 1
    assert rows(probe) == [("a", "3", None), ("b", "3", None)]


NAMED = "SELECT count(*) AS named FROM pg_prepared_statements \\gset\n"


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver", "query_mode"), with_query_modes())
def test_only_prepared_mode_leaves_named_statements_on_the_server(
    probe: str, tmp_path: Path, mode: str, driver: str, query_mode: str
) -> None:
    script = NAMED + "INSERT INTO probe VALUES ('named', :named);\n"
    recorder = run(probe, tmp_path, script, mode, n=2, query_mode=query_mode, driver=driver)
    assert recorder.ok == 2
    named = {int(v) for _, v, _ in rows(probe)}
    if query_mode == "prepared":
        assert min(named) >= 1  # at least the statement counting them
    else:
        assert named == {0}  # unnamed statements (extended) or none (simple)


# -- a transaction left open --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_script_ending_inside_a_transaction_aborts_the_client(
    probe: str, tmp_path: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    script = "BEGIN;\nINSERT INTO probe VALUES ('open');\n"
    recorder = run(probe, tmp_path, script, mode, n=5, clients=2)
    assert (recorder.ok, recorder.failed) == (0, 2)  # one per client, then aborted
    message = recorder.error_examples["script"]
    assert message.endswith("s.sql: end of script reached without completing the last transaction")
    assert sorted(recorder.incidents) == [f"client {i} aborted: {message}" for i in (0, 1)]
    assert rows(probe) == []  # nothing was committed
    assert "Resetting connection" not in capfd.readouterr().err


# -- scripts that create what they use ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver", "query_mode"), with_query_modes())
def test_a_script_may_create_the_function_it_calls(
    probe: str, tmp_path: Path, mode: str, driver: str, query_mode: str
) -> None:
    script = (
        "CREATE OR REPLACE FUNCTION exec_probe_f(x int) RETURNS int\n"
        "  LANGUAGE sql AS 'SELECT x * 2';\n"
        "INSERT INTO probe VALUES ('f', exec_probe_f(:client_id + 4));\n"
    )
    try:
        recorder = run(probe, tmp_path, script, mode, n=2, query_mode=query_mode, driver=driver)
    finally:
        with psycopg.connect(probe, autocommit=True) as conn:
            conn.execute("DROP FUNCTION IF EXISTS exec_probe_f(int)")
    assert (recorder.ok, recorder.failed) == (2, 0)
    assert rows(probe) == [("f", "8", None)] * 2


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "driver", "query_mode"), with_query_modes())
def test_a_scripts_own_prepare_and_execute_run_alike_in_every_mode(
    probe: str, tmp_path: Path, mode: str, driver: str, query_mode: str
) -> None:
    script = (
        "PREPARE exec_probe_p(int) AS INSERT INTO probe VALUES ('p', $1);\n"
        "EXECUTE exec_probe_p(1);\n"
        "DEALLOCATE exec_probe_p;\n"
    )
    recorder = run(probe, tmp_path, script, mode, n=3, query_mode=query_mode, driver=driver)
    assert (recorder.ok, recorder.failed) == (3, 0)
    assert rows(probe) == [("p", "1", None)] * 3


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_missing_table_is_still_refused_before_the_run(
    probe: str, tmp_path: Path, mode: str
) -> None:
    script = "SELECT 1;\nSELECT * FROM exec_probe_missing;\n"
    with pytest.raises(WorkloadError, match=r"s.sql:2: relation \"exec_probe_missing\""):
        run(probe, tmp_path, script, mode)


# -- -C ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("per_transaction", [False, True])
@pytest.mark.parametrize(("mode", "driver"), pairs())
def test_connect_per_transaction_opens_a_backend_per_transaction(
    probe: str, tmp_path: Path, mode: str, driver: str, per_transaction: bool
) -> None:
    """-C: a backend per transaction, whatever pool the driver has (one
    that gave the connection back to its pool would reuse a backend)."""
    script = "INSERT INTO probe VALUES ('pid', pg_backend_pid()::text);\n"
    recorder = run(probe, tmp_path, script, mode, n=4, driver=driver,
                   connect_per_transaction=per_transaction)  # fmt: skip
    assert (recorder.ok, recorder.failed) == (4, 0)
    pids = {v for _, v, _ in rows(probe)}
    assert len(pids) == (4 if per_transaction else 1)


# -- what the recorder is told -----------------------------------------------------------


class _Seen(Recorder):
    """A real recorder that also keeps who ran which script."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.seen: set[tuple[int, int]] = set()

    def record(self, *args: Any, script: int = 0, client: int = 0, **kwargs: Any) -> None:
        self.seen.add((script, client))
        super().record(*args, script=script, client=client, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "threads", "async"])  # processes: in children
def test_each_transaction_is_recorded_with_its_script_and_client(
    probe: str, tmp_path: Path, mode: str
) -> None:
    (tmp_path / "b.sql").write_text("SELECT 2;\n")
    path = tmp_path / "a.sql"
    path.write_text("SELECT 1;\n")
    workload = load_workload([str(path), str(tmp_path / "b.sql")])
    plan = Plan(
        workload=workload, mode=mode, concurrency=2, transactions=40, duration_s=None,
        warmup_s=0.0, seed=5, scale=1, dsn=probe,
    )  # fmt: skip
    recorder = _Seen(len(workload.statements))
    get_executor(mode).run(plan, recorder, threading.Event())
    assert recorder.ok == 40
    assert recorder.seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("query_mode", ["prepared", "extended"])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_compound_outside_simple_mode_is_refused_before_connecting(
    tmp_path: Path, mode: str, query_mode: str
) -> None:
    script = "SELECT 1;\nSELECT 1 \\; SELECT 2;\n"
    with pytest.raises(WorkloadError, match=r"s.sql:2: \\; compound statement needs -M simple"):
        run("postgresql://nowhere.invalid/x", tmp_path, script, mode, query_mode=query_mode)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_a_pipeline_in_simple_mode_is_refused_before_connecting(tmp_path: Path, mode: str) -> None:
    script = "SELECT 1;\n\\startpipeline\nSELECT 2;\n\\endpipeline\n"
    with pytest.raises(WorkloadError, match=r"s.sql:2: \\startpipeline needs -M extended"):
        run("postgresql://nowhere.invalid/x", tmp_path, script, mode, query_mode="simple")
