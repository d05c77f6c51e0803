"""Faults at their scenario rates: on the wire (drop, duplicate, reorder) and in the vehicles (GPS jitter, going
offline with the last will, sensor faults); at rate 0 none has any effect, and over a seeded run each strikes as
often as its rate says (within 4 standard deviations of a binomial count)."""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import pairwise

import pytest

from sensors.codec import decode
from sensors.geo import distance_m
from sensors.messages import Event, EventType, Message, Telemetry, VehicleState
from sensors.ports import FakePublisher
from sensors.signing import signer
from simulator.faults import SENSORS, FaultyPublisher, fault_rng
from simulator.fleet import Fleet, FleetConfig
from simulator.run import run_simulation
from simulator.scenario import FaultRates
from simulator.vehicle import Status

START_MS = 1_796_108_400_000  # 2026-12-01T08:00:00+01:00


def wired(rates: FaultRates, minutes: float = 20) -> tuple[FakePublisher, FakePublisher, FaultyPublisher]:
    """The same fleet run twice: straight to a publisher, and through the wire's faults to another."""
    straight, behind = FakePublisher(), FakePublisher()
    faulty = FaultyPublisher(behind, rates, fault_rng(1, "wire"))
    for publisher in (straight, faulty):
        fleet = Fleet(FleetConfig(vehicles=6, seed=1, mean_idle_s=120.0))
        run_simulation(fleet, publisher, start_ms=START_MS, duration_s=minutes * 60, speed=0)
    return straight, behind, faulty


def test_at_rate_zero_the_wire_passes_every_message_unchanged_in_order() -> None:
    straight, behind, faulty = wired(FaultRates())
    assert behind.sent == straight.sent and straight.sent
    assert faulty.counts == Counter()


def test_at_drop_rate_one_nothing_is_published() -> None:
    straight, behind, faulty = wired(FaultRates(drop=1.0))
    assert behind.sent == [] and faulty.counts["dropped"] == len(straight.sent) > 0


def test_at_duplicate_rate_one_every_message_goes_out_twice_in_a_row() -> None:
    straight, behind, faulty = wired(FaultRates(duplicate=1.0))
    assert behind.sent == [m for m in straight.sent for _ in range(2)]
    assert faulty.counts["duplicated"] == len(straight.sent)


def test_some_drops_lose_about_their_share_and_keep_the_order_of_the_rest() -> None:
    straight, behind, faulty = wired(FaultRates(drop=0.2))
    kept = iter(straight.sent)
    assert all(any(m == s for s in kept) for m in behind.sent)  # a subsequence of what was sent
    assert len(behind.sent) + faulty.counts["dropped"] == len(straight.sent)
    assert 0.1 < faulty.counts["dropped"] / len(straight.sent) < 0.3


def test_a_reordered_message_goes_out_after_the_next_one() -> None:
    behind = FakePublisher()
    faulty = FaultyPublisher(behind, FaultRates(reorder=1.0), random.Random(0))
    for name in "abcde":
        faulty.publish(name, name.encode(), 1, False)
    assert [t for t, *_ in behind.sent] == ["b", "a", "d", "c"]
    faulty.flush()
    assert [t for t, *_ in behind.sent] == ["b", "a", "d", "c", "e"]
    assert behind.sent[-1] == ("e", b"e", 1, False)


def test_reordering_delivers_every_message_once_and_only_swaps_neighbours() -> None:
    straight, behind, faulty = wired(FaultRates(reorder=0.1))
    assert sorted(behind.sent) == sorted(straight.sent) and behind.sent != straight.sent
    moved = [i for i, (a, b) in enumerate(zip(straight.sent, behind.sent, strict=True)) if a != b]
    assert len(moved) == 2 * faulty.counts["reordered"]
    for i in moved[::2]:
        assert behind.sent[i : i + 2] == straight.sent[i : i + 2][::-1]


def fleet_run(faults: FaultRates, minutes: float = 60, **config: object) -> tuple[Fleet, list[Message]]:
    fleet = Fleet(FleetConfig(vehicles=8, seed=3, mean_idle_s=300.0, faults=faults, **config))  # type: ignore[arg-type]
    publisher = FakePublisher()
    run_simulation(fleet, publisher, start_ms=START_MS, duration_s=minutes * 60, speed=0, tick_s=5)
    return fleet, [decode(topic, payload) for topic, payload, _, _ in publisher.sent]


def test_vehicle_faults_at_rate_zero_change_nothing() -> None:
    _, plain = fleet_run(FaultRates())
    fleet, zero = fleet_run(FaultRates(gps_jitter=0.0, offline=0.0, sensor_fault=0.0, gps_jitter_m=50))
    assert zero == plain and fleet.fault_counts == Counter()


