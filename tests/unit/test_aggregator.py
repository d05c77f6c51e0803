"""The aggregator on fakes of its ports: trust, bounds, ordering and poison messages, without a database."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from sensors.codec import channel_of, encode
from sensors.messages import EventType, Message, Position, VehicleKind
from settlement.aggregator import Aggregator
from settlement.clearing import FakeClearing
from settlement.enrolment import enrol, revoke, trust_operator
from settlement.lifecycle import EpochStatus, TripStatus
from settlement.memory import MemoryState, MemoryUnitOfWork
from tests.money import committed, earnings, fake_money, fund_fake
from tests.signed import OPERATOR, RIDER, SignedFleet, key_of, payee_of

T0 = 1_780_000_000_000


def make(state: MemoryState, fleet: SignedFleet, *, fail_on: tuple[int, ...] = ()) -> tuple[Aggregator, FakeClearing]:
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state, fail_on)  # noqa: E731
    chain, money = fake_money()
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=0.0, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    fund_fake(chain, [RIDER])
    return aggregator, chain


def codes(state: MemoryState) -> list[str]:
    return [str(r.code) for r in state.rejects]


def test_an_in_order_trip_is_priced_and_settled_to_the_registered_payee(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=10, metres=2000)])
    trip = state.trips["bike-1:1"]
    assert trip.status is TripStatus.PRICED and trip.payee == payee_of("bike-1")
    assert aggregator.settle_due(force=True) == [1]
    assert state.trips["bike-1:1"].status is TripStatus.COMMITTED
    assert state.epochs[1].status is EpochStatus.COMMITTED
    assert earnings(chain, state)[payee_of("bike-1")] == trip.fare.total_micro if trip.fare else False
    assert state.epochs[1].commit.registry_root == aggregator.registry_root != bytes(32)
    assert chain.trips_root(1) == state.epochs[1].commit.trips_root


def test_a_state_naming_an_owner_is_dead_lettered_and_the_payee_stays_the_registered_one(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, chain = make(state, fleet)
    attacker = "0x" + "ab" * 20
    forged = {"v": 1, "vehicle_id": "bike-1", "operator": OPERATOR, "timestamp": T0, "online": True,
              "owner": attacker}  # fmt: skip
    aggregator.handle([fleet.received(fleet.state("bike-1", T0), payload=json.dumps(forged).encode())])
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=10, metres=2000)])
    aggregator.settle_due(force=True)
    assert codes(state) == ["schema"]
    assert set(earnings(chain, state)) == {payee_of("bike-1")}
    assert state.vehicles["bike-1"].owner == payee_of("bike-1")


def test_a_forged_trip_of_a_made_up_vehicle_is_rejected_and_nothing_is_paid(state: MemoryState) -> None:
    fleet = SignedFleet()
    aggregator, chain = make(state, fleet)
    ghost = SignedFleet(vehicles={"ghost-1": fleet.vehicles["bike-1"]})
    result = aggregator.handle([ghost.received(e) for e in ghost.trip("ghost-1", 1, T0, minutes=10, metres=500)])
    aggregator.settle_due(force=True)
    assert result.rejected == 2 and codes(state) == ["unknown_vehicle"] * 2
    assert state.trips == {} and earnings(chain, state) == {}


def test_an_event_signed_by_another_vehicles_key_is_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    forged = fleet.event("bike-1", 1, EventType.UNLOCK, T0, key=key_of("bike-2"))
    aggregator.handle([fleet.received(forged)])
    assert codes(state) == ["bad_signature"] and state.events == {}


def test_an_event_without_a_signature_is_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    event = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    body = json.loads(encode(event))
    del body["sig"]
    aggregator.handle([fleet.received(event, payload=json.dumps(body).encode())])
    assert codes(state) == ["missing_signature"]


def test_a_tampered_event_fails_its_signature(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    lock = fleet.event("bike-1", 2, EventType.LOCK, T0 + 60_000, 1500, trip_seq=1)
    body = json.loads(encode(lock))
    body["odometer_m"] = 10**12
    aggregator.handle([fleet.received(lock, payload=json.dumps(body).encode())])
    assert codes(state) == ["bad_signature"]


def test_a_replayed_event_is_stored_once_and_an_old_replay_is_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    unlock = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    aggregator.handle([fleet.received(unlock)])
    again = aggregator.handle([fleet.received(unlock)])
    assert again.duplicates == 1 and len(state.events) == 1
    far = fleet.telemetry("bike-1", 10_000, T0 + 1000)
    aggregator.handle([fleet.received(far)])
    aggregator.handle([fleet.received(unlock)])
    assert codes(state) == ["stale_seq"] and len(state.events) == 1


def test_a_revoked_device_is_refused_from_then_on(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    assert revoke(aggregator.uow, "bike-2", T0 + 1) == 1
    aggregator.refresh_registry(force=True)
    aggregator.handle([fleet.received(fleet.event("bike-2", 1, EventType.UNLOCK, T0 + 5))])
    assert codes(state) == ["revoked_device"]


def test_an_odometer_beyond_a_bigint_is_rejected_at_decode_and_the_rest_flows(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, _ = make(state, fleet)
    bad = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    body = json.loads(encode(bad))
    body["odometer_m"] = 10**19
    good = fleet.trip("bike-2", 1, T0, minutes=5, metres=900)
    aggregator.handle([fleet.received(bad, payload=json.dumps(body).encode()), *map(fleet.received, good)])
    assert codes(state) in (["out_of_range"], ["schema"])
    assert state.trips["bike-2:1"].status is TripStatus.PRICED
    assert fleet.acks.count == 3


def test_a_reported_speed_of_500_km_h_is_rejected_and_100_km_h_on_a_bike_too(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, _ = make(state, fleet)
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", 1, T0, speed_mps=500 / 3.6))])
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", 2, T0, speed_mps=100 / 3.6))])
    assert codes(state) == ["schema", "implausible_speed"]


def test_a_trip_at_500_km_h_is_held_as_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("car-1", 1, T0, minutes=6, metres=50_000)])
    trip = state.trips["car-1:1"]
    assert (trip.status, trip.reason) == (TripStatus.REJECTED, "trip_too_fast")
    aggregator.settle_due(force=True)
    assert earnings(chain, state) == {}


def test_a_lock_three_days_after_its_unlock_is_held_as_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=3 * 24 * 60, metres=2000)])
    assert state.trips["bike-1:1"].reason == "trip_too_long"


def test_a_forged_odometer_jump_of_10_15_m_is_never_priced(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=30, metres=10**15)])
    assert codes(state) == ["implausible_odometer"]
    assert state.trips["bike-1:1"].status is TripStatus.OPEN
    aggregator.settle_due(force=True)
    assert earnings(chain, state) == {}


def test_a_bike_trip_of_500_km_is_held_as_too_far(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=11 * 60, metres=500_000)])
    assert (state.trips["bike-1:1"].status, state.trips["bike-1:1"].reason) == (TripStatus.REJECTED, "trip_too_far")
    aggregator.settle_due(force=True)
    assert earnings(chain, state) == {}


def test_unlock_twice_holds_the_first_trip_with_its_reason(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    first = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    second = fleet.trip("bike-1", 2, T0 + 60_000, minutes=5, metres=800)
    aggregator.handle([fleet.received(m) for m in (first, *second)])
    assert (state.trips["bike-1:1"].status, state.trips["bike-1:1"].reason) == (TripStatus.REJECTED, "unlock_twice")
    assert state.trips["bike-1:2"].status is TripStatus.PRICED


def test_a_lock_with_no_unlock_is_held_as_no_unlock_once_overdue(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    aggregator.handle([fleet.received(fleet.event("bike-1", 5, EventType.LOCK, T0, trip_seq=4))])
    assert state.trips["bike-1:4"].status is TripStatus.OPEN
    aggregator.handle([fleet.received(fleet.event("bike-2", 1, EventType.FAULT, T0 + 14 * 3_600_000))])
    assert aggregator.expire_open() == 1
    assert (state.trips["bike-1:4"].status, state.trips["bike-1:4"].reason) == (TripStatus.REJECTED, "no_unlock")


def test_a_payload_naming_another_vehicle_than_its_topic_is_rejected(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    event = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    aggregator.handle([fleet.received(event, topic="smartzone/v1/op-test/bike-2/event")])
    assert codes(state) == ["topic_mismatch"]


def test_events_out_of_order_give_the_trips_of_the_in_order_run(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    u1 = fleet.event("bike-1", 1, EventType.UNLOCK, T0, 1000)
    l2 = fleet.event("bike-1", 2, EventType.LOCK, T0 + 600_000, 3000, trip_seq=1)
    u3 = fleet.event("bike-1", 3, EventType.UNLOCK, T0 + 900_000, 3000)
    l4 = fleet.event("bike-1", 4, EventType.LOCK, T0 + 1_500_000, 4500, trip_seq=3)
    for event in (u1, l4, l2, u3):  # the order of the issue
        aggregator.handle([fleet.received(event)])
    trips = {t.trip_id: (t.start.seq if t.start else None, t.end.seq if t.end else None, t.distance_m)
             for t in state.trips.values()}  # fmt: skip
    assert trips == {"bike-1:1": (1, 2, 2000), "bike-1:3": (3, 4, 1500)}
    assert all(t.status is TripStatus.PRICED for t in state.trips.values())


def test_one_message_the_store_refuses_is_dead_lettered_and_the_rest_of_its_batch_is_stored(
    state: MemoryState, fleet: SignedFleet
) -> None:
    aggregator, _ = make(state, fleet, fail_on=(7,))
    poison = fleet.event("bike-2", 7, EventType.FAULT, T0)
    batch = [*fleet.trip("bike-1", 1, T0, minutes=5, metres=900), poison]
    result = aggregator.handle([fleet.received(m) for m in batch])
    assert codes(state) == ["store_error"] and result.rejected == 1
    assert state.trips["bike-1:1"].status is TripStatus.PRICED
    assert fleet.acks.count == 3


def test_owners_parsed_from_differently_cased_text_get_one_payout(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, chain = make(state, fleet)
    for i, vehicle in enumerate(("bike-1", "bike-2")):
        aggregator.handle([fleet.received(e) for e in fleet.trip(vehicle, 1, T0 + i, minutes=5, metres=900)])
    aggregator.settle_due(force=True)
    payouts = state.epochs[1].epoch.payouts
    assert len({owner for owner, _ in payouts}) == len(payouts) == 2


def test_a_gateway_state_must_be_signed_by_its_operator(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    good = fleet.state("_fleet", T0, online=False, key=None)
    aggregator.handle([fleet.received(good)])
    assert codes(state) == ["bad_signature"]


def test_a_state_of_a_vehicle_signed_by_its_device_sets_it_online(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    aggregator.handle([fleet.received(fleet.state("bike-1", T0))])
    assert state.vehicles["bike-1"].online is True
    assert codes(state) == []


def test_a_signed_position_out_of_the_world_is_refused_at_decode(state: MemoryState, fleet: SignedFleet) -> None:
    aggregator, _ = make(state, fleet)
    event = fleet.event("bike-1", 1, EventType.UNLOCK, T0, position=Position(95.0, 4.0))
    aggregator.handle([fleet.received(event)])
    assert codes(state) == ["schema"]


def test_a_second_run_of_the_same_seeded_fleet_is_not_taken_for_a_replay(state: MemoryState) -> None:
    from sensors.ports import Received
    from sensors.topics import topic_for
    from simulator.fleet import Fleet, FleetConfig
    from smartzone.parts import rider_metering

    def run(first_seq: int, start_ms: int) -> tuple[list[Received], set[str]]:
        config = FleetConfig(vehicles=4, seed=3, operator=OPERATOR, first_seq=first_seq, faults_per_hour=0)
        fleet = Fleet(config, metering=rider_metering())
        messages: list[Message] = [*fleet.birth_messages(start_ms)]
        for minute in range(1, 61):
            messages += fleet.step(start_ms + minute * 60_000)
        messages += fleet.finish(start_ms + 3_600_000)
        items = [Received(topic_for(m.operator, m.vehicle_id, channel_of(m)), encode(m), 0.0) for m in messages]
        return items, {t.trip_id for t in fleet.completed_trips}

    fleet = Fleet(FleetConfig(vehicles=4, seed=3, operator=OPERATOR))
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(0), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    first, first_trips = run(1_000, T0)
    second, second_trips = run(1_000_000, T0 + 86_400_000)
    aggregator.handle(first)
    aggregator.handle(second)
    priced = {t.trip_id for t in state.trips.values() if t.status is TripStatus.PRICED}
    assert first_trips and second_trips and priced == first_trips | second_trips
    assert codes(state) == []


def test_enrolling_a_fleet_file_twice_or_with_a_repeated_line_adds_each_vehicle_once(state: MemoryState) -> None:
    fleet = SignedFleet()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    registrations = fleet.registrations()
    assert enrol(uow, [*registrations, registrations[0]], fleet.domain, T0) == (3, 1)
    assert enrol(uow, registrations, fleet.domain, T0) == (0, 3)


def test_two_overlapping_registrations_in_one_batch_are_refused_and_none_is_added(state: MemoryState) -> None:
    from settlement.registry import RegistryError

    fleet = SignedFleet()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    first, later = fleet.registrations(0)[0], fleet.registrations(1000)[0]
    with pytest.raises(RegistryError, match="overlap"):
        enrol(uow, [first, later], fleet.domain, T0)
    assert state.registry == {}


def test_telemetry_that_jumps_farther_than_its_vehicle_can_move_is_rejected(
    state: MemoryState, fleet: SignedFleet
) -> None:
    from dataclasses import replace

    aggregator, _ = make(state, fleet)
    first = fleet.telemetry("bike-1", 1, T0, odometer=1000)
    teleported = replace(fleet.telemetry("bike-1", 2, T0 + 10_000, odometer=1040), position=Position(51.30, 4.39))
    rolled_back = fleet.telemetry("bike-1", 3, T0 + 20_000, odometer=900)
    plausible = fleet.telemetry("bike-1", 4, T0 + 30_000, odometer=1080)
    aggregator.handle([fleet.received(m) for m in (first, teleported, rolled_back, plausible)])
    assert codes(state) == ["implausible_speed", "implausible_odometer"]
    assert sorted(seq for _, seq in state.telemetry) == [1, 4]


def test_a_flood_from_unknown_vehicles_costs_one_registry_look_a_batch_and_a_new_vehicle_gets_in_at_once(
    state: MemoryState,
) -> None:
    looks = [0]

    class CountingLooks(MemoryUnitOfWork):
        def __enter__(self) -> CountingLooks:
            super().__enter__()
            version = self.registry.version

            def counted() -> tuple[int, ...]:
                looks[0] += 1
                return version()

            self.registry.version = counted  # type: ignore[method-assign]
            return self

    clock = [T0 / 1000]
    fleet = SignedFleet(vehicles={"bike-1": VehicleKind.BIKE})
    uow: Callable[[], MemoryUnitOfWork] = lambda: CountingLooks(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, clock=lambda: clock[0])
    aggregator.attach_contract()
    ghosts = SignedFleet(vehicles={f"ghost-{i}": VehicleKind.BIKE for i in range(200)})
    flood = [ghosts.received(ghosts.event(v, 1, EventType.UNLOCK, T0)) for v in ghosts.vehicles]
    clock[0] += 5
    looks[0] = 0
    aggregator.handle(flood)
    aggregator.handle(flood)
    assert looks[0] <= 3  # one per batch and the periodic poll: not one per message (400)
    late = SignedFleet(vehicles={"bike-9": VehicleKind.BIKE})
    enrol(uow, late.registrations(), late.domain, T0)  # registered by another process a moment ago
    aggregator.handle([late.received(late.event("bike-9", 1, EventType.UNLOCK, T0))])
    assert codes(state).count("unknown_vehicle") == 400 and len(codes(state)) == 400
    assert ("bike-9", 1) in state.events


def test_with_a_clock_skew_set_a_reading_from_the_future_is_refused(state: MemoryState, fleet: SignedFleet) -> None:
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, max_clock_skew_ms=60_000, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", 1, T0 + 30_000))])
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", 2, T0 + 600_000))])
    assert codes(state) == ["future_timestamp"]
    assert [seq for _, seq in state.telemetry] == [1]


def test_an_epoch_id_taken_by_another_aggregator_postpones_settlement_instead_of_stopping_it(
    state: MemoryState, fleet: SignedFleet
) -> None:
    import queue
    import threading

    from settlement.errors import StoreRefused

    refusals = [1]

    class RaceLost(MemoryUnitOfWork):
        """The first epoch insert meets the id another aggregator on the same database took a moment before."""

        def __enter__(self) -> RaceLost:
            super().__enter__()
            add = self.epochs.add

            def add_or_refuse(commit: object, now_ms: int) -> None:
                if refusals[0]:
                    refusals[0] -= 1
                    raise StoreRefused(f"epoch {commit.commit.epoch_id} exists")  # type: ignore[attr-defined]
                add(commit, now_ms)  # type: ignore[arg-type]

            self.epochs.add = add_or_refuse  # type: ignore[method-assign]
            return self

    uow: Callable[[], MemoryUnitOfWork] = lambda: RaceLost(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=0.0, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    fund_fake(chain, [RIDER])
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=5, metres=900)])
    stop = threading.Event()
    stop.set()
    aggregator.run(queue.Queue(), stop)  # its final maintenance meets the refusal: logged, not raised
    assert committed(chain) == [] and state.trips["bike-1:1"].status is TripStatus.PRICED
    aggregator.run(queue.Queue(), stop)  # tried again later: settled
    assert committed(chain) == [1]


def test_an_epoch_whose_trips_another_aggregator_batched_first_is_not_written(
    state: MemoryState, fleet: SignedFleet
) -> None:
    """Two aggregators on one database: the trips one chose were batched by the other before it wrote its epoch.

    Writing the epoch anyway would commit a root over trips it does not hold (and crash its settlement on the
    empty epoch); it must be left unwritten and the trips settled once, in the other's epoch.
    """
    aggregator, chain = make(state, fleet)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=10, metres=2000)])
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-2", 1, T0, minutes=5, metres=900)])

    class RacedUnitOfWork(MemoryUnitOfWork):
        """Between this aggregator's read of the priced trips and its write, another takes bike-1's trip."""

        def __enter__(self) -> MemoryUnitOfWork:
            work = super().__enter__()
            batch = work.trips.batch

            def raced(trip_ids: object, epoch_id: int, splits: object = ()) -> int:
                other = work.trips.s.trips["bike-1:1"]
                work.trips.s.trips["bike-1:1"] = replace(other, status=TripStatus.BATCHED, epoch_id=1)
                return batch(trip_ids, epoch_id, splits)  # type: ignore[arg-type]

            work.trips.batch = raced  # type: ignore[method-assign]
            return work

    aggregator.uow = lambda: RacedUnitOfWork(state)
    assert aggregator.close_epoch() is None
    assert state.epochs == {} and state.trips["bike-2:1"].status is TripStatus.PRICED
    aggregator.uow = lambda: MemoryUnitOfWork(state)
    assert aggregator.settle_due(force=True) == [1]
    assert state.epochs[1].commit.trip_count == 2 and chain.totals().spent_total == state.epochs[1].epoch.total_micro


def test_epochs_bind_their_leaves_to_the_chain_and_contract_attached_and_a_configured_contract_is_recorded(
    state: MemoryState, fleet: SignedFleet
) -> None:
    from sensors.address import Address
    from settlement.epochs import LeafContext, priced, trips_tree

    aggregator, chain = make(state, fleet)
    context = aggregator.leaf_context
    assert context == LeafContext(31337, Address.parse(chain.address or ""))
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=10, metres=2000)])
    assert aggregator.settle_due(force=True) == [1]
    assert chain.trips_root(1) == trips_tree([priced(state.trips["bike-1:1"], context.domain)], context, 1).root
    assert chain.trips_root(2) == bytes(32)

    elsewhere = MemoryState()  # another database told to settle on the same contract
    configured = Aggregator(lambda: MemoryUnitOfWork(elsewhere), chain.as_account(chain.account), clock=lambda: 0.0)
    assert configured.attach_contract(chain.address) == chain.address
    assert elsewhere.deployments == {31337: chain.address}  # so that its receipts can name the contract


def test_an_aggregator_closes_no_epoch_before_it_knows_its_contract(state: MemoryState, fleet: SignedFleet) -> None:
    from settlement.errors import ChainError

    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, signing_chain_id=fleet.domain.chain_id, clock=lambda: T0 / 1000)
    aggregator.refresh_registry(force=True)
    aggregator.handle([fleet.received(e) for e in fleet.trip("bike-1", 1, T0, minutes=10, metres=2000)])
    assert state.trips["bike-1:1"].status is TripStatus.PRICED
    with pytest.raises(ChainError, match="attach_contract"):
        aggregator.close_epoch()
