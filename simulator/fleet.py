"""The simulated fleet: vehicles, owners and riders stepped through simulated time, seeded, its messages signed."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, TypeVar

from sensors.address import Address
from sensors.consent import RideConsent, Voucher
from sensors.errors import InvalidReading
from sensors.messages import (
    FLEET_GATEWAY,
    Event,
    EventType,
    Message,
    Position,
    RiderVoucher,
    Telemetry,
    VehicleKind,
    VehicleState,
)
from sensors.registration import Registration
from sensors.signing import Domain, address_of, sign
from sensors.topics import check_id
from sensors.wire import MAX_SEQ, trip_id_for
from simulator.app import Metering, next_voucher, nonce_at, ride_consent
from simulator.demand import Arrival, Arrivals, demand_rng, nearest
from simulator.faults import VehicleFaults, fault_rng
from simulator.keys import device_key, operator_key, owner_key, rider_key
from simulator.scenario import DemandSpec, FaultRates
from simulator.stations import load_stations
from simulator.vehicle import PROFILES, Status, Vehicle
from simulator.zone import Zone, load_zone, walk

M = TypeVar("M", Telemetry, Event, VehicleState)
NEVER = 2**62
"""A schedule time that never comes (milliseconds since the start)."""
FAULTS = ("lock_sensor", "gps_module", "brakes", "tyre")
DEFAULT_MIX: tuple[tuple[VehicleKind, float], ...] = (
    (VehicleKind.BIKE, 5.0),
    (VehicleKind.EBIKE, 3.0),
    (VehicleKind.CAR, 2.0),
)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What to simulate. Durations are simulated seconds; ``mix`` weighs kinds (shares, not counts).

    ``mean_idle_s`` is the mean time a rentable vehicle stands before a rider takes it (Poisson demand);
    ``faults_per_hour`` is each parked vehicle's fault rate, a fault lasting ``mean_fault_s`` on average.
    ``chain_id`` is the EIP-712 domain of every signature (the settlement chain's id); events and states are
    always signed, telemetry only with ``sign_telemetry``. ``first_seq`` is the seq of each vehicle's first
    message: a device never reuses a seq, so a later run against the same registry and database starts above
    the last one (the composition root passes the run's start time in ms).

    With ``demand``, riders arrive as a Poisson process (``simulator.demand``; its hours on a clock
    ``utc_offset_s`` ahead of UTC) instead of each vehicle being taken after ``mean_idle_s``. ``docked_share`` of
    the bikes start docked at a Velo station. ``faults`` are the vehicles' own (GPS jitter, going offline, sensor
    faults); the wire's are ``simulator.faults.FaultyPublisher``'s.
    """

    vehicles: int = 20
    operator: str = "smartzone-demo"
    seed: int = 0
    mix: tuple[tuple[VehicleKind, float], ...] = DEFAULT_MIX
    owners: int = 4
    riders: int = 50
    moving_interval_s: float = 5.0
    parked_interval_s: float = 60.0
    mean_idle_s: float = 360.0
    faults_per_hour: float = 0.05
    mean_fault_s: float = 900.0
    chain_id: int = 31337
    sign_telemetry: bool = False
    first_seq: int = 1
    demand: DemandSpec | None = None
    utc_offset_s: int = 0
    docked_share: float = 0.0
    faults: FaultRates = field(default_factory=FaultRates)

    def __post_init__(self) -> None:
        try:
            check_id(self.operator, "operator")
        except InvalidReading as exc:
            raise ValueError(exc.reason) from None
        if self.vehicles < 0 or self.owners < 1 or self.riders < 1:
            raise ValueError("need vehicles >= 0, owners >= 1 and riders >= 1")
        if min(self.moving_interval_s, self.parked_interval_s, self.mean_idle_s, self.mean_fault_s) <= 0:
            raise ValueError("intervals and mean durations must be positive")
        if type(self.chain_id) is not int or self.chain_id < 1:
            raise ValueError("chain_id must be a positive integer")
        if type(self.first_seq) is not int or not 1 <= self.first_seq <= MAX_SEQ // 2:
            raise ValueError("first_seq must be a positive integer well below the largest seq")
        if self.faults_per_hour < 0:
            raise ValueError("faults_per_hour must not be negative")
        weights = [w for _, w in self.mix]
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("mix needs non-negative weights with a positive sum")
        if not 0 <= self.docked_share <= 1:
            raise ValueError("docked_share must be between 0 and 1")


