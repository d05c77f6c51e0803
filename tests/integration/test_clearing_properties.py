"""Issue 9's money properties on the Vyper clearing contract: the scenarios of ``tests/money_scenarios.py`` (random
trips, claims and withdrawals, each checked against the oracle of the contract's rules, its payment or its revert
reason; and a rogue operator committing any leaves) sent through ``Web3Clearing`` and ``Web3Token`` to real
contracts on py-evm and anvil.

Every account of a scenario (the aggregator, the zone, a stranger, four riders, three owners) has its own key and
sends its own transactions. On py-evm each example gets a fresh chain (a new eth-tester, funded keys 1 to 10); on
anvil, which is shared by the session, each example runs between ``evm_snapshot`` and ``evm_revert`` with keys
2 to 10 funded from anvil's first account. Few and small examples: each sends tens of transactions and reads
the chain a few hundred times (about 3 s an example on py-evm).

A refused transaction's reason is the one it was refused with in its own block, also where a rule turns on the
block number (an epoch becoming final, a withdrawal becoming ready in that very block): the oracle takes no other.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import eth_tester  # noqa: F401 - it imports py_ecc, which raises the recursion limit: before hypothesis runs
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from sensors.address import Address
from settlement.chain.clearing import Web3Clearing
from settlement.chain.token import Web3Token
from settlement.clearing import (
    ABOVE_REQUESTED,
    ABOVE_UNSPENT,
    FORGOTTEN,
    NOT_FINAL,
    NOT_LATEST_FINAL,
    NOTHING_TO_CLAIM,
    RING,
    WRONG_PROOF,
)
from tests.integration.nodes import Node
from tests.money_scenarios import (
    MAX_OWNERS,
    MAX_RIDERS,
    ROGUE_BOOKS,
    STRAY,
    Action,
    FakeLedger,
    Scenario,
    run_rogue_operator,
    run_scenario,
    scenarios,
)

ETHER = 10**18
KEYS = ["0x" + f"{n:064x}" for n in range(2, 2 + 2 + MAX_RIDERS + MAX_OWNERS)]  # eth-tester funds keys 1 to 10


class ChainLedger:
    """The euro token and the clearing contract on ``node``, and one key per account of the scenario."""

    def __init__(self, node: Node) -> None:
        self.url = node.url
        self._first_key = node.first_key
        self._token = Web3Token.connect(node.url, private_key=node.first_key, timeout=10)
        self._clearing = Web3Clearing(self._token.sender)
        self.w3 = self._token.sender.w3
        self.aggregator = self._clearing.account
        # calls then name their sender, and web3 does not ask the node for its accounts before each one
        self.w3.eth.default_account = Web3.to_checksum_address(self.aggregator.checksum)
        self._keys = {Address.parse(Account.from_key(key).address): key for key in KEYS}
        accounts = list(self._keys)
        self.zone, self.stranger = accounts[0], accounts[1]
        self.riders = accounts[2 : 2 + MAX_RIDERS]
        self.owners = accounts[2 + MAX_RIDERS :]
        self._ports: dict[Address, Web3Clearing] = {}

    @property
    def token(self) -> Web3Token:
        return self._token

    @property
    def clearing(self) -> Web3Clearing:
        return self._clearing

    def fund(self) -> None:
        """Give every account some ether for gas (eth-tester's already have plenty)."""
        signer = Account.from_key(self._first_key)
        nonce = int(self.w3.eth.get_transaction_count(signer.address, "pending"))
        hashes = []
        for account in self._keys:
            if self.w3.eth.get_balance(Web3.to_checksum_address(account.checksum)) >= ETHER:
                continue
            tx: dict[str, Any] = {
                "to": account.checksum,
                "value": 10 * ETHER,
                "gas": 21_000,
                "gasPrice": 2 * self.w3.eth.gas_price,
                "nonce": nonce,
                "chainId": self.w3.eth.chain_id,
            }
            hashes.append(self.w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw_transaction))
            nonce += 1
        for tx_hash in hashes:
            assert self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1

    def deploy(self, challenge_blocks: int, withdraw_delay_blocks: int) -> None:
        self._token.deploy()
        self._clearing.deploy(str(self._token.address), challenge_blocks, withdraw_delay_blocks)

    def port(self, account: Address) -> Web3Clearing:
        if account == self.aggregator:
            return self._clearing
        if account not in self._ports:
            self._ports[account] = self._clearing.with_key(self._keys[account])
        return self._ports[account]

    def mine(self, blocks: int) -> None:
        for _ in range(blocks):
            self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def mint(self, to: Address, amount: int) -> None:
        self._token.mint(to, amount)

    def transfer(self, sender: Address, to: Address, amount: int) -> None:
        self._token.with_key(self._keys[sender]).transfer(to, amount)

    def wallet(self, rider: Address) -> bytes:
        return bytes.fromhex(self._keys[rider].removeprefix("0x"))


