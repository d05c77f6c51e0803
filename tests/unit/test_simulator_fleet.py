"""The fleet core: its config, its vehicles, owners and riders, what stepping it reports, and its signatures."""

from __future__ import annotations

from collections import Counter

import pytest

from sensors.address import Address
from sensors.messages import FLEET_GATEWAY, Event, EventType, Message, Position, Telemetry, VehicleKind, VehicleState
from sensors.registration import valid_at
from sensors.signing import Domain, address_of, signer
from simulator.fleet import Fleet, FleetConfig
from simulator.keys import device_key, operator_key
from simulator.vehicle import LOW_BATTERY_PCT, PROFILES, Vehicle

START_MS = 1_767_225_600_000


def step_through(fleet: Fleet, seconds: int, tick_s: int = 1) -> list[Message]:
    out: list[Message] = []
    for t in range(0, seconds + 1, tick_s):
        out.extend(fleet.step(START_MS + t * 1000))
    return out


def events(messages: list[Message], event_type: EventType) -> list[Event]:
    return [m for m in messages if isinstance(m, Event) and m.event_type is event_type]


def test_the_default_config_is_a_small_demo_fleet() -> None:
    config = FleetConfig()
    assert (config.vehicles, config.operator, config.owners) == (20, "smartzone-demo", 4)
    assert (config.moving_interval_s, config.parked_interval_s, config.mean_idle_s) == (5.0, 60.0, 360.0)
    assert (config.chain_id, config.sign_telemetry) == (31337, False)


@pytest.mark.parametrize(
    "bad",
    [
        {"operator": "no/slash"},
        {"vehicles": -1},
        {"owners": 0},
        {"moving_interval_s": 0},
        {"faults_per_hour": -1.0},
        {"mix": ((VehicleKind.BIKE, 0.0),)},
        {"chain_id": 0},
    ],
)
def test_a_config_that_cannot_work_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FleetConfig(**bad)  # type: ignore[arg-type]


def test_kinds_are_apportioned_to_the_mix_and_numbered_in_the_ids() -> None:
    fleet = Fleet(FleetConfig(vehicles=10, seed=1))
    assert Counter(v.kind for v in fleet.vehicles) == {
        VehicleKind.BIKE: 5,
        VehicleKind.EBIKE: 3,
        VehicleKind.CAR: 2,
    }
    for number, v in enumerate(fleet.vehicles, start=1):
        assert v.vehicle_id == f"{v.kind.value}-{number:04d}"


def test_only_vehicles_with_a_motor_have_a_battery() -> None:
    fleet = Fleet(FleetConfig(vehicles=30, seed=2))
    for v in fleet.vehicles:
        assert (v.battery is None) == (v.kind is VehicleKind.BIKE)


def test_births_name_every_vehicle_online_with_its_kind_and_no_owner() -> None:
    config = FleetConfig(vehicles=12, seed=3, owners=4)
    fleet = Fleet(config)
    births = fleet.birth_messages(START_MS)
    assert [b.vehicle_id for b in births] == [v.vehicle_id for v in fleet.vehicles]
    assert all(b.online and b.kind is not None and b.timestamp == START_MS for b in births)
    assert not any(s.online for s in fleet.offline_messages(START_MS + 1))


def test_owners_are_addresses_shared_out_over_the_vehicles_and_riders_are_checksummed_addresses() -> None:
    config = FleetConfig(vehicles=12, seed=3, owners=4, riders=9)
    fleet = Fleet(config)
    assert len(fleet.owners) == len(set(fleet.owners)) == config.owners
    assert all(isinstance(owner, Address) for owner in fleet.owners)
    assert {v.owner for v in fleet.vehicles} == set(fleet.owners)
    assert len(set(fleet.riders)) == config.riders
    assert all(str(Address.parse(rider)) == rider for rider in fleet.riders)


def test_the_fleets_addresses_come_from_the_keys_of_its_seed() -> None:
    a, b = Fleet(FleetConfig(vehicles=5, seed=1)), Fleet(FleetConfig(vehicles=5, seed=1))
    other = Fleet(FleetConfig(vehicles=5, seed=2))
    assert (a.owners, a.riders, a.devices, a.operator_address) == (b.owners, b.riders, b.devices, b.operator_address)
    assert not set(a.owners) & set(other.owners) and not set(a.riders) & set(other.riders)
    assert a.operator_address == address_of(operator_key(1, "smartzone-demo")) != other.operator_address
    assert a.devices == {v.vehicle_id: address_of(device_key(1, "smartzone-demo", v.vehicle_id)) for v in a.vehicles}


