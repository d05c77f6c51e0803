"""The paho adapter against a real Mosquitto (and the in-process amqtt broker)."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
import uuid

import pytest

from sensors.codec import decode, encode
from sensors.errors import BrokerUnavailable
from sensors.messages import Event, EventType, Position, VehicleKind, VehicleState
from sensors.mqtt import MqttClient, Will
from sensors.ports import Received
from sensors.topics import Channel, shared, subscription, topic_for
from smartzone.broker import amqtt_broker, mosquitto
from smartzone.broker_access import Role, generate, url_for
from tests import services

pytestmark = pytest.mark.services


def unique_root() -> str:
    return f"sz-test-{uuid.uuid4().hex[:10]}"


def collect(client: MqttClient, filters: list[tuple[str, int]], ack: bool = True) -> queue.Queue[Received]:
    inbox: queue.Queue[Received] = queue.Queue()

    def handler(item: Received) -> None:
        inbox.put(item)
        if ack:
            item.ack()

    client.subscribe(filters, handler)
    return inbox


def take(inbox: queue.Queue[Received], n: int, seconds: float = 10.0) -> list[Received]:
    deadline = time.monotonic() + seconds
    got: list[Received] = []
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(inbox.get(timeout=0.1))
        except queue.Empty:
            pass
    return got


def event_seq(item: Received) -> int:
    decoded = decode(item.topic, item.payload)
    assert isinstance(decoded, Event)
    return decoded.seq


def event(seq: int) -> Event:
    return Event(
        "bike-0001",
        "op",
        VehicleKind.BIKE,
        seq,
        1_790_000_000_000 + seq,
        EventType.UNLOCK,
        Position(51.215, 4.396),
        10,
        rider="r",
    )


def test_an_event_published_through_mosquitto_arrives_decoded(mqtt_url: str) -> None:
    root = unique_root()
    sub = MqttClient(mqtt_url, f"sub-{root}").connect()
    pub = MqttClient(mqtt_url, f"pub-{root}").connect()
    try:
        assert sub.protocol_version == "5"
        inbox = collect(sub, [(subscription(Channel.EVENT, root), 1)])
        sent = event(1)
        topic = topic_for("op", "bike-0001", Channel.EVENT, root)
        pub.publish(topic, encode(sent), qos=1)
        pub.flush()
        [got] = take(inbox, 1)
        assert got.topic == topic
        assert decode(got.topic, got.payload) == sent
    finally:
        pub.close()
        sub.close()


def test_a_message_not_acknowledged_is_delivered_again_after_reconnecting(mqtt_url: str) -> None:
    root = unique_root()
    filters = [(subscription(Channel.EVENT, root), 1)]
    first = MqttClient(mqtt_url, f"agg-{root}", persistent_session=True)
    inbox = collect(first, filters, ack=False)
    first.connect()
    pub = MqttClient(mqtt_url, f"pub-{root}").connect()
    pub.publish(topic_for("op", "bike-0001", Channel.EVENT, root), encode(event(5)), qos=1)
    pub.flush()
    assert len(take(inbox, 1)) == 1
    first.close()  # the handler never acked: the broker still owes it
    second = MqttClient(mqtt_url, f"agg-{root}", persistent_session=True)
    again_inbox = collect(second, filters)  # subscribed before connecting: nothing the session kept is missed
    second.connect()
    try:
        again = take(again_inbox, 1)
        assert [event_seq(r) for r in again] == [5]
    finally:
        second.close()
        pub.close()


def test_two_aggregators_on_a_shared_subscription_split_the_messages(mqtt_url: str) -> None:
    root = unique_root()
    filters = [(shared(subscription(Channel.EVENT, root), f"g-{root}"), 1)]
    a = MqttClient(mqtt_url, f"a-{root}").connect()
    b = MqttClient(mqtt_url, f"b-{root}").connect()
    pub = MqttClient(mqtt_url, f"pub-{root}").connect()
    try:
        inbox_a, inbox_b = collect(a, filters), collect(b, filters)
        for seq in range(1, 101):
            pub.publish(topic_for("op", "bike-0001", Channel.EVENT, root), encode(event(seq)), qos=1)
        pub.flush()
        time.sleep(0.5)
        got_a, got_b = take(inbox_a, 100, 2), take(inbox_b, 100, 2)
        seqs = sorted(event_seq(r) for r in got_a + got_b)
        assert seqs == list(range(1, 101))  # each message once, to one of them
        assert got_a and got_b
    finally:
        for c in (a, b, pub):
            c.close()


def test_the_last_will_marks_the_vehicle_offline_when_its_link_dies(mqtt_url: str) -> None:
    root = unique_root()
    state_topic = topic_for("op", "bike-0001", Channel.STATE, root)
    will = encode(VehicleState("bike-0001", "op", 1, online=False))
    script = (
        "import sys, time\n"
        "from sensors.mqtt import MqttClient, Will\n"
        f"c = MqttClient({mqtt_url!r}, 'dev-{root}', will=Will({state_topic!r}, {will!r})).connect()\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    device = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert device.stdout is not None and device.stdout.readline().strip() == "up"
        device.kill()  # no DISCONNECT: the broker publishes the will
        device.wait()
        watcher = MqttClient(mqtt_url, f"watch-{root}").connect()
        try:
            [got] = take(collect(watcher, [(state_topic, 1)]), 1, seconds=90)
            state = decode(got.topic, got.payload)
            assert isinstance(state, VehicleState) and state.online is False
        finally:
            watcher.close()
            cleaner = MqttClient(mqtt_url, f"clean-{root}").connect()
            cleaner.publish(state_topic, b"", qos=1, retain=True)  # remove the retained state
            cleaner.close()
    finally:
        if device.poll() is None:
            device.kill()


def test_an_absent_broker_gives_one_error_naming_its_url() -> None:
    with pytest.raises(BrokerUnavailable) as caught:
        MqttClient("mqtt://127.0.0.1:1", "nobody").connect(timeout=2)
    assert "mqtt://127.0.0.1:1" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_adapter_falls_back_to_mqtt_311_with_the_embedded_broker() -> None:
    access = generate("sz", ["op"])
    with amqtt_broker(access=access) as broker:
        # amqtt stalls on an MQTT 5 CONNECT with a password instead of refusing it: "auto" waits for the timeout
        sub = MqttClient(url_for(access.find(Role.AGGREGATOR), broker.url), "fallback-sub").connect(timeout=2)
        gateway = url_for(access.find(Role.GATEWAY, "op"), broker.url)
        pub = MqttClient(gateway, "fallback-pub", protocol=broker.protocol).connect(timeout=5)
        try:
            assert sub.protocol_version == pub.protocol_version == "3.1.1"
            inbox = collect(sub, [("sz/v1/+/+/event", 1)])
            pub.publish("sz/v1/op/bike-0001/event", encode(event(1)), qos=1)
            pub.flush()
            assert len(take(inbox, 1)) == 1
        finally:
            pub.close()
            sub.close()


def test_a_message_no_subscription_matches_is_acknowledged_and_dropped(mqtt_url: str) -> None:
    root = unique_root()
    events, states = [(subscription(Channel.EVENT, root), 1)], [(subscription(Channel.STATE, root), 1)]
    first = MqttClient(mqtt_url, f"agg-{root}", persistent_session=True)
    collect(first, events)
    first.connect()
    first.close()  # the broker keeps the session and its subscription to events
    pub = MqttClient(mqtt_url, f"pub-{root}").connect()
    pub.publish(topic_for("op", "bike-0001", Channel.EVENT, root), encode(event(7)), qos=1)
    pub.close()
    second = MqttClient(mqtt_url, f"agg-{root}", persistent_session=True)
    collect(second, states)  # this process only handles states: nothing here takes the kept event
    second.connect()
    deadline = time.monotonic() + 5
    while second.unrouted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    second.close()
    assert second.unrouted == 1
    third = MqttClient(mqtt_url, f"agg-{root}", persistent_session=True)
    inbox = collect(third, events)
    third.connect()
    try:
        assert take(inbox, 1, seconds=1.0) == []  # it was acknowledged: not delivered again
    finally:
        third.close()


def test_a_will_is_a_retained_qos1_message_by_default() -> None:
    will = Will("t", b"x")
    assert (will.qos, will.retain) == (1, True)


def test_clients_reconnect_and_resubscribe_after_the_broker_restarts() -> None:
    binary = services.mosquitto_binary()
    port = services.free_port()
    root = unique_root()
    access = generate(root, ["op"])  # the same users when it comes back
    topic = topic_for("op", "bike-0001", Channel.EVENT, root)
    with mosquitto(binary, port, access=access) as broker:
        sub = MqttClient(url_for(access.find(Role.AGGREGATOR), broker.url), f"sub-{root}")
        inbox = collect(sub, [(subscription(Channel.EVENT, root), 1)])
        sub.connect()
        pub = MqttClient(url_for(access.find(Role.GATEWAY, "op"), broker.url), f"pub-{root}").connect()
    try:
        deadline = time.monotonic() + 5
        while (sub.connected or pub.connected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sub.connected and not pub.connected
        with mosquitto(binary, port, access=access):
            deadline = time.monotonic() + 40  # paho backs off from 1 s up to 30 s
            while not (sub.connected and pub.connected) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sub.connected and pub.connected
            got: list[Received] = []
            for _ in range(20):  # the re-subscription follows the CONNACK: publish until it is in place
                pub.publish(topic, encode(event(2)), qos=1)
                pub.flush()
                got = take(inbox, 1, seconds=0.5)
                if got:
                    break
            assert [decode(r.topic, r.payload) for r in got] == [event(2)]
            sub.close()
            pub.close()
    finally:
        for client in (sub, pub):
            if client.connected:
                client.close()
