"""The Smart Zone's boundary and the plane geometry the simulator needs inside it."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources

from sensors.geo import distance_m
from sensors.messages import Position
from simulator.streets import PLACES, StreetGraph, load_streets, segment_distance_m

STREET_MARGIN_M = 10.0
"""How far outside the zone polygon a street of the zone may run: the boundary follows the axes of the streets
that bound the zone, and those streets belong to it."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon without holes: ``ring`` lists its vertices once (not closed) as positions.

    With ``streets`` (the shipped zone has them) vehicles live on the street network: random points and
    destinations lie on the streets and ``route`` follows them. Without, they live anywhere in the polygon and
    ride in straight lines.
    """

    name: str
    ring: tuple[Position, ...]
    streets: StreetGraph | None = field(default=None, compare=False, repr=False)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(min_lat, min_lon, max_lat, max_lon)`` of the ring."""
        lats = [p.lat for p in self.ring]
        lons = [p.lon for p in self.ring]
        return min(lats), min(lons), max(lats), max(lons)

    def contains(self, point: Position) -> bool:
        """Whether ``point`` lies inside the polygon (points exactly on the boundary may go either way)."""
        return point_in_ring(point, self.ring)

    def distance_to_boundary_m(self, point: Position) -> float:
        """How far ``point`` is from the polygon's boundary, in metres (inside or outside)."""
        ring = self.ring
        return min(segment_distance_m(point, ring[i - 1], ring[i]) for i in range(len(ring)))

    def near(self, point: Position, margin_m: float = STREET_MARGIN_M) -> bool:
        """Whether ``point`` is inside the zone or at most ``margin_m`` outside it."""
        return self.contains(point) or self.distance_to_boundary_m(point) <= margin_m

    def random_point(self, rng: random.Random) -> Position:
        """A point on the zone's streets (uniform over their length; one draw from ``rng``), or without streets a
        point inside the polygon, uniform over its area (by rejection in the bbox)."""
        if self.streets is not None:
            return self.streets.random_point_on_streets(rng)
        min_lat, min_lon, max_lat, max_lon = self.bbox
        while True:
            point = Position(round(rng.uniform(min_lat, max_lat), PLACES), round(rng.uniform(min_lon, max_lon), PLACES))
            if self.contains(point):
                return point

    def sees(self, a: Position, b: Position) -> bool:
        """Whether the straight segment from ``a`` to ``b`` stays inside the zone."""
        if not (self.contains(a) and self.contains(b)):
            return False
        ring = self.ring
        return not any(_cross(a, b, ring[i - 1], ring[i]) for i in range(len(ring)))

    def random_destination(self, origin: Position, rng: random.Random, attempts: int = 64) -> Position:
        """Where a ride from ``origin`` goes: with streets a random point on them (``StreetGraph.random_destination``);
        without, a random point of the zone reachable from ``origin`` in a straight line without leaving it.

        Without streets, falls back to ``origin`` itself (a trip of length zero) if ``attempts`` draws all fail.
        """
        if self.streets is not None:
            return self.streets.random_destination(rng, origin)
        for _ in range(attempts):
            candidate = self.random_point(rng)
            if self.sees(origin, candidate):
                return candidate
        return origin

    def route(self, a: Position, b: Position) -> list[Position]:
        """The way from ``a`` to ``b``: the shortest along the streets (``StreetGraph.route``), or without streets
        the straight line; it starts at ``a`` (its nearest street point) and ends at ``b`` (likewise)."""
        if self.streets is not None:
            return self.streets.route(a, b)
        return [a] if a == b else [a, b]


def parse_zone(text: str) -> Zone:
    """The zone described by a GeoJSON FeatureCollection whose first feature is a Polygon."""
    feature = json.loads(text)["features"][0]
    geometry = feature["geometry"]
    if geometry["type"] != "Polygon":
        raise ValueError(f"zone geometry is a {geometry['type']}, expected a Polygon")
    coordinates = geometry["coordinates"][0]
    if coordinates[0] == coordinates[-1]:
        coordinates = coordinates[:-1]
    ring = tuple(Position(lat=float(lat), lon=float(lon)) for lon, lat in coordinates)
    return Zone(name=str(feature.get("properties", {}).get("name", "zone")), ring=ring)


@cache
def load_zone() -> Zone:
    """The Smart Zone shipped with the package (wijk Sint-Andries; see ``simulator/data/README.md``) with its
    streets: those of the shipped network that lie inside it or within ``STREET_MARGIN_M`` of it."""
    text = resources.files("simulator").joinpath("data", "zone.geojson").read_text("utf-8")
    polygon = parse_zone(text)
    return replace(polygon, streets=load_streets().within(polygon.near))


def point_in_ring(point: Position, ring: tuple[Position, ...]) -> bool:
    """Ray casting: whether ``point`` is inside the polygon whose vertices are ``ring``."""
    inside = False
    x, y = point.lon, point.lat
    previous = ring[-1]
    for vertex in ring:
        if (vertex.lat > y) != (previous.lat > y):
            x_cross = vertex.lon + (y - vertex.lat) * (previous.lon - vertex.lon) / (previous.lat - vertex.lat)
            if x < x_cross:
                inside = not inside
        previous = vertex
    return inside


def step_toward(origin: Position, destination: Position, metres: float) -> Position:
    """The point ``metres`` from ``origin`` on the way to ``destination``, or ``destination`` if closer.

    At the zone's scale a straight line in degrees is the path; the result keeps ``PLACES`` decimals.
    """
    total = distance_m(origin, destination)
    if metres >= total:
        return destination
    if metres <= 0:
        return origin
    f = metres / total
    return Position(
        round(origin.lat + f * (destination.lat - origin.lat), PLACES),
        round(origin.lon + f * (destination.lon - origin.lon), PLACES),
    )


def walk(origin: Position, path: Sequence[Position], metres: float) -> tuple[Position, tuple[Position, ...], float]:
    """Go up to ``metres`` from ``origin`` along ``path``, the way being followed: ``path[0]`` is the start of the
    leg ``origin`` is on, the points after it are still ahead.

    Returns where that ends, the way left (again from the start of the leg it ends on; empty once the last point
    is reached) and the metres gone. Each position is placed on its leg from the leg's start, so rounding to
    ``PLACES`` never adds up to a drift off the line.
    """
    position, gone = origin, 0.0
    for i in range(1, len(path)):
        leg = distance_m(position, path[i])
        if gone + leg > metres:
            start = path[i - 1]
            moved_to = step_toward(start, path[i], distance_m(start, position) + metres - gone)
            gone += distance_m(position, moved_to)
            return moved_to, tuple(path[i - 1 :]), gone
        position, gone = path[i], gone + leg
    return position, (), gone


def _orientation(a: Position, b: Position, c: Position) -> float:
    return (b.lon - a.lon) * (c.lat - a.lat) - (b.lat - a.lat) * (c.lon - a.lon)


def _cross(a: Position, b: Position, c: Position, d: Position) -> bool:
    """Whether segments a-b and c-d cross or touch (collinear overlaps count as touching)."""
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    return (o1 * o2 <= 0) and (o3 * o4 <= 0) and not (o1 == o2 == 0 and not _overlap(a, b, c, d))


def _overlap(a: Position, b: Position, c: Position, d: Position) -> bool:
    """For collinear segments: whether their bounding boxes meet."""
    return max(min(a.lon, b.lon), min(c.lon, d.lon)) <= min(max(a.lon, b.lon), max(c.lon, d.lon)) and max(
        min(a.lat, b.lat), min(c.lat, d.lat)
    ) <= min(max(a.lat, b.lat), max(c.lat, d.lat))
