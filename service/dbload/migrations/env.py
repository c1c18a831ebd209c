"""Alembic environment, driven programmatically by dbload.schema.migrate.

The caller hands over an open SQLAlchemy connection in
``config.attributes["connection"]``; there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
