"""Trip building from unlock/lock events and fares in integer micro-euro."""

from __future__ import annotations

import pytest

from sensors.geo import distance_m
from sensors.messages import Event, EventType, Position, VehicleKind
from settlement.fares import DEFAULT_TARIFFS, Tariff, format_eur, price
from settlement.trips import build_trip, pair_events, trip_id_for

OWNER = "0x" + "11" * 20
A, B = Position(51.2150, 4.3960), Position(51.2170, 4.4000)


def event(seq: int, kind: EventType, t_s: int, odo: int, pos: Position = A, rider: str = "r1") -> Event:
    return Event("bike-0001", "op", VehicleKind.BIKE, seq, 1_790_000_000_000 + t_s * 1000, kind, pos, odo, rider=rider)


def test_a_lock_is_paired_with_the_unlock_before_it_whatever_the_arrival_order() -> None:
    unlock, lock = event(3, EventType.UNLOCK, 0, 100), event(9, EventType.LOCK, 600, 2100, B)
    again, relock = event(12, EventType.UNLOCK, 900, 2100), event(15, EventType.LOCK, 1000, 2500)
    assert pair_events([relock, lock, again, unlock]) == [(unlock, lock), (again, relock)]


def test_a_lock_without_an_unlock_and_a_repeated_unlock_are_left_unpaired() -> None:
    orphan = event(2, EventType.LOCK, 0, 0)
    first, second, lock = (
        event(3, EventType.UNLOCK, 1, 0),
        event(4, EventType.UNLOCK, 2, 0),
        event(5, EventType.LOCK, 9, 5),
    )
    assert pair_events([orphan, first, second, lock]) == [(second, lock)]


def test_a_trip_takes_its_distance_from_the_odometer_and_its_id_from_the_unlock() -> None:
    trip = build_trip(event(3, EventType.UNLOCK, 0, 100), event(9, EventType.LOCK, 601, 2100, B), OWNER)
    assert trip.trip_id == trip_id_for("bike-0001", 3) == "bike-0001:3"
    assert (trip.distance_m, trip.duration_s, trip.owner, trip.rider) == (2000, 601, OWNER, "r1")


def test_a_trip_with_a_reset_odometer_falls_back_to_the_straight_line() -> None:
    trip = build_trip(event(3, EventType.UNLOCK, 0, 5000), event(9, EventType.LOCK, 60, 10, B), OWNER)
    assert trip.distance_m == round(distance_m(A, B))
    assert 300 < trip.distance_m < 400


def test_a_lock_of_another_vehicle_cannot_end_a_trip() -> None:
    with pytest.raises(ValueError):
        build_trip(event(9, EventType.UNLOCK, 0, 0), event(3, EventType.LOCK, 60, 10), OWNER)


def test_a_bike_fare_is_unlock_plus_time_rounded_up_to_the_micro_euro() -> None:
    trip = build_trip(event(1, EventType.UNLOCK, 0, 0), event(2, EventType.LOCK, 61, 300), OWNER)
    fare = price(trip, Tariff(unlock_micro=500_000, per_minute_micro=50_000))
    assert fare.unlock_micro == 500_000
    assert fare.time_micro == 50_834  # 61 s x 50,000 / 60 = 50,833.33 -> rounded up
    assert fare.distance_micro == 0
    assert fare.total_micro == 550_834


def test_a_car_fare_adds_a_price_per_km() -> None:
    trip = build_trip(event(1, EventType.UNLOCK, 0, 0), event(2, EventType.LOCK, 600, 2345), OWNER)
    fare = price(trip, DEFAULT_TARIFFS[VehicleKind.CAR])
    assert fare.time_micro == 3_000_000  # 10 min x 0.30 EUR
    assert fare.distance_micro == 586_250  # 2.345 km x 0.25 EUR
    assert isinstance(fare.total_micro, int)


def test_a_tariff_refuses_fractional_or_negative_money() -> None:
    with pytest.raises(ValueError):
        Tariff(unlock_micro=0.5, per_minute_micro=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Tariff(unlock_micro=-1, per_minute_micro=1)


@pytest.mark.parametrize(
    ("micro", "text"), [(0, "€0.00"), (1_234_999, "€1.23"), (1_235_000, "€1.24"), (-5_000_000, "-€5.00")]
)
def test_euro_display_rounds_half_up_to_the_cent(micro: int, text: str) -> None:
    assert format_eur(micro) == text
