"""Fares: a trip's distance and duration priced by a tariff, in integer micro-euro (pure).

Rounding rule: each component (unlock, time, distance) is computed exactly in micro-euro and
rounded *up* to a whole micro-euro, so the rider never pays less than the tariff and the rounding
of one trip is under 3 micro-euro.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sensors.messages import VehicleKind

MICRO_PER_EUR = 1_000_000


@dataclass(frozen=True, slots=True)
class Tariff:
    """A simple tariff: a price to unlock, per started second at a per-minute rate, and per metre at a per-km rate."""

    unlock_micro: int
    per_minute_micro: int
    per_km_micro: int = 0

    def __post_init__(self) -> None:
        for name in ("unlock_micro", "per_minute_micro", "per_km_micro"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer of micro-euro, not {value!r}")


@dataclass(frozen=True, slots=True)
class Fare:
    """What one trip costs, by component."""

    unlock_micro: int
    time_micro: int
    distance_micro: int

    @property
    def total_micro(self) -> int:
        return self.unlock_micro + self.time_micro + self.distance_micro


DEFAULT_TARIFFS: Mapping[VehicleKind, Tariff] = {
    VehicleKind.BIKE: Tariff(unlock_micro=500_000, per_minute_micro=50_000),
    VehicleKind.EBIKE: Tariff(unlock_micro=1_000_000, per_minute_micro=150_000),
    VehicleKind.SCOOTER: Tariff(unlock_micro=1_000_000, per_minute_micro=200_000),
    VehicleKind.CAR: Tariff(unlock_micro=0, per_minute_micro=300_000, per_km_micro=250_000),
}


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def price(distance_m: int, duration_s: int, tariff: Tariff) -> Fare:
    """The fare under ``tariff`` of a trip of ``distance_m`` metres lasting ``duration_s`` (started) seconds.

    Raises ``ValueError`` for a negative or fractional distance or duration: only a plausible trip is priced.
    """
    for name, value in (("distance_m", distance_m), ("duration_s", duration_s)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    return Fare(
        unlock_micro=tariff.unlock_micro,
        time_micro=_ceil_div(duration_s * tariff.per_minute_micro, 60),
        distance_micro=_ceil_div(distance_m * tariff.per_km_micro, 1000),
    )


def format_eur(micro: int) -> str:
    """Micro-euro as euro with two decimals, rounded half up (for display only)."""
    cents = (abs(micro) + 5_000) // 10_000
    sign = "-" if micro < 0 else ""
    return f"{sign}€{cents // 100}.{cents % 100:02d}"
