"""The script parser: pgbench's script syntax into dbload's command records.

Pure parsing needs no database; the cases marked against pgbench run the
pgbench on PATH (15 here) on the same script, so that what dbload refuses at
parse time, pgbench refuses too, naming the same line (pgbench names a
command number for an unbalanced \\if: that is checked instead).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dbload.errors import WorkloadError
from dbload.workload.commands import (
    BranchCommand,
    JumpCommand,
    PipelineCommand,
    SetCommand,
    ShellCommand,
    SleepCommand,
    SqlCommand,
)
from dbload.workload.expr import EvalError
from dbload.workload.model import Statement, Workload
from dbload.workload.parser import (
    check_query_mode,
    load_workload,
    parse_script,
    sleep_seconds,
)

PGBENCH = shutil.which("pgbench")
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="pgbench is not installed")


def parse(text: str, **defines: int | float | str) -> tuple[list[str], list[tuple[str, ...]]]:
    _, statements = parse_script(text, name="t", source="t.sql", defines=defines)
    return [s.sql for s in statements], [s.params for s in statements]


def script_of(
    text: str, **defines: int | float | str
) -> tuple[tuple[object, ...], list[Statement]]:
    script, statements = parse_script(text, name="t", source="t.sql", defines=defines)
    return script.commands, statements


def workload_of(text: str) -> Workload:
    script, statements = parse_script(text, name="t", source="t.sql")
    return Workload("t", (script,), tuple(statements), {})


def error_of(text: str, **defines: int | float | str) -> str:
    with pytest.raises(WorkloadError) as info:
        parse_script(text, name="t", source="t.sql", defines=defines)
    return str(info.value)


def run_pgbench(text: str, tmp_path: Path, dsn: str, *options: str) -> tuple[int, str]:
    """pgbench's exit status (0 ran, 1 refused the script, 2 a client
    aborted) and its stderr, for one transaction of ``text``."""
    assert PGBENCH is not None
    path = tmp_path / "s.sql"
    path.write_text(text)
    done = subprocess.run(
        [PGBENCH, "-n", "-t", "1", *options, "-f", str(path), dsn],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return done.returncode, done.stderr


def walk(commands: tuple[object, ...], truth: dict[int, bool]) -> list[int]:
    """The statements a flat command list runs, each branch's condition
    given by its line: the interpreter's loop, without values."""
    ran: list[int] = []
    i = 0
    while i < len(commands):
        command = commands[i]
        if isinstance(command, BranchCommand) and not truth[command.line]:
            i = command.target
            continue
        if isinstance(command, JumpCommand):
            i = command.target
            continue
        if isinstance(command, SqlCommand):
            ran.append(command.statement)
        i += 1
    return ran


# -- statements: splitting, variables, lines ---------------------------------------


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
        # psql's \; glues commands into one; \: is a plain colon
        ("SELECT 1 \\; SELECT 2;", ["SELECT 1 ; SELECT 2"]),
        ("SELECT 1 \\;\nSELECT 2;\nSELECT 3;", ["SELECT 1 ;\nSELECT 2", "SELECT 3"]),
        ("SELECT '\\;' \\; SELECT 2;", ["SELECT '\\;' ; SELECT 2"]),  # not in a literal
        ("SELECT (ARRAY[1,2])[1\\:2];", ["SELECT (ARRAY[1,2])[1:2]"]),
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
        ("SELECT \\:a;", "SELECT $1", ("a",)),  # pgbench reads \: then a name as a variable
        ("SELECT :a \\; SELECT :b, :a;", "SELECT $1 ; SELECT $2, $1", ("a", "b")),
    ],
)
def test_variables_become_numbered_parameters(text: str, sql: str, params: tuple[str, ...]) -> None:
    assert parse(text, a=1, b=2) == ([sql], [params])


