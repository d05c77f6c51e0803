"""Alembic environment: migrates the connection that ``settlement.db`` hands over (no URL, no ini file)."""

from __future__ import annotations

from alembic import context

from settlement.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `smartzone db upgrade` (settlement.db), not the alembic CLI")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
