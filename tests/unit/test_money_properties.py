"""Issue 9's "done when", as properties: the clearing contract never pays out more than riders deposited.

Riders deposit into ``FakeClearing``; the aggregator prices trips within what each rider has left (the fare split
with ``pricing.split``), posts them to the cumulative book and commits each epoch's trips root and
``BalanceTree`` root. In between, owners, the zone and riders claim and withdraw in random orders, with the latest
proofs, old ones, replayed ones and forged ones. An oracle written here from the contract's rules says which of
those transactions must pass and what each must pay; the euro token's balances are checked after every one.
At the end everyone takes what is theirs and the contract holds nothing but tokens sent to it by mistake.

A second property lets the operator commit any roots at all: whatever the leaves say, nothing is paid out
beyond what was deposited.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.address import Address
from sensors.messages import VehicleKind
from settlement.balances import BalanceTree, Posting, open_accounts, post, verify_balance
from settlement.clearing import RING, BalanceProof, ClearingCommit, FakeClearing
from settlement.epochs import LeafContext
from settlement.errors import ChainError
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.ports import FakeToken
from settlement.pricing import split
from settlement.receipts import build_receipt, verify_receipt
from settlement.trips import Mark, TripRecord

AGGREGATOR = Address(bytes([0xAA] * 20))
ZONE = Address(bytes([0x20] * 20))
STRANGER = Address(bytes([0x5E] * 20))
REGISTRY_ROOT = keccak(b"the device registry")
T0 = 1_790_000_000_000
POCKET = 1_000  # tokens each rider keeps outside the contract, to see that nothing takes them

Action = tuple[str, int, int, int, int]  # kind, who, how many epochs back, percent (or edge), sender
STRAY = 777  # tokens sent straight to the contract, not deposited: no one may ever be paid them


@dataclass
class Scenario:
    """Who deposits what, the fee, the contract's windows, and per epoch its trips and what people try after it."""

    deposits: list[int]
    owners: int
    rider_owns: bool  # rider 0 is also owner 0: one account both spends and earns
    fee_bps: int
    challenge_blocks: int
    withdraw_delay_blocks: int
    epochs: list[tuple[list[tuple[int, int, int]], bool, list[Action], list[Action]]]  # trips, retract, actions


