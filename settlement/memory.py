"""The storage ports in memory: fakes of the repositories, the unit of work and the alert store, for unit tests.

They keep the same rules as the SQL ones — one reading per (vehicle, seq), one trip per id — and roll back
what a unit of work did unless it was committed.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from sensors.address import Address, InvalidAddress
from sensors.messages import Event, Telemetry, VehicleState
from sensors.wire import VehicleStatus
from settlement.clearing import ClearingCommit
from settlement.dead_letters import MAX_REASON_CHARS, MAX_SAMPLE_BYTES, RejectCount, counts_of, cut
from settlement.epochs import ClosedEpoch
from settlement.errors import StoreRefused
from settlement.lifecycle import (
    HELD_REASONS,
    ON_CHAIN_EPOCH,
    SETTLED,
    UNSETTLED,
    EpochStatus,
    TripStatus,
    check_epoch,
    check_trip,
)
from settlement.ports import ChainReceipt
from settlement.records import Reject, VehicleMark
from settlement.registry import RegistryEntry
from settlement.retention import StoredTelemetry, Track, TrackKey
from settlement.trips import TripRecord, TripSplit
from settlement.vehicles import VehicleUpdate, is_gateway
from settlement.views import (
    ALERT_KINDS,
    AlertView,
    EpochView,
    Kpis,
    NotCommitted,
    PayoutView,
    RegistryProofView,
    Stats,
    TrackPoint,
    TripView,
    VehicleView,
    check_sort,
    cursor_key,
    vehicle_cursor,
)


@dataclass
class MemoryVehicle:
    vehicle_id: str
    operator: str
    kind: str
    owner: Address | None = None
    online: bool = False
    state: str = VehicleStatus.UNKNOWN.value
    last_seq: int = 0
    state_ms: int = 0
    last_seen_ms: int | None = None
    lat: float | None = None
    lon: float | None = None
    battery_pct: float | None = None
    received_ms: int | None = None
    fault_code: str | None = None


@dataclass(frozen=True)
class MemoryReject:
    """A dead-letter sample as stored: the payload cut, its whole size kept."""

    topic: str
    payload: bytes
    payload_bytes: int
    code: str
    reason: str
    received_ms: int


@dataclass
class MemoryEpoch:
    epoch: ClosedEpoch
    status: EpochStatus
    closed_ms: int
    receipt: ChainReceipt | None = None

    @property
    def commit(self) -> ClearingCommit:
        return self.epoch.commit


@dataclass
class MemoryState:
    """Everything the fakes keep; a unit of work works on a copy and swaps it in on commit."""

    telemetry: dict[tuple[str, int], Telemetry] = field(default_factory=dict)
    events: dict[tuple[str, int], Event] = field(default_factory=dict)
    vehicles: dict[str, MemoryVehicle] = field(default_factory=dict)
    rejects: list[MemoryReject] = field(default_factory=list)
    reject_counts: dict[str, RejectCount] = field(default_factory=dict)
    telemetry_ids: dict[tuple[str, int], int] = field(default_factory=dict)
    last_telemetry_id: int = 0
    tracks: dict[TrackKey, Track] = field(default_factory=dict)
    trips: dict[str, TripRecord] = field(default_factory=dict)
    epochs: dict[int, MemoryEpoch] = field(default_factory=dict)
    operators: dict[str, Address] = field(default_factory=dict)
    registry: dict[tuple[str, int], RegistryEntry] = field(default_factory=dict)
    deployments: dict[int, str] = field(default_factory=dict)
    changes: int = 0


class MemoryReadings:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def add_telemetry(self, readings: Sequence[Telemetry]) -> int:
        new = 0
        for t in readings:
            if (t.vehicle_id, t.seq) not in self.s.telemetry:
                self.s.telemetry[(t.vehicle_id, t.seq)] = t
                self.s.last_telemetry_id += 1
                self.s.telemetry_ids[(t.vehicle_id, t.seq)] = self.s.last_telemetry_id
                new += 1
        return new

    def add_events(self, events: Sequence[Event]) -> list[Event]:
        new = []
        for e in events:
            if (e.vehicle_id, e.seq) not in self.s.events:
                self.s.events[(e.vehicle_id, e.seq)] = e
                new.append(e)
        return new

    def update_vehicles(self, updates: Sequence[VehicleUpdate]) -> None:
        for u in updates:
            v = self.s.vehicles.get(u.vehicle_id)
            if v is None or v.last_seq >= u.seq:
                continue
            v.last_seq, v.last_seen_ms, v.lat, v.lon = u.seq, u.timestamp_ms, u.lat, u.lon
            v.battery_pct = u.battery_pct
            v.received_ms = v.received_ms if u.received_ms is None else u.received_ms
            v.online = v.online or u.timestamp_ms > v.state_ms  # not a reading from before its offline state
            if u.state is not None:
                v.state, v.fault_code = u.state.value, u.fault_code
            elif v.state == VehicleStatus.UNKNOWN.value:
                v.state = VehicleStatus.AVAILABLE.value

    def apply_states(self, states: Sequence[VehicleState], *, received_ms: int | None = None) -> None:
        for state in states:
            for v in self.s.vehicles.values():
                if is_gateway(state) and v.operator == state.operator:
                    v.online = state.online
                elif v.vehicle_id == state.vehicle_id and v.state_ms <= state.timestamp:
                    v.online, v.state_ms = state.online, state.timestamp
                else:
                    continue
                v.received_ms = v.received_ms if received_ms is None else received_ms

    def add_rejects(self, rejects: Sequence[Reject], sample_bytes: int = MAX_SAMPLE_BYTES) -> None:
        for r in rejects:
            sample = cut(r.payload, sample_bytes)
            reason = r.reason[:MAX_REASON_CHARS]
            self.s.rejects.append(MemoryReject(r.topic, sample, len(r.payload), str(r.code), reason, r.received_ms))
        for code, n in counts_of([(str(r.code), r.received_ms) for r in rejects]).items():
            self.s.reject_counts[code] = self.s.reject_counts[code].plus(n) if code in self.s.reject_counts else n

    def reject_counts(self) -> dict[str, RejectCount]:
        return dict(self.s.reject_counts)

    def prune_rejects(self, older_than_ms: int, keep: int) -> int:
        before = len(self.s.rejects)
        young = [r for r in self.s.rejects if r.received_ms >= older_than_ms]
        self.s.rejects = young[len(young) - keep :] if keep < len(young) else young
        return before - len(self.s.rejects)

    def cut_samples(self, sample_bytes: int) -> int:
        long = [i for i, r in enumerate(self.s.rejects) if len(r.payload) > sample_bytes]
        for i in long:
            self.s.rejects[i] = replace(self.s.rejects[i], payload=cut(self.s.rejects[i].payload, sample_bytes))
        return len(long)

    def telemetry_ids(self) -> tuple[int, int] | None:
        ids = self.s.telemetry_ids.values()
        return (min(ids), max(ids)) if ids else None

    def stale_telemetry(self, before_ms: int, seq_window: int, first_id: int, end_id: int) -> list[StoredTelemetry]:
        found = []
        for key, row_id in sorted(self.s.telemetry_ids.items(), key=lambda kv: kv[1]):
            t, vehicle = self.s.telemetry[key], self.s.vehicles.get(key[0])
            if not first_id <= row_id < end_id:
                continue
            if t.timestamp < before_ms and vehicle and t.seq <= vehicle.last_seq - seq_window:
                found.append(
                    StoredTelemetry(row_id, t.vehicle_id, t.seq, t.timestamp, t.position.lat, t.position.lon,
                                    t.speed_mps, t.odometer_m, t.battery_pct, t.fuel_pct)
                )  # fmt: skip
        return found

    def tracks(self, keys: Collection[TrackKey]) -> dict[TrackKey, Track]:
        return {k: self.s.tracks[k] for k in keys if k in self.s.tracks}

    def fold_telemetry(self, tracks: Sequence[Track], row_ids: Sequence[int]) -> int:
        self.s.tracks.update((t.key, t) for t in tracks)
        going = set(row_ids)
        keys = [k for k, i in self.s.telemetry_ids.items() if i in going]
        for k in keys:
            del self.s.telemetry[k], self.s.telemetry_ids[k]
        return len(keys)

    def vehicle_marks(self) -> dict[str, VehicleMark]:
        return {v.vehicle_id: VehicleMark(v.last_seq, v.state_ms) for v in self.s.vehicles.values()}

    def watermark_ms(self) -> int:
        return max((e.timestamp for e in self.s.events.values()), default=0)


class MemoryTrips:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def get(self, trip_ids: Collection[str]) -> dict[str, TripRecord]:
        return {i: self.s.trips[i] for i in trip_ids if i in self.s.trips}

    def unfinished_of(self, vehicle_ids: Collection[str]) -> dict[str, TripRecord]:
        wanted = set(vehicle_ids)
        found = {
            r.trip_id: r
            for r in self.s.trips.values()
            if r.vehicle_id in wanted
            and (r.status is TripStatus.OPEN or (r.status is TripStatus.REJECTED and r.reason in HELD_REASONS))
        }
        latest: dict[str, TripRecord] = {}
        for r in self.s.trips.values():
            if r.vehicle_id in wanted and r.end is not None:
                if r.vehicle_id not in latest or r.unlock_seq > latest[r.vehicle_id].unlock_seq:
                    latest[r.vehicle_id] = r
        found.update((r.trip_id, r) for r in latest.values())
        return found

    def open(self) -> list[TripRecord]:
        return [r for r in self.s.trips.values() if r.status is TripStatus.OPEN]

    def used_nonces(self, riders: Collection[Address]) -> dict[Address, set[int]]:
        wanted, found = set(riders), {}  # type: ignore[var-annotated]
        for r in self.s.trips.values():
            if r.consent is not None and r.charged_micro is not None and r.consent.rider in wanted:
                found.setdefault(r.consent.rider, set()).add(r.consent.nonce)
        return found

    def save(self, records: Sequence[TripRecord]) -> None:
        for r in records:
            self.s.trips[r.trip_id] = r

    def priced_unbatched(self, limit: int) -> list[TripRecord]:
        priced = [r for r in self.s.trips.values() if r.status is TripStatus.PRICED and r.epoch_id is None]
        return sorted(priced, key=_leaf_order)[:limit]

    def batch(self, trip_ids: Collection[str], epoch_id: int, splits: Sequence[TripSplit] = ()) -> int:
        moved = 0
        for i in set(trip_ids):
            r = self.s.trips[i]
            if r.status is TripStatus.PRICED:
                self.s.trips[i] = replace(r, status=TripStatus.BATCHED, epoch_id=epoch_id)
                moved += 1
        for split in splits:
            r = self.s.trips[split.trip_id]
            if r.epoch_id == epoch_id:
                paid = replace(r, owner_share=split.owner_share, fee=split.fee, rider_account=split.rider)
                self.s.trips[r.trip_id] = paid
        return moved

    def in_epoch(self, epoch_id: int) -> list[TripRecord]:
        return sorted((r for r in self.s.trips.values() if r.epoch_id == epoch_id), key=_leaf_order)

    def commit_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.BATCHED, TripStatus.COMMITTED)

    def finalise_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.COMMITTED, TripStatus.FINAL)

    def reopen_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.COMMITTED, TripStatus.BATCHED)

    def _move(self, epoch_id: int, was: TripStatus, now: TripStatus) -> None:
        for r in self.in_epoch(epoch_id):
            if r.status is was:
                self.s.trips[r.trip_id] = replace(r, status=check_trip(was, now))


def _leaf_order(r: TripRecord) -> tuple[int, str]:
    return (r.end.timestamp_ms if r.end else 0, r.trip_id)


class MemoryEpochs:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def last_id(self) -> int:
        return max(self.s.epochs, default=0)

    def add(self, epoch: ClosedEpoch, now_ms: int) -> None:
        if epoch.commit.epoch_id in self.s.epochs:
            raise StoreRefused(f"epoch {epoch.commit.epoch_id} exists")  # as the primary key refuses it
        self.s.epochs[epoch.commit.epoch_id] = MemoryEpoch(epoch, EpochStatus.CLOSED, now_ms)

    def unsettled(self) -> list[ClearingCommit]:
        return [e.commit for _, e in sorted(self.s.epochs.items()) if e.status is EpochStatus.CLOSED]

    def commit_of(self, epoch_id: int) -> ClearingCommit | None:
        found = self.s.epochs.get(epoch_id)
        return None if found is None else found.commit

    def last_committed(self) -> int:
        return max((i for i, e in self.s.epochs.items() if e.status in ON_CHAIN_EPOCH), default=0)

    def balances(
        self, accounts: Collection[Address] | None = None, upto: int | None = None
    ) -> dict[Address, tuple[int, int]]:
        found: dict[Address, tuple[int, int]] = {}
        for epoch_id, e in sorted(self.s.epochs.items()):
            if upto is None or epoch_id <= upto:
                found.update(e.epoch.balances)
        return found if accounts is None else {a: found[a] for a in accounts if a in found}

    def mark_committed(self, epoch_id: int, receipt: ChainReceipt | None, now_ms: int) -> None:
        epoch = self.s.epochs[epoch_id]
        if epoch.status is not EpochStatus.COMMITTED:
            check_epoch(epoch.status, EpochStatus.COMMITTED)
        epoch.status, epoch.receipt = EpochStatus.COMMITTED, receipt

    def awaiting_finality(self) -> list[tuple[int, ChainReceipt | None]]:
        return [(i, e.receipt) for i, e in sorted(self.s.epochs.items()) if e.status is EpochStatus.COMMITTED]

    def mark_final(self, epoch_id: int) -> None:
        epoch = self.s.epochs[epoch_id]
        epoch.status = check_epoch(epoch.status, EpochStatus.FINAL)

    def reopen(self, epoch_id: int) -> None:
        epoch = self.s.epochs[epoch_id]
        epoch.status, epoch.receipt = check_epoch(epoch.status, EpochStatus.CLOSED), None


class MemoryRegistry:
    def __init__(self, state: MemoryState) -> None:
        self.s = state

    def operators(self) -> dict[str, Address]:
        return dict(self.s.operators)

    def add_operator(self, operator: str, address: Address, now_ms: int) -> None:
        self.s.operators[operator] = address
        self.s.changes += 1

    def entries(self) -> list[RegistryEntry]:
        return [self.s.registry[k] for k in sorted(self.s.registry)]

    def add(self, entry: RegistryEntry, now_ms: int) -> bool:
        reg = entry.registration
        key = (reg.vehicle_id, reg.valid_from_ms)
        if key in self.s.registry:
            return False
        self.s.registry[key] = entry
        v = self.s.vehicles.setdefault(reg.vehicle_id, MemoryVehicle(reg.vehicle_id, reg.operator, reg.kind.value))
        v.owner, v.kind = reg.payee, reg.kind.value
        self.s.changes += 1
        return True

    def revoke(self, vehicle_id: str, now_ms: int) -> int:
        n = 0
        for key, entry in self.s.registry.items():
            if key[0] == vehicle_id and entry.revoked_ms is None:
                self.s.registry[key] = replace(entry, revoked_ms=now_ms)
                n += 1
        self.s.changes += n
        return n

    def version(self) -> tuple[int, ...]:
        return (len(self.s.registry), self.s.changes)

    def deployment(self, chain_id: int) -> str | None:
        return self.s.deployments.get(chain_id)

    def record_deployment(self, chain_id: int, address: str, now_ms: int) -> None:
        self.s.deployments[chain_id] = address

    def any_deployment(self) -> tuple[int, str] | None:
        return next(iter(reversed(self.s.deployments.items())), None)


class MemoryUnitOfWork:
    """``UnitOfWork`` over a shared ``MemoryState``: works on a copy, swapped in on ``commit``.

    ``fail_on`` makes the store refuse (like a database would) any batch holding an event with that seq —
    for tests of poison-message isolation.
    """

    url = "memory://"

    def __init__(self, state: MemoryState, fail_on: Collection[int] = ()) -> None:
        self.state = state
        self.fail_on = set(fail_on)

    def __enter__(self) -> MemoryUnitOfWork:
        self._work = copy.deepcopy(self.state)
        self.readings = _FailingReadings(self._work, self.fail_on)
        self.trips = MemoryTrips(self._work)
        self.epochs = MemoryEpochs(self._work)
        self.registry = MemoryRegistry(self._work)
        return self

    def commit(self) -> None:
        for name in vars(self.state):
            setattr(self.state, name, getattr(self._work, name))
        self._work = copy.deepcopy(self.state)
        self.readings.s = self.trips.s = self.epochs.s = self.registry.s = self._work

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _FailingReadings(MemoryReadings):
    def __init__(self, state: MemoryState, fail_on: set[int]) -> None:
        super().__init__(state)
        self.fail_on = fail_on

    def add_events(self, events: Sequence[Event]) -> list[Event]:
        for e in events:
            if e.seq in self.fail_on:
                raise StoreRefused(f"value out of range in event {e.vehicle_id}:{e.seq}")
        return super().add_events(events)


class MemoryAlertStore:
    """``settlement.views.AlertStore`` in memory, with the SQL store's rules (one open alert per key)."""

    def __init__(self) -> None:
        self._alerts: dict[int, AlertView] = {}
        self._changed: dict[int, int] = {}
        self._lock = threading.Lock()  # one open per key, as the unique index keeps it, also between threads

    def open(self, kind: str, vehicle_id: str, code: str, at_ms: int, detail: str | None = None) -> AlertView | None:
        if kind not in ALERT_KINDS:
            raise ValueError(f"unknown alert kind {kind!r}: one of {', '.join(ALERT_KINDS)}")
        with self._lock:
            if self._open_one(kind, vehicle_id, code) is not None:
                return None
            alert_id = max(self._alerts, default=0) + 1
            alert = AlertView(alert_id, kind, vehicle_id, code[:64], detail and detail[:256], at_ms, None, None, None)
            return self._keep(alert, at_ms)

    def clear(self, kind: str, vehicle_id: str, code: str, at_ms: int) -> AlertView | None:
        alert = self._open_one(kind, vehicle_id, code)
        return None if alert is None else self._keep(replace(alert, cleared_ms=at_ms), at_ms)

    def ack(self, alert_id: int, by: str, at_ms: int) -> AlertView | None:
        alert = self._alerts.get(alert_id)
        if alert is None or alert.acked_ms is not None:
            return alert
        return self._keep(replace(alert, acked_ms=at_ms, acked_by=by[:128]), at_ms)

    def alerts(self, *, open_only: bool = True, limit: int = 200) -> list[AlertView]:
        found = [a for a in self._alerts.values() if not open_only or a.cleared_ms is None]
        return sorted(found, key=lambda a: (a.opened_ms, a.alert_id), reverse=True)[:limit]

    def changed_since(self, since_ms: int) -> list[AlertView]:
        found = [a for a in self._alerts.values() if self._changed[a.alert_id] >= since_ms]
        return sorted(found, key=lambda a: (self._changed[a.alert_id], a.alert_id))

    def _open_one(self, kind: str, vehicle_id: str, code: str) -> AlertView | None:
        key = (kind, vehicle_id, code[:64])  # cut as the SQL store cuts it (settlement.alerts.MAX_CODE)
        return next(
            (a for a in self._alerts.values() if (a.kind, a.vehicle_id, a.code) == key and a.cleared_ms is None), None
        )

    def _keep(self, alert: AlertView, at_ms: int) -> AlertView:
        self._alerts[alert.alert_id] = alert
        self._changed[alert.alert_id] = max(self._changed.get(alert.alert_id, at_ms), at_ms)
        return alert