@pytest.mark.parametrize(
    ("text", "parts", "refs"),
    [
        ("SELECT 1;", ("SELECT 1",), ()),
        ("SELECT :a;", ("SELECT ", ""), (0,)),
        ("SELECT :a, ':a', :b::text || :a;", ("SELECT ", ", ':a', ", "::text || ", ""), (0, 1, 0)),
        (":a", ("", ""), (0,)),
        ("SELECT :a \\; SELECT :b;", ("SELECT ", " ; SELECT ", ""), (0, 1)),
    ],
)
def test_simple_mode_parts_surround_each_variable(
    text: str, parts: tuple[str, ...], refs: tuple[int, ...]
) -> None:
    _, (statement,) = script_of(text, a=1, b=2)
    assert (statement.parts, statement.param_refs) == (parts, refs)
    # the $n text is the parts with each variable's placeholder between them
    rebuilt = statement.parts[0] + "".join(
        f"${ref + 1}{part}"
        for ref, part in zip(statement.param_refs, statement.parts[1:], strict=True)
    )
    assert rebuilt == statement.sql


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


def test_meta_commands_only_is_a_valid_script() -> None:
    script, statements = parse_script("\\sleep 1 ms", name="t", source="t.sql")
    assert statements == [] and len(script.commands) == 1


def test_builtin_variables_are_always_defined() -> None:
    _, params = parse("\\set s :scale + :client_id + :random_seed\nSELECT :scale, :client_id;")
    assert params == [("scale", "client_id")]


def test_old_imports_of_the_command_records_still_work() -> None:
    from dbload.workload import parser

    assert parser.SetCommand is SetCommand
    assert parser.SleepCommand is SleepCommand
    assert parser.SqlCommand is SqlCommand


# -- variable names as pgbench reads them ----------------------------------------


def test_non_ascii_variable_names(tmp_path: Path) -> None:
    # pgbench takes any byte from 0x80 up as a letter of a name
    path = tmp_path / "u.sql"
    path.write_text(
        "\\set ä 1\n\\set 変数 :ä + 1\nSELECT :ä, :変数;\n\\sleep :ä us\n\\shell true :ä\n"
    )
    workload = load_workload([str(path)])
    assert workload.statements[0].params == ("ä", "変数")
    assert workload.statements[0].sql == "SELECT $1, $2"
    commands = workload.scripts[0].commands
    assert isinstance(commands[3], SleepCommand) and commands[3].amount == "ä"
    assert isinstance(commands[4], ShellCommand) and commands[4].words == ("true", ":ä")


def test_digits_in_names_are_ascii_only() -> None:
    # U+0661 is a high-bit character to pgbench, so part of a name, never a digit
    assert parse("\\set x\u0661 1\nSELECT :x\u0661;")[1] == [("x\u0661",)]
    error = error_of("\\set x \u0661")
    assert error.startswith("t.sql:1: ")


# -- \gset and \aset -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gset", "aset"),
    [
        ("SELECT 1 AS a \\gset", "", False),
        ("SELECT 1 AS a \\gset p_", "p_", False),
        ("SELECT 1 AS a \\aset", "", True),
        ("SELECT 1 AS a \\aset p_", "p_", True),
        ("SELECT 1 AS a;\n\\gset", "", False),  # after the ';' still the preceding query
        ("SELECT 1 AS a\n-- a comment\n\\gset p_", "p_", False),
    ],
)
def test_gset_attaches_to_the_preceding_query(text: str, gset: str, aset: bool) -> None:
    commands, statements = script_of(text)
    assert commands == (SqlCommand(0, 1, gset=gset, aset=aset),)
    assert statements[0].sql.startswith("SELECT 1 AS a")


def test_gset_on_a_compound_is_one_command() -> None:
    # pgbench applies \gset to the compound's last result, \aset to all
    commands, statements = script_of("SELECT 1 AS a \\; SELECT 2 AS b \\gset\nSELECT :b;")
    assert commands == (SqlCommand(0, 1, gset=""), SqlCommand(1, 2))
    assert statements[0].compound and not statements[1].compound


