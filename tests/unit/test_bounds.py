"""Plausibility bounds per vehicle kind: readings and trips that cannot be true are turned away with a reason."""

from __future__ import annotations

import pytest

from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind
from settlement.bounds import DEFAULT_BOUNDS, Bounds, KindBounds, check_reading, check_step, check_trip
from settlement.fares import DEFAULT_TARIFFS, price
from settlement.reasons import RejectCode
from settlement.trips import Mark

T0 = 1_790_000_000_000
HERE = Position(51.2150, 4.3960)
KM_EAST = Position(51.2150, 4.4104)  # about 1 km east of HERE


def reading(speed_mps: float = 4.0, odo: int = 1000, kind: VehicleKind = VehicleKind.BIKE, **kw: object) -> Telemetry:
    fields: dict[str, object] = {"seq": 1, "timestamp": T0, "position": HERE} | kw
    return Telemetry("v-1", "op", kind, speed_mps=speed_mps, odometer_m=odo, **fields)  # type: ignore[arg-type]


def mark(t_s: int, odo: int, at: Position = HERE) -> Mark:
    return Mark(seq=t_s, timestamp_ms=T0 + t_s * 1000, lat=at.lat, lon=at.lon, odometer_m=odo)


def test_a_reading_of_a_plausible_vehicle_passes() -> None:
    assert check_reading(reading(), DEFAULT_BOUNDS) is None
    assert check_reading(reading(speed_mps=20.0, kind=VehicleKind.CAR), DEFAULT_BOUNDS) is None


