"""Plausibility bounds per vehicle kind: what a reading or a trip may look like before it is believed (pure).

A reading outside the bounds (a telemetry speed no vehicle of its kind reaches, an odometer beyond any
vehicle's life) is turned away with a reason code; a trip outside them (too long, too far, too fast, or
dearer than its kind's fare cap) is held as ``rejected`` with its reason and never priced or settled.
The defaults are generous on purpose: they stop forged or broken data, not riders in a hurry. Every
number can be set per kind from the settings (``Bounds.from_mapping``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from sensors.geo import distance_m as straight_line_m
from sensors.messages import Event, Position, Telemetry, VehicleKind
from settlement.reasons import RejectCode

if TYPE_CHECKING:
    from settlement.trips import Mark

HOUR_S = 3600


def _as_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None


def _as_int(name: str, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _as_number(name, value)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(number)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True, slots=True)
class KindBounds:
    """The limits of one kind of vehicle.

    ``max_speed_mps``: a reported speed, and a trip's average speed (by odometer and in a straight line);
    ``max_trip_s`` and ``max_trip_m``: one trip's duration and distance; ``max_fare_micro``: one trip's fare.
    """

    max_speed_mps: float
    max_trip_s: int
    max_trip_m: int
    max_fare_micro: int

    def __post_init__(self) -> None:
        speed = self.max_speed_mps
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed) or speed <= 0:
            raise ValueError(f"max_speed_mps must be a positive number, not {speed!r}")
        for name in ("max_trip_s", "max_trip_m", "max_fare_micro"):
            _check_positive_int(name, getattr(self, name))


DEFAULT_KIND_BOUNDS: Mapping[VehicleKind, KindBounds] = MappingProxyType(
    {
        # a city bike rides ~15 km/h; 12 m/s (43 km/h) allows a long descent
        VehicleKind.BIKE: KindBounds(
            max_speed_mps=12.0, max_trip_s=12 * HOUR_S, max_trip_m=150_000, max_fare_micro=50_000_000
        ),
        # pedal assistance stops at 25 km/h; 15 m/s (54 km/h) leaves room for a descent
        VehicleKind.EBIKE: KindBounds(
            max_speed_mps=15.0, max_trip_s=12 * HOUR_S, max_trip_m=200_000, max_fare_micro=150_000_000
        ),
        # shared scooters are limited to 25 km/h
        VehicleKind.SCOOTER: KindBounds(
            max_speed_mps=15.0, max_trip_s=8 * HOUR_S, max_trip_m=100_000, max_fare_micro=150_000_000
        ),
        # 30 km/h in the zone; 25 m/s (90 km/h) allows a ride out of it, 24 h a day's rental
        VehicleKind.CAR: KindBounds(
            max_speed_mps=25.0, max_trip_s=24 * HOUR_S, max_trip_m=1_000_000, max_fare_micro=1_000_000_000
        ),
    }
)


@dataclass(frozen=True, slots=True)
class Bounds:
    """All plausibility bounds: one ``KindBounds`` per vehicle kind and the limits shared by every kind.

    ``max_odometer_m``: the largest believable odometer (a million km); ``max_future_skew_ms``: how far
    ahead of the receiver's clock a timestamp may be; ``open_grace_ms``: how long past its kind's longest
    trip an open trip waits for its missing half (in event time) before it is held as rejected;
    ``position_tolerance_m``: GPS noise forgiven in the straight-line speed of a trip.
    """

    per_kind: Mapping[VehicleKind, KindBounds] = field(default_factory=lambda: DEFAULT_KIND_BOUNDS)
    max_odometer_m: int = 1_000_000_000
    max_future_skew_ms: int = 300_000
    open_grace_ms: int = HOUR_S * 1000
    position_tolerance_m: int = 50

    def __post_init__(self) -> None:
        missing = [kind.value for kind in VehicleKind if kind not in self.per_kind]
        if missing:
            raise ValueError(f"bounds missing for {', '.join(missing)}")
        for kind, limits in self.per_kind.items():
            if not isinstance(limits, KindBounds):
                raise ValueError(f"bounds of {kind} must be KindBounds, not {limits!r}")
        object.__setattr__(self, "per_kind", MappingProxyType(dict(self.per_kind)))
        for name in ("max_odometer_m", "max_future_skew_ms", "open_grace_ms", "position_tolerance_m"):
            _check_positive_int(name, getattr(self, name))

    def of(self, kind: VehicleKind) -> KindBounds:
        """The bounds of ``kind``."""
        return self.per_kind[kind]

    def open_limit_ms(self, kind: VehicleKind) -> int:
        """How long (event time) an open trip of ``kind`` waits for its missing half."""
        return self.per_kind[kind].max_trip_s * 1000 + self.open_grace_ms

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object], base: Bounds | None = None) -> Bounds:
        """Bounds from settings, each value over ``base`` (the defaults when None).

        Keys are the shared limits (``max_odometer_m``, ...) and kind names (``"bike"``, ...), each
        of the latter mapping to some of ``KindBounds``' fields, for example
        ``{"car": {"max_speed_mps": 14}, "open_grace_ms": 600000}``. Unknown keys and values that are
        not positive raise ``ValueError``.
        """
        base = base if base is not None else DEFAULT_BOUNDS
        shared = {f.name for f in fields(cls)} - {"per_kind"}
        per_kind = dict(base.per_kind)
        changes: dict[str, int] = {}
        for key, value in settings.items():
            if key in shared:
                changes[key] = _as_int(key, value)
            elif key in _KIND_NAMES:
                per_kind[VehicleKind(key)] = _kind_from_mapping(key, value, per_kind[VehicleKind(key)])
            else:
                raise ValueError(f"unknown bound {key!r}: expected a vehicle kind or one of {sorted(shared)}")
        return replace(base, per_kind=per_kind, **changes)


DEFAULT_BOUNDS = Bounds()
_KIND_NAMES = frozenset(kind.value for kind in VehicleKind)


def check_reading(message: Telemetry | Event, bounds: Bounds, *, now_ms: int | None = None) -> RejectCode | None:
    """The reason ``message`` is implausible on its own, or None.

    A telemetry speed above its kind's ``max_speed_mps`` (or below zero) is ``IMPLAUSIBLE_SPEED``; an
    odometer above ``max_odometer_m`` (or below zero) is ``IMPLAUSIBLE_ODOMETER``; with ``now_ms`` (the
    receiver's clock), a timestamp more than ``max_future_skew_ms`` ahead of it is ``FUTURE_TIMESTAMP``.
    """
    if not 0 <= message.odometer_m <= bounds.max_odometer_m:
        return RejectCode.IMPLAUSIBLE_ODOMETER
    if isinstance(message, Telemetry) and not 0 <= message.speed_mps <= bounds.of(message.kind).max_speed_mps:
        return RejectCode.IMPLAUSIBLE_SPEED
    if now_ms is not None and message.timestamp > now_ms + bounds.max_future_skew_ms:
        return RejectCode.FUTURE_TIMESTAMP
    return None


def check_step(previous: Telemetry | Event, current: Telemetry | Event, bounds: Bounds) -> RejectCode | None:
    """The reason two readings of one vehicle cannot both be true, or None.

    Taken in ``seq`` order: an odometer that goes back, or moves faster than the kind's ``max_speed_mps``
    allows in the time between them, is ``IMPLAUSIBLE_ODOMETER``; a position that does
    (beyond ``position_tolerance_m``) is ``IMPLAUSIBLE_SPEED``.
    """
    first, second = (previous, current) if previous.seq <= current.seq else (current, previous)
    limits = bounds.of(current.kind)
    seconds = max(0, second.timestamp - first.timestamp) / 1000
    reach_m = limits.max_speed_mps * seconds + bounds.position_tolerance_m
    travelled = second.odometer_m - first.odometer_m
    if travelled < 0 or travelled > reach_m:
        return RejectCode.IMPLAUSIBLE_ODOMETER
    if straight_line_m(first.position, second.position) > reach_m:
        return RejectCode.IMPLAUSIBLE_SPEED
    return None


def check_trip(
    kind: VehicleKind, start: Mark, end: Mark, distance_m: int, duration_s: int, bounds: Bounds
) -> RejectCode | None:
    """The reason a trip from ``start`` to ``end`` is implausible, or None.

    Longer than ``max_trip_s`` is ``TRIP_TOO_LONG``; farther than ``max_trip_m`` is ``TRIP_TOO_FAR``;
    an average speed above ``max_speed_mps``, by odometer or in a straight line between the two positions
    (less ``position_tolerance_m`` of GPS noise), is ``TRIP_TOO_FAST``. A trip of under a second is judged
    as one second long.
    """
    limits = bounds.of(kind)
    if duration_s > limits.max_trip_s:
        return RejectCode.TRIP_TOO_LONG
    if distance_m > limits.max_trip_m:
        return RejectCode.TRIP_TOO_FAR
    reach_m = limits.max_speed_mps * max(duration_s, 1)
    if distance_m > reach_m:
        return RejectCode.TRIP_TOO_FAST
    line_m = straight_line_m(Position(start.lat, start.lon), Position(end.lat, end.lon))
    if line_m - bounds.position_tolerance_m > reach_m:
        return RejectCode.TRIP_TOO_FAST
    return None


def _kind_from_mapping(kind: str, value: object, base: KindBounds) -> KindBounds:
    if not isinstance(value, Mapping):
        raise ValueError(f"bounds of {kind} must be a mapping of {[f.name for f in fields(KindBounds)]}")
    known = {f.name for f in fields(KindBounds)}
    changes: dict[str, float | int] = {}
    for key, number in value.items():
        if key not in known:
            raise ValueError(f"unknown bound {kind}.{key}: expected one of {sorted(known)}")
        changes[key] = _as_number(f"{kind}.{key}", number) if key == "max_speed_mps" else _as_int(key, number)
    return replace(base, **changes)  # type: ignore[arg-type]