def test_gps_jitter_moves_telemetry_by_at_most_its_metres_and_signatures_stay_valid() -> None:
    _, plain = fleet_run(FaultRates(), sign_telemetry=True)
    fleet, jittered = fleet_run(FaultRates(gps_jitter=1.0, gps_jitter_m=20), sign_telemetry=True)
    assert len(jittered) == len(plain)  # jitter draws from its own RNG: the vehicles do the same things
    moved = 0
    for before, after in zip(plain, jittered, strict=True):
        if isinstance(after, Telemetry):
            assert isinstance(before, Telemetry) and before.seq == after.seq
            assert distance_m(before.position, after.position) <= 20.5
            moved += before.position != after.position
            assert signer(after, fleet.domain) == fleet.devices[after.vehicle_id]
        else:
            assert after == before
    assert moved == fleet.fault_counts["jittered"] > 0


def test_a_vehicle_that_goes_offline_sends_its_signed_last_will_is_silent_and_comes_back_online() -> None:
    fleet, messages = fleet_run(FaultRates(offline=0.2, offline_mean_s=120))
    assert fleet.fault_counts["offline"] > 0
    saw_return = False
    for vehicle in fleet.vehicles:
        mine = [m for m in messages if m.vehicle_id == vehicle.vehicle_id]
        states = [m for m in mine if isinstance(m, VehicleState)]
        assert all(signer(s, fleet.domain) == fleet.devices[vehicle.vehicle_id] for s in states)
        assert states[0].online and not states[-1].online and mine[-1] == states[-1]
        for i, m in enumerate(mine[:-2]):
            if isinstance(m, VehicleState) and not m.online:
                # silent until it is back (or the run ends): the next message is its online state
                following = mine[i + 1]
                assert isinstance(following, VehicleState) and following.online
                assert following.timestamp > m.timestamp
                saw_return = True
    assert saw_return


def test_an_offline_vehicle_is_never_taken_and_no_trip_is_cut_by_going_offline() -> None:
    _, messages = fleet_run(FaultRates(offline=0.3, offline_mean_s=600))
    away: set[str] = set()
    riding: set[str] = set()
    unlocks = offline = 0
    for m in messages:
        if isinstance(m, VehicleState):
            (away.discard if m.online else away.add)(m.vehicle_id)
            if not m.online:
                offline += 1
                assert m.vehicle_id not in riding  # only a parked vehicle drops off (the run's end locks first)
        elif isinstance(m, Event) and m.event_type is EventType.UNLOCK:
            assert m.vehicle_id not in away
            riding.add(m.vehicle_id)
            unlocks += 1
        elif isinstance(m, Event) and m.event_type is EventType.LOCK:
            riding.discard(m.vehicle_id)
    assert unlocks > 0 and offline > 8  # more than the run's end alone


def test_a_sensor_fault_is_a_fault_event_naming_the_sensor_and_takes_the_vehicle_out_of_service() -> None:
    fleet, messages = fleet_run(FaultRates(sensor_fault=0.05), faults_per_hour=0.0, mean_fault_s=600.0)
    faults = [m for m in messages if isinstance(m, Event) and m.event_type is EventType.FAULT]
    assert len(faults) == fleet.fault_counts["sensor_fault"] > 0
    assert {f.detail for f in faults} <= set(SENSORS)
    for fault in faults:
        after = [m for m in messages if isinstance(m, Event) and m.vehicle_id == fault.vehicle_id and m.seq > fault.seq]
        # nobody rides it until the fault is cleared
        assert not after or after[0].event_type in (EventType.FAULT_CLEARED, EventType.BATTERY_LOW)
    assert any(v.status is Status.FAULTY for v in fleet.vehicles) or any(
        isinstance(m, Event) and m.event_type is EventType.FAULT_CLEARED for m in messages
    )


@pytest.mark.parametrize("where", ["wire", "vehicles"])
def test_the_fault_rngs_depend_on_the_seed_only(where: str) -> None:
    assert fault_rng(5, where).random() == fault_rng(5, where).random() != fault_rng(6, where).random()
    assert fault_rng(5, "wire").random() != fault_rng(5, "vehicles").random()


def within_binomial(struck: int, trials: int, rate: float, sigmas: float = 4.0) -> bool:
    """Whether ``struck`` of ``trials`` draws at ``rate`` is within ``sigmas`` standard deviations of the mean
    (plus one, for a draw that the run's end cuts short)."""
    return abs(struck - trials * rate) <= sigmas * math.sqrt(trials * rate * (1 - rate)) + 1


@pytest.fixture(scope="module")
def traffic() -> list[tuple[str, bytes, int, bool]]:
    """An hour of a seeded fleet of 20, every message distinct."""
    publisher = FakePublisher()
    run_simulation(Fleet(FleetConfig(vehicles=20, seed=1, mean_idle_s=120.0)), publisher, start_ms=START_MS,
                   duration_s=3600, speed=0)  # fmt: skip
    assert len(set(publisher.sent)) == len(publisher.sent) > 5000
    return publisher.sent


