"""Fakes for the live push's tests: vehicles, trips, epochs and KPIs as the read model gives them, an alert store
and a clock (no test functions here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from settlement.errors import StoreUnavailable
from settlement.views import Stats

T0 = 1_780_000_000_000
INSIDE = (51.2153, 4.3962)  # in Sint-Andries
FAR_OUTSIDE = (51.2600, 4.4500)  # a few km away
RIDER = "0x" + "Ab" * 20


@dataclass(frozen=True, slots=True)
class Vehicle:
    """``settlement.views.VehicleView`` with the fields the dashboard adds."""

    vehicle_id: str
    operator: str = "op"
    kind: str = "scooter"
    owner: str | None = "0x" + "a1" * 20
    state: str = "available"
    online: bool = True
    battery_pct: float | None = 80.0
    lat: float | None = INSIDE[0]
    lon: float | None = INSIDE[1]
    last_seen_ms: int | None = T0
    received_ms: int | None = T0
    fault_code: str | None = None
    state_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Trip:
    trip_id: str
    vehicle_id: str
    rider: str | None
    status: str = "open"
    signed_micro: int | None = None
    charged_micro: int | None = None


@dataclass(frozen=True, slots=True)
class Epoch:
    epoch_id: int
    trip_count: int = 3
    total_micro: int = 4_500_000
    trips_root: str = "0x" + "00" * 32
    status: str = "closed"
    tx_hash: str | None = None
    block_number: int | None = None
    gas_used: int | None = None
    closed_ms: int = T0
    settled_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Kpis:
    trips_last_hour: int = 4
    trips_today: int = 12
    revenue_today_micro: int = 14_260_000
    avg_duration_s: float | None = 600.0
    avg_distance_m: float | None = 1800.0
    avg_fare_micro: int | None = 1_188_333


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: int
    kind: str
    vehicle_id: str
    code: str
    detail: str | None
    opened_ms: int
    cleared_ms: int | None = None
    acked_ms: int | None = None
    acked_by: str | None = None


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@dataclass
class FakeReads:
    """The read model's live reads over dicts; ``down`` makes every read fail as a lost database does."""

    vehicles: dict[str, Vehicle] = field(default_factory=dict)
    running: list[Trip] = field(default_factory=list)
    ended: dict[str, Trip] = field(default_factory=dict)
    epoch_views: list[Epoch] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)  # (received_ms, code)
    reject_totals: dict[str, int] = field(default_factory=dict)
    counts: Stats = field(default_factory=lambda: Stats(3, 2, 1000, 40, 5, 12, 2, 9_000_000))
    down: bool = False
    since_calls: list[int] = field(default_factory=list)

    def put(self, *views: Vehicle) -> None:
        for v in views:
            self.vehicles[v.vehicle_id] = v

    def change(self, vehicle_id: str, **changes: object) -> Vehicle:
        view = replace(self.vehicles[vehicle_id], **changes)  # type: ignore[arg-type]
        self.vehicles[vehicle_id] = view
        return view

    def _up(self) -> None:
        if self.down:
            raise StoreUnavailable("sqlite:///gone.db", "database restarting")

    def fleet(self) -> list[Vehicle]:
        self._up()
        return sorted(self.vehicles.values(), key=lambda v: v.vehicle_id)

    def vehicles_received_since(self, since_ms: int, limit: int = 10_000) -> list[Vehicle]:
        self._up()
        self.since_calls.append(since_ms)
        found = [v for v in self.vehicles.values() if v.received_ms is not None and v.received_ms >= since_ms]
        return sorted(found, key=lambda v: (v.received_ms or 0, v.vehicle_id))[:limit]

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[Trip]:
        self._up()
        return [t for t in self.running if rider is None or t.rider == rider][:limit]

    def trip(self, trip_id: str) -> Trip | None:
        self._up()
        return self.ended.get(trip_id)

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[Epoch]:
        self._up()
        return sorted(self.epoch_views, key=lambda e: -e.epoch_id)[:limit]

    def kpis(self, now_ms: int, day_start_ms: int) -> Kpis:
        self._up()
        return Kpis()

    def rejects_since(self, since_ms: int) -> dict[str, int]:
        self._up()
        counts: dict[str, int] = {}
        for at, code in self.rejects:
            if at >= since_ms:
                counts[code] = counts.get(code, 0) + 1
        return counts

    def rejects_by_code(self) -> dict[str, int]:
        self._up()
        return dict(self.reject_totals)

    def stats(self) -> Stats:
        self._up()
        return self.counts


class FakeAlertStore:
    """``settlement.views.AlertStore``'s rules in memory: one open alert per key; records every call."""

    def __init__(self) -> None:
        self.items: dict[int, Alert] = {}
        self.changed: dict[int, int] = {}
        self.calls: list[tuple[str, ...]] = []
        self.down = False

    def open(self, kind: str, vehicle_id: str, code: str, at_ms: int, detail: str | None = None) -> Alert | None:
        self._up()
        self.calls.append(("open", kind, vehicle_id, code))
        if self._open_one(kind, vehicle_id, code) is not None:
            return None
        alert = Alert(max(self.items, default=0) + 1, kind, vehicle_id, code, detail, at_ms)
        return self._keep(alert, at_ms)

    def clear(self, kind: str, vehicle_id: str, code: str, at_ms: int) -> Alert | None:
        self._up()
        self.calls.append(("clear", kind, vehicle_id, code))
        alert = self._open_one(kind, vehicle_id, code)
        return None if alert is None else self._keep(replace(alert, cleared_ms=at_ms), at_ms)

    def ack(self, alert_id: int, by: str, at_ms: int) -> Alert | None:
        alert = self.items.get(alert_id)
        if alert is None or alert.acked_ms is not None:
            return alert
        return self._keep(replace(alert, acked_ms=at_ms, acked_by=by), at_ms)

    def alerts(self, *, open_only: bool = True, limit: int = 200) -> list[Alert]:
        self._up()
        found = [a for a in self.items.values() if not open_only or a.cleared_ms is None]
        return sorted(found, key=lambda a: (a.opened_ms, a.alert_id), reverse=True)[:limit]

    def changed_since(self, since_ms: int) -> list[Alert]:
        self._up()
        found = [a for a in self.items.values() if self.changed[a.alert_id] >= since_ms]
        return sorted(found, key=lambda a: (self.changed[a.alert_id], a.alert_id))

    def open_keys(self) -> set[tuple[str, str, str]]:
        return {(a.kind, a.vehicle_id, a.code) for a in self.items.values() if a.cleared_ms is None}

    def _up(self) -> None:
        if self.down:
            raise StoreUnavailable("sqlite:///gone.db", "database restarting")

    def _open_one(self, kind: str, vehicle_id: str, code: str) -> Alert | None:
        key = (kind, vehicle_id, code)
        return next(
            (a for a in self.items.values() if (a.kind, a.vehicle_id, a.code) == key and a.cleared_ms is None), None
        )

    def _keep(self, alert: Alert, at_ms: int) -> Alert:
        self.items[alert.alert_id] = alert
        self.changed[alert.alert_id] = max(self.changed.get(alert.alert_id, at_ms), at_ms)
        return alert


def names(events: Sequence[tuple[str, dict[str, object]]]) -> list[str]:
    return [name for name, _ in events]


def of(events: Sequence[tuple[str, dict[str, object]]], name: str) -> list[dict[str, object]]:
    return [data for n, data in events if n == name]
