"""Seeded parameter streams: what each worker sends, decided before it is sent.

A worker's stream depends only on the workload, the seed and the worker's
client id, never on the mode or on timing, so a given ``--seed`` and
concurrency send the same parameters in every mode. Like pgbench, variables
persist across a client's transactions.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping

from dbload.errors import WorkloadError
from dbload.workload.expr import EvalError, ExprError, Number, compile_expression
from dbload.workload.model import SLEEP, ScriptRuntimeError, Step, Transaction, Value, Workload
from dbload.workload.parser import SetCommand, SleepCommand, SqlCommand, sleep_seconds

# One operation of a compiled script, as a tuple for a fast dispatch loop:
# (0, name, evaluate, command) | (1, amount, seconds_per_unit, command)
# | (2, statement, params, command). The command is only read on failure.
_Op = tuple[int, object, object, object]
_SET, _SLEEP, _SQL = 0, 1, 2


def _compile(workload: Workload, script: int, constants: Mapping[str, Number]) -> tuple[_Op, ...]:
    ops: list[_Op] = []
    source = workload.scripts[script].source
    for command in workload.scripts[script].commands:
        if isinstance(command, SetCommand):
            try:
                # again, now that :scale and -D are known: constants fold away
                evaluate = compile_expression(command.expr.text, constants).evaluate
            except ExprError as exc:  # e.g. random(1, 0 * :scale): an empty range
                message = f"\\set {command.name}: {exc}"
                raise WorkloadError(message, source=source, line=command.line) from None
            ops.append((_SET, command.name, evaluate, command))
        elif isinstance(command, SleepCommand):
            ops.append((_SLEEP, command.amount, command.seconds_per_unit, command))
        elif isinstance(command, SqlCommand):
            params = workload.statements[command.statement].params
            ops.append((_SQL, command.statement, params, command))
    return tuple(ops)


def _text(value: Value) -> str:
    """A bind value as pgbench sends it, text for the server to type: every
    driver then binds it alike (asyncpg would encode a number by the
    statement's types, and a date given as -D text not at all)."""
    if type(value) is int:  # the common case first (not a bool: a subclass)
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.15g}"  # pgbench: "%.*g" with DBL_DIG (15)


class ParameterStream:
    """The transactions one worker (``client_id``) runs, in order."""

    def __init__(self, workload: Workload, *, seed: int, client_id: int, scale: int) -> None:
        # A string seed is hashed with SHA-512 by random.Random: stable across
        # processes and Python runs, unlike hash().
        self._rng = random.Random(f"dbload:{seed}:{client_id}")
        self._vars: dict[str, Value] = {
            "scale": scale,
            "client_id": client_id,
            "random_seed": seed,
            **workload.defines,  # -D scale=... wins, as in pgbench
        }
        # Variables no \set ever assigns are constant for this stream.
        assigned = {
            c.name for s in workload.scripts for c in s.commands if isinstance(c, SetCommand)
        }
        constants = {
            k: v for k, v in self._vars.items() if k not in assigned and not isinstance(v, str)
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

    def _pick(self) -> int:
        if self._only is not None:
            return self._only
        # like pgbench's chooseScript: a uniform draw over the summed weights
        return bisect.bisect_right(self._cumulative, self._rng.randrange(self._total))

    def next(self) -> Transaction:
        """The next transaction: its script and its steps, values computed."""
        script = self._pick()
        rng, env = self._rng, self._vars
        steps: list[Step] = []
        try:
            for kind, a, b, _command in self._scripts[script]:
                if kind == _SET:
                    env[a] = b(env, rng)  # type: ignore[index, operator]
                elif kind == _SQL:
                    steps.append((a, tuple([_text(env[p]) for p in b])))  # type: ignore[arg-type, attr-defined]
                else:
                    amount = env[a] if isinstance(a, str) else a
                    steps.append((SLEEP, (sleep_seconds(amount, b),)))  # type: ignore[arg-type]
        except (EvalError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            # a runtime failure, e.g. random(:lo, :hi) with lo > hi: pgbench
            # aborts the client; say where, as for a parse error. EvalError is
            # all the evaluator raises; the others would be a dbload bug, still
            # one transaction's failure rather than a crash of the whole run.
            where = self._workload.scripts[script].source
            line = getattr(_command, "line", None)
            raise ScriptRuntimeError(str(exc), source=where, line=line) from None
        return Transaction(script, tuple(steps))
