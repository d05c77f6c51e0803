"""Trips: each vehicle's unlock and lock paired exactly by sequence number, derived batch by batch (pure).

A lock names the unlock it ends (``Event.trip_seq``), so both halves give the trip's id
(``sensors.wire.trip_id_for``) and pairing needs neither arrival order nor history. A trip's record is
created by whichever half arrives first and stays ``open`` until the other comes; with both it is judged
against the plausibility bounds and priced, or rejected with its reason. ``derive`` takes one batch of new
events with the stored records they name and returns what changed; ``expire`` holds as rejected the open
trips whose missing half is overdue in event time. Rejections for a missing half (``HELD_REASONS``) are
held, not final: the half arriving late revives the trip, so any delivery order, duplication or delay of
the same events ends in the same trips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from sensors.address import Address
from sensors.messages import Event, EventType, VehicleKind
from sensors.wire import trip_id_for
from settlement import bounds as plausibility
from settlement import lifecycle
from settlement.bounds import Bounds
from settlement.lifecycle import HELD_REASONS, TripStatus
from settlement.pricing import FareBreakdown, PricingPlan, price
from settlement.reasons import RejectCode

__all__ = [
    "Derivation",
    "Mark",
    "PayeeLookup",
    "TripRecord",
    "TripSplit",
    "derive",
    "expire",
    "trip_id_for",
    "trip_ids_named",
    "vehicles_named",
]

PayeeLookup = Callable[[str, int], Address | None]
"""Who is paid for a vehicle at a moment: ``(vehicle_id, at_ms) -> payee``, None if it was not registered then."""

_TRIP_EVENTS = frozenset({EventType.UNLOCK, EventType.LOCK})


@dataclass(frozen=True, slots=True)
class Mark:
    """One half of a trip: where and when its unlock or its lock happened."""

    seq: int
    timestamp_ms: int
    lat: float
    lon: float
    odometer_m: int

    @classmethod
    def of(cls, event: Event) -> Mark:
        """The mark left by ``event``."""
        return cls(event.seq, event.timestamp, event.position.lat, event.position.lon, event.odometer_m)


@dataclass(frozen=True, slots=True)
class TripRecord:
    """A trip from the moment its first half arrives until its epoch is final.

    ``start`` is its unlock, ``end`` its lock; ``reason`` (a ``RejectCode`` value) is set while it is
    ``rejected``; ``payee`` (from the registry at the unlock time), ``distance_m`` and ``duration_s`` are
    set once both halves are there, ``fare`` once it is priced, ``epoch_id`` once it is batched, with the fare's
    split (``owner_share`` + ``fee``) and the ``rider_account`` that paid it.
    """

    trip_id: str
    vehicle_id: str
    operator: str
    kind: VehicleKind
    status: TripStatus
    start: Mark | None = None
    end: Mark | None = None
    rider: str | None = None
    payee: Address | None = None
    reason: str | None = None
    distance_m: int | None = None
    duration_s: int | None = None
    fare: FareBreakdown | None = None
    epoch_id: int | None = None
    owner_share: int | None = None
    fee: int | None = None
    rider_account: Address | None = None

    @property
    def unlock_seq(self) -> int:
        """The ``seq`` of the unlock that starts the trip (known from its id even before the unlock arrives)."""
        return int(self.trip_id.rpartition(":")[2])

    @property
    def held(self) -> bool:
        """Rejected only for a missing half, which may still arrive."""
        return self.status is TripStatus.REJECTED and self.reason in HELD_REASONS

    @property
    def awaiting(self) -> bool:
        """Still missing a half that would complete it (open, or held)."""
        return self.status is TripStatus.OPEN or self.held

    def with_status(self, new: TripStatus, reason: str | None = None) -> TripRecord:
        """This record moved to ``new`` (with ``reason`` when rejected), if the life cycle allows it.

        Raises ``lifecycle.IllegalTransition`` for a move the life cycle forbids, ``ValueError`` for a
        rejection without a reason or a reason on any other status.
        """
        lifecycle.check_trip(self.status, new, self.reason)
        if (new is TripStatus.REJECTED) != (reason is not None):
            raise ValueError(f"a reason goes with a rejection and only with one, not {new} with {reason!r}")
        return replace(self, status=new, reason=reason)


@dataclass(frozen=True, slots=True)
class TripSplit:
    """How a batched trip's fare was paid: ``rider`` spent ``owner_share + fee``; the payee earned ``owner_share``
    and the zone ``fee``."""

    trip_id: str
    rider: Address
    owner_share: int
    fee: int


@dataclass(frozen=True, slots=True)
class Derivation:
    """What one batch of events did to the trips.

    ``changed``: every record the batch created or changed, in its final version, once each, to be saved;
    ``anomalies``: the events that changed nothing and should be counted or shown, with their reason.
    """

    changed: tuple[TripRecord, ...] = ()
    anomalies: tuple[tuple[Event, RejectCode], ...] = ()


def trip_ids_named(events: Iterable[Event]) -> set[str]:
    """The ids of the trips that the unlocks and locks among ``events`` belong to (the records to load)."""
    ids: set[str] = set()
    for event in events:
        if event.event_type is EventType.UNLOCK:
            ids.add(trip_id_for(event.vehicle_id, event.seq))
        elif event.event_type is EventType.LOCK and _pairs(event):
            assert event.trip_seq is not None
            ids.add(trip_id_for(event.vehicle_id, event.trip_seq))
    return ids


def vehicles_named(events: Iterable[Event]) -> set[str]:
    """The vehicles with an unlock or a lock among ``events`` (whose open and held trips to load)."""
    return {event.vehicle_id for event in events if event.event_type in _TRIP_EVENTS}


def derive(
    events: Iterable[Event],
    known: Mapping[str, TripRecord],
    *,
    payee_of: PayeeLookup,
    tariffs: Mapping[VehicleKind, PricingPlan],
    bounds: Bounds,
) -> Derivation:
    """The trips created or changed by ``events``, the new unlocks and locks of one batch in any order.

    ``known`` holds the stored records of ``trip_ids_named(events)`` and the open and held records of
    ``vehicles_named(events)``; it may also hold, per vehicle, the stored record with the highest unlock seq
    that has a lock, which makes the ``unlock_twice`` rule below independent of the delivery order. Other
    event types are ignored; the cost is that of the batch and of ``known``, never of the history.

    Rules: a half attaches to its trip's record if the record is still awaiting it (a repeated half is a
    duplicate and ignored); with both halves the trip is judged and priced (``_settle``). A second, different
    lock for a trip that has one is ``LOCK_TWICE``, a lock naming no earlier unlock ``BAD_PAIR`` (anomalies).
    An unlock-only record of a vehicle that has the lock of a later trip is held as ``UNLOCK_TWICE``.
    A trip that is priced or further on is never changed.
    """
    records = dict(known)
    anomalies: list[tuple[Event, RejectCode]] = []
    grown: dict[str, None] = {}
    trip_events = (e for e in events if e.event_type in _TRIP_EVENTS)
    for event in sorted(trip_events, key=lambda e: (e.vehicle_id, e.seq)):
        if event.event_type is EventType.LOCK and not _pairs(event):
            anomalies.append((event, RejectCode.BAD_PAIR))
            continue
        trip_id, code = _attach(records, event)
        if code is not None:
            anomalies.append((event, code))
        elif trip_id is not None:
            grown[trip_id] = None
    for trip_id in grown:
        record = records[trip_id]
        if record.start is not None and record.end is not None:
            records[trip_id] = _settle(record, payee_of, tariffs, bounds)
    _hold_superseded(records)
    changed = sorted(
        (r for trip_id, r in records.items() if known.get(trip_id) != r),
        key=lambda r: (r.vehicle_id, r.unlock_seq),
    )
    return Derivation(tuple(changed), tuple(anomalies))


def expire(candidates: Iterable[TripRecord], watermark_ms: int, bounds: Bounds) -> tuple[TripRecord, ...]:
    """The open trips among ``candidates`` whose missing half is overdue, now held as rejected.

    Overdue: the half they have is older than their kind's ``max_trip_s`` plus ``bounds.open_grace_ms``
    at ``watermark_ms``, the latest event time of the stream (not the wall clock, so a replay or a
    stalled broker expires nothing early). An unlock alone becomes ``NO_LOCK``, a lock alone
    ``NO_UNLOCK``; both are held, so the late half still revives the trip.
    """
    expired: list[TripRecord] = []
    for record in candidates:
        if record.status is not TripStatus.OPEN:
            continue
        half = record.start if record.start is not None else record.end
        if half is None or watermark_ms - half.timestamp_ms <= bounds.open_limit_ms(record.kind):
            continue
        reason = RejectCode.NO_LOCK if record.start is not None else RejectCode.NO_UNLOCK
        expired.append(record.with_status(TripStatus.REJECTED, reason))
    return tuple(expired)


def _pairs(lock: Event) -> bool:
    """Whether ``lock`` names an unlock that came before it."""
    return lock.trip_seq is not None and 0 <= lock.trip_seq < lock.seq


def _attach(records: dict[str, TripRecord], event: Event) -> tuple[str | None, RejectCode | None]:
    """Add ``event``'s half to its trip in ``records``: (the trip id if its record grew, an anomaly)."""
    is_unlock = event.event_type is EventType.UNLOCK
    unlock_seq = event.seq if is_unlock else event.trip_seq
    assert unlock_seq is not None
    trip_id = trip_id_for(event.vehicle_id, unlock_seq)
    mark = Mark.of(event)
    record = records.get(trip_id)
    if record is None:
        record = TripRecord(
            trip_id, event.vehicle_id, event.operator, event.kind, TripStatus.OPEN, rider=event.rider or None
        )
        records[trip_id] = replace(record, start=mark) if is_unlock else replace(record, end=mark)
        return trip_id, None
    half = record.start if is_unlock else record.end
    if half is not None:
        if is_unlock or half.seq == event.seq:
            return None, None  # the same half again
        return None, RejectCode.LOCK_TWICE
    if not record.awaiting:  # a record missing a half is always awaiting it; kept as a guard
        return None, None
    if is_unlock:
        records[trip_id] = replace(record, start=mark, rider=event.rider or record.rider)
    else:
        records[trip_id] = replace(record, end=mark, rider=record.rider or event.rider or None)
    return trip_id, None


