"""The sender on anvil: a dropped or stuck transaction, a second sender on the account, and reorgs found.

Each test runs on its own anvil (mining switched off and on, snapshots reverted) with a fresh funded account, and
drives the sender's waits with a fake clock whose ``sleep`` acts on the node, so nothing waits for real.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account

from sensors.address import Address
from settlement.chain.finality import Finality, Status, classify, track
from settlement.chain.nonces import NotMined
from settlement.chain.sender import Sender
from settlement.chain.token import Web3Token
from tests import services

pytestmark = pytest.mark.services

RIDER = Address(bytes([0x42] * 20))


@dataclass
class Clock:
    """A fake monotonic clock for the sender; ``sleep`` moves it on and then runs ``on_sleep``."""

    now: float = 0.0
    on_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[str]:
    """An anvil for this module alone: its tests switch mining off and revert snapshots."""
    with services.anvil() as url:
        yield url


@pytest.fixture()
def key(request: pytest.FixtureRequest) -> str:
    """A fresh account's private key for each test."""
    return "0x" + hashlib.sha256(request.node.name.encode()).hexdigest()


@pytest.fixture()
def token(own_anvil: str, key: str) -> Iterator[Web3Token]:
    """A euro token deployed by a fresh funded account, its sender on a fake clock; mining back on afterwards."""
    sender = Sender.connect(own_anvil, timeout=30)
    rpc(sender, "anvil_setBalance", Account.from_key(key).address, hex(10**20))
    token = Web3Token(sender.with_key(key))
    token.deploy()
    clock = Clock()
    token.sender.clock, token.sender.sleep = clock, clock.sleep
    yield token
    rpc(sender, "evm_setAutomine", True)


def rpc(sender: Sender, method: str, *params: Any) -> Any:
    response = sender.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def clock_of(token: Web3Token) -> Clock:
    assert isinstance(token.sender.clock, Clock)
    return token.sender.clock


def only_flight_hashes(sender: Sender) -> list[str]:
    [flight] = sender.nonces.in_flight.values()
    return flight.hashes


def test_after_a_dropped_transaction_the_next_send_takes_its_nonce_instead_of_queueing_behind_it(
    token: Web3Token,
) -> None:
    sender = token.sender
    rpc(sender, "evm_setAutomine", False)
    sender.timeout = 1
    with pytest.raises(NotMined, match="not mined within 1s"):
        token.mint(RIDER, 1)
    [dropped] = only_flight_hashes(sender)
    dropped_nonce = sender.w3.eth.get_transaction(dropped)["nonce"]  # type: ignore[arg-type]
    rpc(sender, "anvil_dropTransaction", dropped)
    rpc(sender, "evm_setAutomine", True)
    sender.timeout = 30

    receipt = token.mint(RIDER, 2)

    # the gap is filled, not queued behind: its nonce is the dropped one and nothing waits in the pool
    assert sender.w3.eth.get_transaction(receipt.tx_hash)["nonce"] == dropped_nonce  # type: ignore[arg-type]
    assert sender.pending_nonce() == sender.mined_nonce() == dropped_nonce + 1
    assert token.balance_of(RIDER) == 2


def test_a_transaction_dropped_while_waiting_is_sent_again_and_mined_once(token: Web3Token) -> None:
    sender = token.sender
    sender.stuck_after = 1
    dropped: list[str] = []

    def node() -> None:
        hashes = only_flight_hashes(sender)
        if not dropped:
            dropped.append(hashes[-1])
            rpc(sender, "anvil_dropTransaction", hashes[-1])
        elif hashes[-1] != dropped[0]:
            rpc(sender, "evm_mine")

    rpc(sender, "evm_setAutomine", False)
    clock_of(token).on_sleep = node

    receipt = token.mint(RIDER, 5)

    assert receipt.tx_hash != dropped[0]
    assert token.balance_of(RIDER) == 5


def test_a_stuck_transaction_is_replaced_at_its_nonce_with_fees_raised_by_an_eighth(token: Web3Token) -> None:
    assert_stuck_mint_is_replaced(token)


def test_a_stuck_transaction_of_the_node_s_unlocked_account_is_replaced_too(token: Web3Token) -> None:
    unlocked = Web3Token(Sender.connect(token.url, stuck_after=1))
    unlocked.attach(str(token.address))
    token.set_minter(unlocked.account, True)
    clock = Clock()
    unlocked.sender.clock, unlocked.sender.sleep = clock, clock.sleep

    assert_stuck_mint_is_replaced(unlocked)


