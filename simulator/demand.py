"""Demand: riders arriving as a seeded Poisson process with a time-of-day profile, each looking for a vehicle.

The arrival rate at time t is ``rate_per_hour * profile[hour of t]``; arrivals are drawn by thinning a process of
the peak rate, so they depend only on the seed, the start and the spec. A rider appears at a random point of the
zone and walks to the nearest vehicle within ``walk_m`` that is not on a trip (``nearest``); whether it may be
taken is the fleet's to say (a faulty vehicle refuses, a flat battery refuses with a ``battery_low`` event).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sensors.geo import distance_m
from sensors.messages import Position
from simulator.scenario import DemandSpec, hour_of_day
from simulator.vehicle import Status, Vehicle
from simulator.zone import Zone

MS_PER_HOUR = 3_600_000
METRES_PER_DEGREE = 111_000.0
"""Metres per degree of latitude, rounded down (the box of ``nearest`` errs on the wide side)."""


def demand_rng(seed: int) -> random.Random:
    """The RNG of the riders' arrivals of a run of ``seed``, apart from the fleet's."""
    return random.Random(f"smartzone-sim/demand/{seed}")


class Arrival(NamedTuple):
    """A rider who wants a vehicle: when (ms since the Unix epoch) and where."""

    at_ms: int
    position: Position


@dataclass
class Arrivals:
    """The arrivals of ``spec`` from ``start_ms`` on, on a clock ``utc_offset_s`` ahead of UTC."""

    spec: DemandSpec
    zone: Zone
    rng: random.Random
    start_ms: int
    utc_offset_s: int = 0

    def __post_init__(self) -> None:
        self._peak = max(self.spec.profile)
        self._next = float(self.start_ms)
        self._draw()

    def until(self, now_ms: int) -> list[Arrival]:
        """The arrivals up to ``now_ms`` not returned before, in time order."""
        out = []
        while self._next <= now_ms:
            at = int(self._next)
            if self.rng.random() * self._peak < self.spec.profile[hour_of_day(at, self.utc_offset_s)]:
                out.append(Arrival(at, self.zone.random_point(self.rng)))
            self._draw()
        return out

    def _draw(self) -> None:
        per_ms = self.spec.rate_per_hour * self._peak / MS_PER_HOUR
        self._next = self._next + self.rng.expovariate(per_ms) if per_ms > 0 else float("inf")


def nearest(vehicles: Iterable[Vehicle], where: Position, walk_m: float, away: Iterable[str] = ()) -> Vehicle | None:
    """The vehicle closest to ``where`` within ``walk_m`` metres that is not on a trip nor in ``away`` (offline).

    Ties go to the first in ``vehicles`` order, so the choice is deterministic.
    """
    gone = set(away)
    best, best_m = None, walk_m
    # a box around ``where`` a little wider than the walk: most vehicles are ruled out without trigonometry
    dlat = 1.01 * walk_m / METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(where.lat)), 0.01)
    for v in vehicles:
        p = v.position
        if abs(p.lat - where.lat) > dlat or abs(p.lon - where.lon) > dlon:
            continue
        if v.status is Status.RIDING or v.vehicle_id in gone:
            continue
        metres = distance_m(where, p)
        if metres <= best_m and (best is None or metres < best_m):
            best, best_m = v, metres
    return best
