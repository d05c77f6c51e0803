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
    ``fault_code`` goes with ``state``: a fault's code (its ``detail``) when the state is ``non_operational``,
    None after any other state change (the fault is over). ``received_ms`` is the platform's wall clock when the
    reading was stored (None: leave the row's as it is).
    """

    vehicle_id: str
    seq: int
    timestamp_ms: int
    lat: float
    lon: float
    battery_pct: float | None
    state: VehicleStatus | None
    received_ms: int | None = None
    fault_code: str | None = None


def latest_updates(messages: Iterable[Telemetry | Event], *, received_ms: int | None = None) -> list[VehicleUpdate]:
    """One update per vehicle: from its reading with the highest ``seq`` in ``messages``, in vehicle order, stamped
    ``received_ms``.

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
            received_ms=received_ms,
            fault_code=fault_code_of(m),
        )
        for _, m in sorted(latest.items())
    ]


MAX_FAULT_CODE = 64
"""Characters of a fault code kept (a device's ``detail`` may be longer: its start is kept, never refused)."""


def fault_code_of(message: Telemetry | Event) -> str | None:
    """The fault code a fault event reports (its ``detail``, cut to ``MAX_FAULT_CODE``; '' when it names none),
    None for anything else."""
    if isinstance(message, Event) and message.event_type is EventType.FAULT:
        return (message.detail or "")[:MAX_FAULT_CODE]
    return None


def is_gateway(state: VehicleState) -> bool:
    """Whether ``state`` speaks for every vehicle of its operator (a fleet gateway's link)."""
    return state.vehicle_id == FLEET_GATEWAY
