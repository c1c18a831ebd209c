"""What a tpcb transaction changes, read back: the tests that run one check
that every part of it landed (history rows, and the same delta on each balance)."""

from __future__ import annotations

import psycopg


def tpcb_totals(dsn: str) -> tuple[int, int, int, int, int]:
    """(history rows, sum of history deltas, sums of the account, teller and
    branch balances)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pgbench_history),"
            " (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
            " (SELECT sum(abalance) FROM pgbench_accounts),"
            " (SELECT sum(tbalance) FROM pgbench_tellers),"
            " (SELECT sum(bbalance) FROM pgbench_branches)"
        ).fetchone()
    assert row is not None
    return tuple(int(v) for v in row)  # type: ignore[return-value]