def test_every_event_and_state_the_fleet_emits_recovers_to_its_registered_device() -> None:
    fleet = Fleet(FleetConfig(vehicles=10, seed=4, mean_idle_s=30.0, faults_per_hour=20.0, mean_fault_s=60.0))
    registered = {r.vehicle_id: r for r in fleet.registrations(START_MS)}
    emitted: list[Message] = [*fleet.birth_messages(START_MS), *step_through(fleet, 600)]
    emitted += [*fleet.finish(START_MS + 601_000), *fleet.offline_messages(START_MS + 601_000)]
    signed = [m for m in emitted if not isinstance(m, Telemetry)]
    assert {type(m) for m in signed} == {Event, VehicleState}
    assert {m.event_type for m in signed if isinstance(m, Event)} >= {EventType.UNLOCK, EventType.LOCK, EventType.FAULT}
    for message in signed:
        registration = registered[message.vehicle_id]
        assert valid_at(registration, message.timestamp)
        assert signer(message, fleet.domain) == registration.device == fleet.devices[message.vehicle_id]
    assert all(m.signature is None for m in emitted if isinstance(m, Telemetry))


def test_telemetry_is_signed_only_when_the_setting_says_so() -> None:
    fleet = Fleet(FleetConfig(vehicles=4, seed=9, sign_telemetry=True))
    telemetry = [m for m in step_through(fleet, 120) if isinstance(m, Telemetry)]
    assert telemetry
    assert all(signer(t, fleet.domain) == fleet.devices[t.vehicle_id] for t in telemetry)


def test_signatures_are_made_for_the_configured_chain() -> None:
    fleet = Fleet(FleetConfig(vehicles=2, seed=9, chain_id=8453))
    birth = fleet.birth_messages(START_MS)[0]
    assert fleet.domain == Domain(8453)
    assert signer(birth, Domain(8453)) == fleet.devices[birth.vehicle_id]
    assert signer(birth, Domain(31337)) != fleet.devices[birth.vehicle_id]


def test_registrations_name_each_vehicles_device_and_owner_and_recover_to_the_operator() -> None:
    fleet = Fleet(FleetConfig(vehicles=7, seed=5, owners=3))
    registrations = fleet.registrations(START_MS)
    assert [r.vehicle_id for r in registrations] == [v.vehicle_id for v in fleet.vehicles]
    for registration, vehicle in zip(registrations, fleet.vehicles, strict=True):
        assert (registration.operator, registration.kind) == (vehicle.operator, vehicle.kind)
        assert (registration.device, registration.payee) == (fleet.devices[vehicle.vehicle_id], vehicle.owner)
        assert (registration.valid_from_ms, registration.valid_until_ms) == (START_MS, 0)
        assert signer(registration, fleet.domain) == fleet.operator_address
    assert len({r.device for r in registrations}) == len(registrations)
    assert fleet.operator_address not in {r.device for r in registrations}


@pytest.mark.parametrize("online", [True, False])
def test_the_gateway_state_is_signed_by_the_operator(online: bool) -> None:
    fleet = Fleet(FleetConfig(vehicles=2, seed=5))
    state = fleet.gateway_state(START_MS, online=online)
    assert (state.vehicle_id, state.operator, state.timestamp, state.online) == (
        FLEET_GATEWAY,
        fleet.config.operator,
        START_MS,
        online,
    )
    assert signer(state, fleet.domain) == fleet.operator_address


def test_a_lock_names_the_seq_of_the_unlock_it_ends_and_no_other_event_names_a_trip() -> None:
    fleet = Fleet(FleetConfig(vehicles=10, seed=4, mean_idle_s=30.0))
    messages = step_through(fleet, 900) + list(fleet.finish(START_MS + 901_000))
    unlocks = {(e.vehicle_id, e.seq): e for e in events(messages, EventType.UNLOCK)}
    locks = events(messages, EventType.LOCK)
    assert locks and len(locks) == len(unlocks)
    for lock in locks:
        assert lock.trip_seq is not None and lock.trip_seq < lock.seq
        assert unlocks[(lock.vehicle_id, lock.trip_seq)].rider == lock.rider
    assert all(e.trip_seq is None for e in messages if isinstance(e, Event) and e.event_type is not EventType.LOCK)


def test_simulated_time_may_not_go_backwards() -> None:
    fleet = Fleet(FleetConfig(vehicles=2))
    fleet.step(START_MS + 10_000)
    with pytest.raises(ValueError, match="backwards"):
        fleet.step(START_MS + 9_999)


