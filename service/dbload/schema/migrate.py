"""``alembic upgrade head`` on the target database, without an alembic.ini."""

from __future__ import annotations

import logging
from importlib.resources import as_file, files
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from dbload.errors import DatabaseError

HEAD = "0001"


def migrate(dsn: str) -> None:
    """Create or upgrade dbload's schema (pgbench's tables) on ``dsn``."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # A creator keeps libpq's DSN forms (unix sockets, key=value) intact,
    # which SQLAlchemy's URL parser does not always.
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))
    try:
        with as_file(files("dbload") / "migrations") as location, engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(location))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except (SQLAlchemyError, psycopg.Error) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(f"migration failed: {reason}") from None
    finally:
        engine.dispose()


def schema_present(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT to_regclass('pgbench_accounts') IS NOT NULL AND to_regclass('pgbench_branches')"
        " IS NOT NULL AND to_regclass('pgbench_tellers') IS NOT NULL"
        " AND to_regclass('pgbench_history') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])
