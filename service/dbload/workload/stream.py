"""The script interpreter: what each client sends, as a sans-IO generator.

A client's transactions come from :meth:`ParameterStream.transaction`, a
generator that yields *requests* (tuples, first item the kind) and is sent
each one's *answer*; the executors only do the I/O, so the sync (psycopg)
and async (asyncpg) workers run the very same interpreter::

    txn = stream.transaction()          # stream.script: the script it picked
    request = next(txn)
    while True:
        answer = do(request)            # the executor's I/O
        try:
            request = txn.send(answer)
        except StopIteration:
            break

Requests:
    ``(QUERY, statement, values, fetch)``: run ``Workload.statements[statement]``
    with ``values`` (text or None, as pgbench binds them); ``fetch`` 0: the
    answer is None; 1 (``\\gset``) or 2 (``\\aset``): the answer is
    ``(columns, rows)`` with the rows as text (None for NULL); for ``\\aset``
    on a ``\\;`` compound, a list of such pairs, one per result.
    ``(SLEEP, seconds)``, answer None.
    ``(SHELL, argv, capture)``: run ``" ".join(argv)`` with the shell, answer
    ``(returncode, stdout)``; the interpreter applies pgbench's rules.
    ``(PIPELINE, "start" | "sync" | "end")``, answer None.
    ``(CALL, code, ctx)``: a Python workload's whole transaction: call
    ``code.sync_fn(db, ctx)`` or ``await code.async_fn(db, ctx)``
    (:class:`~dbload.workload.python.PythonCode`, :class:`TaskContext`),
    answer None. ``ctx`` is the client's for that script, the same object
    every time (a retry yields it again, its random state rewound).

A client-side failure raises :class:`ScriptRuntimeError` out of the
generator. A worker's stream depends only on the workload, the seed and the
client id, never on the mode or on timing, so a given ``--seed`` and
concurrency send the same values in every mode. Like pgbench, variables
persist across a client's transactions.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Generator, Mapping, Sequence
from typing import Any, TypeAlias

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
from dbload.workload.expr import (
    EvalError,
    ExprError,
    Number,
    client_rng,
    compile_expression,
    default_seed,
    truth,
    wire_text,
)
from dbload.workload.model import SLEEP as STEP_SLEEP
from dbload.workload.model import ScriptRuntimeError, Step, Transaction, Value, Workload
from dbload.workload.parser import sleep_seconds
from dbload.workload.python import PythonCode, TaskContext

# Request kinds: small ints, compared with ``is`` on the hot path.
QUERY, SLEEP, SHELL, PIPELINE, CALL = 0, 1, 2, 3, 4
Request: TypeAlias = tuple[Any, ...]
Answer: TypeAlias = Any
Txn: TypeAlias = Generator[Request, Answer, None]
# one result of a \gset/\aset query: column names, rows as text
Rows: TypeAlias = tuple[Sequence[str], Sequence[Sequence[str | None]]]

# Compiled operations, as tuples for a fast dispatch loop; the command is
# last and only read on failure (its line).
_SET, _SQL, _SLEEP, _BRANCH, _JUMP, _SHELL, _PIPE = range(7)
_Op = tuple[Any, ...]
_NAME = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*\Z")
# strtol's rule, as pgbench reads \setshell's output: blanks, a sign and
# digits, blanks; a line of blanks only reads as 0
_SHELL_INT = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)?[ \t\n\r\f\v]*\Z")
_FAILURES = (EvalError, ArithmeticError, TypeError, ValueError, RecursionError)


def _fold(
    command: Any, constants: Mapping[str, Number], source: str, what: str, script: int
) -> Any:
    """The command's expression compiled again, now that :scale and -D are
    known: constants fold away. One that calls debug() is told where it
    runs, for pgbench's ``debug(script=S,command=N)`` line."""
    try:
        compiled = compile_expression(command.expr.text, constants)
    except ExprError as exc:  # e.g. random(1, 0 * :scale): an empty range
        raise WorkloadError(f"{what}: {exc}", source=source, line=command.line) from None
    # an expression that folds to a certain failure once the constants are
    # in: every transaction would fail, so the client is aborted at once
    failure = getattr(compiled, "failure", None)
    if failure and command.expr.variables & constants.keys():
        raise WorkloadError(f"{what}: {failure}", source=source, line=command.line)
    if getattr(compiled, "debugs", False):
        number = command.number
        return lambda env, rng: compiled.evaluate_at(env, rng, script, number)
    return compiled.evaluate


