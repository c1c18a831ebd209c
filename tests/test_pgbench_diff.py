"""Differential suite: pgbench is the judge of the script language.

Every script of ``tests/data/pgbench/diff/`` runs in pgbench (the one on
PATH) and in ``dbload run``, each against a fresh database holding an empty
``probe`` table, and the two outcomes must agree: accepted or refused, the
line a refusal names, the rows the script wrote into ``probe`` (as text,
NULL apart from ``'NULL'``), the ``debug()`` lines on stderr, and for
pgbench's built-in scripts the rows added to ``pgbench_history``. Nothing
here says what pgbench should answer: pgbench's run is the expected value.
Both tools get ``-M`` explicitly (pgbench's default is simple, dbload's
prepared) and one client.

A script's header may hold ``-- diff: key=value`` lines:
``query-modes=`` (``-M`` values, default ``prepared``), ``dbload-modes=``
(default ``sequential,async``), ``transactions=`` (``-t`` / ``-n``, default
1), ``args=`` (more options, given to both tools as they are) and
``unsupported-in=`` (dbload modes that may refuse the script instead, before
running and naming a line: the issue lets asyncpg's modes refuse pipelines).

Where pgbench 15 (on this machine) differs from PostgreSQL 17's reference
page, pgbench 15 is followed; the scripts concerned say so: ``\\syncpipeline``
is a 17 addition (syncpipeline.sql), 15 computes ``abs()`` of the smallest
int64 and ``>>`` by a negative count without an error (int64_edges.sql), and
15 names a failing command ``client 0 script 0 aborted in command N query 0``
where 17 says ``client 0 aborted in command N (SQL) of script 0``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import psycopg
import pytest

from dbload.errors import WorkloadError
from dbload.workload.parser import load_workload

PGBENCH = shutil.which("pgbench")
needs_pgbench = pytest.mark.skipif(PGBENCH is None, reason="pgbench is not on PATH")
pytestmark = needs_pgbench

DATA = Path(__file__).parent / "data" / "pgbench" / "diff"
BUILTINS = ("tpcb-like", "simple-update", "select-only")
TIMEOUT = 120  # seconds for one tool's run; the scripts take milliseconds
PROBE = "CREATE TABLE probe (id bigserial PRIMARY KEY, k text, v text)"

Rows = tuple[tuple[str | None, ...], ...]


# -- the cases ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    """One script and how to run it."""

    name: str
    path: Path
    query_modes: tuple[str, ...] = ("prepared",)
    dbload_modes: tuple[str, ...] = ("sequential", "async")
    transactions: int = 1
    args: tuple[str, ...] = ()
    builtin: bool = False
    unsupported_in: tuple[str, ...] = ()  # dbload modes that refuse it, as the issue allows
    # the -M pgbench runs in when it is not dbload's, for a deliberate
    # difference (README, "where dbload differs"): NULL is SQL NULL in every
    # dbload mode, as in pgbench's simple mode; -M simple quotes text, which
    # then reads as pgbench's prepared mode binds it
    judge_mode: str | None = None
    # what a SQL NULL written by dbload reads as where pgbench 15 writes
    # another value (a \gset of NULL: pgbench stores the empty string)
    null_reads_as: str | None = None


def read_case(path: Path) -> Case:
    """A script of DATA with the options of its ``-- diff:`` header lines."""
    options: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- diff:"):
            key, _, value = line.removeprefix("-- diff:").strip().partition("=")
            options[key.strip()] = value.strip()
    keys = {"query-modes", "dbload-modes", "transactions", "args", "unsupported-in"}
    keys |= {"judge-mode", "null-reads-as"}
    unknown = set(options) - keys
    assert not unknown, f"{path.name}: unknown -- diff: keys {unknown}"
    return Case(
        name=path.stem,
        path=path,
        query_modes=tuple(options.get("query-modes", "prepared").split(",")),
        dbload_modes=tuple(options.get("dbload-modes", "sequential,async").split(",")),
        transactions=int(options.get("transactions", "1")),
        args=tuple(shlex.split(options.get("args", ""))),
        unsupported_in=tuple(filter(None, options.get("unsupported-in", "").split(","))),
        judge_mode=options.get("judge-mode"),
        null_reads_as=options.get("null-reads-as", "").strip("'") if "null-reads-as" in options
        else None,
    )  # fmt: skip


CASES = [read_case(path) for path in sorted(DATA.glob("*.sql"))]


def _params() -> list[object]:
    return [
        pytest.param(case, query_mode, mode, id=f"{case.name}-{query_mode}-{mode}")
        for case in CASES
        for query_mode in case.query_modes
        for mode in case.dbload_modes
    ]


# -- where pgbench counts its commands -------------------------------------------

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_META = re.compile(r"\\([A-Za-z_]*)")


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted string, identifier or $-quote at ``i``."""
    if text[i] == "$":
        found = _DOLLAR.match(text, i)
        assert found is not None
        end = text.find(found.group(0), found.end())
        return len(text) if end < 0 else end + len(found.group(0))
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == quote:
            if text.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    return len(text)