@pytest.mark.parametrize(
    ("drop", "duplicate", "reorder", "seed"),
    [(0.001, 0.002, 0.005, 1), (0.01, 0.02, 0.05, 2), (0.1, 0.05, 0.1, 3), (0.3, 0.2, 0.25, 4)],
)
def test_the_wires_faults_strike_at_their_rates_as_seen_on_the_wire(
    traffic: list[tuple[str, bytes, int, bool]], drop: float, duplicate: float, reorder: float, seed: int
) -> None:
    behind = FakePublisher()
    faulty = FaultyPublisher(
        behind, FaultRates(drop=drop, duplicate=duplicate, reorder=reorder), fault_rng(seed, "wire")
    )
    for message in traffic:
        faulty.publish(*message)
    faulty.flush()
    index = {message: i for i, message in enumerate(traffic)}
    out = [index[m] for m in behind.sent]
    once = [i for k, i in enumerate(out) if k == 0 or out[k - 1] != i]  # duplicates follow their original at once
    assert len(once) == len(set(once))  # nothing goes out twice but a duplicate
    dropped = len(traffic) - len(once)
    duplicated = len(out) - len(once)
    reordered = sum(1 for a, b in pairwise(once) if b < a)  # a held message goes out after the next one
    assert (dropped, duplicated) == (faulty.counts["dropped"], faulty.counts["duplicated"])
    assert faulty.counts["reordered"] - 1 <= reordered <= faulty.counts["reordered"]  # the last one held: no swap
    sent = len(traffic) - dropped  # each message draws a drop; the rest draw a hold unless one is held already,
    direct = sent - reordered  # and those sent at once draw a duplicate
    assert within_binomial(dropped, len(traffic), drop)
    assert within_binomial(reordered, direct, reorder)
    assert within_binomial(duplicated, direct, duplicate)


@pytest.mark.parametrize(("jitter", "seed"), [(0.01, 3), (0.1, 4), (0.5, 5)])
def test_gps_jitter_strikes_at_its_rate_as_seen_in_the_telemetry(jitter: float, seed: int) -> None:
    rates = FaultRates(gps_jitter=jitter, gps_jitter_m=10)
    plain = Fleet(FleetConfig(vehicles=20, seed=seed, mean_idle_s=300.0))
    fleet = Fleet(FleetConfig(vehicles=20, seed=seed, mean_idle_s=300.0, faults=rates))
    trials = jittered = 0
    for t in range(0, 2 * 3600 + 1, 5):
        now_ms = START_MS + t * 1000
        before = [m for m in plain.step(now_ms) if isinstance(m, Telemetry)]
        after = [m for m in fleet.step(now_ms) if isinstance(m, Telemetry)]
        assert [m.seq for m in after] == [m.seq for m in before]  # jitter changes nothing the vehicles do
        for was, got in zip(before, after, strict=True):
            if fleet.zone.contains(was.position) and fleet.zone.distance_to_boundary_m(was.position) > 10:
                trials += 1  # a jitter here surely stays in the zone (nearer its edge one may be refused)
                jittered += got.position != was.position
    assert trials > 3000
    assert within_binomial(jittered, trials, jitter)


@pytest.mark.parametrize(("offline", "sensor", "seed"), [(0.005, 0.005, 3), (0.02, 0.03, 4), (0.1, 0.1, 5)])
def test_going_offline_and_sensor_faults_strike_at_their_rates_as_seen_in_the_messages(
    offline: float, sensor: float, seed: int
) -> None:
    rates = FaultRates(offline=offline, offline_mean_s=30, sensor_fault=sensor)
    fleet = Fleet(
        FleetConfig(vehicles=50, seed=seed, mean_idle_s=300.0, faults=rates, faults_per_hour=0.0, mean_fault_s=60.0)
    )
    trials = went_offline = sensor_faults = 0
    status: dict[str, Status] = {v.vehicle_id: v.status for v in fleet.vehicles}
    after_reading: dict[str, bool] = {}  # vehicle -> its last message was a reading while parked
    for t in range(0, 2 * 3600 + 1, 5):
        for m in fleet.step(START_MS + t * 1000):
            struck_now = after_reading.pop(m.vehicle_id, False)
            if isinstance(m, Telemetry) and status[m.vehicle_id] is Status.PARKED:
                trials += 1  # a parked vehicle's reading: it may drop off the network, else a sensor may fail
                after_reading[m.vehicle_id] = True
            elif isinstance(m, VehicleState) and not m.online:
                assert struck_now  # its last will, right after its reading
                went_offline += 1
            elif isinstance(m, Event):
                if m.event_type is EventType.FAULT:
                    assert struck_now  # the fleet's own faults are off: each is a sensor fault
                    sensor_faults += 1
                status[m.vehicle_id] = STATUS_AFTER.get(m.event_type, status[m.vehicle_id])
    assert (went_offline, sensor_faults) == (fleet.fault_counts["offline"], fleet.fault_counts["sensor_fault"])
    assert trials > 3000
    assert within_binomial(went_offline, trials, offline)
    assert within_binomial(sensor_faults, trials - went_offline, sensor)  # drawn only when it stays online


STATUS_AFTER = {
    EventType.UNLOCK: Status.RIDING,
    EventType.LOCK: Status.PARKED,
    EventType.FAULT: Status.FAULTY,
    EventType.FAULT_CLEARED: Status.PARKED,
}