_PRICED_OR_LATER = frozenset(
    {TripStatus.PRICED.value, TripStatus.ADJUSTED.value} | {s.value for s in UNSETTLED | SETTLED}
)


@dataclass
class MemoryReadModel:
    """``settlement.views.ReadModel`` over lists of views, with the SQL read model's filters, orders and cursors:
    the dashboard's fake. ``receipts`` maps a trip to its receipt, or to None while its epoch is not on chain;
    ``dead_letters`` holds (reason code, received_ms) per dead letter."""

    vehicle_views: list[VehicleView] = field(default_factory=list)
    trip_views: list[TripView] = field(default_factory=list)
    epoch_views: list[EpochView] = field(default_factory=list)
    payout_views: list[PayoutView] = field(default_factory=list)
    tracks: dict[str, list[TrackPoint]] = field(default_factory=dict)
    dead_letters: list[tuple[str, int]] = field(default_factory=list)
    counts: Stats = field(default_factory=lambda: Stats(0, 0, 0, 0, 0, 0, 0, 0))
    proofs: dict[str, RegistryProofView] = field(default_factory=dict)
    receipts: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    balances: dict[Address, dict[str, Any]] = field(default_factory=dict)

    def vehicles(
        self,
        limit: int = 100,
        cursor: str | None = None,
        *,
        state: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
        online: bool | None = None,
        search: str | None = None,
        sort: str = "vehicle_id",
    ) -> list[VehicleView]:
        key = _vehicle_order(check_sort(sort))
        wanted = None if owner is None else _owner_text(owner)
        chosen = sorted(
            (
                v
                for v in self.vehicle_views
                if (state is None or v.state == state)
                and (kind is None or v.kind == kind)
                and (wanted is None or v.owner == wanted)
                and (online is None or v.online == online)
                and (not search or search.lower() in v.vehicle_id.lower())
            ),
            key=key,
        )
        if cursor is not None:
            value, vehicle_id = vehicle_cursor(cursor, sort)
            mark = key(_at(sort, value, vehicle_id))
            chosen = [v for v in chosen if key(v) > mark]
        return chosen[:limit]

    def fleet(self) -> list[VehicleView]:
        return sorted(self.vehicle_views, key=lambda v: v.vehicle_id)

    def vehicles_received_since(self, since_ms: int, limit: int = 10_000) -> list[VehicleView]:
        found = [v for v in self.vehicle_views if v.received_ms is not None and v.received_ms >= since_ms]
        return sorted(found, key=lambda v: (v.received_ms or 0, v.vehicle_id))[:limit]

    def vehicle(self, vehicle_id: str) -> VehicleView | None:
        return next((v for v in self.vehicle_views if v.vehicle_id == vehicle_id), None)

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[TrackPoint]:
        points = [p for p in self.tracks.get(vehicle_id, []) if since_ms is None or p.timestamp_ms >= since_ms]
        return sorted(points, key=lambda p: p.timestamp_ms)[-limit:] if limit > 0 else []

    def trips(
        self,
        limit: int = 100,
        vehicle_id: str | None = None,
        rider: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        *,
        owner: str | None = None,
        kind: str | None = None,
        epoch_id: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> list[TripView]:
        wanted = None if owner is None else _owner_text(owner)
        equal = {"vehicle_id": vehicle_id, "rider": rider, "kind": kind, "epoch_id": epoch_id, "owner": wanted}
        chosen = [
            t
            for t in self.trip_views
            if (t.status == status if status else t.status in _PRICED_OR_LATER)
            and all(getattr(t, name) == value for name, value in equal.items() if value is not None)
            and _within(t.end_ms if t.end_ms is not None else t.start_ms, from_ms, to_ms)
        ]
        chosen.sort(key=_trip_order, reverse=True)  # end descending with no end last, then id descending
        if cursor is not None:
            end_ms, trip_id = cursor_key(cursor, int, str)
            mark = (end_ms is not None, end_ms or 0, str(trip_id))
            chosen = [t for t in chosen if _trip_order(t) < mark]
        return chosen[:limit]

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]:
        running = [t for t in self.trip_views if t.status == TripStatus.OPEN.value and rider in (None, t.rider)]
        return sorted(running, key=lambda t: (t.start_ms or 0, t.trip_id), reverse=True)[:limit]

    def kpis(self, now_ms: int, day_start_ms: int) -> Kpis:
        ended = [t for t in self.trip_views if t.status in _PRICED_OR_LATER and t.end_ms is not None]
        # as the SQL read model: a trip that ended "after now" (a device clock ahead of ours) counts as recent
        hour = [t for t in ended if now_ms - 3_600_000 <= (t.end_ms or 0)]
        today = [t for t in ended if day_start_ms <= (t.end_ms or 0)]
        revenue = sum((t.charged_micro if t.charged_micro is not None else t.fare_micro) or 0 for t in today)
        n = len(today)
        durations = [t.duration_s for t in today if t.duration_s is not None]
        distances = [t.distance_m for t in today if t.distance_m is not None]
        return Kpis(
            trips_last_hour=len(hour),
            trips_today=n,
            revenue_today_micro=revenue,
            avg_duration_s=sum(durations) / len(durations) if durations else None,
            avg_distance_m=sum(distances) / len(distances) if distances else None,
            avg_fare_micro=(revenue + n // 2) // n if n else None,
        )

    def rejects_since(self, since_ms: int) -> dict[str, int]:
        found: dict[str, int] = {}
        for code, at in self.dead_letters:
            if at >= since_ms:
                found[code] = found.get(code, 0) + 1
        return found

    def rejects_by_code(self) -> dict[str, int]:
        return self.rejects_since(-(2**63))

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        return self.proofs.get(vehicle_id)

    def trip(self, trip_id: str) -> TripView | None:
        return next((t for t in self.trip_views if t.trip_id == trip_id), None)

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None:
        if trip_id in self.receipts and self.receipts[trip_id] is None:
            raise NotCommitted(f"trip {trip_id} is not on chain yet: it has a receipt once its epoch is")
        return self.receipts.get(trip_id)

    def balance_proof(self, account: Address) -> dict[str, Any] | None:
        return self.balances.get(account)

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        chosen = sorted(self.epoch_views, key=lambda e: e.epoch_id, reverse=True)
        if cursor is not None:
            (before,) = cursor_key(cursor, int)
            chosen = [e for e in chosen if before is None or e.epoch_id < before]  # type: ignore[operator]
        return chosen[:limit]

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]:
        wanted = None if owner is None else _owner_text(owner)
        chosen = sorted((p for p in self.payout_views if wanted in (None, p.owner)), key=lambda p: p.owner)
        if cursor is not None:
            (after,) = cursor_key(cursor, str)
            chosen = [p for p in chosen if after is None or p.owner > str(after)]
        return chosen[:limit]

    def stats(self) -> Stats:
        return self.counts


