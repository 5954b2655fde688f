"""Alembic environment: runs migrations over a synchronous connection handed in by
flows_graphql.db.migrate (which owns the async engine)."""

from __future__ import annotations

from alembic import context

from flows_graphql.db.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    compare_server_default=True,
)
with context.begin_transaction():
    context.run_migrations()
