"""``alembic upgrade head`` on the target database, without an alembic.ini."""

from __future__ import annotations

import logging
from importlib.resources import as_file, files
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from dbload.database.redact import redact
from dbload.errors import DatabaseError

HEAD = "0001"
_LOCK_KEY = 0x6462_6C6F_6164  # "dbload": one advisory lock for schema changes


def migrate(dsn: str) -> None:
    """Create or upgrade dbload's schema (pgbench's tables) on ``dsn``."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # A creator keeps libpq's DSN forms (unix sockets, key=value) intact,
    # which SQLAlchemy's URL parser does not always.
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, connect_timeout=10)
    )
    try:
        with as_file(files("dbload") / "migrations") as location, engine.begin() as conn:
            # Two dbload processes starting on a fresh database would race on
            # CREATE TABLE; the lock (held to commit) makes the second wait.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            config = Config()
            # the option goes through configparser: a '%' in the path must be doubled
            config.set_main_option("script_location", str(location).replace("%", "%%"))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except (SQLAlchemyError, psycopg.Error, CommandError) as exc:
        # CommandError: e.g. the database is at a revision this dbload does not know
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = redact(lines[0] if lines else type(exc).__name__)
        raise DatabaseError(f"migration failed: {reason}") from None
    finally:
        engine.dispose()


def schema_present(conn: psycopg.Connection[Any]) -> bool:
    """All four pgbench tables are visible on the search path."""
    row = conn.execute(
        "SELECT to_regclass('pgbench_accounts') IS NOT NULL AND to_regclass('pgbench_branches')"
        " IS NOT NULL AND to_regclass('pgbench_tellers') IS NOT NULL"
        " AND to_regclass('pgbench_history') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])
