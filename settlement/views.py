"""The read side of settlement: what the dashboard may see, as frozen views, and the port that serves them.

Every list is read in keyset pages: a list's order ends in a unique key, and a page's opaque ``cursor`` (made by
``cursor_after`` from the last view of the page before) names where the next page starts. A vehicle list sorted
otherwise than by id has cursors that name their sort, so that a cursor of one sort is refused by another.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

from sensors.address import Address
from settlement.errors import SettlementError


class InvalidCursor(SettlementError, ValueError):
    """A cursor that no page of this list handed out."""


class NotCommitted(SettlementError):
    """A trip whose epoch is not on chain yet, so it has no receipt."""


@dataclass(frozen=True, slots=True)
class VehicleView:
    """A vehicle as last seen. ``state`` is its MDS 2.0 vehicle state."""

    vehicle_id: str
    operator: str
    kind: str
    owner: str | None
    state: str  # available | on_trip | non_operational | unknown
    online: bool
    battery_pct: float | None
    lat: float | None
    lon: float | None
    last_seen_ms: int | None
    received_ms: int | None = None  # the platform's wall clock when it stored the message that last changed the row
    fault_code: str | None = None  # the current fault's code while non_operational
    state_ms: int | None = None  # the device's time of its last online/offline state


VEHICLE_SORTS = ("vehicle_id", "battery_pct", "-battery_pct", "-received_ms")
"""The orders of ``ReadModel.vehicles``: a leading ``-`` is descending; nulls come last, the id breaks ties."""


def check_sort(sort: str) -> str:
    """``sort`` if it is one of ``VEHICLE_SORTS``; ``ValueError`` naming them else."""
    if sort not in VEHICLE_SORTS:
        raise ValueError(f"unknown sort {sort!r}: one of {', '.join(VEHICLE_SORTS)}")
    return sort


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One telemetry reading of a vehicle's track."""

    timestamp_ms: int
    lat: float
    lon: float
    speed_mps: float
    battery_pct: float | None


@dataclass(frozen=True, slots=True)
class Kpis:
    """The day's figures: trips ended in the last hour and since the day's start, the day's revenue (what riders
    are charged: the consented charge, else the metered fare) and the averages of the day's trips (None without
    any)."""

    trips_last_hour: int
    trips_today: int
    revenue_today_micro: int
    avg_duration_s: float | None
    avg_distance_m: float | None
    avg_fare_micro: int | None


ALERT_KINDS = ("battery_low", "offline", "fault", "outside_zone", "rejects")


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert: open until ``cleared_ms``; ``vehicle_id`` is '' for a fleet-wide alert, ``code`` '' when none
    (else a fault code or a reject reason)."""

    alert_id: int
    kind: str
    vehicle_id: str
    code: str
    detail: str | None
    opened_ms: int
    cleared_ms: int | None
    acked_ms: int | None
    acked_by: str | None


class AlertStore(Protocol):
    """Where the dashboard keeps its alerts, shared by its instances: at most one open alert per
    (kind, vehicle_id, code)."""

    def open(self, kind: str, vehicle_id: str, code: str, at_ms: int, detail: str | None = None) -> AlertView | None:
        """Open an alert; None when one with that key is open already (also if another instance just opened it)."""
        ...

    def clear(self, kind: str, vehicle_id: str, code: str, at_ms: int) -> AlertView | None:
        """Clear the open alert of that key; None when none is open."""
        ...

    def ack(self, alert_id: int, by: str, at_ms: int) -> AlertView | None:
        """Acknowledge an alert (open or cleared); acking twice keeps the first ack; None for an unknown id."""
        ...

    def alerts(self, *, open_only: bool = True, limit: int = 200) -> list[AlertView]:
        """Alerts newest first (by opening time, then id)."""
        ...

    def changed_since(self, since_ms: int) -> list[AlertView]:
        """Alerts opened, cleared or acked at or after ``since_ms``, by the time of their last change, then id."""
        ...


@dataclass(frozen=True, slots=True)
class TripView:
    """A trip with its fare and where it stands in its life cycle (``settlement.lifecycle.TripStatus``).

    A rejected trip has ``reason`` (a ``RejectCode``) and may miss a half: then its times, distance and fare
    are None. ``fare_micro`` is the metered fare, ``charged_micro`` what the rider pays under consent
    (``min(metered, last voucher, cap)``), ``signed_micro`` what the rider's last voucher signed for so far: the
    running cost of a trip in progress.
    """

    trip_id: str
    vehicle_id: str
    kind: str
    owner: str | None
    rider: str | None
    start_ms: int | None
    end_ms: int | None
    duration_s: int | None
    distance_m: int | None
    fare_micro: int | None
    status: str
    epoch_id: int | None
    reason: str | None = None
    charged_micro: int | None = None
    signed_micro: int | None = None


@dataclass(frozen=True, slots=True)
class EpochView:
    """A batch of trips and its settlement transaction."""

    epoch_id: int
    trip_count: int
    total_micro: int
    trips_root: str
    status: str  # settlement.lifecycle.EpochStatus
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    closed_ms: int
    settled_ms: int | None
    registry_root: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutView:
    """What one vehicle owner has earned: settled on chain and still pending."""

    owner: str
    trip_count: int
    settled_micro: int
    pending_micro: int
    claimed_micro: int = 0
    claimable_micro: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts for the overview."""

    vehicles: int
    online: int
    telemetry: int
    events: int
    rejected: int
    trips: int
    epochs: int
    settled_micro: int


