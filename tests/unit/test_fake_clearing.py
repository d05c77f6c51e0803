"""The in-memory clearing contract: deposits, O(1) commits, claims and withdrawals by proof, and every refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.address import Address
from settlement import clearing as clearing_module
from settlement.clearing import (
    BALANCE_LEAF_TYPES,
    MAX_PROOF,
    MAX_WINDOW,
    RING,
    BalanceProof,
    ClearingCommit,
    ClearingTotals,
    FakeClearing,
    balance_values,
)
from settlement.contract import source
from settlement.errors import ChainError
from settlement.merkle import StandardMerkleTree
from settlement.ports import FakeToken

AGGREGATOR = Address(bytes([0xA0] * 20))
RIDER = Address(bytes([0xB0] * 20))
OWNER = Address(bytes([0x11] * 20))
ZONE = Address(bytes([0x22] * 20))
EUR = 1_000_000
TRIPS = bytes([0xAB] * 32)
REGISTRY = bytes([0xCD] * 32)

Book = dict[Address, tuple[int, int]]  # account -> (earned, spent), cumulative


def deployed(challenge: int = 0, delay: int = 0, deposit: int = 10 * EUR) -> tuple[FakeClearing, FakeClearing]:
    """A fresh clearing over a fresh token, as the aggregator and as a rider who deposited ``deposit``."""
    token = FakeToken(AGGREGATOR)
    token.deploy(faucet_cap=100 * EUR)
    token.as_account(RIDER).faucet(50 * EUR)
    clearing = FakeClearing(token)
    clearing.deploy(str(token.address), challenge, delay)
    rider = clearing.as_account(RIDER)
    if deposit:
        rider.approve(deposit)
        rider.deposit(deposit)
    return clearing, rider


def tree(clearing: FakeClearing, book: Book) -> StandardMerkleTree:
    rows = [balance_values(clearing.chain_id(), str(clearing.address), a, e, s) for a, (e, s) in book.items()]
    return StandardMerkleTree.of(rows, BALANCE_LEAF_TYPES)


def commit(clearing: FakeClearing, epoch_id: int, book: Book) -> StandardMerkleTree:
    """Commit ``book`` as epoch ``epoch_id`` and return its balance tree."""
    balances = tree(clearing, book)
    spent = sum(s for _, s in book.values())
    clearing.commit(ClearingCommit(epoch_id, TRIPS, balances.root, REGISTRY, 3, spent, spent))
    return balances


def proof(balances: StandardMerkleTree, epoch_id: int, account: Address) -> BalanceProof:
    for i, row in enumerate(balances.values):
        if row[2] == account.checksum:
            return BalanceProof(epoch_id, account, int(row[3]), int(row[4]), tuple(balances.proof(i)))
    raise KeyError(account)


def book(spent: int) -> Book:
    """The rider spent ``spent``; the owner earned 90 % of it and the zone the rest."""
    fee = spent // 10
    return {RIDER: (0, spent), OWNER: (spent - fee, 0), ZONE: (fee, 0)}


def test_a_deposit_pulls_approved_tokens_into_the_riders_deposit() -> None:
    clearing, rider = deployed(deposit=0)
    rider.approve(3 * EUR)
    rider.deposit(2 * EUR)

    assert clearing.deposited(RIDER) == 2 * EUR
    assert clearing.token.balance_of(RIDER) == 48 * EUR
    assert clearing.token.balance_of(Address.parse(str(clearing.address))) == 2 * EUR
    assert clearing.totals() == ClearingTotals(2 * EUR, 0, 0, 0)
    assert clearing.state is not None and clearing.state.events[-1][0] == "Deposited"


@pytest.mark.parametrize(
    ("amount", "approved", "reason"),
    [
        (0, 5, "deposit reverted: clearing: zero deposit"),
        (6, 5, "deposit reverted: erc20: insufficient allowance"),
        (60 * EUR, 60 * EUR, "deposit reverted: erc20: transfer amount exceeds balance"),
    ],
)
def test_a_deposit_of_nothing_or_beyond_the_allowance_or_balance_is_refused(
    amount: int, approved: int, reason: str
) -> None:
    clearing, rider = deployed(deposit=0)
    rider.approve(approved)

    with pytest.raises(ChainError, match=reason):
        rider.deposit(amount)
    assert clearing.totals().deposited_total == 0


def test_an_owner_and_the_zone_claim_what_they_earned_once_the_epoch_is_final() -> None:
    clearing, rider = deployed(challenge=2)
    balances = commit(clearing, 1, book(3 * EUR))

    with pytest.raises(ChainError, match="claim reverted: clearing: epoch not final"):
        rider.claim(proof(balances, 1, OWNER))
    clearing.mine(1)  # the refused claim was mined too: two blocks since the commit
    rider.claim(proof(balances, 1, OWNER))
    rider.claim(proof(balances, 1, ZONE))

    assert (clearing.token.balance_of(OWNER), clearing.token.balance_of(ZONE)) == (2_700_000, 300_000)
    assert clearing.claimed(OWNER) == 2_700_000
    assert clearing.totals() == ClearingTotals(10 * EUR, 3 * EUR, 3 * EUR, 0)


def test_a_claim_pays_only_the_increase_and_an_old_or_replayed_proof_pays_nothing() -> None:
    clearing, _ = deployed()
    first = commit(clearing, 1, book(1 * EUR))
    clearing.claim(proof(first, 1, OWNER))
    with pytest.raises(ChainError, match="claim reverted: clearing: nothing to claim"):
        clearing.claim(proof(first, 1, OWNER))
    second = commit(clearing, 2, book(3 * EUR))

    clearing.claim(proof(second, 2, OWNER))
    with pytest.raises(ChainError, match="nothing to claim"):
        clearing.claim(proof(first, 1, OWNER))

    assert clearing.token.balance_of(OWNER) == 2_700_000


def test_a_claim_with_a_wrong_proof_or_for_another_account_is_refused() -> None:
    clearing, _ = deployed()
    balances = commit(clearing, 1, book(1 * EUR))
    good = proof(balances, 1, OWNER)

    for bad in (
        BalanceProof(1, OWNER, good.earned + 1, 0, good.proof),
        BalanceProof(1, ZONE, good.earned, 0, good.proof),
        BalanceProof(1, OWNER, good.earned, 0, good.proof[:-1]),
        BalanceProof(1, OWNER, good.earned, 0, (bytes(32), *good.proof[1:])),
    ):
        with pytest.raises(ChainError, match="claim reverted: clearing: wrong proof"):
            clearing.claim(bad)
    assert clearing.totals().claimed_total == 0


def test_an_epoch_not_committed_or_pushed_out_of_the_ring_takes_no_claim() -> None:
    clearing, _ = deployed()
    first = commit(clearing, 1, book(1 * EUR))
    with pytest.raises(ChainError, match="clearing: epoch not committed"):
        clearing.claim(BalanceProof(2, OWNER, 1, 0, ()))
    for epoch_id in range(2, RING + 2):
        commit(clearing, epoch_id, book(1 * EUR))

    assert clearing.balances_root(1) == bytes(32) and clearing.is_final(1)
    with pytest.raises(ChainError, match="claim reverted: clearing: epoch forgotten"):
        clearing.claim(proof(first, 1, OWNER))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"epoch_id": 3}, "clearing: epoch out of sequence"),
        ({"epoch_id": 1}, "clearing: epoch out of sequence"),
        ({"trips_root": bytes(32)}, "clearing: zero trips root"),
        ({"balances_root": bytes(32)}, "clearing: zero balances root"),
        ({"trip_count": 0}, "clearing: zero trips"),
        ({"spent_total": EUR - 1, "earned_total": EUR - 1}, "clearing: spent total decreased"),
        ({"earned_total": 2 * EUR + 1}, "clearing: earned differs from spent"),
        ({"spent_total": 10 * EUR + 1, "earned_total": 10 * EUR + 1}, "clearing: totals above deposits"),
    ],
)
def test_a_commit_breaking_a_rule_is_refused_and_changes_nothing(change: dict[str, object], reason: str) -> None:
    clearing, _ = deployed()
    commit(clearing, 1, book(EUR))
    fields: dict[str, object] = {
        "epoch_id": 2,
        "trips_root": TRIPS,
        "balances_root": TRIPS,
        "registry_root": REGISTRY,
        "trip_count": 1,
        "spent_total": 2 * EUR,
        "earned_total": 2 * EUR,
    }
    fields.update(change)

    with pytest.raises(ChainError, match=f"commit_epoch reverted: {reason}"):
        clearing.commit(ClearingCommit(**fields))  # type: ignore[arg-type]
    assert (clearing.last_epoch(), clearing.totals().spent_total, clearing.trips_root(2)) == (1, EUR, bytes(32))


def test_only_the_aggregator_commits_and_ownership_moves_in_two_steps() -> None:
    clearing, rider = deployed()
    with pytest.raises(ChainError, match="commit_epoch reverted: ownable: caller is not the owner"):
        commit(rider, 1, book(EUR))

    clearing.transfer_ownership(RIDER)
    commit(clearing, 1, book(EUR))  # the aggregator commits until the rider accepts
    with pytest.raises(ChainError, match="ownable_2step: caller is not the new owner"):
        clearing.accept_ownership()
    rider.accept_ownership()

    assert clearing.owner() == RIDER
    with pytest.raises(ChainError, match="caller is not the owner"):
        commit(clearing, 2, book(EUR))
    commit(rider, 2, book(2 * EUR))
    assert clearing.last_epoch() == 2


def test_commits_wait_while_the_epoch_they_would_push_out_of_the_ring_is_not_final() -> None:
    clearing, _ = deployed(challenge=RING + 5)
    for epoch_id in range(1, RING + 1):
        commit(clearing, epoch_id, book(EUR))

    with pytest.raises(ChainError, match="clearing: ring full until an epoch is final"):
        commit(clearing, RING + 1, book(EUR))
    clearing.mine(5)
    commit(clearing, RING + 1, book(EUR))
    assert clearing.last_epoch() == RING + 1


def test_the_last_epoch_is_retracted_only_while_not_final_and_its_totals_go_back() -> None:
    clearing, rider = deployed(challenge=10)
    commit(clearing, 1, book(EUR))
    commit(clearing, 2, book(2 * EUR))

    with pytest.raises(ChainError, match="retract_epoch reverted: ownable: caller is not the owner"):
        rider.retract(2)
    with pytest.raises(ChainError, match="retract_epoch reverted: clearing: not the last epoch"):
        clearing.retract(1)
    clearing.retract(2)
    assert (clearing.last_epoch(), clearing.totals().spent_total, clearing.trips_root(2)) == (1, EUR, bytes(32))
    assert clearing.balances_root(2) == bytes(32)

    commit(clearing, 2, book(3 * EUR))
    clearing.mine(10)
    with pytest.raises(ChainError, match="retract_epoch reverted: clearing: epoch is final"):
        clearing.retract(2)
    with pytest.raises(ChainError, match="clearing: not the last epoch"):
        clearing.retract(0)
    assert clearing.totals().spent_total == 3 * EUR


def test_a_rider_withdraws_the_unspent_deposit_after_the_delay_by_the_latest_final_epoch() -> None:
    clearing, rider = deployed(delay=3)
    first = commit(clearing, 1, book(1 * EUR))
    second = commit(clearing, 2, book(4 * EUR))
    mine = proof(second, 2, RIDER)

    with pytest.raises(ChainError, match="request_withdrawal reverted: clearing: zero withdrawal"):
        rider.request_withdrawal(0)
    with pytest.raises(ChainError, match="request_withdrawal reverted: clearing: above unspent deposit"):
        rider.request_withdrawal(10 * EUR + 1)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: withdrawal not ready"):
        rider.withdraw(mine, EUR)
    rider.request_withdrawal(7 * EUR)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: withdrawal not ready"):
        rider.withdraw(mine, EUR)
    clearing.mine(2)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: above the requested amount"):
        rider.withdraw(mine, 7 * EUR + 1)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: not the latest final epoch"):
        rider.withdraw(proof(first, 1, RIDER), EUR)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: above unspent deposit"):
        rider.withdraw(mine, 6 * EUR + 1)
    with pytest.raises(ChainError, match="withdraw reverted: clearing: wrong proof"):
        rider.withdraw(BalanceProof(2, RIDER, 1, mine.spent, mine.proof), EUR)
    with pytest.raises(ChainError, match="a withdrawal is sent by the account it pays"):
        clearing.withdraw(mine, EUR)
    rider.withdraw(mine, 6 * EUR)

    assert clearing.withdrawn(RIDER) == 6 * EUR
    assert clearing.token.balance_of(RIDER) == 46 * EUR
    assert clearing.totals() == ClearingTotals(10 * EUR, 4 * EUR, 0, 6 * EUR)
    with pytest.raises(ChainError, match="clearing: above unspent deposit"):
        rider.withdraw(mine, 1)
    with pytest.raises(ChainError, match="clearing: above unspent deposit"):
        rider.request_withdrawal(4 * EUR + 1)


def test_payouts_never_exceed_the_deposits_whatever_root_the_aggregator_commits() -> None:
    clearing, _ = deployed(deposit=EUR)
    greedy = commit(clearing, 1, {OWNER: (5 * EUR, 0), RIDER: (0, 0)})  # a bad root: earned with nothing spent

    with pytest.raises(ChainError, match="claim reverted: clearing: payouts above deposits"):
        clearing.claim(proof(greedy, 1, OWNER))
    assert clearing.token.balance_of(OWNER) == 0


def test_nothing_is_sent_before_deployment_and_encoding_errors_are_refused_first() -> None:
    token = FakeToken(AGGREGATOR)
    token.deploy()
    clearing = FakeClearing(token)
    with pytest.raises(ChainError, match="no clearing contract"):
        clearing.last_epoch()
    clearing.deploy(str(token.address), 0, 0)

    with pytest.raises(ChainError, match="balances root must be 32 bytes"):
        clearing.commit(ClearingCommit(1, TRIPS, b"\x01", REGISTRY, 1, 0, 0))
    with pytest.raises(ChainError, match="every proof node must be 32 bytes"):
        clearing.claim(BalanceProof(1, OWNER, 1, 0, (b"\x01",)))
    with pytest.raises(ChainError, match="outside 0 .. 2"):
        clearing.deposit(-1)
    assert clearing.block_number() == 1  # only the deployment was mined
    with pytest.raises(ChainError, match="deploying the clearing contract failed: clearing: window too long"):
        FakeClearing(token).deploy(str(token.address), MAX_WINDOW + 1, 0)


@settings(max_examples=25, deadline=None)
@given(
    deposits=st.lists(st.integers(1, 5 * EUR), min_size=1, max_size=3),
    fares=st.lists(st.integers(0, 2 * EUR), min_size=1, max_size=6),
    withdraw_share=st.integers(0, 100),
)
def test_claims_and_withdrawals_paid_never_exceed_the_deposits(
    deposits: list[int], fares: list[int], withdraw_share: int
) -> None:
    clearing, rider = deployed(deposit=0)
    rider.approve(sum(deposits))
    for amount in deposits:
        rider.deposit(amount)
    spent, epoch_id = 0, 0
    for fare in fares:
        if spent + fare > sum(deposits):
            break
        spent += fare
        epoch_id += 1
        balances = commit(clearing, epoch_id, book(spent))
        for account in (OWNER, ZONE):
            try:
                clearing.claim(proof(balances, epoch_id, account))
            except ChainError as exc:
                assert "nothing to claim" in str(exc)
    if epoch_id:
        amount = (sum(deposits) - spent) * withdraw_share // 100
        if amount:
            rider.request_withdrawal(amount)
            rider.withdraw(proof(balances, epoch_id, RIDER), amount)

    totals = clearing.totals()
    paid = clearing.token.balance_of(OWNER) + clearing.token.balance_of(ZONE) + clearing.withdrawn(RIDER)
    assert paid == totals.claimed_total + totals.withdrawn_total <= totals.deposited_total
    assert totals.claimed_total == spent
    assert clearing.token.balance_of(Address.parse(str(clearing.address))) == sum(deposits) - paid


def test_unspent_is_each_deposit_less_what_was_withdrawn_and_what_is_asked_back_but_not_yet_withdrawn() -> None:
    clearing, rider = deployed(deposit=10 * EUR)
    others = {name: Address(bytes([0xB1 + i] * 20)) for i, name in enumerate(("twice", "all asked", "part", "none"))}
    ports = {name: clearing.as_account(account) for name, account in others.items()}
    for name, amounts in (("twice", (2 * EUR, 3 * EUR)), ("all asked", (5 * EUR,)), ("part", (5 * EUR,))):
        clearing.token.as_account(others[name]).faucet(sum(amounts))
        ports[name].approve(sum(amounts))
        for amount in amounts:
            ports[name].deposit(amount)
    balances = commit(clearing, 1, {RIDER: (0, EUR), OWNER: (EUR, 0), others["part"]: (0, 0)})
    rider.request_withdrawal(4 * EUR)
    rider.withdraw(proof(balances, 1, RIDER), 3 * EUR)  # 1 EUR asked for is still to come
    ports["all asked"].request_withdrawal(5 * EUR)
    ports["part"].request_withdrawal(2 * EUR)
    ports["part"].withdraw(proof(balances, 1, others["part"]), 2 * EUR)

    riders = [others["none"], RIDER, others["twice"], others["all asked"], others["part"], RIDER]
    found = clearing.unspent(riders)

    assert found == {
        others["none"]: 0,
        RIDER: 10 * EUR - 3 * EUR - EUR,  # what the book spent (1 EUR) is not taken off here
        others["twice"]: 5 * EUR,
        others["all asked"]: 0,
        others["part"]: 3 * EUR,
    }
    assert found == {r: clearing.deposited(r) - clearing.withdrawn(r) - clearing.requested(r)[0] for r in riders}
    assert rider.unspent([]) == {}


def test_the_fake_knows_the_contracts_ring_proof_bound_and_every_revert_reason_word_for_word() -> None:
    text = source("clearing").read_text(encoding="utf-8")
    in_contract = set(re.findall(r'"(clearing: [^"]+)"', text))
    in_module = {value for name, value in vars(clearing_module).items() if name.isupper() and isinstance(value, str)}

    assert re.search(rf"^RING: constant\(uint256\) = {RING}$", text, re.MULTILINE)
    assert re.search(rf"^MAX_PROOF: constant\(uint256\) = {MAX_PROOF}$", text, re.MULTILINE)
    assert re.search(r"^MAX_WINDOW: constant\(uint256\) = 2\*\*48 - 1$", text, re.MULTILINE)
    assert MAX_WINDOW == 2**48 - 1
    assert in_contract - {"clearing: zero token", "clearing: token transfer failed"} <= in_module
    assert {reason for reason in in_module if reason.startswith("clearing: ")} <= in_contract
