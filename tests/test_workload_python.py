"""Python workloads (-f tasks.py), the workload side: loading and checking
the module before any connection, its named steps, the per-client ctx, the
stream's CALL request, pickling for worker processes, and the examples."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dbload.api import database_ready, prepare_options
from dbload.cli import app
from dbload.errors import WorkloadError
from dbload.schema.seed import TABLES
from dbload.workload.model import Step, Workload
from dbload.workload.parser import check_query_mode, load_workload
from dbload.workload.python import (
    StepError,
    TaskContext,
    check_python_style,
    load_code,
    workload_tables,
)
from dbload.workload.stream import CALL, QUERY, ParameterStream
from tpcb_totals import tpcb_totals

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/x"
runner = CliRunner()

SYNC = "def transaction(db, ctx):\n    pass\n"
ASYNC = "async def transaction(db, ctx):\n    pass\n"
BOTH = SYNC + "\n\nasync def async_transaction(db, ctx):\n    pass\n"


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _refused(path: str, mode: str = "sequential") -> str:
    """prepare_options' one-line message for ``-f path``, nothing connected."""
    with pytest.raises(WorkloadError) as info:
        prepare_options(mode=mode, files=[path])
    message = str(info.value)
    assert "\n" not in message
    return message


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--dsn", UNREACHABLE_DSN, *args])
    return result.exit_code, result.stderr


