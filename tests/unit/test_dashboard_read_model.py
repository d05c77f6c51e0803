"""The dashboard's read side without a database: vehicle updates with receipt time and fault code, the cursors of
each vehicle sort, the aggregator stamping vehicles in memory, and the memory read model (the dashboard's fake)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sensors.messages import Event, EventType
from sensors.signing import sign
from sensors.wire import VehicleStatus
from settlement.aggregator import Aggregator
from settlement.enrolment import enrol, trust_operator
from settlement.memory import MemoryReadModel, MemoryState, MemoryUnitOfWork
from settlement.vehicles import latest_updates
from settlement.views import (
    VEHICLE_SORTS,
    InvalidCursor,
    ReadModel,
    VehicleView,
    check_sort,
    cursor_after,
    vehicle_cursor,
)
from tests.money import fake_money
from tests.signed import OPERATOR, SignedFleet, key_of

T0 = 1_790_000_000_000  # the devices' time, a simulation running years ahead of …
WALL_S = 1_700_000_000.0  # … the platform's wall clock
# what a test reads of a vehicle: (state, fault code, received_ms, online)
Seen = tuple[str, str | None, int | None, bool]


def fault(fleet: SignedFleet, vehicle: str, seq: int, ts: int, code: str | None) -> Event:
    event = fleet.event(vehicle, seq, EventType.FAULT, ts)
    return sign(dataclasses.replace(event, detail=code, signature=None), key_of(vehicle), fleet.domain)


def test_a_fault_event_carries_its_code_and_any_other_state_change_clears_it(fleet: SignedFleet) -> None:
    events = [
        fault(fleet, "bike-1", 5, T0, "motor"),
        fault(fleet, "bike-2", 5, T0, None),
        fleet.event("car-1", 5, EventType.FAULT_CLEARED, T0),
    ]
    updates = {u.vehicle_id: u for u in latest_updates([*events, fleet.telemetry("bike-1", 4, T0)], received_ms=7)}
    assert (updates["bike-1"].state, updates["bike-1"].fault_code) == (VehicleStatus.NON_OPERATIONAL, "motor")
    assert (updates["bike-2"].state, updates["bike-2"].fault_code) == (VehicleStatus.NON_OPERATIONAL, "")
    assert (updates["car-1"].state, updates["car-1"].fault_code) == (VehicleStatus.AVAILABLE, None)
    assert {u.received_ms for u in updates.values()} == {7}
    (long,) = latest_updates([fault(fleet, "bike-1", 6, T0, "x" * 256)])
    assert long.fault_code == "x" * 64  # a device's long detail is cut, never refused
    (telemetry,) = latest_updates([fleet.telemetry("bike-1", 9, T0)])
    assert (telemetry.state, telemetry.fault_code, telemetry.received_ms) == (None, None, None)


def vehicle_story(aggregator: Aggregator, fleet: SignedFleet, clock: list[float], seen: Callable[[], Seen]) -> None:
    """A vehicle reports, faults, reports while broken, sends a late reading, is repaired, goes offline and faults
    with a long code; the row follows, stamped with the platform's clock at each change (not the device's)."""

    def at(step: int, *messages: object) -> Seen:
        clock[0] = WALL_S + step
        aggregator.handle([fleet.received(m) for m in messages])  # type: ignore[arg-type]
        return seen()

    wall = int(WALL_S * 1000)
    assert at(0, fleet.telemetry("bike-1", 1, T0)) == ("available", None, wall, True)
    assert at(5, fault(fleet, "bike-1", 2, T0 + 1_000, "motor")) == ("non_operational", "motor", wall + 5_000, True)
    assert at(10, fleet.telemetry("bike-1", 4, T0 + 2_000)) == ("non_operational", "motor", wall + 10_000, True)
    assert at(15, fleet.telemetry("bike-1", 3, T0 + 1_500)) == ("non_operational", "motor", wall + 10_000, True)
    cleared = fleet.event("bike-1", 5, EventType.FAULT_CLEARED, T0 + 3_000)
    assert at(20, cleared) == ("available", None, wall + 20_000, True)
    assert at(25, fleet.state("bike-1", T0 + 4_000, online=False)) == ("available", None, wall + 25_000, False)
    long = fault(fleet, "bike-1", 6, T0 + 5_000, "y" * 200)  # a long code is cut, the row still updated
    assert at(30, long) == ("non_operational", "y" * 64, wall + 30_000, True)


def test_the_aggregator_stamps_a_vehicle_with_its_receipt_time_and_fault_code(
    state: MemoryState, fleet: SignedFleet
) -> None:
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, 0)
    enrol(uow, fleet.registrations(), fleet.domain, 0)
    clock = [WALL_S]
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=3600.0, clock=lambda: clock[0])
    aggregator.attach_contract()

    def seen() -> Seen:
        v = state.vehicles["bike-1"]
        return (v.state, v.fault_code, v.received_ms, v.online)

    vehicle_story(aggregator, fleet, clock, seen)


def view(**changes: object) -> VehicleView:
    base = VehicleView("bike-1", "op", "bicycle", None, "available", True, 55.0, 51.2, 4.4, T0, T0 + 5, None, T0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("made", VEHICLE_SORTS)
@pytest.mark.parametrize("used", VEHICLE_SORTS)
def test_a_vehicle_cursor_names_its_sort_and_another_sort_refuses_it(made: str, used: str) -> None:
    cursor = cursor_after(view(), sort=made)
    if made == used:
        value, vehicle_id = vehicle_cursor(cursor, used)
        assert vehicle_id == "bike-1" and value == {"vehicle_id": None, "-received_ms": T0 + 5}.get(made, 55.0)
    else:
        with pytest.raises(InvalidCursor):
            vehicle_cursor(cursor, used)


def test_a_vehicle_without_a_battery_or_receipt_time_has_a_cursor_past_the_values() -> None:
    assert vehicle_cursor(cursor_after(view(battery_pct=None), sort="battery_pct"), "battery_pct") == (None, "bike-1")
    missing = view(received_ms=None)
    assert vehicle_cursor(cursor_after(missing, sort="-received_ms"), "-received_ms") == (None, "bike-1")


def test_an_id_cursor_keeps_its_old_form_so_pages_handed_out_before_still_work() -> None:
    assert cursor_after(view()) == cursor_after(view(), sort="vehicle_id") == "WyJiaWtlLTEiXQ"


def test_an_unknown_sort_is_a_value_error_naming_the_sorts() -> None:
    assert check_sort("-battery_pct") == "-battery_pct"
    with pytest.raises(ValueError, match="vehicle_id, battery_pct"):
        cursor_after(view(), sort="owner")
    with pytest.raises(ValueError, match="unknown sort"):
        check_sort("battery_pct; drop table vehicles")


def fleet_of(n: int) -> MemoryReadModel:
    views = [
        view(vehicle_id=f"bike-{i:02d}", battery_pct=None if i % 4 == 0 else float(i % 3), received_ms=T0 + i % 2)
        for i in range(n)
    ]
    return MemoryReadModel(vehicle_views=views[::-1])


def test_the_memory_read_model_is_a_read_model_and_pages_every_sort_in_order() -> None:
    model: ReadModel = fleet_of(10)
    by_battery, cursor = [], None
    while page := model.vehicles(3, cursor, sort="-battery_pct"):
        by_battery += [v.vehicle_id for v in page]
        cursor = cursor_after(page[-1], sort="-battery_pct")
    assert by_battery == ["bike-02", "bike-05", "bike-01", "bike-07", "bike-03", "bike-06", "bike-09",
                          "bike-00", "bike-04", "bike-08"]  # fmt: skip
    assert [v.vehicle_id for v in model.fleet()] == [f"bike-{i:02d}" for i in range(10)]
    with pytest.raises(InvalidCursor):
        model.vehicles(3, cursor, sort="battery_pct")


def test_the_memory_read_model_filters_like_the_sql_one_and_refuses_what_it_refuses() -> None:
    model = fleet_of(12)
    assert [v.vehicle_id for v in model.vehicles(search="KE-1")] == ["bike-10", "bike-11"]
    assert model.vehicles(state="on_trip") == [] and len(model.vehicles(online=True)) == 12
    with pytest.raises(ValueError, match="not an owner address"):
        model.vehicles(owner="0xnot")
    with pytest.raises(ValueError, match="unknown sort"):
        model.vehicles(sort="-owner")
    assert [v.vehicle_id for v in model.vehicles_received_since(T0 + 1)] == [f"bike-{i:02d}" for i in range(1, 12, 2)]
