"""The interpreter's protocol (workload/stream.py), driven as an executor
drives it but answering by hand: no database needed. What the executors do
with each request, against a real server, is tests/test_interpreter.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbload.workload.commands import PipelineCommand, SqlCommand
from dbload.workload.model import Script, ScriptRuntimeError, Statement, Value, Workload
from dbload.workload.parser import parse_script
from dbload.workload.stream import PIPELINE, QUERY, SHELL, SLEEP, ParameterStream, Request

Answer = Callable[[Request], Any]


def _workload(text: str, **defines: Value) -> Workload:
    script, statements = parse_script(text, name="t", source="t.sql", defines=defines)
    return Workload(name="t", scripts=(script,), statements=tuple(statements), defines=defines)


def _stream(workload: Workload, **kwargs: Any) -> ParameterStream:
    return ParameterStream(workload, seed=3, client_id=0, scale=1, **kwargs)


def _none(_request: Request) -> Any:
    return None


def drive(stream: ParameterStream, answer: Answer = _none, retry: bool = False) -> list[Request]:
    """One transaction, as an executor runs it: the requests it made."""
    txn = stream.transaction(retry=retry)
    seen = []
    try:
        request = next(txn)
        while True:
            seen.append(request)
            request = txn.send(answer(request))
    except StopIteration:
        return seen


def rows(columns: tuple[str, ...], *values: tuple[str | None, ...]) -> Answer:
    """Answer every \\gset/\\aset query with these rows."""
    return lambda request: (columns, list(values)) if request[0] is QUERY and request[3] else None


def test_requests_are_tuples_with_values_as_text() -> None:
    stream = _stream(_workload("\\set a 2 * 3\n\\set d 1.5\nSELECT :a, :d;\n\\sleep 2 ms\n"))
    assert drive(stream) == [(QUERY, 0, ("6", "1.5"), 0), (SLEEP, 0.002)]
    assert stream.script == 0


def test_gset_stores_the_row_as_text_under_the_prefix() -> None:
    stream = _stream(_workload("SELECT 1 AS x, 2 AS y \\gset p_\nSELECT :p_x, :p_y;\n"))
    seen = drive(stream, rows(("x", "y"), ("10", None)))
    assert seen[0] == (QUERY, 0, (), 1)
    assert seen[1] == (QUERY, 1, ("10", None), 0)  # NULL stays NULL on the wire


@pytest.mark.parametrize("count", [0, 2])
def test_gset_on_zero_or_two_rows_fails_the_transaction_naming_the_line(count: int) -> None:
    stream = _stream(_workload("SELECT 1;\nSELECT x FROM t \\gset\nSELECT :x;\n"))
    with pytest.raises(ScriptRuntimeError) as caught:
        drive(stream, rows(("x",), *[("1",)] * count))
    assert str(caught.value) == f"t.sql:2: cannot evaluate: \\gset: expected one row, got {count}"


def test_aset_keeps_the_last_row_and_sets_nothing_on_no_row() -> None:
    workload = _workload("\\set v 0\nSELECT v FROM t \\aset\nSELECT :v;\n")
    seen = drive(_stream(workload), rows(("v",), ("1",), ("2",)))
    assert seen[-1] == (QUERY, 1, ("2",), 0)
    seen = drive(_stream(workload), rows(("v",)))
    assert seen[-1] == (QUERY, 1, ("0",), 0)


def test_aset_takes_every_result_of_a_compound() -> None:
    stream = _stream(_workload("SELECT 1 AS a \\; SELECT 2 AS b \\aset\nSELECT :a, :b;\n"))
    seen = drive(stream, lambda r: [(("a",), [("1",)]), (("b",), [("2",)])] if r[3] else None)
    assert seen[-1] == (QUERY, 1, ("1", "2"), 0)


def test_gset_into_a_column_that_is_no_variable_name_fails() -> None:
    stream = _stream(_workload("SELECT 1 \\gset\n"))
    with pytest.raises(ScriptRuntimeError, match=r"error storing into variable \?column\?"):
        drive(stream, rows(("?column?",), ("1",)))


SCRIPT_IF = """\\set n {n}
\\if :n = 1
SELECT 'one';
\\elif :n = 2
SELECT 'two';
\\else
SELECT 'other';
\\endif
SELECT 'after';
"""


@pytest.mark.parametrize(("n", "taken"), [(1, "'one'"), (2, "'two'"), (3, "'other'")])
def test_if_elif_else_run_one_branch(n: int, taken: str) -> None:
    workload = _workload(SCRIPT_IF.format(n=n))
    seen = drive(_stream(workload))
    assert [workload.statements[r[1]].sql for r in seen] == [f"SELECT {taken}", "SELECT 'after'"]


def test_setshell_reads_an_integer_and_shell_words_take_variables() -> None:
    stream = _stream(_workload("\\set a 7\n\\setshell r echo :a\nSELECT :r;\n"))
    seen = drive(stream, lambda r: (0, " 42 \nmore\n") if r[0] is SHELL else None)
    assert seen[0] == (SHELL, ("echo", "7"), True)
    assert seen[1] == (QUERY, 0, ("42",), 0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((1, ""), "\\setshell: could not read result of shell command"),
        ((0, "forty\n"), '\\setshell: shell command must return an integer (not "forty")'),
        ((0, "4 2\n"), '\\setshell: shell command must return an integer (not "4 2")'),
    ],
)
def test_setshell_without_an_integer_fails_the_transaction(
    answer: tuple[int, str], reason: str
) -> None:
    stream = _stream(_workload("SELECT 1;\n\\setshell r false\nSELECT :r;\n"))
    with pytest.raises(ScriptRuntimeError) as caught:
        drive(stream, lambda r: answer if r[0] is SHELL else None)
    assert str(caught.value) == f"t.sql:2: cannot evaluate: {reason}"


def test_shell_fails_on_a_non_zero_exit_status() -> None:
    stream = _stream(_workload("\\shell true\n\\shell false\n"))
    with pytest.raises(ScriptRuntimeError, match=r"t.sql:2: .*exit status 1"):
        drive(stream, lambda r: (0 if r[1] == ("true",) else 1, ""))


def test_pipeline_requests_and_gset_refused_inside_one() -> None:
    stream = _stream(_workload("\\startpipeline\nSELECT 1;\n\\endpipeline\n"))
    assert drive(stream) == [(PIPELINE, "start"), (QUERY, 0, (), 0), (PIPELINE, "end")]
    stream = _stream(_workload("\\startpipeline\nSELECT 1 AS x \\gset\n\\endpipeline\n"))
    with pytest.raises(ScriptRuntimeError, match=r"t.sql:2: .*\\gset is not allowed in pipeline"):
        drive(stream)


def _pipelines(*kinds: str) -> Workload:
    """A script of pipeline commands around one statement, built by hand:
    what a parser that let it through would give the interpreter."""
    statement = Statement("SELECT 1", (), 0, "p.sql", 1)
    commands = [SqlCommand(0, 1)] + [PipelineCommand(k, i + 2) for i, k in enumerate(kinds)]
    script = Script("p.sql", "p.sql", 1, "", tuple(commands), (0,))
    return Workload("p", (script,), (statement,))


def test_startpipeline_twice_fails_at_run_time() -> None:
    with pytest.raises(ScriptRuntimeError) as caught:
        drive(_stream(_pipelines("start", "start", "end")))
    assert str(caught.value) == (
        "p.sql:3: cannot evaluate: \\startpipeline: already in pipeline mode"
    )


def test_script_ending_with_a_pipeline_open_fails() -> None:
    with pytest.raises(ScriptRuntimeError, match="end of script reached with pipeline open"):
        drive(_stream(_pipelines("start")))
    with pytest.raises(ScriptRuntimeError, match=r"p.sql:2: .*\\endpipeline: not in pipeline"):
        drive(_stream(_pipelines("end")))


def test_startpipeline_in_simple_mode_fails_as_in_pgbench() -> None:
    stream = _stream(_pipelines("start", "end"), query_mode="simple")
    with pytest.raises(ScriptRuntimeError, match="simple query protocol"):
        drive(stream)


def test_retry_replays_the_random_state_and_variables() -> None:
    workload = _workload("\\set r random(1, 1000000)\nSELECT :r AS g \\gset\nSELECT :r, :g;\n")
    stream = _stream(workload)
    counter = iter(range(100))
    answer: Answer = lambda r: (("g",), [(str(next(counter)),)]) if r[3] else None  # noqa: E731
    first = drive(stream, answer)
    again = drive(stream, answer, retry=True)
    assert again[0] == first[0]  # the same draw
    assert again[1][2][0] == first[1][2][0]
    other = drive(stream, answer)
    assert other[0] != first[0]


def test_retry_needs_a_replayable_stream() -> None:
    stream = _stream(_workload("SELECT 1;\n"), replayable=False)
    drive(stream)
    with pytest.raises(RuntimeError, match="replayable"):
        drive(stream, retry=True)


def test_an_undefined_variable_at_run_time_fails_naming_the_line() -> None:
    # :x is set by \gset in a branch that is not taken
    text = "\\if false\nSELECT 1 AS x \\gset\n\\endif\nSELECT :x;\n"
    with pytest.raises(ScriptRuntimeError) as caught:
        drive(_stream(_workload(text)))
    assert str(caught.value) == "t.sql:4: cannot evaluate: undefined variable :x"


def test_the_same_seed_sends_the_same_requests() -> None:
    workload = _workload("\\set a random(1, 100000)\n\\sleep :a us\nSELECT :a;\n")
    a, b = _stream(workload), _stream(workload)
    assert [drive(a) for _ in range(20)] == [drive(b) for _ in range(20)]
