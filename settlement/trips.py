"""Trips: pairing a vehicle's unlock and lock events into one completed trip (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sensors.geo import distance_m
from sensors.messages import Event, EventType, VehicleKind


@dataclass(frozen=True, slots=True)
class Trip:
    """A completed trip: from an unlock to the next lock of the same vehicle.

    Its id is ``<vehicle_id>:<unlock seq>``, so a trip can be derived any number of times and is
    stored once. ``distance_m`` comes from the odometer where it moved forward, else from the
    straight line between the two positions.
    """

    trip_id: str
    vehicle_id: str
    operator: str
    kind: VehicleKind
    owner: str
    rider: str
    start_seq: int
    end_seq: int
    start_ms: int
    end_ms: int
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: int
    duration_s: int


def trip_id_for(vehicle_id: str, unlock_seq: int) -> str:
    """The idempotency key of the trip that starts with ``unlock_seq``."""
    return f"{vehicle_id}:{unlock_seq}"


def pair_events(events: Iterable[Event]) -> list[tuple[Event, Event]]:
    """Pair each lock with the unlock just before it, for the events of one vehicle.

    Events are taken in ``seq`` order whatever order they arrived in. A lock without an unlock
    before it, or an unlock followed by another unlock, is left unpaired (a later lock may still
    arrive for the second unlock).
    """
    pairs: list[tuple[Event, Event]] = []
    open_unlock: Event | None = None
    for event in sorted(events, key=lambda e: e.seq):
        if event.event_type is EventType.UNLOCK:
            open_unlock = event
        elif event.event_type is EventType.LOCK and open_unlock is not None:
            pairs.append((open_unlock, event))
            open_unlock = None
    return pairs


def build_trip(unlock: Event, lock: Event, owner: str) -> Trip:
    """The trip from ``unlock`` to ``lock`` of one vehicle, paid to ``owner``."""
    if unlock.vehicle_id != lock.vehicle_id or lock.seq <= unlock.seq:
        raise ValueError(f"{lock.vehicle_id}:{lock.seq} does not end the trip {unlock.vehicle_id}:{unlock.seq}")
    travelled = lock.odometer_m - unlock.odometer_m
    if travelled < 0:
        travelled = round(distance_m(unlock.position, lock.position))
    duration_ms = max(0, lock.timestamp - unlock.timestamp)
    return Trip(
        trip_id=trip_id_for(unlock.vehicle_id, unlock.seq),
        vehicle_id=unlock.vehicle_id,
        operator=unlock.operator,
        kind=unlock.kind,
        owner=owner,
        rider=unlock.rider or "",
        start_seq=unlock.seq,
        end_seq=lock.seq,
        start_ms=unlock.timestamp,
        end_ms=lock.timestamp,
        start_lat=unlock.position.lat,
        start_lon=unlock.position.lon,
        end_lat=lock.position.lat,
        end_lon=lock.position.lon,
        distance_m=travelled,
        duration_s=-(-duration_ms // 1000),
    )