def _meta_end(text: str, i: int) -> int:
    """End of the meta-command at ``i``: its line and backslash-continued ones."""
    while True:
        end = text.find("\n", i)
        if end < 0:
            return len(text)
        if text[end - 1] != "\\":
            return end
        i = end + 1


def command_lines(text: str) -> list[int]:
    """The line of each command, in pgbench's numbering of a script's commands.

    As pgbench's lexer: a SQL command runs to ``;`` (``\\;`` does not end it)
    or to a backslash, a meta-command to the end of its line; ``\\gset`` and
    ``\\aset`` belong to the query before them and take no number. A SQL
    command's line is that of its first character that is no comment.
    """
    lines: list[int] = []
    sql_start: int | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if sql_start is None and ch.isspace():
            i += 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        here = text.count("\n", 0, i) + 1
        if ch == "\\" and not text.startswith("\\;", i):
            if sql_start is not None:
                lines.append(sql_start)
                sql_start = None
            name = _META.match(text, i)
            if name is None or name.group(1) not in ("gset", "aset"):
                lines.append(here)
            i = _meta_end(text, i)
            continue
        if ch == ";":
            if sql_start is not None:
                lines.append(sql_start)
                sql_start = None
            i += 1
            continue
        if sql_start is None:
            sql_start = here
        if ch in "'\"" or (ch == "$" and _DOLLAR.match(text, i)):
            i = _skip_quoted(text, i)
        else:
            i += 2 if text.startswith("\\;", i) else 1
    if sql_start is not None:
        lines.append(sql_start)
    return lines


# -- outcomes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one tool did with one script."""

    tool: str  # "pgbench" | "dbload"
    exit: int
    line: int | None  # the script line a refusal or an abort names
    message: str  # the first error line, to show
    probe: Rows = ()
    debug: tuple[str, ...] = ()
    history: int | None = None
    stderr: str = field(default="", repr=False)

    @property
    def accepted(self) -> bool:
        return self.exit == 0

    def brief(self) -> str:
        if self.accepted:
            return f"exit 0, {len(self.probe)} probe rows"
        where = f" at line {self.line}" if self.line is not None else ""
        return f"exit {self.exit} ({self.phase}){where}: {self.message}"

    @property
    def phase(self) -> str:
        """When it stopped: pgbench exits 1 before running and 2 when a client
        aborts; dbload exits 2 before running and 1 when the run fails."""
        before, during = (1, 2) if self.tool == "pgbench" else (2, 1)
        known = {0: "ran", before: "refused before running", during: "aborted while running"}
        return known.get(self.exit, "internal error" if self.exit == 70 else "other")


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def _debug_lines(stderr: str) -> tuple[str, ...]:
    return tuple(line for line in stderr.splitlines() if line.startswith("debug("))


