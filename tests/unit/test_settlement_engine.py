"""The settlement engine on fakes: finality after N confirmations, reorgs, crashes between send and record, the
backlog, one settler at a time and the start-up check against the chain."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sensors.address import Address
from settlement.aggregator import EPOCHS_PER_ROUND, Aggregator, MoneyRules
from settlement.clearing import ClearingCommit, FakeClearing
from settlement.enrolment import enrol, trust_operator
from settlement.errors import ChainError
from settlement.lifecycle import EpochStatus, TripStatus
from settlement.memory import MemoryState, MemoryUnitOfWork
from settlement.ports import ChainReceipt
from settlement.settler import FakeSettlerLocks, SettlerLock
from tests.money import committed, fake_money, fund_fake
from tests.signed import OPERATOR, RIDER, SignedFleet

T0 = 1_780_000_000_000
RIDER_ACCOUNT = Address.parse(RIDER)
RIDE_MS = 20 * 60_000


class Killed(BaseException):
    """The settler's process dies here (nothing of it runs on)."""


class Sends(FakeClearing):
    """The fake contract, counting the commits this port sends; once it was mined, ``after_send`` raises: the
    settler killed (``Killed``) or the receipt never coming back (``ChainError``)."""

    sent: list[int]
    after_send: BaseException | None

    def commit(self, commit: ClearingCommit) -> ChainReceipt:
        self.sent.append(commit.epoch_id)
        receipt = super().commit(commit)
        if self.after_send is not None:
            raise self.after_send
        return receipt


def make(
    state: MemoryState,
    fleet: SignedFleet,
    *,
    confirmations: int = 1,
    challenge_blocks: int = 0,
    max_trips: int = 1000,
    settler: SettlerLock | None = None,
    chain: Sends | None = None,
) -> tuple[Aggregator, Sends]:
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    if chain is None:
        chain = Sends(fake_money()[0].token)
        chain.sent, chain.after_send = [], None
    money = MoneyRules(token_address=chain.token.address, challenge_blocks=challenge_blocks)
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=0.0, epoch_max_trips=max_trips,
                            confirmations=confirmations, settler=settler, clock=lambda: T0 / 1000)  # fmt: skip
    aggregator.attach_contract()
    if not chain.deposited(RIDER_ACCOUNT):
        fund_fake(chain, [RIDER], 10**10)
    return aggregator, chain


def ride(aggregator: Aggregator, fleet: SignedFleet, n: int, vehicle: str = "bike-1") -> None:
    """Ride ``n`` (from 0) of ``vehicle``: unlocked and locked, priced."""
    aggregator.handle([fleet.received(e) for e in fleet.trip(vehicle, 1 + 2 * n, T0 + n * RIDE_MS, 10, 2000)])


def statuses(state: MemoryState) -> dict[int, str]:
    return {i: str(e.status) for i, e in sorted(state.epochs.items())}


def trip_statuses(state: MemoryState) -> set[str]:
    return {str(t.status) for t in state.trips.values()}


def test_a_committed_epoch_becomes_final_after_n_confirmations_with_its_trips(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet, confirmations=3)
    ride(aggregator, fleet, 0)
    assert aggregator.settle_due(force=True) == [1]
    assert statuses(state) == {1: "committed"} and trip_statuses(state) == {"committed"}
    chain.mine(1)  # two confirmations
    aggregator.settle_due()
    assert statuses(state) == {1: "committed"}
    chain.mine(1)
    assert aggregator.check_finality() == ([1], [])
    assert statuses(state) == {1: "final"} and trip_statuses(state) == {"final"}
    assert aggregator.check_finality() == ([], [])  # a final epoch is not looked at again


def test_an_epoch_is_final_only_once_the_contracts_challenge_window_is_over(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet, confirmations=1, challenge_blocks=4)
    ride(aggregator, fleet, 0)
    aggregator.settle_due(force=True)
    chain.mine(3)
    assert aggregator.check_finality() == ([], []) and statuses(state) == {1: "committed"}
    chain.mine(1)
    assert aggregator.check_finality() == ([1], [])


