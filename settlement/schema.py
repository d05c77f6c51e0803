"""Database tables of settlement (SQLAlchemy 2.0 declarative); unique keys carry the idempotency rules.

The tables change only through Alembic migrations (``settlement/migrations``); constraint names follow
``NAMING_CONVENTION`` so that every migration can name what it alters on SQLite and PostgreSQL alike.
Addresses are stored in their EIP-55 form through ``AddressType``, so equal addresses are equal strings.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sensors.address import Address
from sensors.wire import VehicleStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ID = String(64)
SIGNATURE = String(132)
ROWID = BigInteger().with_variant(Integer, "sqlite")


class AddressType(TypeDecorator[Address]):
    """An ``Address`` stored as its 42-character EIP-55 text."""

    impl = String(42)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(value if isinstance(value, Address) else Address.parse(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> Address | None:
        return None if value is None else Address.parse(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OperatorRow(Base):
    """An operator whose key may sign registry entries: the registry's root of trust."""

    __tablename__ = "operators"
    operator: Mapped[str] = mapped_column(ID, primary_key=True)
    address: Mapped[Address] = mapped_column(AddressType)
    added_ms: Mapped[int] = mapped_column(BigInteger)


class RegistryRow(Base):
    """A device registry entry: which key speaks for a vehicle, and who is paid for it, over a period."""

    __tablename__ = "registry"
    __table_args__ = (UniqueConstraint("vehicle_id", "valid_from_ms"),)
    id: Mapped[int] = mapped_column(ROWID, primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    operator: Mapped[str] = mapped_column(ID, ForeignKey("operators.operator"))
    kind: Mapped[str] = mapped_column(String(16))
    device: Mapped[Address] = mapped_column(AddressType)
    payee: Mapped[Address] = mapped_column(AddressType)
    valid_from_ms: Mapped[int] = mapped_column(BigInteger)
    valid_until_ms: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(SIGNATURE)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)
    changed_ms: Mapped[int] = mapped_column(BigInteger)


class VehicleRow(Base):
    """The last known state of a registered vehicle; ``owner`` is its current payee from the registry.

    ``received_ms`` is the platform's wall clock when the message that last changed the row was stored (not the
    device's time), so that the dashboard pushes what changed since; ``fault_code`` is the code of the fault that
    made the vehicle non-operational, cleared by the next state change (migration 0006).
    """

    __tablename__ = "vehicles"
    __table_args__ = (Index(None, "received_ms", "vehicle_id"),)
    vehicle_id: Mapped[str] = mapped_column(ID, primary_key=True)
    operator: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[Address | None] = mapped_column(AddressType)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(24), default=VehicleStatus.UNKNOWN.value)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger)
    state_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    received_ms: Mapped[int | None] = mapped_column(BigInteger)
    fault_code: Mapped[str | None] = mapped_column(String(64))


class TelemetryRow(Base):
    __tablename__ = "telemetry"
    __table_args__ = (UniqueConstraint("vehicle_id", "seq"),)
    id: Mapped[int] = mapped_column(ROWID, primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    seq: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float] = mapped_column(Float)
    odometer_m: Mapped[int] = mapped_column(BigInteger)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    fuel_pct: Mapped[float | None] = mapped_column(Float)
    signature: Mapped[str | None] = mapped_column(SIGNATURE)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("vehicle_id", "seq"),)
    id: Mapped[int] = mapped_column(ROWID, primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    operator: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(24))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    odometer_m: Mapped[int] = mapped_column(BigInteger)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    rider: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(String(256))
    trip_seq: Mapped[int | None] = mapped_column(BigInteger)
    signature: Mapped[str | None] = mapped_column(SIGNATURE)


class EpochRow(Base):
    __tablename__ = "epochs"
    epoch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trip_count: Mapped[int] = mapped_column(Integer)
    total_micro: Mapped[int] = mapped_column(BigInteger)
    trips_root: Mapped[str] = mapped_column(String(66))
    registry_root: Mapped[str] = mapped_column(String(66))
    status: Mapped[str] = mapped_column(String(16))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    closed_ms: Mapped[int] = mapped_column(BigInteger)
    settled_ms: Mapped[int | None] = mapped_column(BigInteger)
    # the clearing commit (migration 0004): the cumulative balances root and totals; None for earlier epochs
    balances_root: Mapped[str | None] = mapped_column(String(66))
    spent_total: Mapped[int | None] = mapped_column(BigInteger)
    earned_total: Mapped[int | None] = mapped_column(BigInteger)
    # the EIP-712 domain's chain id of its leaves' consent and voucher digests (migration 0005)
    signing_chain_id: Mapped[int | None] = mapped_column(BigInteger)


