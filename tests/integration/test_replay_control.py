"""The dashboard's replay control on Mosquitto: a small recording replayed in a thread, watched and stopped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dashboard.replay_control import ReplayBusy, UnknownRecording
from sensors.mqtt import MqttClient
from sensors.ports import Received
from simulator.recording import Recorded, RecordingHeader, RecordingWriter
from smartzone.replay_control import ThreadedReplayControl, broker_connector
from tests import services

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def write_recording(path: Path, root: str, messages: int, gap_ms: int) -> None:
    header = RecordingHeader(root, "mqtt://127.0.0.1:1883", T0, {"name": "tiny", "seed": 3})
    with RecordingWriter(path, header) as writer:
        for i in range(messages):
            topic = f"{root}/v1/op/bike-{i % 3:04}/event"
            writer.write(Recorded(T0 + i * gap_ms, topic, f"message {i}".encode(), 1, False))


class Listener:
    """A subscriber to a root, counting what arrives."""

    def __init__(self, url: str, root: str) -> None:
        self.got: list[bytes] = []
        self.lock = threading.Lock()
        self.client = MqttClient(url, f"listen-{root}").connect()
        self.client.subscribe([(f"{root}/#", 1)], self.take)

    def take(self, message: Received) -> None:
        with self.lock:
            self.got.append(message.payload)
        message.ack()

    def count(self) -> int:
        with self.lock:
            return len(self.got)


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[ThreadedReplayControl, Listener, str]]:
    url = services.mosquitto_url()
    root = f"sz-rc-{uuid.uuid4().hex[:8]}"
    write_recording(tmp_path / "slow.jsonl.gz", root, 200, 100)  # 20 recorded seconds
    write_recording(tmp_path / "fast.jsonl.gz", root, 40, 100)
    (tmp_path / "notes.txt").write_text("not a recording")
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip at all")
    control = ThreadedReplayControl(tmp_path, broker_connector(url))
    listener = Listener(url, root)
    yield control, listener, root
    control.close()
    listener.client.close()


def test_the_folder_lists_recordings_with_what_their_header_and_messages_say(
    setup: tuple[ThreadedReplayControl, Listener, str],
) -> None:
    control, _, root = setup
    found = {r.name: r for r in control.recordings()}
    assert set(found) == {"slow.jsonl.gz", "fast.jsonl.gz", "broken.jsonl.gz"}
    slow = found["slow.jsonl.gz"]
    assert (slow.messages, slow.duration_s, slow.scenario, slow.seed, slow.topic_root) == (200, 19.9, "tiny", 3, root)
    assert found["broken.jsonl.gz"].messages is None and found["broken.jsonl.gz"].damage


def test_a_replay_is_watched_and_stopped_part_way(setup: tuple[ThreadedReplayControl, Listener, str]) -> None:
    control, listener, _ = setup
    started = control.start("slow.jsonl.gz", 1.0)
    assert started.running and started.total == 200
    with pytest.raises(ReplayBusy):
        control.start("fast.jsonl.gz", 0)
    assert wait_until(lambda: control.status().published >= 5, 20)
    assert listener.count() >= 1
    stopped = control.stop()
    assert stopped.state == "stopped" and stopped.ended_ms is not None
    assert 5 <= stopped.published < 200
    assert 0 < stopped.recorded_s < 19.9
    assert wait_until(lambda: listener.count() == stopped.published, 10)
    time.sleep(0.5)
    assert listener.count() == stopped.published  # nothing more after the stop


def test_a_replay_as_fast_as_possible_finishes_with_every_message(
    setup: tuple[ThreadedReplayControl, Listener, str],
) -> None:
    control, listener, _ = setup
    control.start("fast.jsonl.gz", 0)
    assert wait_until(lambda: control.status().state == "finished", 30)
    status = control.status()
    assert (status.published, status.fraction, status.error) == (40, 1.0, None)
    assert wait_until(lambda: listener.count() == 40, 10)
    again = control.start("fast.jsonl.gz", 0)  # another may start once the first is over
    assert again.running


def test_names_outside_the_folder_or_not_recordings_are_unknown(
    setup: tuple[ThreadedReplayControl, Listener, str],
) -> None:
    control, _, _ = setup
    for name in ("../slow.jsonl.gz", "notes.txt", "missing.jsonl.gz", "/etc/passwd"):
        with pytest.raises(UnknownRecording):
            control.start(name, 1)
    assert control.status().state == "idle"


def test_a_broker_that_is_away_fails_the_replay_with_its_reason(tmp_path: Path) -> None:
    write_recording(tmp_path / "r.jsonl.gz", "sz-away", 3, 10)
    away = f"mqtt://127.0.0.1:{services.free_port()}"
    control = ThreadedReplayControl(tmp_path, broker_connector(away))
    control.start("r.jsonl.gz", 0)
    assert wait_until(lambda: control.status().state == "failed", 30)
    assert "127.0.0.1" in (control.status().error or "")


def test_a_large_recording_is_listed_at_once_and_counted_in_the_background(tmp_path: Path) -> None:
    write_recording(tmp_path / "big.jsonl.gz", "sz-big", 500, 10)
    control = ThreadedReplayControl(tmp_path, broker_connector("mqtt://127.0.0.1:1"))
    control.folder.scan_now_bytes = 10  # every file counts as large here
    (first,) = control.recordings()
    assert first.name == "big.jsonl.gz" and first.size_bytes > 10
    assert wait_until(lambda: control.recordings()[0].messages == 500, 30)
