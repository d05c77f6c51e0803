"""Any permutation, duplication, delay and batching of a run's events gives the trips of the in-order run."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.address import Address
from sensors.messages import Event, EventType, Position, VehicleKind
from settlement.bounds import DEFAULT_BOUNDS, Bounds, KindBounds
from settlement.fares import DEFAULT_TARIFFS
from settlement.lifecycle import TripStatus
from settlement.reasons import RejectCode
from settlement.trips import Derivation, TripRecord, derive, expire, trip_ids_named, vehicles_named
from simulator.fleet import Fleet, FleetConfig

T0 = 1_790_000_000_000
MINUTE_MS = 60_000
SPEED_MPS = {VehicleKind.BIKE: 4.5, VehicleKind.EBIKE: 6.0, VehicleKind.SCOOTER: 5.0, VehicleKind.CAR: 8.0}
# tight bounds, so that a one-hour run has trips that are too long, too dear and overdue halves that expire
BOUNDS = Bounds(
    {
        **DEFAULT_BOUNDS.per_kind,
        VehicleKind.BIKE: KindBounds(12.0, 20 * 60, 20_000, 50_000_000),
        VehicleKind.EBIKE: KindBounds(15.0, 25 * 60, 20_000, 50_000_000),
        VehicleKind.CAR: KindBounds(25.0, 30 * 60, 50_000, 5_000_000),
    },
    open_grace_ms=5 * MINUTE_MS,
)


@dataclass(frozen=True)
class Run:
    """The events of a seeded run in the order they were sent, and each vehicle's payee and registration time."""

    events: tuple[Event, ...]
    payees: dict[str, Address]
    registered_from: dict[str, int]

    def payee_of(self, vehicle_id: str, at_ms: int) -> Address | None:
        return self.payees[vehicle_id] if at_ms >= self.registered_from[vehicle_id] else None


@functools.cache
def fleet_run(seed: int, vehicles: int = 10, minutes: int = 45) -> Run:
    """The events of the simulated fleet stepped every 2 s for ``minutes``, its open trips locked at the end."""
    fleet = Fleet(FleetConfig(vehicles=vehicles, seed=seed, faults_per_hour=2.0))
    events: list[Event] = []
    for second in range(0, minutes * 60 + 1, 2):
        events += (m for m in fleet.step(T0 + second * 1000) if isinstance(m, Event))
    events += fleet.finish(T0 + (minutes * 60 + 2) * 1000)
    payees = {v.vehicle_id: v.owner for v in fleet.vehicles}
    return Run(tuple(events), payees, dict.fromkeys(payees, T0))


@functools.cache
def made_run(seed: int, vehicles: int = 10, minutes: int = 60) -> Run:
    """Vehicles riding for ``minutes``, with faults, lost halves, forged odometers and late registrations."""
    rng = random.Random(seed)
    events: list[Event] = []
    registered: dict[str, int] = {}
    for number in range(1, vehicles + 1):
        kind = rng.choice(list(SPEED_MPS))
        vehicle = f"{kind.value}-{number:04d}"
        registered[vehicle] = T0 + (rng.randrange(40 * MINUTE_MS) if rng.random() < 0.2 else 0)
        events += _vehicle_events(rng, vehicle, kind, T0 + minutes * MINUTE_MS)
    events.sort(key=lambda e: (e.timestamp, e.vehicle_id, e.seq))
    payees = {vehicle: Address(vehicle.encode().ljust(20, b"\0")[:20]) for vehicle in registered}
    return Run(tuple(events), payees, registered)


