"""pgbench's custom-script syntax, parsed into a driver-free :class:`Workload`.

A script is one "transaction": meta-commands (``\\set``, ``\\sleep``) and SQL
statements ending at a semicolon outside quotes, comments and parentheses.
``:name`` in SQL becomes a ``$n`` bind parameter, never text. Everything is
checked here, before any connection is opened: an unknown meta-command, a
bad expression or a variable used before it is set fails with file and line.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dbload.errors import WorkloadError
from dbload.workload.expr import BLANKS, EvalError, ExprError, Expression, compile_expression
from dbload.workload.model import Script, Statement, Value, Workload

DEFAULT_BUILTIN = "select"
# Defined for every client, as in pgbench.
BUILTIN_VARIABLES = frozenset({"scale", "client_id", "random_seed"})
_UNSUPPORTED = {
    "gset", "aset", "if", "elif", "else", "endif", "setshell", "shell",
    "startpipeline", "endpipeline", "syncpipeline",
}  # fmt: skip
_SLEEP_UNITS = {"us": 1, "ms": 1_000, "s": 1_000_000}  # microseconds per unit
# pgbench keeps a sleep's microseconds in a C int: past this it wraps around
# (\sleep 2148 s does not sleep at all), so dbload refuses what pgbench garbles
MAX_SLEEP_US = 2**31 - 1
_SLEEP_ARG = re.compile(r"([+-]?)([0-9]*)(.*)", re.DOTALL)
_SPLIT = re.compile(f"[{BLANKS}]+")
_NAME = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*\Z")
_WEIGHT = re.compile(r"[0-9]+")
_MAX_WEIGHT = 2**31 - 1  # pgbench's INT_MAX


@dataclass(frozen=True, slots=True)
class SetCommand:
    name: str
    expr: Expression
    line: int


@dataclass(frozen=True, slots=True)
class SleepCommand:
    amount: int | str  # a literal, or the variable holding it
    seconds_per_unit: float
    line: int


def sleep_seconds(amount: object, seconds_per_unit: float) -> float:
    """How long ``\\sleep`` waits for ``amount`` units, as pgbench reads it:
    a double is cut to an integer (pgbench reads its text with atoi) and a
    negative amount does not wait. Raises :class:`EvalError` for a value
    pgbench would refuse (not a number) or wrap around (out of range)."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise EvalError(f"\\sleep: invalid sleep time {amount!r}")
    if isinstance(amount, float) and not math.isfinite(amount):
        raise EvalError(f"\\sleep: invalid sleep time {amount}")
    per_unit = round(seconds_per_unit * 1e6)
    micros = int(amount) * per_unit  # int() cuts toward zero, like atoi
    if abs(micros) > MAX_SLEEP_US:
        unit = {1: "us", 1_000: "ms"}.get(per_unit, "s")
        shown = amount if isinstance(amount, int) else f"{amount:g}"
        raise EvalError(
            f"\\sleep: {shown} {unit} is out of range "
            f"(at most {MAX_SLEEP_US} us, about 36 minutes, as in pgbench)"
        )
    return max(0, micros) / 1e6


@dataclass(frozen=True, slots=True)
class SqlCommand:
    statement: int  # index into Workload.statements
    line: int


@dataclass(frozen=True, slots=True)
class _RawSql:
    text: str
    line: int


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


def _lex(text: str) -> list[_RawSql | _RawMeta]:
    """The commands of a script, in order. Raises :class:`_LexError`."""
    items: list[_RawSql | _RawMeta] = []
    start: int | None = None  # offset where the pending SQL command starts
    depth, i, n = 0, 0, len(text)

    def flush(end: int) -> None:
        nonlocal start, depth
        if start is not None:
            items.append(_RawSql(text[start:end].strip(), _line_of(text, start)))
        start, depth = None, 0

    while i < n:
        c = text[i]
        if c in BLANKS:  # psql's lexer: ASCII blanks only, as the server's
            i += 1
            continue
        if c == "\\":
            if text[i + 1 : i + 2] in (";", ":"):
                # psql's escaped \; glues statements into one request, which
                # cannot be prepared; \: is as rare
                raise _LexError(f"\\{text[i + 1]} in SQL is not supported by dbload", i)
            flush(i)
            end = _meta_end(text, i)
            items.append(_RawMeta(text[i:end], _line_of(text, i)))
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
    return items


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# -- SQL variables ------------------------------------------------------------

_VAR = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*")


def _bind(sql: str) -> tuple[str, tuple[str, ...]]:
    """Replace ``:name`` with ``$n`` outside quotes and comments; ``::`` casts stay.

    The same variable reuses its ``$n``. pgbench itself also replaces
    ``:name`` inside string literals, which breaks its prepared mode; dbload
    binds parameters, so a literal is left as written.
    """
    out: list[str] = []
    params: list[str] = []
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
        out.append(sql[copied:i])
        out.append(f"${params.index(name) + 1}")
        i = copied = match.end()
    out.append(sql[copied:])
    return "".join(out).strip(), tuple(params)


# -- meta-commands --------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    """What the checks of one script need while its commands are read in order."""

    source: str
    defined: set[str]  # variables set so far: built-ins, -D, earlier \set
    text_only: set[str]  # -D values that are not numbers: bindable, not computable

    def fail(self, message: str, line: int) -> WorkloadError:
        return WorkloadError(message, source=self.source, line=line)

    def check_defined(self, names: Iterable[str], line: int) -> None:
        missing = sorted(set(names) - self.defined)
        if missing:
            raise self.fail(f"undefined variable :{missing[0]}", line)

    def check_numeric(self, names: Iterable[str], line: int, what: str) -> None:
        text = sorted(set(names) & self.text_only)
        if text:
            raise self.fail(f"{what}: variable :{text[0]} is not a number", line)


