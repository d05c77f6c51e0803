"""Finality of a recorded transaction on a fake chain: confirmations, final, and reorgs of every kind."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.chain.finality import FakeBlocks, Finality, Status, classify, track
from settlement.ports import ChainReceipt

TX = "0x" + "aa" * 32


def mined(chain: FakeBlocks, tx: str = TX) -> ChainReceipt:
    receipt = chain.mine(1, tx)
    assert receipt is not None
    return receipt


def test_a_transaction_just_mined_has_one_confirmation() -> None:
    chain = FakeBlocks()
    recorded = mined(chain)

    assert classify(recorded, chain, final_after=3) == Finality(Status.CONFIRMED, 1, recorded)


def test_a_transaction_is_final_once_it_has_the_confirmations_asked_for() -> None:
    chain = FakeBlocks()
    recorded = mined(chain)
    chain.mine(1)
    assert classify(recorded, chain, final_after=3).status is Status.CONFIRMED

    chain.mine(1)

    assert classify(recorded, chain, final_after=3) == Finality(Status.FINAL, 3, recorded)
    assert classify(recorded, chain, final_after=1).status is Status.FINAL


def test_a_reorg_that_drops_the_block_and_the_transaction_is_reorged_even_after_final() -> None:
    chain = FakeBlocks()
    chain.mine(2)
    recorded = mined(chain)
    chain.mine(2)
    assert classify(recorded, chain, final_after=3).status is Status.FINAL

    chain.reorg(3)
    chain.mine(5)  # a longer fork without the transaction

    assert classify(recorded, chain, final_after=3) == Finality(Status.REORGED)


def test_a_transaction_mined_again_in_another_block_is_reorged_with_its_new_receipt() -> None:
    chain = FakeBlocks()
    recorded = mined(chain)
    chain.reorg(1)
    chain.mine(1)
    again = mined(chain)

    result = classify(recorded, chain, final_after=2)

    assert (result.status, result.receipt) == (Status.REORGED, again)
    assert classify(again, chain, final_after=2).status is Status.CONFIRMED


def test_a_block_replaced_at_the_same_height_is_a_reorg_even_if_the_receipt_looks_alike() -> None:
    chain = FakeBlocks()
    recorded = mined(chain)
    chain.reorg(1)
    again = mined(chain)  # the same height, another block hash

    assert again.block_number == recorded.block_number and again.block_hash != recorded.block_hash
    assert classify(recorded, chain, final_after=1).status is Status.REORGED


def test_a_recorded_block_above_the_head_is_a_reorg() -> None:
    chain = FakeBlocks()
    chain.mine(3)
    recorded = mined(chain)
    chain.reorg(2)

    assert classify(recorded, chain, final_after=1) == Finality(Status.REORGED)


def test_a_record_whose_block_hash_the_node_does_not_hold_is_a_reorg() -> None:
    chain = FakeBlocks()
    recorded = mined(chain)
    forged = ChainReceipt(recorded.tx_hash, recorded.block_number, "0x" + "00" * 32, recorded.gas_used)

    assert classify(forged, chain, final_after=1).status is Status.REORGED


def test_a_sent_transaction_is_pending_until_mined_then_tracked_by_its_receipt() -> None:
    chain = FakeBlocks()
    assert track(TX, chain, final_after=2) == Finality(Status.PENDING)

    recorded = mined(chain)

    assert track(TX, chain, final_after=2) == Finality(Status.CONFIRMED, 1, recorded)
    chain.mine(1)
    assert track(TX, chain, final_after=2) == Finality(Status.FINAL, 2, recorded)


def test_final_after_must_be_at_least_one() -> None:
    chain = FakeBlocks()
    with pytest.raises(ValueError, match="at least 1"):
        classify(mined(chain), chain, final_after=0)


@settings(max_examples=50, deadline=None)
@given(
    before=st.integers(0, 5),
    after=st.integers(0, 8),
    depth=st.integers(0, 10),
    fork=st.integers(0, 10),
    final_after=st.integers(1, 6),
)
def test_a_transaction_counts_its_confirmations_while_its_block_stays_and_is_reorged_once_it_goes(
    before: int, after: int, depth: int, fork: int, final_after: int
) -> None:
    chain = FakeBlocks()
    chain.mine(before)
    recorded = mined(chain)
    chain.mine(after)
    depth = min(depth, chain.head())
    if depth:
        chain.reorg(depth)
    if fork:
        chain.mine(fork)

    result = classify(recorded, chain, final_after)

    if depth > after:  # the reorg reached the transaction's block
        assert result == Finality(Status.REORGED)
    else:
        confirmations = chain.head() - recorded.block_number + 1
        expected = Status.FINAL if confirmations >= final_after else Status.CONFIRMED
        assert result == Finality(expected, confirmations, recorded)