def pgbench_line(stderr: str, script: Path) -> int | None:
    """The script line pgbench's error names, directly or by command number."""
    named = re.search(rf"(?:^|[\s/]){re.escape(script.name)}:(\d+): ", stderr, re.M)
    if named:
        return int(named.group(1))
    lines = command_lines(script.read_text(encoding="utf-8"))
    # condition errors count commands from 1; one past the end is the end
    if found := re.search(r'condition error in script "[^"]*" command (\d+)', stderr):
        index = int(found.group(1)) - 1
    elif found := re.search(r"client \d+ (?:script \d+ )?(?:aborted in )?command (\d+)", stderr):
        index = int(found.group(1))
    else:
        return None
    return lines[index] if index < len(lines) else None


def dbload_line(stderr: str, script: Path) -> int | None:
    named = re.search(rf"(?:^|[\s/'\"(]){re.escape(script.name)}:(\d+)\b", stderr, re.M)
    return int(named.group(1)) if named else None


def fresh(dsn: str, *, pgbench_tables: bool) -> None:
    """An empty probe table (and pgbench's tables at scale 1 when asked)."""
    if pgbench_tables:
        assert PGBENCH is not None
        subprocess.run(
            [PGBENCH, "-i", "-s", "1", "-q", dsn],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(PROBE)


def observe(dsn: str, *, history: bool) -> tuple[Rows, int | None]:
    """The probe rows as text, in the order written, and the history count."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT k, v FROM probe ORDER BY id").fetchall()
        count = None
        if history:
            got = conn.execute("SELECT count(*) FROM pgbench_history").fetchone()
            count = int(got[0]) if got else None
    return tuple(tuple(row) for row in rows), count


def _outcome(
    tool: str, proc: subprocess.CompletedProcess[str], line: int | None, dsn: str, case: Case
) -> Outcome:
    errors = _error_lines(proc.stderr)
    probe, history = observe(dsn, history=case.builtin)
    return Outcome(
        tool=tool,
        exit=proc.returncode,
        line=line,
        message=errors[0] if errors else "",
        probe=probe,
        debug=_debug_lines(proc.stderr),
        history=history,
        stderr=proc.stderr,
    )


def run_pgbench(case: Case, query_mode: str, dsn: str) -> Outcome:
    assert PGBENCH is not None
    fresh(dsn, pgbench_tables=case.builtin)
    command = [PGBENCH, "-n", "-c", "1", "-t", str(case.transactions), "-M", query_mode]
    command += [*case.args, "-f", str(case.path), dsn]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    return _outcome("pgbench", proc, pgbench_line(proc.stderr, case.path), dsn, case)


def run_dbload(case: Case, query_mode: str, mode: str, dsn: str) -> Outcome:
    fresh(dsn, pgbench_tables=case.builtin)
    command = [sys.executable, "-m", "dbload", "run", "-f", str(case.path), "--mode", mode]
    command += ["-n", str(case.transactions), "-c", "1", "--no-init", "--dsn", dsn]
    command += ["-M", query_mode, *case.args]
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_DEBUG"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    return _outcome("dbload", proc, dbload_line(proc.stderr, case.path), dsn, case)


_NOISE = ("Traceback (most recent call last)", "Resetting connection with an active transaction")


def refused_earlier(theirs: Outcome, ours: Outcome) -> bool:
    """dbload refused before running what pgbench aborted on when it got
    there, at the same line: an error every client would meet at the same
    command (a constant overflow, an undefined variable, \\; outside -M
    simple), which dbload reports before the clock (README, "where dbload
    differs"). pgbench has by then run the commands before it, so its probe
    rows are not compared; dbload must have written nothing."""
    return (
        theirs.phase == "aborted while running"
        and ours.phase == "refused before running"
        and theirs.line is not None
        and theirs.line == ours.line
        and ours.probe == ()
    )


def differences(theirs: Outcome, ours: Outcome, null_reads_as: str | None = None) -> list[str]:
    """How dbload's outcome differs from pgbench's; empty when they agree."""
    found: list[str] = []
    if null_reads_as is not None:
        probe = tuple(tuple(null_reads_as if v is None else v for v in row) for row in ours.probe)
        ours = replace(ours, probe=probe)
    if refused_earlier(theirs, ours):
        return [f"stderr has {noise!r}" for noise in _NOISE if noise in ours.stderr]
    if theirs.accepted != ours.accepted:
        found.append("accepted" if ours.accepted else "refused")
    elif not theirs.accepted and theirs.line is not None and theirs.line != ours.line:
        found.append(f"names line {ours.line}, pgbench line {theirs.line}")
    if theirs.probe != ours.probe:
        found.append(f"probe {list(ours.probe)} != pgbench's {list(theirs.probe)}")
    if theirs.debug != ours.debug:
        found.append(f"debug {list(ours.debug)} != pgbench's {list(theirs.debug)}")
    if theirs.history != ours.history:
        found.append(f"history rows {ours.history} != pgbench's {theirs.history}")
    # one clear line, never a traceback nor a driver's warning
    found += [f"stderr has {noise!r}" for noise in _NOISE if noise in ours.stderr]
    return found


def assert_agree(theirs: Outcome, ours: Outcome, null_reads_as: str | None = None) -> None:
    found = differences(theirs, ours, null_reads_as)
    assert not found, (
        f"pgbench {theirs.brief()} | dbload {ours.brief()} | {'; '.join(found)}"
        f"\n--- pgbench stderr:\n{theirs.stderr}\n--- dbload stderr:\n{ours.stderr}"
    )


# -- fixtures -------------------------------------------------------------------

PgbenchRun = Callable[[Case, str], Outcome]


@pytest.fixture(scope="session")
def pgbench_outcomes() -> dict[tuple[str, str], Outcome]:
    """pgbench's outcome per (script, -M), run once for all dbload modes."""
    return {}


@pytest.fixture
def pgbench_outcome(
    pgbench_outcomes: dict[tuple[str, str], Outcome], make_database: Callable[[], str]
) -> Iterator[PgbenchRun]:
    def get(case: Case, query_mode: str) -> Outcome:
        key = (str(case.path), query_mode)
        if key not in pgbench_outcomes:
            pgbench_outcomes[key] = run_pgbench(case, query_mode, make_database())
        return pgbench_outcomes[key]

    yield get


@pytest.fixture(scope="session")
def builtin_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """pgbench's built-in scripts, verbatim from ``pgbench --show-script``."""
    assert PGBENCH is not None
    folder = tmp_path_factory.mktemp("builtins")
    cases = {}
    for name in BUILTINS:
        shown = subprocess.run(
            [PGBENCH, f"--show-script={name}"], capture_output=True, text=True, check=True
        )
        # the script is on stderr, after a header line in double quotes
        lines = (shown.stdout or shown.stderr).splitlines()
        path = folder / f"{name}.sql"
        path.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
        cases[name] = Case(name=name, path=path, transactions=3, builtin=True)
    return cases


# -- the differential tests -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("case", "query_mode", "mode"), _params())
def test_script_agrees_with_pgbench(
    case: Case,
    query_mode: str,
    mode: str,
    pgbench_outcome: PgbenchRun,
    make_database: Callable[[], str],
) -> None:
    ours = run_dbload(case, query_mode, mode, make_database())
    if mode in case.unsupported_in:
        assert_refused_clearly(ours, case)
    else:
        theirs = pgbench_outcome(case, case.judge_mode or query_mode)
        assert_agree(theirs, ours, case.null_reads_as)


def assert_refused_clearly(ours: Outcome, case: Case) -> None:
    """A mode that cannot run a construct (the issue lets asyncpg's modes
    refuse pipelines) says so before running: one line naming the script's
    line, nothing written."""
    errors = [line for line in ours.stderr.splitlines() if line.startswith("dbload: error:")]
    assert (ours.phase, len(errors), ours.probe) == ("refused before running", 1, ()), ours
    assert ours.line is not None, ours.stderr
    assert not [noise for noise in _NOISE if noise in ours.stderr], ours.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "async"])
