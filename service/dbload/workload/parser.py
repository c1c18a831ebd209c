"""pgbench's custom-script syntax, parsed into a driver-free :class:`Workload`.

A script is one "transaction": meta-commands (``\\set``, ``\\sleep``) and SQL
statements ending at a semicolon outside quotes, comments and parentheses.
``:name`` in SQL becomes a ``$n`` bind parameter, never text. Everything is
checked here, before any connection is opened: an unknown meta-command, a
bad expression or a variable used before it is set fails with file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from dbload.errors import WorkloadError
from dbload.workload.expr import ExprError, Expression, compile_expression
from dbload.workload.model import Script, Statement, Value, Workload

DEFAULT_BUILTIN = "select"
# Defined for every client, as in pgbench.
BUILTIN_VARIABLES = frozenset({"scale", "client_id", "random_seed"})
_UNSUPPORTED = {
    "gset", "aset", "if", "elif", "else", "endif", "setshell", "shell",
    "startpipeline", "endpipeline", "syncpipeline",
}  # fmt: skip
_SLEEP_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


@dataclass(frozen=True, slots=True)
class SqlCommand:
    statement: int  # index into Workload.statements
    line: int


@dataclass(frozen=True, slots=True)
class _RawSql:
    text: str
    line: int


# -- splitting a script into commands ---------------------------------------


def _split(text: str, source: str) -> tuple[str, list[tuple[int, str] | _RawSql]]:
    """Meta-commands as (line, text) and SQL as _RawSql, in order, plus the
    description taken from the comment lines before the first command."""
    lines = text.splitlines()
    description: list[str] = []
    commands: list[tuple[int, str] | _RawSql] = []
    buf, buf_line = "", 0  # SQL not yet ended by a semicolon, and where it starts
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        i += 1
        if not buf.strip() and stripped.startswith("\\"):
            start = i
            # a trailing backslash continues a meta-command on the next line
            while line.rstrip().endswith("\\") and i < len(lines):
                line = line.rstrip()[:-1] + " " + lines[i]
                i += 1
            commands.append((start, line.strip()))
            buf = ""
            continue
        if not buf.strip() and (not stripped or stripped.startswith("--")):
            if stripped.startswith("--") and not commands:
                description.append(stripped.lstrip("-").strip())
            continue
        if not buf.strip():
            buf, buf_line = "", i
        buf += line + "\n"
        done, buf, buf_line = _take_statements(buf, buf_line)
        commands += done
    if _strip_comments(buf).strip():
        commands.append(_RawSql(buf.strip(), buf_line + _leading_lines(buf)))
    return " ".join(d for d in description if d), commands


def _take_statements(buf: str, first_line: int) -> tuple[list[_RawSql], str, int]:
    """Complete statements in ``buf``, and what is left with its first line."""
    out: list[_RawSql] = []
    start = 0
    for end in _scan(buf):
        chunk = buf[start : end + 1]
        if _strip_comments(chunk).strip(" ;\n\t"):
            line = first_line + buf.count("\n", 0, start) + _leading_lines(chunk)
            out.append(_RawSql(chunk.strip(), line))
        start = end + 1
    return out, buf[start:], first_line + buf.count("\n", 0, start)


def _scan(text: str) -> list[int]:
    """Offsets of statement-ending semicolons: outside quotes, comments,
    dollar quotes and parentheses (pgbench's psqlscan rule)."""
    ends: list[int] = []
    i, depth, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            close = text.find(c, i + 1)
            while close != -1 and close + 1 < n and text[close + 1] == c:
                close = text.find(c, close + 2)  # doubled quote is an escape
            i = n if close == -1 else close + 1
            continue
        if text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl == -1 else nl
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close == -1 else close + 2
            continue
        if c == "$":
            tag = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$", text[i:])
            if tag:
                close = text.find(tag.group(0), i + len(tag.group(0)))
                i = n if close == -1 else close + len(tag.group(0))
                continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            ends.append(i)
        i += 1
    return ends


def _leading_lines(chunk: str) -> int:
    """How many lines down the first non-blank, non-comment text starts."""
    for skipped, part in enumerate(chunk.split("\n")):
        s = part.strip().lstrip(";").strip()
        if s and not s.startswith("--"):
            return skipped
    return 0


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.strip().startswith("--"))


# -- SQL variables ------------------------------------------------------------


