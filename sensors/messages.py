"""Frozen message types of wire format v1: telemetry, events and vehicle state."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sensors.consent import RideConsent, Voucher

WIRE_VERSION = 1


class VehicleKind(enum.StrEnum):
    """What a vehicle is; names follow GBFS/MDS vehicle types."""

    BIKE = "bike"
    EBIKE = "ebike"
    SCOOTER = "scooter"
    CAR = "car"


class EventType(enum.StrEnum):
    """What happened to a vehicle. ``MDS_EVENT_TYPES`` maps each to its MDS 2.0 name."""

    UNLOCK = "unlock"
    LOCK = "lock"
    FAULT = "fault"
    FAULT_CLEARED = "fault_cleared"
    BATTERY_LOW = "battery_low"


MDS_EVENT_TYPES: dict[EventType, str] = {
    EventType.UNLOCK: "trip_start",
    EventType.LOCK: "trip_end",
    EventType.FAULT: "maintenance",
    EventType.FAULT_CLEARED: "maintenance_end",
    EventType.BATTERY_LOW: "battery_low",
}


@dataclass(frozen=True, slots=True)
class Position:
    """A WGS84 position in degrees."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A periodic reading of one vehicle.

    ``seq`` is the vehicle's message counter, shared by its telemetry and events and strictly
    increasing; (vehicle_id, seq) is the idempotency key of every stored message.
    ``timestamp`` is milliseconds since the Unix epoch (UTC), as in MDS.
    """

    vehicle_id: str
    operator: str
    kind: VehicleKind
    seq: int
    timestamp: int
    position: Position
    speed_mps: float
    odometer_m: int
    battery_pct: float | None = None
    fuel_pct: float | None = None
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to one vehicle at one moment (unlock, lock, fault, ...).

    ``rider`` names who unlocked or locked it (an opaque id or an 0x address).
    ``trip_seq`` is set on a lock only: the ``seq`` of the unlock that started the trip it ends, so that a
    trip is paired exactly whatever order its events arrive in (MDS 2.0 events name their trips too).
    ``signature`` is the vehicle's EIP-712 signature (0x + 130 hex) over the canonical content
    (``sensors.signing``).
    ``consent`` (an unlock's) is the rider's signed consent to pay for the trip, ``voucher`` (a lock's) the
    rider's last cumulative voucher for it (``sensors.consent``); each carries the rider's own signature, which
    the vehicle's does not cover.
    """

    vehicle_id: str
    operator: str
    kind: VehicleKind
    seq: int
    timestamp: int
    event_type: EventType
    position: Position
    odometer_m: int
    battery_pct: float | None = None
    rider: str | None = None
    detail: str | None = None
    trip_seq: int | None = None
    signature: str | None = None
    consent: RideConsent | None = None
    voucher: Voucher | None = None


@dataclass(frozen=True, slots=True)
class RiderVoucher:
    """A voucher the rider's app signed during a ride, relayed on the vehicle's ``voucher`` channel.

    ``timestamp`` is when it was sent (milliseconds since the Unix epoch); the voucher's own ``trip_id`` names
    the trip (of this vehicle) it pays for. Only the rider's signature, inside the voucher, authenticates it.
    """

    vehicle_id: str
    operator: str
    timestamp: int
    voucher: Voucher


@dataclass(frozen=True, slots=True)
class VehicleState:
    """The retained connectivity state of a vehicle (or of a whole fleet gateway).

    Published retained on connect (``online`` true), and as the connection's last will (``online`` false)
    so that the broker marks it offline when the link dies. The reserved vehicle id ``FLEET_GATEWAY``
    stands for every vehicle of an operator that shares one link; its state is signed by the operator's key,
    every other state by the vehicle's device key. A state never names an owner: who is paid for a vehicle
    comes only from the device registry.
    """

    vehicle_id: str
    operator: str
    timestamp: int
    online: bool
    kind: VehicleKind | None = None
    signature: str | None = None


FLEET_GATEWAY = "_fleet"

Message = Telemetry | Event | VehicleState | RiderVoucher
