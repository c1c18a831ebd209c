"""The workload layer: pgbench's expression language, script syntax, streams.

Pure Python, no database. Expected values for the expression language were
checked against pgbench 15 itself (``\\set x debug(...)``).
"""

from __future__ import annotations

import math
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
INT64_MIN = -(2**63)


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


def _workload(script_text: str, **defines: int | float | str) -> Workload:
    script, statements = parse_script(script_text, name="t", source="t.sql", defines=defines)
    return Workload(
        name="t", scripts=(script,), statements=tuple(statements), defines=dict(defines)
    )


def first_values(script_text: str, **defines: int | float | str) -> tuple[object, ...]:
    """The bind values of the first statement of one transaction."""
    return stream_of(_workload(script_text, **defines)).next().steps[0][1]


# -- the expression language ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # integer arithmetic, with C's truncating division and remainder
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 * (3 + 4) - 5", 9),
        ("10 - 2 - 3", 5),  # left-associative
        ("10 / 3 * 3", 9),  # left-associative, integer division first
        ("7 / 2", 3),
        ("-7 / 2", -3),  # C truncates toward zero; Python's // would give -4
        ("7 / -2", -3),
        ("-7 % 3", -1),  # the remainder has the dividend's sign, as in C
        ("-7 % 2", -1),
        ("7 % -2", 1),
        ("mod(7, 3)", 1),
        ("mod(-7, 2)", -1),
        ("7.6 % 2", 0),  # '%' rounds doubles to integers first (pgbench: rint)
        # unary minus and plus
        ("-3 + 1", -2),
        ("- -3", 3),
        ("2 - -3", 5),
        ("-(2 + 3)", -5),
        ("+4", 4),
        # a double operand makes the operation double
        ("7.0 / 2", 3.5),
        ("5 / 2.0", 2.5),
        ("1 + 0.5", 1.5),
        ("2.5e1", 25.0),
        (".5 * 4", 2.0),
        # functions
        ("int(5.5)", 6),  # rint: half to even, as pgbench prints
        ("int(6.5)", 6),
        ("int(-2.7)", -3),
        ("int(7)", 7),
        ("double(3)", 3.0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("least(3, 1, 2)", 1),
        ("greatest(3, 1, 2)", 3),
        ("least(5)", 5),
        ("least(1, 2.0)", 1.0),  # any double makes the result double
        ("greatest(1, 2.5)", 2.5),
        ("greatest(3, 2.5)", 3.0),
        ("sqrt(16)", 4.0),
        ("sqrt(2) * sqrt(2) > 1.99", True),
        ("pi()", 3.141592653589793),
        ("PI()", 3.141592653589793),  # function names are case-insensitive
        ("pow(2, 10)", 1024.0),
        ("power(4, 0.5)", 2.0),
        # bitwise operators
        ("5 & 3", 1),
        ("5 | 3", 7),
        ("5 # 3", 6),
        ("1 << 4", 16),
        ("~0", -1),
        # comparisons and logic give booleans (pgbench's true/false)
        ("1 = 1", True),
        ("1 <> 1", False),
        ("2 < 3.5", True),
        ("2 >= 3", False),
        ("1 + 2 = 3", True),  # arithmetic binds tighter than comparison
        ("not (1 = 2) and true", True),
        ("false or 1 > 2", False),
        ("case when 1 > 2 then 10 when 2 > 1 then 20 else 30 end", 20),
        ("CASE WHEN false THEN 1 ELSE 2 END", 2),
        ("random(1.6, 1.6)", 2),  # bounds are rounded like any int coercion
        # '~' binds like the bitwise operators, as in pgbench's grammar
        ("~1 + 2", -4),
        ("~1 | 2", -2),
        ("-~1", 2),
        ("-9223372036854775808", INT64_MIN),
        ("- 9223372036854775808", INT64_MIN),
        # doubles follow C: no error, an infinity or NaN
        ("1.0 / 0", math.inf),
        ("-1.0 / 0", -math.inf),
        ("exp(1000)", math.inf),
        ("pow(0, -1)", math.inf),
        ("pow(-10, 1001.0)", -math.inf),
        ("ln(0)", -math.inf),
        ("1e308 * 10", math.inf),
        ("-0.0", 0.0),
        ("9223372036854775807 = 9223372036854775808.0", True),  # compared as doubles
        # int64 as pgbench computes it on x86-64
        ("abs(-9223372036854775807 - 1)", INT64_MIN),
        ("1 << 64", 1),
        ("1 << -1", INT64_MIN),
        ("1 << 63", INT64_MIN),
        ("1 >> 65", 0),
        ("-8 >> 1", -4),
        ("least(1, 2.0)", 1.0),
        ("greatest(1e308 * 10 - 1e308 * 10, 1)", 1.0),  # C's Max(NaN, 1)
        # a branch that is not taken is not evaluated
        ("case when false then 1 / 0 else 3 end", 3),
        ("false and 1 / 0 = 1", False),
        ("true or 1 / 0 = 1", True),
    ],
)
def test_expression_values(text: str, expected: object) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text", ["sqrt(-1)", "pow(-8, 0.5)", "ln(-1)", "0.0 / 0", "least(1, 1e308 * 10 - 1e308 * 10)"]
)
def test_invalid_double_operations_give_nan_like_pgbench(text: str) -> None:
    result = ev(text)
    assert isinstance(result, float) and math.isnan(result)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 > 2", 1),
        ("3 < 2", 0),
        ("2 <= 2", 1),
        ("2 != 2", 0),
        ("true AND true", 1),
        ("true AND false", 0),
        ("false OR true", 1),
        ("false OR false", 0),
        ("NOT false", 1),
        ("NOT true", 0),
        ("3 > 2 AND 2 > 1", 1),
        ("NOT 1 = 2", 1),  # NOT binds looser than '=', as in pgbench
        ("true OR false AND false", 1),  # AND binds tighter than OR
        ("case when 5 then 1 else 0 end", 1),  # only CASE tests a number's truth
    ],
)
def test_comparisons_and_logic_give_one_or_zero(text: str, expected: int) -> None:
    assert ev(text) == expected