def test_finish_locks_every_open_trip_with_its_rider() -> None:
    fleet = Fleet(FleetConfig(vehicles=20, seed=4, mean_idle_s=30.0))
    step_through(fleet, 120)
    open_trips = fleet.open_trips()
    assert open_trips
    locks = fleet.finish(START_MS + 120_000)
    assert [(e.vehicle_id, e.rider) for e in locks] == [(t.vehicle_id, t.rider) for t in open_trips]
    assert all(e.event_type is EventType.LOCK for e in locks)
    assert fleet.open_trips() == []
    assert fleet.completed_trips[-len(locks) :] == [
        (t.vehicle_id, t.unlock_seq, e.seq, t.rider) for t, e in zip(open_trips, locks, strict=True)
    ]


def test_a_fault_takes_the_vehicle_out_of_service_until_it_is_cleared() -> None:
    config = FleetConfig(vehicles=10, seed=5, faults_per_hour=30.0, mean_fault_s=120.0)
    messages = step_through(Fleet(config), 1800)
    assert events(messages, EventType.FAULT)
    for vehicle_id in {m.vehicle_id for m in messages}:
        mine = [m for m in messages if isinstance(m, Event) and m.vehicle_id == vehicle_id]
        faulty = False
        for event in mine:
            if event.event_type is EventType.FAULT:
                assert not faulty
                faulty, detail = True, event.detail
            elif event.event_type is EventType.FAULT_CLEARED:
                assert faulty and event.detail == detail
                faulty = False
            else:
                assert not faulty, f"{event.event_type} during a fault"


def test_battery_low_is_reported_once_when_the_battery_falls_below_the_threshold() -> None:
    vehicle = _ebike(battery=LOW_BATTERY_PCT + 0.5)
    assert not vehicle.drain(100.0)
    assert vehicle.drain(1_000.0)
    assert not vehicle.drain(1_000.0)
    assert vehicle.battery is not None and vehicle.battery < LOW_BATTERY_PCT


def test_a_fleet_of_nearly_empty_ebikes_reports_battery_low_on_the_wire() -> None:
    fleet = Fleet(FleetConfig(vehicles=10, seed=6, mix=((VehicleKind.EBIKE, 1.0),), mean_idle_s=20.0))
    for v in fleet.vehicles:
        v.battery = LOW_BATTERY_PCT + 0.2
    lows = events(step_through(fleet, 600), EventType.BATTERY_LOW)
    assert lows
    assert all(e.battery_pct is not None and e.battery_pct <= LOW_BATTERY_PCT for e in lows)


def test_parked_ebikes_recharge_slowly() -> None:
    fleet = Fleet(FleetConfig(vehicles=3, mix=((VehicleKind.EBIKE, 1.0),), mean_idle_s=1e9, faults_per_hour=0))
    for v in fleet.vehicles:
        v.battery = 50.0
    messages = step_through(fleet, 3600, tick_s=10)
    last = [m for m in messages if isinstance(m, Telemetry)][-1]
    hours = (last.timestamp - START_MS) / 3_600_000
    expected = 50.0 + hours * PROFILES[VehicleKind.EBIKE].charge_pct_per_hour
    assert last.battery_pct == pytest.approx(expected, abs=0.1)


def test_riding_vehicles_report_every_moving_interval_and_no_vehicle_stays_silent_longer_than_parked() -> None:
    config = FleetConfig(vehicles=20, seed=8, mean_idle_s=60.0)
    messages = step_through(Fleet(config), 900)
    moving_ms, parked_ms = config.moving_interval_s * 1000, config.parked_interval_s * 1000
    riding_gaps = 0
    for vehicle_id in {m.vehicle_id for m in messages}:
        mine = [m for m in messages if not isinstance(m, VehicleState) and m.vehicle_id == vehicle_id]
        for a, b in zip(mine, mine[1:], strict=False):
            assert b.timestamp - a.timestamp <= parked_ms
            if isinstance(a, Telemetry) and isinstance(b, Telemetry) and a.speed_mps > 0 < b.speed_mps:
                assert b.timestamp - a.timestamp == moving_ms
                riding_gaps += 1
    assert riding_gaps > 0


def _ebike(battery: float) -> Vehicle:
    return Vehicle(
        vehicle_id="ebike-0001",
        operator="smartzone-demo",
        kind=VehicleKind.EBIKE,
        owner=Address(bytes(20)),
        position=Position(51.2164, 4.3981),
        odometer=0.0,
        battery=battery,
        next_trip_at=0,
        next_fault_at=0,
        next_telemetry_at=0,
    )
