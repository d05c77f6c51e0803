"""Record and replay against a real Mosquitto: a seeded fleet recorded, replayed under another root and recorded
again; Ctrl-C leaves a whole file; offline replay gives the trips a live aggregator made of the same traffic."""

from __future__ import annotations

import gzip
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from sensors.address import Address
from sensors.mqtt import MqttClient
from sensors.ports import Received
from sensors.topics import Channel, subscription
from settlement.aggregator import Aggregator, MoneyRules
from settlement.clearing import FakeClearing
from settlement.db import Database
from settlement.deposits import fund_from_faucet
from settlement.ports import FakeToken
from settlement.queries import SqlReadModel
from simulator.recording import Recorded, read_recording
from simulator.run import RunSummary
from smartzone.cli import main
from smartzone.offline import replay_offline, trip_outcomes
from smartzone.parts import make_fleet, register_fleet, run_simulator, unit_of_work
from smartzone.settings import Settings
from tests import services

pytestmark = pytest.mark.services

SEED, VEHICLES, OPERATOR = 5, 4, "op"


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


class Recorder:
    """``smartzone record`` in a subprocess, started once it has subscribed."""

    def __init__(self, out: Path, url: str, root: str, tmp_path: Path, *extra: str) -> None:
        self.out = out
        env = {
            **os.environ,
            "SMARTZONE_MQTT_URL": url,
            "SMARTZONE_TOPIC_ROOT": root,
            "SMARTZONE_DATA_DIR": str(tmp_path),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smartzone.cli", "record", str(out), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        seen = []
        for line in self.proc.stderr:
            seen.append(line)
            if "Ctrl-C stops" in line:
                return
        raise AssertionError(f"the recorder did not start: {''.join(seen)}")

    def messages(self) -> list[Recorded]:
        """What the file holds so far (the recorder flushes every second)."""
        return list(read_recording(self.out)[1])

    def count_of(self, channelled: bool = True) -> int:
        return sum(1 for r in self.messages() if not channelled or r.topic.rsplit("/", 1)[-1] in set(Channel))

    def interrupt(self) -> str:
        """Ctrl-C; the recorder's last words."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


def fleet_settings(tmp_path: Path, root: str) -> Settings:
    return Settings(
        data_dir=tmp_path, seed=SEED, vehicles=VEHICLES, operator=OPERATOR, topic_root=root, sim_minutes=25, speed=0
    )


def simulate(tmp_path: Path, url: str, root: str) -> RunSummary:
    settings = fleet_settings(tmp_path, root)
    fleet = make_fleet(settings, 31337, first_seq=1)
    return run_simulator(settings, fleet, mqtt_url=url, protocol="auto", stop=threading.Event())


def per_topic(records: list[Recorded], root: str) -> dict[str, list[tuple[bytes, int, bool]]]:
    found: dict[str, list[tuple[bytes, int, bool]]] = defaultdict(list)
    for r in records:
        assert r.topic.startswith(root + "/")
        found[r.topic[len(root) :]].append((r.payload, r.qos, r.retain))
    return found


def test_a_recording_replayed_under_another_root_records_the_same_messages_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = services.mosquitto_url()
    first_root, second_root = f"sz-rec-{uuid.uuid4().hex[:8]}", f"sz-rep-{uuid.uuid4().hex[:8]}"
    first = Recorder(tmp_path / "first.jsonl.gz", url, first_root, tmp_path, "--scenario-name", "t", "--seed", "5")
    summary = simulate(tmp_path, url, first_root)
    assert wait_until(lambda: first.count_of() >= summary.total_published, 60)
    first.interrupt()
    header, records = read_recording(first.out)
    recorded = list(records)
    assert header.topic_root == first_root and header.scenario == {"name": "t", "seed": 5}
    assert records.stopped is None  # Ctrl-C closed the gzip stream properly

    second = Recorder(tmp_path / "second.jsonl.gz", url, second_root, tmp_path)
    monkeypatch.setenv("SMARTZONE_MQTT_URL", url)
    monkeypatch.setenv("SMARTZONE_DATA_DIR", str(tmp_path))
    assert main(["replay", str(first.out), "--speed", "0", "--root", second_root]) == 0
    assert wait_until(lambda: second.count_of(channelled=False) >= len(recorded), 60)
    second.interrupt()
    again = second.messages()

    # the broker keeps the order of each topic (telemetry at QoS 0 may overtake events at QoS 1 in between)
    assert per_topic(again, second_root) == per_topic(recorded, first_root)
    states = [r for r in recorded if r.topic.endswith("/state")]
    assert states and all(r.retain for r in states)  # kept as published
    assert all(r.qos == 0 for r in recorded if r.topic.endswith("/telemetry"))


def test_ctrl_c_leaves_a_complete_recording_of_everything_that_arrived(tmp_path: Path) -> None:
    url = services.mosquitto_url()
    root = f"sz-int-{uuid.uuid4().hex[:8]}"
    recorder = Recorder(tmp_path / "int.jsonl.gz", url, root, tmp_path)
    client = MqttClient(url, f"pub-{root}").connect()
    try:
        for i in range(50):
            client.publish(f"{root}/v1/op/bike-0001/event", f"event {i}".encode(), qos=1)
        client.publish(f"{root}/v1/op/bike-0001/raw", b"\xff\xfe not text", qos=0)
        client.flush()
    finally:
        client.close()
    assert wait_until(lambda: recorder.count_of(channelled=False) == 51, 30)
    last_words = recorder.interrupt()
    assert "recorded 51 messages" in last_words
    gzip.decompress(recorder.out.read_bytes())  # a whole gzip stream: it ends properly
    got = recorder.messages()
    # in order within a topic; a QoS 0 message on another topic may overtake QoS 1 ones still in flight
    events = [r.payload for r in got if r.topic.endswith("/event")]
    assert events == [f"event {i}".encode() for i in range(50)]
    raw = [r for r in got if r.topic.endswith("/raw")]
    assert [(r.payload, r.qos) for r in raw] == [(b"\xff\xfe not text", 0)]


def test_a_broker_that_is_away_is_one_line_naming_it_and_leaves_no_file(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{services.free_port()}"
    env = {**os.environ, "SMARTZONE_MQTT_URL": url, "SMARTZONE_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", "record", str(tmp_path / "r.gz")],
        env=env, text=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and url in lines[0]
    assert not (tmp_path / "r.gz").exists()
    unwritable = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", "record", str(tmp_path / "no" / "dir" / "r.gz")],
        env=env, text=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert unwritable.returncode == 2
    assert unwritable.stderr.strip().splitlines() == [
        f"smartzone: error: cannot write the recording {tmp_path / 'no' / 'dir' / 'r.gz'}: No such file or directory"
    ]


class LiveAggregator:
    """An aggregator fed by its MQTT inbox, as ``smartzone aggregate`` runs it, settling on the in-memory chain."""

    def __init__(self, tmp_path: Path, url: str, root: str) -> None:
        settings = fleet_settings(tmp_path, root)
        self.database = Database.open(f"sqlite:///{tmp_path / 'live.db'}")
        self.database.upgrade()
        fleet = make_fleet(settings, 31337, first_seq=1)
        register_fleet(self.database, fleet)
        token = FakeToken()
        token.deploy(faucet_cap=10**12)
        clearing = FakeClearing(token)
        self.aggregator = Aggregator(
            unit_of_work(self.database),
            clearing,
            token=token,
            money=MoneyRules(token_address=token.address),
            epoch_seconds=settings.epoch_seconds,
            signing_chain_id=31337,
        )
        self.aggregator.attach_contract()
        for rider in fleet.riders:  # as `smartzone up` funds the simulated riders
            account = clearing.as_account(Address.parse(rider))
            fund_from_faucet(account, token.as_account(account.account), settings.rider_deposit_micro)
        self.inbox: queue.Queue[Received] = queue.Queue()
        self.client = MqttClient(url, f"agg-{root}")
        self.client.subscribe([(subscription(c, root), 1) for c in Channel], self.inbox.put)
        self.client.connect()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self.aggregator.run, args=(self.inbox, self.stop), kwargs={"wait_seconds": 0.1}
        )
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        self.client.close()


def test_offline_replay_gives_the_trips_the_live_aggregator_made(tmp_path: Path) -> None:
    url = services.mosquitto_url()
    root = f"sz-live-{uuid.uuid4().hex[:8]}"
    live = LiveAggregator(tmp_path, url, root)
    try:
        recorder = Recorder(
            tmp_path / "live.jsonl.gz", url, root, tmp_path,
            "--seed", str(SEED), "--meta", f"vehicles={VEHICLES}", "--meta", f"operator={OPERATOR}",
        )  # fmt: skip
        summary = simulate(tmp_path, url, root)
        assert wait_until(lambda: live.aggregator.counters.received >= summary.total_published, 60)
        assert wait_until(lambda: recorder.count_of() >= summary.total_published, 60)
        recorder.interrupt()
    finally:
        live.finish()
    live_trips = trip_outcomes(SqlReadModel(live.database))
    offline = replay_offline(
        recorder.out, f"sqlite:///{tmp_path / 'offline.db'}", settings=fleet_settings(tmp_path, root)
    )
    assert len(live_trips) == summary.completed_trips > 3
    assert {i: (t.fare_micro, t.reason, t.owner) for i, t in offline.trips.items()} == {
        i: (t.fare_micro, t.reason, t.owner) for i, t in live_trips.items()
    }
    assert offline.rejected == SqlReadModel(live.database).rejects_by_code()
