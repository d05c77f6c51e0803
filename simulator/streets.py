"""The street network the vehicles ride on: street edges as a graph, nearest points and shortest routes along it.

A street file is a GeoJSON FeatureCollection of LineStrings, one per edge, noded: streets meet only at the ends of
their lines, at identical coordinates. The nodes are those line ends (numbered in order of first appearance); an
edge is weighted by its length in metres along its polyline. Only the largest connected component is used
(``StreetGraph.dropped`` reports what was left out), so a route between any two points of the graph exists.
Every position a ``StreetGraph`` hands out lies on one of its edges; routes are deterministic.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise

import networkx as nx

from sensors.geo import EARTH_RADIUS_M, distance_m
from sensors.messages import Position

PLACES = 7
"""Decimals kept in every simulated coordinate (about 1 cm), so payloads stay short and exact."""
_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Street:
    """One edge: a polyline from node ``u`` to node ``v``, its street's name and its length along the line."""

    index: int
    u: int
    v: int
    name: str
    points: tuple[Position, ...]
    length_m: float

    def along(self, offset_m: float) -> Position:
        """The point ``offset_m`` metres along the line from ``u`` (clamped to its ends)."""
        return self.cut(offset_m, offset_m)[0]

    def cut(self, start_m: float, end_m: float) -> list[Position]:
        """The part of the line from ``start_m`` to ``end_m`` metres from ``u`` (backwards if ``end_m`` is smaller)."""
        lo, hi = sorted((max(0.0, min(start_m, self.length_m)), max(0.0, min(end_m, self.length_m))))
        part = [_at(self.points, lo)]
        done = 0.0
        for a, b in pairwise(self.points):
            done += distance_m(a, b)
            if lo < done < hi:
                part.append(b)
        part.append(_at(self.points, hi))
        part = _deduplicated(part)
        return part if start_m <= end_m else part[::-1]


@dataclass(frozen=True, slots=True)
class Station:
    """A docking station: ``position`` is its point on the streets, ``reported`` where its operator puts it."""

    station_id: str
    name: str
    capacity: int
    position: Position
    reported: Position
    snap_m: float


@dataclass(frozen=True, slots=True)
class _Anchor:
    """A point on an edge: the edge's index and the metres from its ``u``."""

    edge: int
    offset_m: float
    position: Position


