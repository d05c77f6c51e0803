"""bounded storage: dead-letter counts kept forever, payload samples bounded, telemetry folded into tracks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

``reject_counts`` holds how many messages were dead-lettered per reason code (with the first and last time); it is
filled from the ``rejects`` rows already there, which become samples: ``payload_bytes`` keeps a message's whole
size (for the rows already there, the size stored), and an index on ``received_ms`` makes pruning by age cheap.
``telemetry_tracks`` holds raw telemetry folded per vehicle and minute by ``smartzone retention``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reject_counts",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_reject_counts")),
    )
    op.execute(
        "INSERT INTO reject_counts (code, count, first_ms, last_ms) "
        "SELECT code, count(*), min(received_ms), max(received_ms) FROM rejects GROUP BY code"
    )
    # a default lets SQLite add the NOT NULL column in place (no copy of a table that may be large)
    op.add_column("rejects", sa.Column("payload_bytes", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE rejects SET payload_bytes = length(payload)")
    op.create_index(op.f("ix_rejects_received_ms"), "rejects", ["received_ms"], unique=False)
    op.create_table(
        "telemetry_tracks",
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("minute_ms", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("first_lat", sa.Float(), nullable=False),
        sa.Column("first_lon", sa.Float(), nullable=False),
        sa.Column("last_lat", sa.Float(), nullable=False),
        sa.Column("last_lon", sa.Float(), nullable=False),
        sa.Column("first_odometer_m", sa.BigInteger(), nullable=False),
        sa.Column("last_odometer_m", sa.BigInteger(), nullable=False),
        sa.Column("max_speed_mps", sa.Float(), nullable=False),
        sa.Column("min_battery_pct", sa.Float(), nullable=True),
        sa.Column("min_fuel_pct", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("vehicle_id", "minute_ms", name=op.f("pk_telemetry_tracks")),
    )


def downgrade() -> None:
    op.drop_table("telemetry_tracks")
    op.drop_index(op.f("ix_rejects_received_ms"), table_name="rejects")
    op.execute("ALTER TABLE rejects DROP COLUMN payload_bytes")  # in place on PostgreSQL and SQLite >= 3.35
    op.drop_table("reject_counts")
