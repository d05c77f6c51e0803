"""A small signed fleet for tests: an operator, registered vehicles with device keys, and their messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils import keccak

from sensors.address import Address
from sensors.codec import channel_of, encode
from sensors.messages import Event, EventType, Message, Position, Telemetry, VehicleKind, VehicleState
from sensors.ports import Received
from sensors.registration import Registration
from sensors.signing import Domain, address_of, sign
from sensors.topics import topic_for

DOMAIN = Domain(31337)
OPERATOR = "op-test"
OPERATOR_KEY = keccak(text="test operator key")
HERE = Position(51.2105, 4.3925)


RIDER_KEY = keccak(text="test rider key 1")
RIDER = address_of(RIDER_KEY).checksum
"""The rider of the fleet's trips unless a test names another: an account (see ``tests.money`` to fund it)."""


def key_of(name: str) -> bytes:
    """A fixed test key per name."""
    return keccak(text=f"test device key {name}")


def payee_of(name: str) -> Address:
    return address_of(keccak(text=f"test payee {name}"))


@dataclass
class Acks:
    """Counts acknowledgements of ``Received`` items."""

    count: int = 0

    def __call__(self) -> None:
        self.count += 1


@dataclass
class SignedFleet:
    """Vehicles (id → kind) of one operator, each with a device key and a payee, signing what they send."""

    vehicles: dict[str, VehicleKind] = field(
        default_factory=lambda: {"bike-1": VehicleKind.BIKE, "bike-2": VehicleKind.BIKE, "car-1": VehicleKind.CAR}
    )
    operator: str = OPERATOR
    domain: Domain = DOMAIN
    acks: Acks = field(default_factory=Acks)

    @property
    def operator_address(self) -> Address:
        return address_of(OPERATOR_KEY)

    def registrations(self, valid_from_ms: int = 0) -> list[Registration]:
        return [
            sign(
                Registration(v, self.operator, kind, address_of(key_of(v)), payee_of(v), valid_from_ms),
                OPERATOR_KEY,
                self.domain,
            )
            for v, kind in self.vehicles.items()
        ]

    def event(
        self,
        vehicle: str,
        seq: int,
        event_type: EventType,
        ts: int,
        odometer: int = 1000,
        *,
        trip_seq: int | None = None,
        rider: str | None = RIDER,
        key: bytes | None = None,
        position: Position = HERE,
    ) -> Event:
        if event_type is EventType.LOCK and trip_seq is None:
            raise ValueError("a lock names its unlock")
        event = Event(
            vehicle_id=vehicle,
            operator=self.operator,
            kind=self.vehicles.get(vehicle, VehicleKind.BIKE),
            seq=seq,
            timestamp=ts,
            event_type=event_type,
            position=position,
            odometer_m=odometer,
            rider=rider if event_type in (EventType.UNLOCK, EventType.LOCK) else None,
            trip_seq=trip_seq,
        )
        return sign(event, key or key_of(vehicle), self.domain)

    def telemetry(self, vehicle: str, seq: int, ts: int, speed_mps: float = 3.0, odometer: int = 1000) -> Telemetry:
        return Telemetry(vehicle, self.operator, self.vehicles[vehicle], seq, ts, HERE, speed_mps, odometer)

    def state(self, vehicle: str, ts: int, online: bool = True, key: bytes | None = None) -> VehicleState:
        return sign(VehicleState(vehicle, self.operator, ts, online), key or key_of(vehicle), self.domain)

    def trip(self, vehicle: str, unlock_seq: int, start_ms: int, minutes: int, metres: int) -> list[Event]:
        """An unlock and its lock, ``minutes`` later and ``metres`` further."""
        return [
            self.event(vehicle, unlock_seq, EventType.UNLOCK, start_ms, 1000),
            self.event(vehicle, unlock_seq + 1, EventType.LOCK, start_ms + minutes * 60_000, 1000 + metres,
                       trip_seq=unlock_seq),
        ]  # fmt: skip

    def received(self, message: Message, *, payload: bytes | None = None, topic: str | None = None) -> Received:
        """``message`` as the broker would hand it over (``payload``/``topic`` override, e.g. for forgeries)."""
        return Received(
            topic or topic_for(message.operator, message.vehicle_id, channel_of(message)),
            payload if payload is not None else encode(message),
            1_700_000_000.0,
            self.acks,
        )
