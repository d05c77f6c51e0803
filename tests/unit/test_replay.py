"""Replay with a fake clock and publisher: scaled gaps, speed 0, topic filters, offsets, another root, loops, and
each vehicle's messages on all its channels in the recorded order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sensors.ports import FakePublisher
from sensors.topics import parse_topic
from simulator.recording import Recorded, RecordingHeader, RecordingWriter, read_recording
from simulator.replay import ReplayOptions, ReplayProgress, ReplaySummary, replay, topic_matches
from simulator.run import run_simulation
from simulator.scenario import load_scenario, shipped_scenario
from smartzone.parts import make_fleet
from smartzone.settings import Settings

T0 = 1_700_000_000_000


@dataclass
class FakeClock:
    """A monotonic clock that only sleeping moves; each publish notes the time it happened."""

    now: float = 100.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class TimedPublisher(FakePublisher):
    clock: FakeClock = field(default_factory=FakeClock)
    at: list[float] = field(default_factory=list)
    flushed: int = 0

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        super().publish(topic, payload, qos, retain)
        self.at.append(self.clock.now)

    def flush(self, timeout: float = 30.0) -> None:
        self.flushed += 1


def rec(offset_ms: int, vehicle: str = "bike-0001", channel: str = "telemetry", root: str = "sz") -> Recorded:
    return Recorded(T0 + offset_ms, f"{root}/v1/op/{vehicle}/{channel}", f"{offset_ms}".encode(), 1, False)


RECORDING = [rec(0), rec(1000, "bike-0002"), rec(3000, channel="event"), rec(3000, "car-0001"), rec(10_000)]


def run(records: Iterable[Recorded] = RECORDING, **options: object) -> tuple[TimedPublisher, FakeClock, ReplaySummary]:
    clock = FakeClock()
    publisher = TimedPublisher(clock=clock)
    items = list(records)
    summary = replay(
        lambda: iter(items),
        publisher,
        ReplayOptions(**options),  # type: ignore[arg-type]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    return publisher, clock, summary


def test_the_recorded_gaps_are_kept_at_speed_1() -> None:
    publisher, _, _ = run(speed=1.0)
    assert [round(t - 100.0, 6) for t in publisher.at] == [0, 1, 3, 3, 10]


def test_the_gaps_are_divided_by_the_speed() -> None:
    publisher, _, _ = run(speed=10.0)
    assert [round(t - 100.0, 6) for t in publisher.at] == [0, 0.1, 0.3, 0.3, 1.0]


def test_speed_0_publishes_everything_without_sleeping() -> None:
    publisher, clock, summary = run(speed=0)
    assert clock.sleeps == []
    assert len(publisher.sent) == 5
    assert summary.published == 5


def test_long_gaps_are_slept_in_slices_so_a_stop_is_noticed() -> None:
    _, clock, _ = run([rec(0), rec(5000)], speed=1.0)
    assert max(clock.sleeps) <= 0.5
    assert round(sum(clock.sleeps), 6) == 5


def test_qos_retain_payload_and_order_are_as_recorded() -> None:
    items = [Recorded(T0, "sz/v1/op/bike-0001/state", b"\xff\x00", 1, True), Recorded(T0 + 5, "sz/v1/x", b"", 0, False)]
    publisher, _, _ = run(items, speed=0)
    assert publisher.sent == [("sz/v1/op/bike-0001/state", b"\xff\x00", 1, True), ("sz/v1/x", b"", 0, False)]
    assert publisher.flushed == 1


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("sz/v1/#", "sz/v1/op/bike-0001/event", True),
        ("sz/v1/+/+/event", "sz/v1/op/bike-0001/event", True),
        ("sz/v1/+/+/event", "sz/v1/op/bike-0001/telemetry", False),
        ("sz/v1/op/bike-0001/event", "sz/v1/op/bike-0001/event", True),
        ("sz/v1/+", "sz/v1/op/bike-0001", False),
        ("sz/#", "sz", True),
        ("#", "anything/at/all", True),
        ("sz/v1/+/bike-0002/#", "sz/v1/op/bike-0001/event", False),
        ("other/#", "sz/v1/op/bike-0001/event", False),
        ("sz/v1/op/bike-0001/event/more", "sz/v1/op/bike-0001/event", False),
    ],
)
def test_topic_filters_match_as_mqtt_does(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_a_topic_filter_keeps_only_matching_messages_and_counts_the_rest() -> None:
    publisher, _, summary = run(speed=0, topic_filter="sz/v1/+/+/event")
    assert [t for t, *_ in publisher.sent] == ["sz/v1/op/bike-0001/event"]
    assert summary.skipped == 4


def test_offsets_count_from_the_first_message_and_the_end_is_exclusive() -> None:
    publisher, _, _ = run(speed=1.0, from_s=1.0, to_s=10.0)
    assert [p for _, p, *_ in publisher.sent] == [b"1000", b"3000", b"3000"]
    assert [round(t - 100.0, 6) for t in publisher.at] == [0, 2, 2]  # paced from the first one replayed


def test_another_root_replaces_only_the_recorded_root() -> None:
    items = [rec(0, root="sz"), Recorded(T0, "szx/v1/op/v/event", b"", 1, False)]
    publisher, _, _ = run(items, speed=0, root=("sz", "copy/here"))
    assert [t for t, *_ in publisher.sent] == ["copy/here/v1/op/bike-0001/telemetry", "szx/v1/op/v/event"]


def test_a_loop_starts_again_until_stopped() -> None:
    clock = FakeClock()
    publisher = TimedPublisher(clock=clock)
    opened: list[int] = []

    def open_records() -> Iterable[Recorded]:
        opened.append(1)
        return iter(RECORDING[:2])

    summary = replay(
        open_records,
        publisher,
        ReplayOptions(speed=1.0, loop=True),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        stop=lambda: len(publisher.sent) >= 7,
    )
    assert len(publisher.sent) == 7
    assert [p for _, p, *_ in publisher.sent] == [b"0", b"1000"] * 3 + [b"0"]
    assert summary.passes == 4 and summary.stopped_early
    assert len(opened) == 4


def test_a_loop_over_nothing_selected_ends() -> None:
    _, _, summary = run(speed=0, loop=True, topic_filter="nothing/#")
    assert summary.passes == 1


def test_a_stop_while_waiting_ends_the_replay_early() -> None:
    clock = FakeClock()
    publisher = TimedPublisher(clock=clock)
    summary = replay(
        lambda: iter(RECORDING),
        publisher,
        ReplayOptions(speed=1.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        stop=lambda: clock.now >= 102.0,
    )
    assert summary.stopped_early
    assert [p for _, p, *_ in publisher.sent] == [b"0", b"1000"]


def test_progress_is_reported_with_the_share_of_the_file_read(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    with RecordingWriter(path, RecordingHeader("sz", "b", T0)) as writer:
        for item in RECORDING:
            writer.write(item)
    seen: list[ReplayProgress] = []
    clock = FakeClock()
    summary = replay(
        lambda: read_recording(path)[1],
        TimedPublisher(clock=clock),
        ReplayOptions(speed=1.0),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        progress=seen.append,
        progress_every_s=2.0,
    )
    assert summary.published == 5 and summary.damage is None
    assert seen[-1].published == 5 and seen[-1].recorded_s == 10.0 and seen[-1].fraction == 1.0
    assert [p.published for p in seen] == [3, 5, 5]  # at 3 s, at 10 s, and at the end


@pytest.mark.parametrize("bad", [{"speed": -1.0}, {"speed": float("nan")}, {"from_s": 5.0, "to_s": 5.0}])
def test_impossible_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReplayOptions(**bad)  # type: ignore[arg-type]


@dataclass
class Recording:
    """A publisher writing what it is given to a recording, arriving at a fake clock's time (paced at speed 1)."""

    writer: RecordingWriter
    now: list[float] = field(default_factory=lambda: [0.0])

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.writer.write(Recorded(T0 + round(self.now[0] * 1000), topic, payload, qos, retain))

    def flush(self, timeout: float = 30.0) -> None:
        return None