def test_variable_references() -> None:
    assert ev(":a * :b + 1", a=3, b=4) == 13
    assert ev("-:a", a=3) == -3
    assert ev(":a / 2", a=7.0) == 3.5


def test_variables_are_read_and_reported() -> None:
    expr = compile_expression("random(1, 100000 * :scale) + :x")
    assert expr.variables == {"scale", "x"}
    assert 3 <= expr.evaluate({"scale": 1, "x": 2}, random.Random(1)) <= 100002


def test_constants_fold_at_compile_time() -> None:
    expr = compile_expression("100000 * :scale + 1", {"scale": 3})
    assert expr.evaluate({}, random.Random(1)) == 300001  # no lookup of :scale


@pytest.mark.parametrize(
    "text",
    [
        "100000 * :scale + 1",
        "-:n / 2 + :n % 3",
        ":f * 2",
        "least(:n, :f, 10)",
        "greatest(:n, 2) * abs(-:scale)",
        "sqrt(:n) + pow(:scale, 2)",
        "int(:f) + double(:n)",
        "mod(:n, 4) = 3 and not (:scale > 5)",
        "case when :n > 1 then :n else 0 end",
        "~:n & 255",
    ],
)
def test_folding_constants_gives_the_same_value(text: str) -> None:
    constants = {"scale": 3, "n": 7, "f": 2.5}
    folded = compile_expression(text, constants).evaluate({}, random.Random(1))
    looked_up = compile_expression(text).evaluate(constants, random.Random(1))
    assert folded == looked_up
    assert type(folded) is type(looked_up)


