"""Why a mined transaction reverted, as the sender reports it, on py-evm and anvil: the reason of its own block.

The clearing contract's rules that turn on ``block.number`` (an epoch final ``challenge_blocks`` after its commit,
a withdrawal ready ``withdraw_delay_blocks`` after its request) show whether the reason is the one the transaction
met in the block it was mined in or the one a replay in another block gives. anvil reports it from its trace of
the transaction; py-evm, which has none, from a replay at the end of the transaction's own block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from eth_abi import abi

from sensors.address import Address
from settlement.chain.clearing import Web3Clearing
from settlement.chain.sender import failure_text
from settlement.chain.token import Web3Token
from settlement.clearing import (
    ABOVE_REQUESTED,
    EPOCH_FINAL,
    NOT_FINAL,
    NOT_READY,
    WRONG_PROOF,
    BalanceProof,
    ClearingCommit,
)
from settlement.errors import ChainError
from tests.integration.nodes import Node

CHALLENGE, DELAY = 3, 3  # blocks


@dataclass
class Chain:
    token: Web3Token
    clearing: Web3Clearing  # deployed by the token's owner, who is also the rider here

    @property
    def me(self) -> Address:
        return self.clearing.account

    def mine_until(self, block: int) -> None:
        """Mine empty blocks until the head is ``block``: the next transaction is mined in ``block + 1``."""
        assert self.clearing.head() <= block
        while self.clearing.head() < block:
            self.token.sender.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def refusal(self, send: Callable[[], object]) -> str:
        """The ``ChainError`` that ``send`` raises."""
        with pytest.raises(ChainError) as refused:
            send()
        return str(refused.value)


@pytest.fixture()
def chain(node: Node) -> Chain:
    token = Web3Token.connect(node.url, private_key=node.first_key, timeout=10)
    token.deploy()
    clearing = Web3Clearing(token.sender)
    clearing.deploy(str(token.address), CHALLENGE, DELAY)
    return Chain(token, clearing)


def first_epoch(chain: Chain) -> int:
    """Commit an epoch in which nothing was spent; the block it was committed in."""
    commit = ClearingCommit(1, bytes([0xAB] * 32), bytes([0xCD] * 32), bytes([0xEF] * 32), 1, 0, 0)
    return chain.clearing.commit(commit).block_number


def test_a_withdrawal_mined_in_the_block_it_becomes_ready_is_refused_for_the_rule_it_breaks_there(
    chain: Chain,
) -> None:
    chain.token.mint(chain.me, 1_000)
    chain.clearing.approve(1_000)
    chain.clearing.deposit(1_000)
    chain.clearing.request_withdrawal(100)
    ready = chain.clearing.requested(chain.me)[1]
    nothing = BalanceProof(1, chain.me, 0, 0, ())

    chain.mine_until(ready - 2)
    early = chain.refusal(lambda: chain.clearing.withdraw(nothing, 101))  # mined in the block before it is ready
    assert chain.clearing.head() == ready - 1
    in_time = chain.refusal(lambda: chain.clearing.withdraw(nothing, 101))  # mined in the very block it is ready
    assert chain.clearing.head() == ready

    assert early.endswith(NOT_READY)
    assert in_time.endswith(ABOVE_REQUESTED)  # a replay a block earlier said NOT_READY


def test_a_claim_mined_in_the_block_its_epoch_becomes_final_is_refused_for_its_proof(chain: Chain) -> None:
    committed = first_epoch(chain)
    forged = BalanceProof(1, chain.me, 5, 0, ())

    chain.mine_until(committed + CHALLENGE - 2)
    early = chain.refusal(lambda: chain.clearing.claim(forged))
    assert chain.clearing.head() == committed + CHALLENGE - 1
    final = chain.refusal(lambda: chain.clearing.claim(forged))
    assert chain.clearing.head() == committed + CHALLENGE

    assert early.endswith(NOT_FINAL)
    assert final.endswith(WRONG_PROOF)  # a replay a block earlier said NOT_FINAL


def test_a_retraction_mined_in_the_block_its_epoch_becomes_final_is_refused_as_too_late(chain: Chain) -> None:
    committed = first_epoch(chain)

    chain.mine_until(committed + CHALLENGE - 1)
    refused = chain.refusal(lambda: chain.clearing.retract(1))

    assert chain.clearing.head() == committed + CHALLENGE
    assert refused == f"retract_epoch reverted: {EPOCH_FINAL}"  # a replay a block earlier did not revert
    assert chain.clearing.last_epoch() == 1


def test_a_transaction_out_of_gas_is_reported_so(chain: Chain) -> None:
    sender = chain.token.sender
    token = sender.contract("euro_token", str(chain.token.address))
    mint = token.functions.mint(chain.me.checksum, 5)  # a first mint to a holder takes ~70k

    refused = chain.refusal(lambda: sender.send(mint, 30_000, "mint"))

    assert refused.startswith("mint reverted: ")
    assert "out of gas" in refused.lower()  # a replay with the node's default gas did not revert
    assert chain.token.balance_of(chain.me) == 0


def test_the_failure_text_of_revert_data() -> None:
    reason = bytes.fromhex("08c379a0") + abi.encode(["string"], ["clearing: epoch not final"])

    assert failure_text("execution reverted", reason) == "clearing: epoch not final"
    assert failure_text("execution reverted", reason, "what the node decoded") == "clearing: epoch not final"
    assert failure_text("execution reverted", b"") == "no reason given"
    assert failure_text("execution reverted", b"", "the node's reason") == "the node's reason"
    assert failure_text("execution reverted", bytes.fromhex("4e487b71") + bytes(32)) == (
        "execution reverted with data 0x4e487b71" + "00" * 32
    )
    assert failure_text("out of gas", b"") == "out of gas"
