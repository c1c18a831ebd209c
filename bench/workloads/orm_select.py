"""The select point lookup as ORM code: ``session.get()`` of an account.

    dbload run -f bench/workloads/orm_select.py --mode async --driver sqlalchemy

The entity maps only the two columns the lookup needs, so the statement is
pgbench's ``SELECT ... FROM pgbench_accounts WHERE aid = $1`` (with ``aid``
beside ``abalance``: the ORM loads an entity by its key) and the difference
from the Core ``text()`` row is the ORM's own work: the session, the
identity map, the instance. A new session per transaction, as a service's
request has, so every ``get`` reaches the server.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "pgbench_accounts"

    aid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    abalance: Mapped[int] = mapped_column(nullable=True)


def transaction(db: Session, ctx: Any) -> None:
    db.get_one(Account, ctx.random.randint(1, 100000 * ctx.scale))


async def async_transaction(db: AsyncSession, ctx: Any) -> None:
    await db.get_one(Account, ctx.random.randint(1, 100000 * ctx.scale))