class CompletedTrip(NamedTuple):
    """A trip from its ``unlock`` event to its ``lock`` event (both by ``seq``)."""

    vehicle_id: str
    unlock_seq: int
    lock_seq: int
    rider: str

    @property
    def trip_id(self) -> str:
        """The trip's idempotency key: vehicle and the seq of its unlock."""
        return trip_id_for(self.vehicle_id, self.unlock_seq)


class OpenTrip(NamedTuple):
    """A trip whose vehicle is still unlocked."""

    vehicle_id: str
    unlock_seq: int
    rider: str


@dataclass
class _Ride:
    """What the rider's app keeps during a ride: the consent it signed, where the meter started, the last voucher."""

    consent: RideConsent
    trip_id: str
    start_ms: int
    start_odometer_m: int
    next_voucher_ms: int
    voucher: Voucher | None = None


class Fleet:
    """Vehicles, owners and riders drawn from ``config.seed``, advanced by ``step``.

    Every key is derived from the seed (``simulator.keys``): each vehicle's device key signs its events and
    states (and its telemetry with ``sign_telemetry``), the operator's key signs the registrations and the
    gateway's state. Owners (payees) and riders are addresses; a rider's id on the wire is its EIP-55 address.
    The fleet reads no clock: every call names the simulated time (ms since the Unix epoch), which
    must not go backwards. The first call (``birth_messages`` or ``step``) fixes the start.

    With ``metering`` the fleet also plays each rider's app (``simulator.app``): the unlock carries the rider's
    signed consent, a voucher of the running fare goes out on the vehicle's ``voucher`` channel every metering
    interval, and the lock carries the last one (the whole fare, up to the cap).
    """

    def __init__(
        self,
        config: FleetConfig,
        zone: Zone | None = None,
        metering: Metering | None = None,
        stations: Sequence[Position] | None = None,
    ) -> None:
        self.config = config
        self.zone = zone if zone is not None else load_zone()
        self.domain = Domain(config.chain_id)
        self._rng = random.Random(config.seed)
        self._operator_key = operator_key(config.seed, config.operator)
        self.operator_address = address_of(self._operator_key)
        self.owners: tuple[Address, ...] = tuple(address_of(owner_key(config.seed, i)) for i in range(config.owners))
        self.riders: tuple[str, ...] = tuple(str(address_of(rider_key(config.seed, i))) for i in range(config.riders))
        self._rider_keys = {address: rider_key(config.seed, i) for i, address in enumerate(self.riders)}
        self._free_riders = list(self.riders)
        self.metering = metering
        self._rides: dict[str, _Ride] = {}
        self._rides_of: dict[str, int] = {}
        kinds = _kinds(config, self._rng)
        self.vehicles = tuple(self._new_vehicle(i, kind) for i, kind in enumerate(kinds, start=1))
        self._device_keys = {
            v.vehicle_id: device_key(config.seed, config.operator, v.vehicle_id) for v in self.vehicles
        }
        self.devices: dict[str, Address] = {vid: address_of(key) for vid, key in self._device_keys.items()}
        self.completed_trips: list[CompletedTrip] = []
        self._start_ms: int | None = None
        self._elapsed_ms = 0
        self._dock(stations)
        self.demand_stats: Counter[str] = Counter()
        self._arrivals: Arrivals | None = None
        self._faults = VehicleFaults(config.faults, fault_rng(config.seed, "vehicles"))
        self._offline: dict[str, int] = {}  # vehicle id -> when it comes back (ms since the start)

    def registrations(self, valid_from_ms: int) -> list[Registration]:
        """One open-ended registration per vehicle (its device, kind and owner as payee), signed by the operator."""
        return [
            sign(
                Registration(
                    v.vehicle_id, v.operator, v.kind, self.devices[v.vehicle_id], v.owner, valid_from_ms=valid_from_ms
                ),
                self._operator_key,
                self.domain,
            )
            for v in self.vehicles
        ]

    def gateway_state(self, now_ms: int, online: bool) -> VehicleState:
        """The state of the operator's gateway (``FLEET_GATEWAY``), signed by the operator; offline: the last will."""
        state = VehicleState(FLEET_GATEWAY, self.config.operator, now_ms, online)
        return sign(state, self._operator_key, self.domain)

    def birth_messages(self, now_ms: int) -> list[VehicleState]:
        """One retained, signed ``online`` state per vehicle, with its kind."""
        self._advance(now_ms)
        return [self._signed(v.state(now_ms, online=True)) for v in self.vehicles]

    def offline_messages(self, now_ms: int) -> list[VehicleState]:
        """One retained, signed ``offline`` state per vehicle, for the end of a run."""
        return [self._signed(v.state(now_ms, online=False)) for v in self.vehicles]

    def step(self, now_ms: int) -> list[Message]:
        """Advance every vehicle to ``now_ms`` and return what they report, in order, signed."""
        t, dt = self._advance(now_ms)
        out: list[Message] = []
        for v in self.vehicles:
            if v.vehicle_id in self._offline and not self._back_online(v, now_ms, t, out):
                continue
            if v.status is Status.RIDING:
                self._ride(v, now_ms, t, dt, out)
            else:
                self._park(v, now_ms, t, dt, out)
            if t >= v.next_telemetry_at:
                out.append(self._faults.jittered(v.telemetry(now_ms), self.zone))
                v.next_telemetry_at = t + self._telemetry_interval_ms(v)
                if v.status is Status.PARKED:
                    self._strike(v, now_ms, t, out)
        if self.config.demand is not None:
            for arrival in self._demand(now_ms).until(now_ms):
                self._serve(arrival, now_ms, t, out)
        return [self._signed_any(m) for m in out]

    def finish(self, now_ms: int) -> list[Event]:
        """Lock every vehicle still on a trip where it stands, so that no trip stays open."""
        t, _ = self._advance(now_ms)
        return [self._signed(self._lock(v, now_ms, t)) for v in self.vehicles if v.status is Status.RIDING]

    @property
    def fault_counts(self) -> Counter[str]:
        """How often each of the vehicles' faults struck (jittered, offline, sensor_fault)."""
        return Counter(self._faults.counts)

    def open_trips(self) -> list[OpenTrip]:
        """The trips in progress, in vehicle order."""
        return [
            OpenTrip(v.vehicle_id, v.unlock_seq, v.rider)
            for v in self.vehicles
            if v.status is Status.RIDING and v.rider is not None
        ]

    def _signed(self, message: M) -> M:
        """``message`` signed by its vehicle's device key (telemetry only with ``sign_telemetry``)."""
        if isinstance(message, Telemetry) and not self.config.sign_telemetry:
            return message
        return sign(message, self._device_keys[message.vehicle_id], self.domain)

    def _signed_any(self, message: Message) -> Message:
        """A vehicle's message signed (``_signed``); a rider's voucher carries the rider's signature already."""
        if isinstance(message, RiderVoucher):
            return message
        if isinstance(message, Telemetry) and not self.config.sign_telemetry:
            return message
        return sign(message, self._device_keys[message.vehicle_id], self.domain)

    def _advance(self, now_ms: int) -> tuple[int, float]:
        """Move the fleet's clock to ``now_ms``: (ms since the start, seconds since the last call)."""
        if self._start_ms is None:
            self._start_ms = now_ms
        elapsed = now_ms - self._start_ms
        if elapsed < self._elapsed_ms:
            raise ValueError(f"simulated time went backwards to {now_ms}")
        dt = (elapsed - self._elapsed_ms) / 1000
        self._elapsed_ms = elapsed
        return elapsed, dt

    def _ride(self, v: Vehicle, now_ms: int, t: int, dt: float, out: list[Message]) -> None:
        assert v.destination is not None
        v.position, v.route, metres = walk(v.position, v.route, v.speed_mps * dt)
        v.odometer += metres
        if v.drain(metres):
            out.append(v.event(now_ms, EventType.BATTERY_LOW))
        if not v.route:
            out.append(self._lock(v, now_ms, t))
        elif (ride := self._rides.get(v.vehicle_id)) is not None and now_ms >= ride.next_voucher_ms:
            assert self.metering is not None
            ride.next_voucher_ms = now_ms + self.metering.interval_ms
            out.append(RiderVoucher(v.vehicle_id, v.operator, now_ms, self._voucher(v, ride, now_ms)))

    def _park(self, v: Vehicle, now_ms: int, t: int, dt: float, out: list[Message]) -> None:
        v.charge(dt)
        if v.status is Status.FAULTY:
            if t >= v.fault_until:
                v.status = Status.PARKED
                out.append(v.event(now_ms, EventType.FAULT_CLEARED, detail=v.fault))
                v.fault = None
                v.next_fault_at = t + self._fault_gap_ms()
                v.next_trip_at = t + self._idle_ms()
        elif t >= v.next_fault_at:
            v.status = Status.FAULTY
            v.fault = self._rng.choice(FAULTS)
            v.fault_until = t + _exp_ms(self._rng, self.config.mean_fault_s)
            out.append(v.event(now_ms, EventType.FAULT, detail=v.fault))
        elif self.config.demand is None and t >= v.next_trip_at:
            self._unlock(v, now_ms, t, out)

    def _unlock(self, v: Vehicle, now_ms: int, t: int, out: list[Message]) -> None:
        v.next_trip_at = t + self._idle_ms()
        if not v.rentable() or not self._free_riders:
            return
        v.rider = self._free_riders.pop(self._rng.randrange(len(self._free_riders)))
        v.status = Status.RIDING
        v.route = tuple(self.zone.route(v.position, self.zone.random_destination(v.position, self._rng)))
        v.destination = v.route[-1]
        v.speed_mps = PROFILES[v.kind].speed_mps * self._rng.uniform(0.85, 1.15)
        event = v.event(now_ms, EventType.UNLOCK)
        v.unlock_seq = event.seq
        v.next_telemetry_at = t + self._telemetry_interval_ms(v)
        if self.metering is not None:
            event = replace(event, consent=self._consent(v, event, now_ms))
        out.append(event)

    def _consent(self, v: Vehicle, unlock: Event, now_ms: int) -> RideConsent:
        """The consent the rider's app signs at the unlock; the ride's meter starts."""
        assert self.metering is not None and v.rider is not None
        count = self._rides_of.get(v.rider, 0)
        self._rides_of[v.rider] = count + 1
        consent = ride_consent(
            self._rider_keys[v.rider],
            self.domain,
            vehicle_id=v.vehicle_id,
            tariff_id=self.metering.tariff_of(v.kind),
            nonce=nonce_at(now_ms, count),
            now_ms=now_ms,
            cap_micro=self.metering.cap_micro,
            valid_ms=self.metering.valid_ms,
        )
        trip_id = trip_id_for(v.vehicle_id, unlock.seq)
        next_ms = now_ms + self.metering.interval_ms
        self._rides[v.vehicle_id] = _Ride(consent, trip_id, now_ms, unlock.odometer_m, next_ms)
        return consent

    def _voucher(self, v: Vehicle, ride: _Ride, now_ms: int) -> Voucher:
        """The app's next voucher: the running fare so far, from the vehicle's odometer and the time ridden."""
        assert self.metering is not None and v.rider is not None
        running = self.metering.fare_of(v.kind, int(v.odometer) - ride.start_odometer_m, now_ms - ride.start_ms)
        key = self._rider_keys[v.rider]
        ride.voucher = next_voucher(key, self.domain, ride.consent, ride.trip_id, running, ride.voucher)
        return ride.voucher

    def _lock(self, v: Vehicle, now_ms: int, t: int) -> Event:
        assert v.rider is not None
        v.speed_mps = 0.0
        event = v.event(now_ms, EventType.LOCK, trip_seq=v.unlock_seq)
        ride = self._rides.pop(v.vehicle_id, None)
        if ride is not None and now_ms < ride.consent.expiry_ms:
            event = replace(event, voucher=self._voucher(v, ride, now_ms))
        self.completed_trips.append(CompletedTrip(v.vehicle_id, v.unlock_seq, event.seq, v.rider))
        self._free_riders.append(v.rider)
        v.rider, v.destination, v.status = None, None, Status.PARKED
        v.next_trip_at = t + self._idle_ms()
        v.next_telemetry_at = t + self._telemetry_interval_ms(v)
        return event

    def _demand(self, now_ms: int) -> Arrivals:
        """The riders' arrivals, from the fleet's start on."""
        if self._arrivals is None:
            assert self.config.demand is not None
            start = self._start_ms if self._start_ms is not None else now_ms
            rng = demand_rng(self.config.seed)
            self._arrivals = Arrivals(self.config.demand, self.zone, rng, start, self.config.utc_offset_s)
        return self._arrivals

    def _serve(self, arrival: Arrival, now_ms: int, t: int, out: list[Message]) -> None:
        """A rider walks to the nearest vehicle not on a trip: it is taken, or refuses (faulty, battery low)."""
        assert self.config.demand is not None
        v = nearest(self.vehicles, arrival.position, self.config.demand.walk_m, self._offline)
        self.demand_stats["arrivals"] += 1
        if v is None:
            self.demand_stats["no_vehicle"] += 1
        elif v.status is Status.FAULTY:
            self.demand_stats["faulty"] += 1
        elif not v.rentable():
            self.demand_stats["battery_low"] += 1
            out.append(v.event(now_ms, EventType.BATTERY_LOW))
        else:
            self._unlock(v, now_ms, t, out)
            self.demand_stats["unlocked" if v.status is Status.RIDING else "no_rider"] += 1

    def _strike(self, v: Vehicle, now_ms: int, t: int, out: list[Message]) -> None:
        """The faults of a parked vehicle after a reading: it drops off the network, or a sensor fails."""
        away_s = self._faults.goes_offline()
        if away_s is not None:
            out.append(v.state(now_ms, online=False))  # what its last will says
            self._offline[v.vehicle_id] = t + max(1, round(away_s * 1000))
        elif (sensor := self._faults.sensor_fault()) is not None:
            v.status, v.fault = Status.FAULTY, sensor
            v.fault_until = t + _exp_ms(self._faults.rng, self.config.mean_fault_s)
            out.append(v.event(now_ms, EventType.FAULT, detail=sensor))

    def _back_online(self, v: Vehicle, now_ms: int, t: int, out: list[Message]) -> bool:
        """Whether ``v``, offline, is back by ``t`` (then it says so, and reports at once)."""
        if t < self._offline[v.vehicle_id]:
            return False
        del self._offline[v.vehicle_id]
        out.append(v.state(now_ms, online=True))
        v.next_telemetry_at = t
        return True

    def _dock(self, stations: Sequence[Position] | None) -> None:
        """Stand ``docked_share`` of the bikes at the stations inside the zone, in turn."""
        bikes = [v for v in self.vehicles if v.kind is VehicleKind.BIKE]
        docked = round(len(bikes) * self.config.docked_share)
        if not docked:
            return
        try:
            shipped = stations if stations is not None else load_stations()
        except FileNotFoundError:
            raise ValueError("docked bikes need the stations (simulator/data/stations.geojson)") from None
        places = [p for p in shipped if self.zone.contains(p)]
        if not places:
            raise ValueError("docked bikes need a station inside the zone")
        for i, v in enumerate(bikes[:docked]):
            v.position = places[i % len(places)]

    def _new_vehicle(self, number: int, kind: VehicleKind) -> Vehicle:
        rng = self._rng
        battery = None if PROFILES[kind].drain_pct_per_km is None else round(rng.uniform(30.0, 100.0), 1)
        return Vehicle(
            vehicle_id=f"{kind.value}-{number:04d}",
            operator=self.config.operator,
            kind=kind,
            owner=self.owners[(number - 1) % len(self.owners)],
            position=self.zone.random_point(rng),
            odometer=float(rng.randrange(0, 2_000_000)),
            battery=battery,
            next_trip_at=self._idle_ms(),
            next_fault_at=self._fault_gap_ms(),
            next_telemetry_at=rng.randrange(int(self.config.parked_interval_s * 1000) + 1),
            seq=self.config.first_seq - 1,
        )

    def _telemetry_interval_ms(self, v: Vehicle) -> int:
        moving = v.status is Status.RIDING
        seconds = self.config.moving_interval_s if moving else self.config.parked_interval_s
        return max(1, round(seconds * 1000))

    def _idle_ms(self) -> int:
        return _exp_ms(self._rng, self.config.mean_idle_s)

    def _fault_gap_ms(self) -> int:
        if self.config.faults_per_hour == 0:
            return NEVER
        return _exp_ms(self._rng, 3600 / self.config.faults_per_hour)


def _exp_ms(rng: random.Random, mean_s: float) -> int:
    """An exponentially distributed wait with mean ``mean_s``, in whole milliseconds."""
    return round(rng.expovariate(1.0 / (mean_s * 1000)))


def _kinds(config: FleetConfig, rng: random.Random) -> list[VehicleKind]:
    """The fleet's kinds, apportioned to ``config.mix`` by largest remainder and shuffled."""
    total = sum(weight for _, weight in config.mix)
    quotas = [config.vehicles * weight / total for _, weight in config.mix]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (counts[i] - quotas[i], i))
    for i in by_remainder[: config.vehicles - sum(counts)]:
        counts[i] += 1
    kinds = [kind for (kind, _), count in zip(config.mix, counts, strict=True) for _ in range(count)]
    rng.shuffle(kinds)
    return kinds