def assert_stuck_mint_is_replaced(token: Web3Token) -> None:
    sender = token.sender
    sender.stuck_after = 1
    first: list[dict[str, Any]] = []

    def node() -> None:
        hashes = only_flight_hashes(sender)
        if not first:
            first.append(dict(sender.w3.eth.get_transaction(hashes[0])))  # type: ignore[arg-type]
        if len(hashes) > 1:
            rpc(sender, "evm_mine")

    rpc(sender, "evm_setAutomine", False)
    clock_of(token).on_sleep = node
    before = token.balance_of(RIDER)

    receipt = token.mint(RIDER, 7)

    mined = sender.w3.eth.get_transaction(receipt.tx_hash)  # type: ignore[arg-type]
    assert receipt.tx_hash != first[0]["hash"].to_0x_hex()
    assert mined["nonce"] == first[0]["nonce"]
    assert mined["maxFeePerGas"] * 8 >= first[0]["maxFeePerGas"] * 9
    assert mined["maxPriorityFeePerGas"] * 8 >= first[0]["maxPriorityFeePerGas"] * 9
    assert not sender.known(first[0]["hash"].to_0x_hex())  # the pool let the replacement in its place
    assert token.balance_of(RIDER) == before + 7


def test_two_senders_on_one_account_take_turns_without_a_nonce_error(token: Web3Token, key: str) -> None:
    twin = Web3Token(Sender.connect(token.url, key))
    twin.attach(str(token.address))  # another aggregator process: the same key, its own nonce counter

    for amount in (1, 2, 3):
        token.mint(RIDER, amount)
        twin.mint(RIDER, 10 * amount)

    assert token.balance_of(RIDER) == 66


def test_a_sent_transaction_goes_from_pending_to_confirmed_to_final(token: Web3Token) -> None:
    sender = token.sender
    rpc(sender, "evm_setAutomine", False)
    sender.timeout = 1
    with pytest.raises(NotMined):
        token.mint(RIDER, 1)
    [sent] = only_flight_hashes(sender)
    assert track(sent, sender, final_after=3) == Finality(Status.PENDING)

    rpc(sender, "evm_mine")
    confirmed = track(sent, sender, final_after=3)
    rpc(sender, "anvil_mine", 2)
    final = track(sent, sender, final_after=3)

    assert (confirmed.status, confirmed.confirmations) == (Status.CONFIRMED, 1)
    assert (final.status, final.confirmations) == (Status.FINAL, 3)
    assert final.receipt is not None and final.receipt.tx_hash == sent


def test_a_reorg_that_takes_a_final_transaction_away_is_found_and_the_sender_resends_at_its_nonce(
    token: Web3Token,
) -> None:
    sender = token.sender
    snapshot = rpc(sender, "evm_snapshot")
    recorded = token.mint(RIDER, 100)
    rpc(sender, "anvil_mine", 2)
    assert classify(recorded, sender, final_after=3) == Finality(Status.FINAL, 3, recorded)

    rpc(sender, "evm_revert", snapshot)
    other = token.mint(RIDER, 1)  # the other fork: another transaction at the same height and nonce
    rpc(sender, "anvil_mine", 3)

    assert other.block_number == recorded.block_number and other.block_hash != recorded.block_hash
    assert classify(recorded, sender, final_after=3) == Finality(Status.REORGED)
    assert classify(other, sender, final_after=3).status is Status.FINAL
    assert token.balance_of(RIDER) == 1


def test_a_transaction_mined_again_in_another_block_after_a_reorg_is_reorged_with_its_new_receipt(
    token: Web3Token,
) -> None:
    sender = token.sender
    snapshot = rpc(sender, "evm_snapshot")
    recorded = token.mint(RIDER, 9)
    raw = sender.w3.eth.get_raw_transaction(recorded.tx_hash)  # type: ignore[arg-type]

    rpc(sender, "evm_revert", snapshot)
    rpc(sender, "evm_mine")
    sender.w3.eth.send_raw_transaction(raw)  # as a node re-includes a reorged-out transaction

    result = classify(recorded, sender, final_after=1)
    assert result.status is Status.REORGED
    assert result.receipt is not None and result.receipt.tx_hash == recorded.tx_hash
    assert result.receipt.block_number == recorded.block_number + 1
    assert classify(result.receipt, sender, final_after=1).status is Status.FINAL
