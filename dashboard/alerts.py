"""The alert rules: from vehicles as last seen and recent dead letters, which alerts should open and which clear.

An alert is named by its key (kind, vehicle_id, code): at most one is open per key (``AlertStore``). The rules
are pure: they get what is open now and say what changes, with hysteresis where a reading can hover at a
threshold (battery, the zone's edge), so that an alert does not flap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dashboard.config import Thresholds
from dashboard.fleet import VehicleLike, faulted, silent
from dashboard.geo import Polygon

KINDS = ("battery_low", "offline", "fault", "outside_zone", "rejects")
VEHICLE_KINDS = ("battery_low", "offline", "fault", "outside_zone")
TIMED_KINDS = ("offline",)
"""The kinds whose truth changes with time alone (silence): the rules a periodic sweep re-runs."""

BATTERY_CLEAR_MARGIN = 5.0
"""A battery alert clears at the threshold plus this many points, not at the threshold."""
ZONE_OPEN_M = 25.0
"""A vehicle is outside the zone beyond this many metres (a street on the boundary is a few metres outside it)."""
ZONE_CLEAR_M = 10.0
"""An outside-zone alert clears when the vehicle is back within this many metres of the zone."""

Key = tuple[str, str, str]
"""(kind, vehicle_id, code): '' for a fleet-wide alert's vehicle and for an alert without a code."""


class AlertLike(Protocol):
    """What the dashboard reads of an alert (``settlement.views.AlertView``)."""

    @property
    def alert_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def vehicle_id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def opened_ms(self) -> int: ...
    @property
    def cleared_ms(self) -> int | None: ...
    @property
    def acked_ms(self) -> int | None: ...
    @property
    def acked_by(self) -> str | None: ...


ALERT_FIELDS = ("alert_id", "kind", "vehicle_id", "code", "detail", "opened_ms", "cleared_ms", "acked_ms", "acked_by")


def alert_fields(alert: AlertLike) -> dict[str, object]:
    """The alert as the JSON of an ``alert`` event and of ``/api/v1/alerts``."""
    return {name: getattr(alert, name) for name in ALERT_FIELDS}


def key_of(alert: AlertLike) -> Key:
    return (alert.kind, alert.vehicle_id, alert.code)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to change: alerts to open (with their detail) and keys to clear."""

    opens: dict[Key, str | None] = field(default_factory=dict)
    clears: tuple[Key, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.opens or self.clears)


def decide(wanted: Mapping[Key, str | None], open_now: Collection[Key]) -> Decision:
    """Open what is wanted and not open; clear what is open and not wanted."""
    opens = {k: d for k, d in wanted.items() if k not in open_now}
    return Decision(opens, tuple(sorted(k for k in open_now if k not in wanted)))


def battery_wanted(view: VehicleLike, thresholds: Thresholds, is_open: bool) -> str | None:
    """The battery level as the alert's detail while it should be open: below the threshold, and once open until
    it is back ``BATTERY_CLEAR_MARGIN`` points above it."""
    level = view.battery_pct
    if level is None:
        return None
    limit = thresholds.low_battery_pct + (BATTERY_CLEAR_MARGIN if is_open else 0.0)
    return f"{float(level):.1f}" if level < limit else None


def offline_code(view: VehicleLike, now_ms: int, thresholds: Thresholds) -> str | None:
    """``last_will`` for a vehicle whose link went down, ``silent`` for one not heard from beyond the threshold."""
    if not view.online:
        return "last_will"
    return "silent" if silent(view, now_ms, thresholds) else None


def fault_code(view: VehicleLike) -> str | None:
    """The fault's code while the vehicle is faulted ('' when it names none)."""
    if not faulted(view):
        return None
    return view.fault_code or ""


def outside_detail(view: VehicleLike, zone: Polygon, is_open: bool) -> str | None:
    """The position as the alert's detail while the vehicle is outside the zone (with hysteresis)."""
    if view.lat is None or view.lon is None:
        return None
    beyond = zone.outside_m(view.lat, view.lon)
    if beyond > ZONE_OPEN_M or (is_open and beyond > ZONE_CLEAR_M):
        return f"{view.lat:.6f},{view.lon:.6f}"
    return None


def vehicle_wanted(
    view: VehicleLike,
    now_ms: int,
    thresholds: Thresholds,
    zone: Polygon | None,
    open_now: Collection[Key],
    kinds: Collection[str] = VEHICLE_KINDS,
) -> dict[Key, str | None]:
    """The alerts of ``kinds`` that should be open for the vehicle, given those of its alerts open now."""
    vid = view.vehicle_id
    kinds_open = {k[0] for k in open_now}
    wanted: dict[Key, str | None] = {}
    if "battery_low" in kinds:
        level = battery_wanted(view, thresholds, "battery_low" in kinds_open)
        if level is not None:
            wanted[("battery_low", vid, "")] = level
    if "offline" in kinds:
        code = offline_code(view, now_ms, thresholds)
        if code is not None:
            received = view.received_ms
            wanted[("offline", vid, code)] = None if received is None else str(received)
    if "fault" in kinds:
        code = fault_code(view)
        if code is not None:
            wanted[("fault", vid, code)] = None
    if "outside_zone" in kinds and zone is not None:
        where = outside_detail(view, zone, "outside_zone" in kinds_open)
        if where is not None:
            wanted[("outside_zone", vid, "")] = where
    return wanted


def vehicle_decision(
    view: VehicleLike,
    now_ms: int,
    thresholds: Thresholds,
    zone: Polygon | None,
    open_now: Iterable[Key],
    kinds: Collection[str] = VEHICLE_KINDS,
) -> Decision:
    """What changes for one vehicle: ``open_now`` are its open alerts (others are ignored); only ``kinds`` are
    judged (a sweep for silence judges ``TIMED_KINDS``)."""
    mine = {k for k in open_now if k[1] == view.vehicle_id and k[0] in kinds}
    return decide(vehicle_wanted(view, now_ms, thresholds, zone, mine, kinds), mine)


def rejects_decision(recent: Mapping[str, int], open_now: Iterable[Key]) -> Decision:
    """Rejected readings: an alert per reason with dead letters in the quiet window (``recent``, read since
    ``now - rejects_quiet_s``; its detail is how many), cleared once the window holds none of that reason."""
    mine = {k for k in open_now if k[0] == "rejects"}
    wanted: dict[Key, str | None] = {("rejects", "", code): str(n) for code, n in recent.items() if n > 0}
    return decide(wanted, mine)
