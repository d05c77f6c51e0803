"""A small signed fleet for tests: an operator, registered vehicles with device keys, and their messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_utils import keccak

from sensors.address import Address
from sensors.codec import channel_of, encode
from sensors.consent import RideConsent, Voucher
from sensors.consent import sign as sign_as_rider
from sensors.messages import Event, EventType, Message, Position, Telemetry, VehicleKind, VehicleState
from sensors.ports import Received
from sensors.registration import Registration
from sensors.signing import Domain, address_of, sign
from sensors.topics import topic_for
from sensors.wire import trip_id_for

DOMAIN = Domain(31337)
OPERATOR = "op-test"
OPERATOR_KEY = keccak(text="test operator key")
HERE = Position(51.2105, 4.3925)


RIDER_KEY = keccak(text="test rider key 1")
RIDER = address_of(RIDER_KEY).checksum
"""The rider of the fleet's trips unless a test names another: an account (see ``tests.money`` to fund it)."""
CAP_MICRO = 10**9
"""The spending cap of the test riders' consents, and the voucher their locks carry: €1,000, above any test fare,
so that a trip is charged its metered fare unless a test says otherwise."""


def rider_key(n: int) -> bytes:
    """The key of test rider ``n`` (1: ``RIDER``)."""
    return keccak(text=f"test rider key {n}")


RIDER_KEYS = {address_of(rider_key(n)).checksum.lower(): rider_key(n) for n in range(1, 33)}
"""The riders whose wallets the tests hold (by lower-case address): their unlocks carry a consent, their locks a
voucher."""


def consent_for(vehicle: str, kind: VehicleKind, seq: int, ts: int, key: bytes, domain: Domain) -> RideConsent:
    """A test rider's consent for the trip unlocked at ``seq``: the kind's tariff, ``CAP_MICRO``, valid 12 hours."""
    nonce = int.from_bytes(keccak(text=f"{vehicle}:{seq}")[:6], "big")
    consent = RideConsent(address_of(key), vehicle, kind.value, CAP_MICRO, ts + 12 * 3_600_000, nonce)
    return sign_as_rider(consent, key, domain)


def voucher_for(trip_id: str, amount: int, key: bytes, domain: Domain, seq: int = 1_000) -> Voucher:
    """A test rider's voucher of ``amount`` for ``trip_id`` (``seq`` 1000: after any a test sends during a ride)."""
    return sign_as_rider(Voucher(address_of(key), trip_id, amount, seq), key, domain)


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
        pay: bool = True,
    ) -> Event:
        """An event signed by the vehicle's device (or ``key``). With ``pay``, the unlock of a rider whose wallet the
        tests hold (``RIDER_KEYS``) carries the rider's consent, and its lock a voucher of ``CAP_MICRO``."""
        if event_type is EventType.LOCK and trip_seq is None:
            raise ValueError("a lock names its unlock")
        kind = self.vehicles.get(vehicle, VehicleKind.BIKE)
        wallet = RIDER_KEYS.get((rider or "").lower()) if pay else None
        consent = voucher = None
        if wallet is not None and event_type is EventType.UNLOCK:
            consent = consent_for(vehicle, kind, seq, ts, wallet, self.domain)
        if wallet is not None and event_type is EventType.LOCK and trip_seq is not None:
            voucher = voucher_for(trip_id_for(vehicle, trip_seq), CAP_MICRO, wallet, self.domain)
        event = Event(
            vehicle_id=vehicle,
            operator=self.operator,
            kind=kind,
            seq=seq,
            timestamp=ts,
            event_type=event_type,
            position=position,
            odometer_m=odometer,
            rider=rider if event_type in (EventType.UNLOCK, EventType.LOCK) else None,
            trip_seq=trip_seq,
            consent=consent,
            voucher=voucher,
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