def _vehicle_events(rng: random.Random, vehicle: str, kind: VehicleKind, until_ms: int) -> list[Event]:
    seq, t = rng.randrange(50), T0 + rng.randrange(5 * MINUTE_MS)
    odometer, lat, lon = rng.randrange(2_000_000), 51.21 + rng.uniform(-0.01, 0.01), 4.40 + rng.uniform(-0.01, 0.01)
    out: list[Event] = []

    def emit(event_type: EventType, at: int, odo: int, rider: str | None = None, trip_seq: int | None = None) -> int:
        nonlocal seq
        seq += rng.randint(1, 3)  # telemetry between events takes seqs too
        where = Position(lat, lon)
        out.append(Event(vehicle, "op", kind, seq, at, event_type, where, odo, rider=rider, trip_seq=trip_seq))
        return seq

    while t < until_ms:
        t += round(rng.expovariate(1 / (4 * MINUTE_MS)))
        if rng.random() < 0.15:
            emit(EventType.FAULT, t, odometer)
            t += rng.randrange(1, 10 * MINUTE_MS)
            emit(EventType.FAULT_CLEARED, t, odometer)
        lost, rider = rng.random(), f"rider-{rng.randrange(50)}"
        unlock_seq = emit(EventType.UNLOCK, t, odometer, rider)
        if lost < 0.05:  # 5 %: the unlock is lost
            out.pop()
        ride_ms = round(rng.expovariate(1 / (10 * MINUTE_MS))) + 1000
        metres = round(SPEED_MPS[kind] * rng.uniform(0.8, 1.2) * ride_ms / 1000)
        bearing = rng.uniform(0, 2 * math.pi)
        lat += 0.7 * metres * math.cos(bearing) / 111_320
        lon += 0.7 * metres * math.sin(bearing) / (111_320 * math.cos(math.radians(lat)))
        t += ride_ms
        forged = rng.random()
        end_odo = odometer + (10**9 if forged < 0.03 else -500 if forged < 0.05 else metres)
        lock_rider = rider if rng.random() < 0.5 else None  # some locks do not name their rider
        if not 0.05 <= lost < 0.1:  # 5 %: the lock is lost (the next unlock leaves this trip open)
            emit(EventType.LOCK, t, end_odo, lock_rider, trip_seq=unlock_seq)
        odometer += metres
    return out


class FakeTripStore:
    """A dict of trip records, indexed as a real store would: awaiting trips and the latest lock per vehicle."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.records: dict[str, TripRecord] = {}
        self.awaiting: dict[str, set[str]] = {}
        self.latest_lock: dict[str, TripRecord] = {}
        self.anomalies: list[tuple[Event, RejectCode]] = []

    def feed(self, batch: Sequence[Event]) -> Derivation:
        known = {i: self.records[i] for i in trip_ids_named(batch) if i in self.records}
        for vehicle in vehicles_named(batch):
            known |= {i: self.records[i] for i in self.awaiting.get(vehicle, ())}
            if vehicle in self.latest_lock:
                known[self.latest_lock[vehicle].trip_id] = self.latest_lock[vehicle]
        result = derive(batch, known, payee_of=self.run.payee_of, tariffs=DEFAULT_TARIFFS, bounds=BOUNDS)
        self.save(result.changed)
        self.anomalies += result.anomalies
        return result

    def expire(self, watermark_ms: int) -> None:
        open_ones = (self.records[i] for ids in self.awaiting.values() for i in ids)
        self.save(expire(open_ones, watermark_ms, BOUNDS))

    def batch_some(self, rng: random.Random, epoch_id: int) -> None:
        """Move some priced trips into an epoch, as the epoch planner would between two batches."""
        priced = [r for r in self.records.values() if r.status is TripStatus.PRICED and rng.random() < 0.5]
        self.save([r.with_status(TripStatus.BATCHED) for r in priced], epoch_id)

    def save(self, records: Iterable[TripRecord], epoch_id: int | None = None) -> None:
        for record in records:
            if epoch_id is not None:
                record = replace(record, epoch_id=epoch_id)
            self.records[record.trip_id] = record
            waiting = self.awaiting.setdefault(record.vehicle_id, set())
            (waiting.add if record.awaiting else waiting.discard)(record.trip_id)
            latest = self.latest_lock.get(record.vehicle_id)
            if record.end is not None and (latest is None or latest.unlock_seq <= record.unlock_seq):
                self.latest_lock[record.vehicle_id] = record

    def outcome(self) -> dict[str, tuple[object, ...]]:
        """Every trip as settlement sees it; a batched trip counts as the priced trip it was."""
        return {
            i: (
                TripStatus.PRICED if r.status is TripStatus.BATCHED else r.status,
                r.reason,
                r.start,
                r.end,
                r.rider,
                r.payee,
                r.distance_m,
                r.duration_s,
                r.fare,
            )
            for i, r in self.records.items()
        }


def deliver(run: Run, batches: Iterable[Sequence[Event]], rng: random.Random | None = None) -> FakeTripStore:
    """Feed ``batches`` in turn, expiring at the running event time (and, given ``rng``, batching some trips)."""
    store, watermark = FakeTripStore(run), 0
    for epoch_id, batch in enumerate(batches, start=1):
        store.feed(batch)
        watermark = max([watermark, *(e.timestamp for e in batch)])
        store.expire(watermark)
        if rng is not None and rng.random() < 0.3:
            store.batch_some(rng, epoch_id)
    store.expire(max(e.timestamp for e in run.events))
    return store


def in_order(run: Run) -> dict[str, tuple[object, ...]]:
    store = deliver(run, [run.events])
    assert store.anomalies == []
    return store.outcome()


def scrambled(run: Run, rng: random.Random) -> list[list[Event]]:
    """The run's events repeated at random, shuffled and cut into batches of random sizes."""
    events = list(run.events) + [e for e in run.events if rng.random() < 0.2]
    rng.shuffle(events)
    batches: list[list[Event]] = []
    while events:
        size = rng.choice((1, 1, 2, 5, 20))
        batches.append(events[:size])
        events = events[size:]
    return batches