def per_vehicle(sent: Iterable[tuple[str, bytes, int, bool]]) -> dict[str, list[tuple[str, bytes, int, bool]]]:
    found: dict[str, list[tuple[str, bytes, int, bool]]] = defaultdict(list)
    for topic, payload, qos, retain in sent:
        parsed = parse_topic(topic)
        found[parsed.vehicle_id].append((parsed.channel.value, payload, qos, retain))
    return found


@pytest.mark.parametrize("speed", [0.0, 10.0])
def test_each_vehicles_messages_on_every_channel_go_out_in_the_recorded_order(tmp_path: Path, speed: float) -> None:
    scenario = load_scenario(shipped_scenario("tiny"))
    fleet = make_fleet(Settings(data_dir=tmp_path), 31337, first_seq=1, scenario=scenario)
    path = tmp_path / "tiny.jsonl.gz"
    with RecordingWriter(path, RecordingHeader("sz", "mqtt://test", T0, scenario.describe())) as writer:
        recording = Recording(writer)

        def advance(seconds: float) -> None:
            recording.now[0] += seconds

        run_simulation(fleet, recording, start_ms=T0, duration_s=scenario.minutes * 60, speed=1.0, root="sz",
                       sleep=advance, monotonic=lambda: recording.now[0])  # fmt: skip
    recorded = [(r.topic, r.payload, r.qos, r.retain) for r in read_recording(path)[1]]
    clock = FakeClock()
    publisher = TimedPublisher(clock=clock)
    replay(
        lambda: read_recording(path)[1], publisher, ReplayOptions(speed), sleep=clock.sleep, monotonic=clock.monotonic
    )
    assert publisher.sent == recorded
    vehicles = per_vehicle(recorded)
    assert per_vehicle(publisher.sent) == vehicles and len(vehicles) == scenario.fleet.vehicles
    channels = {channel for messages in vehicles.values() for channel, *_ in messages}
    assert channels == {"telemetry", "event", "state", "voucher"}  # QoS 0 and QoS 1 interleaved per vehicle
    assert {qos for messages in vehicles.values() for _, _, qos, _ in messages} == {0, 1}
