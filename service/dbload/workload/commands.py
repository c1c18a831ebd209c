"""The commands of a parsed script: what the interpreter runs, in order.

A :class:`~dbload.workload.model.Script` holds a flat tuple of these. Control
flow is compiled by the parser into jumps (``\\if`` chains become
:class:`BranchCommand` / :class:`JumpCommand`), so the interpreter is a loop
over an index that never recurses. Every record names its script line, for
the messages of the errors it may raise at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from dbload.workload.expr import Expression


@dataclass(frozen=True, slots=True)
class SetCommand:
    """``\\set name expr``."""

    name: str
    expr: Expression
    line: int
    number: int = 0  # pgbench's 1-based command number, for debug()'s line


@dataclass(frozen=True, slots=True)
class SleepCommand:
    """``\\sleep amount [unit]``: ``amount`` is a literal or the name of the
    variable holding it (read by :func:`dbload.workload.parser.sleep_seconds`)."""

    amount: int | str
    seconds_per_unit: float
    line: int


@dataclass(frozen=True, slots=True)
class SqlCommand:
    """One SQL command (a ``\\;`` compound is one, its Statement.compound set).

    ``gset`` None: results are discarded; ``""`` or a prefix: ``\\gset
    [prefix]`` (the last result must have exactly one row, its columns become
    prefix+column variables) or, with ``aset``, ``\\aset [prefix]`` (every
    row of every result, the last one wins; no row sets nothing)."""

    statement: int  # index into Workload.statements
    line: int
    gset: str | None = None
    aset: bool = False


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """``\\shell words...`` (``into`` None) or ``\\setshell into words...``.

    pgbench joins the words with single spaces and hands the line to the
    shell (``system()`` / ``popen()``). ``words[i]`` for ``i`` in
    ``variables`` is ``":name"``, to be replaced by the variable's text; every
    other word is final, even one starting with ``:`` (pgbench's ``::x``
    escape, already turned into ``:x``)."""

    words: tuple[str, ...]
    into: str | None
    line: int
    variables: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class BranchCommand:
    """``\\if expr`` / ``\\elif expr``: when ``expr`` is false (pgbench's
    coerceToBool), continue at ``commands[target]``; ``target`` may be
    ``len(commands)``, the end of the script."""

    expr: Expression
    target: int
    line: int
    number: int = 0  # pgbench's 1-based command number, for debug()'s line


@dataclass(frozen=True, slots=True)
class JumpCommand:
    """The end of a taken ``\\if``/``\\elif`` body: continue past its ``\\endif``."""

    target: int
    line: int


@dataclass(frozen=True, slots=True)
class PipelineCommand:
    """``\\startpipeline`` ("start") / ``\\endpipeline`` ("end"); "sync" is
    pgbench 17's ``\\syncpipeline``, which pgbench 15 (the judge here) does
    not have: the parser refuses it as pgbench 15 does."""

    kind: str
    line: int


Command: TypeAlias = (
    SetCommand
    | SleepCommand
    | SqlCommand
    | ShellCommand
    | BranchCommand
    | JumpCommand
    | PipelineCommand
)
