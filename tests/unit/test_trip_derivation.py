"""Trips derived batch by batch from unlocks and locks paired by seq, whatever their delivery order."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from sensors.address import Address
from sensors.messages import Event, EventType, Position, VehicleKind
from settlement.bounds import DEFAULT_BOUNDS, Bounds, KindBounds
from settlement.fares import DEFAULT_TARIFFS, Fare, price
from settlement.lifecycle import TripStatus
from settlement.reasons import RejectCode
from settlement.trips import Derivation, TripRecord, derive, expire, trip_ids_named, vehicles_named

BIKE, CAR = "bike-0001", "car-0002"
T0 = 1_790_000_000_000
HERE, NEAR = Position(51.2150, 4.3960), Position(51.2170, 4.4000)
PAYEE = Address(b"\x11" * 20)
DAY_MS = 86_400_000


def unlock(seq: int, t_s: float, odo: int = 1000, vehicle: str = BIKE, pos: Position = HERE) -> Event:
    kind = VehicleKind.CAR if vehicle.startswith("car") else VehicleKind.BIKE
    return Event(vehicle, "op", kind, seq, T0 + round(t_s * 1000), EventType.UNLOCK, pos, odo, rider="r1")


def lock(seq: int, trip_seq: int | None, t_s: float, odo: int, vehicle: str = BIKE, pos: Position = NEAR) -> Event:
    kind = VehicleKind.CAR if vehicle.startswith("car") else VehicleKind.BIKE
    at = T0 + round(t_s * 1000)
    return Event(vehicle, "op", kind, seq, at, EventType.LOCK, pos, odo, rider="r1", trip_seq=trip_seq)


class Trips:
    """A fake trip store that loads what ``derive`` needs and saves what it returns."""

    def __init__(self, bounds: Bounds = DEFAULT_BOUNDS, payee: Address | None = PAYEE) -> None:
        self.records: dict[str, TripRecord] = {}
        self.bounds = bounds
        self.payee = payee
        self.lookups: list[tuple[str, int]] = []

    def payee_of(self, vehicle_id: str, at_ms: int) -> Address | None:
        self.lookups.append((vehicle_id, at_ms))
        return self.payee

    def feed(self, *batch: Event) -> Derivation:
        vehicles = vehicles_named(batch)
        known = {i: self.records[i] for i in trip_ids_named(batch) if i in self.records}
        known |= {i: r for i, r in self.records.items() if r.vehicle_id in vehicles and r.awaiting}
        result = derive(batch, known, payee_of=self.payee_of, tariffs=DEFAULT_TARIFFS, bounds=self.bounds)
        self.records |= {r.trip_id: r for r in result.changed}
        return result

    def expire(self, watermark_ms: int) -> tuple[TripRecord, ...]:
        expired = expire(self.records.values(), watermark_ms, self.bounds)
        self.records |= {r.trip_id: r for r in expired}
        return expired

    def status(self) -> dict[str, tuple[TripStatus, str | None]]:
        return {i: (r.status, r.reason) for i, r in sorted(self.records.items())}

    def one(self, trip_id: str) -> TripRecord:
        return self.records[trip_id]


def feed_each(trips: Trips, events: Iterable[Event]) -> None:
    for event in events:
        trips.feed(event)


PRICED = (TripStatus.PRICED, None)


def test_an_unlock_and_its_lock_make_one_priced_trip_paid_to_the_payee_at_the_unlock_time() -> None:
    trips = Trips()
    result = trips.feed(unlock(1, 0, odo=1000), lock(2, 1, 600.2, odo=3000))
    [trip] = result.changed
    assert (trip.trip_id, trip.status, trip.reason) == (f"{BIKE}:1", TripStatus.PRICED, None)
    assert (trip.start and trip.start.seq, trip.end and trip.end.seq) == (1, 2)
    assert (trip.distance_m, trip.duration_s, trip.rider, trip.payee) == (2000, 601, "r1", PAYEE)
    assert trip.fare == price(2000, 601, DEFAULT_TARIFFS[VehicleKind.BIKE])
    assert trips.lookups == [(BIKE, T0)]
    assert result.anomalies == ()


def test_the_order_attack_unlock_1_lock_4_lock_2_unlock_3_gives_exactly_trips_1_to_2_and_3_to_4() -> None:
    events = [unlock(1, 0, 0), lock(4, 3, 900, 3000), lock(2, 1, 300, 1000), unlock(3, 600, 1000)]
    for batches in ([events], [[e] for e in events]):
        trips = Trips()
        for batch in batches:
            trips.feed(*batch)
        assert trips.status() == {f"{BIKE}:1": PRICED, f"{BIKE}:3": PRICED}
        first, second = trips.one(f"{BIKE}:1"), trips.one(f"{BIKE}:3")
        assert (first.start and first.start.seq, first.end and first.end.seq, first.distance_m) == (1, 2, 1000)
        assert (second.start and second.start.seq, second.end and second.end.seq, second.distance_m) == (3, 4, 2000)


def test_a_lock_that_arrives_first_opens_its_trip_and_the_late_unlock_completes_it() -> None:
    trips = Trips()
    [opened] = trips.feed(lock(8, 5, 120, 1400)).changed
    assert (opened.status, opened.start, opened.end and opened.end.seq) == (TripStatus.OPEN, None, 8)
    [done] = trips.feed(unlock(5, 0, 1000)).changed
    assert (done.status, done.distance_m, done.duration_s) == (TripStatus.PRICED, 400, 120)


def test_a_repeated_half_changes_nothing_in_the_same_batch_or_later() -> None:
    trips = Trips()
    first = trips.feed(unlock(1, 0), unlock(1, 0), lock(2, 1, 60, 1100), lock(2, 1, 60, 1100))
    assert len(first.changed) == 1 and first.anomalies == ()
    assert trips.feed(lock(2, 1, 60, 1100), unlock(1, 0)) == Derivation()


def test_a_second_different_lock_for_an_ended_trip_is_an_anomaly_and_changes_nothing() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0), lock(2, 1, 60, 1100))
    before = trips.one(f"{BIKE}:1")
    forged = lock(7, 1, 90_000, 10**15)
    assert trips.feed(forged) == Derivation(anomalies=((forged, RejectCode.LOCK_TWICE),))
    assert trips.one(f"{BIKE}:1") == before


def test_a_late_lock_of_a_trip_already_in_an_epoch_changes_nothing() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0), lock(2, 1, 60, 1100))
    batched = trips.one(f"{BIKE}:1").with_status(TripStatus.BATCHED)
    trips.records[batched.trip_id] = batched
    assert trips.feed(lock(2, 1, 60, 1100), unlock(1, 0)) == Derivation()
    assert trips.feed(lock(3, 1, 70, 1200)).anomalies[0][1] is RejectCode.LOCK_TWICE
    assert trips.one(f"{BIKE}:1") == batched


@pytest.mark.parametrize("trip_seq", [None, 5, 6, -1])
def test_a_lock_that_names_no_earlier_unlock_is_a_bad_pair(trip_seq: int | None) -> None:
    trips = Trips()
    bad = lock(5, trip_seq, 60, 1100)
    assert trips.feed(bad) == Derivation(anomalies=((bad, RejectCode.BAD_PAIR),))
    assert trip_ids_named([bad]) == set()


def test_an_unlock_left_open_by_a_later_trip_is_held_as_unlock_twice_and_revived_by_its_late_lock() -> None:
    trips = Trips()
    feed_each(trips, [unlock(1, 0, 1000), unlock(3, 600, 1500), lock(4, 3, 900, 2500)])
    assert trips.status() == {f"{BIKE}:1": (TripStatus.REJECTED, RejectCode.UNLOCK_TWICE), f"{BIKE}:3": PRICED}
    [revived] = trips.feed(lock(2, 1, 300, 1500)).changed
    assert (revived.trip_id, revived.status, revived.distance_m) == (f"{BIKE}:1", TripStatus.PRICED, 500)


def test_an_unlock_arriving_after_the_lock_of_a_later_trip_is_held_as_unlock_twice_at_once() -> None:
    trips = Trips()
    trips.feed(unlock(3, 600, 1500), lock(4, 3, 900, 2500))
    later = trips.one(f"{BIKE}:3")
    # the store adds the vehicle's latest ended trip to what it loads, so the rule needs no history scan
    result = derive(
        [unlock(1, 0, 1000)],
        {later.trip_id: later},
        payee_of=trips.payee_of,
        tariffs=DEFAULT_TARIFFS,
        bounds=DEFAULT_BOUNDS,
    )
    [held] = result.changed
    assert (held.trip_id, held.status, held.reason) == (f"{BIKE}:1", TripStatus.REJECTED, RejectCode.UNLOCK_TWICE)


def test_an_open_trip_whose_lock_is_overdue_is_held_as_no_lock_and_then_as_unlock_twice() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0))
    assert trips.expire(T0 + 13 * 3_600_000 + 1)[0].reason == RejectCode.NO_LOCK
    trips.feed(unlock(3, 50_000), lock(4, 3, 50_600, 2000))
    assert trips.one(f"{BIKE}:1").reason == RejectCode.UNLOCK_TWICE


def test_a_lock_with_no_unlock_stays_open_then_expires_as_no_unlock_and_a_late_unlock_revives_it() -> None:
    trips = Trips()
    trips.feed(lock(9, 7, 0, 5000))
    limit_ms = DEFAULT_BOUNDS.open_limit_ms(VehicleKind.BIKE)
    assert trips.expire(T0 + limit_ms) == ()  # not overdue yet, in event time
    [expired] = trips.expire(T0 + limit_ms + 1)
    assert (expired.status, expired.reason) == (TripStatus.REJECTED, RejectCode.NO_UNLOCK)
    assert trips.expire(T0 + 10 * limit_ms) == ()  # held, not expired again
    [revived] = trips.feed(unlock(7, -300, 4000)).changed
    assert (revived.status, revived.reason, revived.distance_m) == (TripStatus.PRICED, None, 1000)


def test_an_open_car_trip_waits_longer_than_a_bike_trip() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0), unlock(1, 0, vehicle=CAR))
    expired = trips.expire(T0 + DAY_MS)
    assert [r.trip_id for r in expired] == [f"{BIKE}:1"]
    assert trips.one(f"{CAR}:1").status is TripStatus.OPEN


def test_a_held_trip_whose_late_half_breaks_a_bound_is_rejected_for_that_bound() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0))
    trips.expire(T0 + 2 * DAY_MS)
    [late] = trips.feed(lock(2, 1, 3 * 86_400, 3000)).changed
    assert (late.status, late.reason) == (TripStatus.REJECTED, RejectCode.TRIP_TOO_LONG)


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (unlock(1, 0, 1000), lock(2, 1, 600, 10**15), RejectCode.TRIP_TOO_FAR),
        (unlock(1, 0, 1000), lock(2, 1, 3 * 86_400, 3000), RejectCode.TRIP_TOO_LONG),
        (unlock(1, 0, 1000), lock(2, 1, 60, 5000), RejectCode.TRIP_TOO_FAST),
        (unlock(1, 0, 1000, pos=Position(51.0, 4.0)), lock(2, 1, 60, 1500), RejectCode.TRIP_TOO_FAST),
        (unlock(1, 0, 5000), lock(2, 1, 600, 1000), RejectCode.ODOMETER_BACKWARDS),
        (unlock(1, 600, 1000), lock(2, 1, 0, 1000), RejectCode.BAD_PAIR),
    ],
)
def test_a_trip_outside_the_bounds_is_rejected_with_its_reason_and_never_priced(
    start: Event, end: Event, reason: RejectCode
) -> None:
    trips = Trips()
    [trip] = trips.feed(end, start).changed
    assert (trip.status, trip.reason, trip.fare) == (TripStatus.REJECTED, reason, None)
    assert trips.feed(lock(3, 1, 700, 1100)).anomalies[0][1] is RejectCode.LOCK_TWICE
    assert trips.one(trip.trip_id) == trip


def test_a_trip_dearer_than_its_kinds_fare_cap_is_rejected() -> None:
    capped = KindBounds(max_speed_mps=12.0, max_trip_s=43_200, max_trip_m=150_000, max_fare_micro=1_000_000)
    trips = Trips(bounds=Bounds({**DEFAULT_BOUNDS.per_kind, VehicleKind.BIKE: capped}))
    trips.feed(unlock(1, 0), lock(2, 1, 660, 2000), unlock(3, 700), lock(4, 3, 760, 1200))
    assert trips.status() == {f"{BIKE}:1": (TripStatus.REJECTED, RejectCode.FARE_CAP), f"{BIKE}:3": PRICED}
    assert trips.one(f"{BIKE}:3").fare == Fare(500_000, 50_000, 0)


def test_a_trip_of_a_vehicle_not_registered_at_its_unlock_is_rejected() -> None:
    trips = Trips(payee=None)
    [trip] = trips.feed(unlock(1, 0), lock(2, 1, 60, 1100)).changed
    assert (trip.status, trip.reason, trip.payee) == (TripStatus.REJECTED, RejectCode.NOT_REGISTERED_THEN, None)


def test_events_of_several_vehicles_in_one_batch_each_make_their_own_trips() -> None:
    trips = Trips()
    result = trips.feed(
        lock(2, 1, 60, 1100, vehicle=CAR), unlock(1, 0), unlock(1, 0, vehicle=CAR), lock(2, 1, 60, 1100)
    )
    assert [r.trip_id for r in result.changed] == [f"{BIKE}:1", f"{CAR}:1"]
    assert {r.status for r in result.changed} == {TripStatus.PRICED}
    assert result.changed[1].fare == price(100, 60, DEFAULT_TARIFFS[VehicleKind.CAR])


def test_other_events_are_ignored_and_name_no_trip_or_vehicle() -> None:
    fault = Event(BIKE, "op", VehicleKind.BIKE, 4, T0, EventType.FAULT, HERE, 1000, detail="brakes")
    assert Trips().feed(fault) == Derivation()
    assert trip_ids_named([fault]) == set() and vehicles_named([fault]) == set()


def test_a_record_that_changes_several_times_in_a_batch_is_returned_once_in_its_last_version() -> None:
    trips = Trips()
    trips.feed(unlock(1, 0))
    trips.expire(T0 + 2 * DAY_MS)
    result = trips.feed(lock(2, 1, 60, 1100), unlock(3, 100), lock(4, 3, 160, 1200))
    assert [(r.trip_id, r.status) for r in result.changed] == [
        (f"{BIKE}:1", TripStatus.PRICED),
        (f"{BIKE}:3", TripStatus.PRICED),
    ]


def test_the_rider_comes_from_the_unlock_whichever_half_comes_first() -> None:
    start = unlock(1, 0)
    end = Event(BIKE, "op", VehicleKind.BIKE, 2, T0 + 60_000, EventType.LOCK, NEAR, 1100, rider="r2", trip_seq=1)
    assert Trips().feed(start, end).changed[0].rider == "r1"
    trips = Trips()
    trips.feed(end)
    assert trips.feed(start).changed[0].rider == "r1"


def test_a_batch_names_the_trips_and_vehicles_whose_records_the_store_must_load() -> None:
    batch = [unlock(1, 0), lock(9, 7, 60, 1100, vehicle=CAR), lock(12, 12, 70, 1100)]
    assert trip_ids_named(batch) == {f"{BIKE}:1", f"{CAR}:7"}
    assert vehicles_named(batch) == {BIKE, CAR}
