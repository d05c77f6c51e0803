"""The change source: one polling loop per app that turns what changed in the read model into live events.

Every ``poll_s`` it reads the vehicles received since its watermark (less an overlap, so that a row stamped
before a read but committed after it is still seen; rows already seen are skipped), judges their alerts and
publishes their compact rows; every ``sweep_s`` it finds vehicles gone silent, running trips' costs and new or
changed epochs; every ``kpi_s`` the KPIs and rejected readings. The blocking reads run in a thread; a failed
read is logged once, the clients are told (``status``), and the loop backs off and resumes from its watermark.
The fleet it reads first seeds the hub, whose rows then answer ``/api/v1/fleet`` from memory (``Hub.seed``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from dashboard import alerts as rules
from dashboard import fleet
from dashboard.alerts import AlertLike, Decision, Key, alert_fields, key_of
from dashboard.config import Thresholds
from dashboard.fleet import Row, VehicleLike
from dashboard.geo import Polygon
from dashboard.hub import Hub

log = logging.getLogger(__name__)

BRUSSELS = ZoneInfo("Europe/Brussels")
EPOCH_FIELDS = (
    "epoch_id", "trip_count", "total_micro", "trips_root", "status", "tx_hash", "block_number", "gas_used",
    "closed_ms", "settled_ms",
)  # fmt: skip
KPI_FIELDS = (
    "trips_last_hour", "trips_today", "revenue_today_micro", "avg_duration_s", "avg_distance_m", "avg_fare_micro",
)  # fmt: skip
TRIP_FIELDS = ("trip_id", "rider", "vehicle_id", "signed_micro", "status", "charged_micro")


class LiveReads(Protocol):
    """The reads of ``settlement.views.ReadModel`` the change source makes."""

    def fleet(self) -> Sequence[VehicleLike]: ...
    def vehicles_received_since(self, since_ms: int, limit: int = 10_000) -> Sequence[VehicleLike]: ...
    def running_trips(self, rider: str | None = None, limit: int = 1000) -> Sequence[Any]: ...
    def trip(self, trip_id: str) -> Any: ...
    def epochs(self, limit: int = 100, cursor: str | None = None) -> Sequence[Any]: ...
    def kpis(self, now_ms: int, day_start_ms: int) -> Any: ...
    def rejects_since(self, since_ms: int) -> dict[str, int]: ...


class AlertSink(Protocol):
    """The parts of ``settlement.views.AlertStore`` the change source uses."""

    def open(self, kind: str, vehicle_id: str, code: str, at_ms: int, detail: str | None = None) -> Any: ...
    def clear(self, kind: str, vehicle_id: str, code: str, at_ms: int) -> Any: ...
    def ack(self, alert_id: int, by: str, at_ms: int) -> AlertLike | None: ...
    def alerts(self, *, open_only: bool = True, limit: int = 200) -> Sequence[AlertLike]: ...
    def changed_since(self, since_ms: int) -> Sequence[AlertLike]: ...


def fields(view: Any, names: Sequence[str]) -> dict[str, object]:
    """The named attributes of a view, as an event's data."""
    return {name: getattr(view, name, None) for name in names}


def day_start_ms(now_ms: int) -> int:
    """Midnight in Brussels of the day ``now_ms`` falls in."""
    local = dt.datetime.fromtimestamp(now_ms / 1000, BRUSSELS)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


@dataclass
class Timing:
    """How often the change source does what (seconds), and how far back it re-reads (ms)."""

    poll_s: float = 0.25
    sweep_s: float = 1.0
    kpi_s: float = 5.0
    resync_s: float = 60.0
    overlap_ms: int = 2000
    batch: int = 10_000
    max_backoff_s: float = 5.0
    writes: int = 500  # alert opens and clears per round; the rest wait for the next rounds


