"""Faults of a simulated run, each at a rate per message, drawn from a seeded RNG of their own.

On the wire (``FaultyPublisher``, wrapping any publisher): a message dropped, sent twice, or held back and sent
after the next one (out-of-order delivery). In the vehicles (``VehicleFaults``, played by the fleet, since what
it changes must be signed afterwards): GPS jitter on telemetry, a vehicle dropping off the network with its last
will (its signed ``offline`` state) and coming back later, a sensor fault (a ``fault`` event naming the sensor).

The RNGs are separate from the fleet's, so a scenario with faults makes the same trips as without them as long as
no fault changes what a vehicle does (jitter, drops, duplicates and reordering never do).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from sensors.messages import Position, Telemetry
from sensors.ports import Publisher
from simulator.scenario import FaultRates
from simulator.zone import PLACES, Zone

SENSORS = ("gps_module", "lock_sensor", "battery_sensor", "motion_sensor")
"""The sensors a sensor fault names (the ``detail`` of its ``fault`` event)."""
METRES_PER_DEGREE = 111_320.0


def fault_rng(seed: int, where: str) -> random.Random:
    """The RNG of the faults at ``where`` (``wire`` or ``vehicles``) of a run of ``seed``, apart from the fleet's."""
    return random.Random(f"smartzone-sim/faults/{where}/{seed}")


class _Held(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class FaultyPublisher:
    """A ``Publisher`` that drops, duplicates and reorders what it is given before passing it on.

    ``counts`` says how often each fault struck. A held message goes out after the next one, or at ``flush``.
    """

    inner: Publisher
    rates: FaultRates
    rng: random.Random
    counts: Counter[str] = field(default_factory=Counter)
    _held: _Held | None = None

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        rates, rng = self.rates, self.rng
        if rates.drop and rng.random() < rates.drop:
            self.counts["dropped"] += 1
            return
        message = _Held(topic, payload, qos, retain)
        if self._held is None and rates.reorder and rng.random() < rates.reorder:
            self.counts["reordered"] += 1
            self._held = message
            return
        self.inner.publish(*message)
        if rates.duplicate and rng.random() < rates.duplicate:
            self.counts["duplicated"] += 1
            self.inner.publish(*message)
        self._release()

    def flush(self, timeout: float = 30.0) -> None:
        self._release()
        self.inner.flush(timeout)

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self.inner.publish(*held)


@dataclass
class VehicleFaults:
    """The faults a fleet's vehicles suffer, at ``rates`` per telemetry message, drawn from ``rng``."""

    rates: FaultRates
    rng: random.Random
    counts: Counter[str] = field(default_factory=Counter)

    def jittered(self, reading: Telemetry, zone: Zone) -> Telemetry:
        """``reading`` with its position moved up to ``gps_jitter_m`` metres at the jitter rate (kept in the zone)."""
        rates = self.rates
        if not rates.gps_jitter or self.rng.random() >= rates.gps_jitter:
            return reading
        moved = _moved(reading.position, self.rng.uniform(0, rates.gps_jitter_m), self.rng.uniform(0, 2 * math.pi))
        if not zone.contains(moved):
            return reading
        self.counts["jittered"] += 1
        return replace(reading, position=moved)

    def goes_offline(self) -> float | None:
        """Seconds the vehicle stays offline, if it drops off the network now (at the offline rate)."""
        if not self.rates.offline or self.rng.random() >= self.rates.offline:
            return None
        self.counts["offline"] += 1
        return self.rng.expovariate(1.0 / self.rates.offline_mean_s)

    def sensor_fault(self) -> str | None:
        """The sensor that fails now, if one does (at the sensor-fault rate)."""
        if not self.rates.sensor_fault or self.rng.random() >= self.rates.sensor_fault:
            return None
        self.counts["sensor_fault"] += 1
        return self.rng.choice(SENSORS)


def _moved(origin: Position, metres: float, bearing: float) -> Position:
    """The point ``metres`` from ``origin`` towards ``bearing`` (radians from north), flat-earth at this scale."""
    dlat = metres * math.cos(bearing) / METRES_PER_DEGREE
    dlon = metres * math.sin(bearing) / (METRES_PER_DEGREE * math.cos(math.radians(origin.lat)))
    return Position(round(origin.lat + dlat, PLACES), round(origin.lon + dlon, PLACES))
