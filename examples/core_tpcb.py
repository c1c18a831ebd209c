"""tpcb-like in SQLAlchemy Core, on the ORM session's connection.

    dbload run -f examples/core_tpcb.py --driver sqlalchemy --mode async

The statements pgbench's tpcb-like sends, built with ``update()`` and
``insert()`` on the models' tables and one ``text()``: what the ORM version
costs over this is the ORM's own work.
"""

from __future__ import annotations

from typing import Any

from pgbench_models import Account, Branch, History, Teller
from sqlalchemy import Insert, Update, func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from tpcb_params import Tpcb, draw

BALANCE = text("SELECT abalance FROM pgbench_accounts WHERE aid = :aid")


def _account(p: Tpcb) -> Update:
    return update(Account).where(Account.aid == p.aid).values(abalance=Account.abalance + p.delta)


def _teller(p: Tpcb) -> Update:
    return update(Teller).where(Teller.tid == p.tid).values(tbalance=Teller.tbalance + p.delta)


def _branch(p: Tpcb) -> Update:
    return update(Branch).where(Branch.bid == p.bid).values(bbalance=Branch.bbalance + p.delta)


def _history(p: Tpcb) -> Insert:
    now = func.current_timestamp()
    return insert(History).values(tid=p.tid, bid=p.bid, aid=p.aid, delta=p.delta, mtime=now)


def transaction(db: Session, ctx: Any) -> None:
    p = draw(ctx)
    conn = db.connection()
    with ctx.step("account"):
        conn.execute(_account(p))
        conn.execute(BALANCE, {"aid": p.aid}).scalar_one()
    with ctx.step("teller"):
        conn.execute(_teller(p))
    with ctx.step("branch"):
        conn.execute(_branch(p))
    with ctx.step("history"):
        conn.execute(_history(p))
    with ctx.step("commit"):
        db.commit()


async def async_transaction(db: AsyncSession, ctx: Any) -> None:
    p = draw(ctx)
    conn = await db.connection()
    with ctx.step("account"):
        await conn.execute(_account(p))
        (await conn.execute(BALANCE, {"aid": p.aid})).scalar_one()
    with ctx.step("teller"):
        await conn.execute(_teller(p))
    with ctx.step("branch"):
        await conn.execute(_branch(p))
    with ctx.step("history"):
        await conn.execute(_history(p))
    with ctx.step("commit"):
        await db.commit()
