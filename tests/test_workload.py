"""The workload layer: pgbench's expression language, script syntax, streams.

Pure Python, no database. Expected values for the expression language were
checked against pgbench 15 itself (``\\set x debug(...)``).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dbload.errors import WorkloadError
from dbload.workload.expr import (
    EvalError,
    ExprError,
    compile_expression,
    rand_exponential,
    rand_gaussian,
    rand_zipfian,
)
from dbload.workload.model import SLEEP, Workload
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


def ev(text: str, **variables: object) -> object:
    """Evaluate an expression once, with ``variables`` bound."""
    return compile_expression(text).evaluate(variables, random.Random(7))


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


# -- the expression language ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-3 + 1", -2),
        ("- -3", 3),
        ("10 - 2 - 3", 5),  # left-associative
        ("7 / 2", 3),
        ("-7 / 2", -3),  # C truncates toward zero; Python's // would give -4
        ("7 / -2", -3),
        ("-7 % 2", -1),  # the remainder has the dividend's sign, as in C
        ("7 % -2", 1),
        ("mod(-7, 2)", -1),
        ("7.6 % 2", 0),  # '%' rounds doubles to integers first (pgbench: rint)
        ("5 / 2.0", 2.5),  # a double operand makes the operation double
        ("1 + 0.5", 1.5),
        ("2.5e1", 25.0),
        (".5 * 4", 2.0),
        ("int(5.5)", 6),  # rint: half to even, as pgbench prints
        ("int(6.5)", 6),
        ("int(-2.7)", -3),
        ("double(3)", 3.0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("least(3, 1, 2)", 1),
        ("greatest(3, 1, 2)", 3),
        ("least(1, 2.0)", 1.0),  # any double makes the result double
        ("sqrt(16)", 4.0),
        ("pi()", 3.141592653589793),
        ("5 & 3", 1),
        ("5 | 3", 7),
        ("5 # 3", 6),
        ("1 << 4", 16),
        ("~0", -1),
        ("1 = 1", True),
        ("1 <> 1", False),
        ("2 < 3.5", True),
        ("2 >= 3", False),
        ("not (1 = 2) and true", True),
        ("false or 1 > 2", False),
        ("case when 1 > 2 then 10 when 2 > 1 then 20 else 30 end", 20),
        ("CASE WHEN false THEN 1 ELSE 2 END", 2),
        ("random(1.6, 1.6)", 2),  # bounds are rounded like any int coercion
    ],
)
def test_expression_values(text: str, expected: object) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_variables_are_read_and_reported() -> None:
    expr = compile_expression("random(1, 100000 * :scale) + :x")
    assert expr.variables == {"scale", "x"}
    assert 3 <= expr.evaluate({"scale": 1, "x": 2}, random.Random(1)) <= 100002


def test_constants_fold_at_compile_time() -> None:
    expr = compile_expression("100000 * :scale + 1", {"scale": 3})
    assert expr.evaluate({}, random.Random(1)) == 300001  # no lookup of :scale


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("1 +", "unexpected"),
        ("(1 + 2", "expected ')'"),
        ("1 2", "unexpected"),
        ("nosuch(1)", "unknown function 'nosuch'"),
        ("random(1)", "random() takes 2 argument(s), got 1"),
        ("abs(1, 2)", "abs() takes 1 argument(s), got 2"),
        ("1 / 0", "division by zero"),
        ("random(5, 1)", "empty range"),
        ("random_gaussian(1, 10, 1.5)", "gaussian parameter must be at least 2.0"),
        ("random_exponential(1, 10, 0)", "exponential parameter must be greater than zero"),
        ("random_zipfian(1, 10, 1.0)", "zipfian parameter must be in [1.001, 1000]"),
        ("9223372036854775807 + 1", "bigint out of range"),
        ("1 $ 2", "unexpected character '$'"),
        ("case when 1 then 2 end", "CASE without ELSE"),
    ],
)
def test_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expression(text)
    assert message in str(info.value)


def test_runtime_errors_are_eval_errors() -> None:
    expr = compile_expression(":a / :b")
    with pytest.raises(EvalError, match="division by zero"):
        expr.evaluate({"a": 1, "b": 0}, random.Random(1))
    with pytest.raises(EvalError, match="empty range"):
        compile_expression("random(:a, :b)").evaluate({"a": 2, "b": 1}, random.Random(1))


def test_random_stays_within_bounds() -> None:
    rng = random.Random(3)
    for text in ("random(-5, 5)", "random(1, 100000 * 3)", "random(7, 7)"):
        expr = compile_expression(text)
        values = [expr.evaluate({}, rng) for _ in range(5000)]
        lo, hi = (-5, 5) if "-5" in text else (1, 300000) if "3)" in text else (7, 7)
        assert all(lo <= v <= hi and isinstance(v, int) for v in values)
    small = compile_expression("random(1, 3)")
    assert set(small.evaluate({}, rng) for _ in range(300)) == {1, 2, 3}


def test_gaussian_is_bounded_and_centred() -> None:
    rng = random.Random(5)
    values = [rand_gaussian(rng, 1, 100, 2.5) for _ in range(20000)]
    assert min(values) >= 1 and max(values) <= 100
    middle = sum(1 for v in values if 26 <= v <= 75)
    assert middle > 0.7 * len(values)  # a uniform draw would give about half
    assert abs(sum(values) / len(values) - 50.5) < 2


def test_exponential_is_bounded_and_favours_the_low_end() -> None:
    rng = random.Random(5)
    values = [rand_exponential(rng, 1, 100, 5.0) for _ in range(20000)]
    assert min(values) >= 1 and max(values) <= 100
    low = sum(1 for v in values if v <= 20)
    assert low > 0.6 * len(values)  # 1 - e^-1 of the mass sits in the first fifth


def test_zipfian_is_bounded_and_favours_the_lower_bound() -> None:
    rng = random.Random(5)
    values = [rand_zipfian(rng, 1, 1000, 1.5) for _ in range(20000)]
    assert min(values) >= 1 and max(values) <= 1000
    counts = Counter(values)
    assert counts[1] > counts[2] > counts[4] > counts[20]
    assert counts[1] > 0.3 * len(values)


def test_zipfian_survives_a_parameter_near_one() -> None:
    # pow(u, -1000) overflows a double: pgbench gets inf and rejects the draw
    rng = random.Random(1)
    values = [rand_zipfian(rng, 1, 100, 1.001) for _ in range(2000)]
    assert all(1 <= v <= 100 for v in values)
    assert rand_zipfian(rng, 5, 5, 2.0) == 5


# -- script syntax ----------------------------------------------------------------


def test_select_only_script() -> None:
    text = (
        "\\set aid random(1, 100000 * :scale)\n"
        "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
    )
    sql, params = parse(text)
    assert sql == ["SELECT abalance FROM pgbench_accounts WHERE aid = $1"]
    assert params == [("aid",)]


def test_same_variable_reuses_its_placeholder() -> None:
    sql, params = parse("SELECT :a, :b, :a + :b;", a=1, b=2)
    assert sql == ["SELECT $1, $2, $1 + $2"]
    assert params == [("a", "b")]


def test_casts_are_not_variables() -> None:
    sql, params = parse("SELECT :a::int, '1'::bigint, now()::date, x:::y FROM t;", a=1)
    assert sql == ["SELECT $1::int, '1'::bigint, now()::date, x:::y FROM t"]
    assert params == [("a",)]


def test_quotes_and_comments_are_left_alone() -> None:
    text = (
        "SELECT ':a; x', \"col:a;\", E'it\\'s :a;', $$ :a ; $$, $t$;$t$, :a -- :b ;\n"
        "  /* :c ; /* nested ; */ */ FROM t;"
    )
    sql, params = parse(text, a=1)
    assert len(sql) == 1
    assert sql[0].startswith("SELECT ':a; x', \"col:a;\", E'it\\'s :a;', $$ :a ; $$, $t$;$t$, $1")
    assert params == [("a",)]


def test_doubled_quotes_stay_inside_the_string() -> None:
    sql, _ = parse("SELECT 'it''s; fine'; SELECT 2;")
    assert sql == ["SELECT 'it''s; fine'", "SELECT 2"]


def test_array_slices_are_not_variables_when_they_start_with_a_digit() -> None:
    sql, params = parse("SELECT (ARRAY[1,2,3])[1:2];")
    assert sql == ["SELECT (ARRAY[1,2,3])[1:2]"] and params == [()]


def test_multi_line_statement_and_line_numbers() -> None:
    text = (
        "-- header\n"
        "\n"
        "\\set aid random(1, 10)\n"
        "SELECT abalance\n"
        "  FROM pgbench_accounts  -- trailing ; comment\n"
        " WHERE aid = :aid;\n"
        "\n"
        "  UPDATE t SET x = 1; SELECT 2;\n"
    )
    _, statements = parse_script(text, name="t", source="t.sql")
    assert [s.line for s in statements] == [4, 8, 8]
    assert statements[0].sql.splitlines()[0] == "SELECT abalance"
    assert statements[0].sql.endswith("WHERE aid = $1")
    assert statements[0].where == "t.sql:4"


def test_semicolon_inside_parentheses_does_not_end_the_statement() -> None:
    sql, _ = parse("SELECT (SELECT 1; ) AS x;\nSELECT 2;")
    assert sql == ["SELECT (SELECT 1; ) AS x", "SELECT 2"]


def test_meta_command_ends_pending_sql_like_pgbench() -> None:
    # pgbench sends "SELECT 1" then runs \set: no semicolon is needed
    script, statements = parse_script("SELECT 1\n\\set x 2\nSELECT :x", name="t", source="t.sql")
    assert [s.sql for s in statements] == ["SELECT 1", "SELECT $1"]
    assert [type(c).__name__ for c in script.commands] == ["SqlCommand", "SetCommand", "SqlCommand"]


def test_comment_after_semicolon_is_dropped() -> None:
    sql, _ = parse("SELECT 1; -- done\n\\set x 1\nSELECT :x;")
    assert sql == ["SELECT 1", "SELECT $1"]


def test_transaction_block_is_one_statement_per_command() -> None:
    sql, _ = parse("BEGIN;\nUPDATE t SET a = 1;\nEND;")
    assert sql == ["BEGIN", "UPDATE t SET a = 1", "END"]


def test_meta_command_continuation_lines() -> None:
    script, _ = parse_script("\\set x 1 + \\\n  2 * 3\nSELECT :x;", name="t", source="t.sql")
    stream = stream_of(_workload(script_text="\\set x 1 + \\\n  2 * 3\nSELECT :x;"))
    assert stream.next().steps == ((0, (7,)),)
    assert len(script.commands) == 2


def test_description_is_the_leading_comment_block() -> None:
    script, _ = parse_script(
        "\n-- first line\n--second line\n\n-- not part of it\nSELECT 1;", name="t", source="t.sql"
    )
    assert script.description == "first line second line"
    script, _ = parse_script("SELECT 1; -- late\n", name="t", source="t.sql")
    assert script.description == ""


def test_sleep_forms() -> None:
    text = "\\set d 3\n\\sleep 2\n\\sleep 5 ms\n\\sleep 7 us\n\\sleep :d s\n\\sleep 1 MS"
    stream = stream_of(_workload(script_text=text))
    steps = stream.next().steps
    assert [s[0] for s in steps] == [SLEEP] * 5
    assert [s[1][0] for s in steps] == pytest.approx([2.0, 0.005, 7e-6, 3.0, 0.001])


def test_negative_sleep_does_not_sleep() -> None:
    stream = stream_of(_workload(script_text="\\set d -5\n\\sleep :d ms"))
    assert stream.next().steps == ((SLEEP, (0.0,)),)


def test_meta_commands_only_is_a_valid_script() -> None:
    script, statements = parse_script("\\sleep 1 ms", name="t", source="t.sql")
    assert statements == [] and len(script.commands) == 1


# -- errors name the file and the line ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("SELECT 1;\nSELECT :nope;", 2, "undefined variable :nope"),
        ("\\set a :b + 1", 1, "undefined variable :b"),
        ("SELECT :x;\n\\set x 1", 1, "undefined variable :x"),  # used before its \set
        ("\n\\set x nosuch(1)", 2, "unknown function 'nosuch'"),
        ("\\set x random(1, 2, 3)", 1, "random() takes 2 argument(s), got 3"),
        ("\\set x 1 +", 1, "\\set x:"),
        ("\\set x", 1, "\\set needs a variable name and an expression"),
        ("\\set 1x 2", 1, "invalid variable name"),
        ("\\set x 1 / 0", 1, "division by zero"),
        ("\\sleep", 1, "\\sleep needs a duration"),
        ("\\sleep 10ms", 1, "'10ms' is not an integer"),
        ("\\sleep 1 h", 1, "unknown unit 'h'"),
        ("\\sleep :nope", 1, "undefined variable :nope"),
        ("SELECT 1;\n\\frobnicate", 2, "unknown meta-command \\frobnicate"),
        ("SELECT 1 AS a \\gset", 1, "\\gset is a pgbench meta-command dbload does not support"),
        ("\\if :scale > 1\nSELECT 1;\n\\endif", 1, "\\if is a pgbench meta-command"),
        ("\\shell echo hi", 1, "\\shell is a pgbench"),
        ("\\setshell x echo 1", 1, "\\setshell is a pgbench"),
        ("SELECT 1 \\; SELECT 2;", 1, "\\; in SQL is not supported"),
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


def test_text_define_cannot_be_computed_with() -> None:
    error = error_of("\\set x :name + 1", name="alice")
    assert error.startswith("t.sql:1:") and "variable :name is not a number" in error
    _, params = parse("SELECT :name;", name="alice")  # but it binds fine
    assert params == [("name",)]


@pytest.mark.parametrize("text", ["", "\n\n", "-- just a comment\n", "/* nothing */ ;;\n"])
def test_empty_script(text: str) -> None:
    error = error_of(text)
    assert error.startswith("t.sql: ") and "empty script" in error


def test_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.sql")
    with pytest.raises(WorkloadError, match="script file not found") as info:
        load_workload([missing])
    assert str(info.value).startswith(f"{missing}: ")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="cannot read script") as info:
        load_workload([str(tmp_path)])  # a directory
    assert str(tmp_path) in str(info.value)


def test_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.sql", "-- bad\n\\set aid random(1, 10)\nSELECT :bid;\n")
    with pytest.raises(WorkloadError) as info:
        load_workload([path])
    assert str(info.value) == f"{path}:3: undefined variable :bid"


@pytest.mark.parametrize(
    "spec", ["x.sql@", "x.sql@-1", "x.sql@two", "x.sql@1.5", "@3", "x@99999999999"]
)
def test_bad_weight(spec: str) -> None:
    with pytest.raises(WorkloadError, match="weight must be an integer"):
        load_workload([spec])


def test_all_weights_zero(tmp_path: Path) -> None:
    path = write(tmp_path, "a.sql", "SELECT 1;")
    with pytest.raises(WorkloadError, match="weight 0"):
        load_workload([f"{path}@0"])


def test_unknown_builtin() -> None:
    with pytest.raises(WorkloadError, match=r"unknown workload 'nosuch'.*select"):
        load_workload(builtin="nosuch")


def test_scale_zero_is_reported_when_the_stream_is_built() -> None:
    workload = load_workload(builtin="select")
    with pytest.raises(WorkloadError, match=r"^select:2: \\set aid: empty range"):
        stream_of(workload, scale=0)


def test_runtime_evaluation_error_names_the_line() -> None:
    workload = _workload(script_text="\\set lo 5\n\\set x random(:lo, :client_id)\nSELECT :x;")
    with pytest.raises(WorkloadError, match=r"^t.sql:2: cannot evaluate: empty range"):
        stream_of(workload, client_id=1).next()


# -- workloads, built-ins, defines --------------------------------------------------


def _workload(script_text: str, **defines: int | float | str) -> Workload:
    script, statements = parse_script(script_text, name="t", source="t.sql", defines=defines)
    return Workload(
        name="t", scripts=(script,), statements=tuple(statements), defines=dict(defines)
    )


def test_builtin_names_and_descriptions() -> None:
    names = builtin_names()
    assert {"select", "tpcb", "join", "aggregate", "slow"} <= set(names)
    for name in names:
        assert builtin_text(name).startswith("-- ")
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
    assert workload.statements[0].sql == "SELECT abalance FROM pgbench_accounts WHERE aid = $1"


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
    values = [stream.next().steps[0][1][0] for _ in range(5000)]
    assert all(isinstance(v, int) and 1 <= v <= 300000 for v in values)
    assert max(values) > 250000  # type: ignore[operator]


def test_builtin_with_weight_and_files_combined(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "-- a\nSELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;\nSELECT 3;")
    workload = load_workload([f"{a}@2", b], builtin="select@3")
    assert workload.name == "select+a+b"
    assert [s.weight for s in workload.scripts] == [3, 2, 1]
    assert [s.name for s in workload.scripts] == ["select", a, b]
    assert [s.statements for s in workload.scripts] == [(0,), (1,), (2, 3)]
    assert [s.script for s in workload.statements] == [0, 1, 2, 2]
    assert workload.statements[3].source == b and workload.statements[3].line == 2


def test_weight_is_split_from_the_right(tmp_path: Path) -> None:
    folder = tmp_path / "x@y"
    folder.mkdir()
    path = write(folder, "s.sql", "SELECT 1;")
    workload = load_workload([f"{path}@4"])
    assert workload.scripts[0].weight == 4 and workload.scripts[0].name == path


def test_defines_are_typed_and_bound(tmp_path: Path) -> None:
    path = write(tmp_path, "d.sql", "\\set y :n * 2\nSELECT :n, :f, :s, :y;")
    workload = load_workload([path], defines={"n": "21", "f": "0.5", "s": "hello"})
    assert workload.defines == {"n": 21, "f": 0.5, "s": "hello"}
    assert stream_of(workload).next().steps == ((0, (21, 0.5, "hello", 42)),)


def test_define_overrides_scale() -> None:
    workload = load_workload(builtin="select", defines={"scale": "2"})
    stream = stream_of(workload, scale=1000)
    assert all(stream.next().steps[0][1][0] <= 200000 for _ in range(2000))  # type: ignore[operator]


def test_bad_define_name() -> None:
    with pytest.raises(WorkloadError, match="not a valid variable name"):
        load_workload(defines={"1bad": "1"})


def test_builtin_variables() -> None:
    workload = _workload("SELECT :scale, :client_id, :random_seed;")
    steps = ParameterStream(workload, seed=9, client_id=4, scale=7).next().steps
    assert steps == ((0, (7, 4, 9)),)


# -- parameter streams ------------------------------------------------------------------


def _take(stream: ParameterStream, n: int) -> list[object]:
    return [stream.next() for _ in range(n)]


def test_stream_is_deterministic() -> None:
    workload = load_workload(builtin="tpcb")
    first = _take(stream_of(workload, seed=42, client_id=3), 200)
    again = _take(stream_of(workload, seed=42, client_id=3), 200)
    assert first == again
    assert first != _take(stream_of(workload, seed=42, client_id=4), 200)
    assert first != _take(stream_of(workload, seed=43, client_id=3), 200)


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
    workload = _workload("\\set n :n + 1\nSELECT :n;", n=0)
    stream = stream_of(workload)
    assert [stream.next().steps[0][1][0] for _ in range(3)] == [1, 2, 3]


def test_weights_are_honoured(tmp_path: Path) -> None:
    a = write(tmp_path, "a.sql", "SELECT 1;")
    b = write(tmp_path, "b.sql", "SELECT 2;")
    c = write(tmp_path, "c.sql", "SELECT 3;")
    stream = stream_of(load_workload([f"{a}@1", f"{b}@0", f"{c}@3"]))
    counts = Counter(stream.next().script for _ in range(8000))
    assert counts[1] == 0  # weight 0 never runs
    assert 0.2 < counts[0] / 8000 < 0.3
    assert 0.7 < counts[2] / 8000 < 0.8


def test_transaction_steps_follow_script_order() -> None:
    workload = _workload("\\set a 1\nSELECT :a;\n\\sleep 2 ms\n\\set a :a + 1\nSELECT :a, :a;")
    txn = stream_of(workload).next()
    assert txn.script == 0
    assert txn.steps == ((0, (1,)), (SLEEP, (0.002,)), (1, (2,)))


# -- pgbench's own scripts run unchanged ----------------------------------------------


@pytest.mark.parametrize("name", ["tpcb-like", "simple-update", "select-only"])
def test_pgbench_builtin_copies_parse(name: str) -> None:
    workload = load_workload([str(DATA / "pgbench" / f"{name}.sql")])
    assert workload.statements
    stream_of(workload, scale=5).next()


@pytest.mark.skipif(PGBENCH is None, reason="pgbench is not on PATH")
@pytest.mark.parametrize("name", ["tpcb-like", "simple-update", "select-only"])
def test_pgbench_show_script_parses(name: str, tmp_path: Path) -> None:
    shown = subprocess.run(
        [str(PGBENCH), f"--show-script={name}"], capture_output=True, text=True, check=True
    )
    # pgbench prints the script on stderr, after a quoted header line
    lines = [
        line for line in (shown.stdout or shown.stderr).splitlines() if not line.startswith('"')
    ]
    path = write(tmp_path, f"{name}.sql", "\n".join(lines) + "\n")
    workload = load_workload([path])
    assert workload.scripts[0].description.startswith(f"{name}:")
    copy = load_workload([str(DATA / "pgbench" / f"{name}.sql")])
    assert [s.sql for s in workload.statements] == [s.sql for s in copy.statements]
