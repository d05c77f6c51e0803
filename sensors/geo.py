"""Distances between WGS84 positions, shared by the simulator (moving vehicles) and settlement (trip length)."""

from __future__ import annotations

import math

from sensors.messages import Position

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""


def distance_m(a: Position, b: Position) -> float:
    """Great-circle (haversine) distance between ``a`` and ``b`` in metres."""
    phi_a, phi_b = math.radians(a.lat), math.radians(b.lat)
    d_phi = phi_b - phi_a
    d_lambda = math.radians(b.lon - a.lon)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