def check_any_delivery(run: Run, plan: int) -> None:
    """Deliver ``run`` scrambled by the seed ``plan`` (a seed rather than drawn choices: a run has ~100 events)."""
    rng = random.Random(plan)
    store = deliver(run, scrambled(run, rng), rng)
    assert store.anomalies == []
    assert store.outcome() == in_order(run)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 5), plan=st.integers(0, 2**64))
def test_any_permutation_duplication_and_batching_of_a_fleet_run_gives_the_trips_of_the_in_order_run(
    seed: int, plan: int
) -> None:
    check_any_delivery(fleet_run(seed), plan)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), plan=st.integers(0, 2**64))
def test_the_same_holds_with_lost_halves_forged_odometers_and_late_registrations(seed: int, plan: int) -> None:
    check_any_delivery(made_run(seed), plan)


def test_the_in_order_fleet_run_gives_exactly_the_trips_the_fleet_completed() -> None:
    for seed in range(3):
        run = fleet_run(seed)
        fleet = Fleet(FleetConfig(vehicles=10, seed=seed, faults_per_hour=2.0))
        for second in range(0, 45 * 60 + 1, 2):
            fleet.step(T0 + second * 1000)
        fleet.finish(T0 + (45 * 60 + 2) * 1000)
        trips = in_order(run)
        assert set(trips) == {t.trip_id for t in fleet.completed_trips}
        for trip in fleet.completed_trips:
            start, end = trips[trip.trip_id][2:4]
            assert (start.seq, end.seq) == (trip.unlock_seq, trip.lock_seq)  # type: ignore[attr-defined]


def test_the_in_order_run_pairs_every_lock_with_the_unlock_it_names() -> None:
    for seed in range(5):
        run = made_run(seed)
        trips = in_order(run)
        for lock in (e for e in run.events if e.event_type is EventType.LOCK):
            start, end = trips[f"{lock.vehicle_id}:{lock.trip_seq}"][2:4]
            assert end is not None and end.seq == lock.seq  # type: ignore[attr-defined]
            assert start is None or start.seq == lock.trip_seq  # type: ignore[attr-defined]


def test_the_runs_reach_every_outcome_the_property_is_about() -> None:
    runs = [made_run(seed) for seed in range(20)] + [fleet_run(seed) for seed in range(3)]
    seen = {(status, reason) for run in runs for status, reason, *_ in in_order(run).values()}
    rejected = {reason for status, reason in seen if status is TripStatus.REJECTED}
    assert (TripStatus.PRICED, None) in seen
    assert {
        RejectCode.NO_LOCK,
        RejectCode.NO_UNLOCK,
        RejectCode.UNLOCK_TWICE,
        RejectCode.TRIP_TOO_LONG,
        RejectCode.TRIP_TOO_FAR,
        RejectCode.ODOMETER_BACKWARDS,
        RejectCode.FARE_CAP,
        RejectCode.NOT_REGISTERED_THEN,
    } <= rejected


def test_a_run_delivered_backwards_one_event_at_a_time_gives_the_trips_of_the_in_order_run() -> None:
    for run in [made_run(seed) for seed in range(5)] + [fleet_run(0)]:
        assert deliver(run, [[e] for e in reversed(run.events)]).outcome() == in_order(run)
