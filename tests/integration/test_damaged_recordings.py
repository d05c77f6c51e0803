"""A damaged recording through ``smartzone replay``, online and ``--offline``: cut short, a flipped byte in the
gzip body, a line that is not JSON. Each replays the messages up to the damage and says where it stopped."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from sensors.mqtt import MqttClient
from sensors.ports import Received
from simulator.recording import Recorded, read_recording
from tests import services
from tests.integration.test_offline_replay import record_fleet


def cut_short(data: bytes) -> bytes:
    """The file as a killed copy leaves it: its first 60 % of bytes."""
    return data[: len(data) * 6 // 10]


def flipped(data: bytes) -> bytes:
    """One byte in the middle of the compressed body inverted."""
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


def not_json(data: bytes) -> bytes:
    """Line 301 of the (decompressed) file replaced by text that is not JSON, compressed again."""
    lines = gzip.decompress(data).split(b"\n")
    lines[300] = b"{not json"
    return gzip.compress(b"\n".join(lines))


DAMAGES: dict[str, Callable[[bytes], bytes]] = {"cut": cut_short, "flipped": flipped, "not-json": not_json}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Recorded]]:
    """A seeded fleet's 20 minutes, recorded whole, and its messages."""
    path, _ = record_fleet(tmp_path_factory.mktemp("whole"), minutes=20)
    return path, list(read_recording(path)[1])


def damage(recorded: tuple[Path, list[Recorded]], how: str, tmp_path: Path) -> tuple[Path, list[Recorded], str]:
    """The recording damaged ``how``; the messages before the damage and where the reader says it stopped."""
    whole, messages = recorded
    path = tmp_path / f"{how}.jsonl.gz"
    path.write_bytes(DAMAGES[how](whole.read_bytes()))
    _, records = read_recording(path)
    kept = list(records)
    assert records.stopped is not None
    assert 0 < len(kept) < len(messages) and kept == messages[: len(kept)]  # whole messages, in order, then none
    return path, kept, records.stopped


def smartzone(tmp_path: Path, *args: str, url: str = "mqtt://127.0.0.1:1") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTZONE_MQTT_URL": url, "SMARTZONE_DATA_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "smartzone.cli", *args], env=env, text=True, capture_output=True, timeout=300
    )


@pytest.mark.parametrize("how", list(DAMAGES))
def test_offline_replay_of_a_damaged_recording_feeds_what_precedes_the_damage_and_says_where_it_stopped(
    recorded: tuple[Path, list[Recorded]], how: str, tmp_path: Path
) -> None:
    path, kept, stopped = damage(recorded, how, tmp_path)
    done = smartzone(tmp_path, "replay", str(path), "--offline")
    assert done.returncode == 0, done.stderr
    assert f"note: recorded tariffs: the recording stopped early: {stopped}" in done.stdout.splitlines()
    fed = next(line for line in done.stdout.splitlines() if line.startswith("messages fed"))
    assert fed.split() == ["messages", "fed", str(len(kept))]
    assert f"{path}: " in stopped and f"read {len(kept)} messages up to there" in stopped


def per_topic(items: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = defaultdict(list)
    for topic, payload in items:
        found[topic.split("/", 1)[1]].append(payload)
    return found


@pytest.mark.services
@pytest.mark.parametrize("how", list(DAMAGES))
def test_replay_of_a_damaged_recording_publishes_what_precedes_the_damage_and_says_where_it_stopped(
    recorded: tuple[Path, list[Recorded]], how: str, tmp_path: Path
) -> None:
    url = services.mosquitto_url()
    path, kept, stopped = damage(recorded, how, tmp_path)
    root = f"sz-dmg-{uuid.uuid4().hex[:8]}"
    arrived: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def take(item: Received) -> None:
        with lock:
            arrived.append((item.topic, item.payload))
        item.ack()

    listener = MqttClient(url, f"listen-{root}")
    listener.subscribe([(f"{root}/#", 1)], take)
    listener.connect()
    try:
        done = smartzone(tmp_path, "replay", str(path), "--speed", "0", "--root", root, url=url)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 60
        while len(arrived) < len(kept) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        listener.close()
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["published"] == len(kept) and summary["damage"] == stopped
    assert any(stopped in line and "WARNING" in line for line in done.stderr.splitlines())
    # the broker keeps each topic's order (QoS 0 telemetry may overtake QoS 1 events on other topics)
    assert per_topic(arrived) == per_topic([(r.topic, r.payload) for r in kept])