@dataclass(frozen=True, slots=True)
class RegistryProofView:
    """A vehicle's registry entry, its leaf and Merkle proof, and the registry root they prove against.

    Anyone can hash ``leaf`` (OpenZeppelin StandardMerkleTree, ``settlement.registry.REGISTRY_LEAF_TYPES``),
    fold in ``proof`` and compare with ``root`` — and with the registry root an epoch committed on chain.
    """

    vehicle_id: str
    operator: str
    kind: str
    device: str
    payee: str
    valid_from_ms: int
    valid_until_ms: int
    revoked_ms: int | None
    leaf: list[object]
    proof: list[str]
    root: str


Listed = VehicleView | TripView | EpochView | PayoutView


def cursor_after(view: Listed, *, sort: str = "vehicle_id") -> str:
    """The opaque cursor of the page that starts after ``view`` in its list (``sort``: a vehicle list's order)."""
    key: list[object]
    if isinstance(view, TripView):
        key = [view.end_ms, view.trip_id]
    elif isinstance(view, VehicleView):
        key = vehicle_key(view, check_sort(sort))
    elif isinstance(view, EpochView):
        key = [view.epoch_id]
    else:
        key = [view.owner]
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def vehicle_key(view: VehicleView, sort: str) -> list[object]:
    """A vehicle's cursor key under ``sort``: its id alone by id, else the sort's name, value and the id."""
    if sort == "vehicle_id":
        return [view.vehicle_id]
    if sort == "-received_ms":
        return [sort, view.received_ms, view.vehicle_id]
    return [sort, None if view.battery_pct is None else float(view.battery_pct), view.vehicle_id]


def vehicle_cursor(cursor: str, sort: str) -> tuple[float | int | None, str]:
    """The (sort value, vehicle id) a vehicle cursor names; ``InvalidCursor`` for one of another sort."""
    if sort == "vehicle_id":
        (vehicle_id,) = cursor_key(cursor, str)
        if vehicle_id is None:
            raise InvalidCursor(f"not a cursor of this list: {cursor!r}")
        return None, str(vehicle_id)
    tag, value, vehicle_id = cursor_key(cursor, str, int if sort == "-received_ms" else float, str)
    if tag != sort or vehicle_id is None:
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}")
    return value, str(vehicle_id)  # type: ignore[return-value]


def cursor_key(cursor: str, *types: type) -> list[object]:
    """The key a cursor names, checked against the list's key ``types`` (None allowed); ``InvalidCursor`` else."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(k is None or (isinstance(k, t) and not isinstance(k, bool)) for k, t in zip(key, types, strict=True))
    ):
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}")
    return key


class ReadModel(Protocol):
    """Queries the dashboard runs; every list is newest or most relevant first, bounded by ``limit``, and starts
    after ``cursor`` (``cursor_after`` of the last view of the page before); a bad cursor raises ``InvalidCursor``.
    """

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
        """Vehicles matching every filter given (``search``: a case-insensitive part of the id), in ``sort`` order
        (``VEHICLE_SORTS``; ``ValueError`` for another); the cursor must come from the same sort."""
        ...

    def fleet(self) -> list[VehicleView]:
        """Every vehicle, by id, in one read (the live map's snapshot)."""
        ...

    def vehicles_received_since(self, since_ms: int, limit: int = 10_000) -> list[VehicleView]:
        """Vehicles whose row changed at or after ``since_ms`` (platform time), by ``received_ms`` then id."""
        ...

    def vehicle(self, vehicle_id: str) -> VehicleView | None: ...

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[TrackPoint]:
        """The vehicle's newest ``limit`` raw telemetry points (at or after ``since_ms``), oldest first."""
        ...

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
        """Priced trips and later (or only those of ``status``), newest first (end time, then trip id, both
        descending; trips without an end come last); ``from_ms <= end < to_ms`` (the start for a trip without an
        end)."""
        ...

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]:
        """Open trips (of ``rider``), newest start first, with what their last voucher signed for so far."""
        ...

    def kpis(self, now_ms: int, day_start_ms: int) -> Kpis:
        """The figures of trips ended in the hour before ``now_ms`` and since ``day_start_ms``."""
        ...

    def rejects_since(self, since_ms: int) -> dict[str, int]:
        """Dead letters received at or after ``since_ms``, per reason code (from the kept samples)."""
        ...

    def rejects_by_code(self) -> dict[str, int]:
        """How many messages were dead-lettered, per reason code."""
        ...

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        """The vehicle's latest registry entry with its Merkle proof, or None if it was never registered."""
        ...

    def trip(self, trip_id: str) -> TripView | None: ...

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None:
        """The receipt of a committed trip (``settlement.receipts.build_receipt``), with its proof rebuilt from its
        epoch's trips; None for no such trip, ``NotCommitted`` for a trip whose epoch is not on chain yet."""
        ...

    def balance_proof(self, account: Address) -> dict[str, Any] | None:
        """``account``'s cumulative balance in the last epoch on chain with its proof
        (``settlement.claims.balance_document``); None when no epoch on chain holds the account."""
        ...

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        """Epochs, newest first."""
        ...

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]:
        """Earnings per owner, by owner address (only ``owner``'s when given)."""
        ...

    def stats(self) -> Stats: ...
