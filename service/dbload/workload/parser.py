"""pgbench's custom-script syntax, parsed into a driver-free :class:`Workload`.

A script is one "transaction": meta-commands (``\\set``, ``\\sleep``,
``\\if``...) and SQL commands ending at a semicolon outside quotes, comments
and parentheses (``\\;`` glues several into one compound command). ``:name``
in SQL becomes a ``$n`` bind parameter, never text. Everything that can be is
checked here, before any connection is opened: an unknown meta-command, a bad
expression, an unbalanced ``\\if``, a misplaced ``\\gset`` or a variable used
before anything can set it fails with file and line. The commands it produces
are the records of :mod:`dbload.workload.commands`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dbload.errors import WorkloadError
from dbload.workload.commands import (
    BranchCommand,
    Command,
    JumpCommand,
    PipelineCommand,
    SetCommand,
    ShellCommand,
    SleepCommand,
    SqlCommand,
)
from dbload.workload.expr import (
    BLANKS,
    EvalError,
    ExprError,
    Expression,
    compile_expression,
    from_text,
    wire_text,
)
from dbload.workload.model import Script, Statement, Value, Workload
from dbload.workload.python import is_python, load_python
from dbload.workload.source import read_script

__all__ = [
    "BUILTIN_VARIABLES",
    "BranchCommand",
    "Command",
    "JumpCommand",
    "PipelineCommand",
    "SetCommand",
    "ShellCommand",
    "SleepCommand",
    "SqlCommand",
    "builtin_description",
    "builtin_names",
    "builtin_text",
    "check_query_mode",
    "load_workload",
    "parse_script",
    "sleep_seconds",
]

DEFAULT_BUILTIN = "select"
# Defined for every client, as in pgbench.
BUILTIN_VARIABLES = frozenset({"scale", "client_id", "random_seed", "default_seed"})
_KNOWN = (
    "\\set, \\sleep, \\gset, \\aset, \\if, \\elif, \\else, \\endif, "
    "\\shell, \\setshell, \\startpipeline, \\endpipeline"
)
_SLEEP_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000}  # microseconds per unit
# pgbench keeps a sleep's microseconds in a C int: past this it wraps around
# (\sleep 2148 s does not sleep at all), so dbload refuses what pgbench garbles
MAX_SLEEP_US = 2**31 - 1
_SLEEP_ARG = re.compile(r"([+-]?)([0-9]*)(.*)", re.DOTALL)
_SPLIT = re.compile(f"[{BLANKS}]+")
_NAME = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*\Z")
_WEIGHT = re.compile(r"[0-9]+")
_MAX_WEIGHT = 2**31 - 1  # pgbench's INT_MAX
_DIGITS = frozenset("0123456789")
QUERY_MODES = ("simple", "extended", "prepared")
_ATOI = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)")


def sleep_seconds(amount: object, seconds_per_unit: float, name: str | None = None) -> float:
    """How long ``\\sleep`` waits for ``amount`` units, as pgbench 15 reads it.

    A variable's value is read from its text with C's atoi, as pgbench does:
    ``2.7`` sleeps 2 units, ``1e20`` (text ``1e+20``) sleeps 1, and a text
    whose atoi is 0 but does not start with a digit (``-0.5``, ``true``,
    ``abc``, NULL) is pgbench's "invalid sleep time". A negative amount does
    not wait. Raises :class:`EvalError` for those and for what pgbench would
    wrap around (beyond a C int of microseconds); ``name`` is the variable's,
    for the message."""
    if type(amount) is int:
        count = amount
    else:
        text = wire_text(amount)  # type: ignore[arg-type]
        match = _ATOI.match(text)
        count = int(match.group(1)) if match else 0
        if count == 0 and text[:1] not in _DIGITS:
            where = f' for variable "{name}"' if name else ""
            raise EvalError(f'\\sleep: invalid sleep time "{text}"{where}')
    per_unit = round(seconds_per_unit * 1e6)
    micros = count * per_unit
    if abs(micros) > MAX_SLEEP_US:
        unit = {1: "us", 1_000: "ms"}.get(per_unit, "s")
        raise EvalError(
            f"\\sleep: {count} {unit} is out of range "
            f"(at most {MAX_SLEEP_US} us, about 36 minutes, as in pgbench)"
        )
    return max(0, micros) / 1e6


@dataclass(frozen=True, slots=True)
class _RawSql:
    text: str  # psql's \\; and \\: already turned into ; and :
    line: int
    compound: bool = False  # \\; glued two or more non-empty commands


@dataclass(frozen=True, slots=True)
class _RawMeta:
    text: str  # from the backslash, continuation lines joined
    line: int


# -- splitting a script into commands ---------------------------------------
#
# pgbench runs the script through psql's lexer: a SQL command ends at a
# semicolon outside quotes, comments and parentheses, or where a backslash
# meta-command starts (``SELECT 1`` then ``\set`` on the next line is two
# commands); a meta-command ends at the end of its line unless the line ends
# with a backslash. Comments between commands are dropped.

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")


class _LexError(Exception):
    """A script the lexer cannot split; ``offset`` locates it for the message."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _skip_quoted(text: str, i: int) -> int | None:
    """If a quoted string, quoted identifier, dollar quote or comment starts at
    ``i``, the offset just after it; otherwise None. ``:name`` and ``;`` mean
    nothing inside these, for statement splitting and for variables alike."""
    c = text[i]
    if c == "'":
        # E'...' strings take backslash escapes; standard strings do not
        escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(text[i - 2]))
        j = i + 1
        while True:
            j = _find(text, "'", j, "quoted string", i, backslash=escapes)
            if j + 1 < len(text) and text[j + 1] == "'":  # '' is a quote inside
                j += 2
                continue
            return j + 1
    if c == '"':
        j = i + 1
        while True:
            j = _find(text, '"', j, "quoted identifier", i)
            if j + 1 < len(text) and text[j + 1] == '"':
                j += 2
                continue
            return j + 1
    if text.startswith("--", i):
        nl = text.find("\n", i)
        return len(text) if nl == -1 else nl
    if text.startswith("/*", i):
        depth, j = 1, i + 2  # PostgreSQL's block comments nest
        while depth:
            close = text.find("*/", j)
            if close == -1:
                raise _LexError("unterminated /* comment", i)
            opened = text.find("/*", j, close)
            if opened != -1:
                depth, j = depth + 1, opened + 2
            else:
                depth, j = depth - 1, close + 2
        return j
    if c == "$" and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
        tag = _DOLLAR_TAG.match(text, i)
        if tag:
            return _find(text, tag.group(0), tag.end(), "dollar-quoted string", i) + len(
                tag.group(0)
            )
    return None


