"""What the SQL repositories share: the dialect's insert-or-ignore and insert-or-replace."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    """INSERT … ON CONFLICT DO NOTHING on ``table``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, object]]) -> None:
    """Insert ``rows`` or replace the row with the same primary key."""
    if not rows:
        return
    key = [c.name for c in table.primary_key.columns]
    statement: postgresql.Insert | sqlite.Insert
    statement = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    replace = {name: statement.excluded[name] for name in rows[0] if name not in key}
    conn.execute(statement.on_conflict_do_update(index_elements=key, set_=replace), list(rows))
