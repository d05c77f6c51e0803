"""Determinism: the same scenario with its seed and start fixed makes the same bytes, trips and settlement roots;
and at the end of a finite run every vehicle is offline, also after the aggregator has stored it all."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from sensors.ports import FakePublisher, Received
from sensors.topics import parse_topic
from settlement.aggregator import Aggregator
from settlement.enrolment import enrol, trust_operator
from settlement.lifecycle import TripStatus
from settlement.memory import MemoryState, MemoryUnitOfWork
from simulator.fleet import Fleet
from simulator.run import RunSummary, run_simulation
from simulator.scenario import Scenario, load_scenario, shipped_scenario
from smartzone.parts import REGISTERED_FROM_MS, make_fleet, scenario_plans
from smartzone.settings import Settings
from tests.money import fake_money, fund_fake

CHAIN_ID = 31337


@dataclass
class Run:
    scenario: Scenario
    fleet: Fleet
    publisher: FakePublisher
    summary: RunSummary

    def payloads_by_vehicle(self) -> dict[str, list[bytes]]:
        by: dict[str, list[bytes]] = defaultdict(list)
        for topic, payload, _, _ in self.publisher.sent:
            by[parse_topic(topic).vehicle_id].append(payload)
        return dict(by)

    @property
    def end_s(self) -> float:
        assert self.scenario.start_ms is not None
        return (self.scenario.start_ms + self.summary.sim_seconds * 1000) / 1000


def tiny() -> Scenario:
    return load_scenario(shipped_scenario("tiny"))


def simulate(scenario: Scenario) -> Run:
    assert scenario.start_ms is not None
    fleet = make_fleet(Settings(chain_id=CHAIN_ID), CHAIN_ID, scenario=scenario)
    publisher = FakePublisher()
    summary = run_simulation(
        fleet, publisher, start_ms=scenario.start_ms, duration_s=scenario.minutes * 60, speed=scenario.speed
    )
    return Run(scenario, fleet, publisher, summary)


def aggregate(run: Run, batch: int = 50) -> tuple[MemoryState, Aggregator]:
    """Everything the run published, fed in batches to an aggregator on fakes; its riders funded; all settled."""
    state = MemoryState()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    chain, money = fake_money()
    trust_operator(uow, run.fleet.config.operator, run.fleet.operator_address, REGISTERED_FROM_MS)
    enrol(uow, run.fleet.registrations(REGISTERED_FROM_MS), run.fleet.domain, REGISTERED_FROM_MS)
    aggregator = Aggregator(
        uow,
        chain,
        money=money,
        epoch_seconds=0.0,
        clock=lambda: run.end_s,
        tariffs=scenario_plans(run.scenario),
        signing_chain_id=CHAIN_ID,
    )
    aggregator.attach_contract()
    fund_fake(chain, run.fleet.riders)
    sent = run.publisher.sent
    for i in range(0, len(sent), batch):
        aggregator.handle([Received(topic, payload, run.end_s) for topic, payload, _, _ in sent[i : i + batch]])
    aggregator.settle_due(force=True)
    return state, aggregator


@pytest.fixture(scope="module")
def twice() -> tuple[Run, Run]:
    return simulate(tiny()), simulate(tiny())


def test_the_tiny_scenario_run_twice_publishes_byte_identical_payloads_in_order_per_vehicle(
    twice: tuple[Run, Run],
) -> None:
    first, second = twice
    assert first.payloads_by_vehicle() == second.payloads_by_vehicle()
    assert first.publisher.sent == second.publisher.sent
    assert first.summary.completed_trips > 0


def test_the_tiny_scenario_run_twice_makes_the_same_trip_ids(twice: tuple[Run, Run]) -> None:
    first, second = twice
    assert first.summary.trip_ids == second.summary.trip_ids
    assert [t.rider for t in first.fleet.completed_trips] == [t.rider for t in second.fleet.completed_trips]


def test_another_seed_or_start_changes_the_payloads() -> None:
    base = tiny()
    reference = simulate(base).publisher.sent
    assert simulate(base.overridden(seed=base.seed + 1)).publisher.sent != reference
    assert base.start is not None
    assert simulate(base.overridden(start=base.start + timedelta(hours=1))).publisher.sent != reference


def test_the_same_run_settles_to_the_same_trips_root_and_balances_root(twice: tuple[Run, Run]) -> None:
    (state_a, _), (state_b, _) = aggregate(twice[0]), aggregate(twice[1])
    priced = [t for t in state_a.trips.values() if t.status is TripStatus.COMMITTED]
    assert len(priced) == twice[0].summary.completed_trips, [(t.trip_id, t.status) for t in state_a.trips.values()]
    commits_a = [e.commit for e in state_a.epochs.values()]
    commits_b = [e.commit for e in state_b.epochs.values()]
    assert commits_a and all(c is not None for c in commits_a)
    assert [(c.trips_root, c.balances_root) for c in commits_a if c] == [
        (c.trips_root, c.balances_root) for c in commits_b if c
    ]
    assert state_a.rejects == []


@pytest.mark.parametrize("batch", [40, 100_000])
def test_at_the_end_of_a_finite_run_every_vehicle_is_stored_offline(twice: tuple[Run, Run], batch: int) -> None:
    run = twice[0]
    state, _ = aggregate(run, batch)
    assert {v.vehicle_id for v in state.vehicles.values()} == {v.vehicle_id for v in run.fleet.vehicles}
    assert [v.vehicle_id for v in state.vehicles.values() if v.online] == []


def test_the_last_message_of_every_vehicle_is_its_retained_offline_state(twice: tuple[Run, Run]) -> None:
    run = twice[0]
    last: dict[str, tuple[str, bytes, int, bool]] = {}
    for sent in run.publisher.sent:
        last[parse_topic(sent[0]).vehicle_id] = sent
    assert set(last) == {v.vehicle_id for v in run.fleet.vehicles}
    for topic, payload, qos, retain in last.values():
        assert parse_topic(topic).channel.value == "state" and qos == 1 and retain
        assert b'"online":false' in payload


def test_a_reading_that_arrives_after_the_offline_state_does_not_bring_the_vehicle_back(
    twice: tuple[Run, Run],
) -> None:
    run = twice[0]
    states = [s for s in run.publisher.sent if parse_topic(s[0]).channel.value == "state"]
    others = [s for s in run.publisher.sent if parse_topic(s[0]).channel.value != "state"]
    late = replace(run, publisher=FakePublisher([*states, *others]))  # telemetry and events overtaken by states
    state, _ = aggregate(late, batch=100_000)
    assert [v.vehicle_id for v in state.vehicles.values() if v.online] == []
