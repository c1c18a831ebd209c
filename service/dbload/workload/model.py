"""Records describing a parsed workload. They cross into every executor.

A :class:`Workload` is immutable and driver-free: statements carry PostgreSQL's
native ``$n`` placeholders (asyncpg and psycopg's ``RawCursor`` both take
them), and ``params`` names the variable bound to each ``$n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from dbload.errors import WorkloadError

if TYPE_CHECKING:  # python.py builds Scripts: a real import would be circular
    from dbload.workload.python import PythonCode

# None is SQL NULL (pgbench's NULL); a str is text as set by -D, \gset or
# \setshell, typed when an expression reads it (expr.from_text).
Value: TypeAlias = int | float | str | bool | None


class ScriptRuntimeError(WorkloadError):
    """A script that fails while a transaction's values are computed
    (``\\set x 1 / :i`` with i = 0, a sleep out of range, a bad random
    parameter): pgbench aborts that client, and so do dbload's executors,
    counting the transaction as failed (error class "script") and keeping
    the run's other results. ``str()`` is ``file:line: cannot evaluate: ...``;
    ``reason`` is the part after the location."""

    def __init__(self, reason: str, *, source: str | None, line: int | None) -> None:
        super().__init__(f"cannot evaluate: {reason}", source=source, line=line)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # a worker process sends it to its parent: rebuild from the parts,
        # since the default would pass the whole message as the reason
        return (partial(type(self), source=self.source, line=self.line), (self.reason,))


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement of a script, ready to prepare on the server."""

    sql: str  # text with $1..$n placeholders
    params: tuple[str, ...]  # params[i] is the variable bound to $(i+1)
    script: int  # index of the owning script in Workload.scripts
    source: str  # file name (or built-in name) for messages
    line: int  # 1-based line where the statement starts
    # for -M simple: the literal SQL around each variable use, with
    # len(parts) == len(param_refs) + 1; param_refs[i] indexes params
    parts: tuple[str, ...] = ()
    param_refs: tuple[int, ...] = ()
    compound: bool = False  # psql's \; glued commands: -M simple only
    # may create what later statements use (CREATE, PREPARE, DO, SET, ...):
    # a later statement that cannot be prepared up front is prepared when run
    may_create: bool = False

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Script:
    """One pgbench-style script or Python workload: one 'transaction' per execution."""

    name: str  # built-in name or file path as given
    source: str  # what error messages call it
    weight: int
    description: str  # from a leading comment, may be empty
    commands: tuple[object, ...]  # parser-private: \set, \sleep, SQL (see parser)
    statements: tuple[int, ...]  # indexes into Workload.statements, in order
    # a Python workload (-f tasks.py): its functions; commands is then empty
    # and statements are its ctx.step() names
    python: PythonCode | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    name: str  # e.g. "select", or "a+b" for scripts a.sql and b.sql
    scripts: tuple[Script, ...]
    statements: tuple[Statement, ...]  # every statement of every script, flattened
    defines: dict[str, Value] = field(default_factory=dict)  # -D name=value


# One executed step of a transaction: (statement index, bind values), or
# (SLEEP, (seconds,)). Tuples, not objects: this is the executors' hot path.
SLEEP = -1
Step: TypeAlias = tuple[int, tuple[Value, ...]]


class Transaction(NamedTuple):
    """A NamedTuple, not a dataclass: one is built per transaction."""

    script: int
    steps: tuple[Step, ...]
