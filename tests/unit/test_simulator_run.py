"""The runner: topics and QoS, pacing against an injected clock, progress, stopping and flushing."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import pytest

from sensors.codec import decode
from sensors.messages import Message, VehicleState
from sensors.ports import FakePublisher
from sensors.topics import Channel, parse_topic
from sensors.wire import QOS, RETAIN
from simulator.fleet import CompletedTrip, Fleet, FleetConfig
from simulator.run import run_simulation

START_MS = 1_767_225_600_000


@dataclass
class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    now: float = 100.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FlushCountingPublisher(FakePublisher):
    flushed_after: list[int] = field(default_factory=list)

    def flush(self, timeout: float = 30.0) -> None:
        self.flushed_after.append(len(self.sent))


def small_fleet(seed: int = 1) -> Fleet:
    return Fleet(FleetConfig(vehicles=5, seed=seed, mean_idle_s=60.0))


@pytest.mark.parametrize("speed", [0.0, math.inf])
def test_as_fast_as_possible_never_sleeps(speed: float) -> None:
    clock = FakeClock()
    run_simulation(
        small_fleet(),
        FakePublisher(),
        start_ms=START_MS,
        duration_s=600,
        speed=speed,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert clock.slept == []


def test_ten_times_real_time_sleeps_a_tenth_of_the_simulated_duration() -> None:
    clock = FakeClock()
    summary = run_simulation(
        small_fleet(),
        FakePublisher(),
        start_ms=START_MS,
        duration_s=600,
        speed=10,
        tick_s=2.0,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert sum(clock.slept) == pytest.approx(600 / 10, abs=2.0 / 10)
    assert summary.wall_seconds == pytest.approx(60.0, abs=0.2)
    assert summary.sim_seconds == 600


def test_the_payloads_do_not_depend_on_the_speed() -> None:
    fast, paced = FakePublisher(), FakePublisher()
    clock = FakeClock()
    run_simulation(small_fleet(), fast, start_ms=START_MS, duration_s=300, speed=0)
    run_simulation(
        small_fleet(),
        paced,
        start_ms=START_MS,
        duration_s=300,
        speed=3,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    assert fast.sent == paced.sent


def test_states_are_retained_at_qos_1_events_at_qos_1_and_telemetry_at_qos_0() -> None:
    publisher = FakePublisher()
    summary = run_simulation(small_fleet(), publisher, start_ms=START_MS, duration_s=600, speed=0, root="sz-test")
    expected = {
        Channel.STATE: (1, True),
        Channel.EVENT: (1, False),
        Channel.TELEMETRY: (0, False),
        Channel.VOUCHER: (1, False),
    }
    assert expected == {channel: (QOS[channel], RETAIN[channel]) for channel in Channel}
    seen = dict.fromkeys(Channel, 0)
    for topic, _, qos, retain in publisher.sent:
        parsed = parse_topic(topic)
        assert parsed.root == "sz-test" and parsed.operator == "smartzone-demo"
        assert (qos, retain) == expected[parsed.channel]
        seen[parsed.channel] += 1
    assert seen == summary.published
    assert summary.total_published == len(publisher.sent)


def test_a_run_opens_with_births_and_closes_with_offline_states_then_flushes() -> None:
    publisher = FlushCountingPublisher()
    fleet = small_fleet()
    run_simulation(fleet, publisher, start_ms=START_MS, duration_s=120, speed=0)
    n = len(fleet.vehicles)
    states = [decode(t, p) for t, p, _, _ in publisher.sent[:n] + publisher.sent[-n:]]
    assert all(isinstance(s, VehicleState) for s in states)
    assert [s.online for s in states if isinstance(s, VehicleState)] == [True] * n + [False] * n
    assert publisher.flushed_after == [len(publisher.sent)]


def test_progress_is_reported_once_per_simulated_minute_and_at_the_end() -> None:
    calls: list[tuple[float, float]] = []
    run_simulation(
        small_fleet(),
        FakePublisher(),
        start_ms=START_MS,
        duration_s=150,
        speed=0,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(60.0, 150.0), (120.0, 150.0), (150.0, 150.0)]


def test_a_stop_event_ends_the_run_early_with_every_trip_locked_and_the_publisher_flushed() -> None:
    stop = threading.Event()
    publisher = FlushCountingPublisher()
    fleet = small_fleet()

    def on_progress(done: float, total: float) -> None:
        if done >= 300:
            stop.set()

    summary = run_simulation(
        fleet, publisher, start_ms=START_MS, duration_s=3600, speed=0, progress=on_progress, stop=stop
    )
    assert summary.stopped_early and summary.sim_seconds == 300
    assert fleet.open_trips() == []
    assert publisher.flushed_after == [len(publisher.sent)]


def test_a_stop_callable_before_the_first_tick_still_publishes_births_and_offline_states() -> None:
    publisher = FakePublisher()
    summary = run_simulation(small_fleet(), publisher, start_ms=START_MS, duration_s=600, speed=0, stop=lambda: True)
    assert summary.stopped_early and summary.sim_seconds == 0
    assert summary.published == {Channel.TELEMETRY: 0, Channel.EVENT: 0, Channel.STATE: 10, Channel.VOUCHER: 0}


@pytest.mark.parametrize(
    ("duration_s", "speed", "tick_s"), [(60, -1.0, 1.0), (60, math.nan, 1.0), (60, 0, 0.0), (-1, 0, 1.0)]
)
def test_impossible_run_parameters_are_refused(duration_s: float, speed: float, tick_s: float) -> None:
    with pytest.raises(ValueError):
        run_simulation(
            small_fleet(), FakePublisher(), start_ms=START_MS, duration_s=duration_s, speed=speed, tick_s=tick_s
        )


@dataclass
class Replay:
    """A recording of what a fleet reported, tick by tick: a ``Source`` that is not a ``Fleet``."""

    fleet: Fleet  # already stepped through the ticks: it finishes the run
    births: list[Message]
    ticks: list[list[Message]]

    @property
    def completed_trips(self) -> list[CompletedTrip]:
        return self.fleet.completed_trips

    def birth_messages(self, now_ms: int) -> list[Message]:
        return self.births

    def step(self, now_ms: int) -> list[Message]:
        return self.ticks.pop(0)

    def finish(self, now_ms: int) -> list[Message]:
        return list(self.fleet.finish(now_ms))

    def offline_messages(self, now_ms: int) -> list[Message]:
        return list(self.fleet.offline_messages(now_ms))


def test_a_recording_of_a_fleet_replays_through_the_runner_with_the_same_payloads() -> None:
    live = FakePublisher()
    run_simulation(small_fleet(), live, start_ms=START_MS, duration_s=300, speed=0)
    recorded = small_fleet()
    births: list[Message] = list(recorded.birth_messages(START_MS))
    ticks = [list(recorded.step(START_MS + s * 1000)) for s in range(1, 301)]
    replayed = FakePublisher()
    summary = run_simulation(Replay(recorded, births, ticks), replayed, start_ms=START_MS, duration_s=300, speed=0)
    assert replayed.sent == live.sent
    assert summary.total_published == len(live.sent)
