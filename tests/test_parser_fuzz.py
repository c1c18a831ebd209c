"""Fuzzing the script parser and the expression language with hypothesis.

Whatever the input, parsing fails only with dbload's own WorkloadError (or
ExprError for a bare expression), evaluation only with EvalError, and a
parameter stream only with ScriptRuntimeError: never a RecursionError, a
bare ArithmeticError or a hang. Bounded: a few hundred examples a property,
no deadline (the machine is shared, timing is not what is tested);
DBLOAD_FUZZ_EXAMPLES=100000 fuzzes for longer.
"""

from __future__ import annotations

import math
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbload.errors import WorkloadError
from dbload.workload.expr import EvalError, ExprError, compile_expression, function_names
from dbload.workload.model import ScriptRuntimeError, Workload
from dbload.workload.parser import parse_script
from dbload.workload.stream import QUERY, SHELL, ParameterStream

FUZZ = settings(
    max_examples=int(os.environ.get("DBLOAD_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,  # no .hypothesis/ folder left in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
VARIABLES = ("a", "b", "scale")

# -- grammar-shaped input ----------------------------------------------------------

_numbers = st.sampled_from(
    [
        *("0", "1", "2", "7", "10", "2.5", ".5", "1.", "1e3", "1e308", "0.0", "100000"),
        *("9223372036854775807", "9223372036854775808", "99999999999999999999", "1e400"),
    ]
)
_atoms = st.one_of(
    _numbers,
    st.sampled_from([f":{name}" for name in VARIABLES] + ["true", "false", "pi()"]),
)
_binary = st.sampled_from([
    "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "=", "<>", "!=",
    "&", "|", "#", "<<", ">>", "and", "or",
])  # fmt: skip
_functions = st.sampled_from(function_names())


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, _binary, inner).map(" ".join),
        inner.map(lambda e: f"({e})"),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), inner).map("".join),
        st.tuples(_functions, st.lists(inner, max_size=4)).map(
            lambda f: f"{f[0]}({', '.join(f[1])})"
        ),
        st.tuples(inner, inner, inner).map(
            lambda c: f"case when {c[0]} then {c[1]} else {c[2]} end"
        ),
    )


expressions = st.recursive(_atoms, _compound, max_leaves=12)
# Joining grammar pieces with arbitrary separators also produces near misses.
broken_expressions = st.lists(
    st.one_of(_atoms, _binary, st.sampled_from(["(", ")", ",", "case", "when", "then", "end"])),
    max_size=12,
).map(" ".join)
deep_expressions = st.tuples(st.integers(90, 12000), st.sampled_from(["(", "-(", "abs("])).map(
    lambda d: d[1] * d[0] + "~1e308" + ")" * d[0]
)
values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)

_meta = st.one_of(
    expressions.map(lambda e: f"\\set x {e}"),
    st.tuples(
        st.one_of(st.sampled_from([":x", ":a", "-1", "+5", "10ms", "1.5", ""]), _numbers),
        st.sampled_from(["", "us", "ms", "s", "h"]),
    ).map(lambda p: f"\\sleep {p[0]} {p[1]}"),
    st.sampled_from(["\\gset", "\\if 1", "\\set", "\\set 1x 2", "\\frob", "\\sleep"]),
    # the rest of pgbench's meta-commands, balanced or not
    st.sampled_from(
        [
            *("\\gset p_", "\\aset", "\\aset x", "\\gset a b", "\\syncpipeline"),
            *("\\if :a", "\\if :x > 1", "\\elif 0", "\\elif :b", "\\else", "\\endif"),
            *("\\shell true", "\\shell echo :a ::b", "\\setshell x echo 1", "\\setshell"),
            *("\\startpipeline", "\\endpipeline", "\\startpipeline x", "\\sleep :p_x ms"),
        ]
    ),
    expressions.map(lambda e: f"\\if {e}"),
    st.sampled_from(["\\set x ~1e308", "\\set x -:a / 0", "\\sleep 99999999999999999999 s"]),
    st.integers(90, 12000).map(lambda n: "\\set x " + "(" * n + "1" + ")" * n),
)
_sql = st.sampled_from(
    [
        "SELECT :x;",
        "SELECT 1;",
        "SELECT ':x', \"a;b\", $$;$$ /* ; */ -- ;\n;",
        "COPY t FROM STDIN;",
        "COPY (SELECT 1) TO STDOUT;",
        "SELECT 'open",
        "SELECT 1 \\; SELECT 2;",
        "SELECT 1 AS x \\; SELECT 2 AS y \\gset p_",
        "SELECT :p_x, 1 AS x",
        "CREATE TEMP TABLE t (a int);",
        "SELECT 1 \\:x;",
        "SELECT (;",
        "E'\\'' ;",
    ]
)
scripts = st.lists(st.one_of(_meta, _sql), min_size=1, max_size=6).map("\n".join)
_script_alphabet = st.sampled_from(list("\\:;'\"$()-/*\n\r\t ,+~<>=!e1.0ax_\x00\ufeff\u00a0é"))
noisy_scripts = st.text(_script_alphabet, max_size=80)


