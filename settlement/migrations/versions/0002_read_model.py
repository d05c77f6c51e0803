"""the read model at scale: keyset indexes, per-owner totals and maintained tallies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

``owner_totals`` holds, per owner, the trips batched into epochs: their number, what is pending (batched, not
yet committed) and what is settled; ``settlement.sql.epochs`` keeps it in the transaction that batches or commits
an epoch. ``tallies`` counts the rows of the reading tables, kept by triggers (row triggers on SQLite; statement
triggers with transition tables on PostgreSQL, spread over shards so that concurrent aggregators do not queue on
one counter row); a count is the sum of a name's shards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TALLIED = ("telemetry", "events", "rejects")
IN_EPOCHS = ("batched", "committed", "final")
SETTLED = ("committed", "final")

PG_TALLY = """
CREATE OR REPLACE FUNCTION smartzone_tally() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE delta bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT count(*) INTO delta FROM tally_new;
  ELSE
    SELECT -count(*) INTO delta FROM tally_old;
  END IF;
  IF delta <> 0 THEN
    INSERT INTO tallies (name, shard, n) VALUES (TG_ARGV[0], pg_backend_pid() % 16, delta)
    ON CONFLICT (name, shard) DO UPDATE SET n = tallies.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.drop_index("ix_trips_end_ms")
        batch_op.drop_index("ix_trips_rider")
        # no query filters on the owner alone; the index drew SQLite's planner into whole-table scans to group by it
        batch_op.drop_index("ix_trips_owner")
        batch_op.create_index(batch_op.f("ix_trips_end_ms_trip_id"), ["end_ms", "trip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_rider_end_ms_trip_id"), ["rider", "end_ms", "trip_id"])
        batch_op.create_index(batch_op.f("ix_trips_vehicle_id_end_ms_trip_id"), ["vehicle_id", "end_ms", "trip_id"])
        batch_op.create_index(batch_op.f("ix_trips_status_end_ms_trip_id"), ["status", "end_ms", "trip_id"])
    op.create_table(
        "owner_totals",
        sa.Column("owner", sa.String(length=42), nullable=False),
        sa.Column("trip_count", sa.BigInteger(), nullable=False),
        sa.Column("pending_micro", sa.BigInteger(), nullable=False),
        sa.Column("settled_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_owner_totals")),
    )
    op.create_table(
        "tallies",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", "shard", name=op.f("pk_tallies")),
    )
    settled = ", ".join(f"'{s}'" for s in SETTLED)
    in_epochs = ", ".join(f"'{s}'" for s in IN_EPOCHS)
    op.execute(
        "INSERT INTO owner_totals (owner, trip_count, pending_micro, settled_micro) "
        f"SELECT owner, count(*), "
        f"coalesce(sum(CASE WHEN status IN ({settled}) THEN 0 ELSE fare_micro END), 0), "
        f"coalesce(sum(CASE WHEN status IN ({settled}) THEN fare_micro ELSE 0 END), 0) "
        f"FROM trips WHERE status IN ({in_epochs}) AND owner IS NOT NULL GROUP BY owner"
    )
    for table in TALLIED:
        op.execute(f"INSERT INTO tallies (name, shard, n) SELECT '{table}', 0, count(*) FROM {table}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TALLY)
        for table in TALLIED:
            for event, ref in (("INSERT", "NEW TABLE AS tally_new"), ("DELETE", "OLD TABLE AS tally_old")):
                op.execute(
                    f"CREATE TRIGGER tally_{table}_{event.lower()} AFTER {event} ON {table} "
                    f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION smartzone_tally('{table}')"
                )
    else:
        for table in TALLIED:
            for event, sign in (("INSERT", "+"), ("DELETE", "-")):
                op.execute(
                    f"CREATE TRIGGER tally_{table}_{event.lower()} AFTER {event} ON {table} BEGIN "
                    f"UPDATE tallies SET n = n {sign} 1 WHERE name = '{table}' AND shard = 0; END"
                )


def downgrade() -> None:
    for table in TALLIED:
        for event in ("insert", "delete"):
            if op.get_bind().dialect.name == "postgresql":
                op.execute(f"DROP TRIGGER IF EXISTS tally_{table}_{event} ON {table}")
            else:
                op.execute(f"DROP TRIGGER IF EXISTS tally_{table}_{event}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS smartzone_tally()")
    op.drop_table("tallies")
    op.drop_table("owner_totals")
    with op.batch_alter_table("trips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trips_status_end_ms_trip_id"))
        batch_op.drop_index(batch_op.f("ix_trips_vehicle_id_end_ms_trip_id"))
        batch_op.drop_index(batch_op.f("ix_trips_rider_end_ms_trip_id"))
        batch_op.drop_index(batch_op.f("ix_trips_end_ms_trip_id"))
        batch_op.create_index(batch_op.f("ix_trips_owner"), ["owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_rider"), ["rider"], unique=False)
        batch_op.create_index(batch_op.f("ix_trips_end_ms"), ["end_ms"], unique=False)