def _one_line(code: int, err: str, *needles: str) -> None:
    """Exit 2 (a bad workload), one error line, no traceback."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dbload: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# -- bad input: each refused before any connection, with file and line ------

BAD: list[tuple[str, str, str, list[str]]] = [
    # name, source, mode, what the one line says
    (
        "syntax.py",
        "def transaction(db, ctx):\n    return (\n\nx = 1\n",
        "sequential",
        ["syntax.py:2: SyntaxError: "],
    ),
    (
        "indent.py",
        "def transaction(db, ctx):\npass\n",
        "sequential",
        ["indent.py:2: IndentationError: "],
    ),
    (
        "raises.py",
        "import os\n\n\ndef _config():\n    raise ValueError('no DATABASE_CONFIG\\nsecond')\n\n\n"
        "_config()\n" + SYNC,
        "sequential",
        ["raises.py:5: import raised ValueError: no DATABASE_CONFIG"],
    ),
    (
        "missing_import.py",
        "import json\nimport no_such_module_here\n" + SYNC,
        "sequential",
        ["missing_import.py:2: import raised ModuleNotFoundError: ", "no_such_module_here"],
    ),
    (
        "exits.py",
        "import sys\nsys.exit(3)\n" + SYNC,
        "sequential",
        ["exits.py:2: import raised SystemExit: 3"],
    ),
    (
        "nothing.py",
        "def run(db, ctx):\n    pass\n",
        "sequential",
        ["nothing.py: no transaction function: define transaction(db, ctx)"],
    ),
    (
        "notcallable.py",
        "transaction = 3\n",
        "sequential",
        ["notcallable.py: transaction is not a function (int): define"],
    ),
    (
        "arity.py",
        "def transaction(db):\n    pass\n",
        "sequential",
        ["arity.py:1: transaction must take two arguments (db, ctx)"],
    ),
    (
        "generator.py",
        "def transaction(db, ctx):\n    yield 1\n",
        "sequential",
        ["generator.py:1: transaction is a generator"],
    ),
    (
        "plain_async_name.py",
        SYNC + "\n\ndef async_transaction(db, ctx):\n    pass\n",
        "async",
        ["plain_async_name.py:5: async_transaction must be an async def"],
    ),
    (
        "two_async.py",
        ASYNC + "\n\nasync def async_transaction(db, ctx):\n    pass\n",
        "async",
        ["two_async.py:1: both transaction and async_transaction are async def"],
    ),
    (
        "sync_only.py",
        SYNC,
        "async",
        [
            "sync_only.py: transaction is a plain def; --mode async needs an async def"
            " (transaction or async_transaction), or run --mode sequential or threads"
        ],
    ),
    (
        "sync_only_processes.py",
        SYNC,
        "processes",
        ["sync_only_processes.py: transaction is a plain def; --mode processes needs"],
    ),
    (
        "async_only.py",
        ASYNC,
        "threads",
        [
            "async_only.py: transaction is an async def; --mode threads needs a plain def"
            " transaction(db, ctx), or run --mode async or processes"
        ],
    ),
]


@pytest.mark.parametrize(("name", "text", "mode", "needles"), BAD, ids=[b[0] for b in BAD])
def test_bad_module_is_one_line_before_any_connection(
    tmp_path: Path, name: str, text: str, mode: str, needles: list[str]
) -> None:
    path = _write(tmp_path, name, text)
    message = _refused(path, mode)
    for needle in needles:
        assert needle.replace(name, path, 1) in message, message
    code, err = _cli("--mode", mode, "-f", path, "-n", "1")
    _one_line(code, err, *(n.replace(name, path, 1) for n in needles))


def test_a_syntax_error_in_an_imported_helper_names_the_helper(tmp_path: Path) -> None:
    _write(tmp_path, "helper_broken.py", "def repo(:\n    pass\n")
    path = _write(tmp_path, "uses_helper.py", "import helper_broken\n\n" + SYNC)
    message = _refused(path)
    assert message.startswith(f"{tmp_path / 'helper_broken.py'}:1: SyntaxError: "), message


def test_a_missing_python_file_is_one_line(tmp_path: Path) -> None:
    message = _refused(str(tmp_path / "absent.py"))
    assert message == f"{tmp_path / 'absent.py'}: script file not found"


def test_a_module_with_both_functions_fits_every_mode(tmp_path: Path) -> None:
    path = _write(tmp_path, "both.py", BOTH)
    for mode in ("sequential", "threads", "async", "processes"):
        options = prepare_options(mode=mode, files=[f"{path}@3"])
        script = options.workload.scripts[0]
        assert script.weight == 3 and script.python is not None
        assert script.python.sync_fn is not None and script.python.async_fn is not None


def test_an_async_transaction_is_the_async_one(tmp_path: Path) -> None:
    code = load_code(_write(tmp_path, "only_async.py", ASYNC))
    assert code.sync_fn is None and code.async_fn is not None
    assert code.async_fn.__name__ == "transaction"


def test_check_python_style_leaves_sql_scripts_alone(tmp_path: Path) -> None:
    workload = load_workload(builtin="tpcb")
    check_python_style(workload, "sync", "sequential")
    check_python_style(workload, "async")
    with pytest.raises(ValueError, match="style"):
        check_python_style(workload, "threads")
    py = load_workload([_write(tmp_path, "s.py", SYNC)])
    with pytest.raises(WorkloadError, match="an async mode needs an async def"):
        check_python_style(py, "async")


def test_pgbench_only_checks_pass_python_scripts(tmp_path: Path) -> None:
    path = _write(tmp_path, "q.py", BOTH)
    workload = load_workload([path, str(EXAMPLES.parent / "queries" / "select.sql")])
    for query_mode in ("simple", "extended", "prepared"):
        check_query_mode(workload, query_mode)
        prepare_options(mode="async", files=[path], query_mode=query_mode)
    assert workload.name == "q+select"
    assert workload.scripts[0].commands == ()


# -- named steps: found in the source before the run -------------------------

STEPS = '''\
"""Orders: the checkout path."""
import helper_steps


def transaction(db, ctx):
    with ctx.step("lookup"):
        pass
    name = "dynamic"
    with ctx.step(name):
        pass
    with ctx.step("write"), other.step(name="keyword"):
        pass
    with ctx.step("lookup"):
        pass
'''


def test_steps_are_statements_in_order_of_first_use(tmp_path: Path) -> None:
    helper = _write(tmp_path, "helper_steps.py", 'def repo(ctx):\n    ctx.step("in helper")\n')
    sql = _write(tmp_path, "first.sql", "SELECT 1;\nSELECT 2;\n")
    path = _write(tmp_path, "orders.py", STEPS)
    workload = load_workload([sql, f"{path}@2"])
    script = workload.scripts[1]
    assert script.python is not None
    assert script.python.step_names == ("lookup", "write", "keyword", "in helper")
    assert script.statements == script.python.steps == (2, 3, 4, 5)
    assert script.description == "Orders: the checkout path."
    rows = [(s.sql, s.params, s.script, s.source, s.line) for s in workload.statements[2:]]
    assert rows == [
        ('step "lookup"', (), 1, path, 6),
        ('step "write"', (), 1, path, 11),
        ('step "keyword"', (), 1, path, 11),
        ('step "in helper"', (), 1, helper, 2),
    ]


def _context(path: str, **kwargs: Any) -> tuple[TaskContext, list[Step], list[int]]:
    code = load_code(path, 0, 0)
    ctx = TaskContext(
        code, seed=kwargs.get("seed", 1), client_id=kwargs.get("client_id", 0), scale=1
    )
    steps: list[Step] = []
    step_ns: list[int] = []
    ctx.bind(steps, step_ns)
    return ctx, steps, step_ns


def test_a_step_times_itself_and_a_failed_one_has_no_time(tmp_path: Path) -> None:
    ctx, steps, step_ns = _context(_write(tmp_path, "orders.py", STEPS))
    with ctx.step("write"):
        pass
    with pytest.raises(ZeroDivisionError), ctx.step("lookup"):
        _ = 1 / 0
    assert steps == [(1, ()), (0, ())]
    assert len(step_ns) == 1 and step_ns[0] >= 0  # the failed step is the one without a time
    ctx.bind(steps := [], step_ns := [])
    with ctx.step("lookup"):  # a failed step leaves nothing open
        pass
    assert steps == [(0, ())] and len(step_ns) == 1


def test_an_unknown_or_nested_step_fails_with_a_clear_message(tmp_path: Path) -> None:
    ctx, steps, _ = _context(_write(tmp_path, "orders.py", STEPS))
    with pytest.raises(StepError, match=r"ctx.step\('dynamic'\): not a step of .*orders.py"):
        ctx.step("dynamic")
    with pytest.raises(StepError, match="needs a string literal name, found before the run"):
        ctx.step("dynamic")
    with (
        pytest.raises(StepError, match=r"ctx.step\('write'\) inside ctx.step\('lookup'\)"),
        ctx.step("lookup"),
        ctx.step("write"),
    ):
        pass
    assert steps == [(0, ())]


def test_a_step_works_with_a_plain_with_in_an_async_def(tmp_path: Path) -> None:
    ctx, steps, step_ns = _context(_write(tmp_path, "orders.py", STEPS))

    async def body() -> None:
        with ctx.step("lookup"):
            await asyncio.sleep(0.001)

    asyncio.run(body())
    assert steps == [(0, ())] and step_ns[0] >= 1_000_000  # it timed the await: 1 ms slept


# -- ctx: seeded per run, client and script; the same in every mode ----------


def _draws(stream: ParameterStream, n: int = 5) -> list[tuple[int, list[int]]]:
    out = []
    for _ in range(n):
        request = next(stream.transaction())
        if request[0] is CALL:
            out.append((stream.script, [request[2].random.randrange(10**9) for _ in range(3)]))
    return out


def test_ctx_random_is_seeded_by_seed_client_and_script(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.py", BOTH)
    b = _write(tmp_path, "b.py", BOTH)
    workload = load_workload([a, b])

    def stream(seed: int, client: int) -> ParameterStream:
        return ParameterStream(workload, seed=seed, client_id=client, scale=3)

    first = _draws(stream(7, 2), 40)
    assert first == _draws(stream(7, 2), 40)  # a stream is the same in every mode
    assert first != _draws(stream(8, 2), 40)
    assert first != _draws(stream(7, 3), 40)
    by_script = {s: v for s, v in first}
    assert by_script[0] != by_script[1]  # each script has its own generator
    ctx = next(stream(7, 2).transaction())[2]
    assert (ctx.client_id, ctx.scale) == (2, 3)


def test_ctx_defines_are_the_d_values_read_only(tmp_path: Path) -> None:
    workload = load_workload([_write(tmp_path, "d.py", SYNC)], defines={"region": "eu"})
    ctx = next(ParameterStream(workload, seed=1, client_id=0, scale=1).transaction())[2]
    assert ctx.defines["region"] == "eu"
    with pytest.raises(TypeError):
        ctx.defines["region"] = "us"


# -- the stream: one CALL per transaction, mixed with .sql by weight ---------


def test_sql_and_python_scripts_mix_by_weight(tmp_path: Path) -> None:
    sql = _write(tmp_path, "a.sql", "SELECT 1;\n")
    py = _write(tmp_path, "tasks.py", BOTH)
    workload = load_workload([f"{sql}@1", f"{py}@3"])
    stream = ParameterStream(workload, seed=11, client_id=0, scale=1)
    kinds: Counter[int] = Counter()
    contexts = set()
    for _ in range(4000):
        txn = stream.transaction()
        request = next(txn)
        kinds[request[0]] += 1
        if request[0] is CALL:
            assert stream.script == 1 and request[1] is workload.scripts[1].python
            contexts.add(id(request[2]))
            assert _ends(txn)  # one request: the whole transaction
        else:
            assert request[0] is QUERY and stream.script == 0
    assert set(kinds) == {CALL, QUERY}
    assert 0.72 < kinds[CALL] / 4000 < 0.78  # weight 3 of 4
    assert len(contexts) == 1  # one ctx per client and script, for the whole run


def _ends(txn: Any) -> bool:
    try:
        txn.send(None)
    except StopIteration:
        return True
    return False


def test_a_retry_yields_the_same_call_with_the_same_draws(tmp_path: Path) -> None:
    workload = load_workload([_write(tmp_path, "r.py", BOTH)])
    stream = ParameterStream(workload, seed=5, client_id=1, scale=1)
    request = next(stream.transaction())
    first = [request[2].random.random() for _ in range(3)]
    again = next(stream.transaction(retry=True))
    assert again[:2] == request[:2] and again[2] is request[2]
    assert [again[2].random.random() for _ in range(3)] == first
    fresh = next(stream.transaction())
    assert [fresh[2].random.random() for _ in range(3)] != first


def test_next_refuses_a_python_script(tmp_path: Path) -> None:
    workload = load_workload([_write(tmp_path, "n.py", BOTH)])
    with pytest.raises(WorkloadError, match="needs an executor"):
        ParameterStream(workload, seed=1, client_id=0, scale=1).next()


# -- pickling: a worker process imports the file again -----------------------

CHILD = """
import pickle, sys
from dbload.workload.stream import ParameterStream
workload = pickle.loads(sys.stdin.buffer.read())
code = workload.scripts[1].python
stream = ParameterStream(workload, seed=9, client_id=2, scale=1)
while (request := next(stream.transaction()))[0] != 4:  # CALL
    pass