def test_gset_variables_are_known_only_by_prefix() -> None:
    # the columns are known at run time: any name with the prefix may be set
    _, params = parse("SELECT 1 AS x \\gset p_\nSELECT :p_x, :p_other;")
    assert params == [(), ("p_x", "p_other")]
    assert "undefined variable :q" in error_of("SELECT 1 AS x \\gset p_\nSELECT :q;")
    assert "undefined variable :p_x" in error_of("SELECT :p_x;\nSELECT 1 AS x \\gset p_")
    _, params = parse("SELECT 1 AS x \\aset\n\\set y :x + 1\nSELECT :y;")
    assert params == [(), ("y",)]


# -- \if / \elif / \else / \endif ---------------------------------------------------


def test_if_chain_compiles_to_branches_and_jumps() -> None:
    text = (
        "\\if :scale > 1\n"  # 1
        "SELECT 1;\n"
        "\\elif :scale = 1\n"  # 3
        "SELECT 2;\n"
        "\\else\n"  # 5
        "SELECT 3;\n"
        "\\endif\n"
        "SELECT 4;\n"
    )
    commands, _ = script_of(text)
    kinds = [
        (type(c).__name__, getattr(c, "target", None), getattr(c, "line", None)) for c in commands
    ]
    assert kinds == [
        ("BranchCommand", 3, 1),
        ("SqlCommand", None, 2),
        ("JumpCommand", 7, 3),
        ("BranchCommand", 6, 3),
        ("SqlCommand", None, 4),
        ("JumpCommand", 7, 5),
        ("SqlCommand", None, 6),
        ("SqlCommand", None, 8),
    ]
    first = commands[0]
    assert isinstance(first, BranchCommand) and first.expr.variables == {"scale"}
    assert walk(commands, {1: True, 3: True}) == [0, 3]
    assert walk(commands, {1: False, 3: True}) == [1, 3]
    assert walk(commands, {1: False, 3: False}) == [2, 3]


def test_nested_ifs_run_the_right_bodies() -> None:
    text = (
        "\\if :a\n"  # 1
        "  SELECT 'a';\n"
        "  \\if :b\n"  # 3
        "    SELECT 'ab';\n"
        "  \\elif :c\n"  # 5
        "    SELECT 'ac';\n"
        "  \\endif\n"
        "\\elif :c\n"  # 8
        "  \\if :b\n"  # 9
        "    SELECT 'cb';\n"
        "  \\else\n"
        "    SELECT 'c';\n"
        "  \\endif\n"
        "\\endif\n"
        "SELECT 'end';\n"
    )
    commands, statements = script_of(text, a=1, b=1, c=1)
    sql = [s.sql for s in statements]

    def ran(a: bool, b: bool, c: bool) -> list[str]:
        return [sql[i] for i in walk(commands, {1: a, 3: b, 5: c, 8: c, 9: b})]

    assert ran(True, True, False) == ["SELECT 'a'", "SELECT 'ab'", "SELECT 'end'"]
    assert ran(True, False, True) == ["SELECT 'a'", "SELECT 'ac'", "SELECT 'end'"]
    assert ran(True, False, False) == ["SELECT 'a'", "SELECT 'end'"]
    assert ran(False, True, True) == ["SELECT 'cb'", "SELECT 'end'"]
    assert ran(False, False, True) == ["SELECT 'c'", "SELECT 'end'"]
    assert ran(False, True, False) == ["SELECT 'end'"]


@pytest.mark.parametrize(
    "text",
    [
        "\\if 1\n\\endif",
        "\\if 0\n\\else\n\\endif",
        "\\if 0\n\\elif 0\n\\elif 1\n\\else\n\\endif",
        "\\if 1\n\\if 1\n\\if 1\n\\endif\n\\endif\n\\endif",
    ],
)
def test_empty_bodies_and_targets_stay_in_range(text: str) -> None:
    commands, _ = script_of(text)
    assert commands and all(
        0 <= c.target <= len(commands)
        for c in commands
        if isinstance(c, BranchCommand | JumpCommand)
    )


