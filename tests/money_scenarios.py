"""Issue 9's money property, reusable: random trips, claims and withdrawals driven through any clearing contract.

Riders deposit into the clearing contract of a ``Ledger`` (``FakeLedger``: ``FakeClearing`` over ``FakeToken``;
the integration tests put the Vyper contract and the euro token on a node behind the same protocol). The
aggregator prices trips within what each rider has left (the fare split with ``pricing.split``), posts them to the
cumulative book and commits each epoch's trips root and ``BalanceTree`` root. In between, owners, the zone and
riders claim and withdraw in random orders, with the latest proofs, old ones, replayed ones and forged ones. An
oracle written here from the contract's rules says which of those transactions must pass and what each must pay,
or with which revert reason it must be refused; the euro token's balances are checked after every one. At the end
(``settle_everyone``) everyone takes what is theirs and the contract holds nothing but tokens sent to it by
mistake. ``run_scenario`` is the whole property for one ``Scenario`` drawn by ``scenarios()``.

``run_rogue_operator`` is the second property: the operator commits any leaves at all (``ROGUE_BOOKS``), and
still nothing beyond the deposits is paid out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Protocol

from eth_utils import keccak
from hypothesis import strategies as st

from sensors.address import Address
from sensors.consent import RideConsent, Voucher, sign
from sensors.messages import VehicleKind
from sensors.signing import Domain, address_of
from settlement.balances import BalanceTree, Posting, open_accounts, post, verify_balance
from settlement.clearing import (
    ABOVE_REQUESTED,
    ABOVE_UNSPENT,
    FORGOTTEN,
    NOT_COMMITTED,
    NOT_FINAL,
    NOT_LATEST_FINAL,
    NOT_READY,
    NOTHING_TO_CLAIM,
    PAYOUTS_ABOVE_DEPOSITS,
    RING,
    WRONG_PROOF,
    ZERO_WITHDRAWAL,
    BalanceProof,
    ClearingCommit,
    ClearingPort,
    FakeClearing,
)
from settlement.epochs import LeafContext
from settlement.errors import ChainError
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.ports import FakeToken
from settlement.pricing import split
from settlement.receipts import build_receipt, verify_receipt
from settlement.trips import Mark, TripRecord

REGISTRY_ROOT = keccak(b"the device registry")
T0 = 1_790_000_000_000
POCKET = 1_000  # tokens each rider keeps outside the contract, to see that nothing takes them
STRAY = 777  # tokens sent straight to the contract, not deposited: no one may ever be paid them
MAX_RIDERS, MAX_OWNERS = 4, 3

Action = tuple[str, int, int, int, int]  # kind, who, how many epochs back, percent (or edge), sender
Outcome = int | str  # what a transaction must pay, or the end of the revert reason it must be refused with


class Balances(Protocol):
    """The euro token's views the property reads."""

    def balance_of(self, account: Address) -> int: ...

    def total_supply(self) -> int: ...


class Ledger(Protocol):
    """A euro token and a clearing contract over it, owned by ``aggregator``, and the accounts that use them.

    ``riders`` holds at least ``MAX_RIDERS`` accounts and ``owners`` at least ``MAX_OWNERS``, all distinct from
    each other and from ``aggregator``, ``zone`` and ``stranger``; every one of them can send transactions.
    """

    @property
    def aggregator(self) -> Address: ...

    @property
    def zone(self) -> Address: ...

    @property
    def stranger(self) -> Address: ...

    @property
    def riders(self) -> Sequence[Address]: ...

    @property
    def owners(self) -> Sequence[Address]: ...

    @property
    def token(self) -> Balances: ...

    @property
    def clearing(self) -> ClearingPort:
        """The aggregator's port to the deployed clearing contract."""
        ...

    def deploy(self, challenge_blocks: int, withdraw_delay_blocks: int) -> None:
        """Deploy the euro token and a clearing contract over it, both owned by the aggregator."""
        ...

    def port(self, account: Address) -> ClearingPort:
        """The clearing contract as ``account`` sends to it."""
        ...

    def mine(self, blocks: int) -> None:
        """Add ``blocks`` empty blocks."""
        ...

    def mint(self, to: Address, amount: int) -> None: ...

    def transfer(self, sender: Address, to: Address, amount: int) -> None: ...

    def wallet(self, rider: Address) -> bytes:
        """The private key of ``rider``: it signs the rider's consents and vouchers."""
        ...


