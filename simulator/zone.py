"""The Smart Zone's boundary and the plane geometry the simulator needs inside it."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sensors.geo import distance_m
from sensors.messages import Position

PLACES = 7
"""Decimals kept in every simulated coordinate (about 1 cm), so payloads stay short and exact."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon without holes: ``ring`` lists its vertices once (not closed) as positions."""

    name: str
    ring: tuple[Position, ...]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(min_lat, min_lon, max_lat, max_lon)`` of the ring."""
        lats = [p.lat for p in self.ring]
        lons = [p.lon for p in self.ring]
        return min(lats), min(lons), max(lats), max(lons)

    def contains(self, point: Position) -> bool:
        """Whether ``point`` lies inside the polygon (points exactly on the boundary may go either way)."""
        return point_in_ring(point, self.ring)

    def random_point(self, rng: random.Random) -> Position:
        """A point inside the zone, uniform over its area, drawn from ``rng`` by rejection in the bbox."""
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
        """A random point of the zone reachable from ``origin`` in a straight line without leaving it.

        Falls back to ``origin`` itself (a trip of length zero) if ``attempts`` draws all fail.
        """
        for _ in range(attempts):
            candidate = self.random_point(rng)
            if self.sees(origin, candidate):
                return candidate
        return origin


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
    """The Smart Zone shipped with the package (wijk Sint-Andries; see ``simulator/data/README.md``)."""
    text = resources.files("simulator").joinpath("data", "zone.geojson").read_text("utf-8")
    return parse_zone(text)


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
