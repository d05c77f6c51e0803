"""Closing an epoch moves money: fares split, riders charged from their deposits, those who cannot pay turned away."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sensors.address import Address
from sensors.messages import VehicleKind
from settlement.aggregator import Aggregator
from settlement.balances import BalanceTree, verify_balance
from settlement.enrolment import enrol, trust_operator
from settlement.epochs import LeafContext, clear, rider_account
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.memory import MemoryState, MemoryUnitOfWork
from settlement.reasons import RejectCode
from settlement.trips import Mark, TripRecord
from tests.money import ZONE, closed, earnings, fake_money, fund_fake
from tests.signed import OPERATOR, RIDER, SignedFleet, payee_of

T0 = 1_780_000_000_000
CONTEXT = LeafContext(31337, Address(b"\xc1" * 20))
ALICE = Address(b"\xa1" * 20)
BOB = Address(b"\xb0" * 20)


def trip(n: int, rider: str | None, fare: int) -> TripRecord:
    return TripRecord(f"bike-1:{n}", "bike-1", OPERATOR, VehicleKind.BIKE, TripStatus.PRICED,
                      Mark(n, T0 + n, 51.2, 4.39, 100), Mark(n + 1, T0 + n + 60_000, 51.21, 4.4, 900), rider,
                      payee_of("bike-1"), None, 800, 60, Fare(fare, 0, 0), None)  # fmt: skip


def test_a_rider_is_an_address_in_any_case_and_nothing_else_is() -> None:
    assert rider_account(str(ALICE).lower()) == ALICE == rider_account(ALICE.checksum)
    for text in (None, "", "rider-1", "0x" + "00" * 20, "0x1234", ALICE.checksum.swapcase()[:2] + "Zz" * 20):
        assert rider_account(text) is None


def test_trips_are_taken_while_the_riders_deposit_covers_them_oldest_first() -> None:
    candidates = [trip(1, str(ALICE), 600), trip(3, str(ALICE), 500), trip(5, str(ALICE), 300),
                  trip(7, "rider-7", 10), trip(9, str(BOB), 1)]  # fmt: skip
    cleared = clear(candidates, {ALICE: (0, 100)}, {ALICE: 1_000}, fee_bps=2_500)
    taken = [(t.trip_id, s.owner_share, s.fee) for t, s in cleared.accepted]
    assert taken == [("bike-1:1", 450, 150), ("bike-1:5", 225, 75)]  # 100 spent before + 600 + 300 <= 1000
    assert [(t.trip_id, str(code)) for t, code in cleared.rejected] == [
        ("bike-1:3", "insufficient_deposit"), ("bike-1:7", "no_rider_account"), ("bike-1:9", "insufficient_deposit")
    ]  # fmt: skip


def test_an_epochs_balances_add_up_and_every_account_proves_its_balance_against_the_root() -> None:
    first = closed(1, [trip(1, str(ALICE), 1_001), trip(3, str(BOB), 999)], CONTEXT, fee_bps=333)
    second = closed(2, [trip(5, str(ALICE), 7)], CONTEXT, fee_bps=333, book=first.balances)
    book = {**first.balances, **second.balances}
    assert second.commit.spent_total == second.commit.earned_total == 2_007
    assert set(second.balances) == {ALICE, payee_of("bike-1"), ZONE}
    tree = BalanceTree.of(book, CONTEXT.chain_id, CONTEXT.contract)
    assert tree.root == second.commit.balances_root
    for account in book:
        assert verify_balance(second.commit.balances_root, CONTEXT.chain_id, CONTEXT.contract, tree.proof(account, 2))
    assert book[ZONE] == (1_001 * 333 // 10_000 + 999 * 333 // 10_000 + 0, 0)
    assert second.payouts == ((payee_of("bike-1"), 7),) and second.total_micro == 7


def aggregator(state: MemoryState, fee_bps: int = 0) -> tuple[Aggregator, SignedFleet]:
    fleet = SignedFleet()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money(fee_bps, ZONE)
    agg = Aggregator(uow, chain, money=money, epoch_seconds=0.0, clock=lambda: T0 / 1000)
    agg.attach_contract()
    return agg, fleet


def ride(agg: Aggregator, fleet: SignedFleet, vehicle: str, seq: int, rider: str | None) -> None:
    halves = fleet.trip(vehicle, seq, T0 + seq, minutes=10, metres=2000)
    agg.handle([fleet.received(fleet.event(e.vehicle_id, e.seq, e.event_type, e.timestamp, e.odometer_m,
                                           trip_seq=e.trip_seq, rider=rider)) for e in halves])  # fmt: skip


def test_a_trip_whose_rider_has_no_wallet_cannot_consent_and_is_rejected(state: MemoryState) -> None:
    agg, fleet = aggregator(state)
    ride(agg, fleet, "bike-1", 1, "rider-1")
    assert agg.settle_due(force=True) == []
    assert (state.trips["bike-1:1"].status, state.trips["bike-1:1"].reason) == (TripStatus.REJECTED, "no_consent")
    assert state.epochs == {} and agg.clearing.totals().spent_total == 0


def test_without_consent_rules_a_trip_whose_rider_is_not_an_address_is_rejected_and_nothing_moves(
    state: MemoryState,
) -> None:
    agg, fleet = aggregator(state)
    agg.require_consent = False
    ride(agg, fleet, "bike-1", 1, "rider-1")
    assert agg.settle_due(force=True) == []
    trip = state.trips["bike-1:1"]
    assert (trip.status, trip.reason) == (TripStatus.REJECTED, RejectCode.NO_RIDER_ACCOUNT)
    assert state.epochs == {} and agg.clearing.totals().spent_total == 0
    assert agg.counters.trips_unpaid == 1


def test_a_rider_without_a_deposit_is_refused_for_good_and_a_later_deposit_pays_only_later_trips(
    state: MemoryState,
) -> None:
    agg, fleet = aggregator(state)
    ride(agg, fleet, "bike-1", 1, RIDER)
    assert agg.settle_due(force=True) == []
    assert state.trips["bike-1:1"].reason == RejectCode.INSUFFICIENT_DEPOSIT
    fund_fake(agg.clearing, [RIDER])  # type: ignore[arg-type]
    ride(agg, fleet, "bike-2", 1, RIDER)
    assert agg.settle_due(force=True) == [1]
    assert state.trips["bike-1:1"].status is TripStatus.REJECTED  # final: not revived by the deposit
    paid = state.trips["bike-2:1"]
    assert paid.status is TripStatus.COMMITTED and paid.rider_account == Address.parse(RIDER)
    assert agg.clearing.totals().spent_total == paid.fare.total_micro if paid.fare else False


def test_a_requested_withdrawal_is_no_longer_spendable(state: MemoryState) -> None:
    agg, fleet = aggregator(state)
    rider = Address.parse(RIDER)
    fund_fake(agg.clearing, [rider], 1_000_000)  # type: ignore[arg-type]
    agg.clearing.as_account(rider).request_withdrawal(900_000)  # type: ignore[attr-defined]
    ride(agg, fleet, "bike-1", 1, RIDER)  # a 10-minute ride costs more than the 0.10 EUR left
    assert agg.settle_due(force=True) == []
    assert state.trips["bike-1:1"].reason == RejectCode.INSUFFICIENT_DEPOSIT


def test_with_a_fee_the_owner_and_the_zone_earn_the_split_and_the_chain_holds_the_totals(state: MemoryState) -> None:
    agg, fleet = aggregator(state, fee_bps=1_500)
    fund_fake(agg.clearing, [RIDER])  # type: ignore[arg-type]
    ride(agg, fleet, "bike-1", 1, RIDER)
    ride(agg, fleet, "car-1", 5, RIDER.lower())
    assert agg.settle_due(force=True) == [1]
    fares = {t.trip_id: t.fare.total_micro for t in state.trips.values() if t.fare}
    for t in state.trips.values():
        assert t.fee == fares[t.trip_id] * 1_500 // 10_000 and t.owner_share == fares[t.trip_id] - t.fee
    earned = earnings(agg.clearing, state)  # type: ignore[arg-type]
    assert earned[ZONE] == sum(t.fee or 0 for t in state.trips.values())
    assert earned[payee_of("bike-1")] == state.trips["bike-1:1"].owner_share
    totals = agg.clearing.totals()
    assert totals.spent_total == sum(fares.values()) == sum(earned.values())
    assert totals.deposited_total == 50_000_000


def test_an_epoch_found_on_chain_with_another_trips_root_stops_settlement_and_is_not_recorded(
    state: MemoryState,
) -> None:
    from dataclasses import replace

    from settlement.errors import ChainError
    from settlement.lifecycle import EpochStatus

    agg, fleet = aggregator(state)
    fund_fake(agg.clearing, [RIDER])  # type: ignore[arg-type]
    ride(agg, fleet, "bike-1", 1, RIDER)
    assert agg.close_epoch() == 1
    stored = state.epochs[1].commit
    agg.clearing.commit(replace(stored, trips_root=b"\x01" * 32))  # someone else's epoch 1 with our key
    with pytest.raises(ChainError, match="epoch 1 on chain differs from the database"):
        agg.settle_due()
    assert state.epochs[1].status is EpochStatus.CLOSED and state.trips["bike-1:1"].status is TripStatus.BATCHED