def test_folding_constants_draws_the_same_random_values() -> None:
    constants = {"scale": 3}
    text = "random(1, 100000 * :scale)"
    folded = compile_expression(text, constants)
    looked_up = compile_expression(text)
    for seed in range(20):
        a = folded.evaluate({}, random.Random(seed))
        b = looked_up.evaluate(constants, random.Random(seed))
        assert a == b, f"seed {seed}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("1 +", "unexpected"),
        ("(1 + 2", "expected ')'"),
        ("1 2", "unexpected '2' after expression"),
        ("1 + 2 )", "unexpected ')' after expression"),
        ("(1) (2)", "unexpected '(' after expression"),
        ("1 $ 2", "unexpected character '$'"),
        ("1 @ 2", "unexpected character '@'"),
        ("'a' + 1", "unexpected character"),
        ("nosuch(1)", "unknown function 'nosuch'"),
        ("random(1)", "random() takes 2 argument(s), got 1"),
        ("abs(1, 2)", "abs() takes 1 argument(s), got 2"),
        ("pi(1)", "pi() takes 0 argument(s), got 1"),
        ("least()", "least() takes 1..n argument(s), got 0"),
        ("random_gaussian(1, 10)", "random_gaussian() takes 3 argument(s), got 2"),
        ("1 / 0", "division by zero"),
        ("10 % 0", "division by zero"),
        ("mod(1, 0)", "division by zero"),
        ("random(5, 1)", "empty range"),
        ("random_gaussian(1, 10, 1.5)", "gaussian parameter must be at least 2.0"),
        ("random_exponential(1, 10, 0)", "exponential parameter must be greater than zero"),
        ("random_zipfian(1, 10, 1.0)", "zipfian parameter must be in [1.001, 1000]"),
        ("9223372036854775807 + 1", "bigint out of range"),
        ("case when 1 then 2 end", "CASE without ELSE"),
        # what pgbench 15 refuses too
        ("1 < 2 < 3", "comparisons do not chain"),
        ("1 = 1 = 1", "comparisons do not chain"),
        ("9223372036854775808", "bigint constant overflow"),
        ("-(9223372036854775808)", "bigint constant overflow"),
        ("99999999999999999999", "bigint constant overflow"),
        ("1e400", "double constant overflow"),
        ("1e-310", "double constant overflow"),
        ("~1e308", "double to int overflow"),
        ("int(1e308 * 10)", "double to int overflow"),
        ("true + 1", "cannot coerce boolean to int"),
        ("sqrt(true)", "cannot coerce boolean to double"),
        ("1 AND 2", "cannot coerce int to boolean"),
        ("NOT 0", "cannot coerce int to boolean"),
        ("\u0661 + 1", "unknown function"),  # not a digit: non-ASCII is a letter
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


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        (":a + 1", {"a": True}, "cannot coerce boolean to int"),
        (":a * 1.5", {"a": False}, "cannot coerce boolean to double"),
        ("not :a", {"a": 1}, "cannot coerce int to boolean"),
        (":a and true", {"a": 0.5}, "cannot coerce double to boolean"),
        ("random(1, :a)", {"a": math.inf}, "double to int overflow"),
        ("case when :a > 0 then 1 / 0 else 0 end", {"a": 1}, "division by zero"),
        ("true and 1 / :a = 1", {"a": 0}, "division by zero"),
    ],
)
def test_runtime_type_and_lazy_errors_are_eval_errors(
    text: str, variables: dict[str, object], message: str
) -> None:
    expr = compile_expression(text)  # accepted: the failure depends on the values
    with pytest.raises(EvalError, match=message):
        expr.evaluate(variables, random.Random(1))


@pytest.mark.parametrize("depth", [99, 500, 9996])
@pytest.mark.slow
def test_nesting_as_deep_as_pgbench_accepts(depth: int) -> None:
    # pgbench 15 accepts 9996 nested parentheses and refuses 9997
    assert ev("(" * depth + "1" + ")" * depth) == 1
    half = depth // 2  # -( takes two of pgbench's parser stack entries
    assert ev("-(" * half + ":x" + ")" * half, x=5) == (-5 if half % 2 else 5)
    assert ev(" + ".join([":x"] * depth), x=2) == 2 * depth


def test_nesting_deeper_than_pgbench_accepts_is_an_expr_error() -> None:
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expression("(" * 9997 + "1" + ")" * 9997)
    error = error_of("\\set x " + "(" * 20000 + "1" + ")" * 20000 + "\nSELECT :x;")
    assert error.startswith("t.sql:1: ") and "nested too deeply" in error


def test_negating_the_smallest_bigint_overflows() -> None:
    with pytest.raises(ExprError, match="bigint out of range"):
        compile_expression("-(-9223372036854775807 - 1)")
    with pytest.raises(EvalError, match="bigint out of range"):
        compile_expression("-:x").evaluate({"x": INT64_MIN}, random.Random(1))


def test_bitwise_not_rounds_a_double_like_the_other_bit_operators() -> None:
    assert ev("~1.5") == ev("-1 # 1.5") == -3
    assert ev("~:x", x=1.5) == -3


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