def test_an_epoch_a_reorg_took_away_goes_back_and_is_committed_once_more_with_the_chain_equal_to_the_database(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet, confirmations=3)
    ride(aggregator, fleet, 0)
    assert aggregator.settle_due(force=True) == [1]
    before = chain.snapshot()
    ride(aggregator, fleet, 1)
    ride(aggregator, fleet, 2, "bike-2")
    aggregator.close_epoch()
    ride(aggregator, fleet, 3, "car-1")
    assert aggregator.settle_due(force=True) == [2, 3]
    lost = state.epochs[2].receipt
    chain.revert(before)  # epochs 2 and 3 are gone with their blocks
    chain.mine(2)  # the fork grows past them
    assert chain.last_epoch() == 1 and chain.receipt(lost.tx_hash if lost else "") is None
    assert aggregator.check_finality() == ([1], [2, 3])  # epoch 1 kept its block and has 3 confirmations now
    assert statuses(state) == {1: "final", 2: "closed", 3: "closed"}
    assert state.trips["bike-1:3"].status is TripStatus.BATCHED and state.trips["bike-1:1"].status is TripStatus.FINAL
    assert aggregator.settle_due() == [2, 3]
    assert chain.sent == [1, 2, 3, 2, 3] and committed(chain) == [1, 2, 3]  # sent once more each, on chain once
    assert chain.totals().spent_total == sum(e.epoch.total_micro for e in state.epochs.values())
    for epoch_id in (2, 3):
        assert chain.trips_root(epoch_id) == state.epochs[epoch_id].commit.trips_root
    chain.mine(3)
    assert aggregator.check_finality() == ([2, 3], [])
    assert trip_statuses(state) == {"final"}


def test_an_epoch_the_chain_holds_again_after_a_reorg_is_recorded_with_its_new_receipt_not_sent_again(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet, confirmations=2)
    before = chain.snapshot()
    ride(aggregator, fleet, 0)
    assert aggregator.settle_due(force=True) == [1]
    old = state.epochs[1].receipt
    chain.revert(before)
    fund_fake(chain, [RIDER])  # the fork has the rider's deposit too, and the commit mined again (by the node)
    FakeClearing.commit(chain, state.epochs[1].commit)
    assert aggregator.check_finality() == ([], [1])
    assert aggregator.settle_due() == [1]
    assert chain.sent == [1] and state.epochs[1].receipt != old
    assert state.epochs[1].receipt == chain.commit_receipt(1)


