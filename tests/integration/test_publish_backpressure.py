"""Publishing through the paho adapter waits for the broker instead of failing, against a real Mosquitto.

paho numbers every publish with a 16-bit id and refuses one whose id is still unacknowledged; these tests
publish far past 65,535 messages, and through a broker restart, and require no error and no loss of QoS 1.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sensors.errors import BrokerUnavailable
from sensors.mqtt import MqttClient
from sensors.ports import Received
from sensors.topics import Channel, subscription
from simulator.fleet import Fleet, FleetConfig
from simulator.run import run_simulation
from smartzone.broker import RunningBroker, free_port, mosquitto
from smartzone.broker_access import BrokerAccess, Role, generate, url_for
from tests import services

pytestmark = pytest.mark.services

OPERATOR = "op"
START_MS = 1_795_000_000_000


@dataclass(frozen=True)
class Broker:
    """A Mosquitto started for this module with generated users."""

    running: RunningBroker
    access: BrokerAccess
    root: str

    def client(self, role: Role, name: str | None = None) -> MqttClient:
        url = url_for(self.access.find(role, name), self.running.url)
        return MqttClient(url, f"{role}-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    root = f"sz-bp-{uuid.uuid4().hex[:6]}"
    access = generate(root, [OPERATOR, FleetConfig().operator])
    with mosquitto(services.mosquitto_binary(), access=access) as running:
        yield Broker(running, access, root)


class Counter:
    """Counts what a subscription receives, by the sequence number in each payload."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.copies = 0
        self.lock = threading.Lock()
        self.grown = threading.Condition(self.lock)

    def __call__(self, item: Received) -> None:
        with self.lock:
            self.seen.add(int(item.payload.split(b" ", 1)[0]))
            self.copies += 1
            self.grown.notify_all()
        item.ack()

    def wait_for(self, n: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self.lock:
            while len(self.seen) < n and time.monotonic() < deadline:
                self.grown.wait(0.2)
            return len(self.seen)


def test_200000_messages_published_as_fast_as_possible_all_leave_and_every_qos1_one_arrives(broker: Broker) -> None:
    total, every = 200_000, 5  # one in five at QoS 1, as events among telemetry
    events = Counter()
    sub = broker.client(Role.AGGREGATOR)
    sub.subscribe([(f"{broker.root}/v1/+/+/event", 1)], events)
    sub.connect()
    pub = broker.client(Role.GATEWAY, OPERATOR).connect()
    padding = b" " + b"x" * 200
    started = time.monotonic()
    try:
        for n in range(total):
            vehicle = f"bike-{n % 1000:04d}"
            if n % every == 0:
                pub.publish(f"{broker.root}/v1/{OPERATOR}/{vehicle}/event", b"%d" % n + padding, qos=1)
            else:
                pub.publish(f"{broker.root}/v1/{OPERATOR}/{vehicle}/telemetry", b"%d" % n + padding, qos=0)
        pub.flush(60)
        assert (pub.pending, pub.lost, pub.refused) == (0, 0, 0)
        expected = total // every
        assert events.wait_for(expected, 60) == expected
        assert events.seen == set(range(0, total, every))
    finally:
        pub.close()
        sub.close()
    assert time.monotonic() - started < 120


@dataclass
class Tee:
    """A publisher that forwards to the adapter and keeps every QoS 1 (topic, payload) it forwarded."""

    client: MqttClient
    qos1: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos, retain)
        if qos:
            self.qos1.append((topic, payload))

    def flush(self, timeout: float = 30.0) -> None:
        self.client.flush(timeout)


def test_simulate_at_full_speed_past_65535_messages_delivers_every_event_and_state(broker: Broker) -> None:
    # 1,000 vehicles for 45 simulated minutes: more messages than paho has numbers (issue 7 saw this fail)
    fleet = Fleet(FleetConfig(vehicles=1000, seed=3))
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def keep(item: Received) -> None:
        with lock:
            received.append((item.topic, item.payload))
        item.ack()

    sub = broker.client(Role.AGGREGATOR)
    sub.subscribe([(subscription(Channel.EVENT, broker.root), 1), (subscription(Channel.STATE, broker.root), 1)], keep)
    sub.connect()
    tee = Tee(broker.client(Role.GATEWAY, fleet.config.operator).connect())
    try:
        summary = run_simulation(fleet, tee, start_ms=START_MS, duration_s=45 * 60, speed=0, root=broker.root)
        assert summary.total_published > 65_535
        assert (tee.client.pending, tee.client.lost, tee.client.refused) == (0, 0, 0)
        deadline = time.monotonic() + 30
        while len(received) < len(tee.qos1) and time.monotonic() < deadline:
            time.sleep(0.1)
        with lock:
            assert sorted(received) == sorted(tee.qos1)
        assert len(tee.qos1) == summary.published[Channel.EVENT] + summary.published[Channel.STATE]
    finally:
        tee.client.close()
        sub.close()


def test_publishing_while_the_broker_restarts_waits_and_does_not_count_dropped_qos0_as_pending() -> None:
    binary = services.mosquitto_binary()
    port = free_port()
    root = f"sz-bp-{uuid.uuid4().hex[:6]}"
    access = generate(root, [OPERATOR])  # the same users when it comes back
    with mosquitto(binary, port, access=access) as running:
        pub = MqttClient(url_for(access.find(Role.GATEWAY, OPERATOR), running.url), f"pub-{root}").connect()
    errors: list[BaseException] = []

    def publish_while_away() -> None:
        try:
            for n in range(10):  # kept by paho for the reconnection
                pub.publish(f"{root}/v1/{OPERATOR}/bike-0001/event", b"%d" % n, qos=1)
            for n in range(70_000):  # more numbers than paho has: waits for the QoS 1 ones above
                pub.publish(f"{root}/v1/{OPERATOR}/bike-0001/telemetry", b"%d" % n, qos=0)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    try:
        deadline = time.monotonic() + 5
        while pub.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pub.connected
        worker = threading.Thread(target=publish_while_away)
        worker.start()
        deadline, seen = time.monotonic() + 20, -1
        while (pub.lost < 64_000 or pub.lost != seen) and time.monotonic() < deadline:
            seen = pub.lost  # until the worker stops dropping: blocked, not between two publishes
            time.sleep(0.3)
        assert pub.lost >= 64_000 and pub.pending == 10  # dropped QoS 0 are not pending; the QoS 1 wait
        assert worker.is_alive()  # blocked: the next numbers would come round to the unacknowledged ones
        with mosquitto(binary, port, access=access):
            worker.join(60)
            assert not worker.is_alive() and errors == []
            pub.flush(30)
            assert pub.pending == 0 and pub.refused == 0
            assert pub.lost <= 70_000
    finally:
        with contextlib.suppress(BrokerUnavailable):  # only where an assertion above has already failed
            pub.close(timeout=5)
