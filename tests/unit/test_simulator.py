"""Properties of a whole simulated run: determinism, sequencing, trips, positions and signatures on the wire."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import pytest

from sensors.codec import decode, encode
from sensors.messages import Event, EventType, Message, Position, Telemetry, VehicleState
from sensors.ports import FakePublisher
from sensors.registration import valid_at
from sensors.signing import signer
from sensors.wire import trip_id_for
from simulator.fleet import Fleet, FleetConfig
from simulator.run import RunSummary, run_simulation
from simulator.vehicle import PROFILES
from simulator.zone import STREET_MARGIN_M, distance_m, load_zone

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HALF_HOUR_S = 1800.0


@dataclass(frozen=True)
class Run:
    config: FleetConfig
    fleet: Fleet
    sent: list[tuple[str, bytes, int, bool]]
    summary: RunSummary

    def messages(self) -> list[Message]:
        return [decode(topic, payload) for topic, payload, _, _ in self.sent]

    def by_vehicle(self) -> dict[str, list[Telemetry | Event]]:
        grouped: dict[str, list[Telemetry | Event]] = defaultdict(list)
        for message in self.messages():
            if not isinstance(message, VehicleState):
                grouped[message.vehicle_id].append(message)
        return grouped


def simulate(config: FleetConfig, duration_s: float = HALF_HOUR_S) -> Run:
    fleet = Fleet(config)
    publisher = FakePublisher()
    summary = run_simulation(fleet, publisher, start_ms=START_MS, duration_s=duration_s, speed=0)
    return Run(config, fleet, publisher.sent, summary)


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate(FleetConfig(vehicles=20, seed=7))


def test_the_same_seed_gives_a_byte_identical_payload_sequence(run: Run) -> None:
    again = simulate(FleetConfig(vehicles=20, seed=7))
    assert again.sent == run.sent


def test_a_different_seed_gives_different_payloads(run: Run) -> None:
    other = simulate(FleetConfig(vehicles=20, seed=8))
    assert [p for _, p, _, _ in other.sent] != [p for _, p, _, _ in run.sent]


def test_every_payload_decodes_to_a_message_that_encodes_back_to_the_same_bytes(run: Run) -> None:
    for (_, payload, _, _), message in zip(run.sent, run.messages(), strict=True):
        assert encode(message) == payload


def test_each_vehicle_numbers_its_telemetry_and_events_from_one_strictly_increasing(run: Run) -> None:
    grouped = run.by_vehicle()
    assert len(grouped) == run.config.vehicles
    for messages in grouped.values():
        seqs = [m.seq for m in messages]
        assert seqs[0] == 1
        assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False))


def test_every_unlock_is_followed_by_a_lock_with_the_same_rider_before_the_next_unlock(run: Run) -> None:
    for messages in run.by_vehicle().values():
        trip_events = [m for m in messages if isinstance(m, Event) and m.event_type in _TRIP_EVENTS]
        unlocks, locks = trip_events[0::2], trip_events[1::2]
        assert all(e.event_type is EventType.UNLOCK for e in unlocks)
        assert all(e.event_type is EventType.LOCK for e in locks)
        assert [e.rider for e in unlocks] == [e.rider for e in locks]
    assert run.fleet.open_trips() == []


def test_the_summary_lists_one_trip_id_per_unlock_and_per_lock_on_the_wire(run: Run) -> None:
    events = [m for m in run.messages() if isinstance(m, Event)]
    unlocks = [trip_id_for(m.vehicle_id, m.seq) for m in events if m.event_type is EventType.UNLOCK]
    locks = [trip_id_for(m.vehicle_id, m.trip_seq or 0) for m in events if m.event_type is EventType.LOCK]
    assert sorted(run.summary.trip_ids) == sorted(unlocks) == sorted(locks)
    assert run.summary.completed_trips == len(unlocks) == len(set(unlocks))


def test_every_event_and_state_on_the_wire_is_signed_by_the_device_its_vehicle_is_registered_with(run: Run) -> None:
    registered = {r.vehicle_id: r for r in run.fleet.registrations(START_MS)}
    assert all(signer(r, run.fleet.domain) == run.fleet.operator_address for r in registered.values())
    checked = 0
    for message in run.messages():
        if isinstance(message, Telemetry):
            assert message.signature is None  # telemetry signing is off by default
            continue
        registration = registered[message.vehicle_id]
        assert valid_at(registration, message.timestamp)
        assert signer(message, run.fleet.domain) == registration.device
        checked += 1
    assert checked > 2 * run.config.vehicles


def test_no_rider_is_on_two_vehicles_at_once(run: Run) -> None:
    riding: dict[str, str] = {}
    for message in run.messages():
        if isinstance(message, Event) and message.rider is not None:
            if message.event_type is EventType.UNLOCK:
                assert message.rider not in riding
                riding[message.rider] = message.vehicle_id
            elif message.event_type is EventType.LOCK:
                assert riding.pop(message.rider) == message.vehicle_id
    assert riding == {}


def test_every_reported_position_is_in_the_zone_or_on_a_street_that_bounds_it(run: Run) -> None:
    zone = load_zone()
    for messages in run.by_vehicle().values():
        for m in messages:
            assert 51.2115 <= m.position.lat <= 51.2191 and 4.3899 <= m.position.lon <= 4.4024
            # the zone's boundary runs along the axes of its border streets: vehicles ride on them too
            assert zone.contains(m.position) or zone.distance_to_boundary_m(m.position) <= STREET_MARGIN_M, m


def test_the_odometer_never_decreases_and_grows_with_the_distance_driven(run: Run) -> None:
    for messages in run.by_vehicle().values():
        odometers = [m.odometer_m for m in messages]
        assert odometers == sorted(odometers)
        path = sum(distance_m(a.position, b.position) for a, b in zip(messages, messages[1:], strict=False))
        assert odometers[-1] - odometers[0] >= math.floor(path) - 1


def test_twenty_vehicles_over_half_an_hour_make_a_plausible_number_of_trips(run: Run) -> None:
    config = run.config
    min_lat, min_lon, max_lat, max_lon = load_zone().bbox
    diagonal_m = distance_m(Position(min_lat, min_lon), Position(max_lat, max_lon))
    slowest_mps = 0.85 * min(PROFILES[kind].speed_mps for kind, _ in config.mix)
    longest_cycle_s = config.mean_idle_s + diagonal_m / slowest_mps
    lower = 0.5 * config.vehicles * HALF_HOUR_S / longest_cycle_s
    upper = 1.5 * config.vehicles * HALF_HOUR_S / config.mean_idle_s + config.vehicles
    assert max(10.0, lower) < run.summary.completed_trips < upper


def test_parked_and_moving_vehicles_report_at_their_configured_intervals(run: Run) -> None:
    telemetry = [m for m in run.messages() if isinstance(m, Telemetry)]
    per_vehicle_max = HALF_HOUR_S / run.config.moving_interval_s + 1
    per_vehicle_min = HALF_HOUR_S / run.config.parked_interval_s - 1
    assert run.config.vehicles * per_vehicle_min <= len(telemetry) <= run.config.vehicles * per_vehicle_max
    assert any(t.speed_mps > 0 for t in telemetry) and any(t.speed_mps == 0 for t in telemetry)


_TRIP_EVENTS = (EventType.UNLOCK, EventType.LOCK)