def _find(text: str, what: str, start: int, name: str, opened: int, backslash: bool = False) -> int:
    j = start
    while True:
        j = text.find(what, j)
        if j == -1:
            raise _LexError(f"unterminated {name}", opened)
        if backslash:
            run = 0
            while text[j - 1 - run] == "\\":  # text[start - 1] is the quote: stops there
                run += 1
            if run % 2:  # an odd run of backslashes escapes this quote
                j += 1
                continue
        return j


def _meta_end(text: str, i: int) -> int:
    """End of the meta-command starting at ``i``: its line, plus the next
    ones while a line ends with a backslash."""
    while True:
        nl = text.find("\n", i)
        if nl == -1:
            return len(text)
        if text[i:nl].rstrip("\r").endswith("\\"):
            i = nl + 1
            continue
        return nl


def _description(text: str) -> str:
    """The leading block of ``--`` comment lines (after blank lines, if any)."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            lines.append(stripped.lstrip("-").strip())
        elif stripped or lines:
            break
    return " ".join(line for line in lines if line)


def _lex(text: str, items: list[_RawSql | _RawMeta]) -> None:
    """The commands of a script, in order, into ``items``. Raises
    :class:`_LexError`, ``items`` then holding the commands before it."""
    start: int | None = None  # offset where the pending SQL command starts
    escapes: list[int] = []  # offsets of psql's \\; and \\: in it
    depth, i, n = 0, 0, len(text)
    counted = [0, 1]  # lines are counted on from the last command's offset

    def line_at(offset: int) -> int:
        counted[1] += text.count("\n", counted[0], offset)
        counted[0] = offset
        return counted[1]

    def flush(end: int) -> None:
        nonlocal start, depth
        if start is not None:
            sql, compound = _unescape(text, start, end, escapes)
            items.append(_RawSql(sql, line_at(start), compound))
        start, depth = None, 0
        escapes.clear()

    while i < n:
        c = text[i]
        if c in BLANKS:  # psql's lexer: ASCII blanks only, as the server's
            i += 1
            continue
        if c == "\\":
            if text[i + 1 : i + 2] in (";", ":"):
                # psql's \\; puts a ';' in the query without ending it (one
                # request, several commands); \\: a ':', which pgbench then
                # reads as a variable like any other
                if start is None:
                    start = i
                escapes.append(i)
                i += 2
                continue
            flush(i)
            end = _meta_end(text, i)
            items.append(_RawMeta(text[i:end], line_at(i)))
            i = end
            continue
        skipped = _skip_quoted(text, i)
        if start is None and c != ";" and not text.startswith(("--", "/*"), i):
            start = i
        if skipped is not None:
            i = skipped
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            flush(i)  # a lone ';' (empty statement) flushes nothing
        i += 1
    flush(n)


def _unescape(text: str, start: int, end: int, escapes: list[int]) -> tuple[str, bool]:
    """The SQL of ``text[start:end]`` with its escapes applied, and whether
    its ``\\;`` separate two or more commands that are not blank."""
    pieces: list[str] = []
    parts = 0  # non-blank commands between \\; separators
    copied = segment = start
    for at in escapes:
        pieces.append(text[copied:at])
        pieces.append(text[at + 1])
        copied = at + 2
        if text[at + 1] == ";":
            parts += _has_content(text, segment, at)
            segment = copied
    pieces.append(text[copied:end])
    parts += _has_content(text, segment, end)
    return "".join(pieces).strip(), parts > 1


def _has_content(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` holds more than blanks and comments."""
    i = start
    while i < end:
        if text[i] in BLANKS:
            i += 1
        elif text.startswith(("--", "/*"), i):
            skipped = _skip_quoted(text, i)
            i = end if skipped is None else skipped
        else:
            return True
    return False


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# -- SQL variables ------------------------------------------------------------

