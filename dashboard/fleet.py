"""How the dashboard shows a vehicle: its display status and the compact row of the live map."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from dashboard.config import Thresholds

STATUSES = ("available", "on_trip", "low_battery", "offline", "fault")
"""The display statuses, from the calmest to the most urgent a map legend lists."""

COLUMNS = ("vehicle_id", "kind", "status", "battery_pct", "lat", "lon", "received_ms", "owner")
"""The columns of a compact row (``/api/v1/fleet`` and the ``vehicles`` events), in order."""

Row = list[object]


class VehicleLike(Protocol):
    """What the dashboard reads of a vehicle (``settlement.views.VehicleView``)."""

    @property
    def vehicle_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def battery_pct(self) -> float | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lon(self) -> float | None: ...
    @property
    def received_ms(self) -> int | None: ...
    @property
    def fault_code(self) -> str | None: ...


def faulted(view: VehicleLike) -> bool:
    """Whether the vehicle reports a fault: a fault code, or MDS state ``non_operational``."""
    return view.fault_code is not None or view.state == "non_operational"


def silent(view: VehicleLike, now_ms: int, thresholds: Thresholds) -> bool:
    """Whether the platform has heard nothing from the vehicle for longer than ``offline_after_s`` (or never)."""
    return view.received_ms is None or now_ms - view.received_ms > thresholds.offline_after_s * 1000


def display_status(view: VehicleLike, now_ms: int, thresholds: Thresholds) -> str:
    """The one status a map colours the vehicle by, the most urgent first: fault, offline (its last will, or
    silent beyond the threshold), on trip, low battery, available."""
    if faulted(view):
        return "fault"
    if not view.online or silent(view, now_ms, thresholds):
        return "offline"
    if view.state == "on_trip":
        return "on_trip"
    if view.battery_pct is not None and view.battery_pct < thresholds.low_battery_pct:
        return "low_battery"
    return "available"


def row(view: VehicleLike, now_ms: int, thresholds: Thresholds) -> Row:
    """The vehicle as a compact row in ``COLUMNS`` order (battery to 0.1 point, position to 6 decimals: 0.1 m)."""
    battery = None if view.battery_pct is None else round(float(view.battery_pct), 1)
    lat = None if view.lat is None else round(float(view.lat), 6)
    lon = None if view.lon is None else round(float(view.lon), 6)
    status = display_status(view, now_ms, thresholds)
    return [view.vehicle_id, view.kind, status, battery, lat, lon, view.received_ms, view.owner]


def rows(views: Iterable[VehicleLike], now_ms: int, thresholds: Thresholds) -> list[Row]:
    """Compact rows of ``views``, in their order."""
    return [row(v, now_ms, thresholds) for v in views]


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many vehicles have each display status (every status named, zero included)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def counts_of(views: Iterable[VehicleLike], now_ms: int, thresholds: Thresholds) -> dict[str, int]:
    """``status_counts`` of ``views`` at ``now_ms``."""
    return status_counts(display_status(v, now_ms, thresholds) for v in views)
