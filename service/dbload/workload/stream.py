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

from dbload.workload.expr import Number, compile_expression
from dbload.workload.model import SLEEP, Step, Transaction, Value, Workload
from dbload.workload.parser import SetCommand, SleepCommand, SqlCommand

# One operation of a compiled script, as a tuple for a fast dispatch loop:
# (0, name, evaluate) | (1, amount, seconds_per_unit) | (2, statement, params)
_Op = tuple[int, object, object]


def _compile(workload: Workload, script: int, constants: Mapping[str, Number]) -> tuple[_Op, ...]:
    ops: list[_Op] = []
    for command in workload.scripts[script].commands:
        if isinstance(command, SetCommand):
            evaluate = compile_expression(command.expr.text, constants).evaluate
            ops.append((0, command.name, evaluate))
        elif isinstance(command, SleepCommand):
            ops.append((1, command.amount, command.seconds_per_unit))
        elif isinstance(command, SqlCommand):
            ops.append((2, command.statement, workload.statements[command.statement].params))
    return tuple(ops)


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
            **workload.defines,
        }
        # Variables no \set ever assigns are constant for this stream.
        assigned = {
            c.name for s in workload.scripts for c in s.commands if isinstance(c, SetCommand)
        }
        constants = {
            k: v for k, v in self._vars.items() if k not in assigned and not isinstance(v, str)
        }
        self._scripts = [_compile(workload, i, constants) for i in range(len(workload.scripts))]
        weights = [s.weight for s in workload.scripts]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def _pick(self) -> int:
        if len(self._scripts) == 1:
            return 0
        return bisect.bisect_right(self._cumulative, self._rng.randrange(self._total))

    def next(self) -> Transaction:
        script = self._pick()
        rng, env = self._rng, self._vars
        steps: list[Step] = []
        for kind, a, b in self._scripts[script]:
            if kind == 0:
                env[a] = b(env, rng)  # type: ignore[index, operator]
            elif kind == 2:
                steps.append((a, tuple([env[p] for p in b])))  # type: ignore[arg-type, attr-defined]
            else:
                amount = env[a] if isinstance(a, str) else a
                steps.append((SLEEP, (float(amount) * b,)))  # type: ignore[arg-type, operator]
        return Transaction(script, tuple(steps))
