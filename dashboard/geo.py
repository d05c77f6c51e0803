"""The zone's boundary for the alert rules: a polygon from GeoJSON and how far outside it a point lies."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

ZONE_FILE = Path(__file__).resolve().parent / "static" / "geo" / "zone.geojson"
M_PER_DEG_LAT = 111_320.0
"""Metres per degree of latitude (and of longitude at the equator): enough for a district-sized polygon."""


@dataclass(frozen=True, slots=True)
class Polygon:
    """A ring of (lat, lon) vertices, listed once (not closed)."""

    ring: tuple[tuple[float, float], ...]

    def contains(self, lat: float, lon: float) -> bool:
        """Ray casting: whether (lat, lon) lies inside (a point exactly on the boundary may go either way)."""
        inside = False
        previous = self.ring[-1]
        for vertex in self.ring:
            (lat_a, lon_a), (lat_b, lon_b) = vertex, previous
            if (lat_a > lat) != (lat_b > lat):
                crossing = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a)
                if lon < crossing:
                    inside = not inside
            previous = vertex
        return inside

    def outside_m(self, lat: float, lon: float) -> float:
        """How far outside the polygon (lat, lon) lies, in metres; 0 inside."""
        if self.contains(lat, lon):
            return 0.0
        kx = M_PER_DEG_LAT * math.cos(math.radians(lat))
        points = [((p_lon - lon) * kx, (p_lat - lat) * M_PER_DEG_LAT) for p_lat, p_lon in self.ring]
        return min(_to_segment(points[i - 1], points[i]) for i in range(len(points)))


def _to_segment(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance from the origin to the segment a-b (plane metres)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    squared = dx * dx + dy * dy
    t = 0.0 if squared == 0 else max(0.0, min(1.0, -(a[0] * dx + a[1] * dy) / squared))
    return math.hypot(a[0] + t * dx, a[1] + t * dy)


def parse_polygon(text: str) -> Polygon:
    """The outer ring of the first feature of a GeoJSON FeatureCollection (a Polygon; coordinates [lon, lat])."""
    geometry = json.loads(text)["features"][0]["geometry"]
    if geometry["type"] != "Polygon":
        raise ValueError(f"zone geometry is a {geometry['type']}, expected a Polygon")
    coordinates = geometry["coordinates"][0]
    if coordinates[0] == coordinates[-1]:
        coordinates = coordinates[:-1]
    if len(coordinates) < 3:
        raise ValueError("a zone polygon needs at least three vertices")
    return Polygon(tuple((float(lat), float(lon)) for lon, lat in coordinates))


def load_zone(path: Path = ZONE_FILE) -> Polygon:
    """The zone shipped with the dashboard (wijk Sint-Andries), or the one in ``path``."""
    return parse_polygon(path.read_text("utf-8"))
