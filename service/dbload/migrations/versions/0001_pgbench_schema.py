"""pgbench's four tables, as `pgbench -i` creates them.

Same columns, types and fillfactor, and the primary keys pgbench -i adds, so
any pgbench script runs unchanged. IF NOT EXISTS lets dbload adopt a database
that `pgbench -i` already initialised.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE IF NOT EXISTS pgbench_history"
        " (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))"
    )
    op.execute(
        "CREATE TABLE IF NOT EXISTS pgbench_tellers"
        " (tid int NOT NULL PRIMARY KEY, bid int, tbalance int, filler char(84))"
        " WITH (fillfactor = 100)"
    )
    op.execute(
        "CREATE TABLE IF NOT EXISTS pgbench_accounts"
        " (aid int NOT NULL PRIMARY KEY, bid int, abalance int, filler char(84))"
        " WITH (fillfactor = 100)"
    )
    op.execute(
        "CREATE TABLE IF NOT EXISTS pgbench_branches"
        " (bid int NOT NULL PRIMARY KEY, bbalance int, filler char(88))"
        " WITH (fillfactor = 100)"
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE IF EXISTS pgbench_history, pgbench_tellers, pgbench_accounts, pgbench_branches"
    )
