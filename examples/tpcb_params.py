"""pgbench tpcb-like's parameters, drawn from the client's seeded ``ctx.random``."""

from __future__ import annotations

from typing import Any, NamedTuple


class Tpcb(NamedTuple):
    aid: int
    bid: int
    tid: int
    delta: int


def draw(ctx: Any) -> Tpcb:
    rnd, scale = ctx.random, ctx.scale
    return Tpcb(
        aid=rnd.randint(1, 100000 * scale),
        bid=rnd.randint(1, scale),
        tid=rnd.randint(1, 10 * scale),
        delta=rnd.randint(-5000, 5000),
    )
