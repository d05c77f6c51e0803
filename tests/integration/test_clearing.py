"""The clearing contract through the web3 adapter, on py-evm and anvil, moving real szEUR; the fake beside it.

One euro token per chain serves the whole module and each test deploys one clearing contract, so anvil sees a
handful of deployments. ``test_every_rule_refuses_alike_on_the_chain_and_on_the_fake`` walks one scenario through
every bad input the contract refuses, on the chain and on ``FakeClearing``, and compares the outcomes step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3

from sensors.address import Address
from settlement.chain.clearing import COMMIT_GAS, Web3Clearing
from settlement.chain.token import Web3Token
from settlement.chain.views import read_views
from settlement.clearing import (
    BALANCE_LEAF_TYPES,
    RING,
    BalanceProof,
    ClearingCommit,
    ClearingPort,
    ClearingTotals,
    FakeClearing,
    balance_values,
)
from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from settlement.merkle import StandardMerkleTree
from settlement.ports import FakeToken, TokenPort
from tests import services
from tests.integration.nodes import ANVIL_KEYS, EMBEDDED, Node

OWNER = Address(bytes([0x11] * 20))
ZONE = Address(bytes([0x22] * 20))
EUR = 1_000_000  # micro-EUR
TRIPS = bytes([0xAB] * 32)
REGISTRY = bytes([0xCD] * 32)
Book = dict[Address, tuple[int, int]]  # account -> cumulative (earned, spent)


@pytest.fixture(
    scope="module",
    params=[pytest.param("py-evm", id="py-evm"), pytest.param("anvil", id="anvil", marks=pytest.mark.services)],
)
def chain(request: pytest.FixtureRequest) -> Node:
    """The node fixture's two chains, for the whole module (one token deployment each)."""
    if request.param == "py-evm":
        return EMBEDDED
    return Node(request.getfixturevalue("anvil_url"), *ANVIL_KEYS)


@pytest.fixture(scope="module")
def euro(chain: Node) -> Web3Token:
    """The euro token with a demo faucet, owned by the chain's first account."""
    token = Web3Token.connect(chain.url, private_key=chain.first_key, timeout=10)
    token.deploy(faucet_cap=100 * EUR)
    return token


@dataclass
class Sides:
    """One clearing contract as its aggregator and one rider see it, with its token and a way to mine blocks."""

    aggregator: ClearingPort
    rider: ClearingPort
    token: TokenPort
    rider_token: TokenPort
    mine: Callable[[int], None]


def on_chain(euro: Web3Token, chain: Node, challenge: int, delay: int) -> Sides:
    aggregator = Web3Clearing(euro.sender)
    aggregator.deploy(str(euro.address), challenge, delay)
    w3 = euro.sender.w3

    def mine(blocks: int) -> None:
        for _ in range(blocks):
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    return Sides(aggregator, aggregator.with_key(chain.second_key), euro, euro.with_key(chain.second_key), mine)


def in_memory(challenge: int, delay: int) -> Sides:
    token = FakeToken(Address(bytes([0xA0] * 20)))
    token.deploy(faucet_cap=100 * EUR)
    aggregator = FakeClearing(token)
    aggregator.deploy(str(token.address), challenge, delay)
    rider = aggregator.as_account(Address(bytes([0xB0] * 20)))
    return Sides(aggregator, rider, token, token.as_account(rider.account), aggregator.mine)


def tree(port: ClearingPort, book: Book) -> StandardMerkleTree:
    rows = [balance_values(port.chain_id(), str(port.address), a, e, s) for a, (e, s) in book.items()]
    return StandardMerkleTree.of(rows, BALANCE_LEAF_TYPES)


def proof(balances: StandardMerkleTree, epoch_id: int, account: Address) -> BalanceProof:
    for i, row in enumerate(balances.values):
        if row[2] == account.checksum:
            return BalanceProof(epoch_id, account, int(row[3]), int(row[4]), tuple(balances.proof(i)))
    raise KeyError(account)


