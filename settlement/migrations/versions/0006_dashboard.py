"""dashboard: when the platform last heard of a vehicle and its fault, alerts, and the dashboard's trip indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

``vehicles`` gains ``received_ms`` (the platform's wall clock when the message that last changed the row was
stored: the live map asks for what changed since) with its index (in the order of that list), and ``fault_code``
(the code of the fault that made the vehicle non-operational). ``alerts`` holds the dashboard's alerts; a partial
unique index keeps at most one open alert per (kind, vehicle, code), also across two dashboard instances.
``trips`` gains the indexes of the dashboard's filters (owner, kind, each in the lists' order) and of open trips
newest first. The dead letters' ``received_ms`` index exists since 0003.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TRIP_INDEXES = (
    ("ix_trips_owner_end_ms_trip_id", ["owner", "end_ms", "trip_id"]),
    ("ix_trips_kind_end_ms_trip_id", ["kind", "end_ms", "trip_id"]),
    ("ix_trips_status_start_ms_trip_id", ["status", "start_ms", "trip_id"]),
)
_OPEN = sa.text("cleared_ms IS NULL")


def upgrade() -> None:
    op.add_column("vehicles", sa.Column("received_ms", sa.BigInteger(), nullable=True))  # in place: nullable
    op.add_column("vehicles", sa.Column("fault_code", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_vehicles_received_ms_vehicle_id"), "vehicles", ["received_ms", "vehicle_id"])
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=256), nullable=True),
        sa.Column("opened_ms", sa.BigInteger(), nullable=False),
        sa.Column("cleared_ms", sa.BigInteger(), nullable=True),
        sa.Column("acked_ms", sa.BigInteger(), nullable=True),
        sa.Column("acked_by", sa.String(length=128), nullable=True),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_index(
        "ix_alerts_open_key",
        "alerts",
        ["kind", "vehicle_id", "code"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.create_index(op.f("ix_alerts_opened_ms"), "alerts", ["opened_ms"])
    op.create_index(op.f("ix_alerts_changed_ms"), "alerts", ["changed_ms"])
    for name, columns in _TRIP_INDEXES:
        op.create_index(op.f(name), "trips", columns)


def downgrade() -> None:
    for name, _ in reversed(_TRIP_INDEXES):
        op.drop_index(op.f(name), table_name="trips")
    op.drop_table("alerts")  # its indexes go with it
    op.drop_index(op.f("ix_vehicles_received_ms_vehicle_id"), table_name="vehicles")
    op.execute("ALTER TABLE vehicles DROP COLUMN fault_code")  # in place on PostgreSQL and SQLite >= 3.35
    op.execute("ALTER TABLE vehicles DROP COLUMN received_ms")