_VAR = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*")
# a keyword or identifier, for the scans that look at a statement's words
_COPY_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")


@dataclass(frozen=True, slots=True)
class _Bound:
    sql: str  # with $1..$n
    params: tuple[str, ...]
    parts: tuple[str, ...]  # the literal SQL around each variable use
    param_refs: tuple[int, ...]  # which param goes between parts[i] and parts[i+1]


def _bind(sql: str) -> _Bound:
    """Replace ``:name`` with ``$n`` outside quotes and comments; ``::`` casts stay.

    The same variable reuses its ``$n``. pgbench itself also replaces
    ``:name`` inside string literals, which breaks its prepared mode; dbload
    binds parameters, so a literal is left as written. The pieces around
    each use are kept for -M simple, where values go into the text.
    """
    out: list[str] = []
    params: list[str] = []
    parts: list[str] = []
    refs: list[int] = []
    i, n, copied = 0, len(sql), 0
    while i < n:
        skipped = _skip_quoted(sql, i)
        if skipped is not None:
            i = skipped
            continue
        if sql[i] != ":":
            i += 1
            continue
        if sql.startswith("::", i):  # a cast, or a run of colons: never a variable
            while i < n and sql[i] == ":":
                i += 1
            continue
        match = _VAR.match(sql, i + 1)
        if match is None:
            i += 1
            continue
        name = match.group(0)
        if name not in params:
            params.append(name)
        index = params.index(name)
        parts.append(sql[copied:i])
        refs.append(index)
        out.append(sql[copied:i])
        out.append(f"${index + 1}")
        i = copied = match.end()
    out.append(sql[copied:])
    parts.append(sql[copied:])
    return _Bound("".join(out), tuple(params), tuple(parts), tuple(refs))


# -- statements that may create what later ones use --------------------------

# A statement's first keyword that may create (or change the resolution of)
# what a later statement names: that one then cannot be prepared before the
# script has run (CREATE FUNCTION f ...; SELECT f()), as pgbench prepares
# each statement when it is first run.
_CREATING = frozenset({
    "create", "alter", "drop", "prepare", "deallocate", "do", "call", "set",
    "reset", "discard", "declare", "grant", "revoke", "import", "load",
})  # fmt: skip