def test_a_settler_that_crashed_after_sending_records_the_epoch_on_restart_and_never_sends_it_twice(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    chain.after_send = Killed()
    ride(aggregator, fleet, 0)
    with pytest.raises(Killed):
        aggregator.settle_due(force=True)  # the commit is on chain, the database does not know
    assert statuses(state) == {1: "closed"}
    chain.after_send = None
    restarted, _ = make(state, fleet, chain=chain)
    assert restarted.settle_due() == [1]
    assert chain.sent == [1] and committed(chain) == [1]
    assert state.epochs[1].receipt == chain.commit_receipt(1)


def test_a_commit_whose_receipt_never_came_but_that_was_mined_is_recorded_at_once_and_not_sent_again(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    ride(aggregator, fleet, 0)
    aggregator.close_epoch()
    ride(aggregator, fleet, 1)
    chain.after_send = ChainError("not mined within 30s on fake://chain")
    assert aggregator.settle_due(force=True) == [1, 2]
    assert chain.sent == [1, 2] and committed(chain) == [1, 2]
    assert [state.epochs[i].receipt for i in (1, 2)] == [chain.commit_receipt(1), chain.commit_receipt(2)]


def test_a_commit_refused_while_the_chain_lacks_the_epoch_postpones_settlement(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    ride(aggregator, fleet, 0)
    chain.after_send = None
    assert chain.state is not None
    chain.state.owner = Address(b"\x99" * 20)  # the contract no longer takes this account's commits
    with pytest.raises(ChainError, match="caller is not the owner"):
        aggregator.settle_due(force=True)
    assert statuses(state) == {1: "closed"}


def test_a_resent_commit_that_meets_the_one_mined_meanwhile_is_recorded_not_raised(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    ride(aggregator, fleet, 0)
    aggregator.close_epoch()
    with MemoryUnitOfWork(state) as uow:
        commit = uow.epochs.commit_of(1)
    assert commit is not None
    FakeClearing.commit(chain, commit)  # the transaction of a settler killed before it read the chain again
    chain_last = chain.last_epoch
    chain.last_epoch = lambda: 0 if not chain.sent else chain_last()  # type: ignore[method-assign]
    assert aggregator.settle_due() == [1]  # its own send reverts (out of sequence); the chain has the epoch
    assert committed(chain) == [1] and statuses(state) == {1: "committed"}


def test_a_backlog_closes_several_full_epochs_in_one_round_and_the_rest_in_the_next(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet, max_trips=2)
    rides = 2 * EPOCHS_PER_ROUND + 3
    for n in range(rides):
        ride(aggregator, fleet, n, ("bike-1", "bike-2", "car-1")[n % 3])
    aggregator.epoch_seconds = 3600.0
    aggregator._last_close = 0.0  # the interval is due once
    first = aggregator.settle_due()
    assert first == list(range(1, EPOCHS_PER_ROUND + 1))  # a full round
    assert aggregator.settle_due() == [EPOCHS_PER_ROUND + 1, EPOCHS_PER_ROUND + 2]  # the backlog goes on at once
    assert sum(e.commit.trip_count for e in state.epochs.values()) == rides
    ride(aggregator, fleet, rides, "bike-1")
    assert aggregator.settle_due() == []  # no backlog left: the next epoch waits for the interval
    assert aggregator.settle_due(force=True) == [EPOCHS_PER_ROUND + 3]


def test_only_the_holder_of_the_settler_lock_closes_and_sends_and_another_takes_over_when_it_lets_go(
    state: MemoryState, fleet: SignedFleet
) -> None:
    locks = FakeSettlerLocks()
    first, chain = make(state, fleet, settler=locks.for_("a"))
    second, _ = make(state, fleet, settler=locks.for_("b"), chain=chain)
    ride(first, fleet, 0)
    assert first.settle_due(force=True) == [1]
    ride(second, fleet, 1)  # both ingest
    assert second.settle_due(force=True) == [] and statuses(state) == {1: "committed"}
    assert state.trips["bike-1:3"].status is TripStatus.PRICED  # nothing closed by the other
    locks.lose("a")  # the settler's connection is gone
    assert second.settle_due(force=True) == [2]
    assert first.settle_due(force=True) == []
    assert chain.sent == [1, 2]


def test_the_start_up_check_refuses_a_chain_behind_the_database_in_one_line_naming_the_way_out(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    before = chain.snapshot()
    ride(aggregator, fleet, 0)
    aggregator.settle_due(force=True)
    assert aggregator.check_finality() == ([1], [])
    chain.revert(before)  # the chain lost a final epoch: not a reorg but another chain
    with pytest.raises(ChainError) as refused:
        make(state, fleet, chain=chain)
    line = str(refused.value)
    assert "\n" not in line and "epoch 1" in line and "SMARTZONE_CHAIN_URL" in line


def test_the_start_up_check_refuses_a_contract_whose_roots_are_not_the_databases(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    ride(aggregator, fleet, 0)
    aggregator.settle_due(force=True)
    aggregator.check_finality()
    assert chain.state is not None
    chain.state.trips_roots[1] = b"\x01" * 32  # as if another database had settled epoch 1 on this contract
    with pytest.raises(ChainError, match=r"^epoch 1 on the clearing contract .* is not the one .* settled"):
        make(state, fleet, chain=chain)


def test_an_unconfirmed_epoch_missing_at_start_is_a_reorg_not_a_refusal(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet, confirmations=5)
    before = chain.snapshot()
    ride(aggregator, fleet, 0)
    aggregator.settle_due(force=True)
    chain.revert(before)
    fund_fake(chain, [RIDER])
    restarted, _ = make(state, fleet, confirmations=5, chain=chain)
    assert restarted.settle_due() == [1] and chain.sent == [1, 1] and committed(chain) == [1]
    assert state.epochs[1].status is EpochStatus.COMMITTED