class FakeLedger:
    """``FakeClearing`` over ``FakeToken``: accounts send without keys, so they are fixed addresses; only the riders
    have keys, to sign their consents and vouchers."""

    aggregator = Address(bytes([0xAA] * 20))
    zone = Address(bytes([0x20] * 20))
    stranger = Address(bytes([0x5E] * 20))
    WALLETS = {address_of(bytes([0x40 + i] * 32)): bytes([0x40 + i] * 32) for i in range(MAX_RIDERS)}
    riders = tuple(WALLETS)
    owners = tuple(Address(bytes([0x80 + i] * 20)) for i in range(MAX_OWNERS))

    def wallet(self, rider: Address) -> bytes:
        return self.WALLETS[rider]

    def __init__(self) -> None:
        self._token = FakeToken(self.aggregator)
        self._clearing = FakeClearing(self._token, self.aggregator)

    @property
    def token(self) -> FakeToken:
        return self._token

    @property
    def clearing(self) -> FakeClearing:
        return self._clearing

    def deploy(self, challenge_blocks: int, withdraw_delay_blocks: int) -> None:
        self._token.deploy()
        assert self._token.address is not None
        self._clearing.deploy(self._token.address, challenge_blocks, withdraw_delay_blocks)

    def port(self, account: Address) -> FakeClearing:
        return self._clearing.as_account(account)

    def mine(self, blocks: int) -> None:
        self._clearing.mine(blocks)

    def mint(self, to: Address, amount: int) -> None:
        self._token.mint(to, amount)

    def transfer(self, sender: Address, to: Address, amount: int) -> None:
        self._token.as_account(sender).transfer(to, amount)


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
def scenarios(draw: st.DrawFn, max_epochs: int = RING + 3, max_early: int = 3, max_late: int = 6) -> Scenario:
    """A scenario of 1 to ``max_epochs`` epochs, each followed by up to ``max_early`` actions while it may be in
    its challenge window and up to ``max_late`` once it is final."""
    riders = draw(st.integers(1, MAX_RIDERS))
    owners = draw(st.integers(1, MAX_OWNERS))
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
                st.tuples(
                    trips, st.booleans(), st.lists(ACTIONS, max_size=max_early), st.lists(ACTIONS, max_size=max_late)
                ),
                min_size=1,
                max_size=max_epochs,
            )
        ),
    )


