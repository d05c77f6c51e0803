"""The display status of a vehicle, its compact row and the counts per status; the zone's polygon."""

from __future__ import annotations

import json

import pytest

from dashboard import fleet
from dashboard.config import Thresholds
from dashboard.geo import load_zone, parse_polygon
from tests.unit.test_changes_fakes import FAR_OUTSIDE, INSIDE, T0, Vehicle

LIMITS = Thresholds(low_battery_pct=20.0, offline_after_s=300)


def status(view: Vehicle, now: int = T0 + 1000) -> str:
    return fleet.display_status(view, now, LIMITS)


def test_an_idle_vehicle_heard_from_recently_is_available() -> None:
    assert status(Vehicle("s-1")) == "available"


def test_a_fault_outranks_everything_even_a_last_will() -> None:
    assert status(Vehicle("s-1", fault_code="E42", online=False, state="on_trip", battery_pct=3)) == "fault"
    assert status(Vehicle("s-1", state="non_operational")) == "fault"
    assert status(Vehicle("s-1", fault_code="")) == "fault"


def test_a_last_will_or_silence_beyond_the_threshold_is_offline() -> None:
    assert status(Vehicle("s-1", online=False)) == "offline"
    assert status(Vehicle("s-1"), now=T0 + 300_000) == "available"
    assert status(Vehicle("s-1"), now=T0 + 300_001) == "offline"
    assert status(Vehicle("s-1", received_ms=None)) == "offline"


def test_offline_outranks_a_trip_and_a_trip_outranks_a_low_battery() -> None:
    assert status(Vehicle("s-1", state="on_trip", online=False)) == "offline"
    assert status(Vehicle("s-1", state="on_trip", battery_pct=5)) == "on_trip"


def test_low_battery_is_strictly_below_the_threshold() -> None:
    assert status(Vehicle("s-1", battery_pct=19.9)) == "low_battery"
    assert status(Vehicle("s-1", battery_pct=20.0)) == "available"
    assert status(Vehicle("s-1", battery_pct=None)) == "available"


def test_a_row_follows_the_columns_rounding_the_battery_and_position() -> None:
    view = Vehicle("s-1", battery_pct=55.5555, lat=51.21534567891, lon=4.3962123456, owner=None)
    row = fleet.row(view, T0, LIMITS)
    assert dict(zip(fleet.COLUMNS, row, strict=True)) == {
        "vehicle_id": "s-1",
        "kind": "scooter",
        "status": "available",
        "battery_pct": 55.6,
        "lat": 51.215346,
        "lon": 4.396212,
        "received_ms": T0,
        "owner": None,
    }
    assert json.loads(json.dumps(row)) == row


def test_counts_name_every_status_with_zeros() -> None:
    views = [Vehicle("a"), Vehicle("b", online=False), Vehicle("c", battery_pct=3), Vehicle("d", battery_pct=2)]
    assert fleet.counts_of(views, T0, LIMITS) == {
        "available": 1, "on_trip": 0, "low_battery": 2, "offline": 1, "fault": 0,
    }  # fmt: skip


def test_the_shipped_zone_holds_its_middle_and_not_a_point_kilometres_away() -> None:
    zone = load_zone()
    assert zone.contains(*INSIDE)
    assert zone.outside_m(*INSIDE) == 0
    assert not zone.contains(*FAR_OUTSIDE)
    assert 3000 < zone.outside_m(*FAR_OUTSIDE) < 10_000


def test_distance_outside_a_square_is_measured_to_its_nearest_edge() -> None:
    square = {"type": "Polygon", "coordinates": [[[4.0, 51.0], [4.01, 51.0], [4.01, 51.01], [4.0, 51.01], [4.0, 51.0]]]}
    zone = parse_polygon(json.dumps({"type": "FeatureCollection", "features": [{"geometry": square}]}))
    assert zone.contains(51.005, 4.005)
    assert zone.outside_m(51.0101, 4.005) == pytest.approx(11.1, abs=0.2)  # 0.0001 degree of latitude north


def test_a_zone_that_is_not_a_polygon_is_refused() -> None:
    line = {"type": "LineString", "coordinates": [[4.0, 51.0], [4.01, 51.0]]}
    with pytest.raises(ValueError, match="expected a Polygon"):
        parse_polygon(json.dumps({"features": [{"geometry": line}]}))
