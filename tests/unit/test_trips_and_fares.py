"""Trip records and their life cycle, and fares in integer micro-euro."""

from __future__ import annotations

import pytest

from sensors.messages import Event, EventType, Position, VehicleKind
from settlement import pricing
from settlement.fares import DEFAULT_TARIFFS, Fare, Tariff, format_eur, price
from settlement.lifecycle import HELD_REASONS, IllegalTransition, TripStatus
from settlement.pricing import FareBreakdown, PricingPlan
from settlement.reasons import RejectCode
from settlement.trips import Mark, TripRecord, trip_id_for


def record(status: TripStatus = TripStatus.OPEN, reason: str | None = None) -> TripRecord:
    return TripRecord("bike-0001:3", "bike-0001", "op", VehicleKind.BIKE, status, reason=reason)


def test_a_trip_is_named_by_its_vehicle_and_the_seq_of_its_unlock() -> None:
    assert trip_id_for("bike-0001", 3) == "bike-0001:3"
    assert record().unlock_seq == 3
    assert TripRecord("gw:car:7:12", "gw:car:7", "op", VehicleKind.CAR, TripStatus.OPEN).unlock_seq == 12


def test_a_mark_keeps_where_and_when_an_event_happened() -> None:
    event = Event("bike-0001", "op", VehicleKind.BIKE, 9, 1_790_000_000_000, EventType.LOCK, Position(51.2, 4.4), 2100)
    assert Mark.of(event) == Mark(seq=9, timestamp_ms=1_790_000_000_000, lat=51.2, lon=4.4, odometer_m=2100)


def test_a_trip_moves_only_along_its_life_cycle() -> None:
    priced = record().with_status(TripStatus.COMPLETE).with_status(TripStatus.PRICED)
    assert priced.with_status(TripStatus.BATCHED).status is TripStatus.BATCHED
    with pytest.raises(IllegalTransition):
        record().with_status(TripStatus.PRICED)  # open cannot skip completion
    with pytest.raises(IllegalTransition):
        priced.with_status(TripStatus.OPEN)
    unpaid = priced.with_status(TripStatus.REJECTED, RejectCode.INSUFFICIENT_DEPOSIT)  # its rider cannot pay
    assert not unpaid.held and not unpaid.awaiting
    with pytest.raises(IllegalTransition):
        unpaid.with_status(TripStatus.COMPLETE)  # final: a later deposit does not revive it


def test_a_trip_held_for_a_missing_half_can_come_back_but_a_bounds_rejection_is_final() -> None:
    held = record().with_status(TripStatus.REJECTED, RejectCode.NO_LOCK)
    assert held.held and held.awaiting
    assert held.with_status(TripStatus.COMPLETE).reason is None
    final = record(TripStatus.COMPLETE).with_status(TripStatus.REJECTED, RejectCode.TRIP_TOO_FAR)
    assert not final.held and not final.awaiting
    with pytest.raises(IllegalTransition):
        final.with_status(TripStatus.COMPLETE)


def test_a_rejection_needs_a_reason_and_nothing_else_takes_one() -> None:
    with pytest.raises(ValueError):
        record().with_status(TripStatus.REJECTED)
    with pytest.raises(ValueError):
        record().with_status(TripStatus.COMPLETE, RejectCode.NO_LOCK)


def test_every_held_reason_is_a_reason_code() -> None:
    assert HELD_REASONS <= {code.value for code in RejectCode}


def test_a_bike_fare_is_unlock_plus_each_started_minute() -> None:
    fare = price(300, 61, DEFAULT_TARIFFS[VehicleKind.BIKE])
    assert fare.unlock_micro == 500_000
    assert fare.time_micro == 100_000  # 61 s is 2 started minutes x 50,000 (per started second it was 50,834)
    assert fare.distance_micro == 0
    assert fare.total_micro == 600_000
    assert price(300, 60, DEFAULT_TARIFFS[VehicleKind.BIKE]).total_micro == 550_000


def test_a_car_fare_adds_a_price_per_started_km() -> None:
    fare = price(2345, 600, DEFAULT_TARIFFS[VehicleKind.CAR])
    assert fare.time_micro == 3_000_000  # 10 min x 0.30 EUR
    assert fare.distance_micro == 750_000  # 3 started km x 0.25 EUR (per metre it was 586,250)
    assert fare.total_micro == 3_750_000


def test_the_default_tariffs_are_the_pricing_plans_of_each_kind() -> None:
    assert Tariff is PricingPlan and Fare is FareBreakdown
    assert {kind: plan.plan_id for kind, plan in DEFAULT_TARIFFS.items()} == {kind: kind.value for kind in VehicleKind}
    for distance_m, duration_s in ((0, 0), (1, 1), (999, 59), (1000, 60), (1001, 61), (12_345, 3_599)):
        for plan in DEFAULT_TARIFFS.values():
            assert price(distance_m, duration_s, plan) == pricing.price(plan, distance_m, duration_s)


@pytest.mark.parametrize(("distance_m", "duration_s"), [(-1, 60), (100, -1), (1.5, 60), (100, 60.0), (True, 60)])
def test_only_a_whole_non_negative_distance_and_duration_are_priced(distance_m: int, duration_s: int) -> None:
    with pytest.raises(ValueError):
        price(distance_m, duration_s, DEFAULT_TARIFFS[VehicleKind.CAR])


def test_a_tariff_refuses_fractional_or_negative_money() -> None:
    with pytest.raises(ValueError):
        Tariff("p", price_micro=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Tariff("p", price_micro=-1)


@pytest.mark.parametrize(
    ("micro", "text"), [(0, "€0.00"), (1_234_999, "€1.23"), (1_235_000, "€1.24"), (-5_000_000, "-€5.00")]
)
def test_euro_display_rounds_half_up_to_the_cent(micro: int, text: str) -> None:
    assert format_eur(micro) == text
