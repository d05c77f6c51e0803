"""The in-memory chain keeps the contract's rules, so unit tests that use it meet them too."""

from __future__ import annotations

import pytest

from settlement.errors import ChainError
from settlement.ports import EpochCommit, FakeChain

ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20


def commit(epoch_id: int, total: int = 300) -> EpochCommit:
    return EpochCommit(epoch_id, bytes(32), 2, total, ((ALICE, 100), (BOB, 200)))


def test_the_fake_chain_settles_sequential_epochs_and_credits_owners() -> None:
    chain = FakeChain()

    chain.settle(commit(1))
    receipt = chain.settle(commit(2))

    assert chain.last_epoch() == 2
    assert (chain.owed(ALICE), chain.owed(BOB), chain.total_settled()) == (200, 400, 600)
    assert receipt.gas_used > 0 and len(chain.sent) == 2


@pytest.mark.parametrize("epoch_id", [1, 3])
def test_the_fake_chain_rejects_an_epoch_out_of_sequence(epoch_id: int) -> None:
    chain = FakeChain()
    chain.settle(commit(1))

    with pytest.raises(ChainError, match="out of sequence"):
        chain.settle(commit(epoch_id))
    assert chain.last_epoch() == 1 and chain.owed(ALICE) == 100


def test_the_fake_chain_rejects_payouts_that_do_not_add_up() -> None:
    chain = FakeChain()

    with pytest.raises(ChainError, match="do not add up"):
        chain.settle(commit(1, total=301))
    assert chain.last_epoch() == 0 and chain.sent == []
