"""pgbench's demo data set, loaded with COPY: the same rows as ``pgbench -i -s N``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from dbload.errors import DatabaseError, UsageError
from dbload.schema.migrate import migrate, schema_present

ACCOUNTS_PER_SCALE = 100_000
TELLERS_PER_SCALE = 10
TABLES = ("pgbench_branches", "pgbench_tellers", "pgbench_accounts", "pgbench_history")
_CHUNK = 50_000  # rows per COPY write: big enough to amortise, small enough to stream


@dataclass(frozen=True, slots=True)
class SeedResult:
    scale: int
    rows: int
    skipped: bool
    seconds: float


def current_scale(dsn: str) -> int | None:
    """The scale loaded now, or None when the schema is missing or the data
    is not a complete pgbench data set."""
    with psycopg.connect(dsn) as conn:
        return _scale(conn)


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


def _rows(scale: int, start: int, stop: int) -> Iterator[str]:
    """Accounts ``start..stop-1`` as COPY text (filler empty, as pgbench)."""
    for first in range(start, stop, _CHUNK):
        last = min(first + _CHUNK, stop)
        yield "".join(
            f"{aid}\t{(aid - 1) // ACCOUNTS_PER_SCALE + 1}\t0\t\n" for aid in range(first, last)
        )


def seed(dsn: str, scale: int, *, force: bool = False) -> SeedResult:
    """Load scale ``scale``; a no-op when exactly that scale is already loaded."""
    if scale < 1:
        raise UsageError(f"--scale must be at least 1, got {scale}")
    started = time.perf_counter()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if not force and _scale(conn) == scale:
                return SeedResult(scale, 0, True, time.perf_counter() - started)
            rows = _load(conn, scale)
            conn.execute("VACUUM ANALYZE " + ", ".join(TABLES))
    except psycopg.Error as exc:
        raise DatabaseError(f"seeding failed: {str(exc).strip().splitlines()[0]}") from None
    return SeedResult(scale, rows, False, round(time.perf_counter() - started, 3))


def _load(conn: psycopg.Connection[Any], scale: int) -> int:
    accounts = scale * ACCOUNTS_PER_SCALE
    tellers = scale * TELLERS_PER_SCALE
    with conn.transaction():
        # TRUNCATE in the same transaction lets COPY FREEZE skip later vacuuming,
        # as pgbench -i does.
        conn.execute(
            "TRUNCATE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY pgbench_branches (bid, bbalance) FROM STDIN WITH (FREEZE)") as copy:
                copy.write("".join(f"{b}\t0\n" for b in range(1, scale + 1)))
            with cur.copy(
                "COPY pgbench_tellers (tid, bid, tbalance) FROM STDIN WITH (FREEZE)"
            ) as copy:
                copy.write(
                    "".join(
                        f"{t}\t{(t - 1) // TELLERS_PER_SCALE + 1}\t0\n"
                        for t in range(1, tellers + 1)
                    )
                )
            with cur.copy("COPY pgbench_accounts FROM STDIN WITH (FREEZE)") as copy:
                for chunk in _rows(scale, 1, accounts + 1):
                    copy.write(chunk)
    return accounts + tellers + scale


def ensure_ready(dsn: str) -> int:
    """Migrate when the schema is missing and seed scale 1 when it is empty;
    returns the scale in use."""
    with psycopg.connect(dsn) as conn:
        present = schema_present(conn)
        scale = _scale(conn) if present else None
    if not present:
        migrate(dsn)
    if scale is None:
        seed(dsn, 1, force=True)
        scale = 1
    return scale