class StreetGraph:
    """A street network; only its largest connected component is kept (``dropped`` counts the rest).

    ``stations`` are the raw docking stations (their reported positions), snapped to the kept streets on demand.
    """

    def __init__(self, streets: Sequence[Street], stations: Sequence[Station] = ()) -> None:
        full = nx.MultiGraph()
        for street in streets:
            full.add_edge(street.u, street.v, key=street.index, length=street.length_m)
        components = sorted(nx.connected_components(full), key=lambda c: (-len(c), min(c)))
        if not components:
            raise ValueError("the street file has no usable street")
        main = components[0]
        kept = [s for s in streets if s.u in main]
        self.dropped = (len(full) - len(main), len(streets) - len(kept))
        """Nodes and edges left out because they are not connected to the largest component."""
        self.components = tuple(len(c) for c in components)
        """The sizes (in nodes) of the file's connected components, largest first."""
        if len(components) > 1:
            log.warning(
                "street graph: %d components %s; only the largest is used (%d nodes, %d edges left out)",
                len(components),
                list(self.components),
                *self.dropped,
            )
        self.streets = tuple(kept)
        self.graph = nx.MultiGraph()
        positions = {s.u: s.points[0] for s in kept} | {s.v: s.points[-1] for s in kept}
        self.nodes: dict[int, Position] = {n: positions[n] for n in sorted(positions)}
        for node, position in self.nodes.items():
            self.graph.add_node(node, position=position)
        for street in self.streets:
            self.graph.add_edge(street.u, street.v, key=street.index, length=street.length_m)
        self._by_index = {s.index: s for s in self.streets}
        self._ends: list[float] = []
        total = 0.0
        for street in self.streets:
            total += street.length_m
            self._ends.append(total)
        self.length_m = total
        self._raw_stations = tuple(stations)
        self._dijkstra: dict[int, tuple[dict[int, float], dict[int, list[int]]]] = {}
        lat0 = sum(p.lat for p in self.nodes.values()) / len(self.nodes)
        self._kx = _M_PER_DEG * math.cos(math.radians(lat0))
        self._segments = [
            (a.lon * self._kx, a.lat * _M_PER_DEG, dx, dy, dx * dx + dy * dy, street.index, i)
            for street in self.streets
            for i, (a, b) in enumerate(pairwise(street.points))
            for dx, dy in [((b.lon - a.lon) * self._kx, (b.lat - a.lat) * _M_PER_DEG)]
        ]
        """Every segment of every edge on a flat Earth around the graph: start, direction, length², edge, number."""

    def within(self, keep: Callable[[Position], bool]) -> StreetGraph:
        """The graph of the edges whose every point satisfies ``keep`` (then its largest component)."""
        return StreetGraph([s for s in self.streets if all(keep(p) for p in s.points)], self._raw_stations)

    def nearest_node(self, position: Position) -> int:
        """The id of the node closest to ``position`` (the lowest id among equals)."""
        return min(self.nodes, key=lambda n: (distance_m(position, self.nodes[n]), n))

    def nearest_point(self, position: Position) -> Position:
        """The point of the streets closest to ``position``."""
        return self._snap(position).position

    def distance_to_streets_m(self, position: Position) -> float:
        """How far ``position`` is from the nearest point of the streets, in metres."""
        return distance_m(position, self._snap(position).position)

    def random_point_on_streets(self, rng: random.Random) -> Position:
        """A point on the streets, uniform over their length; one draw from ``rng``."""
        at = rng.random() * self.length_m
        i = min(bisect.bisect_right(self._ends, at), len(self.streets) - 1)
        street = self.streets[i]
        return street.along(at - (self._ends[i] - street.length_m))

    def random_destination(
        self, rng: random.Random, origin: Position, min_distance_m: float = 100.0, attempts: int = 16
    ) -> Position:
        """A random point on the streets at least ``min_distance_m`` from ``origin`` as the crow flies.

        Draws up to ``attempts`` points (``random_point_on_streets``) and keeps the first far enough, else the last.
        """
        candidate = origin
        for _ in range(attempts):
            candidate = self.random_point_on_streets(rng)
            if distance_m(origin, candidate) >= min_distance_m:
                break
        return candidate

    def route(self, a: Position, b: Position) -> list[Position]:
        """The shortest way along the streets from ``a`` to ``b``: a polyline through the edges' own geometry.

        It starts at the street point nearest ``a`` and ends at the one nearest ``b`` (both ``a`` and ``b``
        themselves when they lie on the streets); consecutive points always lie on one segment of an edge.
        """
        start, end = self._snap(a), self._snap(b)
        first, last = self._by_index[start.edge], self._by_index[end.edge]
        if start.edge == end.edge:
            return first.cut(start.offset_m, end.offset_m)
        heads = ((first.u, start.offset_m, 0.0), (first.v, first.length_m - start.offset_m, first.length_m))
        tails = ((last.u, end.offset_m, 0.0), (last.v, last.length_m - end.offset_m, last.length_m))
        best: tuple[float, list[int], float, float] | None = None
        for node, head_m, head_end in heads:
            lengths, paths = self._shortest_from(node)
            for target, tail_m, tail_end in tails:
                total = head_m + lengths[target] + tail_m
                if best is None or total < best[0]:
                    best = (total, [node, *paths[target][1:]], head_end, tail_end)
        assert best is not None  # one component: every node reaches every other
        _, nodes, head_end, tail_end = best
        line = first.cut(start.offset_m, head_end)
        for u, v in pairwise(nodes):
            line.extend(self._edge_between(u, v)[1:])
        line.extend(last.cut(tail_end, end.offset_m)[1:])
        return _deduplicated(line)

    def stations(self, max_snap_m: float | None = None) -> tuple[Station, ...]:
        """The docking stations, each placed on the nearest point of the streets, by id.

        With ``max_snap_m``, only those whose reported position is at most that far from the streets.
        """
        snapped = []
        for station in self._raw_stations:
            position = self._snap(station.reported).position
            snap_m = round(distance_m(station.reported, position), 1)
            if max_snap_m is None or snap_m <= max_snap_m:
                snapped.append(
                    Station(station.station_id, station.name, station.capacity, position, station.reported, snap_m)
                )
        return tuple(sorted(snapped, key=lambda s: s.station_id))

    def _shortest_from(self, node: int) -> tuple[dict[int, float], dict[int, list[int]]]:
        """Dijkstra from ``node`` over the edge lengths: the length and node path to every node (kept)."""
        if node not in self._dijkstra:
            self._dijkstra[node] = nx.single_source_dijkstra(self.graph, node, weight="length")
        return self._dijkstra[node]

    def _edge_between(self, u: int, v: int) -> list[Position]:
        """The geometry of the shortest edge from ``u`` to ``v`` (the lowest index among equals), from ``u``."""
        index = min(self.graph[u][v], key=lambda k: (self.graph[u][v][k]["length"], k))
        street = self._by_index[index]
        return list(street.points) if street.u == u else list(street.points[::-1])

    def _snap(self, position: Position) -> _Anchor:
        """The nearest point of the streets to ``position`` (the first edge and segment among equals)."""
        x, y = position.lon * self._kx, position.lat * _M_PER_DEG
        best, best_squared, best_fraction = self._segments[0], math.inf, 0.0
        for segment in self._segments:
            ax, ay, dx, dy, squared = segment[:5]
            fraction = 0.0 if squared == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / squared))
            ex, ey = ax + fraction * dx - x, ay + fraction * dy - y
            if ex * ex + ey * ey < best_squared:
                best, best_squared, best_fraction = segment, ex * ex + ey * ey, fraction
        index, i = best[5], best[6]
        street = self._by_index[index]
        done = path_length_m(street.points[: i + 1])
        offset = done + best_fraction * distance_m(street.points[i], street.points[i + 1])
        if best_fraction == 0.0:
            return _Anchor(index, offset, street.points[i])
        if best_fraction == 1.0:
            return _Anchor(index, offset, street.points[i + 1])
        return _Anchor(index, offset, street.along(offset))