@dataclass
class World:
    """The chain (token and clearing contract) and, beside it, what the contract's rules say it should hold."""

    scenario: Scenario
    ledger: Ledger
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
    outcomes: list[Outcome] = field(default_factory=list)  # of every transaction ``attempt`` sent, in order

    @property
    def token(self) -> Balances:
        return self.ledger.token

    @property
    def clearing(self) -> ClearingPort:
        return self.ledger.clearing

    @property
    def accounts(self) -> list[Address]:
        ledger = self.ledger
        return list(dict.fromkeys([*self.riders, *self.owners, ledger.zone, ledger.aggregator, ledger.stranger]))

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

    def leaf_refusal(self, epoch_id: int, block: int, genuine: bool) -> str | None:
        """Why a proof of epoch ``epoch_id`` is refused in ``block``: the epoch is not committed, forgotten by the
        ring or not final, or the proof is not ``genuine``; None if it is accepted."""
        if not 1 <= epoch_id <= self.last:
            return NOT_COMMITTED
        if epoch_id <= self.last - RING:
            return FORGOTTEN
        if not self.final(epoch_id, block):
            return NOT_FINAL
        return None if genuine else WRONG_PROOF

    def solvent(self, amount: int) -> bool:
        return self.paid_out() + amount <= sum(self.deposited.values())

    def expect(self, oracle: Callable[[int], Outcome]) -> Outcome:
        """What ``oracle`` says of the next transaction, in the block it is mined in."""
        return oracle(self.clearing.block_number() + 1)

    def expected_claim(self, proof: BalanceProof, genuine: bool, block: int) -> Outcome:
        """What a claim with ``proof`` mined in ``block`` pays, or why it is refused."""
        amount = proof.earned - self.claimed.get(proof.account, 0)
        refusal = self.leaf_refusal(proof.epoch_id, block, genuine)
        if refusal is not None:
            return refusal
        if amount <= 0:
            return NOTHING_TO_CLAIM
        return amount if self.solvent(amount) else PAYOUTS_ABOVE_DEPOSITS

    def expected_withdrawal(self, proof: BalanceProof, amount: int, block: int) -> Outcome:
        """What a withdrawal of ``amount`` with ``proof`` mined in ``block`` pays, or why it is refused."""
        requested, ready = self.requests.get(proof.account, (0, 0))
        if amount <= 0:
            return ZERO_WITHDRAWAL
        if (requested, ready) == (0, 0) or ready > block:
            return NOT_READY
        if amount > requested:
            return ABOVE_REQUESTED
        refusal = self.leaf_refusal(proof.epoch_id, block, genuine=True)
        if refusal is not None:
            return refusal
        if proof.epoch_id != self.last and self.final(proof.epoch_id + 1, block):
            return NOT_LATEST_FINAL
        if amount > self.unspent(proof.account, proof.epoch_id):
            return ABOVE_UNSPENT
        return amount if self.solvent(amount) else PAYOUTS_ABOVE_DEPOSITS

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


def build(s: Scenario, ledger: Ledger) -> World:
    """Deploy on ``ledger``; the stranger sends ``STRAY`` tokens to the contract and every rider deposits."""
    riders = list(ledger.riders[: len(s.deposits)])
    owners = list(ledger.owners[: s.owners])
    if s.rider_owns:
        owners[0] = riders[0]
    ledger.deploy(s.challenge_blocks, s.withdraw_delay_blocks)
    world = World(s, ledger, riders, owners, minted=sum(s.deposits) + POCKET * len(riders) + STRAY)
    ledger.mint(ledger.stranger, STRAY)
    ledger.transfer(ledger.stranger, world.contract(), STRAY)
    for rider, amount in zip(riders, s.deposits, strict=True):
        ledger.mint(rider, amount + POCKET)
        if amount:
            port = ledger.port(rider)
            port.approve(amount)
            port.deposit(amount)
            world.deposited[rider] = amount
    world.check_conservation()
    return world