@dataclass
class ChangeSource:
    """Reads changes, judges alerts, and hands events to ``hub``. ``step`` is one synchronous round (tests call it
    with a fake clock); ``run`` loops it on the event loop with the reads in a thread."""

    reads: LiveReads
    hub: Hub
    clock: Callable[[], int]
    thresholds: Thresholds = field(default_factory=Thresholds)
    alert_store: AlertSink | None = None
    zone: Polygon | None = None
    timing: Timing = field(default_factory=Timing)
    errors: int = 0
    polls: int = 0
    running: bool = False
    _out: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    _mirror: dict[str, VehicleLike] = field(default_factory=dict)
    _status: dict[str, str] = field(default_factory=dict)
    _watermark: int | None = None
    _open: dict[str, set[Key]] = field(default_factory=dict)
    _alert_seen: dict[int, tuple[object, ...]] = field(default_factory=dict)
    _alert_mark: int = 0
    _trips: dict[str, tuple[object, ...]] = field(default_factory=dict)
    _epochs: dict[int, tuple[object, ...]] = field(default_factory=dict)
    _due: dict[str, int] = field(default_factory=dict)
    _budget: int = 0
    _backlog: dict[str, None] = field(default_factory=dict)  # vehicles still to judge, oldest first
    _baseline: list[Row] | None = None  # the fleet first read, until ``publish`` seeds the hub with it

    # --- one round ------------------------------------------------------------------------------------------

    def step(self) -> None:
        """One round at the clock's now; its events wait in ``drain()`` (also those made before a failure)."""
        now = self.clock()
        self._budget = self.timing.writes
        if self._backlog:
            self._judge([self._mirror[v] for v in list(self._backlog) if v in self._mirror], now)
        if self._watermark is None:
            self._start(now)
        elif self._is_due("resync", now, self.timing.resync_s):
            self._resync(now)
        else:
            self._poll_vehicles(now)
        if self._is_due("sweep", now, self.timing.sweep_s):
            self._sweep(now)
            self._poll_trips()
            self._poll_epochs()
        if self._is_due("kpis", now, self.timing.kpi_s):
            self._poll_rejects(now)
            self._publish_kpis(now)
        self._poll_alerts(now)
        self.polls += 1

    def drain(self) -> list[tuple[str, dict[str, object]]]:
        out, self._out = self._out, []
        return out

    def _is_due(self, what: str, now: int, every_s: float) -> bool:
        if now < self._due.get(what, 0):
            return False
        self._due[what] = now + int(every_s * 1000)
        return True

    # --- vehicles -------------------------------------------------------------------------------------------

    def _start(self, now: int) -> None:
        """The baseline: the fleet, the open alerts, the epochs and running trips as they are (no events)."""
        views = list(self.reads.fleet())
        if self.alert_store is not None:
            for alert in self.alert_store.alerts(open_only=True, limit=1_000_000):
                self._open.setdefault(alert.vehicle_id, set()).add(key_of(alert))
        self._alert_mark = now
        self._mirror = {v.vehicle_id: v for v in views}
        self._baseline = fleet.rows(views, now, self.thresholds)
        self._status = {str(r[0]): str(r[2]) for r in self._baseline}
        self._watermark = max((v.received_ms or 0 for v in views), default=0)
        self._due["resync"] = now + int(self.timing.resync_s * 1000)
        self._judge(views, now)
        self._poll_trips(publish=False)
        self._poll_epochs(publish=False)

    def _resync(self, now: int) -> None:
        """The whole fleet again: what the deltas could have missed (a batch larger than a read)."""
        self._apply(list(self.reads.fleet()), now)

    def _poll_vehicles(self, now: int) -> None:
        since = max(0, (self._watermark or 0) - self.timing.overlap_ms)
        views = list(self.reads.vehicles_received_since(since, limit=self.timing.batch))
        if len(views) >= self.timing.batch:
            self._resync(now)
            return
        self._apply(views, now)

    def _apply(self, views: Sequence[VehicleLike], now: int) -> None:
        changed = [v for v in views if self._mirror.get(v.vehicle_id) != v]
        for v in views:
            if v.received_ms is not None and v.received_ms > (self._watermark or 0):
                self._watermark = v.received_ms
        rows: list[Row] = []
        for v in changed:
            self._mirror[v.vehicle_id] = v
            r = fleet.row(v, now, self.thresholds)
            self._status[v.vehicle_id] = str(r[2])
            rows.append(r)
        if rows:
            self._out.append(("vehicles", {"rows": rows}))
        self._judge(changed, now)

    def _sweep(self, now: int) -> None:
        """Vehicles whose display status changed with time alone (gone silent), and their offline alerts."""
        rows: list[Row] = []
        timed: list[VehicleLike] = []
        for vid, v in self._mirror.items():
            status = fleet.display_status(v, now, self.thresholds)
            if status != self._status.get(vid):
                self._status[vid] = status
                rows.append(fleet.row(v, now, self.thresholds))
            if fleet.silent(v, now, self.thresholds) or self._open.get(vid):
                timed.append(v)
        if rows:
            self._out.append(("vehicles", {"rows": rows}))
        self._judge(timed, now, rules.TIMED_KINDS)

    # --- alerts ---------------------------------------------------------------------------------------------

    def _judge(self, views: Sequence[VehicleLike], now: int, kinds: Sequence[str] = rules.VEHICLE_KINDS) -> None:
        """Open and clear the vehicles' alerts; past the round's budget of writes, a vehicle waits in the backlog
        (judged on all rules at the next round: a fleet going silent at once must not stall the live push)."""
        if self.alert_store is None:
            return
        for v in views:
            if self._budget <= 0:
                self._backlog[v.vehicle_id] = None
                continue
            self._backlog.pop(v.vehicle_id, None)
            opened = self._open.get(v.vehicle_id, set())
            decision = rules.vehicle_decision(v, now, self.thresholds, self.zone, opened, kinds)
            if decision:
                self._carry_out(decision, now)

    def _poll_rejects(self, now: int) -> None:
        if self.alert_store is None:
            return
        recent = self.reads.rejects_since(now - self.thresholds.rejects_quiet_s * 1000)
        self._carry_out(rules.rejects_decision(recent, self._open.get("", set())), now)

    def _carry_out(self, decision: Decision, now: int) -> None:
        assert self.alert_store is not None
        self._budget -= len(decision.opens) + len(decision.clears)
        for (kind, vid, code), detail in decision.opens.items():
            self.alert_store.open(kind, vid, code, now, detail)
            self._open.setdefault(vid, set()).add((kind, vid, code))  # opened here or by another instance
        for kind, vid, code in decision.clears:
            self.alert_store.clear(kind, vid, code, now)
            self._open.get(vid, set()).discard((kind, vid, code))

    def _poll_alerts(self, now: int) -> None:
        """Alerts opened, cleared or acked since the last round, by any instance, as ``alert`` events."""
        if self.alert_store is None:
            return
        since = self._alert_mark - self.timing.overlap_ms
        for alert in self.alert_store.changed_since(since):
            signature = (alert.cleared_ms, alert.acked_ms, alert.detail)
            if self._alert_seen.get(alert.alert_id) == signature:
                continue
            self._alert_seen[alert.alert_id] = signature
            keys = self._open.setdefault(alert.vehicle_id, set())
            (keys.discard if alert.cleared_ms is not None else keys.add)(key_of(alert))
            self._out.append(("alert", alert_fields(alert)))
        self._alert_mark = now
        if len(self._alert_seen) > 100_000:
            self._alert_seen.clear()

    # --- trips, epochs, KPIs --------------------------------------------------------------------------------

    def _poll_trips(self, publish: bool = True) -> None:
        limit = 5000
        running = list(self.reads.running_trips(limit=limit))
        now_running: dict[str, tuple[object, ...]] = {}
        for trip in running:
            data = fields(trip, TRIP_FIELDS)
            signature = (data["signed_micro"], data["status"])
            now_running[trip.trip_id] = signature
            if publish and self._trips.get(trip.trip_id) != signature:
                self._out.append(("trip", data))
        if publish and len(running) < limit:
            for trip_id in self._trips.keys() - now_running.keys():
                ended = self.reads.trip(trip_id)
                if ended is not None:
                    self._out.append(("trip", fields(ended, TRIP_FIELDS)))
        self._trips = now_running

    def _poll_epochs(self, publish: bool = True) -> None:
        for epoch in self.reads.epochs(limit=5):
            data = fields(epoch, EPOCH_FIELDS)
            signature = tuple(data.values())
            if self._epochs.get(epoch.epoch_id) != signature:
                self._epochs[epoch.epoch_id] = signature
                if publish:
                    self._out.append(("epoch", data))

    def _publish_kpis(self, now: int) -> None:
        data = fields(self.reads.kpis(now, day_start_ms(now)), KPI_FIELDS)
        data["status_counts"] = fleet.status_counts(self._status.values())
        data["now_ms"] = now
        self._out.append(("kpis", data))

    def status_counts(self) -> dict[str, int]:
        return fleet.status_counts(self._status.values())

    # --- the loop -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Round after round until cancelled; a failed round is logged in one line and retried with backoff."""
        self.running = True
        try:
            await self._rounds()
        finally:
            self.running = False

    async def _rounds(self) -> None:
        backoff = self.timing.poll_s
        while True:
            try:
                await asyncio.to_thread(self.step)
            except Exception as error:  # a database restart, a lost connection: keep the watermark, try again
                self.errors += 1
                if self.hub.ok:
                    log.warning("live changes: read failed (%s: %s); retrying", type(error).__name__, error)
                self.hub.set_ok(False)
                self.publish()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.timing.max_backoff_s)
                continue
            if not self.hub.ok:
                log.warning("live changes: reads work again")
            self.hub.set_ok(True)
            self.publish()
            backoff = self.timing.poll_s
            await asyncio.sleep(self.timing.poll_s)

    def publish(self) -> None:
        """Hand the rounds' events to the hub, the fleet first read before them (on the event loop, as the hub)."""
        if self._baseline is not None:
            self.hub.seed(self._baseline)
            self._baseline = None
        for name, data in self.drain():
            if name == "vehicles":
                self.hub.publish_rows(data["rows"])  # type: ignore[arg-type]
            else:
                self.hub.publish(name, data)
