"""pgbench's demo data set, loaded with COPY: the same rows as ``pgbench -i -s N``.

branches: (bid, bbalance 0, filler NULL); tellers: (tid, bid = (tid-1)//10+1,
tbalance 0, filler NULL); accounts: (aid, bid = (aid-1)//100000+1, abalance 0,
filler '' blank-padded); history: empty. Nothing here prints: the CLI does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbload.database.redact import redact
from dbload.errors import DatabaseError, UsageError
from dbload.schema.migrate import HEAD, migrate, schema_present

ACCOUNTS_PER_SCALE = 100_000
TELLERS_PER_SCALE = 10
MAX_SCALE = 19_999  # pgbench switches aid to bigint at 20,000; this schema has int
TABLES = ("pgbench_branches", "pgbench_tellers", "pgbench_accounts", "pgbench_history")
_CHUNK = 50_000  # accounts per COPY write (~0.6 MB): amortises calls, keeps memory flat
CONNECT_TIMEOUT_S = 10
# Migration 0001's columns, in order (the accounts COPY names none), as
# "name type". A database that `pgbench -i` made has the same ones.
OWN_COLUMNS = {
    "pgbench_branches": ("bid integer", "bbalance integer", "filler character(88)"),
    "pgbench_tellers": ("tid integer", "bid integer", "tbalance integer", "filler character(84)"),
    "pgbench_accounts": ("aid integer", "bid integer", "abalance integer", "filler character(84)"),
    "pgbench_history": (
        "tid integer",
        "bid integer",
        "aid integer",
        "delta integer",
        "mtime timestamp without time zone",
        "filler character(22)",
    ),
}
# pgbench -i makes aid bigint from scale 20,000 on: still pgbench's table.
_PGBENCH_BIGINT = {"aid bigint": "aid integer"}
# A pgbench table named in SQL: bare, quoted or schema-qualified, in any case.
_TABLE_NAME = re.compile(
    r"(?<![\w$])(pgbench_(?:accounts|branches|tellers|history))(?![\w$])", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class SeedResult:
    scale: int
    rows: int  # rows loaded (0 when skipped)
    skipped: bool  # True when exactly this scale was already loaded
    seconds: float


def current_scale(dsn: str) -> int | None:
    """The scale loaded now; None when the schema is missing, the tables are
    empty or they do not hold a complete pgbench data set."""
    try:
        with _connect(dsn) as conn:
            return _scale(conn)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the data set: {_reason(exc)}") from None


def seed(dsn: str, scale: int, *, force: bool = False) -> SeedResult:
    """Load scale ``scale``; a no-op when exactly that scale is already loaded
    (unless ``force``). Creates the schema first when it is missing. Refuses
    pgbench tables with other columns than dbload's (someone else's), unless
    ``force``: then they are dropped and created anew."""
    if not 1 <= scale <= MAX_SCALE:
        raise UsageError(f"--scale must be between 1 and {MAX_SCALE}, got {scale}")
    started = time.perf_counter()
    try:
        with _connect(dsn) as conn:
            if foreign := foreign_tables(conn):
                if not force:
                    raise DatabaseError(foreign_message(foreign))
                _drop(conn, list(foreign))
            if foreign or not schema_present(conn):
                migrate(dsn)
            elif not force and _scale(conn) == scale:
                return SeedResult(scale, 0, True, round(time.perf_counter() - started, 3))
            rows = _load(conn, scale)
            # As pgbench -i: fresh statistics, and the visibility map set so that
            # index-only scans work from the first query.
            conn.execute("VACUUM ANALYZE " + ", ".join(TABLES))
    except psycopg.Error as exc:
        raise DatabaseError(f"seeding failed: {_reason(exc)}") from None
    return SeedResult(scale, rows, False, round(time.perf_counter() - started, 3))


@dataclass(frozen=True, slots=True)
class Readiness:
    """What a workload found in the database, and what dbload did to it."""

    scale: int  # the data set's, else 1 (pgbench's :scale for custom scripts)
    tables: tuple[str, ...]  # the pgbench tables the workload names; () for none
    created: bool  # dbload created pgbench's tables (alembic upgrade)
    loaded: SeedResult | None  # dbload loaded the data set into them

    @property
    def message(self) -> str | None:
        """One line saying what dbload changed in the database; None: nothing."""
        why = f"the workload uses {', '.join(self.tables)}"
        if self.created and self.loaded:
            done = f"created pgbench's tables and loaded scale {self.loaded.scale}"
        elif self.loaded:
            done = f"loaded scale {self.loaded.scale} into pgbench's empty tables"
        elif self.created:
            done = "created pgbench's tables"
        else:
            return None
        rows = f": {self.loaded.rows:,} rows in {self.loaded.seconds:.1f} s" if self.loaded else ""
        return f"{done} ({why}; --no-init refuses){rows}"


def pgbench_tables(statements: Iterable[str]) -> tuple[str, ...]:
    """The pgbench tables the SQL ``statements`` name, sorted, lower case.

    Matched by name, not parsed: a name in a comment or a string literal
    counts too, which at worst prepares tables the workload did not need.
    """
    found = {m.lower() for text in statements for m in _TABLE_NAME.findall(text)}
    return tuple(sorted(found))


def prepare_data(dsn: str, tables: Iterable[str] | None = None, *, init: bool = True) -> Readiness:
    """Make sure the pgbench tables a workload names exist and hold a data set.

    ``tables``: what the workload names (:func:`pgbench_tables`); None means
    all of pgbench's, as ``dbload seed`` makes them; none at all leaves the
    database untouched, for a workload on the user's own tables. Missing
    tables are created and empty ones seeded at scale 1 unless ``init`` is
    False: then they are an error naming the fix. Never overwrites data it
    does not recognise as a complete data set.
    """
    used = TABLES if tables is None else tuple(tables)
    try:
        with _connect(dsn) as conn:
            present = schema_present(conn)
            scale = _scale(conn) if present else None
            if not used:
                return Readiness(scale or 1, (), False, None)
            if foreign := foreign_tables(conn):
                raise DatabaseError(foreign_message(foreign))
            empty = not present or _empty(conn)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the data set: {_reason(exc)}") from None
    if scale is not None:
        return Readiness(scale, used, False, None)
    if present and not empty:
        raise DatabaseError(
            "the pgbench tables hold an incomplete data set; reload it with"
            " `dbload seed --scale N --force`"
        )
    if not init:
        missing = "has no pgbench tables" if not present else "has empty pgbench tables"
        raise DatabaseError(
            f"the workload uses {', '.join(used)}, but the database {missing} and --no-init"
            " forbids loading them; load them with `dbload seed` (or pgbench -i)"
        )
    if not present:
        migrate(dsn)
    return Readiness(1, used, not present, seed(dsn, 1, force=True))


def ensure_ready(dsn: str) -> int:
    """Migrate when the schema is missing and seed scale 1 when the tables are
    empty; returns the scale in use (see :func:`prepare_data`)."""
    return prepare_data(dsn).scale


def foreign_tables(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """The pgbench tables that exist with other columns than dbload's, each
    with the columns it has ("name type"). Such a table is someone else's:
    seeding would overwrite it and a workload would fail on it."""
    rows = conn.execute(
        "SELECT t.name, a.attname || ' ' || format_type(a.atttypid, a.atttypmod)"
        " FROM unnest(%s::text[]) AS t(name)"
        " LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(t.name)"
        "  AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE to_regclass(t.name) IS NOT NULL"
        " ORDER BY t.name, a.attnum",
        [list(OWN_COLUMNS)],
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        columns = found.setdefault(table, [])
        if column is not None:  # NULL: a table with no columns at all
            columns.append(_PGBENCH_BIGINT.get(column, column))
    return {t: cols for t, cols in found.items() if tuple(cols) != OWN_COLUMNS[t]}


def foreign_message(foreign: dict[str, list[str]]) -> str:
    """One line naming each foreign table, its columns and the way out."""
    described = ", ".join(
        f"{table} exists with different columns ({_columns(cols, OWN_COLUMNS[table])})"
        for table, cols in foreign.items()
    )
    them = "it" if len(foreign) == 1 else "them"
    return (
        f"{described}; not dbload's schema: use `dbload seed --force` to drop and recreate {them}"
    )


def _columns(found: list[str], own: tuple[str, ...]) -> str:
    """Names, unless only the types differ: then names and types."""
    names = [c.split(" ", 1)[0] for c in found]
    return ", ".join(found if names == [c.split(" ", 1)[0] for c in own] else names)


def _drop(conn: psycopg.Connection[Any], tables: list[str]) -> None:
    """Drop the foreign tables (--force) so that migrate creates dbload's."""
    with conn.transaction():
        conn.execute(
            sql.SQL("DROP TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
        )
        # At head, migrate would not run 0001 again. Forget only our own
        # revision (an application's alembic_version is not ours): 0001's
        # CREATE TABLE IF NOT EXISTS then re-creates just the dropped tables.
        if conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone() == (True,):
            conn.execute("DELETE FROM alembic_version WHERE version_num = %s", [HEAD])


def _connect(dsn: str) -> psycopg.Connection[Any]:
    # autocommit: VACUUM cannot run in a transaction; _load opens its own.
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def _reason(exc: psycopg.Error) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0] if lines else type(exc).__name__)