def _may_create(sql: str) -> bool:
    """Whether ``sql`` (any command of a compound) may create what a later
    statement uses: a CREATE/ALTER/DROP/PREPARE/DO/CALL/SET... command, a
    SELECT ... INTO, or a call of set_config()."""
    head: str | None = None  # the current command's first keyword
    depth, i, n = 0, 0, len(sql)
    while i < n:
        skipped = _skip_quoted(sql, i)
        if skipped is not None:
            i = skipped
            continue
        word = _COPY_WORD.match(sql, i)
        if word is not None:
            w = word.group(0).lower()
            if w == "set_config":
                return True
            if depth == 0:
                if head is None:
                    head = w
                    if w in _CREATING:
                        return True
                elif head == "select" and w == "into":
                    return True
            i = word.end()
            continue
        c = sql[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            head = None
        i += 1
    return False


# -- meta-commands --------------------------------------------------------------


def _usable_text(text: str) -> bool:
    """Whether pgbench can use a text variable in an expression
    (makeVariableValue): NULL, a boolean word or prefix, an int, a double."""
    try:
        from_text("", text)
    except EvalError:
        return False
    return True


@dataclass(slots=True)
class _Context:
    """What the checks of one script need while its commands are read in order."""

    source: str
    defined: set[str]  # variables set so far: built-ins, -D, earlier \set
    texts: dict[str, str]  # -D text values, until something assigns the variable
    # \gset/\aset prefixes seen so far: their variables' names are the
    # query's columns, known only at run time
    prefixes: set[str] = field(default_factory=set)
    # the first error pgbench would only meet when the script runs (an
    # undefined variable, a bad name): raised once the script has been read,
    # so that what pgbench refuses on reading, it is refused first, as there
    deferred: WorkloadError | None = None
    # inside an \if body: a command pgbench may never run, so what would
    # fail there (an undefined variable) fails only if it runs
    conditional: bool = False

    def fail(self, message: str, line: int) -> WorkloadError:
        return WorkloadError(message, source=self.source, line=line)

    def defer(self, message: str, line: int) -> None:
        if self.deferred is None and not self.conditional:
            self.deferred = self.fail(message, line)

    def maybe_defined(self, name: str) -> bool:
        return name in self.defined or any(name.startswith(p) for p in self.prefixes)

    def check_defined(self, names: Iterable[str], line: int) -> None:
        missing = sorted(name for name in set(names) if not self.maybe_defined(name))
        if missing:
            self.defer(f"undefined variable :{missing[0]}", line)

    def check_numeric(self, names: Iterable[str], line: int, what: str) -> None:
        """A -D text that pgbench cannot compute with (makeVariableValue)."""
        text = sorted(n for n in set(names) if n in self.texts and not _usable_text(self.texts[n]))
        if text:
            self.defer(f"{what}: variable :{text[0]} is not a number or a boolean", line)

    def assign(self, name: str) -> None:
        self.defined.add(name)
        self.texts.pop(name, None)


def _split(text: str, limit: int = 0) -> list[str]:
    """Words separated by ASCII blanks, as pgbench splits a meta-command."""
    return [word for word in _SPLIT.split(text.strip(BLANKS), limit) if word]


def _words(raw: _RawMeta) -> tuple[str, str]:
    """The meta-command's name and the rest of its text."""
    # a backslash at the end of a line continues the meta-command
    text = re.sub(r"\\\r?\n", " ", raw.text)
    parts = _split(text[1:], 1)
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def _set(line: int, rest: str, ctx: _Context) -> SetCommand:
    parts = _split(rest, 1)
    if len(parts) < 2:
        raise ctx.fail("\\set needs a variable name and an expression", line)
    name, expr_text = parts
    if not _NAME.match(name):
        ctx.defer(f"\\set: invalid variable name {name!r}", line)
    expr = _expression(f"\\set {name}", expr_text, line, ctx)
    ctx.assign(name)
    return SetCommand(name, expr, line)


def _expression(what: str, text: str, line: int, ctx: _Context) -> Expression:
    try:
        expr = compile_expression(text)
    except ExprError as exc:
        raise ctx.fail(f"{what}: {exc}", line) from None
    ctx.check_defined(expr.variables, line)
    ctx.check_numeric(expr.variables, line, what)
    return expr


def _sleep(line: int, rest: str, ctx: _Context) -> SleepCommand:
    parts = _split(rest)
    if not parts or len(parts) > 2:
        raise ctx.fail("\\sleep needs a duration: \\sleep N [us|ms|s]", line)
    amount: int | str
    if parts[0].startswith(":"):
        amount = parts[0][1:]
        ctx.check_defined({amount}, line)
        if amount in ctx.texts:  # pgbench reads it with atoi: 300abc is 300
            try:
                sleep_seconds(ctx.texts[amount], 1e-6, amount)
            except EvalError as exc:
                ctx.defer(str(exc), line)
    else:
        # like pgbench: a sign, digits, and a unit that may be glued on (10ms)
        match = _SLEEP_ARG.fullmatch(parts[0])
        assert match is not None  # the pattern matches any text
        sign, digits, glued = match.groups()
        if glued and (len(parts) == 2 or not digits or not glued[0].isalpha()):
            raise ctx.fail(f"\\sleep: {parts[0]!r} is not an integer or a :variable", line)
        if glued:
            parts.append(glued)
        amount = int(sign + (digits or "0"))
    unit = parts[1].lower() if len(parts) == 2 else "s"
    if unit not in _SLEEP_UNITS:
        raise ctx.fail(f"\\sleep: unknown unit {parts[1]!r} (us, ms or s)", line)
    command = SleepCommand(amount, _SLEEP_UNITS[unit] / 1e6, line)
    if isinstance(amount, int):
        try:
            sleep_seconds(amount, command.seconds_per_unit)
        except EvalError as exc:  # pgbench wraps it around when it runs
            ctx.defer(str(exc), line)
    return command


def _shell(command: str, line: int, rest: str, ctx: _Context) -> ShellCommand:
    """``\\shell`` / ``\\setshell VAR``: a word ``:name`` is the variable's
    text, ``::x`` the text ``:x`` (pgbench's runShellCommand)."""
    words = _split(rest)
    into: str | None = None
    if command == "setshell":
        if len(words) < 2:
            raise ctx.fail("\\setshell needs a variable and a command (missing argument)", line)
        into, words = words[0], words[1:]
        if not _NAME.match(into):
            ctx.defer(f"\\setshell: invalid variable name {into!r}", line)
    elif not words:
        raise ctx.fail("\\shell needs a command (missing command)", line)
    final: list[str] = []
    variables: list[int] = []
    for index, word in enumerate(words):
        if word.startswith("::"):
            final.append(word[1:])
        else:
            if word.startswith(":"):
                ctx.check_defined({word[1:]}, line)
                variables.append(index)
            final.append(word)
    if into is not None:
        ctx.assign(into)
    return ShellCommand(tuple(final), into, line, tuple(variables))


@dataclass(slots=True)
class _Frame:
    """An open ``\\if``: the branch whose target is not known yet, the jumps
    to its ``\\endif``."""

    line: int
    branch: int | None
    jumps: list[int]
    seen_else: bool = False


class _Builder:
    """The commands and statements of one script, from its raw items in order."""

    def __init__(self, ctx: _Context, script_index: int, first_statement: int) -> None:
        self.ctx = ctx
        self.script_index = script_index
        self.first_statement = first_statement
        self.commands: list[Command] = []
        self.statements: list[Statement] = []
        self.frames: list[_Frame] = []
        # pgbench's previous command, for \gset: "sql", "gset", "meta" or ""
        self.previous = ""
        # the first \if structure error: pgbench checks the structure once the
        # whole script is read, after its syntax
        self.condition: WorkloadError | None = None
        # pgbench's command count so far: every SQL command and meta-command
        # but \gset/\aset (merged into their query), as debug() numbers them
        self.number = 0

    def sql(self, item: _RawSql) -> None:
        ctx = self.ctx
        ctx.conditional = False  # dbload cannot run it at all, taken or not
        self.number += 1
        if _is_copy_with_client(item.text):
            ctx.defer(
                "COPY ... FROM STDIN / TO STDOUT is not supported (nor by pgbench): "
                "a script runs statements, it sends no COPY data",
                item.line,
            )
        bound = _bind(item.text)
        ctx.conditional = bool(self.frames)
        ctx.check_defined(bound.params, item.line)
        index = self.first_statement + len(self.statements)
        self.statements.append(
            Statement(
                bound.sql,
                bound.params,
                self.script_index,
                ctx.source,
                item.line,
                parts=bound.parts,
                param_refs=bound.param_refs,
                compound=item.compound,
                may_create=_may_create(item.text),
            )
        )
        self.commands.append(SqlCommand(index, item.line))
        self.previous = "sql"

    def meta(self, raw: _RawMeta) -> None:
        name, rest = _words(raw)
        command, line, ctx = name.lower(), raw.line, self.ctx
        ctx.conditional = bool(self.frames)
        if command in ("gset", "aset"):
            self._gset(command, rest, line)
            return
        self.previous = "meta"
        self.number += 1
        if command == "set":
            assignment = replace(_set(line, rest, ctx), number=self.number)
            self._always_fails(assignment.expr, f"\\set {assignment.name}", line)
            self.commands.append(assignment)
        elif command == "sleep":
            self.commands.append(_sleep(line, rest, ctx))
        elif command in ("shell", "setshell"):
            self.commands.append(_shell(command, line, rest, ctx))
        elif command in ("if", "elif", "else", "endif"):
            self._conditional(command, rest, line)
        elif command in ("startpipeline", "endpipeline"):
            if rest:
                raise ctx.fail(f"\\{command} takes no argument (unexpected argument)", line)
            self.commands.append(PipelineCommand(command.removesuffix("pipeline"), line))
        elif command == "syncpipeline":
            raise ctx.fail(
                "\\syncpipeline is pgbench 17's; pgbench 15, which dbload follows, "
                "has no such command (invalid command)",
                line,
            )
        else:
            shown = name if name.isprintable() else repr(name)
            raise ctx.fail(f"unknown meta-command \\{shown} (dbload knows {_KNOWN})", line)

    def _gset(self, command: str, rest: str, line: int) -> None:
        # pgbench merges \gset into the command just before it, which must be
        # SQL not already followed by one (a \; compound: its last command)
        words = _split(rest)
        if len(words) > 1:
            raise self.ctx.fail(f"\\{command} takes at most a prefix (too many arguments)", line)
        if self.previous != "sql":
            raise self.ctx.fail(f"\\{command} must follow an SQL command", line)
        prefix = words[0] if words else ""
        last = self.commands[-1]
        assert isinstance(last, SqlCommand)
        self.commands[-1] = replace(last, gset=prefix, aset=command == "aset")
        self.ctx.prefixes.add(prefix)
        self.previous = "gset"

    def _conditional(self, command: str, rest: str, line: int) -> None:
        ctx, commands = self.ctx, self.commands
        condition: Expression | None = None
        if command in ("if", "elif"):
            condition = _expression(f"\\{command}", rest, line, ctx)
        elif rest:
            raise ctx.fail(f"\\{command} takes no argument (unexpected argument)", line)
        if condition is not None and command == "if":
            self._always_fails(condition, "\\if", line)
            self.frames.append(_Frame(line, len(commands), []))
            commands.append(BranchCommand(condition, -1, line, self.number))
            return
        if not self.frames:
            self._misplaced(f"\\{command} without matching \\if", line)
            return
        frame = self.frames[-1]
        if command == "endif":
            self.frames.pop()
            self._close(frame, len(commands))
            return
        if frame.seen_else:
            self._misplaced(f"\\{command} after \\else", line)
            return
        # the body just read ends with a jump past the \endif
        frame.jumps.append(len(commands))
        commands.append(JumpCommand(-1, line))
        self._target(frame.branch, len(commands))
        if condition is None:
            frame.branch, frame.seen_else = None, True
        else:
            frame.branch = len(commands)
            commands.append(BranchCommand(condition, -1, line, self.number))

    def _always_fails(self, expr: Expression, what: str, line: int) -> None:
        """An expression that fails whatever the values (``1 / 0``), in a
        command every transaction runs (outside any \\if): pgbench aborts
        every client there, so dbload refuses the script, naming that line.
        In a branch it may never take, it loads, as in pgbench."""
        failure = getattr(expr, "failure", None)
        if failure is not None and not self.frames:
            self.ctx.defer(f"{what}: {failure}", line)

    def _misplaced(self, message: str, line: int) -> None:
        if self.condition is None:
            self.condition = self.ctx.fail(message, line)

    def _target(self, index: int | None, target: int) -> None:
        if index is not None:
            command = self.commands[index]
            assert isinstance(command, BranchCommand | JumpCommand)
            self.commands[index] = replace(command, target=target)

    def _close(self, frame: _Frame, end: int) -> None:
        self._target(frame.branch, end)
        for jump in frame.jumps:
            self._target(jump, end)

    def finish(self) -> None:
        """Raise what pgbench reports after the syntax: the \\if structure,
        then the first error it would meet when running."""
        if self.condition is None and self.frames:
            self._misplaced("\\if without matching \\endif", self.frames[-1].line)
        if self.condition is not None:
            raise self.condition
        if self.ctx.deferred is not None:
            raise self.ctx.deferred


# -- scripts and workloads ------------------------------------------------------

# Characters a text editor does not show, named rather than echoed.
_INVISIBLE = {"\ufeff": "byte order mark", "\x00": "NUL byte"}


def _check_characters(text: str, ctx: _Context) -> None:
    for char, name in _INVISIBLE.items():
        at = text.find(char)
        if at != -1:
            line = _line_of(text, at)
            hint = ": save the script as UTF-8 without BOM" if char == "\ufeff" else ""
            raise ctx.fail(f"{name} at line {line}{hint}", line)


def _is_copy_with_client(sql: str) -> bool:
    """A COPY whose data would flow through the client (FROM STDIN, TO
    STDOUT): the server then waits for data or for it to be read."""
    words: list[str] = []
    depth, i = 0, 0
    while i < len(sql):
        skipped = _skip_quoted(sql, i)
        if skipped is not None:  # a literal or comment: never a keyword
            words.append("")
            i = skipped
            continue
        word = _COPY_WORD.match(sql, i)
        if word is not None:
            if depth == 0:
                words.append(word.group(0).lower())
            i = word.end()
            continue
        depth += {"(": 1, ")": -1}.get(sql[i], 0)
        i += 1
    keywords = [w for w in words if w]
    pairs = set(itertools.pairwise(words))
    return keywords[:1] == ["copy"] and bool(pairs & {("from", "stdin"), ("to", "stdout")})


def parse_script(
    text: str,
    *,
    name: str,
    source: str,
    weight: int = 1,
    script_index: int = 0,
    first_statement: int = 0,
    defines: Mapping[str, Value] | None = None,
) -> tuple[Script, list[Statement]]:
    """Parse one script; its statements are numbered from ``first_statement``.

    Raises :class:`WorkloadError` naming ``source`` and the line at fault.
    """
    defines = defines or {}
    ctx = _Context(
        source=source,
        defined=set(BUILTIN_VARIABLES) | set(defines),
        texts={k: v for k, v in defines.items() if isinstance(v, str)},
    )
    _check_characters(text, ctx)
    raw: list[_RawSql | _RawMeta] = []
    try:
        _lex(text, raw)
    except _LexError as exc:
        # pgbench sends what it could not split as it is: the server fails it
        ctx.defer(exc.message, _line_of(text, exc.offset))
    builder = _Builder(ctx, script_index, first_statement)
    for item in raw:
        if isinstance(item, _RawSql):
            builder.sql(item)
        else:
            builder.meta(item)
    builder.finish()
    if not raw:
        raise WorkloadError("empty script: no SQL statement and no meta-command", source=source)
    script = Script(
        name=name,
        source=source,
        weight=weight,
        description=_description(text),
        commands=tuple(builder.commands),
        statements=tuple(range(first_statement, first_statement + len(builder.statements))),
    )
    return script, builder.statements


def check_query_mode(workload: Workload, mode: str) -> None:
    """Refuse, naming file and line, what ``-M mode`` cannot run.

    A ``\\;`` compound is several commands in one request: only the simple
    protocol carries that (pgbench 15 sends it anyway in extended and
    prepared mode, and the server fails the transaction with "cannot insert
    multiple commands into a prepared statement"). A pipeline needs the
    extended protocol (pgbench 15 aborts the client at \\startpipeline:
    "cannot use pipeline mode with the simple query protocol").
    """
    if mode not in QUERY_MODES:
        raise WorkloadError(f"unknown query mode {mode!r} ({', '.join(QUERY_MODES)})")
    if mode != "simple":
        for statement in workload.statements:
            if statement.compound:
                raise WorkloadError(
                    f"\\; compound statement needs -M simple, not -M {mode}: the server "
                    "cannot prepare several commands as one statement",
                    source=statement.source,
                    line=statement.line,
                )
        return
    for script in workload.scripts:
        for command in script.commands:
            if isinstance(command, PipelineCommand) and command.kind == "start":
                raise WorkloadError(
                    "\\startpipeline needs -M extended or prepared: pipeline mode "
                    "cannot use the simple query protocol",
                    source=script.source,
                    line=command.line,
                )


def _queries() -> Traversable:
    return files("dbload") / "queries"


def builtin_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".sql") for p in _queries().iterdir() if p.name.endswith(".sql")
    )


