"""The street network: the shipped data, the graph, routes along the edges, and a fleet that keeps to the streets."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime
from importlib import resources
from itertools import pairwise
from pathlib import Path

import networkx as nx
import pytest

from sensors.messages import Event, EventType, Message, Position, Telemetry
from simulator.fleet import Fleet, FleetConfig
from simulator.scenario import Scenario, load_scenario, shipped_scenario
from simulator.stations import load_stations
from simulator.streets import StreetGraph, load_streets, path_length_m, segment_distance_m, street_graph
from simulator.zone import STREET_MARGIN_M, distance_m, load_zone
from smartzone.parts import make_fleet
from smartzone.settings import Settings

START_MS = 1_767_225_600_000
ON_LINE_M = 0.05
"""How far a point may be from a line and still be on it: coordinates keep 7 decimals (about 1 cm)."""
STREET_PROPERTIES = {
    "name",
    "highway",
    "oneway",
    "kind",
    "straatnaam_id",
    "wijken",
    "geometry_source",
    "approximate",
    "u",
    "v",
    "length_m",
}


def _data(name: str) -> dict:
    return json.loads(resources.files("simulator").joinpath("data", name).read_text("utf-8"))


def _zone_streets() -> StreetGraph:
    streets = load_zone().streets
    assert streets is not None
    return streets


def _on_an_edge_segment(graph: StreetGraph, p: Position, q: Position) -> bool:
    """Whether ``p`` and ``q`` both lie on one segment of one edge's polyline."""
    return any(
        segment_distance_m(p, a, b) < ON_LINE_M and segment_distance_m(q, a, b) < ON_LINE_M
        for street in graph.streets
        for a, b in pairwise(street.points)
    )


def _run(fleet: Fleet, seconds: int, tick_s: int = 1) -> list[Message]:
    out: list[Message] = []
    for t in range(0, seconds + 1, tick_s):
        out.extend(fleet.step(START_MS + t * 1000))
    return out


def test_the_shipped_street_file_is_the_documented_graph_of_one_component() -> None:
    graph = load_streets()
    assert (len(graph.nodes), graph.graph.number_of_edges()) == (109, 159)
    assert graph.components == (109,) and graph.dropped == (0, 0)
    assert len({s.name for s in graph.streets}) == 73
    assert graph.length_m == pytest.approx(13_300, rel=0.01)
    assert load_streets() is graph  # read once


def test_the_shipped_files_keep_the_properties_a_surveyed_file_must_have() -> None:
    features = _data("streets.geojson")["features"]
    graph = load_streets()
    file_ids: dict[int, Position] = {}
    for feature, street in zip(features, graph.streets, strict=True):
        properties = feature["properties"]
        assert set(properties) == STREET_PROPERTIES
        assert properties["approximate"] is True and properties["name"] == street.name
        assert street.length_m == pytest.approx(properties["length_m"], rel=0.01)  # the file's own estimate
        for file_id, node in ((properties["u"], street.u), (properties["v"], street.v)):
            assert file_ids.setdefault(file_id, graph.nodes[node]) == graph.nodes[node]
    assert len(file_ids) == 109 and len(set(file_ids.values())) == 109  # the file's ids are the line ends
    stations = _data("stations.geojson")["features"]
    assert len(stations) == 16
    for station in stations:
        assert {"station_id", "name", "capacity", "address", "inside_zone"} <= set(station["properties"])
    readme = resources.files("simulator").joinpath("data", "README.md").read_text("utf-8")
    assert "Bron: Stad Antwerpen (open geodata)" in readme and "Velo Antwerpen (GBFS)" in readme


def test_the_zone_keeps_the_streets_inside_it_or_along_its_boundary_as_one_component() -> None:
    zone, streets = load_zone(), _zone_streets()
    assert (len(streets.nodes), streets.graph.number_of_edges()) == (90, 133)
    assert streets.components == (90,)
    assert all(zone.near(p, STREET_MARGIN_M) for street in streets.streets for p in street.points)


def test_every_route_goes_along_the_edges_from_its_start_to_its_end() -> None:
    streets = _zone_streets()
    rng = random.Random(11)
    for _ in range(40):
        a, b = streets.random_point_on_streets(rng), streets.random_point_on_streets(rng)
        route = streets.route(a, b)
        assert distance_m(route[0], a) < ON_LINE_M and distance_m(route[-1], b) < ON_LINE_M
        assert all(_on_an_edge_segment(streets, p, q) for p, q in pairwise(route))