def _settle(
    record: TripRecord, payee_of: PayeeLookup, tariffs: Mapping[VehicleKind, PricingPlan], bounds: Bounds
) -> TripRecord:
    """A trip with both halves, judged and priced: ``priced``, or ``rejected`` with the first rule it breaks.

    Distance is the odometer's (lock minus unlock), duration the started seconds between the two; a lock
    before its unlock in time is ``BAD_PAIR``, an odometer going back ``ODOMETER_BACKWARDS``; then the
    kind's bounds, then its fare cap (``FARE_CAP``), then the registry (``NOT_REGISTERED_THEN``).
    """
    start, end = record.start, record.end
    assert start is not None and end is not None
    duration_ms = end.timestamp_ms - start.timestamp_ms
    complete = replace(
        record.with_status(TripStatus.COMPLETE),
        payee=payee_of(record.vehicle_id, start.timestamp_ms),
        distance_m=end.odometer_m - start.odometer_m,
        duration_s=-(-duration_ms // 1000),
        fare=None,
    )
    assert complete.distance_m is not None and complete.duration_s is not None
    code: RejectCode | None
    fare: FareBreakdown | None = None
    if duration_ms < 0:
        code = RejectCode.BAD_PAIR
    elif complete.distance_m < 0:
        code = RejectCode.ODOMETER_BACKWARDS
    else:
        code = plausibility.check_trip(record.kind, start, end, complete.distance_m, complete.duration_s, bounds)
    if code is None:
        fare = price(tariffs[record.kind], complete.distance_m, complete.duration_s)
        if fare.total_micro > bounds.of(record.kind).max_fare_micro:
            code = RejectCode.FARE_CAP
        elif complete.payee is None:
            code = RejectCode.NOT_REGISTERED_THEN
    if code is not None:
        return complete.with_status(TripStatus.REJECTED, code)
    return replace(complete.with_status(TripStatus.PRICED), fare=fare)


def _hold_superseded(records: dict[str, TripRecord]) -> None:
    """Hold as ``UNLOCK_TWICE`` every unlock-only trip of a vehicle that has the lock of a later trip.

    Such an unlock was followed by another one before any lock of its own: its lock may still come (it
    is held, not final), but it no longer waits for the timeout. An ``open`` or ``no_lock`` record moves.
    """
    latest_lock: dict[str, int] = {}
    for record in records.values():
        if record.end is not None:
            seen = latest_lock.get(record.vehicle_id, -1)
            latest_lock[record.vehicle_id] = max(seen, record.unlock_seq)
    for trip_id, record in records.items():
        if record.end is not None or record.unlock_seq >= latest_lock.get(record.vehicle_id, -1):
            continue
        if record.status is TripStatus.REJECTED and record.reason == RejectCode.NO_LOCK:
            record = record.with_status(TripStatus.OPEN)
        if record.status is TripStatus.OPEN:
            records[trip_id] = record.with_status(TripStatus.REJECTED, RejectCode.UNLOCK_TWICE)