def _compile(workload: Workload, script: int, constants: Mapping[str, Number]) -> tuple[_Op, ...]:
    ops: list[_Op] = []
    source = workload.scripts[script].source
    for command in workload.scripts[script].commands:
        if isinstance(command, SetCommand):
            evaluate = _fold(command, constants, source, f"\\set {command.name}", script)
            ops.append((_SET, command.name, evaluate, command))
        elif isinstance(command, SqlCommand):
            params = workload.statements[command.statement].params
            gset = command.gset
            fetch = 0 if gset is None else 2 if command.aset else 1
            ops.append((_SQL, command.statement, params, fetch, gset or "", command))
        elif isinstance(command, SleepCommand):
            ops.append((_SLEEP, command.amount, command.seconds_per_unit, command))
        elif isinstance(command, BranchCommand):
            evaluate = _fold(command, constants, source, "\\if", script)
            ops.append((_BRANCH, evaluate, command.target, command))
        elif isinstance(command, JumpCommand):
            ops.append((_JUMP, command.target, command))
        elif isinstance(command, ShellCommand):
            variables = tuple((i, command.words[i][1:]) for i in command.variables)
            ops.append((_SHELL, command.words, command.into, variables, command))
        elif isinstance(command, PipelineCommand):
            ops.append((_PIPE, command.kind, command))
    return tuple(ops)


def _values(env: dict[str, Value], params: tuple[str, ...]) -> tuple[str | None, ...]:
    if len(params) == 1:  # the common point lookup, without a list's build
        v = env[params[0]]
        return (str(v) if type(v) is int else v if type(v) is str else _bind(v),)
    return tuple([v if type(v := env[p]) is str else _bind(v) for p in params])


def _bind(value: Value) -> str | None:
    """A bind value: pgbench's text (expr.wire_text), NULL as SQL NULL (the
    issue's rule; pgbench 15 itself binds the four letters NULL)."""
    return None if value is None else wire_text(value)