# -- the random functions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lo", "hi"),
    [
        ("random(-5, 5)", -5, 5),
        ("random(1, 100000 * 3)", 1, 300000),
        ("random(7, 7)", 7, 7),
        ("random(:lo, :hi)", -20, 20),
        ("random_gaussian(1, 100, 2.0)", 1, 100),
        ("random_gaussian(-50, 50, 10)", -50, 50),
        ("random_exponential(1, 100, 0.5)", 1, 100),
        ("random_exponential(10, 20, 20)", 10, 20),
        ("random_zipfian(1, 100, 1.001)", 1, 100),
        ("random_zipfian(-10, 10, 1000)", -10, 10),
        ("random_zipfian(5, 5, 2)", 5, 5),
    ],
)
@pytest.mark.slow
def test_random_functions_stay_within_bounds(text: str, lo: int, hi: int) -> None:
    expr = compile_expression(text)
    rng = random.Random(3)
    values = [expr.evaluate({"lo": -20, "hi": 20}, rng) for _ in range(5000)]
    assert all(type(v) is int and lo <= v <= hi for v in values)


@pytest.mark.parametrize("text", ["random(1, 3)", "random(:lo, :hi)"])
def test_uniform_random_reaches_both_ends(text: str) -> None:
    expr = compile_expression(text)
    rng = random.Random(4)
    values = Counter(expr.evaluate({"lo": 1, "hi": 3}, rng) for _ in range(3000))
    assert set(values) == {1, 2, 3}
    assert all(800 < n < 1200 for n in values.values())


@pytest.mark.parametrize(
    ("function", "param", "message"),
    [
        ("random_gaussian", 1.9, "gaussian parameter must be at least 2.0"),
        ("random_gaussian", -3, "gaussian parameter must be at least 2.0"),
        ("random_exponential", 0, "exponential parameter must be greater than zero"),
        ("random_exponential", -1.5, "exponential parameter must be greater than zero"),
        ("random_zipfian", 1.0, "zipfian parameter must be in [1.001, 1000]"),
        ("random_zipfian", 1000.5, "zipfian parameter must be in [1.001, 1000]"),
    ],
)
def test_bad_random_parameter_is_an_eval_error(function: str, param: float, message: str) -> None:
    expr = compile_expression(f"{function}(1, 10, :p)")  # not constant: checked when drawn
    with pytest.raises(EvalError) as info:
        expr.evaluate({"p": param}, random.Random(1))
    assert message in str(info.value)


@pytest.mark.timeout(60)  # a NaN parameter used to loop forever: fail, not hang
@pytest.mark.parametrize("function", ["random_gaussian", "random_exponential", "random_zipfian"])
@pytest.mark.parametrize("param", [math.nan, math.inf, -math.inf])
def test_nan_or_infinite_random_parameter_is_an_eval_error(function: str, param: float) -> None:
    expr = compile_expression(f"{function}(1, 100, :p)")
    with pytest.raises(EvalError, match="parameter"):
        expr.evaluate({"p": param}, random.Random(1))


@pytest.mark.timeout(60)
def test_nan_gaussian_parameter_in_a_script_fails_the_transaction() -> None:
    script = "\\set i 1e308 * 10\n\\set p :i - :i\n\\set x random_gaussian(1, 100, :p)\nSELECT :x;"
    with pytest.raises(ScriptRuntimeError, match=r"^t.sql:3: cannot evaluate: gaussian"):
        stream_of(_workload(script)).next()


@pytest.mark.parametrize(
    ("function", "param"),
    [
        ("random_gaussian", 2.0),
        ("random_exponential", 1e-3),
        ("random_zipfian", 1.001),
        ("random_zipfian", 1000),
    ],
)
def test_edge_random_parameters_are_accepted(function: str, param: float) -> None:
    value = compile_expression(f"{function}(1, 10, :p)").evaluate({"p": param}, random.Random(1))
    assert 1 <= value <= 10


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