def trip_record(world: World, epoch_id: int, rider: Address, owner_index: int, fare: int) -> TripRecord:
    """A trip the rider consented to (a cap twice the fare) and paid with one voucher of exactly the fare."""
    world.trips += 1
    vehicle = f"bike-{owner_index}"
    start = T0 + 600_000 * world.trips
    trip_id, key, domain = f"{vehicle}:{world.trips}", world.ledger.wallet(rider), Domain(world.clearing.chain_id())
    consent = sign(RideConsent(rider, vehicle, "bike", 2 * fare + 1, start + 3_600_000, world.trips), key, domain)
    voucher = sign(Voucher(rider, trip_id, fare, 1), key, domain)
    return TripRecord(
        trip_id, vehicle, "smartzone", VehicleKind.BIKE, TripStatus.COMMITTED,
        Mark(world.trips, start, 51.2, 4.4, 0), Mark(world.trips + 1, start + 90_500, 51.21, 4.41, 300),
        str(rider), world.owners[owner_index], None, 300, 91, Fare(fare, 0, 0), epoch_id,
        consent=consent, voucher=voucher, charged_micro=fare, limited_by="metered",
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
        world.book = post(world.book, postings[-1:], world.ledger.zone)
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
    aggregator = world.ledger.aggregator
    everything = sum(world.deposited.values()) + STRAY
    greedy = BalanceTree({**world.book, aggregator: (everything, 0)}, world.clearing.chain_id(), world.contract())
    before = world.clearing.totals()
    world.clearing.commit(replace(honest, balances_root=greedy.root))
    proof = greedy.proof(aggregator, honest.epoch_id)
    attempt(world, partial(world.clearing.claim, proof), aggregator, NOT_FINAL)
    world.clearing.retract(honest.epoch_id)
    assert world.clearing.last_epoch() == honest.epoch_id - 1
    assert world.clearing.balances_root(honest.epoch_id) == bytes(32)
    assert world.clearing.totals() == before


def proof_of(world: World, account: Address, back: int) -> BalanceProof | None:
    """``account``'s proof in the epoch ``back`` epochs before the last (None if it has no balance there)."""
    epoch_id = world.last - min(back, world.last - 1)
    tree = world.trees[epoch_id - 1]
    return tree.proof(account, epoch_id) if account in tree.book else None


def attempt(world: World, send: Callable[[], object], paid: Address, expected: Outcome) -> None:
    """Send ``send`` and check the chain against the oracle: it pays ``paid`` exactly ``expected`` (an amount),
    or is refused with a reason ending in ``expected`` (a text) and moves nothing."""
    before = world.balances()
    try:
        send()
    except ChainError as exc:
        assert isinstance(expected, str), f"refused ({exc}), but it should have paid {expected}"
        assert str(exc).endswith(expected), f"refused with {str(exc)!r}, expected {expected!r}"
        assert world.balances() == before
        world.outcomes.append(expected)
        return
    assert isinstance(expected, int), f"it paid, but the contract's rules refuse it: {expected}"
    after = world.balances()
    assert after[paid] - before[paid] == expected
    assert before[world.contract()] - after[world.contract()] == expected
    world.outcomes.append(expected)


def claim(world: World, action: Action, forge: bool) -> None:
    _, who, back, _, sender = action
    earners = list(dict.fromkeys([*world.owners, world.ledger.zone, *world.riders]))
    account = earners[who % len(earners)]
    proof = proof_of(world, account, back)
    if proof is None:
        return
    if forge:  # one micro-EUR more than the leaf says, or someone else's balance: never a valid proof
        proof = replace(proof, earned=proof.earned + 1) if who % 2 else replace(proof, account=world.ledger.stranger)
    root = world.clearing.balances_root(proof.epoch_id)
    assert verify_balance(root, world.clearing.chain_id(), world.contract(), proof) == (not forge and root != bytes(32))
    port = world.ledger.port(world.accounts[sender % len(world.accounts)])  # anyone may send a claim
    expected = world.expect(partial(world.expected_claim, proof, not forge))
    attempt(world, partial(port.claim, proof), proof.account, expected)
    if isinstance(expected, int):
        world.claimed[proof.account] = proof.earned
        attempt(world, partial(port.claim, proof), proof.account, NOTHING_TO_CLAIM)  # a replay pays nothing


def request(world: World, action: Action) -> None:
    _, who, _, percent, _ = action
    rider = world.riders[who % len(world.riders)]
    amount = (world.deposited.get(rider, 0) - world.withdrawn.get(rider, 0)) * min(percent, 100) // 100
    if percent > 100:  # just what she has not spent yet
        amount = world.unspent(rider)
    port = world.ledger.port(rider)
    if amount <= 0:
        attempt(world, partial(port.request_withdrawal, amount), rider, ZERO_WITHDRAWAL)
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
    expected = world.expect(partial(world.expected_withdrawal, proof, amount))
    port = world.ledger.port(rider)
    attempt(world, partial(port.withdraw, proof, amount), rider, expected)
    if isinstance(expected, int):
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
    world.ledger.mine(s.challenge_blocks)
    tree = world.trees[-1]
    for account, (earned, _) in tree.book.items():
        if earned > world.claimed.get(account, 0):
            proof = tree.proof(account, world.last)
            attempt(world, partial(world.clearing.claim, proof), account, earned - world.claimed.get(account, 0))
            world.claimed[account] = earned
    for rider in world.deposited:
        left = world.unspent(rider)
        if left > 0:
            port = world.ledger.port(rider)
            port.request_withdrawal(left)
            world.ledger.mine(s.withdraw_delay_blocks)
            proof = tree.proof(rider, world.last)
            attempt(world, partial(port.withdraw, proof, left), rider, left)
            world.withdrawn[rider] = world.withdrawn.get(rider, 0) + left
    world.check_conservation()


def run_scenario(s: Scenario, ledger: Ledger) -> World:
    """The property for one scenario: every transaction does what the rules say, and in the end everyone holds
    what they deposited, less what they spent, plus what they earned, and the contract only the stray tokens."""
    world = build(s, ledger)
    for trips, retract_first, early, late in s.epochs:
        commit_epoch(world, trips, retract_first)
        act(world, early)  # while the epoch may still be in its challenge window
        ledger.mine(s.challenge_blocks)
        act(world, late)
    settle_everyone(world)

    assert world.token.balance_of(world.contract()) == STRAY
    earned = {a: e for a, (e, _) in world.book.items()}
    spent = {a: p for a, (_, p) in world.book.items()}
    for account in world.accounts:
        expected = POCKET + s.deposits[world.riders.index(account)] if account in world.riders else 0
        assert world.token.balance_of(account) == expected + earned.get(account, 0) - spent.get(account, 0)
    totals = world.clearing.totals()
    assert totals.claimed_total == totals.spent_total == sum(spent.values()) == sum(earned.values())
    assert totals.deposited_total == totals.spent_total + totals.withdrawn_total
    return world


ROGUE_BOOKS = st.dictionaries(
    st.integers(0, 5),  # an index into the accounts the runner is given
    st.tuples(st.integers(0, 10_000_000), st.integers(0, 10_000_000)),
    min_size=1,
    max_size=6,
)


def run_rogue_operator(
    deposits: list[int],
    books: list[dict[int, tuple[int, int]]],
    rng: random.Random,
    ledger: Ledger,
    accounts: Sequence[Address],
) -> World:
    """The operator commits any leaves at all for ``accounts`` (the first ones riders who deposit ``deposits``);
    each epoch, every account in it claims, requests and withdraws in a random order, and whatever passes, nothing
    beyond the deposits is paid, no one is paid more than any leaf of theirs said, nor withdraws beyond her deposit.
    """
    world = build(Scenario(deposits, 1, False, 0, 0, 0, []), ledger)
    deposited = sum(deposits)
    chain_id, contract = world.clearing.chain_id(), world.contract()
    most_earned: dict[Address, int] = {}
    for epoch_id, indexed in enumerate(books, start=1):
        book = {accounts[i]: balance for i, balance in indexed.items()}
        tree = BalanceTree(book, chain_id, contract)  # leaves that need not add up, nor match any deposit
        world.clearing.commit(ClearingCommit(epoch_id, keccak(b"trips"), tree.root, REGISTRY_ROOT, 1, 0, 0))
        for account, (earned, _) in book.items():
            most_earned[account] = max(earned, most_earned.get(account, 0))
        moves = [(kind, a) for a in tree.book for kind in ("claim", "request", "withdraw")]
        rng.shuffle(moves)
        for kind, account in moves:
            port = ledger.port(account)
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
    return world