def test_a_route_between_nodes_is_as_long_as_the_networkx_shortest_path() -> None:
    streets = _zone_streets()
    nodes = list(streets.nodes)
    rng = random.Random(4)
    for _ in range(40):
        a, b = rng.sample(nodes, 2)
        route = streets.route(streets.nodes[a], streets.nodes[b])
        expected = nx.shortest_path_length(streets.graph, a, b, weight="length")
        assert path_length_m(route) == pytest.approx(expected, abs=0.01)
        assert (route[0], route[-1]) == (streets.nodes[a], streets.nodes[b])


def test_a_route_along_one_edge_stays_on_it_and_is_never_longer_than_going_round() -> None:
    street = max(_zone_streets().streets, key=lambda s: s.length_m)
    a, b = street.along(10.0), street.along(street.length_m - 10.0)
    route = _zone_streets().route(a, b)
    assert path_length_m(route) == pytest.approx(street.length_m - 20.0, abs=0.05)
    assert _zone_streets().route(a, a) == [a]


def test_routes_go_round_the_blocks_not_across_them() -> None:
    streets = _zone_streets()
    rng = random.Random(2)
    detours = []
    for _ in range(40):
        a, b = streets.random_point_on_streets(rng), streets.random_point_on_streets(rng)
        if distance_m(a, b) > 100:
            detours.append(path_length_m(streets.route(a, b)) / distance_m(a, b))
    assert min(detours) >= 0.999 and max(detours) > 1.2


def test_the_nearest_node_of_a_node_is_itself_and_points_snap_onto_the_streets() -> None:
    streets = _zone_streets()
    assert all(streets.nearest_node(p) == n for n, p in streets.nodes.items())
    somewhere = Position(51.2150, 4.3960)
    snapped = streets.nearest_point(somewhere)
    assert streets.distance_to_streets_m(snapped) < ON_LINE_M
    assert streets.distance_to_streets_m(somewhere) == pytest.approx(distance_m(somewhere, snapped), abs=ON_LINE_M)


def test_a_random_destination_is_on_the_streets_away_from_the_origin_and_repeats_with_the_seed() -> None:
    streets = _zone_streets()
    rng, again = random.Random(9), random.Random(9)
    origin = streets.random_point_on_streets(rng)
    again.random()
    destinations = [streets.random_destination(rng, origin) for _ in range(50)]
    assert destinations == [streets.random_destination(again, origin) for _ in range(50)]
    assert all(distance_m(origin, d) >= 100 for d in destinations)
    assert all(streets.distance_to_streets_m(d) < ON_LINE_M for d in destinations)


def test_stations_are_placed_on_the_streets_and_the_zones_own_are_the_seven_inside_it() -> None:
    everywhere = load_streets().stations()
    assert len(everywhere) == 16
    assert all(load_streets().distance_to_streets_m(s.position) < ON_LINE_M for s in everywhere)
    assert all(distance_m(s.position, s.reported) == pytest.approx(s.snap_m, abs=0.1) for s in everywhere)
    inside = [s.station_id for s in _zone_streets().stations(max_snap_m=STREET_MARGIN_M)]
    assert inside == ["065", "066", "070", "071", "072", "074", "076"]