def parse_streets(text: str) -> list[Street]:
    """The edges of a street GeoJSON FeatureCollection of LineStrings (see the module docstring).

    Nodes are numbered in order of first appearance of a line end; lines of length zero and loops are skipped.
    """
    nodes: dict[tuple[float, float], int] = {}
    streets: list[Street] = []
    for feature in json.loads(text)["features"]:
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "LineString":
            raise ValueError(f"street geometry is a {geometry.get('type')}, expected a LineString")
        points = _deduplicated([Position(lat=float(lat), lon=float(lon)) for lon, lat, *_ in geometry["coordinates"]])
        if len(points) < 2:
            continue
        u = nodes.setdefault((points[0].lat, points[0].lon), len(nodes))
        v = nodes.setdefault((points[-1].lat, points[-1].lon), len(nodes))
        if u == v:
            continue
        name = str((feature.get("properties") or {}).get("name") or "")
        streets.append(Street(len(streets), u, v, name, tuple(points), path_length_m(points)))
    return streets


def parse_stations(text: str) -> list[Station]:
    """The docking stations of a GeoJSON FeatureCollection of Points (GBFS-like ``station_id``, ``name``,
    ``capacity``), at their reported positions (not yet placed on streets)."""
    stations: list[Station] = []
    for feature in json.loads(text)["features"]:
        properties = feature.get("properties") or {}
        lon, lat = feature["geometry"]["coordinates"][:2]
        where = Position(lat=float(lat), lon=float(lon))
        station_id = str(properties.get("station_id", feature.get("id", len(stations))))
        name = str(properties.get("name", station_id))
        stations.append(Station(station_id, name, int(properties.get("capacity") or 0), where, where, 0.0))
    return stations


def street_graph(streets_text: str, stations_text: str | None = None) -> StreetGraph:
    """The street graph of a street file and, optionally, a station file (both GeoJSON text)."""
    stations = parse_stations(stations_text) if stations_text is not None else []
    return StreetGraph(parse_streets(streets_text), stations)


@cache
def load_streets() -> StreetGraph:
    """The street network shipped with the package (Sint-Andries and one block around it; ``data/README.md``)."""
    data = resources.files("simulator").joinpath("data")
    return street_graph(
        data.joinpath("streets.geojson").read_text("utf-8"), data.joinpath("stations.geojson").read_text("utf-8")
    )


def path_length_m(line: Sequence[Position]) -> float:
    """The length of a polyline in metres (a route's length)."""
    return sum(distance_m(p, q) for p, q in pairwise(line))


def segment_distance_m(point: Position, a: Position, b: Position) -> float:
    """How far ``point`` is from the segment a-b, in metres (flat Earth at ``point``'s latitude)."""
    return _projection(point, a, b, _M_PER_DEG * math.cos(math.radians(point.lat)))[0]


def _projection(point: Position, a: Position, b: Position, kx: float) -> tuple[float, float]:
    """Distance in metres from ``point`` to segment a-b and where along it (0..1) the nearest point is.

    ``kx`` is the metres per degree of longitude (a flat Earth around the points).
    """
    ax, ay = (a.lon - point.lon) * kx, (a.lat - point.lat) * _M_PER_DEG
    bx, by = (b.lon - point.lon) * kx, (b.lat - point.lat) * _M_PER_DEG
    dx, dy = bx - ax, by - ay
    squared = dx * dx + dy * dy
    fraction = 0.0 if squared == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / squared))
    return math.hypot(ax + fraction * dx, ay + fraction * dy), fraction


def _at(points: Sequence[Position], offset_m: float) -> Position:
    """The point ``offset_m`` metres along a polyline (its last point beyond its end), rounded to ``PLACES``."""
    done = 0.0
    for a, b in pairwise(points):
        leg = distance_m(a, b)
        if offset_m <= done:
            return a
        if offset_m < done + leg:
            f = (offset_m - done) / leg
            return Position(round(a.lat + f * (b.lat - a.lat), PLACES), round(a.lon + f * (b.lon - a.lon), PLACES))
        done += leg
    return points[-1]


def _deduplicated(points: Iterable[Position]) -> list[Position]:
    """``points`` without consecutive repeats."""
    out: list[Position] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out