def test_deep_nesting_is_not_recursive() -> None:
    depth = 5000
    text = "\\if 1\n" * depth + "SELECT 1;\n" + "\\endif\n" * depth
    commands, _ = script_of(text)
    assert len(commands) == depth + 1
    assert walk(commands, {line: True for line in range(1, depth + 1)}) == [0]
    assert walk(commands, {line: line != depth for line in range(1, depth + 1)}) == []


# -- \shell, \setshell, pipelines, \sleep ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "words", "into", "variables"),
    [
        ("\\shell echo hi", ("echo", "hi"), None, ()),
        ("\\shell echo :scale ::x :: x:y", ("echo", ":scale", ":x", ":", "x:y"), None, (1,)),
        ("\\setshell v echo  :client_id\t1", ("echo", ":client_id", "1"), "v", (1,)),
        ("\\shell echo \\\n  continued", ("echo", "continued"), None, ()),
    ],
)
def test_shell_words(
    text: str, words: tuple[str, ...], into: str | None, variables: tuple[int, ...]
) -> None:
    commands, _ = script_of(text)
    assert commands == (ShellCommand(words, into, 1, variables),)


def test_setshell_defines_its_variable() -> None:
    _, params = parse("\\setshell n echo 5\nSELECT :n;")
    assert params == [("n",)]


def test_pipeline_commands() -> None:
    commands, _ = script_of("\\startpipeline\nSELECT 1;\nSELECT 2;\n\\endpipeline")
    assert commands == (
        PipelineCommand("start", 1),
        SqlCommand(0, 2),
        SqlCommand(1, 3),
        PipelineCommand("end", 4),
    )


def test_pipeline_structure_is_left_to_the_run() -> None:
    # pgbench 15 checks it when it runs ("already in pipeline mode"), not before
    commands, _ = script_of("\\startpipeline\n\\startpipeline\n\\endpipeline\n\\endpipeline")
    assert [c.kind for c in commands if isinstance(c, PipelineCommand)] == [
        "start",
        "start",
        "end",
        "end",
    ]


@pytest.mark.parametrize(
    ("text", "amount", "per_unit"),
    [
        ("\\sleep 2", 2, 1.0),
        ("\\sleep 2ms", 2, 1e-3),
        ("\\sleep -5 ms", -5, 1e-3),
        ("\\sleep +5 US", 5, 1e-6),
        ("\\sleep - s", 0, 1.0),
        ("\\sleep :scale ms", "scale", 1e-3),
    ],
)
def test_sleep_records(text: str, amount: int | str, per_unit: float) -> None:
    commands, _ = script_of(text)
    assert commands == (SleepCommand(amount, per_unit, 1),)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3, 3.0),
        (-5, 0.0),  # a negative duration does not sleep
        (2.7, 2.0),  # pgbench reads the text "2.7" with atoi
        (-2.7, 0.0),
        (0.5, 0.0),
        (1e20, 1.0),  # text "1e+20": atoi reads 1 (pgbench 15 sleeps 1 s)
        ("300abc", 300.0),
        (" 7", 7.0),
        ("0", 0.0),
    ],
)
def test_sleep_reads_a_variable_as_pgbench(value: object, seconds: float) -> None:
    assert sleep_seconds(value, 1.0, "d") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (-0.5, "-0.5"),
        (True, "true"),
        ("abc", "abc"),
        ("", ""),
        (None, "NULL"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
    ],
)
def test_sleep_refuses_what_pgbench_refuses(value: object, shown: str) -> None:
    # pgbench 15: 'sleep: invalid sleep time "-0.5" for variable "d"'
    with pytest.raises(
        EvalError, match=re.escape(f'invalid sleep time "{shown}" for variable "d"')
    ):
        sleep_seconds(value, 1.0, "d")