@pytest.mark.parametrize("text", ["random_exponential(1, 100, 5.0)", "random_zipfian(1, 100, 1.5)"])
def test_skewed_draws_pick_the_lower_bound_far_more_than_uniform(text: str) -> None:
    expr = compile_expression(text)
    rng = random.Random(11)
    draws = 10000
    share = sum(1 for _ in range(draws) if expr.evaluate({}, rng) == 1) / draws
    assert share > 3 * (1 / 100)  # uniform would give 1%; expect ~5% and ~42%


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BEGIN; SELECT 1;", ["BEGIN", "SELECT 1"]),
        ("BEGIN;\nUPDATE t SET a = 1;\nEND;", ["BEGIN", "UPDATE t SET a = 1", "END"]),
        ("SELECT 1;\nSELECT 2", ["SELECT 1", "SELECT 2"]),  # the last needs no ';'
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;;\n;SELECT 2;", ["SELECT 1", "SELECT 2"]),  # empty statements vanish
        ("SELECT 'a;b';", ["SELECT 'a;b'"]),
        ("SELECT 'it''s; fine'; SELECT 2;", ["SELECT 'it''s; fine'", "SELECT 2"]),
        ('SELECT 1 AS "a;b";', ['SELECT 1 AS "a;b"']),
        ("SELECT (SELECT 1; ) AS x;\nSELECT 2;", ["SELECT (SELECT 1; ) AS x", "SELECT 2"]),
        ("SELECT 1 -- no; end\n + 1;", ["SELECT 1 -- no; end\n + 1"]),
        ("SELECT 1 /* no; end */ + 1;", ["SELECT 1 /* no; end */ + 1"]),
        ("SELECT $$a;b$$;", ["SELECT $$a;b$$"]),
        ("SELECT $fn$ a; 'b; $fn$;", ["SELECT $fn$ a; 'b; $fn$"]),
        ("SELECT E'it\\'s;';", ["SELECT E'it\\'s;'"]),
    ],
)
def test_statement_splitting(text: str, expected: list[str]) -> None:
    assert parse(text)[0] == expected


@pytest.mark.parametrize(
    ("text", "sql", "params"),
    [
        ("SELECT :a;", "SELECT $1", ("a",)),
        ("SELECT :a, :b, :a + :b;", "SELECT $1, $2, $1 + $2", ("a", "b")),
        ("SELECT :b, :a, :b;", "SELECT $1, $2, $1", ("b", "a")),  # first use decides
        ("SELECT :a::int;", "SELECT $1::int", ("a",)),
        ("SELECT '1'::bigint, now()::date;", "SELECT '1'::bigint, now()::date", ()),
        ("SELECT x:::a FROM t;", "SELECT x:::a FROM t", ()),
        ("SELECT ':a', :a;", "SELECT ':a', $1", ("a",)),  # a literal is left as written
        ('SELECT "col:a" FROM t;', 'SELECT "col:a" FROM t', ()),
        ("SELECT $$ :a $$;", "SELECT $$ :a $$", ()),
        ("SELECT 1 -- :a\n;", "SELECT 1 -- :a", ()),
        ("SELECT (ARRAY[1,2,3])[1:2];", "SELECT (ARRAY[1,2,3])[1:2]", ()),
    ],
)
def test_variables_become_numbered_parameters(text: str, sql: str, params: tuple[str, ...]) -> None:
    assert parse(text, a=1, b=2) == ([sql], [params])


def test_quotes_and_comments_are_left_alone() -> None:
    text = (
        "SELECT ':a; x', \"col:a;\", E'it\\'s :a;', $$ :a ; $$, $t$;$t$, :a -- :b ;\n"
        "  /* :c ; /* nested ; */ */ FROM t;"
    )
    sql, params = parse(text, a=1)
    assert len(sql) == 1
    assert sql[0].startswith("SELECT ':a; x', \"col:a;\", E'it\\'s :a;', $$ :a ; $$, $t$;$t$, $1")
    assert params == [("a",)]


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


def test_line_numbers_count_continuation_lines_and_comments() -> None:
    text = "\\set x 1 + \\\n  2\n\n-- a comment\n/* a\nblock */\nSELECT :x\n  , 2\n"
    _, statements = parse_script(text, name="t", source="t.sql")
    assert [(s.sql, s.line) for s in statements] == [("SELECT $1\n  , 2", 7)]


def test_meta_command_ends_pending_sql_like_pgbench() -> None:
    # pgbench sends "SELECT 1" then runs \set: no semicolon is needed
    script, statements = parse_script("SELECT 1\n\\set x 2\nSELECT :x", name="t", source="t.sql")
    assert [s.sql for s in statements] == ["SELECT 1", "SELECT $1"]
    assert [type(c).__name__ for c in script.commands] == ["SqlCommand", "SetCommand", "SqlCommand"]


def test_comments_and_blank_lines_are_dropped() -> None:
    text = "-- top\n\n\\set x 1\n\n-- middle\n\nSELECT 1; -- done\n\n--\n\\set y :x\nSELECT :y;\n"
    script, statements = parse_script(text, name="t", source="t.sql")
    assert [s.sql for s in statements] == ["SELECT 1", "SELECT $1"]
    assert len(script.commands) == 4


def test_set_continuation_lines() -> None:
    text = "\\set x 1 + \\\n  2 * \\\n  3\nSELECT :x;"
    script, _ = parse_script(text, name="t", source="t.sql")
    assert len(script.commands) == 2
    assert first_values(text) == ("7",)  # values are bound as text, as pgbench sends them


