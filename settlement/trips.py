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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sensors.address import Address
from sensors.consent import RideConsent, Voucher
from sensors.messages import Event, EventType, RiderVoucher, VehicleKind
from sensors.signing import Domain
from sensors.wire import trip_id_for
from settlement import bounds as plausibility
from settlement import lifecycle
from settlement.bounds import Bounds
from settlement.consent import TripConsent, chargeable, check_consent, check_voucher
from settlement.lifecycle import HELD_REASONS, TripStatus
from settlement.pricing import FareBreakdown, PricingPlan, price
from settlement.reasons import RejectCode

__all__ = [
    "ConsentRules",
    "Derivation",
    "Mark",
    "PayeeLookup",
    "TripRecord",
    "TripSplit",
    "VoucherOutcome",
    "apply_vouchers",
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

    ``consent`` is the rider's consent the unlock carried, ``voucher`` the last voucher accepted for the trip;
    once priced under consent, ``charged_micro`` is what the rider pays (``min(metered, voucher, cap)``) and
    ``limited_by`` which of the three set it. Without consent rules (``derive``'s ``consent`` None) both stay
    None and the metered fare is charged.
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
    consent: RideConsent | None = None
    voucher: Voucher | None = None
    charged_micro: int | None = None
    limited_by: str | None = None

    @property
    def charged(self) -> int:
        """What the rider is charged for the priced trip: the consented amount, else the metered fare."""
        if self.charged_micro is not None:
            return self.charged_micro
        assert self.fare is not None, f"trip {self.trip_id} is not priced"
        return self.fare.total_micro

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


@dataclass
class ConsentRules:
    """What judging a trip's consent needs beyond the trip: the EIP-712 domain riders sign in and the nonces each
    rider has used in accepted consents (those of the riders the batch names; ``derive`` adds what it accepts).

    A trip priced under these rules is charged ``min(metered, last voucher, cap)``; one whose consent is refused
    is rejected with the consent's reason, for good.
    """

    domain: Domain
    used_nonces: dict[Address, set[int]] = field(default_factory=dict)


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
    consent: ConsentRules | None = None,
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

    With ``consent`` rules, an unlock's consent and a lock's voucher are kept on the trip: a lock's voucher is
    checked against the consent when both are there (a refused one is an anomaly with its reason and is dropped),
    the consent itself when the trip is judged (``_settle``).
    """
    records = dict(known)
    anomalies: list[tuple[Event, RejectCode]] = []
    grown: dict[str, None] = {}
    trip_events = (e for e in events if e.event_type in _TRIP_EVENTS)
    for event in sorted(trip_events, key=lambda e: (e.vehicle_id, e.seq)):
        if event.event_type is EventType.LOCK and not _pairs(event):
            anomalies.append((event, RejectCode.BAD_PAIR))
            continue
        trip_id, code = _attach(records, event, consent)
        if code is not None:
            anomalies.append((event, code))  # a refused voucher: the half it came with still counts
        if trip_id is not None:
            grown[trip_id] = None
    for trip_id in grown:
        record = records[trip_id]
        if record.start is not None and record.end is not None:
            records[trip_id] = _settle(record, payee_of, tariffs, bounds, consent)
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


def _attach(
    records: dict[str, TripRecord], event: Event, rules: ConsentRules | None = None
) -> tuple[str | None, RejectCode | None]:
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
        return trip_id, _carry(records, trip_id, event, rules)
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
    return trip_id, _carry(records, trip_id, event, rules)


def _carry(records: dict[str, TripRecord], trip_id: str, event: Event, rules: ConsentRules | None) -> RejectCode | None:
    """Keep the consent an unlock carries and the voucher a lock carries on the trip (with consent rules only).

    A lock's voucher is checked against the trip's consent once both are there (at the lock, or at an unlock
    that arrives after its lock), sent at the lock's time; a refused one is dropped and its code returned.
    """
    if rules is None:
        return None
    record = records[trip_id]
    if event.event_type is EventType.UNLOCK:
        record = replace(record, consent=event.consent)
        pending, record = record.voucher, replace(record, voucher=None)
    else:
        pending = event.voucher
    code = None
    if pending is not None:
        if record.consent is None and event.event_type is EventType.LOCK:
            record = replace(record, voucher=pending)  # the unlock with the consent has not arrived: judged then
        else:
            assert record.end is not None
            record, code = _with_voucher(record, pending, record.end.timestamp_ms, rules.domain)
    records[trip_id] = record
    return code


def _with_voucher(
    record: TripRecord, voucher: Voucher, at_ms: int, domain: Domain
) -> tuple[TripRecord, RejectCode | None]:
    """``record`` with ``voucher`` as its last if the voucher may follow the record's consent and last voucher."""
    if record.consent is None:
        return record, RejectCode.VOUCHER_NO_CONSENT
    state = TripConsent(record.trip_id, record.consent, b"", record.voucher)
    verdict = check_voucher(voucher, record.trip_id, state, at_ms=at_ms, domain=domain)
    if not verdict.ok:
        assert verdict.code is not None
        return record, RejectCode(verdict.code)
    return replace(record, voucher=voucher), None


@dataclass(frozen=True, slots=True)
class VoucherOutcome:
    """What the vouchers of one batch did: the trips they moved on, the notes refused (with code and reason) and
    how many were superseded (not above the trip's last voucher: a redelivery or a late, older one)."""

    changed: tuple[TripRecord, ...] = ()
    refused: tuple[tuple[RiderVoucher, RejectCode, str], ...] = ()
    superseded: int = 0


def apply_vouchers(notes: Sequence[RiderVoucher], known: Mapping[str, TripRecord], domain: Domain) -> VoucherOutcome:
    """Take the vouchers relayed during rides (``notes``, in arrival order) onto the trips ``known`` holds (the stored
    records of the trips they name, as the batch left them).

    Only the last voucher of a trip counts (µRaiden): one whose ``seq`` is not above the trip's last accepted one is
    superseded and dropped, whatever its amount — an older voucher delivered late, or the same one again. Else it is
    refused with its code and a one-line reason when its trip is unknown or has no consent yet
    (``voucher_no_consent``: the unlock has not arrived), has ended (``voucher_late``: after the lock's voucher), or
    when it breaks a rule of ``check_voucher`` at the note's time; otherwise it becomes the trip's last voucher.
    """
    records = dict(known)
    refused: list[tuple[RiderVoucher, RejectCode, str]] = []
    changed: dict[str, None] = {}
    superseded = 0
    for note in notes:
        trip_id = note.voucher.trip_id
        record = records.get(trip_id)
        if record is None or record.consent is None:
            refused.append((note, RejectCode.VOUCHER_NO_CONSENT, f"trip {trip_id} has no consent (yet)"))
            continue
        if record.voucher is not None and note.voucher.seq <= record.voucher.seq:
            superseded += 1
            continue
        if record.end is not None or not record.awaiting:
            refused.append((note, RejectCode.VOUCHER_LATE, f"trip {trip_id} has ended: its lock's voucher stands"))
            continue
        updated, code = _with_voucher(record, note.voucher, note.timestamp, domain)
        if code is not None:
            refused.append((note, code, f"voucher {note.voucher.seq} of trip {trip_id} refused: {code}"))
            continue
        records[trip_id] = updated
        changed[trip_id] = None
    return VoucherOutcome(tuple(records[t] for t in changed), tuple(refused), superseded)


def _settle(
    record: TripRecord,
    payee_of: PayeeLookup,
    tariffs: Mapping[VehicleKind, PricingPlan],
    bounds: Bounds,
    rules: ConsentRules | None = None,
) -> TripRecord:
    """A trip with both halves, judged and priced: ``priced``, or ``rejected`` with the first rule it breaks.

    Distance is the odometer's (lock minus unlock), duration the started seconds between the two; a lock
    before its unlock in time is ``BAD_PAIR``, an odometer going back ``ODOMETER_BACKWARDS``; then the
    kind's bounds, then its fare cap (``FARE_CAP``), then the registry (``NOT_REGISTERED_THEN``). With consent
    rules the rider's consent is judged first (``check_consent``: its code rejects the trip), its nonce counted as
    used once accepted, and the priced trip is charged ``min(metered, last voucher, cap)``.
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
    plan = tariffs[record.kind]
    if code is None and rules is not None:
        code = _consent_code(record, plan, tariffs, rules)
    if code is None:
        fare = price(plan, complete.distance_m, complete.duration_s)
        if fare.total_micro > bounds.of(record.kind).max_fare_micro:
            code = RejectCode.FARE_CAP
        elif complete.payee is None:
            code = RejectCode.NOT_REGISTERED_THEN
    if code is not None:
        return complete.with_status(TripStatus.REJECTED, code)
    assert fare is not None
    priced_trip = replace(complete.with_status(TripStatus.PRICED), fare=fare)
    if rules is None:
        return priced_trip
    assert record.consent is not None
    rules.used_nonces.setdefault(record.consent.rider, set()).add(record.consent.nonce)
    state = TripConsent(record.trip_id, record.consent, b"", record.voucher)
    charge = chargeable(state, fare.total_micro)
    return replace(priced_trip, charged_micro=charge.fare_micro, limited_by=charge.limited_by)


def _consent_code(
    record: TripRecord, plan: PricingPlan, tariffs: Mapping[VehicleKind, PricingPlan], rules: ConsentRules
) -> RejectCode | None:
    """The first consent rule the trip's unlock breaks (``check_consent`` at the unlock's time), or None."""
    assert record.start is not None
    consent = record.consent
    verdict = check_consent(
        consent,
        rider=record.rider or "",
        vehicle_id=record.vehicle_id,
        unlock_ms=record.start.timestamp_ms,
        tariffs={p.plan_id for p in tariffs.values()},
        used_nonces=rules.used_nonces.get(consent.rider, set()) if consent is not None else set(),
        domain=rules.domain,
        vehicle_tariff=plan.plan_id,
    )
    return None if verdict.ok else RejectCode(str(verdict.code))


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