def test_sleep_out_of_range_is_refused() -> None:
    with pytest.raises(EvalError, match="2148 s is out of range"):
        sleep_seconds(2148, 1.0)


# -- statements that may create what later ones use ----------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", True),
        ("create temp table t (a int)", True),
        ("/* c */ -- d\n  CREATE TEMPORARY TABLE t AS SELECT 1", True),
        ("PREPARE p AS SELECT 1", True),
        ("DEALLOCATE p", True),
        ("DO $$ BEGIN CREATE TABLE t (a int); END $$", True),
        ("SET search_path = s", True),
        ("RESET search_path", True),
        ("ALTER TABLE t ADD COLUMN b int", True),
        ("DROP TABLE IF EXISTS t", True),
        ("CALL p()", True),
        ("DECLARE c CURSOR FOR SELECT 1", True),
        ("SELECT 1 AS a INTO t", True),
        ("SELECT set_config('search_path', 's', false)", True),
        ("SELECT 1 \\; CREATE TABLE t ()", True),
        ("SELECT f()", False),
        ("SELECT 'CREATE TABLE t'", False),
        ("INSERT INTO t VALUES (1)", False),
        ("SELECT (SELECT 1 INTO x)", False),  # not top level: not a SELECT INTO
        ("UPDATE t SET a = 1", False),
        ('SELECT "create" FROM t', False),
        ("EXECUTE p", False),
        ("BEGIN", False),
    ],
)
def test_may_create(sql: str, expected: bool) -> None:
    _, (statement,) = script_of(sql + ";")
    assert statement.may_create is expected


def test_create_then_use_parses() -> None:
    _, statements = script_of(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$;\n"
        "SELECT f();\nPREPARE p AS SELECT 1;\nEXECUTE p;\n"
    )
    assert [s.may_create for s in statements] == [True, False, True, False]


# -- compound statements and the query modes -------------------------------------------


@pytest.mark.parametrize(
    ("text", "compound"),
    [
        ("SELECT 1 \\; SELECT 2;", True),
        ("SELECT 1 \\; SELECT 2 \\; SELECT 3;", True),
        ("SELECT 1 \\;", False),  # one command and an empty one: pgbench prepares it fine
        ("\\; SELECT 1;", False),
        ("SELECT 1 \\; -- nothing\n;", False),
        ("SELECT 1 \\; /* nothing */ ;", False),
        ("SELECT ';' \\; SELECT 2;", True),
        ("SELECT 1;", False),
    ],
)
def test_compound_flag(text: str, compound: bool) -> None:
    _, (statement,) = script_of(text)
    assert statement.compound is compound


def test_compound_needs_simple_mode() -> None:
    workload = workload_of("SELECT 1;\nSELECT 2 \\; SELECT 3;")
    check_query_mode(workload, "simple")
    for mode in ("extended", "prepared"):
        with pytest.raises(WorkloadError, match=f"needs -M simple, not -M {mode}") as info:
            check_query_mode(workload, mode)
        assert str(info.value).startswith("t.sql:2: ")
        assert "\n" not in str(info.value)


def test_pipeline_needs_the_extended_protocol() -> None:
    workload = workload_of("SELECT 1;\n\\startpipeline\nSELECT 2;\n\\endpipeline")
    check_query_mode(workload, "extended")
    check_query_mode(workload, "prepared")
    with pytest.raises(WorkloadError, match="needs -M extended or prepared") as info:
        check_query_mode(workload, "simple")
    assert str(info.value).startswith("t.sql:2: ")


def test_unknown_query_mode() -> None:
    with pytest.raises(WorkloadError, match="unknown query mode"):
        check_query_mode(workload_of("SELECT 1;"), "fast")


# -- what pgbench refuses when it reads the script: file, line, one line --------------

