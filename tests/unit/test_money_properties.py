"""Issue 9's "done when", as properties: the clearing contract never pays out more than riders deposited.

Both properties are ``tests/money_scenarios.py``'s, run here on ``FakeClearing`` over ``FakeToken``;
tests/integration/test_clearing_properties.py runs them on the Vyper contract. The first: random trips, claims
and withdrawals, each checked against an oracle of the contract's rules (what it pays, or why it is refused).
The second lets the operator commit any roots at all: whatever the leaves say, nothing is paid out beyond what
was deposited.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.address import Address
from tests.money_scenarios import ROGUE_BOOKS, FakeLedger, Scenario, run_rogue_operator, run_scenario, scenarios

ROGUE_ACCOUNTS = [*FakeLedger.riders, *(Address(bytes([0x44 + i] * 20)) for i in range(2))]  # and two more


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_claims_and_withdrawals_never_pay_out_more_than_was_deposited(s: Scenario) -> None:
    run_scenario(s, FakeLedger())


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 3_000_000), min_size=1, max_size=4),
    st.lists(ROGUE_BOOKS, min_size=1, max_size=3),
    st.randoms(use_true_random=False),
)
def test_whatever_roots_the_operator_commits_nothing_beyond_the_deposits_is_paid(
    deposits: list[int], books: list[dict[int, tuple[int, int]]], rng: random.Random
) -> None:
    run_rogue_operator(deposits, books, rng, FakeLedger(), ROGUE_ACCOUNTS)
