"""What the store takes and gives: batches of decoded messages, dead letters, and their row forms (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from settlement.epochs import PricedTrip
from settlement.fares import Fare
from settlement.trips import Trip

if TYPE_CHECKING:  # rows are only read by attribute here; no database code runs in this module
    import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that failed to decode, and why."""

    topic: str
    payload: bytes
    reason: str
    received_ms: int


@dataclass
class Batch:
    """Decoded messages and rejects received together; stored in one transaction."""

    telemetry: list[Telemetry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    states: list[VehicleState] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchResult:
    telemetry_new: int
    events_new: int
    duplicates: int
    rejected: int
    locks_new: int


def within_owner_limit(rows: Sequence[sa.Row[Any]], max_owners: int) -> list[sa.Row[Any]]:
    """The leading rows whose trips belong to at most ``max_owners`` owners."""
    owners: set[str] = set()
    kept = []
    for row in rows:
        if row.owner not in owners and len(owners) == max_owners:
            continue
        owners.add(row.owner)
        kept.append(row)
    return kept


def telemetry_row(t: Telemetry) -> dict[str, object]:
    return {
        "vehicle_id": t.vehicle_id,
        "seq": t.seq,
        "timestamp_ms": t.timestamp,
        "lat": t.position.lat,
        "lon": t.position.lon,
        "speed_mps": t.speed_mps,
        "odometer_m": t.odometer_m,
        "battery_pct": t.battery_pct,
        "fuel_pct": t.fuel_pct,
    }


def event_row(e: Event) -> dict[str, object]:
    return {
        "vehicle_id": e.vehicle_id,
        "operator": e.operator,
        "kind": e.kind.value,
        "seq": e.seq,
        "timestamp_ms": e.timestamp,
        "event_type": e.event_type.value,
        "lat": e.position.lat,
        "lon": e.position.lon,
        "odometer_m": e.odometer_m,
        "battery_pct": e.battery_pct,
        "rider": e.rider,
        "detail": e.detail,
        "signature": e.signature,
    }


def reject_row(r: Reject) -> dict[str, object]:
    return {"topic": r.topic, "payload": r.payload, "reason": r.reason[:2000], "received_ms": r.received_ms}


def event_from_row(r: sa.Row) -> Event:
    return Event(
        vehicle_id=r.vehicle_id,
        operator=r.operator,
        kind=VehicleKind(r.kind),
        seq=r.seq,
        timestamp=r.timestamp_ms,
        event_type=EventType(r.event_type),
        position=Position(r.lat, r.lon),
        odometer_m=r.odometer_m,
        battery_pct=r.battery_pct,
        rider=r.rider,
        detail=r.detail,
        signature=r.signature,
    )


def trip_row(trip: Trip, fare: Fare) -> dict[str, object]:
    row: dict[str, object] = {name: getattr(trip, name) for name in Trip.__slots__}
    row["kind"] = trip.kind.value
    row.update(
        unlock_micro=fare.unlock_micro,
        time_micro=fare.time_micro,
        distance_micro=fare.distance_micro,
        fare_micro=fare.total_micro,
        status="priced",
        epoch_id=None,
    )
    return row


def priced(r: sa.Row) -> PricedTrip:
    return PricedTrip(r.trip_id, r.owner, r.rider, r.start_ms, r.end_ms, r.distance_m, r.fare_micro)
