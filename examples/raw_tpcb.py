"""tpcb-like on the driver's own connection, no SQLAlchemy.

    dbload run -f examples/raw_tpcb.py --mode threads                 # psycopg
    dbload run -f examples/raw_tpcb.py --mode async                   # asyncpg
    dbload run -f examples/raw_tpcb.py --mode async --driver psycopg  # AsyncConnection

pgbench's tpcb-like statements, one SQL text for all three: asyncpg takes
``$n`` placeholders, and so do psycopg's raw cursors.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import psycopg
from tpcb_params import draw

ACCOUNT = "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2"
BALANCE = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
TELLER = "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2"
BRANCH = "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2"
HISTORY = (
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)"
    " VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)"
)


def transaction(db: psycopg.Connection[Any], ctx: Any) -> None:
    p = draw(ctx)
    with db.transaction(), psycopg.RawCursor(db) as cur:
        with ctx.step("account"):
            cur.execute(ACCOUNT, (p.delta, p.aid))
            cur.execute(BALANCE, (p.aid,)).fetchone()
        with ctx.step("teller"):
            cur.execute(TELLER, (p.delta, p.tid))
        with ctx.step("branch"):
            cur.execute(BRANCH, (p.delta, p.bid))
        with ctx.step("history"):
            cur.execute(HISTORY, (p.tid, p.bid, p.aid, p.delta))


async def async_transaction(
    db: asyncpg.Connection | psycopg.AsyncConnection[Any], ctx: Any
) -> None:
    if isinstance(db, psycopg.AsyncConnection):
        await _psycopg_async(db, ctx)
        return
    p = draw(ctx)
    async with db.transaction():
        with ctx.step("account"):
            await db.execute(ACCOUNT, p.delta, p.aid)
            await db.fetchval(BALANCE, p.aid)
        with ctx.step("teller"):
            await db.execute(TELLER, p.delta, p.tid)
        with ctx.step("branch"):
            await db.execute(BRANCH, p.delta, p.bid)
        with ctx.step("history"):
            await db.execute(HISTORY, p.tid, p.bid, p.aid, p.delta)


async def _psycopg_async(db: psycopg.AsyncConnection[Any], ctx: Any) -> None:
    p = draw(ctx)
    async with db.transaction(), psycopg.AsyncRawCursor(db) as cur:
        with ctx.step("account"):
            await cur.execute(ACCOUNT, (p.delta, p.aid))
            await (await cur.execute(BALANCE, (p.aid,))).fetchone()
        with ctx.step("teller"):
            await cur.execute(TELLER, (p.delta, p.tid))
        with ctx.step("branch"):
            await cur.execute(BRANCH, (p.delta, p.bid))
        with ctx.step("history"):
            await cur.execute(HISTORY, (p.tid, p.bid, p.aid, p.delta))