class EpochBalanceRow(Base):
    """An account's cumulative balance after an epoch that changed it; the latest row per account is its balance.

    Only the accounts an epoch changed get a row, so an epoch writes O(its trips) rows; the book of an epoch is
    every account's row at or before it.
    """

    __tablename__ = "epoch_balances"
    __table_args__ = (Index(None, "account", "epoch_id"),)
    epoch_id: Mapped[int] = mapped_column(ForeignKey("epochs.epoch_id"), primary_key=True)
    account: Mapped[Address] = mapped_column(AddressType, primary_key=True)
    earned: Mapped[int] = mapped_column(BigInteger)
    spent: Mapped[int] = mapped_column(BigInteger)


class TripRow(Base):
    """A trip from the moment its first half (unlock or lock) arrives; ``status`` follows ``lifecycle``."""

    __tablename__ = "trips"
    __table_args__ = (
        Index(None, "status", "vehicle_id"),
        Index(None, "vehicle_id", "unlock_seq"),
        # the read model's orders: newest first with the trip id as the unique tiebreak (keyset pages)
        Index(None, "end_ms", "trip_id"),
        Index(None, "rider", "end_ms", "trip_id"),
        Index(None, "vehicle_id", "end_ms", "trip_id"),
        Index(None, "status", "end_ms", "trip_id"),
        Index(None, "epoch_id"),
        # the dashboard's filters, each in the list's order (migration 0006); open trips newest first by start
        Index(None, "owner", "end_ms", "trip_id"),
        Index(None, "kind", "end_ms", "trip_id"),
        Index(None, "status", "start_ms", "trip_id"),
        # a rider's consent nonce is used once: set only on a trip priced under that consent (migration 0005)
        Index(None, "consent_rider", "consent_nonce", unique=True),
    )
    trip_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    unlock_seq: Mapped[int] = mapped_column(BigInteger)
    operator: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[Address | None] = mapped_column(AddressType)
    rider: Mapped[str | None] = mapped_column(String(128))
    start_seq: Mapped[int | None] = mapped_column(BigInteger)
    start_ms: Mapped[int | None] = mapped_column(BigInteger)
    start_lat: Mapped[float | None] = mapped_column(Float)
    start_lon: Mapped[float | None] = mapped_column(Float)
    start_odometer_m: Mapped[int | None] = mapped_column(BigInteger)
    end_seq: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_lat: Mapped[float | None] = mapped_column(Float)
    end_lon: Mapped[float | None] = mapped_column(Float)
    end_odometer_m: Mapped[int | None] = mapped_column(BigInteger)
    distance_m: Mapped[int | None] = mapped_column(BigInteger)
    duration_s: Mapped[int | None] = mapped_column(BigInteger)
    unlock_micro: Mapped[int | None] = mapped_column(BigInteger)
    time_micro: Mapped[int | None] = mapped_column(BigInteger)
    distance_micro: Mapped[int | None] = mapped_column(BigInteger)
    fare_micro: Mapped[int | None] = mapped_column(BigInteger)
    epoch_id: Mapped[int | None] = mapped_column(ForeignKey("epochs.epoch_id"))
    # set when the trip is batched (migration 0004): the fare's split and the account that paid it
    owner_share: Mapped[int | None] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    rider_account: Mapped[Address | None] = mapped_column(AddressType)
    # the rider's consent and last voucher (JSON wire objects of sensors.consent) and what they let be charged
    consent: Mapped[str | None] = mapped_column(Text)
    voucher: Mapped[str | None] = mapped_column(Text)
    consent_rider: Mapped[Address | None] = mapped_column(AddressType)
    consent_nonce: Mapped[int | None] = mapped_column(BigInteger)
    charged_micro: Mapped[int | None] = mapped_column(BigInteger)
    limited_by: Mapped[str | None] = mapped_column(String(16))