# (script, dbload's line, a piece of dbload's message, what pgbench 15 says:
#  ("line", n) "s.sql:n: ...", ("command", n) its condition error on command
#  n, "runs" when pgbench 15 only fails it at run time: the client aborts)
BAD = [
    ("\\gset", 1, "\\gset must follow an SQL command", ("line", 1)),
    ("\\aset p_", 1, "\\aset must follow an SQL command", ("line", 1)),
    ("SELECT 1;\n\\set x 1\n\\gset", 3, "\\gset must follow an SQL command", ("line", 3)),
    ("SELECT 1 AS a \\gset\n\\gset", 2, "\\gset must follow an SQL command", ("line", 2)),
    ("SELECT 1 AS a \\gset\n\\aset", 2, "\\aset must follow an SQL command", ("line", 2)),
    ("\\if 1\nSELECT 1 AS a;\n\\endif\n\\gset", 4, "must follow an SQL command", ("line", 4)),
    ("SELECT 1 AS a \\gset p q", 1, "too many arguments", ("line", 1)),
    # pgbench 15 names the line after a leading \gset when more follows (a
    # pgbench quirk); dbload names the \gset's own line
    ("\\gset\nSELECT 1;", 1, "\\gset must follow an SQL command", ("line", 2)),
    ("\\if 1\nSELECT 1;", 1, "\\if without matching \\endif", ("command", 3)),
    ("\\if 1\n\\if 0\n\\endif\nSELECT 1;", 1, "\\if without matching \\endif", ("command", 5)),
    ("SELECT 1;\n\\endif", 2, "\\endif without matching \\if", ("command", 2)),
    ("\\if 1\n\\endif\n\\endif", 3, "\\endif without matching \\if", ("command", 3)),
    ("\\if 1\n\\else\n\\elif 0\n\\endif", 3, "\\elif after \\else", ("command", 3)),
    ("\\if 1\n\\else\n\\else\n\\endif", 3, "\\else after \\else", ("command", 3)),
    ("\\elif 1\n\\endif", 1, "\\elif without matching \\if", ("command", 1)),
    ("\\else", 1, "\\else without matching \\if", ("command", 1)),
    ("\\if\n\\endif", 1, "\\if: ", ("line", 1)),
    ("\\if 1\n\\elif\n\\endif", 2, "\\elif: ", ("line", 2)),
    ("\\if 1 2\n\\endif", 1, "\\if: ", ("line", 1)),
    ("\\if 1\n\\else x\n\\endif", 2, "unexpected argument", ("line", 2)),
    ("\\if 1\n\\endif x", 2, "unexpected argument", ("line", 2)),
    ("\\shell", 1, "missing command", ("line", 1)),
    ("\\setshell x", 1, "missing argument", ("line", 1)),
    ("\\setshell", 1, "missing argument", ("line", 1)),
    ("\\startpipeline x", 1, "unexpected argument", ("line", 1)),
    ("\\endpipeline 1", 1, "unexpected argument", ("line", 1)),
    ("SELECT 1;\n\\syncpipeline", 2, "\\syncpipeline is pgbench 17's", ("line", 2)),
    ("\\sleep", 1, "\\sleep needs a duration", ("line", 1)),
    ("\\sleep 1 ms x", 1, "\\sleep needs a duration", ("line", 1)),
    ("\\sleep 1.5", 1, "'1.5' is not an integer", ("line", 1)),
    ("\\sleep -ms", 1, "'-ms' is not an integer", ("line", 1)),
    ("\\sleep 10ms s", 1, "'10ms' is not an integer", ("line", 1)),
    ("\\sleep 5 5", 1, "unknown unit '5'", ("line", 1)),
    ("SELECT 1;\n\\sleep 1 h", 2, "unknown unit 'h'", ("line", 2)),
    ("SELECT 1;\n\\frob", 2, "unknown meta-command \\frob", ("line", 2)),
    # refused by dbload up front, by pgbench when it runs
    ("\\setshell 1x echo 1", 1, "invalid variable name", "runs"),
    ("\\shell echo :nope", 1, "undefined variable :nope", "runs"),
    ("\\set v 1\n\\shell echo :v::text", 2, "undefined variable :v::text", "runs"),
    ("\\sleep :", 1, "undefined variable :", "runs"),
    ("\\set x 1 / 0", 1, "\\set x: division by zero", "runs"),  # every transaction fails
    ("SELECT 1;\n\\if 1 / 0\n\\endif", 2, "\\if: division by zero", "runs"),
    ("SELECT 'open", 1, "unterminated quoted string", "runs"),  # the server refuses it
    # pgbench reads the syntax, then checks the \if structure, then runs: the
    # first error in that order is the one named
    ("\\else\n\\frob", 2, "unknown meta-command \\frob", ("line", 2)),
    ("\\else\nSELECT :nope;", 1, "\\else without matching \\if", ("command", 1)),
    ("\\if 1\nSELECT 'open", 1, "\\if without matching \\endif", ("command", 3)),
    ("\\set 1x 1\n\\endif", 2, "\\endif without matching \\if", ("command", 2)),
]


