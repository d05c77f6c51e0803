"""Through the whole aggregator — decode, signatures, registry, unit of work, epochs — delivery order does not matter.

The pure derivation has its own property test (``test_trip_properties``); this one feeds a seeded fleet's signed
messages as bytes into ``Aggregator.handle`` on the in-memory repositories, shuffled, repeated and split into
batches, with overdue trips expired and epochs closed and settled on the fake chain in between.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.codec import channel_of, encode
from sensors.messages import Event
from sensors.ports import Received
from sensors.topics import topic_for
from settlement.aggregator import Aggregator
from settlement.enrolment import enrol, trust_operator
from settlement.lifecycle import SETTLED, TripStatus
from settlement.memory import MemoryState, MemoryUnitOfWork
from simulator.fleet import Fleet, FleetConfig
from smartzone.parts import rider_metering
from tests.money import fake_money, fund_fake

T0 = 1_790_000_000_000


@functools.cache
def seeded_run(seed: int) -> tuple[Fleet, tuple[Received, ...]]:
    """A fleet of 6 for 30 simulated minutes: its events, as the broker would deliver them in order."""
    fleet = Fleet(FleetConfig(vehicles=6, seed=seed, faults_per_hour=1.0, mean_idle_s=120.0), metering=rider_metering())
    events: list[Event] = []
    for second in range(0, 30 * 60 + 1, 5):
        events += (m for m in fleet.step(T0 + second * 1000) if isinstance(m, Event))
    events += fleet.finish(T0 + 30 * 60 * 1000 + 5000)
    items = tuple(Received(topic_for(e.operator, e.vehicle_id, channel_of(e)), encode(e), 0.0) for e in events)
    return fleet, items


def deliver(fleet: Fleet, batches: list[list[Received]], epochs_between: bool) -> tuple[dict[str, tuple], int]:
    """Every trip's (status, reason, halves, fare) after delivering ``batches``, and what the chain holds."""
    state = MemoryState()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, fleet.config.operator, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(0), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=0.0, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    fund_fake(chain, fleet.riders, 10**9)
    for batch in batches:
        aggregator.handle(batch)
        aggregator.expire_open()
        if epochs_between:
            aggregator.settle_due()
    aggregator.settle_due(force=True)
    assert state.rejects == [], [r.reason for r in state.rejects]
    trips = {
        t.trip_id: (
            TripStatus.COMMITTED if t.status in SETTLED | {TripStatus.PRICED, TripStatus.BATCHED} else t.status,
            t.reason,
            t.start,
            t.end,
            t.fare,
            t.payee,
        )
        for t in state.trips.values()
    }
    return trips, chain.totals().spent_total


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 3),
    plan=st.integers(0, 2**32),
    repeats=st.floats(0.0, 0.5),
    batch=st.integers(3, 40),
    epochs_between=st.booleans(),
)
def test_any_order_repetition_and_batching_through_the_aggregator_settles_the_same_trips(
    seed: int, plan: int, repeats: float, batch: int, epochs_between: bool
) -> None:
    fleet, items = seeded_run(seed)
    expected, expected_total = deliver(fleet, [list(items)], epochs_between=False)
    rng = random.Random(plan)
    shuffled = list(items) + [item for item in items if rng.random() < repeats]
    rng.shuffle(shuffled)
    batches = [shuffled[i : i + batch] for i in range(0, len(shuffled), batch)]
    got, total = deliver(fleet, batches, epochs_between)
    assert got == expected
    assert total == expected_total
    assert any(status is TripStatus.COMMITTED for status, *_ in expected.values())
