"""the trusted-readings schema: registry, signed readings, trip life cycle

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("deployed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_deployments")),
    )
    op.create_table(
        "epochs",
        sa.Column("epoch_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("trip_count", sa.Integer(), nullable=False),
        sa.Column("total_micro", sa.BigInteger(), nullable=False),
        sa.Column("trips_root", sa.String(length=66), nullable=False),
        sa.Column("registry_root", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("block_hash", sa.String(length=66), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("closed_ms", sa.BigInteger(), nullable=False),
        sa.Column("settled_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("epoch_id", name=op.f("pk_epochs")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("odometer_m", sa.BigInteger(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("rider", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=256), nullable=True),
        sa.Column("trip_seq", sa.BigInteger(), nullable=True),
        sa.Column("signature", sa.String(length=132), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("vehicle_id", "seq", name=op.f("uq_events_vehicle_id_seq")),
    )
    op.create_table(
        "operators",
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("added_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("operator", name=op.f("pk_operators")),
    )
    op.create_table(
        "rejects",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejects")),
    )
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejects_code"), ["code"], unique=False)

    op.create_table(
        "telemetry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=False),
        sa.Column("odometer_m", sa.BigInteger(), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("fuel_pct", sa.Float(), nullable=True),
        sa.Column("signature", sa.String(length=132), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry")),
        sa.UniqueConstraint("vehicle_id", "seq", name=op.f("uq_telemetry_vehicle_id_seq")),
    )
    op.create_table(
        "vehicles",
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=42), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("battery_pct", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.Column("state_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_id", name=op.f("pk_vehicles")),
    )
    op.create_table(
        "payouts",
        sa.Column("epoch_id", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=42), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.epoch_id"], name=op.f("fk_payouts_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("epoch_id", "owner", name=op.f("pk_payouts")),
    )
    op.create_table(
        "registry",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=42), nullable=False),
        sa.Column("payee", sa.String(length=42), nullable=False),
        sa.Column("valid_from_ms", sa.BigInteger(), nullable=False),
        sa.Column("valid_until_ms", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=132), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["operator"], ["operators.operator"], name=op.f("fk_registry_operator_operators")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry")),
        sa.UniqueConstraint("vehicle_id", "valid_from_ms", name=op.f("uq_registry_vehicle_id_valid_from_ms")),
    )
    op.create_table(
        "trips",
        sa.Column("trip_id", sa.String(length=96), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("unlock_seq", sa.BigInteger(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=42), nullable=True),
        sa.Column("rider", sa.String(length=128), nullable=True),
        sa.Column("start_seq", sa.BigInteger(), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=True),
        sa.Column("start_lat", sa.Float(), nullable=True),
        sa.Column("start_lon", sa.Float(), nullable=True),
        sa.Column("start_odometer_m", sa.BigInteger(), nullable=True),
        sa.Column("end_seq", sa.BigInteger(), nullable=True),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_lat", sa.Float(), nullable=True),
        sa.Column("end_lon", sa.Float(), nullable=True),
        sa.Column("end_odometer_m", sa.BigInteger(), nullable=True),
        sa.Column("distance_m", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.BigInteger(), nullable=True),
        sa.Column("unlock_micro", sa.BigInteger(), nullable=True),
        sa.Column("time_micro", sa.BigInteger(), nullable=True),
        sa.Column("distance_micro", sa.BigInteger(), nullable=True),
        sa.Column("fare_micro", sa.BigInteger(), nullable=True),
        sa.Column("epoch_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.epoch_id"], name=op.f("fk_trips_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("trip_id", name=op.f("pk_trips")),
    )
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trips_end_ms"), ["end_ms"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_epoch_id"), ["epoch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_rider"), ["rider"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_status_vehicle_id"), ["status", "vehicle_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_vehicle_id_unlock_seq"), ["vehicle_id", "unlock_seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trips_vehicle_id_unlock_seq"))
        batch_op.drop_index(batch_op.f("ix_trips_status_vehicle_id"))
        batch_op.drop_index(batch_op.f("ix_trips_rider"))
        batch_op.drop_index(batch_op.f("ix_trips_owner"))
        batch_op.drop_index(batch_op.f("ix_trips_epoch_id"))
        batch_op.drop_index(batch_op.f("ix_trips_end_ms"))

    op.drop_table("trips")
    op.drop_table("registry")
    op.drop_table("payouts")
    op.drop_table("vehicles")
    op.drop_table("telemetry")
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejects_code"))

    op.drop_table("rejects")
    op.drop_table("operators")
    op.drop_table("events")
    op.drop_table("epochs")
    op.drop_table("deployments")
