"""Riders pay only with consent: the aggregator judges the unlock's consent and the riders' vouchers, on fakes.

Every case goes through ``Aggregator.handle`` with wire bytes, as the broker hands them over: the consent an unlock
carries, the voucher a lock carries, the vouchers relayed on the ``voucher`` channel during the ride.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sensors.consent import Voucher, sign
from sensors.messages import Event, EventType, RiderVoucher
from sensors.signing import address_of
from settlement.aggregator import Aggregator
from settlement.lifecycle import TripStatus
from settlement.memory import MemoryState
from settlement.receipts import build_receipt, verify_receipt
from tests.signed import CAP_MICRO, OPERATOR, RIDER, SignedFleet, consent_for, rider_key, voucher_for
from tests.unit.test_aggregator import make

T0 = 1_780_000_000_000
KEY, OTHER = rider_key(1), rider_key(2)
TEN_MINUTES_BIKE = 500_000 + 10 * 50_000  # the bike plan: €0.50 to unlock, €0.05 a started minute


@pytest.fixture()
def agg(state: MemoryState, fleet: SignedFleet) -> Aggregator:
    return make(state, fleet)[0]


def unlock(fleet: SignedFleet, seq: int = 1, vehicle: str = "bike-1", **consent: Any) -> Event:
    """An unlock of ``vehicle`` at T0 + seq minutes whose consent has the fields of ``consent`` changed (``key``:
    signed by that key; ``None``: no consent at all)."""
    event = fleet.event(vehicle, seq, EventType.UNLOCK, T0 + seq * 60_000, 1_000, pay=False)
    if consent.get("none"):
        return event
    key = consent.pop("key", KEY)
    base = consent_for(vehicle, fleet.vehicles[vehicle], seq, event.timestamp, KEY, fleet.domain)
    changed = replace(base, signature=None, **consent)
    return fleet_signed(fleet, replace(event, consent=sign(changed, key, fleet.domain)))


def lock(fleet: SignedFleet, seq: int = 1, vehicle: str = "bike-1", voucher: Voucher | None = None) -> Event:
    """The lock of the trip unlocked at ``seq``, ten minutes and 2 km later, carrying ``voucher``."""
    event = fleet.event(vehicle, seq + 5, EventType.LOCK, T0 + seq * 60_000 + 600_000, 3_000, trip_seq=seq, pay=False)
    return fleet_signed(fleet, replace(event, voucher=voucher))


def fleet_signed(fleet: SignedFleet, event: Event) -> Event:
    """``event`` signed again by its device (the device's signature does not cover the rider's objects)."""
    from sensors.signing import sign as device_sign
    from tests.signed import key_of

    return device_sign(replace(event, signature=None), key_of(event.vehicle_id), fleet.domain)


def voucher(amount: int, seq: int, trip: str = "bike-1:1", key: bytes = KEY, **change: Any) -> Voucher:
    return sign(replace(voucher_for(trip, amount, key, SignedFleet().domain, seq), signature=None, **change), key,
                SignedFleet().domain)  # fmt: skip


def note(v: Voucher, at_ms: int, vehicle: str = "bike-1") -> RiderVoucher:
    return RiderVoucher(vehicle, OPERATOR, at_ms, v)


def codes(state: MemoryState) -> list[str]:
    return [str(r.code) for r in state.rejects]


def test_a_trip_under_consent_is_charged_its_metered_fare_when_the_rider_signed_for_more(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    agg.handle([fleet.received(m) for m in (unlock(fleet), lock(fleet, voucher=voucher(CAP_MICRO, 10)))])
    trip = state.trips["bike-1:1"]
    assert trip.status is TripStatus.PRICED and trip.fare is not None
    assert (trip.fare.total_micro, trip.charged_micro, trip.limited_by) == (
        TEN_MINUTES_BIKE,
        TEN_MINUTES_BIKE,
        "metered",
    )
    assert trip.consent is not None and trip.consent.rider == address_of(KEY)


def test_the_rider_pays_no_more_than_the_last_voucher_nor_the_cap(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    agg.handle([fleet.received(m) for m in (unlock(fleet), lock(fleet, voucher=voucher(700_000, 10)))])
    agg.handle([fleet.received(m) for m in (unlock(fleet, 20, cap_micro=600_000), lock(fleet, 20))])
    agg.handle([fleet.received(m) for m in (unlock(fleet, 40), lock(fleet, 40))])  # no voucher at all
    by_voucher, no_voucher = state.trips["bike-1:1"], state.trips["bike-1:40"]
    assert (by_voucher.charged_micro, by_voucher.limited_by) == (700_000, "voucher")
    assert (no_voucher.charged_micro, no_voucher.limited_by) == (0, "voucher")
    assert state.trips["bike-1:20"].charged_micro == 0  # capped at 600,000 but it signed no voucher either


@pytest.mark.parametrize(
    ("consent", "code"),
    [
        ({"none": True}, "no_consent"),
        ({"key": OTHER}, "consent_wrong_signer"),
        ({"rider": address_of(OTHER), "key": OTHER}, "consent_other_rider"),
        ({"vehicle_id": "bike-2"}, "consent_other_vehicle"),
        ({"tariff_id": "hoverboard"}, "unknown_tariff"),
        ({"tariff_id": "car"}, "tariff_mismatch"),
        ({"cap_micro": 0}, "consent_zero_cap"),
        ({"expiry_ms": T0 + 60_000}, "consent_expired"),
    ],
)
def test_a_trip_without_valid_consent_is_rejected_for_good_with_its_reason(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet, consent: dict[str, Any], code: str
) -> None:
    agg.handle([fleet.received(m) for m in (unlock(fleet, **consent), lock(fleet, voucher=voucher(CAP_MICRO, 10)))])
    trip = state.trips["bike-1:1"]
    assert (trip.status, trip.reason) == (TripStatus.REJECTED, code)
    assert agg.settle_due(force=True) == [] and agg.clearing.totals().spent_total == 0


def test_a_consent_whose_signature_was_edited_is_refused(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    event = unlock(fleet)
    assert event.consent is not None and event.consent.signature is not None
    sig = event.consent.signature
    forged = replace(event.consent, signature=sig[:-4] + ("00" if sig[-4:-2] != "00" else "01") + sig[-2:])
    agg.handle([fleet.received(m) for m in (fleet_signed(fleet, replace(event, consent=forged)), lock(fleet))])
    assert state.trips["bike-1:1"].reason in ("consent_bad_signature", "consent_wrong_signer")


def test_a_consent_nonce_pays_for_one_trip_only(agg: Aggregator, state: MemoryState, fleet: SignedFleet) -> None:
    first = unlock(fleet)
    assert first.consent is not None
    agg.handle([fleet.received(m) for m in (first, lock(fleet, voucher=voucher(CAP_MICRO, 10)))])
    again = unlock(fleet, 20, vehicle="bike-1", nonce=first.consent.nonce)
    agg.handle([fleet.received(m) for m in (again, lock(fleet, 20, voucher=voucher(CAP_MICRO, 10, "bike-1:20")))])
    assert state.trips["bike-1:1"].status is TripStatus.PRICED
    assert (state.trips["bike-1:20"].status, state.trips["bike-1:20"].reason) == (TripStatus.REJECTED, "nonce_reused")


def test_vouchers_relayed_during_the_ride_keep_the_last_and_refuse_what_the_rider_did_not_sign(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    agg.handle([fleet.received(unlock(fleet))])
    ride = T0 + 60_000
    honest = [note(voucher(550_000, 1), ride + 60_000), note(voucher(600_000, 2), ride + 120_000)]
    hostile = [
        note(voucher(900_000, 3, key=OTHER), ride + 180_000),  # another rider's wallet, naming itself
        note(replace(voucher(900_000, 3), rider=address_of(OTHER)), ride + 180_000),  # names a rider not its signer
        note(voucher(CAP_MICRO + 1, 3), ride + 180_000),  # above the cap
        note(voucher(400_000, 3), ride + 180_000),  # less than signed before
        note(voucher(900_000, 3, trip="bike-2:1"), ride + 180_000, vehicle="bike-2"),  # a trip with no consent
        note(voucher(900_000, 3, trip="bike-2:1"), ride + 180_000),  # another vehicle's trip, relayed here
        note(voucher(900_000, 3), ride + 13 * 3_600_000),  # after the consent expired
    ]
    agg.handle([fleet.received(n) for n in [*honest, *hostile, honest[0]]])  # honest[0] again: superseded
    assert state.trips["bike-1:1"].voucher == honest[1].voucher
    assert sorted(codes(state)) == sorted([
        "voucher_other_rider", "voucher_wrong_signer", "voucher_above_cap", "voucher_decreasing",
        "voucher_no_consent", "voucher_other_trip", "voucher_expired",
    ])  # fmt: skip
    assert agg.counters.duplicates == 1
    agg.handle([fleet.received(lock(fleet))])  # the lock carries no voucher: the last relayed one stands
    assert state.trips["bike-1:1"].charged_micro == 600_000
    agg.handle([fleet.received(note(voucher(1_000_000, 9), ride + 700_000))])
    assert codes(state)[-1] == "voucher_late"


def test_a_voucher_before_its_unlock_is_refused_but_the_locks_voucher_settles_the_trip_in_any_order(
    state: MemoryState, fleet: SignedFleet
) -> None:
    results = []
    for order in ("in order", "lock first"):
        state = MemoryState()
        agg = make(state, fleet)[0]
        messages = [unlock(fleet), note(voucher(550_000, 1), T0 + 120_000), lock(fleet, voucher=voucher(700_000, 2))]
        if order == "lock first":
            messages.reverse()
        for m in messages:
            agg.handle([fleet.received(m)])
        trip = state.trips["bike-1:1"]
        results.append((trip.status, trip.charged_micro, trip.voucher))
        assert codes(state) == ([] if order == "in order" else ["voucher_no_consent"])
    assert results[0] == results[1] == (TripStatus.PRICED, 700_000, voucher(700_000, 2))


def test_a_locks_voucher_that_replays_an_earlier_seq_is_dropped(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    agg.handle([fleet.received(unlock(fleet)), fleet.received(note(voucher(600_000, 5), T0 + 120_000))])
    agg.handle([fleet.received(lock(fleet, voucher=voucher(900_000, 5)))])
    trip = state.trips["bike-1:1"]
    assert (trip.charged_micro, trip.voucher) == (600_000, voucher(600_000, 5))


def test_a_settled_trips_receipt_proves_the_riders_consent_and_voucher_against_the_root_on_chain(
    state: MemoryState, fleet: SignedFleet
) -> None:
    agg, chain = make(state, fleet)
    agg.handle([fleet.received(m) for m in (unlock(fleet), lock(fleet, voucher=voucher(700_000, 10)))])
    assert agg.settle_due(force=True) == [1]
    trip = state.trips["bike-1:1"]
    assert agg.leaf_context is not None
    receipt = build_receipt(trip, [trip], agg.leaf_context, tx_hash=None, status="committed")
    assert verify_receipt(receipt, chain.trips_root(1)) is None
    assert receipt["fare"]["charged_micro"] == 700_000 == chain.totals().spent_total
    assert receipt["voucher"]["cumulative_micro"] == 700_000 and receipt["consent"]["rider"] == RIDER


def test_consent_is_not_asked_of_an_aggregator_that_does_not_require_it(state: MemoryState, fleet: SignedFleet) -> None:
    agg = make(state, fleet)[0]
    agg.require_consent = False
    agg.handle([fleet.received(m) for m in (unlock(fleet, none=True), lock(fleet))])
    trip = state.trips["bike-1:1"]
    assert trip.status is TripStatus.PRICED and trip.charged_micro is None and trip.charged == TEN_MINUTES_BIKE
    agg.handle([fleet.received(note(voucher(1, 1), T0))])
    assert codes(state) == ["voucher_no_consent"]


def test_a_consent_carried_by_a_lock_or_a_voucher_by_an_unlock_is_a_schema_error(
    agg: Aggregator, state: MemoryState, fleet: SignedFleet
) -> None:
    with_consent = unlock(fleet)
    assert with_consent.consent is not None
    bad_lock = fleet_signed(fleet, replace(lock(fleet), consent=with_consent.consent))
    bad_unlock = fleet_signed(fleet, replace(with_consent, voucher=voucher(1, 1)))
    agg.handle([fleet.received(bad_lock), fleet.received(bad_unlock)])
    assert codes(state) == ["schema", "schema"]