def book(rider: Address, spent: int) -> Book:
    """``rider`` spent ``spent``: the owner earned 90 % of it and the zone the rest."""
    return {rider: (0, spent), OWNER: (spent - spent // 10, 0), ZONE: (spent // 10, 0)}


def commit_of(port: ClearingPort, epoch_id: int, balances: Book, **change: Any) -> ClearingCommit:
    spent = sum(s for _, s in balances.values())
    fields: dict[str, Any] = {
        "epoch_id": epoch_id,
        "trips_root": TRIPS,
        "balances_root": tree(port, balances).root,
        "registry_root": REGISTRY,
        "trip_count": 3,
        "spent_total": spent,
        "earned_total": spent,
    }
    return ClearingCommit(**(fields | change))


def test_a_rider_deposits_szeur_owners_claim_it_and_the_rider_withdraws_the_rest(euro: Web3Token, chain: Node) -> None:
    sides = on_chain(euro, chain, challenge=1, delay=2)
    aggregator, rider = sides.aggregator, sides.rider
    sides.rider_token.faucet(50 * EUR)
    before = [sides.token.balance_of(account) for account in (rider.account, OWNER, ZONE)]
    rider.approve(10 * EUR)
    rider.deposit(10 * EUR)
    balances = book(rider.account, 3 * EUR)
    committed = aggregator.commit(commit_of(aggregator, 1, balances))
    epoch = tree(aggregator, balances)

    rider.claim(proof(epoch, 1, OWNER))  # anyone may send a claim: the money goes to the owner
    aggregator.claim(proof(epoch, 1, ZONE))
    rider.request_withdrawal(7 * EUR)
    sides.mine(2)
    rider.withdraw(proof(epoch, 1, rider.account), 7 * EUR)

    contract = Address.parse(str(aggregator.address))
    after = [sides.token.balance_of(account) for account in (rider.account, OWNER, ZONE)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [-3 * EUR, 2_700_000, 300_000]
    assert sides.token.balance_of(contract) == 0
    assert aggregator.totals() == ClearingTotals(10 * EUR, 3 * EUR, 3 * EUR, 7 * EUR)
    assert (aggregator.deposited(rider.account), aggregator.withdrawn(rider.account)) == (10 * EUR, 7 * EUR)
    assert (aggregator.claimed(OWNER), aggregator.claimed(ZONE)) == (2_700_000, 300_000)
    assert (aggregator.trips_root(1), aggregator.balances_root(1)) == (TRIPS, epoch.root)
    assert aggregator.is_final(1) and not aggregator.is_final(2)
    assert aggregator.commit_receipt(1) == committed and aggregator.requested(rider.account)[0] == 0
    assert isinstance(aggregator, Web3Clearing)
    events = aggregator._deployed.events
    found = {
        name: len(getattr(events, name)().get_logs(from_block=0))
        for name in ("Deposited", "EpochCommitted", "Claimed", "WithdrawalRequested", "Withdrawn")
    }
    assert found == {"Deposited": 1, "EpochCommitted": 1, "Claimed": 2, "WithdrawalRequested": 1, "Withdrawn": 1}


Step = tuple[str, Callable[["Scenario"], object], str]


@dataclass
class Scenario:
    """One run of ``STEPS`` on one side, with the balance trees it committed so far."""

    sides: Sides
    trees: dict[int, StandardMerkleTree]

    @property
    def a(self) -> ClearingPort:
        return self.sides.aggregator

    @property
    def r(self) -> ClearingPort:
        return self.sides.rider

    @property
    def me(self) -> Address:
        return self.sides.rider.account

    def book(self, spent: int) -> Book:
        return book(self.me, spent)

    def commit(self, epoch_id: int, balances: Book, port: ClearingPort | None = None, **change: Any) -> object:
        port = port or self.a
        receipt = port.commit(commit_of(port, epoch_id, balances, **change))
        self.trees[epoch_id] = tree(port, balances)
        return receipt

    def proof(self, epoch_id: int, account: Address, earned: int | None = None) -> BalanceProof:
        found = proof(self.trees[epoch_id], epoch_id, account)
        if earned is None:
            return found
        return BalanceProof(epoch_id, account, earned, found.spent, found.proof)


# (what, the step, how its ChainError's text ends, or "ok"). Challenge window 4 blocks, withdrawal delay 2;
# a refused transaction is mined too, so every step but a view moves the chain on by one block.
STEPS: list[Step] = [
    ("zero deposit", lambda s: s.r.deposit(0), "deposit reverted: clearing: zero deposit"),
    ("deposit unapproved", lambda s: s.r.deposit(1), "deposit reverted: erc20: insufficient allowance"),
    ("approve", lambda s: s.r.approve(10 * EUR), "ok"),
    ("deposit", lambda s: s.r.deposit(10 * EUR), "ok"),
    ("commit by a rider", lambda s: s.commit(1, s.book(EUR), s.r), "ownable: caller is not the owner"),
    ("commit out of order", lambda s: s.commit(2, s.book(EUR)), "clearing: epoch out of sequence"),
    ("zero trips root", lambda s: s.commit(1, s.book(EUR), trips_root=bytes(32)), "clearing: zero trips root"),
    ("zero balances root", lambda s: s.commit(1, {}, balances_root=bytes(32)), "clearing: zero balances root"),
    ("zero trips", lambda s: s.commit(1, s.book(EUR), trip_count=0), "commit_epoch reverted: clearing: zero trips"),
    ("earned != spent", lambda s: s.commit(1, s.book(EUR), earned_total=EUR + 1), "earned differs from spent"),
    ("above deposits", lambda s: s.commit(1, s.book(10 * EUR + 1)), "clearing: totals above deposits"),
    ("commit 1", lambda s: s.commit(1, s.book(EUR)), "ok"),
    ("claim before final", lambda s: s.a.claim(s.proof(1, OWNER)), "claim reverted: clearing: epoch not final"),
    ("mine 3", lambda s: s.sides.mine(3), "ok"),
    ("wrong proof", lambda s: s.a.claim(s.proof(1, OWNER, earned=EUR)), "claim reverted: clearing: wrong proof"),
    ("claim", lambda s: s.a.claim(s.proof(1, OWNER)), "ok"),
    ("claim twice", lambda s: s.r.claim(s.proof(1, OWNER)), "claim reverted: clearing: nothing to claim"),
    ("spent decreases", lambda s: s.commit(2, s.book(EUR // 2)), "clearing: spent total decreased"),
    ("commit 2", lambda s: s.commit(2, s.book(3 * EUR)), "ok"),
    ("retract by a rider", lambda s: s.r.retract(2), "retract_epoch reverted: ownable: caller is not the owner"),
    ("retract not last", lambda s: s.a.retract(1), "retract_epoch reverted: clearing: not the last epoch"),
    ("retract", lambda s: s.a.retract(2), "ok"),
    ("claim retracted", lambda s: s.a.claim(s.proof(2, OWNER)), "claim reverted: clearing: epoch not committed"),
    ("commit 2 again", lambda s: s.commit(2, s.book(3 * EUR)), "ok"),
    ("old proof", lambda s: s.a.claim(s.proof(1, OWNER)), "claim reverted: clearing: nothing to claim"),
    ("request above deposit", lambda s: s.r.request_withdrawal(10 * EUR + 1), "clearing: above unspent deposit"),
    ("request", lambda s: s.r.request_withdrawal(8 * EUR), "ok"),
    ("before the delay", lambda s: s.r.withdraw(s.proof(2, s.me), EUR), "clearing: withdrawal not ready"),
    ("mine 4", lambda s: s.sides.mine(4), "ok"),
    ("not latest final", lambda s: s.r.withdraw(s.proof(1, s.me), EUR), "clearing: not the latest final epoch"),
    ("above requested", lambda s: s.r.withdraw(s.proof(2, s.me), 9 * EUR), "clearing: above the requested amount"),
    ("above unspent", lambda s: s.r.withdraw(s.proof(2, s.me), 8 * EUR), "clearing: above unspent deposit"),
    ("withdraw", lambda s: s.r.withdraw(s.proof(2, s.me), 7 * EUR), "ok"),
    ("withdraw again", lambda s: s.r.withdraw(s.proof(2, s.me), 1), "clearing: above unspent deposit"),
    ("retract final", lambda s: s.a.retract(2), "retract_epoch reverted: clearing: epoch is final"),
    ("claim the increase", lambda s: s.r.claim(s.proof(2, OWNER)), "ok"),
    ("a greedy root", lambda s: s.commit(3, {OWNER: (9 * EUR, 0), s.me: (0, 3 * EUR)}), "ok"),
    ("mine 4", lambda s: s.sides.mine(4), "ok"),
    ("beyond deposits", lambda s: s.r.claim(s.proof(3, OWNER)), "claim reverted: clearing: payouts above deposits"),
    ("zone by epoch 2", lambda s: s.r.claim(s.proof(2, ZONE)), "ok"),
]


def run(sides: Sides) -> Iterator[tuple[str, str]]:
    """Each step's name and outcome, in order."""
    scenario = Scenario(sides, {})
    for what, step, _ in STEPS:
        try:
            step(scenario)
        except ChainError as exc:
            yield what, str(exc)
        else:
            yield what, "ok"


def matches(expected: str, found: str) -> bool:
    return found == "ok" if expected == "ok" else found.endswith(expected)


def test_every_rule_refuses_alike_on_the_chain_and_on_the_fake(euro: Web3Token, chain: Node) -> None:
    sides = {"chain": on_chain(euro, chain, challenge=4, delay=2), "fake": in_memory(challenge=4, delay=2)}
    sides["chain"].rider_token.faucet(10 * EUR)
    sides["fake"].rider_token.faucet(10 * EUR)
    accounts = {name: (side.rider.account, OWNER, ZONE) for name, side in sides.items()}
    before = {name: [side.token.balance_of(a) for a in accounts[name]] for name, side in sides.items()}

    outcomes = {name: list(run(side)) for name, side in sides.items()}

    expected = [(what, outcome) for what, _, outcome in STEPS]
    for name, found in outcomes.items():
        mismatched = [(e, f) for e, f in zip(expected, found, strict=True) if not matches(e[1], f[1])]
        assert not mismatched, (name, mismatched)
    assert outcomes["chain"] == outcomes["fake"]
    for name, side in sides.items():
        port = side.aggregator
        contract = Address.parse(str(port.address))
        assert port.totals() == ClearingTotals(10 * EUR, 3 * EUR, 3 * EUR, 7 * EUR), name
        assert (port.last_epoch(), port.claimed(OWNER), port.claimed(ZONE)) == (3, 2_700_000, 300_000), name
        assert port.requested(side.rider.account)[0] == EUR, name  # 8 asked for, 7 withdrawn
        assert port.balances_root(2) == tree(port, book(side.rider.account, 3 * EUR)).root, name
        assert (port.trips_root(2), port.commit_receipt(3).block_number) == (TRIPS, port.block_number() - 6), name
        moved = [side.token.balance_of(a) - held for a, held in zip(accounts[name], before[name], strict=True)]
        assert moved == [-3 * EUR, 2_700_000, 300_000], name
        assert side.token.balance_of(contract) == 0, name


def test_ownership_moves_in_two_steps_and_can_never_be_renounced(euro: Web3Token, chain: Node) -> None:
    functions = {entry["name"] for entry in compiled("clearing").abi if entry["type"] == "function"}
    assert {"owner", "pending_owner", "transfer_ownership", "accept_ownership"} <= functions
    assert "renounce_ownership" not in functions
    with pytest.raises(ChainError, match="deploying the clearing contract failed"):
        Web3Clearing(euro.sender).deploy(str(euro.address), 0, 2**48)  # a delay beyond MAX_WINDOW
    sides = on_chain(euro, chain, challenge=0, delay=0)
    aggregator, heir = sides.aggregator, sides.rider
    assert isinstance(aggregator, Web3Clearing) and isinstance(heir, Web3Clearing)

    aggregator.transfer_ownership(heir.account)
    with pytest.raises(ChainError, match="accept_ownership reverted: ownable_2step: caller is not the new owner"):
        aggregator.accept_ownership()
    assert aggregator.owner() == Address.parse(aggregator.sender.account)
    heir.accept_ownership()

    assert aggregator.owner() == heir.account
    with pytest.raises(ChainError, match="transfer_ownership reverted: ownable: caller is not the owner"):
        aggregator.transfer_ownership(aggregator.account)


def test_a_commit_costs_the_same_every_epoch_and_the_ring_forgets_only_final_balances_roots(
    euro: Web3Token, chain: Node
) -> None:
    aggregator = on_chain(euro, chain, challenge=RING + 1, delay=0).aggregator

    def commit(epoch: int) -> int:
        roots = bytes([epoch]) * 32, bytes([epoch + 100]) * 32
        return aggregator.commit(ClearingCommit(epoch, *roots, REGISTRY, 1_000, 0, 0)).gas_used

    gas = [commit(epoch) for epoch in range(1, RING + 1)]
    with pytest.raises(ChainError, match="commit_epoch reverted: clearing: ring full until an epoch is final"):
        commit(RING + 1)  # epoch 1 is not final yet: it may not leave the ring
    gas += [commit(RING + 1), commit(RING + 2)]

    print(f"\nclearing commit gas on {chain.url or 'py-evm'}: {gas}")
    assert len(set(gas)) == 1 and gas[0] < COMMIT_GAS
    assert aggregator.balances_root(1) == aggregator.balances_root(2) == bytes(32)
    assert aggregator.balances_root(3) == bytes([103]) * 32 and aggregator.trips_root(1) == bytes([1]) * 32
    assert aggregator.is_final(1) and not aggregator.is_final(3) and aggregator.last_epoch() == RING + 2
    with pytest.raises(ChainError, match="claim reverted: clearing: epoch forgotten"):
        aggregator.claim(BalanceProof(1, OWNER, 1, 0, ()))


# Each active rider's deposits, what it asks back, what it then withdraws of that, and its unspent deposit after.
ACTIVE: list[tuple[tuple[int, ...], int, int, int]] = [
    ((10 * EUR,), 4 * EUR, 3 * EUR, 6 * EUR),  # 1 EUR asked for is still to come
    ((2 * EUR, 3 * EUR), 0, 0, 5 * EUR),
    ((5 * EUR,), 5 * EUR, 0, 0),
    ((5 * EUR,), 2 * EUR, 2 * EUR, 3 * EUR),
    ((EUR,), EUR, EUR, 0),
]


def test_unspent_deposits_read_in_batches_equal_the_deposits_read_one_by_one(euro: Web3Token, chain: Node) -> None:
    sides = on_chain(euro, chain, challenge=0, delay=0)
    aggregator = sides.aggregator
    assert isinstance(aggregator, Web3Clearing)
    keys = ["0x" + (0x5EED00 + i).to_bytes(32, "big").hex() for i in range(len(ACTIVE))]
    riders = [(aggregator.with_key(key), euro.with_key(key)) for key in keys]
    for (port, token), (deposits, _, _, _) in zip(riders, ACTIVE, strict=True):
        aggregator.sender.top_up(port.account.checksum, 10**17)
        token.faucet(sum(deposits))
        port.approve(sum(deposits))
        for amount in deposits:
            port.deposit(amount)
    actives = [port.account for port, _ in riders]
    balances = dict.fromkeys(actives, (0, 0))
    aggregator.commit(commit_of(aggregator, 1, balances))
    for (port, _), (_, asked, withdrawn, _) in zip(riders, ACTIVE, strict=True):
        if asked:
            port.request_withdrawal(asked)
        if withdrawn:
            port.withdraw(proof(tree(aggregator, balances), 1, port.account), withdrawn)
    strangers = [Address((0xF000 + i).to_bytes(20, "big")) for i in range(295)]  # never deposited
    asked_for = strangers[:100] + actives[:3] + strangers[100:200] + actives[3:] + strangers[200:] + actives[:1]

    found = aggregator.unspent(asked_for)

    assert len(asked_for) == 301 and list(found) == list(dict.fromkeys(asked_for))  # each rider once, in order
    assert found == {r: aggregator.deposited(r) - aggregator.withdrawn(r) - aggregator.requested(r)[0] for r in found}
    assert [found[account] for account in actives] == [unspent for *_, unspent in ACTIVE]
    assert not any(found[stranger] for stranger in strangers)
    assert aggregator.unspent([]) == {}


@pytest.mark.services
def test_batched_reads_that_a_node_refuses_are_chain_errors_and_a_node_gone_is_unavailable() -> None:
    calls = [("deposited", (OWNER.checksum,)), ("requested", (ZONE.checksum,))]
    with services.anvil() as url:
        clearing = Web3Clearing.connect(url, ANVIL_KEYS[0], timeout=5)
        clearing.deploy(str(OWNER), 0, 0)  # the token is not called by what this test reads
        head = clearing.block_number()
        nothing_there = clearing.sender.w3.eth.contract(
            address=Web3.to_checksum_address(ZONE.checksum), abi=clearing._deployed.abi
        )

        assert read_views(clearing.sender, clearing._deployed, calls, head) == [0, (0, 0)]
        with pytest.raises(ChainError, match=f"the node at {url} refused deposited"):
            read_views(clearing.sender, clearing._deployed, calls, head + 100)  # a block it does not have
        with pytest.raises(ChainError, match="deposited on .* answered what is not its result"):
            read_views(clearing.sender, nothing_there, calls, head)

    with pytest.raises(ChainUnavailable, match=url):
        read_views(clearing.sender, clearing._deployed, calls, head)