class PayoutRow(Base):
    __tablename__ = "payouts"
    epoch_id: Mapped[int] = mapped_column(ForeignKey("epochs.epoch_id"), primary_key=True)
    owner: Mapped[Address] = mapped_column(AddressType, primary_key=True)
    amount_micro: Mapped[int] = mapped_column(BigInteger)


class OwnerTotalRow(Base):
    """Per owner, the trips batched into epochs: how many, what is pending on chain and what is settled.

    Kept by ``settlement.sql.epochs`` in the transaction that batches or commits an epoch; trips priced but not
    yet batched are few and are added when read.
    """

    __tablename__ = "owner_totals"
    owner: Mapped[Address] = mapped_column(AddressType, primary_key=True)
    trip_count: Mapped[int] = mapped_column(BigInteger)
    pending_micro: Mapped[int] = mapped_column(BigInteger)
    settled_micro: Mapped[int] = mapped_column(BigInteger)


class TallyRow(Base):
    """Row counts of the reading tables, kept by triggers (migration 0002); a count sums a name's shards.

    What retention deletes (raw telemetry folded into tracks, dead-letter samples pruned) is added back in the same
    transaction, so that a tally counts the rows ever stored, not the rows still there.
    """

    __tablename__ = "tallies"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)


class RejectRow(Base):
    """A sample of a dead letter: a message that was turned away, with its reason code and reason.

    ``payload`` is its first bytes (``reject_sample_bytes``), ``payload_bytes`` its whole size. Samples are pruned
    by age and number (``settlement.dead_letters``); ``reject_counts`` keeps how many there were.
    """

    __tablename__ = "rejects"
    __table_args__ = (Index(None, "code"), Index(None, "received_ms"))
    id: Mapped[int] = mapped_column(ROWID, primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class RejectCountRow(Base):
    """How many messages were dead-lettered per reason code, first and last time: kept forever, counted in the
    transaction that stores the samples."""

    __tablename__ = "reject_counts"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger)


class TrackRow(Base):
    """Raw telemetry of one vehicle over one minute, folded by ``smartzone retention`` (``settlement.retention``).

    ``minute_ms`` is the minute's start; first and last are by reading time (then seq).
    """

    __tablename__ = "telemetry_tracks"
    vehicle_id: Mapped[str] = mapped_column(ID, primary_key=True)
    minute_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    readings: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    first_ms: Mapped[int] = mapped_column(BigInteger)
    last_ms: Mapped[int] = mapped_column(BigInteger)
    first_lat: Mapped[float] = mapped_column(Float)
    first_lon: Mapped[float] = mapped_column(Float)
    last_lat: Mapped[float] = mapped_column(Float)
    last_lon: Mapped[float] = mapped_column(Float)
    first_odometer_m: Mapped[int] = mapped_column(BigInteger)
    last_odometer_m: Mapped[int] = mapped_column(BigInteger)
    max_speed_mps: Mapped[float] = mapped_column(Float)
    min_battery_pct: Mapped[float | None] = mapped_column(Float)
    min_fuel_pct: Mapped[float | None] = mapped_column(Float)


class DeploymentRow(Base):
    """Where the settlement contract lives on each chain."""

    __tablename__ = "deployments"
    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    address: Mapped[str] = mapped_column(String(42))
    deployed_ms: Mapped[int] = mapped_column(BigInteger)


class AlertRow(Base):
    """An alert the dashboard raised: open until ``cleared_ms``; at most one open alert per (kind, vehicle, code),
    across dashboard instances, by a partial unique index (migration 0006)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "ix_alerts_open_key",
            "kind",
            "vehicle_id",
            "code",
            unique=True,
            sqlite_where=text("cleared_ms IS NULL"),
            postgresql_where=text("cleared_ms IS NULL"),
        ),
        Index(None, "opened_ms"),
        Index(None, "changed_ms"),
    )
    alert_id: Mapped[int] = mapped_column(ROWID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    vehicle_id: Mapped[str] = mapped_column(ID)
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(256))
    opened_ms: Mapped[int] = mapped_column(BigInteger)
    cleared_ms: Mapped[int | None] = mapped_column(BigInteger)
    acked_ms: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(128))
    changed_ms: Mapped[int] = mapped_column(BigInteger)  # the latest of opened, cleared and acked: what changed since


def table_of(model: type[Base]) -> Table:
    """The core ``Table`` of a mapped class (typed, for core statements)."""
    return cast(Table, model.__table__)
