"""SQLAlchemy ORM models of pgbench's four tables, as `pgbench -i` and
`dbload seed` create them (service/dbload/migrations/versions/0001).

pgbench_history has no primary key in the database; the ORM needs one to
track a row, so the mapper names four of its columns (rows are only added).
The balances are nullable in the tables, as pgbench makes them, but typed
``int``: the seeded data never holds NULL, and ``+=`` stays simple.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CHAR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# pgbench's tables are heap tables filled to the brim, like pgbench -i makes them
FILLED = {"postgresql_with": {"fillfactor": 100}}
HISTORY_KEY: dict[str, Any] = {"primary_key": ["tid", "bid", "aid", "mtime"]}


class Base(DeclarativeBase):
    pass


class Branch(Base):
    __tablename__ = "pgbench_branches"
    __table_args__ = FILLED

    bid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    bbalance: Mapped[int] = mapped_column(nullable=True)
    filler: Mapped[str | None] = mapped_column(CHAR(88))


class Teller(Base):
    __tablename__ = "pgbench_tellers"
    __table_args__ = FILLED

    tid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    bid: Mapped[int | None]
    tbalance: Mapped[int] = mapped_column(nullable=True)
    filler: Mapped[str | None] = mapped_column(CHAR(84))


class Account(Base):
    __tablename__ = "pgbench_accounts"
    __table_args__ = FILLED

    aid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    bid: Mapped[int | None]
    abalance: Mapped[int] = mapped_column(nullable=True)
    filler: Mapped[str | None] = mapped_column(CHAR(84))


class History(Base):
    __tablename__ = "pgbench_history"
    __mapper_args__ = HISTORY_KEY

    tid: Mapped[int | None]
    bid: Mapped[int | None]
    aid: Mapped[int | None]
    delta: Mapped[int | None]
    mtime: Mapped[dt.datetime | None]
    filler: Mapped[str | None] = mapped_column(CHAR(22))
