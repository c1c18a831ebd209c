"""The workload layer: script syntax, expressions in scripts, streams.

Pure Python, no database. The expression evaluator itself is tested in
tests/test_expr.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dbload.errors import WorkloadError
from dbload.workload.expr import ExprError, compile_expression
from dbload.workload.model import SLEEP, ScriptRuntimeError, Workload
from dbload.workload.parser import (
    builtin_description,
    builtin_names,
    builtin_text,
    load_workload,
    parse_script,
)
from dbload.workload.stream import ParameterStream

DATA = Path(__file__).parent / "data"
PGBENCH = shutil.which("pgbench")


def parse(text: str, **defines: int | float | str) -> tuple[list[str], list[tuple[str, ...]]]:
    _, statements = parse_script(text, name="t", source="t.sql", defines=defines)
    return [s.sql for s in statements], [s.params for s in statements]


def error_of(text: str, **defines: int | float | str) -> str:
    with pytest.raises(WorkloadError) as info:
        parse_script(text, name="t", source="t.sql", defines=defines)
    return str(info.value)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def stream_of(
    workload: Workload, seed: int = 1, client_id: int = 0, scale: int = 1
) -> ParameterStream:
    return ParameterStream(workload, seed=seed, client_id=client_id, scale=scale)


def _workload(script_text: str, **defines: int | float | str) -> Workload:
    script, statements = parse_script(script_text, name="t", source="t.sql", defines=defines)
    return Workload(
        name="t", scripts=(script,), statements=tuple(statements), defines=dict(defines)
    )


def first_values(script_text: str, **defines: int | float | str) -> tuple[object, ...]:
    """The bind values of the first statement of one transaction."""
    return stream_of(_workload(script_text, **defines)).next().steps[0][1]


# -- expressions in scripts (the evaluator itself: tests/test_expr.py) ----------


def test_nesting_deeper_than_pgbench_accepts_is_an_expr_error() -> None:
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expression("(" * 9997 + "1" + ")" * 9997)
    error = error_of("\\set x " + "(" * 20000 + "1" + ")" * 20000 + "\nSELECT :x;")
    assert error.startswith("t.sql:1: ") and "nested too deeply" in error


@pytest.mark.parametrize("expr", ["pow(-8, 0.5)", "pow(0, -1)", "exp(1000)", "1 << -1"])
def test_math_errors_in_a_script_are_workload_errors(expr: str) -> None:
    try:
        parse_script(f"\\set x {expr}\nSELECT :x;", name="t", source="t.sql")
    except WorkloadError as exc:  # rejecting it is fine, as long as it says where
        assert str(exc).startswith("t.sql:1: ")


def test_math_errors_from_folded_defines_are_workload_errors() -> None:
    workload = _workload("\\set x exp(:big)\nSELECT :x;", big=1000)
    try:
        stream_of(workload).next()
    except WorkloadError as exc:
        assert str(exc).startswith("t.sql:1: ")


@pytest.mark.timeout(60)
def test_nan_gaussian_parameter_in_a_script_fails_the_transaction() -> None:
    script = "\\set i 1e308 * 10\n\\set p :i - :i\n\\set x random_gaussian(1, 100, :p)\nSELECT :x;"
    with pytest.raises(ScriptRuntimeError, match=r"^t.sql:3: cannot evaluate: gaussian"):
        stream_of(_workload(script)).next()


# -- script syntax ----------------------------------------------------------------


def test_set_continuation_lines() -> None:
    text = "\\set x 1 + \\\n  2 * \\\n  3\nSELECT :x;"
    script, _ = parse_script(text, name="t", source="t.sql")
    assert len(script.commands) == 2
    assert first_values(text) == ("7",)  # values are bound as text, as pgbench sends them


@pytest.mark.parametrize(
    ("command", "seconds"),
    [
        ("\\sleep 2", 2.0),
        ("\\sleep 2 s", 2.0),
        ("\\sleep 5 ms", 0.005),
        ("\\sleep 7 us", 7e-6),
        ("\\sleep 1 MS", 0.001),  # units are case-insensitive, as in pgbench
        ("\\sleep 0", 0.0),
        ("\\set d 3\n\\sleep :d", 3.0),
        ("\\set d 3\n\\sleep :d ms", 0.003),
        ("\\set d -5\n\\sleep :d ms", 0.0),  # a negative duration does not sleep
        # what pgbench 15 accepts: a glued unit, a sign, a double cut by atoi
        ("\\sleep 10ms", 0.01),
        ("\\sleep 3US", 3e-6),
        ("\\sleep -1", 0.0),
        ("\\sleep +5 us", 5e-6),
        ("\\sleep - s", 0.0),
        ("\\set d 2.7\n\\sleep :d ms", 0.002),
        ("\\set d -2.7\n\\sleep :d", 0.0),
        ("\\sleep 2147 s", 2147.0),  # the longest: 2**31 - 1 microseconds
        ("\\sleep 2147483647 us", 2147.483647),
    ],
)
def test_sleep_steps(command: str, seconds: float) -> None:
    steps = stream_of(_workload(command)).next().steps
    assert len(steps) == 1
    kind, (value,) = steps[0]
    assert kind == SLEEP
    assert value == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("99999999999", "99999999999 s is out of range"),
        ("2148.5", "2148 s is out of range"),  # pgbench reads a double's text with atoi
        # pgbench 15: an atoi of 0 from text not starting with a digit
        ("1e308 * 10 - 1e308 * 10", 'invalid sleep time "NaN"'),
        ("1e308 * 10", 'invalid sleep time "Infinity"'),
        ("true", 'invalid sleep time "true"'),
        ("-0.5", 'invalid sleep time "-0.5"'),
    ],
)
def test_variable_sleep_out_of_range_fails_the_transaction(value: str, message: str) -> None:
    workload = _workload(f"\\set d {value}\nSELECT 1;\n\\sleep :d s")
    with pytest.raises(ScriptRuntimeError, match=message) as info:
        stream_of(workload).next()
    assert str(info.value).startswith("t.sql:3: cannot evaluate: \\sleep")


def test_sleep_with_a_define() -> None:
    steps = stream_of(_workload("\\sleep :pause us", pause=250)).next().steps
    assert steps == ((SLEEP, (pytest.approx(250e-6),)),)


@pytest.mark.parametrize("value", ["21", "-3", "0.5", "1e3", "hello", "", "007", "2024_01"])
def test_define_values_stay_text(value: str) -> None:
    """As in pgbench: a -D value is a string until an expression uses it."""
    assert load_workload(defines={"v": value}).defines == {"v": value}


def test_defines_are_sent_as_written_and_typed_when_computed(tmp_path: Path) -> None:
    path = write(tmp_path, "d.sql", "\\set y :n * 2\nSELECT :n, :f, :s, :y, :z;")
    defines = {"n": "21", "f": "0.5", "s": "hello", "z": "007"}
    workload = load_workload([path], defines=defines)
    # pgbench sends -D z=007 as 007, and computes :n * 2 as 42
    assert stream_of(workload).next().steps == ((0, ("21", "0.5", "hello", "42", "007")),)


def test_define_overrides_scale() -> None:
    workload = load_workload(builtin="select", defines={"scale": "2"})
    stream = stream_of(workload, scale=1000)
    assert all(int(stream.next().steps[0][1][0]) <= 200000 for _ in range(2000))


@pytest.mark.parametrize("name", ["1bad", "a-b", "", "a b"])
def test_bad_define_name(name: str) -> None:
    with pytest.raises(WorkloadError, match="not a valid variable name"):
        load_workload(defines={name: "1"})


# -- errors name the file and the line ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("SELECT 1;\nSELECT :nope;", 2, "undefined variable :nope"),
        ("SELECT 1;\n\nSELECT 'x',\n  :nope;", 3, "undefined variable :nope"),
        ("\\set a :b + 1", 1, "undefined variable :b"),
        ("SELECT 1;\n\\set a 2 * :b", 2, "undefined variable :b"),
        ("SELECT :x;\n\\set x 1", 1, "undefined variable :x"),  # used before its \set
        ("\n\\set x nosuch(1)", 2, "unknown function 'nosuch'"),
        ("\\set x random(1, 2, 3)", 1, "random() takes 2 argument(s), got 3"),
        ("\\set x 1 +", 1, "\\set x:"),
        ("\\set x 1 2", 1, "unexpected '2' after expression"),
        ("\\set x 1 ? 2", 1, "unexpected character '?'"),
        ("\\set x", 1, "\\set needs a variable name and an expression"),
        ("\\set x   ", 1, "\\set needs a variable name and an expression"),
        ("\\set", 1, "\\set needs a variable name and an expression"),
        ("\\set 1x 2", 1, "invalid variable name"),
        ("\\set x 1 / 0", 1, "division by zero"),
        ("\\set x random_gaussian(1, 10, 1)", 1, "gaussian parameter"),
        ("\\sleep", 1, "\\sleep needs a duration"),
        ("\\sleep 1 ms extra", 1, "\\sleep needs a duration"),
        ("\\sleep 10ms s", 1, "'10ms' is not an integer"),
        ("\\sleep 1e3 us", 1, "'1e3' is not an integer"),
        ("\\sleep 1.5", 1, "'1.5' is not an integer"),
        ("\\sleep -ms", 1, "'-ms' is not an integer"),
        ("\\sleep 5 5", 1, "unknown unit '5'"),
        # pgbench keeps microseconds in a C int and wraps past it (no sleep at all)
        ("SELECT 1;\n\\sleep 2148 s", 2, "2148 s is out of range"),
        ("\\sleep 99999999999999999999 s", 1, "out of range"),
        ("\\sleep -2147483648 us", 1, "out of range"),
        # what a server would wait on for ever: refused before the run, as pgbench does
        ("SELECT 1;\nCOPY pgbench_branches FROM STDIN;", 2, "COPY ... FROM STDIN"),
        ("copy pgbench_branches to stdout", 1, "COPY ... FROM STDIN / TO STDOUT"),
        ("COPY /* c */ t (a, b)\n  FROM stdin WITH (FORMAT csv);", 1, "not supported"),
        ("COPY (SELECT 'x' FROM t) TO STDOUT;", 1, "not supported"),
        # invisible characters are named, not echoed
        ("\ufeffSELECT 1;", 1, "byte order mark at line 1"),
        ("SELECT 1;\nSELECT \x00 2;", 2, "NUL byte at line 2"),
        ("\\frob\x1b[31m", 1, "unknown meta-command \\'frob\\x1b[31m'"),
        ("\\sleep ten", 1, "'ten' is not an integer"),
        ("\\sleep 1 h", 1, "unknown unit 'h'"),
        ("\\sleep 1 seconds", 1, "unknown unit 'seconds'"),
        ("\\sleep :nope", 1, "undefined variable :nope"),
        ("SELECT 1;\n\\sleep :nope ms", 2, "undefined variable :nope"),
        ("SELECT 1;\n\\frobnicate", 2, "unknown meta-command \\frobnicate"),
        # \gset, \if, \shell, pipelines and \; are accepted now: their bad
        # forms are in tests/test_parser.py
        ("\\gset", 1, "\\gset must follow an SQL command"),
        ("\\if :scale > 1\nSELECT 1;", 1, "\\if without matching \\endif"),
        ("SELECT 1;\nSELECT 'open\n;", 2, "unterminated quoted string"),
        ('SELECT "open', 1, "unterminated quoted identifier"),
        ("SELECT 1 /* open", 1, "unterminated /* comment"),
        ("SELECT $$ open", 1, "unterminated dollar-quoted string"),
    ],
)
def test_script_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    error = error_of(text)
    assert error.startswith(f"t.sql:{line}: "), error
    assert message in error


def test_empty_script_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.sql", "-- only a comment\n")
    with pytest.raises(WorkloadError, match="empty script") as info:
        load_workload([path])
    assert str(info.value).startswith(f"{path}: ")


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.sql")
    with pytest.raises(WorkloadError, match="script file not found") as info:
        load_workload([missing])
    assert str(info.value).startswith(f"{missing}: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="cannot read script") as info:
        load_workload([str(tmp_path)])  # a directory
    assert str(info.value).startswith(f"{tmp_path}: ")


def test_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.sql", "-- bad\n\\set aid random(1, 10)\nSELECT :bid;\n")
    with pytest.raises(WorkloadError) as info:
        load_workload([path])
    assert str(info.value) == f"{path}:3: undefined variable :bid"


def test_error_in_the_second_file_names_that_file(tmp_path: Path) -> None:
    good = write(tmp_path, "good.sql", "SELECT 1;")
    bad = write(tmp_path, "bad.sql", "SELECT 1;\n\\set x\n")
    with pytest.raises(WorkloadError) as info:
        load_workload([good, bad])
    assert str(info.value).startswith(f"{bad}:2: ")


@pytest.mark.parametrize(
    "spec", ["x.sql@", "x.sql@-1", "x.sql@x", "x.sql@two", "x.sql@1.5", "@3", "x@99999999999"]
)
def test_bad_weight(spec: str) -> None:
    with pytest.raises(WorkloadError, match="weight must be an integer") as info:
        load_workload([spec])
    assert repr(spec) in str(info.value)


def test_bad_builtin_weight() -> None:
    with pytest.raises(WorkloadError, match="weight must be an integer"):
        load_workload(builtin="select@x")


def test_all_weights_zero(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    with pytest.raises(WorkloadError, match="weight 0"):
        load_workload([f"{a}@0", f"{b}@0"])


def test_unknown_builtin() -> None:
    with pytest.raises(WorkloadError, match=r"unknown workload 'nosuch'.*select"):
        load_workload(builtin="nosuch")
    with pytest.raises(WorkloadError, match=r"unknown workload 'nosuch'"):
        builtin_description("nosuch")


def test_scale_zero_is_reported_when_the_stream_is_built() -> None:
    workload = load_workload(builtin="select")
    with pytest.raises(WorkloadError, match=r"^select:2: \\set aid: empty range"):
        stream_of(workload, scale=0)


def test_runtime_evaluation_error_names_the_line() -> None:
    workload = _workload("\\set lo 5\n\\set x random(:lo, :client_id)\nSELECT :x;")
    with pytest.raises(WorkloadError, match=r"^t.sql:2: cannot evaluate: empty range"):
        stream_of(workload, client_id=1).next()


def test_runtime_bad_random_parameter_names_the_line() -> None:
    workload = _workload("\\set p 0.5\n\\set x random_zipfian(1, 10, :p)\nSELECT :x;")
    with pytest.raises(WorkloadError, match=r"^t.sql:2: cannot evaluate: zipfian parameter"):
        stream_of(workload).next()


# -- workloads and built-ins --------------------------------------------------------


def test_builtin_names() -> None:
    assert builtin_names() == [
        "aggregate", "join", "select", "select-only", "simple-update", "slow", "tpcb", "tpcb-like",
    ]  # fmt: skip


def test_builtin_descriptions() -> None:
    assert builtin_description("select") == "point lookup by primary key (pgbench's select-only)"
    for name in builtin_names():
        assert builtin_text(name).startswith(f"-- {name}: ")
        description = builtin_description(name)
        assert description and not description.startswith(f"{name}:")


@pytest.mark.parametrize("name", ["select", "tpcb", "join", "aggregate", "slow"])
def test_every_builtin_loads_and_streams(name: str) -> None:
    workload = load_workload(builtin=name)
    assert workload.name == name
    assert workload.scripts[0].description
    assert workload.statements
    txn = stream_of(workload, scale=2).next()
    assert [i for i, _ in txn.steps] == list(workload.scripts[0].statements)
    for index, values in txn.steps:
        assert len(values) == len(workload.statements[index].params)
        assert "$" not in workload.statements[index].sql or values


def test_default_workload_is_select() -> None:
    workload = load_workload()
    assert workload.name == "select"
    assert [s.name for s in workload.scripts] == ["select"]
    assert workload.statements[0].sql == "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    assert workload.statements[0].where == "select:3"


def test_files_replace_the_default_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, "only.sql", "SELECT 1;")
    workload = load_workload([path])
    assert workload.name == "only"
    assert [s.name for s in workload.scripts] == [path]


def test_tpcb_matches_pgbench_tpcb_like() -> None:
    ours = builtin_text("tpcb").splitlines()[1:]
    theirs = (DATA / "pgbench" / "tpcb-like.sql").read_text().splitlines()[1:]
    assert [line for line in ours if line] == [line for line in theirs if line]
    workload = load_workload(builtin="tpcb")
    assert [s.sql.split()[0] for s in workload.statements] == [
        "BEGIN", "UPDATE", "SELECT", "UPDATE", "UPDATE", "INSERT", "END",
    ]  # fmt: skip
    assert workload.statements[5].params == ("tid", "bid", "aid", "delta")


def test_select_values_are_within_scale() -> None:
    stream = stream_of(load_workload(builtin="select"), scale=3)
    values = [int(stream.next().steps[0][1][0]) for _ in range(5000)]
    assert all(1 <= v <= 300000 for v in values)
    assert max(values) > 250000


def test_builtin_with_weight_and_files_combined(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "-- a\nSELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;\nSELECT 3;")
    workload = load_workload([f"{a}@2", b], builtin="select@3")
    assert workload.name == "select+a+b"
    assert [s.weight for s in workload.scripts] == [3, 2, 1]
    assert [s.name for s in workload.scripts] == ["select", a, b]
    assert [s.source for s in workload.scripts] == ["select", a, b]
    assert [s.description for s in workload.scripts][1:] == ["a", ""]
    assert [s.statements for s in workload.scripts] == [(0,), (1,), (2, 3)]
    assert [s.script for s in workload.statements] == [0, 1, 2, 2]
    assert [s.sql for s in workload.statements][1:] == ["SELECT 1", "SELECT 2", "SELECT 3"]
    assert workload.statements[3].source == b and workload.statements[3].line == 2


def test_weight_is_split_from_the_right(tmp_path: Path) -> None:
    folder = tmp_path / "x@y"
    folder.mkdir()
    path = write(folder, "s.sql", "SELECT 1;")
    workload = load_workload([f"{path}@4"])
    assert workload.scripts[0].weight == 4 and workload.scripts[0].name == path
    assert workload.name == "s"


def test_weight_zero_script_is_loaded(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    workload = load_workload([f"{a}@0", b])
    assert [s.weight for s in workload.scripts] == [0, 1]


# -- parameter streams ------------------------------------------------------------------


def _take(stream: ParameterStream, n: int) -> list[object]:
    return [stream.next() for _ in range(n)]


def test_stream_is_deterministic() -> None:
    workload = load_workload(builtin="tpcb")
    first = _take(stream_of(workload, seed=42, client_id=3), 200)
    again = _take(stream_of(workload, seed=42, client_id=3), 200)
    assert first == again


@pytest.mark.parametrize(("seed", "client_id"), [(42, 4), (43, 3), (3, 42)])
def test_another_seed_or_client_gives_another_stream(seed: int, client_id: int) -> None:
    workload = load_workload(builtin="tpcb")
    first = _take(stream_of(workload, seed=42, client_id=3), 200)
    assert first != _take(stream_of(workload, seed=seed, client_id=client_id), 200)


def test_stream_is_identical_in_another_process() -> None:
    code = (
        "from dbload.workload.parser import load_workload\n"
        "from dbload.workload.stream import ParameterStream\n"
        "s = ParameterStream(load_workload(builtin='tpcb'), seed=5, client_id=2, scale=3)\n"
        "print([s.next() for _ in range(20)])\n"
    )
    # a different hash seed must not matter (the rng is not seeded from hash())
    env = {"PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, **env},
    )  # fmt: skip
    here = stream_of(load_workload(builtin="tpcb"), seed=5, client_id=2, scale=3)
    assert out.stdout.strip() == repr([here.next() for _ in range(20)])


def test_variables_persist_across_transactions() -> None:
    # like pgbench: a client's variables live from one transaction to the next
    workload = _workload("\\set x :x + 1\nSELECT :x;", x=0)
    stream = stream_of(workload)
    assert [stream.next().steps[0][1][0] for _ in range(4)] == ["1", "2", "3", "4"]


def test_variables_persist_across_load_workload_scripts(tmp_path: Path) -> None:
    path = write(tmp_path, "count.sql", "\\set x :x + 1\nSELECT :x;")
    stream = stream_of(load_workload([path], defines={"x": "0"}))
    assert [stream.next().steps[0][1] for _ in range(3)] == [("1",), ("2",), ("3",)]


def test_each_client_has_its_own_variables() -> None:
    workload = _workload("\\set x :x + 1\nSELECT :x;", x=0)
    a, b = stream_of(workload, client_id=0), stream_of(workload, client_id=1)
    a.next()
    a.next()
    assert b.next().steps[0][1] == ("1",)


def test_weight_zero_is_never_chosen(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    c = write(tmp_path, "c.sql", "SELECT 3;")
    stream = stream_of(load_workload([f"{a}@1", f"{b}@0", f"{c}@3"]))
    counts = Counter(stream.next().script for _ in range(4000))
    assert counts[1] == 0
    assert counts[0] > 0 and counts[2] > 0


def test_weights_are_respected(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    stream = stream_of(load_workload([f"{a}@3", f"{b}@1"]), seed=8)
    counts = Counter(stream.next().script for _ in range(4000))
    assert 2700 < counts[0] < 3300  # expected 3000
    assert 700 < counts[1] < 1300  # expected 1000


def test_only_weighted_script_always_runs(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    stream = stream_of(load_workload([f"{a}@0", f"{b}@5"]))
    assert {stream.next().script for _ in range(200)} == {1}


def test_builtin_variables() -> None:
    workload = _workload("SELECT :scale, :client_id, :random_seed;")
    steps = ParameterStream(workload, seed=9, client_id=4, scale=7).next().steps
    assert steps == ((0, ("7", "4", "9")),)


@pytest.mark.parametrize("client_id", [0, 1, 17])
def test_client_id_and_scale_reach_the_steps(client_id: int) -> None:
    workload = _workload("\\set k :client_id * 10 + :scale\nSELECT :k, :client_id;")
    txn = ParameterStream(workload, seed=1, client_id=client_id, scale=3).next()
    assert txn.steps == ((0, (str(client_id * 10 + 3), str(client_id))),)


def test_bind_values_follow_params_order() -> None:
    workload = _workload("\\set a 1\n\\set b 2\n\\set c 3\nSELECT :c, :a, :c + :b;")
    assert workload.statements[0].params == ("c", "a", "b")
    assert workload.statements[0].sql == "SELECT $1, $2, $1 + $3"
    assert stream_of(workload).next().steps == ((0, ("3", "1", "2")),)


def test_transaction_steps_follow_script_order() -> None:
    workload = _workload("\\set a 1\nSELECT :a;\n\\sleep 2 ms\n\\set a :a + 1\nSELECT :a, :a;")
    txn = stream_of(workload).next()
    assert txn.script == 0
    assert txn.steps == ((0, ("1",)), (SLEEP, (0.002,)), (1, ("2",)))


def test_steps_use_workload_statement_indexes(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;\nSELECT 2;")
    b = write(tmp_path, "b.sql", "\\sleep 1 ms\nSELECT 3;")
    workload = load_workload([a, f"{b}@1"])
    stream = stream_of(workload, seed=2)
    seen = {txn.script: txn.steps for txn in (stream.next() for _ in range(50))}
    assert seen == {0: ((0, ()), (1, ())), 1: ((SLEEP, (0.001,)), (2, ()))}


# -- pgbench's own scripts run unchanged ----------------------------------------------


@pytest.mark.parametrize("name", ["tpcb-like", "simple-update", "select-only"])
def test_pgbench_builtin_copies_parse(name: str) -> None:
    workload = load_workload([str(DATA / "pgbench" / f"{name}.sql")])
    assert workload.statements
    stream_of(workload, scale=5).next()


@pytest.mark.skipif(PGBENCH is None, reason="pgbench is not installed (not on PATH)")
@pytest.mark.parametrize("name", ["tpcb-like", "simple-update", "select-only"])
def test_pgbench_show_script_parses(name: str, tmp_path: Path) -> None:
    shown = subprocess.run(
        [str(PGBENCH), f"--show-script={name}"], capture_output=True, text=True, check=True
    )
    # pgbench prints the script on stderr (some versions add a quoted header line)
    lines = [line for line in shown.stderr.splitlines() if not line.startswith('"')]
    path = write(tmp_path, f"{name}.sql", "\n".join(lines) + "\n")
    workload = load_workload([path])
    assert workload.scripts[0].description.startswith(f"{name}:")
    assert workload.statements
    assert all("$1" in s.sql for s in workload.statements if s.params)
    txn = stream_of(workload, scale=5).next()
    assert [i for i, _ in txn.steps] == list(range(len(workload.statements)))
    copy = load_workload([str(DATA / "pgbench" / f"{name}.sql")])
    assert [s.sql for s in workload.statements] == [s.sql for s in copy.statements]