def _parse(text: str) -> None:
    try:
        parse_script(text, name="f", source="f.sql", defines={"a": 1, "b": 2.5})
    except WorkloadError as exc:
        message = str(exc)
        assert message.startswith("f.sql"), message
        assert "\n" not in message, message


# -- properties --------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=60), noisy_scripts, scripts))
@pytest.mark.slow
def test_any_script_parses_or_fails_with_a_workload_error(text: str) -> None:
    _parse(text)


@FUZZ
@given(st.one_of(st.text(max_size=40), expressions, broken_expressions, deep_expressions))
@pytest.mark.slow
def test_any_expression_compiles_or_fails_with_an_expr_error(text: str) -> None:
    try:
        compile_expression(text)
    except ExprError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(expressions, st.fixed_dictionaries({name: values for name in VARIABLES}))
@pytest.mark.slow
def test_evaluation_returns_a_value_or_fails_with_an_eval_error(
    text: str, variables: dict[str, object]
) -> None:
    try:
        expr = compile_expression(text)
    except ExprError:
        return
    try:
        result = expr.evaluate(variables, random.Random(1))
    except EvalError:
        return
    assert type(result) in (int, float, bool)
    if type(result) is int:
        assert -(2**63) <= result < 2**63


def _outcome(expr_text: str, variables: dict[str, object], rng: random.Random) -> object:
    try:
        value = compile_expression(expr_text).evaluate(variables, rng)
    except (ExprError, EvalError) as exc:
        return ("error", str(exc))
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value), value)


@FUZZ
@given(expressions, st.fixed_dictionaries({name: values for name in VARIABLES}))
@pytest.mark.slow
def test_deeply_nested_expressions_evaluate_like_shallow_ones(
    text: str, variables: dict[str, object]
) -> None:
    # Past a height, a tree is evaluated by a loop instead of nested
    # closures: CASE layers that change nothing force that path.
    deep = text
    for _ in range(120):
        deep = f"case when true then ({deep}) else 0 end"
    shallow_rng, deep_rng = random.Random(3), random.Random(3)
    assert _outcome(deep, variables, deep_rng) == _outcome(text, variables, shallow_rng)
    assert deep_rng.random() == shallow_rng.random()  # the same draws were made


@FUZZ
@given(scripts, st.sampled_from([0, 1, 7]))
@pytest.mark.slow
def test_a_stream_fails_only_with_a_script_runtime_error(text: str, client_id: int) -> None:
    try:
        script, statements = parse_script(text, name="f", source="f.sql", defines={"a": 0})
    except WorkloadError:
        return
    workload = Workload("f", (script,), tuple(statements), {"a": 0})
    try:
        stream = ParameterStream(workload, seed=1, client_id=client_id, scale=1)
    except WorkloadError:
        return
    for _ in range(3):
        try:
            _drive(stream)
        except ScriptRuntimeError as exc:
            assert str(exc).startswith("f.sql:"), str(exc)
            return


def _drive(stream: ParameterStream) -> None:
    """One transaction, each request answered as a server and a shell could:
    a one-row result for \\gset and \\aset, "1" from every shell command."""
    txn = stream.transaction()
    try:
        request = next(txn)
        while True:
            answer: object = None
            if request[0] == QUERY and request[3]:
                answer = (("x", "y"), [("1", None)])
            elif request[0] == SHELL:
                answer = (0, "1\n")
            request = txn.send(answer)
    except StopIteration:
        return