@pytest.mark.parametrize("query_mode", ["prepared", "simple"])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_agrees_with_pgbench(
    name: str,
    query_mode: str,
    mode: str,
    builtin_cases: dict[str, Case],
    pgbench_outcome: PgbenchRun,
    make_database: Callable[[], str],
) -> None:
    case = builtin_cases[name]
    theirs = pgbench_outcome(case, query_mode)
    assert theirs.history == (case.transactions if name != "select-only" else 0)
    ours = run_dbload(case, query_mode, mode, make_database())
    assert_agree(theirs, ours)


# -- fast: parse-time verdicts, and the harness's own command numbering ----------

PARSE_CASES = [
    "int_constant_overflow",
    "double_constant_overflow",
    "arabic_indic_digits",
    "elif_after_else",
    "endif_without_if",
    "gset_after_meta",
    "gset_not_at_end",
    "sleep_bad_unit",
    "syncpipeline",
    "unicode_names",
]


@pytest.mark.parametrize("name", PARSE_CASES)
def test_parse_time_verdict_agrees_with_pgbench(name: str, dsn: str) -> None:
    """Refused before running, and the line named, as pgbench (in-process)."""
    assert PGBENCH is not None
    path = DATA / f"{name}.sql"
    proc = subprocess.run(
        [PGBENCH, "-n", "-t", "1", "-f", str(path), dsn],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    # pgbench exits 1 for a script it will not run; else it ran it (on a
    # database without the probe table: nothing is written)
    theirs = pgbench_line(proc.stderr, path) if proc.returncode == 1 else None
    try:
        load_workload([str(path)])
    except WorkloadError as exc:
        found = re.match(rf"{re.escape(str(path))}:(\d+): ", str(exc)) or re.match(
            rf".*{re.escape(path.name)}:(\d+): ", str(exc)
        )
        assert proc.returncode == 1, f"pgbench accepts it, dbload says: {exc}"
        assert found is not None and int(found.group(1)) == theirs, (exc, proc.stderr)
    else:
        assert proc.returncode != 1, f"dbload accepts it, pgbench says: {proc.stderr}"


NUMBERING = """\
-- a comment, then commands of every shape
\\set a debug(1)
SELECT 1 AS one \\gset
SELECT 2 AS two;
\\gset
\\set b debug(2)
/* a block
   comment */ SELECT
  ';' AS semi, $$ \\set $$ AS dollar
;
\\set c debug(3)
SELECT 1; SELECT 2 \\; SELECT 3; \\set d debug(4)
\\set e debug(5) + \\
  1
SELECT 'it''s \\set x' AS q
\\gset
\\if true
\\set f debug(6)
\\endif
SELECT 1
"""


def test_command_numbering_matches_pgbench(dsn: str, tmp_path: Path) -> None:
    """The harness maps pgbench's command numbers to the lines pgbench means:
    each ``debug(K)`` tells its command number, and must sit on the line found."""
    assert PGBENCH is not None
    script = tmp_path / "numbering.sql"
    script.write_text(NUMBERING, encoding="utf-8")
    proc = subprocess.run(
        [PGBENCH, "-n", "-t", "1", "-M", "simple", "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    told = re.findall(r"debug\(script=0,command=(\d+)\): int (\d+)", proc.stderr)
    assert len(told) == 6, proc.stderr
    lines = command_lines(NUMBERING)
    source = NUMBERING.splitlines()
    for command, k in told:
        assert f"debug({k})" in source[lines[int(command) - 1] - 1], (command, k, lines)
