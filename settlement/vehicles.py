"""What a vehicle's readings say about it now: MDS state after an event, last position, online (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sensors.messages import FLEET_GATEWAY, Event, EventType, Telemetry, VehicleState
from sensors.wire import VehicleStatus

STATE_AFTER: dict[EventType, VehicleStatus] = {
    EventType.UNLOCK: VehicleStatus.ON_TRIP,
    EventType.LOCK: VehicleStatus.AVAILABLE,
    EventType.FAULT: VehicleStatus.NON_OPERATIONAL,
    EventType.FAULT_CLEARED: VehicleStatus.AVAILABLE,
}
"""The MDS 2.0 vehicle state an event leaves its vehicle in (battery_low changes none)."""


@dataclass(frozen=True, slots=True)
class VehicleUpdate:
    """The newest reading of one vehicle in a batch, as it changes the vehicle's row.

    ``state`` is None when the reading says nothing about the state (telemetry, battery_low); a vehicle
    still in state ``unknown`` then becomes ``available`` (it reports, so it exists and is idle).
    """

    vehicle_id: str
    seq: int
    timestamp_ms: int
    lat: float
    lon: float
    battery_pct: float | None
    state: VehicleStatus | None


def latest_updates(messages: Iterable[Telemetry | Event]) -> list[VehicleUpdate]:
    """One update per vehicle: from its reading with the highest ``seq`` in ``messages``, in vehicle order.

    The order is the one every writer takes row locks in, so that two aggregators updating overlapping vehicles
    wait for each other instead of deadlocking.
    """
    latest: dict[str, Telemetry | Event] = {}
    for message in messages:
        seen = latest.get(message.vehicle_id)
        if seen is None or message.seq > seen.seq:
            latest[message.vehicle_id] = message
    return [
        VehicleUpdate(
            vehicle_id=m.vehicle_id,
            seq=m.seq,
            timestamp_ms=m.timestamp,
            lat=m.position.lat,
            lon=m.position.lon,
            battery_pct=m.battery_pct,
            state=STATE_AFTER.get(m.event_type) if isinstance(m, Event) else None,
        )
        for _, m in sorted(latest.items())
    ]


def is_gateway(state: VehicleState) -> bool:
    """Whether ``state`` speaks for every vehicle of its operator (a fleet gateway's link)."""
    return state.vehicle_id == FLEET_GATEWAY