def test_a_street_file_in_two_pieces_keeps_the_larger_routes_only_on_it_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def line(*points: tuple[float, float]) -> dict:
        return {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": points}}

    main = [line((4.0, 51.0), (4.001, 51.0)), line((4.001, 51.0), (4.001, 51.001)), line((4.0, 51.0), (4.0, 51.001))]
    island = [line((4.01, 51.01), (4.011, 51.01))]
    with caplog.at_level(logging.WARNING, logger="simulator.streets"):
        graph = street_graph(json.dumps({"type": "FeatureCollection", "features": island + main}))
    assert graph.components == (4, 2) and graph.dropped == (2, 1)
    assert "only the largest is used (2 nodes, 1 edges left out)" in caplog.text
    rng = random.Random(1)
    points = [graph.random_point_on_streets(rng) for _ in range(50)]
    assert all(p.lon <= 4.001 for p in points)
    route = graph.route(Position(51.0005, 4.0), Position(51.0005, 4.001))
    assert path_length_m(route) == pytest.approx(
        distance_m(Position(51.0, 4.0), Position(51.0, 4.001)) + 111.2, abs=0.5
    )
    assert graph.route(Position(51.01, 4.0105), Position(51.0, 4.0))[0] == Position(51.001, 4.001)  # onto main


def test_a_street_file_must_hold_lines() -> None:
    text = json.dumps({"features": [{"geometry": {"type": "Point", "coordinates": [4.4, 51.2]}}]})
    with pytest.raises(ValueError, match="LineString"):
        street_graph(text)


def test_a_seeded_fleet_keeps_to_the_streets_at_every_step_and_every_report() -> None:
    streets = _zone_streets()
    fleet = Fleet(FleetConfig(vehicles=12, seed=3, mean_idle_s=60.0))
    messages: list[Message] = []
    for t in range(0, 1201):
        messages.extend(fleet.step(START_MS + t * 1000))
        if t % 7 == 0:
            assert all(streets.distance_to_streets_m(v.position) < ON_LINE_M for v in fleet.vehicles)
    positioned = [m for m in messages if isinstance(m, Telemetry | Event)]
    assert len(positioned) > 300
    assert all(streets.distance_to_streets_m(m.position) < ON_LINE_M for m in positioned)
    assert sum(1 for m in messages if isinstance(m, Event) and m.event_type is EventType.LOCK) > 20


def test_a_trips_odometer_grows_by_the_length_of_its_way_along_the_streets() -> None:
    streets = _zone_streets()
    fleet = Fleet(FleetConfig(vehicles=10, seed=5, mean_idle_s=60.0))
    unlocks: dict[str, Event] = {}
    checked = 0
    for message in _run(fleet, 1200):
        if not isinstance(message, Event):
            continue
        if message.event_type is EventType.UNLOCK:
            unlocks[message.vehicle_id] = message
        elif message.event_type is EventType.LOCK:
            unlock = unlocks.pop(message.vehicle_id)
            way = path_length_m(streets.route(unlock.position, message.position))
            assert message.odometer_m - unlock.odometer_m == pytest.approx(way, abs=3.0)
            checked += way > 150 and distance_m(unlock.position, message.position) < 0.9 * way
    assert checked > 3  # trips that went round blocks: a straight line would have been shorter


def test_two_fleets_of_the_same_seed_say_exactly_the_same_and_another_seed_does_not() -> None:
    def run(seed: int) -> list[Message]:
        return _run(Fleet(FleetConfig(vehicles=8, seed=seed, mean_idle_s=60.0)), 900, tick_s=2)

    first = run(21)
    assert first == run(21)
    assert first != run(22)


def _scenario_run(scenario: Scenario, tmp_path: Path, check_every: int = 1) -> tuple[Fleet, list[Message]]:
    """A shipped scenario's fleet (riders arriving as its demand says), stepped every second of its run; every
    ``check_every`` steps each vehicle stands on the streets inside the zone (or, docked, at its station until its
    first ride)."""
    streets = _zone_streets()
    zone = load_zone()
    fleet = make_fleet(Settings(data_dir=tmp_path), 31337, first_seq=1, scenario=scenario)
    docked = {v.vehicle_id: v.position for v in fleet.vehicles if v.position in set(load_stations(zone))}
    assert bool(docked) is (scenario.fleet.docked_share > 0)
    assert scenario.start_ms is not None
    messages: list[Message] = []
    for t in range(0, round(scenario.minutes * 60) + 1):
        messages.extend(fleet.step(scenario.start_ms + t * 1000))
        if t % check_every:
            continue
        for v in fleet.vehicles:
            if docked.get(v.vehicle_id) == v.position:
                continue  # still at its station
            docked.pop(v.vehicle_id, None)
            assert streets.distance_to_streets_m(v.position) < ON_LINE_M, (t, v.vehicle_id, v.position)
            assert zone.near(v.position), (t, v.vehicle_id, v.position)
    return fleet, messages


def test_the_tiny_scenarios_riders_ride_along_the_streets_inside_the_zone(tmp_path: Path) -> None:
    scenario = load_scenario(shipped_scenario("tiny"))
    assert scenario.demand is not None and not scenario.faults.gps_jitter
    fleet, messages = _scenario_run(scenario, tmp_path)
    positioned = [m for m in messages if isinstance(m, Telemetry | Event)]
    assert all(_on_streets_in_zone(m.position) for m in positioned)  # every report, as no jitter is configured
    locks = [m for m in messages if isinstance(m, Event) and m.event_type is EventType.LOCK]
    assert fleet.demand_stats["unlocked"] >= len(locks) > 5


def test_a_weekday_morning_with_docked_bikes_and_riders_keeps_every_vehicle_on_the_streets(tmp_path: Path) -> None:
    weekday = load_scenario(shipped_scenario("weekday"))
    morning = weekday.overridden(start=datetime.fromisoformat("2026-12-01T07:30:00+01:00"), minutes=30)
    fleet, messages = _scenario_run(morning, tmp_path, check_every=10)
    locks = [m for m in messages if isinstance(m, Event) and m.event_type is EventType.LOCK]
    assert fleet.demand_stats["unlocked"] >= len(locks) > 10 and weekday.fleet.docked_share > 0


def _on_streets_in_zone(p: Position) -> bool:
    return _zone_streets().distance_to_streets_m(p) < ON_LINE_M and load_zone().near(p)
