"""tpcb-like as a service's repository code writes it: SQLAlchemy ORM.

    dbload run -f examples/orm_tpcb.py --driver sqlalchemy --mode threads
    dbload run -f examples/orm_tpcb.py --driver sqlalchemy --mode async

pgbench's tpcb-like transaction (dbload's built-in `tpcb`): an account, a
teller and a branch get the same delta, a history row records it. Rows are
loaded FOR UPDATE, as a read-modify-write in Python must be (else two
clients lose each other's update), in pgbench's order: no deadlocks. The
UPDATEs and the INSERT are flushed by the commit. Each part is a named step,
a per-statement row in the report.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pgbench_models import Account, Branch, History, Teller
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from tpcb_params import draw


def transaction(db: Session, ctx: Any) -> None:
    p = draw(ctx)
    with ctx.step("account"):
        account = db.get_one(Account, p.aid, with_for_update=True)
        account.abalance += p.delta
    with ctx.step("teller"):
        db.get_one(Teller, p.tid, with_for_update=True).tbalance += p.delta
    with ctx.step("branch"):
        db.get_one(Branch, p.bid, with_for_update=True).bbalance += p.delta
    db.add(History(tid=p.tid, bid=p.bid, aid=p.aid, delta=p.delta, mtime=dt.datetime.now()))
    with ctx.step("commit"):
        db.commit()


async def async_transaction(db: AsyncSession, ctx: Any) -> None:
    p = draw(ctx)
    with ctx.step("account"):
        account = await db.get_one(Account, p.aid, with_for_update=True)
        account.abalance += p.delta
    with ctx.step("teller"):
        (await db.get_one(Teller, p.tid, with_for_update=True)).tbalance += p.delta
    with ctx.step("branch"):
        (await db.get_one(Branch, p.bid, with_for_update=True)).bbalance += p.delta
    db.add(History(tid=p.tid, bid=p.bid, aid=p.aid, delta=p.delta, mtime=dt.datetime.now()))
    with ctx.step("commit"):
        await db.commit()