def _scale(conn: psycopg.Connection[Any]) -> int | None:
    if not schema_present(conn):
        return None
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pgbench_branches),"
        " (SELECT count(*) FROM pgbench_tellers),"
        " (SELECT count(*) FROM pgbench_accounts)"
    ).fetchone()
    assert row is not None
    branches, tellers, accounts = (int(v) for v in row)
    if branches == 0 or tellers != branches * TELLERS_PER_SCALE:
        return None
    if accounts != branches * ACCOUNTS_PER_SCALE:
        return None
    return branches


def _empty(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT FROM pgbench_branches)"
        " AND NOT EXISTS (SELECT FROM pgbench_tellers)"
        " AND NOT EXISTS (SELECT FROM pgbench_accounts)"
    ).fetchone()
    return bool(row and row[0])


def _account_rows(accounts: int) -> Iterator[str]:
    """Accounts 1..accounts as COPY text: ``aid, bid, 0, ''`` (an empty, not
    NULL, filler, exactly as pgbench -i writes it)."""
    for first in range(1, accounts + 1, _CHUNK):
        last = min(first + _CHUNK, accounts + 1)
        # Chunks start at 1 + k*_CHUNK and 100,000 is a multiple of _CHUNK, so
        # a chunk never straddles two branches: the row tail is one constant
        # string, and joining it is ~5x faster than formatting every row.
        tail = f"\t{(first - 1) // ACCOUNTS_PER_SCALE + 1}\t0\t\n"
        yield tail.join(map(str, range(first, last))) + tail


