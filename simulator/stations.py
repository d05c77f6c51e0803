"""Velo docking stations: where docked bikes stand at the start of a run (``simulator/data/stations.geojson``)."""

from __future__ import annotations

import json
from importlib import resources

from sensors.messages import Position
from simulator.zone import PLACES, Zone


def parse_stations(text: str, zone: Zone | None = None) -> tuple[Position, ...]:
    """The positions of the Point features of a GeoJSON FeatureCollection, in file order; with ``zone``, only
    those inside it."""
    points = []
    for feature in json.loads(text)["features"]:
        geometry = feature["geometry"]
        if geometry["type"] != "Point":
            raise ValueError(f"station geometry is a {geometry['type']}, expected a Point")
        lon, lat = geometry["coordinates"][:2]
        points.append(Position(round(float(lat), PLACES), round(float(lon), PLACES)))
    return tuple(p for p in points if zone is None or zone.contains(p))


def load_stations(zone: Zone | None = None) -> tuple[Position, ...]:
    """The stations shipped with the package (inside ``zone`` if given); FileNotFoundError if none is shipped."""
    text = resources.files("simulator").joinpath("data", "stations.geojson").read_text("utf-8")
    return parse_stations(text, zone)
