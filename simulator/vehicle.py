"""One simulated vehicle: its kind's physics, its mutable state and the messages it reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sensors.address import Address
from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from sensors.wire import VehicleStatus


@dataclass(frozen=True, slots=True)
class KindProfile:
    """How a kind of vehicle moves and uses energy; ``drain_pct_per_km`` None means it has no battery."""

    speed_mps: float
    drain_pct_per_km: float | None = None
    charge_pct_per_hour: float = 0.0


PROFILES: dict[VehicleKind, KindProfile] = {  # a ride's speed varies by +-15 %: a car never above 30 km/h
    VehicleKind.BIKE: KindProfile(speed_mps=4.2),
    VehicleKind.EBIKE: KindProfile(speed_mps=6.0, drain_pct_per_km=1.5, charge_pct_per_hour=4.0),
    VehicleKind.SCOOTER: KindProfile(speed_mps=5.0, drain_pct_per_km=3.0, charge_pct_per_hour=6.0),
    VehicleKind.CAR: KindProfile(speed_mps=7.2, drain_pct_per_km=0.4, charge_pct_per_hour=3.0),
}
LOW_BATTERY_PCT = 20.0
"""A ``battery_low`` event is sent when the battery falls below this."""
MIN_RENTABLE_PCT = 10.0
"""Below this, riders cannot unlock the vehicle until it has recharged."""


class Status(enum.Enum):
    """What a vehicle is doing; its value is the MDS 2.0 state (available / on_trip / non_operational)."""

    PARKED = VehicleStatus.AVAILABLE
    RIDING = VehicleStatus.ON_TRIP
    FAULTY = VehicleStatus.NON_OPERATIONAL


@dataclass(slots=True)
class Vehicle:
    """The state of one vehicle. Times (``*_at``) are milliseconds since the fleet's start.

    The messages it makes are unsigned; the fleet signs them with the vehicle's device key.
    """

    vehicle_id: str
    operator: str
    kind: VehicleKind
    owner: Address
    position: Position
    odometer: float
    battery: float | None
    next_trip_at: int
    next_fault_at: int
    next_telemetry_at: int
    status: Status = Status.PARKED
    seq: int = 0
    rider: str | None = None
    unlock_seq: int = 0
    destination: Position | None = None
    route: tuple[Position, ...] = ()
    """The current ride's way along the streets from the start of the leg the vehicle is on; its last point is the
    ``destination`` (``zone.walk`` follows it; only read while riding)."""
    speed_mps: float = 0.0
    fault_until: int = 0
    fault: str | None = None

    @property
    def profile(self) -> KindProfile:
        """The physics of this vehicle's kind."""
        return PROFILES[self.kind]

    def telemetry(self, now_ms: int) -> Telemetry:
        """A reading of the vehicle as it is now; takes the next ``seq``."""
        self.seq += 1
        return Telemetry(
            vehicle_id=self.vehicle_id,
            operator=self.operator,
            kind=self.kind,
            seq=self.seq,
            timestamp=now_ms,
            position=self.position,
            speed_mps=round(self.speed_mps, 2),
            odometer_m=int(self.odometer),
            battery_pct=_pct(self.battery),
        )

    def event(
        self, now_ms: int, event_type: EventType, detail: str | None = None, trip_seq: int | None = None
    ) -> Event:
        """An event at the vehicle's position, naming its current rider; takes the next ``seq``.

        ``trip_seq`` is given for a lock: the ``seq`` of the unlock it ends.
        """
        self.seq += 1
        return Event(
            vehicle_id=self.vehicle_id,
            operator=self.operator,
            kind=self.kind,
            seq=self.seq,
            timestamp=now_ms,
            event_type=event_type,
            position=self.position,
            odometer_m=int(self.odometer),
            battery_pct=_pct(self.battery),
            rider=self.rider,
            detail=detail,
            trip_seq=trip_seq,
        )

    def state(self, now_ms: int, online: bool) -> VehicleState:
        """The vehicle's retained connectivity state (it names no owner: that is the registry's)."""
        return VehicleState(
            vehicle_id=self.vehicle_id,
            operator=self.operator,
            timestamp=now_ms,
            online=online,
            kind=self.kind,
        )

    def drain(self, metres: float) -> bool:
        """Use the energy for ``metres``; True if the battery just fell below ``LOW_BATTERY_PCT``."""
        rate = self.profile.drain_pct_per_km
        if self.battery is None or rate is None:
            return False
        before = self.battery
        self.battery = max(0.0, before - rate * metres / 1000)
        return before >= LOW_BATTERY_PCT > self.battery

    def charge(self, seconds: float) -> None:
        """Recharge while parked, up to 100 %."""
        if self.battery is not None:
            self.battery = min(100.0, self.battery + self.profile.charge_pct_per_hour * seconds / 3600)

    def rentable(self) -> bool:
        """Whether a rider may take the vehicle now."""
        enough = self.battery is None or self.battery >= MIN_RENTABLE_PCT
        return self.status is Status.PARKED and enough


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