def _load(conn: psycopg.Connection[Any], scale: int) -> int:
    accounts = scale * ACCOUNTS_PER_SCALE
    tellers = scale * TELLERS_PER_SCALE
    # One transaction, as pgbench -i: TRUNCATE in it lets COPY FREEZE write
    # already-frozen rows (no later anti-wraparound rewrite), and a failure
    # leaves the previous data set intact.
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("TRUNCATE " + ", ".join(TABLES))
        pkey = _droppable_accounts_pkey(cur)
        if pkey:  # building the index once after the load is ~25% faster
            cur.execute(sql.SQL("ALTER TABLE pgbench_accounts DROP CONSTRAINT {}").format(pkey))
        with cur.copy("COPY pgbench_branches (bid, bbalance) FROM STDIN WITH (FREEZE)") as copy:
            copy.write("".join(f"{b}\t0\n" for b in range(1, scale + 1)))
        with cur.copy("COPY pgbench_tellers (tid, bid, tbalance) FROM STDIN WITH (FREEZE)") as copy:
            copy.write(
                "".join(
                    f"{t}\t{(t - 1) // TELLERS_PER_SCALE + 1}\t0\n" for t in range(1, tellers + 1)
                )
            )
        with cur.copy("COPY pgbench_accounts FROM STDIN WITH (FREEZE)") as copy:
            for chunk in _account_rows(accounts):
                copy.write(chunk)
        if pkey:
            cur.execute(
                sql.SQL("ALTER TABLE pgbench_accounts ADD CONSTRAINT {} PRIMARY KEY (aid)").format(
                    pkey
                )
            )
    return accounts + tellers + scale


def _droppable_accounts_pkey(cur: psycopg.Cursor[Any]) -> sql.Identifier | None:
    """The accounts primary key, when we own the table and no foreign key
    depends on the key (pgbench -i --foreign-keys adds one from history): only
    then may the load drop it. Otherwise COPY maintains the index as it goes."""
    row = cur.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
        " WHERE c.conrelid = 'pgbench_accounts'::regclass AND c.contype = 'p'"
        " AND pg_has_role(t.relowner, 'USAGE')"
        " AND NOT EXISTS (SELECT FROM pg_constraint f"
        "                 WHERE f.contype = 'f' AND f.confrelid = 'pgbench_accounts'::regclass)"
    ).fetchone()
    return sql.Identifier(str(row[0])) if row else None