draw = request[2].random.randrange(10**9)
print(code.path, code.steps, code.step_names, code.sync_fn(None, None), draw, sep="|")
"""


def test_a_workload_with_python_pickles_by_reloading_the_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.py",
        "import os\n\ndef transaction(db, ctx):\n    return os.getpid()\n\n"
        'async def async_transaction(db, ctx):\n    with ctx.step("s"):\n        pass\n',
    )
    workload = load_workload([_write(tmp_path, "x.sql", "SELECT 1;\n"), path])
    back = pickle.loads(pickle.dumps(workload))
    assert back == workload  # in this process the module is imported once
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=pickle.dumps(workload),
        capture_output=True,
        timeout=60,
        check=True,
    )
    shown_path, steps, names, pid, draw = child.stdout.decode().strip().split("|")
    assert (shown_path, steps, names) == (path, "(1,)", "('s',)")
    stream = ParameterStream(workload, seed=9, client_id=2, scale=1)
    while (request := next(stream.transaction()))[0] is not CALL:
        pass
    assert int(draw) == request[2].random.randrange(10**9)  # a worker process draws the same
    assert int(pid) != __import__("os").getpid()  # its own import, run in the child


def test_a_file_changed_after_loading_is_refused_on_reload(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.py", 'def transaction(db, ctx):\n    ctx.step("a")\n')
    data = pickle.dumps(load_workload([path]))
    Path(path).write_text('def transaction(db, ctx):\n    ctx.step("b")  # renamed\n')
    with pytest.raises(WorkloadError, match="changed since the run was prepared"):
        pickle.loads(data)


# -- seeding: what the Python source names counts ----------------------------


def test_tables_named_in_the_module_or_its_local_imports_count(tmp_path: Path) -> None:
    _write(tmp_path, "models_x.py", '__tablename__ = "pgbench_tellers"\n')
    uses = _write(tmp_path, "uses.py", "from models_x import __tablename__\n" + SYNC)
    plain = _write(tmp_path, "plain.py", "# pgbench_branches in a comment\n" + SYNC)
    none = _write(tmp_path, "none.py", "import json\n" + SYNC)
    assert workload_tables(load_workload([uses])) == ("pgbench_tellers",)
    assert workload_tables(load_workload([plain])) == ("pgbench_branches",)
    assert workload_tables(load_workload([none])) == ()
    mixed = load_workload([none, str(EXAMPLES.parent / "queries" / "select.sql")])
    assert workload_tables(mixed) == ("pgbench_accounts",)
    assert workload_tables(load_workload([str(EXAMPLES / "orm_tpcb.py")])) == tuple(sorted(TABLES))


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench%'")
        return {r[0] for r in rows}


def test_a_python_workload_gets_the_pgbench_tables_it_names(
    scratch_dsn: str, tmp_path: Path
) -> None:
    own = load_workload([_write(tmp_path, "own.py", "import json\n" + SYNC)])
    with database_ready("dsn", scratch_dsn, workload=own, init=True):
        pass
    assert _tables(scratch_dsn) == set()  # the user's own tables: untouched
    orm = load_workload([str(EXAMPLES / "orm_tpcb.py")])
    with database_ready("dsn", scratch_dsn, workload=orm, init=True) as (_, scale):
        assert scale == 1
    assert _tables(scratch_dsn) == set(TABLES)


# -- the examples ------------------------------------------------------------

EXAMPLE_FILES = ("orm_tpcb.py", "core_tpcb.py", "raw_tpcb.py")


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_examples_load_for_both_styles(name: str) -> None:
    for mode in ("sequential", "threads", "async", "processes"):
        options = prepare_options(mode=mode, files=[str(EXAMPLES / name)])
    code = options.workload.scripts[0].python
    assert code is not None and code.sync_fn is not None and code.async_fn is not None
    assert {"account", "teller", "branch"} <= set(code.step_names)


def _models() -> Any:
    load_code(str(EXAMPLES / "orm_tpcb.py"))  # puts examples/ on sys.path, as a run does
    import pgbench_models

    return pgbench_models


def test_the_models_match_the_tables_dbload_creates(seeded_dsn: str) -> None:
    models = _models()
    engine = _engine(seeded_dsn)
    try:
        real = sa.MetaData()
        real.reflect(engine, only=list(TABLES))
        with engine.connect() as conn:
            options = dict(
                conn.execute(
                    sa.text("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(:t)"),
                    {"t": list(TABLES)},
                ).all()
            )
    finally:
        engine.dispose()
    assert set(models.Base.metadata.tables) == set(TABLES)
    dialect = engine.dialect
    for name, table in models.Base.metadata.tables.items():
        theirs = real.tables[name]
        assert [c.name for c in table.columns] == [c.name for c in theirs.columns], name
        for ours in table.columns:
            column = theirs.columns[ours.name]
            assert ours.type.compile(dialect) == column.type.compile(dialect), (name, ours.name)
            assert ours.nullable == column.nullable, (name, ours.name)
        assert [c.name for c in table.primary_key] == [c.name for c in theirs.primary_key]
        fill = table.dialect_options["postgresql"]["with"]
        expected = [f"{k}={v}" for k, v in fill.items()] if fill else None
        assert options[name] == expected, name


def _asyncpg(dsn: str) -> Any:
    """asyncpg's connection to a libpq DSN (a unix socket's too: the
    embedded server's), by its parts."""
    parts = conninfo_to_dict(dsn)
    return asyncpg.connect(
        host=str(parts.get("host") or "127.0.0.1"),
        port=int(parts.get("port") or 5432),
        user=str(parts.get("user") or "postgres"),
        password=str(parts["password"]) if parts.get("password") else None,
        database=str(parts["dbname"]),
    )


