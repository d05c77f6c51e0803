"""The zone polygon and the geometry helpers of the simulator."""

from __future__ import annotations

import json
import random

import pytest

from sensors.messages import Position
from simulator.zone import distance_m, load_zone, parse_zone, point_in_ring, step_toward

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


def test_random_points_are_inside_the_zone_and_repeat_with_the_seed() -> None:
    zone = load_zone()
    rng, again = random.Random(3), random.Random(3)
    points = [zone.random_point(rng) for _ in range(300)]
    assert all(zone.contains(p) for p in points)
    assert points == [zone.random_point(again) for _ in range(300)]
    assert len(set(points)) == len(points)


def test_a_random_destination_is_reachable_in_a_straight_line_inside_the_zone() -> None:
    zone = load_zone()
    rng = random.Random(5)
    for _ in range(100):
        origin = zone.random_point(rng)
        destination = zone.random_destination(origin, rng)
        assert zone.sees(origin, destination)


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