def test_description_is_the_leading_comment_block() -> None:
    script, _ = parse_script(
        "\n-- first line\n--second line\n\n-- not part of it\nSELECT 1;", name="t", source="t.sql"
    )
    assert script.description == "first line second line"


@pytest.mark.parametrize("text", ["SELECT 1; -- late\n", "\\set x 1\n-- late\nSELECT 1;"])
def test_no_leading_comment_no_description(text: str) -> None:
    script, _ = parse_script(text, name="t", source="t.sql")
    assert script.description == ""


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
    "text",
    [
        "COPY pgbench_history FROM '/tmp/history.csv';",  # a server-side file: no client data
        "SELECT 'COPY t FROM STDIN';",
        "SELECT stdin FROM copy;",
        "COPY t (stdin) TO '/tmp/x';",
    ],
)
def test_copy_without_client_data_is_accepted(text: str) -> None:
    assert len(parse(text)[0]) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("99999999999", "99999999999 s is out of range"),
        ("1e20", "1e\\+20 s is out of range"),
        ("1e308 * 10 - 1e308 * 10", "invalid sleep time nan"),
        ("1e308 * 10", "invalid sleep time inf"),
        ("true", "invalid sleep time True"),
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


def test_meta_commands_only_is_a_valid_script() -> None:
    script, statements = parse_script("\\sleep 1 ms", name="t", source="t.sql")
    assert statements == [] and len(script.commands) == 1


def test_builtin_variables_are_always_defined() -> None:
    _, params = parse("\\set s :scale + :client_id + :random_seed\nSELECT :scale, :client_id;")
    assert params == [("scale", "client_id")]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("21", 21), ("-3", -3), ("0.5", 0.5), ("1e3", 1000.0), ("hello", "hello"), ("", "")],
)
def test_define_values_are_typed(value: str, parsed: object) -> None:
    workload = load_workload(defines={"v": value})
    assert workload.defines == {"v": parsed}
    assert type(workload.defines["v"]) is type(parsed)


@pytest.mark.parametrize("value", ["2024_01", "\u0661\u0662"])
def test_define_that_is_not_a_plain_number_stays_text(value: str) -> None:
    assert load_workload(defines={"v": value}).defines == {"v": value}


def test_defines_are_typed_and_bound(tmp_path: Path) -> None:
    path = write(tmp_path, "d.sql", "\\set y :n * 2\nSELECT :n, :f, :s, :y;")
    workload = load_workload([path], defines={"n": "21", "f": "0.5", "s": "hello"})
    assert workload.defines == {"n": 21, "f": 0.5, "s": "hello"}
    assert stream_of(workload).next().steps == ((0, ("21", "0.5", "hello", "42")),)


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
        ("SELECT 1 AS a \\gset", 1, "\\gset is a pgbench meta-command dbload does not support"),
        ("SELECT 1 AS a \\aset", 1, "\\aset is a pgbench meta-command dbload does not support"),
        ("\\if :scale > 1\nSELECT 1;\n\\endif", 1, "\\if is a pgbench meta-command"),
        ("\\shell echo hi", 1, "\\shell is a pgbench"),
        ("\\setshell x echo 1", 1, "\\setshell is a pgbench"),
        ("\\startpipeline", 1, "\\startpipeline is a pgbench"),
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


@pytest.mark.parametrize("command", ["gset", "if", "shell"])
def test_unsupported_meta_commands_say_so(command: str) -> None:
    error = error_of(f"SELECT 1;\n\\{command} x")
    assert error.startswith("t.sql:2: ") and "not support" in error


def test_text_define_cannot_be_computed_with() -> None:
    error = error_of("\\set x :name + 1", name="alice")
    assert error.startswith("t.sql:1:") and "variable :name is not a number" in error
    error = error_of("\\sleep :name", name="alice")
    assert error.startswith("t.sql:1:") and "variable :name is not a number" in error
    _, params = parse("SELECT :name;", name="alice")  # but it binds fine
    assert params == [("name",)]


@pytest.mark.parametrize(
    "text", ["", "\n\n", "-- just a comment\n", "-- one\n\n-- two\n", "/* nothing */ ;;\n"]
)
def test_empty_script(text: str) -> None:
    error = error_of(text)
    assert error.startswith("t.sql: ") and "empty script" in error


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
    assert builtin_names() == ["aggregate", "join", "select", "slow", "tpcb"]


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