@pytest.mark.parametrize(("text", "line", "message", "pgbench"), BAD)
def test_bad_scripts_name_file_and_line(
    text: str, line: int, message: str, pgbench: object
) -> None:
    error = error_of(text)
    assert error.startswith(f"t.sql:{line}: "), error
    assert message in error, error
    assert "\n" not in error


@needs_pgbench
@pytest.mark.parametrize(("text", "line", "message", "pgbench"), BAD)
def test_pgbench_refuses_the_same_scripts(
    text: str, line: int, message: str, pgbench: object, tmp_path: Path, dsn: str
) -> None:
    status, stderr = run_pgbench(text, tmp_path, dsn)
    if pgbench == "runs":
        assert status == 2 and "aborted" in stderr, stderr
        return
    assert isinstance(pgbench, tuple)
    kind, where = pgbench
    assert status == 1, stderr
    if kind == "line":
        assert f"s.sql:{where}: " in stderr, stderr
    else:
        assert f'condition error in script "{tmp_path / "s.sql"}" command {where}:' in stderr, (
            stderr
        )


# What pgbench 15 accepts, dbload parses (the interpreter runs it).
GOOD = [
    "SELECT 1 AS a \\gset\nSELECT :a;",
    "SELECT 1 AS a;\n\\gset p_\nSELECT :p_a;",
    "SELECT 1 AS a \\; SELECT 2 AS b \\aset\nSELECT :a, :b;",
    "\\if :scale > 0\nSELECT 1;\n\\elif :scale < 0\nSELECT 2;\n\\else\nSELECT 3;\n\\endif",
    "\\if 1\n\\if 0\n\\else\n\\endif\n\\endif",
    "\\setshell x echo 5\n\\shell true ::literal\nSELECT :x;",
    "\\set ä 3\n\\shell echo :ä\nSELECT :ä;",
    "\\sleep -5 ms\n\\sleep 2ms\n\\sleep 1 MS\n\\sleep - s",
    "\\set d 2.7\n\\sleep :d us",
    "SELECT 1 \\;\n\\; SELECT 2;",
    # an expression that always fails, in a branch never taken, loads
    "\\if 0\n\\set x 1 / 0\n\\endif\n\\if 1\n\\elif 1 / 0 = 0\n\\endif",
]


@pytest.mark.parametrize("text", GOOD)
def test_scripts_pgbench_accepts_parse(text: str) -> None:
    commands, _ = script_of(text)
    assert commands


@needs_pgbench
@pytest.mark.parametrize("text", GOOD)
def test_pgbench_accepts_them_too(text: str, tmp_path: Path, dsn: str) -> None:
    status, stderr = run_pgbench(text, tmp_path, dsn)
    assert status == 0, stderr