def builtin_text(name: str) -> str:
    if name not in builtin_names():
        raise WorkloadError(
            f"unknown workload {name!r}; built-ins are {', '.join(builtin_names())}"
        )
    return (_queries() / f"{name}.sql").read_text(encoding="utf-8")


def builtin_description(name: str) -> str:
    """The built-in's header comment, without a leading ``name:`` label."""
    description = _description(builtin_text(name))
    label, sep, rest = description.partition(":")
    return rest.strip() if sep and label.strip() == name else description


def _split_weight(spec: str, what: str) -> tuple[str, int]:
    """``path@weight`` (split from the right, as pgbench does)."""
    base, sep, weight = spec.rpartition("@")
    if not sep:
        return spec, 1
    if not _WEIGHT.fullmatch(weight) or int(weight) > _MAX_WEIGHT or not base:
        raise WorkloadError(
            f"{what} {spec!r}: weight must be an integer from 0 to {_MAX_WEIGHT} (NAME@WEIGHT)"
        )
    return base, int(weight)


def _label(name: str) -> str:
    return Path(name).name.removesuffix(".sql").removesuffix(".py")


def load_workload(
    files: Sequence[str] = (),
    builtin: str | Sequence[str] | None = None,
    defines: Mapping[str, str] | None = None,
) -> Workload:
    """Scripts from ``files`` (``PATH[@WEIGHT]``) and/or built-ins (default ``select``):
    one name or several (``-b``), each ``NAME[@WEIGHT]``, run first."""
    # text, as in pgbench: sent as written (007), typed when an expression
    # uses it (expr.from_text)
    values: dict[str, Value] = dict(defines or {})
    for key in values:
        if not _NAME.match(key):
            raise WorkloadError(f"-D {key!r}: not a valid variable name")
    sources: list[tuple[str, str, str | None, int]] = []  # name, source, text, weight
    builtins = [builtin] if isinstance(builtin, str) else list(builtin or ())
    for spec in builtins or ([] if files else [DEFAULT_BUILTIN]):
        name, weight = _split_weight(spec, "workload")
        sources.append((name, name, builtin_text(name), weight))
    for spec in files:
        path, weight = _split_weight(spec, "script")
        # a Python workload (text None) is imported, not read, when its turn comes
        sources.append((path, path, None if is_python(path) else read_script(path), weight))
    scripts: list[Script] = []
    statements: list[Statement] = []
    for index, (name, source, text, weight) in enumerate(sources):
        if text is None:
            script, stmts = load_python(
                source,
                name=name,
                weight=weight,
                script_index=index,
                first_statement=len(statements),
            )
        else:
            script, stmts = parse_script(
                text,
                name=name,
                source=source,
                weight=weight,
                script_index=index,
                first_statement=len(statements),
                defines=values,
            )
        scripts.append(script)
        statements += stmts
    if sum(s.weight for s in scripts) == 0:
        raise WorkloadError("every script has weight 0: nothing would run")
    label = "+".join(_label(s.name) for s in scripts)
    return Workload(
        name=label, scripts=tuple(scripts), statements=tuple(statements), defines=values
    )