def _owner_text(owner: str) -> str:
    try:
        return str(Address.parse(owner))
    except InvalidAddress:
        raise ValueError(f"not an owner address: {owner[:60]!r}") from None


def _vehicle_order(sort: str) -> Callable[[VehicleView], tuple[bool, float, str]]:
    """The order of a vehicle sort as a key: values first (ascending, or descending for ``-``), nulls last, by id."""

    def key(v: VehicleView) -> tuple[bool, float, str]:
        if sort == "vehicle_id":
            return (False, 0.0, v.vehicle_id)
        value = v.received_ms if sort == "-received_ms" else v.battery_pct
        return (value is None, -(value or 0) if sort.startswith("-") else (value or 0), v.vehicle_id)

    return key


def _at(sort: str, value: float | int | None, vehicle_id: str) -> VehicleView:
    """A stand-in vehicle at a cursor's place in ``sort``."""
    stand_in = VehicleView(vehicle_id, "", "", None, "", False, None, None, None, None)
    if sort == "-received_ms":
        return replace(stand_in, received_ms=None if value is None else int(value))
    return replace(stand_in, battery_pct=None if value is None else float(value))


def _trip_order(t: TripView) -> tuple[bool, int, str]:
    return (t.end_ms is not None, t.end_ms or 0, t.trip_id)


def _within(at_ms: int | None, from_ms: int | None, to_ms: int | None) -> bool:
    if from_ms is None and to_ms is None:
        return True
    return at_ms is not None and (from_ms is None or at_ms >= from_ms) and (to_ms is None or at_ms < to_ms)