class ParameterStream:
    """The transactions one client (``client_id``) runs, in order.

    ``replayable``: keep each transaction's starting random state and
    variables, for ``transaction(retry=True)`` (only needed with
    --max-tries > 1: saving them costs a little per transaction).
    ``query_mode``: pgbench refuses ``\\startpipeline`` in simple mode.
    ``clients``: how many the run has (pgbench's ``:default_seed`` depends on it).
    """

    def __init__(
        self,
        workload: Workload,
        *,
        seed: int,
        client_id: int,
        scale: int,
        replayable: bool = True,
        query_mode: str = "prepared",
        clients: int = 1,
    ) -> None:
        # The random functions draw from pgbench's own per-client state, so
        # --random-seed N gives pgbench's values (client_rng: pgbench seeds
        # client k from the k-th draw of its base sequence).
        self._rng = client_rng(seed, client_id)
        # Choosing a script by weight draws from pgbench's per-thread state,
        # which dbload does not reproduce: its own, apart, so that the
        # choice never shifts the functions' values. A string seed is hashed
        # with SHA-512 by random.Random: stable across processes and runs.
        self._choose = random.Random(f"dbload:{seed}:{client_id}")
        self._vars: dict[str, Value] = {
            "scale": scale,
            "client_id": client_id,
            "random_seed": seed,
            # hash()'s default seed, the same for every client of a run
            "default_seed": default_seed(seed, clients),
            **workload.defines,  # -D scale=... wins, as in pgbench
        }
        # Variables nothing ever assigns are constant for this stream.
        assigned = {
            name for s in workload.scripts for c in s.commands for name in _assigns(c, workload)
        }
        constants: dict[str, Number] = {
            k: v  # type: ignore[misc]
            for k, v in self._vars.items()
            if k not in assigned and type(v) in (int, float)
        }
        self._workload = workload
        self._scripts = [_compile(workload, i, constants) for i in range(len(workload.scripts))]
        weights = [s.weight for s in workload.scripts]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]
        if self._total <= 0:
            raise WorkloadError("every script has weight 0: nothing would run")
        # one script, or only one with a weight: no draw (and no rng use) needed
        live = [i for i, w in enumerate(weights) if w > 0]
        self._only = live[0] if len(live) == 1 else None
        self._replayable = replayable
        self._saved: tuple[Any, dict[str, Value]] | None = None
        # a Python script's ctx, one per script for the client's whole run
        self._calls: list[tuple[PythonCode, TaskContext] | None] = [
            None
            if (code := s.python) is None
            else (
                code,
                TaskContext(
                    code, seed=seed, client_id=client_id, scale=scale, defines=workload.defines
                ),
            )
            for s in workload.scripts
        ]
        self._saved_random: Any = None
        self._simple = query_mode == "simple"
        self.script = 0

    @property
    def workload(self) -> Workload:
        return self._workload

    @property
    def script_source(self) -> str:
        """The file (or built-in) of the script picked last."""
        return self._workload.scripts[self.script].source

    def _pick(self) -> int:
        if self._only is not None:
            return self._only
        # like pgbench's chooseScript: a uniform draw over the summed weights
        return bisect.bisect_right(self._cumulative, self._choose.randrange(self._total))

    def transaction(self, retry: bool = False) -> Txn:
        """The next transaction, or (``retry``) the last one again from the
        random state and variables it started with (pgbench's retry rule)."""
        if retry:
            if self._saved is None:
                raise RuntimeError("transaction(retry=True) needs a replayable stream")
            state, env = self._saved
            self._rng.setstate(state)
            self._vars.clear()
            self._vars.update(env)
        else:
            only = self._only
            self.script = only if only is not None else self._pick()
            if self._replayable:
                self._saved = (self._rng.getstate(), dict(self._vars))
        call = self._calls[self.script]
        if call is not None:
            return self._call(call, retry)
        return self._run(self.script)

    def _call(self, call: tuple[PythonCode, TaskContext], retry: bool) -> Txn:
        code, ctx = call
        if retry:  # the same draws again, as pgbench's retry rule has it
            ctx.random.setstate(self._saved_random)
        elif self._replayable:
            self._saved_random = ctx.random.getstate()
        yield (CALL, code, ctx)

    def _run(self, script: int) -> Txn:
        rng, env = self._rng, self._vars
        ops = self._scripts[script]
        i, n = 0, len(ops)
        op: _Op = ()
        pipeline = False
        try:
            while i < n:
                op = ops[i]
                kind = op[0]
                i += 1
                if kind is _SET:
                    env[op[1]] = op[2](env, rng)
                elif kind is _SQL:
                    fetch = op[3]
                    if fetch and pipeline:
                        what = "\\aset" if fetch == 2 else "\\gset"
                        raise EvalError(f"{what} is not allowed in pipeline mode")
                    answer = yield (QUERY, op[1], _values(env, op[2]), fetch)
                    if fetch:
                        _store(env, op[4], answer, fetch)
                elif kind is _SLEEP:
                    amount = env[op[1]] if isinstance(op[1], str) else op[1]
                    yield (SLEEP, sleep_seconds(_number(amount), op[2]))
                elif kind is _BRANCH:
                    if not truth(op[1](env, rng)):
                        i = op[2]
                elif kind is _JUMP:
                    i = op[1]
                elif kind is _SHELL:
                    answer = yield (SHELL, _shell_argv(env, op[1], op[3]), op[2] is not None)
                    _shell_result(env, op[2], answer)
                else:  # _PIPE
                    pipeline = self._pipeline(op[1], pipeline)
                    yield (PIPELINE, op[1])
            if pipeline:
                op = ()
                raise EvalError("end of script reached with pipeline open")
        except KeyError as exc:
            self._fail(f"undefined variable :{exc.args[0]}", op)
        except _FAILURES as exc:
            # a runtime failure, e.g. random(:lo, :hi) with lo > hi: pgbench
            # aborts the client; say where, as for a parse error. EvalError is
            # all the evaluator raises; the others would be a dbload bug, still
            # one transaction's failure rather than a crash of the whole run.
            self._fail(str(exc), op)

    def _pipeline(self, kind: str, on: bool) -> bool:
        """Whether a pipeline is open after ``\\{kind}pipeline``; pgbench's checks."""
        if kind == "start":
            if on:
                raise EvalError("\\startpipeline: already in pipeline mode")
            if self._simple:
                raise EvalError(
                    "\\startpipeline: cannot use pipeline mode with the simple query protocol"
                )
            return True
        if not on:
            raise EvalError(f"\\{kind}pipeline: not in pipeline mode")
        return kind != "end"

    def _fail(self, reason: str, op: _Op) -> None:
        where = self._workload.scripts[self.script].source
        line = getattr(op[-1], "line", None) if op else None
        raise ScriptRuntimeError(reason, source=where, line=line) from None

    def next(self) -> Transaction:
        """The next transaction's script and steps, for scripts of \\set,
        \\sleep and SQL whose results are not read (the answers are None).
        Kept for callers that only need the values a stream sends."""
        txn = self.transaction()
        steps: list[Step] = []
        try:
            request = next(txn)
            while True:
                if request[0] is QUERY:
                    if request[3]:
                        raise WorkloadError("next(): \\gset needs an executor")
                    steps.append((request[1], request[2]))
                elif request[0] is SLEEP:
                    steps.append((STEP_SLEEP, (request[1],)))
                else:
                    raise WorkloadError("next(): this script needs an executor")
                request = txn.send(None)
        except StopIteration:
            pass
        return Transaction(self.script, tuple(steps))