@pytest.mark.parametrize("kind", list(VehicleKind))
def test_a_reported_speed_of_500_km_h_is_implausible_for_every_kind(kind: VehicleKind) -> None:
    assert check_reading(reading(speed_mps=500 / 3.6, kind=kind), DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_SPEED


def test_a_negative_speed_is_implausible() -> None:
    assert check_reading(reading(speed_mps=-1.0), DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_SPEED


@pytest.mark.parametrize("odo", [10**15, 10**19, -1])
def test_an_odometer_beyond_any_vehicles_life_is_implausible_in_telemetry_and_events(odo: int) -> None:
    event = Event("v-1", "op", VehicleKind.CAR, 2, T0, EventType.LOCK, HERE, odo, trip_seq=1)
    assert check_reading(reading(odo=odo), DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_ODOMETER
    assert check_reading(event, DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_ODOMETER


def test_a_timestamp_too_far_ahead_of_the_receivers_clock_is_turned_away() -> None:
    ahead = reading(timestamp=T0 + DEFAULT_BOUNDS.max_future_skew_ms + 1)
    assert check_reading(ahead, DEFAULT_BOUNDS, now_ms=T0) is RejectCode.FUTURE_TIMESTAMP
    assert check_reading(ahead, DEFAULT_BOUNDS, now_ms=T0 + 1) is None
    assert check_reading(ahead, DEFAULT_BOUNDS) is None  # without a clock, time is not judged


def test_two_readings_a_vehicle_could_not_have_made_in_the_time_between_are_implausible() -> None:
    first = reading(seq=1, odo=1000)
    ok = reading(seq=2, timestamp=T0 + 120_000, odo=2000, position=KM_EAST)
    assert check_step(first, ok, DEFAULT_BOUNDS) is None
    assert check_step(ok, first, DEFAULT_BOUNDS) is None  # taken in seq order whatever the arrival
    jump = reading(seq=2, timestamp=T0 + 10_000, odo=10**6)
    assert check_step(first, jump, DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_ODOMETER
    back = reading(seq=2, timestamp=T0 + 10_000, odo=900)
    assert check_step(first, back, DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_ODOMETER
    teleport = reading(seq=2, timestamp=T0 + 10_000, odo=1000, position=KM_EAST)
    assert check_step(first, teleport, DEFAULT_BOUNDS) is RejectCode.IMPLAUSIBLE_SPEED


def test_a_plausible_trip_passes_every_bound() -> None:
    assert check_trip(VehicleKind.BIKE, mark(0, 0), mark(300, 1200, KM_EAST), 1200, 300, DEFAULT_BOUNDS) is None


@pytest.mark.parametrize(
    ("distance_m", "duration_s", "end_at", "reason"),
    [
        (3000, 3 * 86_400, HERE, RejectCode.TRIP_TOO_LONG),  # a lock three days after its unlock
        (10**15, 600, HERE, RejectCode.TRIP_TOO_FAR),  # an odometer jump of 10^15 m
        (9000, 600, HERE, RejectCode.TRIP_TOO_FAST),  # 15 m/s on average by odometer
        (500, 60, KM_EAST, RejectCode.TRIP_TOO_FAST),  # 1 km in a straight line in one minute
        (5, 0, HERE, None),  # under a second is judged as one second
        (20, 0, HERE, RejectCode.TRIP_TOO_FAST),
    ],
)
def test_a_trip_outside_its_kinds_bounds_gets_the_reason_of_the_first_bound_it_breaks(
    distance_m: int, duration_s: int, end_at: Position, reason: RejectCode | None
) -> None:
    end = mark(duration_s, distance_m, end_at)
    assert check_trip(VehicleKind.BIKE, mark(0, 0), end, distance_m, duration_s, DEFAULT_BOUNDS) is reason


def test_gps_noise_is_forgiven_in_the_straight_line_speed_of_a_short_trip() -> None:
    near = Position(HERE.lat + 0.0003, HERE.lon)  # about 33 m away
    assert check_trip(VehicleKind.BIKE, mark(0, 0), mark(1, 5, near), 5, 1, DEFAULT_BOUNDS) is None


def test_a_car_may_go_farther_and_longer_than_a_bike() -> None:
    for distance_m, duration_s in ((160_000, 5 * 3600), (2000, 20 * 3600)):
        args = (mark(0, 0), mark(duration_s, distance_m), distance_m, duration_s, DEFAULT_BOUNDS)
        assert check_trip(VehicleKind.CAR, *args) is None
        assert check_trip(VehicleKind.BIKE, *args) is not None


def test_the_longest_plausible_trip_of_each_kind_fits_under_its_fare_cap_at_the_default_tariff() -> None:
    for kind, limits in DEFAULT_BOUNDS.per_kind.items():
        fare = price(limits.max_trip_m, limits.max_trip_s, DEFAULT_TARIFFS[kind])
        assert fare.total_micro <= limits.max_fare_micro, kind


def test_bounds_are_configured_per_kind_from_settings_over_the_defaults() -> None:
    bounds = Bounds.from_mapping({"car": {"max_speed_mps": "14", "max_trip_s": 7200}, "open_grace_ms": 60_000})
    assert bounds.of(VehicleKind.CAR) == KindBounds(14.0, 7200, 1_000_000, 1_000_000_000)
    assert bounds.of(VehicleKind.BIKE) == DEFAULT_BOUNDS.of(VehicleKind.BIKE)
    assert (bounds.open_grace_ms, bounds.max_odometer_m) == (60_000, DEFAULT_BOUNDS.max_odometer_m)
    assert bounds.open_limit_ms(VehicleKind.CAR) == 7_260_000
    assert Bounds.from_mapping({}) == DEFAULT_BOUNDS


@pytest.mark.parametrize(
    "settings",
    [
        {"train": {"max_speed_mps": 50}},
        {"car": {"max_speed": 14}},
        {"car": 14},
        {"car": {"max_speed_mps": 0}},
        {"car": {"max_speed_mps": "fast"}},
        {"car": {"max_speed_mps": float("nan")}},
        {"bike": {"max_trip_s": 1.5}},
        {"bike": {"max_fare_micro": -1}},
        {"bike": {"max_trip_m": True}},
        {"open_grace_ms": 0},
    ],
)
def test_bounds_that_are_unknown_or_not_positive_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Bounds.from_mapping(settings)


def test_bounds_must_cover_every_kind_and_cannot_be_changed_afterwards() -> None:
    with pytest.raises(ValueError, match="car"):
        Bounds({kind: DEFAULT_BOUNDS.of(kind) for kind in VehicleKind if kind is not VehicleKind.CAR})
    with pytest.raises(TypeError):
        DEFAULT_BOUNDS.per_kind[VehicleKind.CAR] = DEFAULT_BOUNDS.of(VehicleKind.BIKE)  # type: ignore[index]
