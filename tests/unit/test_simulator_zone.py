"""The zone polygon and the geometry helpers of the simulator."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from sensors.messages import Position
from simulator.streets import segment_distance_m
from simulator.zone import (
    STREET_MARGIN_M,
    Zone,
    distance_m,
    load_zone,
    parse_zone,
    point_in_ring,
    step_toward,
    walk,
)

INSIDE = Position(51.2164, 4.3981)  # named as inside in shared/data/smart-zone/README.md
CENTRAL_STATION = Position(51.2172, 4.4211)
SQUARE = (Position(0, 0), Position(0, 1), Position(1, 1), Position(1, 0))


def test_the_shipped_zone_is_sint_andries_with_its_documented_bbox() -> None:
    zone = load_zone()
    assert zone.name == "Sint-Andries"
    assert len(zone.ring) == 67
    assert zone.bbox == (51.211685, 4.390121, 51.218991, 4.402249)


def test_a_point_in_sint_andries_is_inside_and_the_central_station_is_not() -> None:
    zone = load_zone()
    assert zone.contains(INSIDE)
    assert not zone.contains(CENTRAL_STATION)


def test_ray_casting_tells_inside_from_outside_a_square() -> None:
    assert point_in_ring(Position(0.5, 0.5), SQUARE)
    assert not point_in_ring(Position(1.5, 0.5), SQUARE)
    assert not point_in_ring(Position(0.5, -0.1), SQUARE)


def _polygon() -> Zone:
    """The shipped zone without its streets: vehicles anywhere in the polygon, riding in straight lines."""
    return replace(load_zone(), streets=None)


def test_without_streets_random_points_are_inside_the_zone_and_repeat_with_the_seed() -> None:
    zone = _polygon()
    rng, again = random.Random(3), random.Random(3)
    points = [zone.random_point(rng) for _ in range(300)]
    assert all(zone.contains(p) for p in points)
    assert points == [zone.random_point(again) for _ in range(300)]
    assert len(set(points)) == len(points)


def test_without_streets_a_random_destination_is_reachable_in_a_straight_line_inside_the_zone() -> None:
    zone = _polygon()
    rng = random.Random(5)
    for _ in range(100):
        origin = zone.random_point(rng)
        destination = zone.random_destination(origin, rng)
        assert zone.sees(origin, destination)
        assert zone.route(origin, destination) == [origin, destination]


def test_with_streets_random_points_lie_on_the_zones_streets_and_repeat_with_the_seed() -> None:
    zone = load_zone()
    assert zone.streets is not None
    rng, again = random.Random(3), random.Random(3)
    points = [zone.random_point(rng) for _ in range(300)]
    assert points == [zone.random_point(again) for _ in range(300)]
    assert all(zone.streets.distance_to_streets_m(p) < 0.05 for p in points)
    assert all(zone.near(p, STREET_MARGIN_M) for p in points)
    assert sum(zone.contains(p) for p in points) > 200  # most inside; the rest on the streets that bound it


def test_the_distance_to_the_boundary_is_zero_on_a_vertex_and_grows_outside() -> None:
    zone = load_zone()
    vertex = zone.ring[0]
    assert zone.distance_to_boundary_m(vertex) == pytest.approx(0.0, abs=1e-6)
    east = Position(vertex.lat, vertex.lon + 0.001)  # about 70 m east of the zone's easternmost part
    assert 60 < zone.distance_to_boundary_m(east) < 80
    assert not zone.near(east) and zone.near(INSIDE)


def test_walking_a_route_goes_through_its_points_and_stops_after_the_metres_given() -> None:
    a, b, c = Position(51.2120, 4.3950), Position(51.2130, 4.3950), Position(51.2130, 4.3960)
    first = distance_m(a, b)
    position, left, gone = walk(a, (a, b, c), first + 10.0)
    assert left == (b, c) and gone == pytest.approx(first + 10.0, abs=0.02)
    assert position.lat == b.lat and distance_m(b, position) == pytest.approx(10.0, abs=0.02)
    assert walk(position, left, 1_000.0) == (c, (), pytest.approx(distance_m(position, c)))
    assert walk(a, (a,), 5.0) == (a, (), 0.0)


def test_many_short_steps_along_a_long_leg_do_not_drift_off_it() -> None:
    a, b = Position(51.21278, 4.39407), Position(51.213117, 4.396797)  # a 194 m street edge
    position: Position = a
    left: tuple[Position, ...] = (a, b)
    while left:
        position, left, _ = walk(position, left, 1.3)
        assert segment_distance_m(position, a, b) < 0.012  # one rounding to 7 decimals, never more


def test_a_segment_to_a_point_outside_is_not_seen() -> None:
    assert not load_zone().sees(INSIDE, CENTRAL_STATION)


def test_a_thousandth_of_a_degree_of_latitude_is_about_111_metres() -> None:
    a, b = Position(51.2, 4.4), Position(51.201, 4.4)
    assert distance_m(a, b) == pytest.approx(111.19, abs=0.01)
    assert distance_m(a, b) == distance_m(b, a)
    assert distance_m(a, a) == 0


def test_a_step_moves_the_given_distance_toward_the_destination() -> None:
    a, b = Position(51.2120, 4.3950), Position(51.2180, 4.4000)
    moved = step_toward(a, b, 100.0)
    assert distance_m(a, moved) == pytest.approx(100.0, abs=0.05)
    assert distance_m(moved, b) == pytest.approx(distance_m(a, b) - 100.0, abs=0.05)


def test_a_step_longer_than_the_way_left_ends_exactly_at_the_destination() -> None:
    a, b = Position(51.2120, 4.3950), Position(51.2121, 4.3951)
    assert step_toward(a, b, 1_000.0) == b
    assert step_toward(a, b, 0.0) == a


def test_a_zone_must_be_a_polygon() -> None:
    text = json.dumps({"features": [{"geometry": {"type": "Point", "coordinates": [4.4, 51.2]}}]})
    with pytest.raises(ValueError, match="Polygon"):
        parse_zone(text)