@contextmanager
def ledger_on(node: Node) -> Iterator[ChainLedger]:
    """A ledger with funded accounts on a fresh py-evm chain, or on anvil between a snapshot and its revert."""
    ledger = ChainLedger(node)
    if node.url is None:
        yield ledger
        return
    snapshot = ledger.w3.provider.make_request("evm_snapshot", [])  # type: ignore[arg-type]
    try:
        ledger.fund()
        yield ledger
    finally:
        reverted = ledger.w3.provider.make_request("evm_revert", [snapshot["result"]])  # type: ignore[arg-type]
        assert reverted["result"] is True


def around_the_ring() -> Scenario:
    """Ten epochs (the ring keeps eight), a greedy epoch retracted, a withdrawal of a whole deposit requested
    half-way; after the last epoch: a claim with a forgotten epoch's proof, a withdrawal by an epoch that is no
    longer the latest final one, a forged claim, a claim by an old epoch still in the ring, withdrawals above the
    request and above the unspent deposit, and a good one."""
    quiet: tuple[list[Action], list[Action]] = ([], [])
    actions: dict[int, tuple[list[Action], list[Action]]] = {
        2: ([("claim", 0, 0, 0, 1)], [("claim", 1, 0, 0, 2)]),  # not final yet, then paid
        5: ([], [("request", 0, 0, 100, 0)]),  # all her deposit: from now on she rides for free
        10: (
            [("claim", 2, 0, 0, 3)],
            [("claim", 0, RING + 1, 0, 4), ("withdraw", 0, 1, 10, 0), ("forge", 1, 0, 0, 5),
             ("claim", 1, 3, 0, 6), ("withdraw", 0, 0, 101, 0), ("withdraw", 0, 0, 103, 0),
             ("withdraw", 0, 0, 10, 0)],
        ),
    }  # fmt: skip
    trips = [(0, 0, 100_000), (1, 1, 50_000)]
    epochs = [(trips, epoch == 2, *actions.get(epoch, quiet)) for epoch in range(1, 11)]
    return Scenario([3_000_000, 1_000_000], 2, False, 1_000, 3, 3, epochs)


@settings(
    max_examples=6,
    deadline=None,
    # ``node`` is a constant description of the chain; each example makes its own ledger with ``ledger_on``
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(scenarios(max_epochs=4, max_early=2, max_late=3))
def test_on_chain_claims_and_withdrawals_never_pay_out_more_than_was_deposited(node: Node, s: Scenario) -> None:
    with ledger_on(node) as ledger:
        world = run_scenario(s, ledger)
        assert ledger.clearing.last_epoch() == len(s.epochs)
        assert ledger.token.balance_of(world.contract()) == STRAY


def test_around_the_ring_the_chain_pays_and_refuses_as_the_fake_does(node: Node) -> None:
    scenario = around_the_ring()
    with ledger_on(node) as ledger:
        on_chain = run_scenario(scenario, ledger)
    in_memory = run_scenario(scenario, FakeLedger())

    assert on_chain.outcomes == in_memory.outcomes
    refusals = {outcome for outcome in on_chain.outcomes if isinstance(outcome, str)}
    assert refusals == {
        NOT_FINAL, FORGOTTEN, NOT_LATEST_FINAL, WRONG_PROOF, NOTHING_TO_CLAIM, ABOVE_REQUESTED, ABOVE_UNSPENT
    }  # fmt: skip


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.integers(1, 3_000_000), min_size=1, max_size=4),
    st.lists(ROGUE_BOOKS, min_size=1, max_size=3),
    st.randoms(use_true_random=False),
)
def test_on_chain_whatever_roots_the_operator_commits_nothing_beyond_the_deposits_is_paid(
    node: Node, deposits: list[int], books: list[dict[int, tuple[int, int]]], rng: random.Random
) -> None:
    with ledger_on(node) as ledger:
        world = run_rogue_operator(deposits, books, rng, ledger, [*ledger.riders, ledger.zone, ledger.stranger])
        totals = ledger.clearing.totals()
        assert ledger.token.balance_of(world.contract()) == sum(deposits) + STRAY - totals.claimed_total - (
            totals.withdrawn_total
        )