def _bind(sql: str) -> tuple[str, tuple[str, ...]]:
    """Replace ``:name`` with ``$n`` outside quotes and comments; ``::`` casts stay."""
    out: list[str] = []
    params: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            close = sql.find(c, i + 1)
            while close != -1 and close + 1 < n and sql[close + 1] == c:
                close = sql.find(c, close + 2)
            end = n if close == -1 else close + 1
            out.append(sql[i:end])
            i = end
            continue
        if sql.startswith("--", i):
            nl = sql.find("\n", i)
            end = n if nl == -1 else nl
            out.append(sql[i:end])
            i = end
            continue
        if sql.startswith("::", i):
            out.append("::")
            i += 2
            continue
        if c == ":":
            match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", sql[i + 1 :])
            if match:
                name = match.group(0)
                if name not in params:
                    params.append(name)
                out.append(f"${params.index(name) + 1}")
                i += 1 + len(name)
                continue
        out.append(c)
        i += 1
    text = "".join(out).strip()
    return text.removesuffix(";").rstrip(), tuple(params)


# -- meta-commands --------------------------------------------------------------


def _meta(line: int, text: str, source: str, defined: set[str]) -> SetCommand | SleepCommand:
    parts = text[1:].split(None, 1)
    command = parts[0].lower() if parts else ""
    rest = parts[1].strip() if len(parts) > 1 else ""
    if command == "set":
        return _set(line, rest, source, defined)
    if command == "sleep":
        return _sleep(line, rest, source, defined)
    if command in _UNSUPPORTED:
        raise WorkloadError(f"\\{command} is not supported by dbload", source=source, line=line)
    raise WorkloadError(f"unknown meta-command \\{command}", source=source, line=line)


def _set(line: int, rest: str, source: str, defined: set[str]) -> SetCommand:
    name, _, expr_text = rest.partition(" ")
    if not _NAME.match(name) or not expr_text.strip():
        raise WorkloadError(
            "\\set needs a variable name and an expression", source=source, line=line
        )
    try:
        expr = compile_expression(expr_text)
    except ExprError as exc:
        raise WorkloadError(f"\\set {name}: {exc}", source=source, line=line) from None
    _check_defined(expr.variables, defined, source, line)
    defined.add(name)
    return SetCommand(name, expr, line)


def _sleep(line: int, rest: str, source: str, defined: set[str]) -> SleepCommand:
    parts = rest.split()
    if not parts or len(parts) > 2:
        raise WorkloadError(
            "\\sleep needs a duration: \\sleep N [us|ms|s]", source=source, line=line
        )
    unit = parts[1].lower() if len(parts) == 2 else "s"
    if unit not in _SLEEP_UNITS:
        raise WorkloadError(
            f"\\sleep: unknown unit {parts[1]!r} (us, ms or s)", source=source, line=line
        )
    amount: int | str
    if parts[0].startswith(":"):
        amount = parts[0][1:]
        _check_defined({amount}, defined, source, line)
    elif parts[0].isdigit():
        amount = int(parts[0])
    else:
        raise WorkloadError(f"\\sleep: {parts[0]!r} is not an integer", source=source, line=line)
    return SleepCommand(amount, _SLEEP_UNITS[unit], line)


def _check_defined(
    names: frozenset[str] | set[str], defined: set[str], source: str, line: int
) -> None:
    missing = sorted(set(names) - defined)
    if missing:
        raise WorkloadError(f"undefined variable :{missing[0]}", source=source, line=line)


# -- scripts and workloads ------------------------------------------------------


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
    """Parse one script; its statements are numbered from ``first_statement``."""
    defined = set(BUILTIN_VARIABLES) | set(defines or {})
    description, raw = _split(text, source)
    commands: list[SetCommand | SleepCommand | SqlCommand] = []
    statements: list[Statement] = []
    for item in raw:
        if isinstance(item, _RawSql):
            sql, params = _bind(item.text)
            _check_defined(set(params), defined, source, item.line)
            index = first_statement + len(statements)
            statements.append(Statement(sql, params, script_index, source, item.line))
            commands.append(SqlCommand(index, item.line))
        else:
            commands.append(_meta(item[0], item[1], source, defined))
    if not commands:
        raise WorkloadError("empty script: no SQL statement and no meta-command", source=source)
    script = Script(
        name=name,
        source=source,
        weight=weight,
        description=description,
        commands=tuple(commands),
        statements=tuple(s for s in range(first_statement, first_statement + len(statements))),
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
    description, _ = _split(builtin_text(name), name)
    return description


def _split_weight(spec: str, what: str) -> tuple[str, int]:
    """``path@weight`` (split from the right, as pgbench does)."""
    base, sep, weight = spec.rpartition("@")
    if not sep:
        return spec, 1
    if not weight.isdigit():
        raise WorkloadError(f"{what} {spec!r}: weight must be a non-negative integer")
    return base, int(weight)


def _parse_define(value: str) -> Value:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
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
