"""Database tables of settlement (SQLAlchemy 2.0 declarative); unique keys carry the idempotency rules."""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(64)
ADDRESS = String(42)


class Base(DeclarativeBase):
    pass


class VehicleRow(Base):
    """The registry and last known state of a vehicle."""

    __tablename__ = "vehicles"
    vehicle_id: Mapped[str] = mapped_column(ID, primary_key=True)
    operator: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str | None] = mapped_column(ADDRESS)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(24), default="unknown")
    battery_pct: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger)


class TelemetryRow(Base):
    __tablename__ = "telemetry"
    __table_args__ = (UniqueConstraint("vehicle_id", "seq", name="uq_telemetry_vehicle_seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    seq: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float] = mapped_column(Float)
    odometer_m: Mapped[int] = mapped_column(BigInteger)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    fuel_pct: Mapped[float | None] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("vehicle_id", "seq", name="uq_events_vehicle_seq"),
        Index("ix_events_type_vehicle", "event_type", "vehicle_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
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
    signature: Mapped[str | None] = mapped_column(String(140))


class EpochRow(Base):
    __tablename__ = "epochs"
    epoch_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    trip_count: Mapped[int] = mapped_column(Integer)
    total_micro: Mapped[int] = mapped_column(BigInteger)
    trips_root: Mapped[str] = mapped_column(String(66))
    status: Mapped[str] = mapped_column(String(16), default="closed")
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    closed_ms: Mapped[int] = mapped_column(BigInteger)
    settled_ms: Mapped[int | None] = mapped_column(BigInteger)


class TripRow(Base):
    __tablename__ = "trips"
    __table_args__ = (
        UniqueConstraint("vehicle_id", "end_seq", name="uq_trips_vehicle_end_seq"),
        Index("ix_trips_status", "status"),
        Index("ix_trips_rider", "rider"),
    )
    trip_id: Mapped[str] = mapped_column(String(96), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(ID)
    operator: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(ADDRESS)
    rider: Mapped[str] = mapped_column(String(128))
    start_seq: Mapped[int] = mapped_column(BigInteger)
    end_seq: Mapped[int] = mapped_column(BigInteger)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    start_lat: Mapped[float] = mapped_column(Float)
    start_lon: Mapped[float] = mapped_column(Float)
    end_lat: Mapped[float] = mapped_column(Float)
    end_lon: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[int] = mapped_column(BigInteger)
    unlock_micro: Mapped[int] = mapped_column(BigInteger)
    time_micro: Mapped[int] = mapped_column(BigInteger)
    distance_micro: Mapped[int] = mapped_column(BigInteger)
    fare_micro: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="priced")
    epoch_id: Mapped[int | None] = mapped_column(ForeignKey("epochs.epoch_id"))


class PayoutRow(Base):
    __tablename__ = "payouts"
    epoch_id: Mapped[int] = mapped_column(ForeignKey("epochs.epoch_id"), primary_key=True)
    owner: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    amount_micro: Mapped[int] = mapped_column(BigInteger)


class RejectRow(Base):
    """A dead letter: a message that could not be decoded, kept with the reason."""

    __tablename__ = "rejects"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class DeploymentRow(Base):
    """Where the settlement contract lives on each chain."""

    __tablename__ = "deployments"
    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    address: Mapped[str] = mapped_column(ADDRESS)
    deployed_ms: Mapped[int] = mapped_column(BigInteger)


def table_of(model: type[Base]) -> Table:
    """The core ``Table`` of a mapped class (typed, for core statements)."""
    return cast(Table, model.__table__)