def _engine(dsn: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))


def _async_engine(dsn: str, dbapi: str) -> Any:
    if dbapi == "asyncpg":
        return create_async_engine("postgresql+asyncpg://", async_creator=lambda: _asyncpg(dsn))
    return create_async_engine(
        "postgresql+psycopg://", async_creator=lambda: psycopg.AsyncConnection.connect(dsn)
    )


def _call_once(workload: Workload, client: int) -> tuple[Any, TaskContext, list[Step], list[int]]:
    request = next(ParameterStream(workload, seed=3, client_id=client, scale=1).transaction())
    assert request[0] is CALL
    steps: list[Step] = []
    step_ns: list[int] = []
    request[2].bind(steps, step_ns)
    return request[1], request[2], steps, step_ns


Runner = Callable[[Any, TaskContext], Any]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_each_example_runs_one_tpcb_transaction_per_driver(
    seeded_dsn: str, restore_balances: None, name: str
) -> None:
    """Called here with connections the test opens, as an executor passes
    them: every driver's object makes one consistent tpcb transaction."""
    workload = load_workload([str(EXAMPLES / name)])
    before = tpcb_totals(seeded_dsn)
    done = 0

    def check(steps: list[Step], step_ns: list[int]) -> None:
        nonlocal done
        done += 1
        assert len(steps) == len(step_ns) >= 3
        assert {workload.statements[i].sql for i, _ in steps} >= {'step "account"'}

    code, ctx, steps, step_ns = _call_once(workload, 0)
    if name == "raw_tpcb.py":
        with psycopg.connect(seeded_dsn) as conn:
            code.sync_fn(conn, ctx)
    else:
        engine = _engine(seeded_dsn)
        with Session(engine) as session:
            code.sync_fn(session, ctx)
        engine.dispose()
    check(steps, step_ns)

    async def run_async() -> None:
        if name == "raw_tpcb.py":
            opened: list[Any] = [
                await _asyncpg(seeded_dsn),
                await psycopg.AsyncConnection.connect(seeded_dsn),
            ]
            for i, conn in enumerate(opened, start=1):
                code, ctx, steps, step_ns = _call_once(workload, i)
                await code.async_fn(conn, ctx)
                await conn.close()
                check(steps, step_ns)
            return
        for i, dbapi in enumerate(("asyncpg", "psycopg"), start=1):
            engine = _async_engine(seeded_dsn, dbapi)
            async with AsyncSession(engine) as session:
                code, ctx, steps, step_ns = _call_once(workload, i)
                await code.async_fn(session, ctx)
            await engine.dispose()
            check(steps, step_ns)

    asyncio.run(run_async())
    count, delta, accounts, tellers, branches = (
        a - b for a, b in zip(tpcb_totals(seeded_dsn), before, strict=True)
    )
    assert count == done == 3
    assert delta == accounts == tellers == branches  # each delta went to all four tables


@pytest.mark.slow
def test_a_bad_module_through_a_real_process_is_exit_2_and_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.py", "def transaction(db, ctx):\n    return (\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dbload", "run", "--dsn", UNREACHABLE_DSN, "-f", path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"dbload: error: {path}:2: SyntaxError: '(' was never closed"
