"""What the server did during a run: pg_stat_database and pg_stat_statements deltas.

Driver-free: :func:`dbload.database.server_stats.snapshot` reads the
cumulative counters before and after a run into a :class:`ServerSnapshot`;
:func:`delta` subtracts them into the :class:`ServerStats` that results
carry and reports render. A part the server could not tell (no
pg_stat_statements, no rights, a dropped connection) is ``None`` or empty,
with the reason in ``*_skipped``.

The drivers' own housekeeping (asyncpg's reset on release, psycopg's
statement checks, asyncpg's type introspection) is left out of the top
statements, and dbload's own snapshot transactions out of the commits, so
that what remains is the workload's (and other sessions') work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "conflicts",
    "temp_files",
    "temp_bytes",
    "deadlocks",
)

StatementKey = tuple[int, int, int, bool]  # userid, dbid, queryid, toplevel

# Statements the drivers and dbload's connection setup send on their own, as
# pg_stat_statements normalizes them: asyncpg's Connection.reset() on release
# (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL), DISCARD ALL of
# poolers, psycopg's prepare check (DEALLOCATE), the session setup of the
# modes (SET client_connection_check_interval), and the drivers' type
# introspection (asyncpg: a recursive CTE "typeinfo_tree" and its lookup by
# name; psycopg: TypeInfo.fetch).
HOUSEKEEPING = re.compile(
    r"""\s*(?:
        SELECT\s+pg_advisory_unlock_all\(\)
      | CLOSE\s+ALL | UNLISTEN\s+\* | RESET\s+ALL | DISCARD\s+ALL
      | DEALLOCATE\b
      | SET\s+client_connection_check_interval\b
      | .*\btypeinfo_tree\b
      | SELECT\s+t\.oid,\s*t\.typelem\s+AS\s+elemtype\b
      | SELECT\s+(?:t\.)?typname\s+AS\s+name,\s*(?:t\.)?oid(?:\s+AS\s+oid)?,
        \s*(?:t\.)?typarray\s+AS\s+array_oid\b
    )""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def is_housekeeping(query: str) -> bool:
    """Whether pg_stat_statements' ``query`` is a driver's own, not the workload's."""
    return HOUSEKEEPING.match(query) is not None


@dataclass(frozen=True, slots=True)
class ServerStatement:
    """One pg_stat_statements entry's change over the run."""

    query: str  # normalized text ($1 for constants)
    calls: int
    total_ms: float  # execution time (planning excluded)
    mean_ms: float
    rows: int


@dataclass(frozen=True, slots=True)
class DatabaseDelta:
    """pg_stat_database counters of the run's database, after minus before."""

    xact_commit: int
    xact_rollback: int
    blks_read: int
    blks_hit: int
    cache_hit_ratio: float | None  # blks_hit / (blks_hit + blks_read); None: no block read
    tup_returned: int
    tup_fetched: int
    tup_inserted: int
    tup_updated: int
    tup_deleted: int
    conflicts: int
    temp_files: int
    temp_bytes: int
    deadlocks: int


@dataclass(frozen=True, slots=True)
class OtherSessions:
    """Other client backends of the server seen active (pg_stat_activity),
    sampled over the measured window."""

    samples: int
    busy_samples: int  # samples with at least one other session active
    max_active: int  # the most other sessions active in one sample

    @property
    def busy_share(self) -> float:
        return self.busy_samples / self.samples if self.samples else 0.0


# Over which window the server's counters were taken (ServerStats.window).
RUN = "run"  # from before the workers connected: their setup is included
MEASURED = "measured"  # from the end of the warm-up


@dataclass(frozen=True, slots=True)
class ServerStats:
    """The server-side view of a run; a part missing says why in ``*_skipped``."""

    database: DatabaseDelta | None
    statements: tuple[ServerStatement, ...]  # top by total time, largest first
    statements_skipped: str | None = None
    database_skipped: str | None = None
    window: str = RUN  # RUN or MEASURED
    others: OtherSessions | None = None  # None: not sampled


@dataclass(frozen=True, slots=True)
class StatementCounters:
    """One pg_stat_statements entry's cumulative counters."""

    query: str
    calls: int
    total_ms: float
    rows: int


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """The cumulative counters at one moment."""

    database: str = ""
    pids: frozenset[int] = frozenset()  # client backends of the database then
    counters: Mapping[str, int] | None = None
    counters_reset: str | None = None  # pg_stat_database.stats_reset
    database_skipped: str | None = None
    statements: Mapping[StatementKey, StatementCounters] | None = None
    statements_reset: str | None = None  # pg_stat_statements_info.stats_reset
    statements_skipped: str | None = None
    # the backend that read it, and how many transactions that session had
    # committed when it read: between two reads of one session they are
    # dbload's own, left out of the commits
    reader_pid: int | None = None
    own_transactions: int = 0


def delta(
    before: ServerSnapshot,
    after: ServerSnapshot,
    top: int = 10,
    *,
    window: str = RUN,
    others: OtherSessions | None = None,
) -> ServerStats:
    """What changed from ``before`` to ``after``: the database's counters and
    the ``top`` statements by total execution time, housekeeping left out."""
    return ServerStats(
        database=_database_delta(before, after),
        database_skipped=_database_skipped(before, after),
        statements=_top_statements(before, after, top),
        statements_skipped=before.statements_skipped or after.statements_skipped,
        window=window,
        others=others,
    )


def _database_skipped(before: ServerSnapshot, after: ServerSnapshot) -> str | None:
    why = before.database_skipped or after.database_skipped
    if why is None and before.counters_reset != after.counters_reset:
        why = "pg_stat_database was reset during the run"
    return why


def _database_delta(before: ServerSnapshot, after: ServerSnapshot) -> DatabaseDelta | None:
    if before.counters is None or after.counters is None:
        return None
    if before.counters_reset != after.counters_reset:
        return None
    d = {key: max(0, after.counters[key] - before.counters[key]) for key in COUNTERS}
    if before.reader_pid is not None and before.reader_pid == after.reader_pid:
        own = after.own_transactions - before.own_transactions
        d["xact_commit"] = max(0, d["xact_commit"] - own)
    touched = d["blks_hit"] + d["blks_read"]
    return DatabaseDelta(cache_hit_ratio=d["blks_hit"] / touched if touched else None, **d)


def _top_statements(
    before: ServerSnapshot, after: ServerSnapshot, top: int
) -> tuple[ServerStatement, ...]:
    if before.statements is None or after.statements is None:
        return ()
    # after a reset mid-run every entry started from zero
    old = before.statements if before.statements_reset == after.statements_reset else {}
    changed: list[ServerStatement] = []
    for key, now in after.statements.items():
        if is_housekeeping(now.query):
            continue
        then = old.get(key)
        calls = now.calls - (then.calls if then else 0)
        if calls <= 0:
            continue
        total = max(0.0, now.total_ms - (then.total_ms if then else 0.0))
        rows = max(0, now.rows - (then.rows if then else 0))
        changed.append(ServerStatement(now.query, calls, total, total / calls, rows))
    changed.sort(key=lambda s: (-s.total_ms, -s.calls, s.query))
    return tuple(changed[:top])
