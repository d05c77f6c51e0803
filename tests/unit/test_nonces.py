"""The nonce rules of one account on a fake node and a fake clock: gaps, other senders, stuck transactions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.chain.nonces import (
    SUBMIT_ATTEMPTS,
    FakeAccountNode,
    Fees,
    NonceManager,
    NonceTaken,
    NotMined,
    SendPolicy,
    bump,
    send_until_mined,
)
from settlement.errors import ChainError, ChainUnavailable

POLICY = SendPolicy(timeout=30, stuck_after=10, poll=1)


@dataclass
class Clock:
    """A fake monotonic clock; ``sleep`` moves it on and runs ``on_sleep`` (what the node does meanwhile)."""

    now: float = 1_000.0
    on_sleep: Callable[[float], None] = lambda now: None
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep(self.now)


def send(node: FakeAccountNode, nonces: NonceManager, clock: Clock, tx: Any = "call") -> Any:
    return send_until_mined(node, nonces, tx, POLICY, clock, clock.sleep)


def test_the_first_send_takes_the_nonce_the_node_counts() -> None:
    node, nonces, clock = FakeAccountNode(), NonceManager(), Clock()
    for _ in range(3):
        node.take()

    receipt = send(node, nonces, clock)

    assert receipt["nonce"] == 3
    assert (nonces.next_nonce, nonces.in_flight) == (4, {})


def test_after_a_dropped_transaction_the_next_send_fills_the_gap_at_once() -> None:
    node, nonces, clock = FakeAccountNode(automine=False), NonceManager(), Clock()
    with pytest.raises(NotMined, match="not mined within 30s"):
        send(node, nonces, clock, "lost")
    [lost] = node.pool.values()
    node.drop(lost["transactionHash"])
    node.automine = True
    slept = len(clock.slept)

    receipt = send(node, nonces, clock, "next")

    assert (receipt["nonce"], receipt["tx"]) == (0, "next")
    assert clock.slept[slept:] == []  # mined on the first look, no wait behind the gap
    assert node.pending_nonce() == 1


def test_a_local_counter_ahead_of_the_node_is_kept_while_the_node_knows_its_transactions() -> None:
    class Lagging(FakeAccountNode):  # a replica that has our transaction but does not count it yet
        def pending_nonce(self) -> int:
            return self.mined_nonce()

    node, nonces = Lagging(automine=False), NonceManager()
    sent = node.submit("a", 0, node.market)
    nonces.sent(0, sent, node.market, 0.0)

    assert nonces.reserve(node) == (1, None)
    node.drop(sent)
    assert nonces.reserve(node) == (0, None)


def test_a_nonce_below_ours_without_a_known_transaction_is_a_gap_and_the_counter_falls_back() -> None:
    node, nonces = FakeAccountNode(automine=False), NonceManager(next_nonce=5)

    assert nonces.reserve(node) == (0, None)


def test_a_nonce_used_by_another_sender_is_skipped_after_the_node_refuses_it() -> None:
    node, nonces, clock = FakeAccountNode(), NonceManager(), Clock()
    send(node, nonces, clock)
    node.take()  # a second aggregator with the same key sent nonce 1; our counter still says 1
    assert nonces.next_nonce == 1

    receipt = send(node, nonces, clock)

    assert receipt["nonce"] == 2


def test_a_send_refused_for_its_nonce_again_and_again_gives_up_with_a_chain_error() -> None:
    class Refusing(FakeAccountNode):
        def submit(self, tx: Any, nonce: int, fees: Fees) -> str:
            raise NonceTaken("nonce too low")

    nonces = NonceManager()
    with pytest.raises(ChainError, match=f"refused {SUBMIT_ATTEMPTS} nonces in a row"):
        send(Refusing(), nonces, Clock())
    assert nonces.next_nonce is None


def test_a_node_gone_while_waiting_abandons_the_transaction_and_the_next_send_replaces_it() -> None:
    class Flaky(FakeAccountNode):
        down = False

        def mined(self, tx_hash: str) -> dict[str, Any] | None:
            if self.down:
                raise ChainUnavailable("http://node", "connection refused")
            return super().mined(tx_hash)

    node, nonces, clock = Flaky(automine=False), NonceManager(), Clock()
    node.down = True
    with pytest.raises(ChainUnavailable):
        send(node, nonces, clock, "first")
    assert nonces.next_nonce is None and nonces.in_flight[0].abandoned
    node.down, node.automine = False, True

    receipt = send(node, nonces, clock, "again")

    assert (receipt["nonce"], receipt["tx"]) == (0, "again")
    assert node.mined_nonce() == 1


def test_any_error_makes_the_next_send_ask_the_node_for_the_nonce() -> None:
    class Down(FakeAccountNode):
        def submit(self, tx: Any, nonce: int, fees: Fees) -> str:
            raise ChainUnavailable("http://node", "connection refused")

    nonces = NonceManager(next_nonce=7)
    with pytest.raises(ChainUnavailable):
        send(Down(), nonces, Clock())
    assert nonces.next_nonce is None


def test_a_stuck_transaction_is_replaced_at_its_nonce_with_fees_raised_by_an_eighth() -> None:
    node, nonces = FakeAccountNode(automine=False, market=Fees(1_000, 100)), NonceManager()

    def miner(now: float) -> None:  # the chain takes only transactions that pay more than today's market
        if any(t["fees"].priority_fee > 100 for t in node.pool.values()):
            node.mine()

    receipt = send(node, nonces, Clock(on_sleep=miner))

    (n1, first), (n2, second) = node.submitted
    assert n1 == n2 == receipt["nonce"] == 0
    assert second == Fees(1_125, 113) == receipt["fees"]
    assert second.max_fee * 8 >= first.max_fee * 9 and second.priority_fee * 8 >= first.priority_fee * 9  # type: ignore[operator]


def test_a_transaction_dropped_while_waiting_is_sent_again_and_mined() -> None:
    node, nonces = FakeAccountNode(automine=False), NonceManager()
    dropped: list[str] = []

    def dropper(now: float) -> None:
        if not dropped:
            [pooled] = node.pool.values()
            dropped.append(pooled["transactionHash"])
            node.drop(pooled["transactionHash"])
        elif len(node.submitted) > 1:
            node.mine()

    receipt = send(node, nonces, Clock(on_sleep=dropper), "keep")

    assert (receipt["nonce"], receipt["tx"]) == (0, "keep")
    assert receipt["transactionHash"] != dropped[0]


def test_a_nonce_taken_by_another_sender_while_waiting_moves_the_transaction_to_a_fresh_nonce() -> None:
    node, nonces = FakeAccountNode(automine=False), NonceManager()

    def rival(now: float) -> None:
        if node.mined_nonce() == 0:
            node.take()  # its transaction at nonce 0 is mined; ours is gone from the pool
        elif len(node.submitted) > 1:
            node.mine()

    receipt = send(node, nonces, Clock(on_sleep=rival), "ours")

    assert (receipt["nonce"], receipt["tx"]) == (1, "ours")


def test_a_send_never_waits_longer_than_its_timeout_and_the_next_send_replaces_it() -> None:
    node, nonces, clock = FakeAccountNode(automine=False), NonceManager(), Clock()
    start = clock.now

    with pytest.raises(NotMined, match=r"nonce 0, 2 replacements"):
        send(node, nonces, clock, "slow")

    assert clock.now - start <= POLICY.timeout
    assert nonces.in_flight[0].abandoned
    abandoned = nonces.in_flight[0].fees
    node.automine = True
    receipt = send(node, nonces, clock, "next")
    assert (receipt["nonce"], receipt["tx"]) == (0, "next")  # in place of the abandoned one, not queued behind it
    assert receipt["fees"] == node.market.outbidding(abandoned)
    assert node.pending_nonce() == 1 and nonces.in_flight == {}


def test_an_abandoned_transaction_mined_late_is_forgotten_and_the_next_nonce_follows_it() -> None:
    node, nonces, clock = FakeAccountNode(automine=False), NonceManager(), Clock()
    with pytest.raises(NotMined):
        send(node, nonces, clock, "late")
    node.mine()
    node.automine = True

    receipt = send(node, nonces, clock, "next")

    assert receipt["nonce"] == 1 and nonces.in_flight == {}


def test_the_fake_pool_refuses_a_replacement_that_does_not_outbid_by_ten_percent() -> None:
    node = FakeAccountNode(automine=False)
    node.submit("a", 0, Fees(1_000, 100))

    with pytest.raises(NonceTaken, match="underpriced"):
        node.submit("b", 0, Fees(1_099, 110))
    node.submit("b", 0, Fees(1_100, 110))
    assert [t["tx"] for t in node.pool.values()] == ["b"]


def test_legacy_fees_are_a_gas_price() -> None:
    assert Fees(5).params() == {"gasPrice": 5}
    assert Fees(5, 2).params() == {"maxFeePerGas": 5, "maxPriorityFeePerGas": 2}
    assert Fees(8).bumped() == Fees(9)
    assert Fees(100).outbidding(Fees(100)) == Fees(113)
    assert Fees(200).outbidding(Fees(100)) == Fees(200)


fee = st.integers(min_value=0, max_value=10**12)


@settings(max_examples=60, deadline=None)
@given(fee, fee, fee, fee)
def test_replacement_fees_outbid_the_old_by_an_eighth_and_never_pay_below_the_market(
    old_max: int, old_tip: int, market_max: int, market_tip: int
) -> None:
    old = Fees(max(old_max, old_tip), old_tip)
    market = Fees(max(market_max, market_tip), market_tip)

    new = market.outbidding(old)

    assert new.priority_fee is not None
    assert new.max_fee * 8 >= old.max_fee * 9 and new.max_fee > old.max_fee
    assert new.priority_fee * 8 >= old_tip * 9 and new.priority_fee > old_tip
    assert new.max_fee >= market.max_fee and new.priority_fee >= market_tip
    assert new.max_fee >= new.priority_fee
    assert bump(old_tip) <= new.priority_fee


def test_the_receipt_is_asked_for_at_once_then_at_doubling_intervals_up_to_a_ceiling_until_the_timeout() -> None:
    node, nonces, clock = FakeAccountNode(automine=False), NonceManager(), Clock()
    policy = SendPolicy(timeout=30, stuck_after=100, poll=0.5, max_poll=4)

    with pytest.raises(NotMined, match="0 replacements"):
        send_until_mined(node, nonces, "call", policy, clock, clock.sleep)

    assert clock.slept[:6] == [0.5, 1, 2, 4, 4, 4]
    assert sum(clock.slept) == 30