@needs_pgbench
def test_pgbench_runs_a_compound_only_in_simple_mode(tmp_path: Path, dsn: str) -> None:
    text = "SELECT 1 \\; SELECT 2;"
    assert run_pgbench(text, tmp_path, dsn, "-M", "simple")[0] == 0
    for mode in ("extended", "prepared"):
        status, stderr = run_pgbench(text, tmp_path, dsn, "-M", mode)
        assert status == 2 and "cannot insert multiple commands" in stderr, stderr


@needs_pgbench
def test_pgbench_checks_pipelines_only_when_it_runs(tmp_path: Path, dsn: str) -> None:
    # \startpipeline twice: not a parse error, the client aborts
    text = "\\startpipeline\n\\startpipeline\n\\endpipeline\n\\endpipeline"
    status, stderr = run_pgbench(text, tmp_path, dsn, "-M", "extended")
    assert status == 2 and "already in pipeline mode" in stderr, stderr
    status, stderr = run_pgbench("\\startpipeline\nSELECT 1;\n\\endpipeline", tmp_path, dsn)
    assert status == 2 and "simple query protocol" in stderr, stderr


def test_text_define_cannot_be_computed_with() -> None:
    error = error_of("\\set x :name + 1", name="alice")
    assert error.startswith("t.sql:1:") and "variable :name is not a number" in error
    error = error_of("\\sleep :name", name="alice")
    assert error.startswith("t.sql:1:")
    assert 'invalid sleep time "alice" for variable "name"' in error
    commands, _ = script_of("\\sleep :d ms", d="300abc")  # pgbench's atoi reads 300
    assert commands == (SleepCommand("d", 1e-3, 1),)
    _, params = parse("SELECT :name;", name="alice")  # but it binds fine
    assert params == [("name",)]


@pytest.mark.parametrize("value", ["true", "Yes", "of", "NULL", "t", "n", " 12", "1e3", "-inf"])
def test_text_define_pgbench_can_compute_with(value: str) -> None:
    # pgbench's makeVariableValue reads these as a boolean, NULL or a number
    commands, _ = script_of("\\if :v\n\\endif\n\\set x :v", v=value)
    assert len(commands) == 2


@pytest.mark.parametrize(
    "text", ["", "\n\n", "-- just a comment\n", "-- one\n\n-- two\n", "/* nothing */ ;;\n"]
)
def test_empty_script(text: str) -> None:
    error = error_of(text)
    assert error.startswith("t.sql: ") and "empty script" in error


def test_records_cross_to_a_worker_process() -> None:
    # processes mode sends the parsed workload to its children
    import io
    import pickle
    from multiprocessing.reduction import ForkingPickler

    import dbload.modes.processes  # noqa: F401  (registers how an Expression crosses)

    text = (
        "\\if :scale > 1\nSELECT 1 AS a \\gset p_\n\\else\n\\setshell x echo ::y :scale\n"
        "\\endif\n\\startpipeline\nSELECT 1 \\; SELECT :p_a;\n\\endpipeline\n\\sleep :x ms"
    )
    script, statements = parse_script(text, name="t", source="t.sql")
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump((script, statements))
    copy, copied = pickle.loads(buffer.getvalue())
    assert [type(c) for c in copy.commands] == [type(c) for c in script.commands]
    assert copied == statements
    branch = copy.commands[0]
    assert isinstance(branch, BranchCommand) and branch.expr.text == ":scale > 1"
    assert copy.commands[1:] == script.commands[1:]  # no expression past the \\if


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prepared", "extended"])
def test_cli_refuses_a_compound_outside_simple_mode(mode: str, tmp_path: Path, dsn: str) -> None:
    path = tmp_path / "c.sql"
    path.write_text("SELECT 1;\nSELECT 2 \\; SELECT 3;\n")
    done = subprocess.run(
        [sys.executable, "-m", "dbload", "run", "-f", str(path), "-M", mode, "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"dbload: error: {path}:2: \\; compound statement needs -M simple, not -M {mode}: "
        "the server cannot prepare several commands as one statement"
    ]