ACTIONS = st.tuples(
    st.sampled_from(["claim", "forge", "request", "withdraw"]),
    st.integers(0, 99),
    st.integers(0, RING + 1),
    st.integers(0, 120),  # a percentage; above 100, one of the amounts at the rules' edges
    st.integers(0, 99),
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    riders = draw(st.integers(1, 4))
    owners = draw(st.integers(1, 3))
    challenge = draw(st.integers(0, 4))
    trips = st.lists(
        st.tuples(st.integers(0, riders - 1), st.integers(0, owners - 1), st.integers(0, 2_000_000)),
        min_size=1,
        max_size=4,
    )
    return Scenario(
        deposits=draw(st.lists(st.integers(0, 5_000_000), min_size=riders, max_size=riders)),
        owners=owners,
        rider_owns=draw(st.booleans()),
        fee_bps=draw(st.integers(0, 10_000)),
        challenge_blocks=challenge,
        # the design's rule: a withdrawal waits at least as long as an epoch takes to become final
        withdraw_delay_blocks=challenge + draw(st.integers(0, 3)),
        epochs=draw(
            st.lists(
                st.tuples(trips, st.booleans(), st.lists(ACTIONS, max_size=3), st.lists(ACTIONS, max_size=6)),
                min_size=1,
                max_size=RING + 3,
            )
        ),
    )


@dataclass
class World:
    """The chain (token and clearing contract) and, beside it, what the contract's rules say it should hold."""

    scenario: Scenario
    token: FakeToken
    clearing: FakeClearing
    riders: list[Address]
    owners: list[Address]
    minted: int
    book: dict[Address, tuple[int, int]] = field(default_factory=dict)
    trees: list[BalanceTree] = field(default_factory=list)  # trees[k - 1]: epoch k's balances
    commit_blocks: list[int] = field(default_factory=list)
    deposited: dict[Address, int] = field(default_factory=dict)
    claimed: dict[Address, int] = field(default_factory=dict)
    withdrawn: dict[Address, int] = field(default_factory=dict)
    requests: dict[Address, tuple[int, int]] = field(default_factory=dict)  # amount, ready block
    trips: int = 0

    @property
    def accounts(self) -> list[Address]:
        return list(dict.fromkeys([*self.riders, *self.owners, ZONE, AGGREGATOR, STRANGER]))

    @property
    def last(self) -> int:
        return len(self.trees)

    def contract(self) -> Address:
        assert self.clearing.address is not None
        return Address.parse(self.clearing.address)

    def unspent(self, rider: Address, epoch_id: int | None = None) -> int:
        """What ``rider`` has left in the contract by epoch ``epoch_id``'s balances (the latest by default)."""
        book = self.trees[(epoch_id or self.last) - 1].book if self.trees else {}
        spent = book.get(rider, (0, 0))[1]
        return self.deposited.get(rider, 0) - self.withdrawn.get(rider, 0) - spent

    def available(self, rider: Address) -> int:
        """What the aggregator still lets ``rider`` spend: unspent deposit less what she asked to withdraw."""
        spent = self.book.get(rider, (0, 0))[1]
        requested = self.requests.get(rider, (0, 0))[0]
        left = self.deposited.get(rider, 0) - self.withdrawn.get(rider, 0) - spent - requested
        return max(left, 0)

    def paid_out(self) -> int:
        return sum(self.claimed.values()) + sum(self.withdrawn.values())

    # --- the oracle: the contract's rules, restated --------------------------------------------------
    def final(self, epoch_id: int, block: int) -> bool:
        return self.commit_blocks[epoch_id - 1] + self.scenario.challenge_blocks <= block

    def usable(self, epoch_id: int, block: int) -> bool:
        """An epoch's balances can be used: committed, still remembered by the ring, and final."""
        return 1 <= epoch_id <= self.last and epoch_id > self.last - RING and self.final(epoch_id, block)

    def solvent(self, amount: int) -> bool:
        return self.paid_out() + amount <= sum(self.deposited.values())

    def expected_claim(self, proof: BalanceProof, genuine: bool) -> int | None:
        block = self.clearing.block_number() + 1  # the block the claim is mined in
        amount = proof.earned - self.claimed.get(proof.account, 0)
        if not genuine or not self.usable(proof.epoch_id, block) or amount <= 0 or not self.solvent(amount):
            return None
        return amount

    def withdrawal_passes(self, proof: BalanceProof, amount: int) -> bool:
        block = self.clearing.block_number() + 1
        requested, ready = self.requests.get(proof.account, (0, 0))
        latest = proof.epoch_id == self.last or not self.final(proof.epoch_id + 1, block)
        return (
            0 < amount <= requested
            and ready <= block
            and self.usable(proof.epoch_id, block)
            and latest
            and amount <= self.unspent(proof.account, proof.epoch_id)
            and self.solvent(amount)
        )

    # --- checks of the chain against the oracle ------------------------------------------------------
    def balances(self) -> dict[Address, int]:
        return {a: self.token.balance_of(a) for a in [*self.accounts, self.contract()]}

    def check_conservation(self) -> None:
        deposited = sum(self.deposited.values())
        assert self.token.total_supply() == self.minted
        assert self.token.balance_of(self.contract()) - STRAY == deposited - self.paid_out() >= 0
        totals = self.clearing.totals()
        assert totals.deposited_total == deposited
        assert totals.claimed_total == sum(self.claimed.values())
        assert totals.withdrawn_total == sum(self.withdrawn.values())
        assert totals.claimed_total <= totals.spent_total
        for account in self.accounts:
            assert self.clearing.claimed(account) == self.claimed.get(account, 0)
            assert self.clearing.withdrawn(account) == self.withdrawn.get(account, 0)


def build(s: Scenario) -> World:
    riders = [Address(bytes([0x40 + i] * 20)) for i in range(len(s.deposits))]
    owners = [Address(bytes([0x80 + i] * 20)) for i in range(s.owners)]
    if s.rider_owns:
        owners[0] = riders[0]
    token = FakeToken(AGGREGATOR)
    token.deploy()
    clearing = FakeClearing(token, AGGREGATOR)
    assert token.address is not None
    clearing.deploy(token.address, s.challenge_blocks, s.withdraw_delay_blocks)
    world = World(s, token, clearing, riders, owners, minted=sum(s.deposits) + POCKET * len(riders) + STRAY)
    token.mint(STRANGER, STRAY)
    token.as_account(STRANGER).transfer(world.contract(), STRAY)
    for rider, amount in zip(riders, s.deposits, strict=True):
        token.mint(rider, amount + POCKET)
        if amount:
            port = clearing.as_account(rider)
            port.approve(amount)
            port.deposit(amount)
            world.deposited[rider] = amount
    world.check_conservation()
    return world


def trip_record(world: World, epoch_id: int, rider: Address, owner_index: int, fare: int) -> TripRecord:
    world.trips += 1
    vehicle = f"bike-{owner_index}"
    start = T0 + 600_000 * world.trips
    return TripRecord(
        f"{vehicle}:{world.trips}", vehicle, "smartzone", VehicleKind.BIKE, TripStatus.COMMITTED,
        Mark(world.trips, start, 51.2, 4.4, 0), Mark(world.trips + 1, start + 90_500, 51.21, 4.41, 300),
        str(rider), world.owners[owner_index], None, 300, 91, Fare(fare, 0, 0), epoch_id,
    )  # fmt: skip


def commit_epoch(world: World, trips: list[tuple[int, int, int]], retract_first: bool) -> None:
    """The aggregator prices ``trips`` within each rider's means, posts them and commits the epoch.

    With ``retract_first`` (and a challenge window of 3 blocks or more) it first commits a root that pays itself
    everything, is refused its claim while the window is open, and retracts that epoch.
    """
    s, epoch_id = world.scenario, world.last + 1
    records, postings = [], []
    for rider_index, owner_index, asked in trips:
        rider = world.riders[rider_index]
        fare = min(asked, world.available(rider))
        owner_share, fee = split(fare, s.fee_bps)
        record = trip_record(world, epoch_id, rider, owner_index, fare)
        records.append(record)
        postings.append(Posting(rider, world.owners[owner_index], fare, owner_share, fee, record.trip_id))
        world.book = post(world.book, postings[-1:], ZONE)
    world.book = open_accounts(world.book, world.deposited)
    tree = BalanceTree.of(world.book, world.clearing.chain_id(), world.contract())
    context = LeafContext(world.clearing.chain_id(), world.contract())
    receipts = [build_receipt(r, records, context, tx_hash=None, status="committed") for r in records]
    earned, spent = tree.totals
    commit = ClearingCommit(
        epoch_id, bytes.fromhex(receipts[0]["root"][2:]), tree.root, REGISTRY_ROOT, len(records), spent, earned
    )
    if retract_first and s.challenge_blocks >= 3:  # the greedy commit, the claim, the retraction
        retract_a_greedy_epoch(world, commit)
    receipt = world.clearing.commit(commit)
    world.trees.append(tree)
    world.commit_blocks.append(receipt.block_number)
    assert world.clearing.balances_root(epoch_id) == tree.root
    for r in receipts:  # every trip's receipt verifies against what the chain holds
        assert verify_receipt(r, world.clearing.trips_root(epoch_id)) is None


def retract_a_greedy_epoch(world: World, honest: ClearingCommit) -> None:
    everything = sum(world.deposited.values()) + STRAY
    greedy = BalanceTree({**world.book, AGGREGATOR: (everything, 0)}, world.clearing.chain_id(), world.contract())
    before = world.clearing.totals()
    world.clearing.commit(replace(honest, balances_root=greedy.root))
    proof = greedy.proof(AGGREGATOR, honest.epoch_id)
    attempt(world, partial(world.clearing.claim, proof), AGGREGATOR, None)  # not final: refused
    world.clearing.retract(honest.epoch_id)
    assert world.clearing.last_epoch() == honest.epoch_id - 1
    assert world.clearing.balances_root(honest.epoch_id) == bytes(32)
    assert world.clearing.totals() == before


def proof_of(world: World, account: Address, back: int) -> BalanceProof | None:
    """``account``'s proof in the epoch ``back`` epochs before the last (None if it has no balance there)."""
    epoch_id = world.last - min(back, world.last - 1)
    tree = world.trees[epoch_id - 1]
    return tree.proof(account, epoch_id) if account in tree.book else None


def attempt(world: World, send: Callable[[], object], paid: Address, expected: int | None) -> None:
    """Send ``send`` and check the chain against the oracle: it pays ``paid`` exactly ``expected``, or refuses
    (``expected`` None) and moves nothing."""
    before = world.balances()
    try:
        send()
    except ChainError:
        assert expected is None, f"refused, but it should have paid {expected}"
        assert world.balances() == before
        return
    assert expected is not None, "it paid, but the contract's rules refuse it"
    after = world.balances()
    assert after[paid] - before[paid] == expected
    assert before[world.contract()] - after[world.contract()] == expected


def claim(world: World, action: Action, forge: bool) -> None:
    _, who, back, _, sender = action
    earners = list(dict.fromkeys([*world.owners, ZONE, *world.riders]))
    account = earners[who % len(earners)]
    proof = proof_of(world, account, back)
    if proof is None:
        return
    if forge:  # one micro-EUR more than the leaf says, or someone else's balance: never a valid proof
        proof = replace(proof, earned=proof.earned + 1) if who % 2 else replace(proof, account=STRANGER)
    root = world.clearing.balances_root(proof.epoch_id)
    assert verify_balance(root, world.clearing.chain_id(), world.contract(), proof) == (
        not forge and root != bytes(32)
    )
    port = world.clearing.as_account(world.accounts[sender % len(world.accounts)])  # anyone may send a claim
    expected = world.expected_claim(proof, genuine=not forge)
    attempt(world, partial(port.claim, proof), proof.account, expected)
    if expected is not None:
        world.claimed[proof.account] = proof.earned
        attempt(world, partial(port.claim, proof), proof.account, None)  # a replay pays nothing


def request(world: World, action: Action) -> None:
    _, who, _, percent, _ = action
    rider = world.riders[who % len(world.riders)]
    amount = (world.deposited.get(rider, 0) - world.withdrawn.get(rider, 0)) * min(percent, 100) // 100
    if percent > 100:  # just what she has not spent yet
        amount = world.unspent(rider)
    port = world.clearing.as_account(rider)
    if amount <= 0:
        attempt(world, partial(port.request_withdrawal, amount), rider, None)
        return
    receipt = port.request_withdrawal(amount)
    world.requests[rider] = (amount, receipt.block_number + world.scenario.withdraw_delay_blocks)


def withdrawal_amount(world: World, proof: BalanceProof, percent: int) -> int:
    """``percent`` of the rider's deposit left in the contract, or above 100 one amount at the edge of a rule."""
    rider = proof.account
    deposit = world.deposited.get(rider, 0) - world.withdrawn.get(rider, 0)
    if percent <= 100:
        return deposit * percent // 100
    unspent = world.unspent(rider, proof.epoch_id)
    requested = world.requests.get(rider, (0, 0))[0]
    edges = [unspent, unspent + 1, requested, requested + 1, deposit, deposit + 1]
    return max(edges[percent % len(edges)], 0)


def withdraw(world: World, action: Action) -> None:
    _, who, back, percent, _ = action
    rider = world.riders[who % len(world.riders)]
    proof = proof_of(world, rider, back)
    if proof is None:
        return
    amount = withdrawal_amount(world, proof, percent)
    passes = world.withdrawal_passes(proof, amount)
    port = world.clearing.as_account(rider)
    attempt(world, partial(port.withdraw, proof, amount), rider, amount if passes else None)
    if passes:
        world.withdrawn[rider] = world.withdrawn.get(rider, 0) + amount
        requested, ready = world.requests[rider]
        world.requests[rider] = (requested - amount, ready)


def act(world: World, actions: list[Action]) -> None:
    for action in actions:
        kind = action[0]
        if kind in ("claim", "forge"):
            claim(world, action, forge=kind == "forge")
        elif kind == "request":
            request(world, action)
        else:
            withdraw(world, action)
        world.check_conservation()


def settle_everyone(world: World) -> None:
    """After the last epoch is final: every earner claims all it earned, every rider withdraws all she has left."""
    s = world.scenario
    world.clearing.mine(s.challenge_blocks)
    tree = world.trees[-1]
    for account, (earned, _) in tree.book.items():
        if earned > world.claimed.get(account, 0):
            proof = tree.proof(account, world.last)
            attempt(world, partial(world.clearing.claim, proof), account, earned - world.claimed.get(account, 0))
            world.claimed[account] = earned
    for rider in world.deposited:
        left = world.unspent(rider)
        if left > 0:
            port = world.clearing.as_account(rider)
            port.request_withdrawal(left)
            world.clearing.mine(s.withdraw_delay_blocks)
            proof = tree.proof(rider, world.last)
            attempt(world, partial(port.withdraw, proof, left), rider, left)
            world.withdrawn[rider] = world.withdrawn.get(rider, 0) + left
    world.check_conservation()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_claims_and_withdrawals_never_pay_out_more_than_was_deposited(s: Scenario) -> None:
    world = build(s)
    for trips, retract_first, early, late in s.epochs:
        commit_epoch(world, trips, retract_first)
        act(world, early)  # while the epoch may still be in its challenge window
        world.clearing.mine(s.challenge_blocks)
        act(world, late)
    settle_everyone(world)

    assert world.token.balance_of(world.contract()) == STRAY
    earned = {a: e for a, (e, _) in world.book.items()}
    spent = {a: p for a, (_, p) in world.book.items()}
    for account in world.accounts:
        expected = POCKET + world.scenario.deposits[world.riders.index(account)] if account in world.riders else 0
        assert world.token.balance_of(account) == expected + earned.get(account, 0) - spent.get(account, 0)
    totals = world.clearing.totals()
    assert totals.claimed_total == totals.spent_total == sum(spent.values()) == sum(earned.values())
    assert totals.deposited_total == totals.spent_total + totals.withdrawn_total


ROGUE_BOOKS = st.dictionaries(
    st.integers(0, 5).map(lambda i: Address(bytes([0x40 + i] * 20))),
    st.tuples(st.integers(0, 10_000_000), st.integers(0, 10_000_000)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 3_000_000), min_size=1, max_size=4),
    st.lists(ROGUE_BOOKS, min_size=1, max_size=3),
    st.randoms(use_true_random=False),
)
def test_whatever_roots_the_operator_commits_nothing_beyond_the_deposits_is_paid(
    deposits: list[int], books: list[dict[Address, tuple[int, int]]], rng: random.Random
) -> None:
    world = build(Scenario(deposits, 1, False, 0, 0, 0, []))
    deposited = sum(deposits)
    chain_id, contract = world.clearing.chain_id(), world.contract()
    most_earned: dict[Address, int] = {}
    for epoch_id, book in enumerate(books, start=1):
        tree = BalanceTree(book, chain_id, contract)  # leaves that need not add up, nor match any deposit
        world.clearing.commit(ClearingCommit(epoch_id, keccak(b"trips"), tree.root, REGISTRY_ROOT, 1, 0, 0))
        for account, (earned, _) in book.items():
            most_earned[account] = max(earned, most_earned.get(account, 0))
        moves = [(kind, a) for a in tree.book for kind in ("claim", "request", "withdraw")]
        rng.shuffle(moves)
        for kind, account in moves:
            port = world.clearing.as_account(account)
            unspent = world.clearing.deposited(account) - world.clearing.withdrawn(account)
            try:
                if kind == "claim":
                    port.claim(tree.proof(account, epoch_id))
                elif kind == "request":
                    port.request_withdrawal(max(unspent, 1))
                else:
                    port.withdraw(tree.proof(account, epoch_id), unspent)
            except ChainError:
                pass
            totals = world.clearing.totals()
            paid = totals.claimed_total + totals.withdrawn_total
            assert paid <= deposited
            assert world.token.balance_of(contract) == deposited - paid + STRAY
            assert world.token.total_supply() == world.minted
            assert world.clearing.claimed(account) <= most_earned[account]
            assert world.clearing.withdrawn(account) <= world.clearing.deposited(account)
