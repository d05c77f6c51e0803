"""clearing: cumulative balances per epoch, the epoch's balances root and totals, each trip's split

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

``epoch_balances`` holds, per epoch, the cumulative ``(earned, spent)`` of every account the epoch changed; an
account's balance is its latest row. ``epochs`` gains the balances root and the cumulative totals the clearing
contract was sent (empty for epochs settled on the earlier settlement contract), ``trips`` the split of the fare
between owner and zone and the rider's account, set when the trip is batched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "epoch_balances",
        sa.Column("epoch_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("earned", sa.BigInteger(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["epoch_id"], ["epochs.epoch_id"], name=op.f("fk_epoch_balances_epoch_id_epochs")),
        sa.PrimaryKeyConstraint("epoch_id", "account", name=op.f("pk_epoch_balances")),
    )
    op.create_index(op.f("ix_epoch_balances_account_epoch_id"), "epoch_balances", ["account", "epoch_id"], unique=False)
    # nullable columns: added in place on SQLite and PostgreSQL, whatever the size of the table
    op.add_column("epochs", sa.Column("balances_root", sa.String(length=66), nullable=True))
    op.add_column("epochs", sa.Column("spent_total", sa.BigInteger(), nullable=True))
    op.add_column("epochs", sa.Column("earned_total", sa.BigInteger(), nullable=True))
    op.add_column("trips", sa.Column("owner_share", sa.BigInteger(), nullable=True))
    op.add_column("trips", sa.Column("fee", sa.BigInteger(), nullable=True))
    op.add_column("trips", sa.Column("rider_account", sa.String(length=42), nullable=True))


def downgrade() -> None:
    for table, column in (
        ("trips", "rider_account"),
        ("trips", "fee"),
        ("trips", "owner_share"),
        ("epochs", "earned_total"),
        ("epochs", "spent_total"),
        ("epochs", "balances_root"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # in place on PostgreSQL and SQLite >= 3.35
    op.drop_index(op.f("ix_epoch_balances_account_epoch_id"), table_name="epoch_balances")
    op.drop_table("epoch_balances")