def _assigns(command: object, workload: Workload) -> tuple[str, ...]:
    """The variables a command may set at run time (so never constants)."""
    if isinstance(command, SetCommand):
        return (command.name,)
    if isinstance(command, ShellCommand) and command.into:
        return (command.into,)
    if isinstance(command, SqlCommand) and command.gset is not None:
        # \gset's names come from the result's columns: anything may change
        return tuple(k for k in ("scale", "client_id", "random_seed", *workload.defines))
    return ()


def _number(value: object) -> object:
    """A \\sleep amount from a variable: a text value read as pgbench does."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise EvalError(f"\\sleep: invalid sleep time {value!r}") from None
    return value


def _store(env: dict[str, Value], prefix: str, answer: Any, fetch: int) -> None:
    """``\\gset``/``\\aset``: the answer's values into variables, as text."""
    results: list[Rows] = answer if isinstance(answer, list) else [answer]
    if fetch == 1:
        columns, rows = results[-1]
        if len(rows) != 1:
            raise EvalError(f"\\gset: expected one row, got {len(rows)}")
        results = [(columns, rows)]
    for columns, rows in results:
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                name = prefix + column
                if not _NAME.match(name):
                    what = "\\aset" if fetch == 2 else "\\gset"
                    raise EvalError(f"{what}: error storing into variable {name}")
                env[name] = value


def _shell_argv(
    env: dict[str, Value], words: tuple[str, ...], variables: tuple[tuple[int, str], ...]
) -> tuple[str, ...]:
    """The words with each ``:name`` replaced by the variable's text."""
    if not variables:
        return words
    argv = list(words)
    for i, name in variables:
        text = wire_text(env[name])
        argv[i] = "" if text is None else text
    return tuple(argv)


def _shell_result(env: dict[str, Value], into: str | None, answer: tuple[int, str]) -> None:
    """pgbench's rules: ``\\shell`` fails on a non-zero exit status;
    ``\\setshell`` on no output or a first line that is not an integer."""
    returncode, out = answer
    if into is None:
        if returncode != 0:
            raise EvalError(f"\\shell: command failed (exit status {returncode})")
        return
    if not out:
        raise EvalError("\\setshell: could not read result of shell command")
    line = out.splitlines(keepends=True)[0]
    match = _SHELL_INT.match(line)
    if match is None:
        shown = line.rstrip("\n")
        raise EvalError(f'\\setshell: shell command must return an integer (not "{shown}")')
    env[into] = str(int(match.group(1) or 0))
