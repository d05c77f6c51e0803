"""consent: each trip keeps the rider's consent and last voucher, and what they let be charged

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

``trips`` gains the rider's consent (the unlock's) and last voucher as their JSON wire objects, the consented
charge and which bound set it (the metered fare, the voucher or the cap), and the consent's rider and nonce,
set only once a trip is priced under that consent: a unique index makes each nonce single-use per rider, even
across aggregators sharing the database. ``epochs`` gains the chain id of the EIP-712 domain its leaves' consent
and voucher digests were taken in, so that a receipt is rebuilt in the same domain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("consent", sa.Text()),
    ("voucher", sa.Text()),
    ("consent_rider", sa.String(length=42)),
    ("consent_nonce", sa.BigInteger()),
    ("charged_micro", sa.BigInteger()),
    ("limited_by", sa.String(length=16)),
)


def upgrade() -> None:
    for name, kind in _COLUMNS:  # nullable: added in place on SQLite and PostgreSQL, whatever the table's size
        op.add_column("trips", sa.Column(name, kind, nullable=True))
    op.create_index(
        op.f("ix_trips_consent_rider_consent_nonce"), "trips", ["consent_rider", "consent_nonce"], unique=True
    )
    op.add_column("epochs", sa.Column("signing_chain_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE epochs DROP COLUMN signing_chain_id")
    op.drop_index(op.f("ix_trips_consent_rider_consent_nonce"), table_name="trips")
    for name, _ in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE trips DROP COLUMN {name}")  # in place on PostgreSQL and SQLite >= 3.35