def _meta(raw: _RawMeta, ctx: _Context) -> SetCommand | SleepCommand:
    # a backslash at the end of a line continues the meta-command
    text = re.sub(r"\\\r?\n", " ", raw.text)
    parts = _split(text[1:], 1)
    command = parts[0] if parts else ""
    rest = parts[1] if len(parts) > 1 else ""
    if command.lower() == "set":
        return _set(raw.line, rest, ctx)
    if command.lower() == "sleep":
        return _sleep(raw.line, rest, ctx)
    if command.lower() in _UNSUPPORTED:
        raise ctx.fail(f"\\{command} is a pgbench meta-command dbload does not support", raw.line)
    shown = command if command.isprintable() else repr(command)
    raise ctx.fail(f"unknown meta-command \\{shown} (dbload knows \\set and \\sleep)", raw.line)


def _split(text: str, limit: int = 0) -> list[str]:
    """Words separated by ASCII blanks, as pgbench splits a meta-command."""
    return [word for word in _SPLIT.split(text.strip(BLANKS), limit) if word]


def _set(line: int, rest: str, ctx: _Context) -> SetCommand:
    parts = _split(rest, 1)
    if len(parts) < 2:
        raise ctx.fail("\\set needs a variable name and an expression", line)
    name, expr_text = parts
    if not _NAME.match(name):
        raise ctx.fail(f"\\set: invalid variable name {name!r}", line)
    try:
        expr = compile_expression(expr_text)
    except ExprError as exc:
        raise ctx.fail(f"\\set {name}: {exc}", line) from None
    ctx.check_defined(expr.variables, line)
    ctx.check_numeric(expr.variables, line, f"\\set {name}")
    ctx.defined.add(name)
    ctx.text_only.discard(name)
    return SetCommand(name, expr, line)


def _sleep(line: int, rest: str, ctx: _Context) -> SleepCommand:
    parts = _split(rest)
    if not parts or len(parts) > 2:
        raise ctx.fail("\\sleep needs a duration: \\sleep N [us|ms|s]", line)
    amount: int | str
    if parts[0].startswith(":"):
        amount = parts[0][1:]
        ctx.check_defined({amount}, line)
        ctx.check_numeric({amount}, line, "\\sleep")
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
        except EvalError as exc:
            raise ctx.fail(str(exc), line) from None
    return command


# -- scripts and workloads ------------------------------------------------------

# Characters a text editor does not show, named rather than echoed.
_INVISIBLE = {"\ufeff": "byte order mark", "\x00": "NUL byte"}
_COPY_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")


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
        text_only={k for k, v in defines.items() if isinstance(v, str)},
    )
    _check_characters(text, ctx)
    try:
        raw = _lex(text)
    except _LexError as exc:
        raise ctx.fail(exc.message, _line_of(text, exc.offset)) from None
    commands: list[SetCommand | SleepCommand | SqlCommand] = []
    statements: list[Statement] = []
    for item in raw:
        if isinstance(item, _RawSql):
            if _is_copy_with_client(item.text):
                raise ctx.fail(
                    "COPY ... FROM STDIN / TO STDOUT is not supported (nor by pgbench): "
                    "a script runs statements, it sends no COPY data",
                    item.line,
                )
            sql, params = _bind(item.text)
            ctx.check_defined(params, item.line)
            index = first_statement + len(statements)
            statements.append(Statement(sql, params, script_index, source, item.line))
            commands.append(SqlCommand(index, item.line))
        else:
            commands.append(_meta(item, ctx))
    if not commands:
        raise WorkloadError("empty script: no SQL statement and no meta-command", source=source)
    script = Script(
        name=name,
        source=source,
        weight=weight,
        description=_description(text),
        commands=tuple(commands),
        statements=tuple(range(first_statement, first_statement + len(statements))),
    )
    return script, statements


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


_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_FLOAT_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def _parse_define(value: str) -> Value:
    """A number when the whole value is one in ASCII digits, as pgbench's
    strtol/strtod read it (Python's int() also takes ``1_000`` and other
    scripts' digits); text otherwise."""
    if _INT_TEXT.fullmatch(value):
        return int(value)
    if _FLOAT_TEXT.fullmatch(value):
        return float(value)
    return value


def _read(path: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkloadError("script file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise WorkloadError(f"cannot read script: {reason}", source=path) from None


def load_workload(
    files: Sequence[str] = (),
    builtin: str | None = None,
    defines: Mapping[str, str] | None = None,
) -> Workload:
    """Scripts from ``files`` (``PATH[@WEIGHT]``) and/or a built-in (default ``select``)."""
    values = {k: _parse_define(v) for k, v in (defines or {}).items()}
    for key in values:
        if not _NAME.match(key):
            raise WorkloadError(f"-D {key!r}: not a valid variable name")
    sources: list[tuple[str, str, str, int]] = []  # name, source, text, weight
    if builtin is not None or not files:
        name, weight = _split_weight(builtin or DEFAULT_BUILTIN, "workload")
        sources.append((name, name, builtin_text(name), weight))
    for spec in files:
        path, weight = _split_weight(spec, "script")
        sources.append((path, path, _read(path), weight))
    scripts: list[Script] = []
    statements: list[Statement] = []
    for index, (name, source, text, weight) in enumerate(sources):
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
    label = "+".join(Path(s.name).name.removesuffix(".sql") for s in scripts)
    return Workload(
        name=label, scripts=tuple(scripts), statements=tuple(statements), defines=values
    )
