"""Broker access: passwords, the per-role ACL and TLS, enforced by a real Mosquitto (and by amqtt)."""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensors.errors import BrokerUnavailable, SmartZoneError
from sensors.mqtt import BrokerAddress, MqttClient, redact
from sensors.ports import Received
from sensors.topics import Channel, topic_for
from smartzone.broker import BrokerTls, RunningBroker, amqtt_broker, mosquitto
from smartzone.broker_access import BrokerAccess, BrokerUser, Role, generate, mosquitto_hash, url_for
from tests import services

pytestmark = pytest.mark.services

ROOT = "sz-acl"
OPERATORS = ("op-a", "op-b")
VEHICLES = ("bike-0001", "bike-0002")


@dataclass(frozen=True)
class SecuredBroker:
    """A broker started with generated credentials, and the TLS files it was given."""

    running: RunningBroker
    access: BrokerAccess
    tls: BrokerTls | None

    def url(self, role: Role, name: str | None = None, *, tls: bool = False) -> str:
        base = self.running.tls_url if tls else self.running.url
        assert base is not None
        return url_for(self.access.find(role, name), base)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """One Mosquitto for this module: the project config, generated users and ACL, a TLS listener."""
    binary = services.mosquitto_binary()
    tls = services.make_test_tls(tmp_path_factory.mktemp("tls"))
    access = generate(ROOT, OPERATORS, VEHICLES)
    with mosquitto(binary, access=access, tls=tls) as running:
        yield SecuredBroker(running, access, tls)


def client(url: str, protocol: str = "auto", ca_file: Path | None = None) -> MqttClient:
    name = f"t-{uuid.uuid4().hex[:10]}"
    return MqttClient(url, name, protocol=protocol, ca_file=str(ca_file) if ca_file else None)


def inbox_of(subscriber: MqttClient, topic_filter: str) -> queue.Queue[Received]:
    inbox: queue.Queue[Received] = queue.Queue()

    def handler(item: Received) -> None:
        inbox.put(item)
        item.ack()

    subscriber.subscribe([(topic_filter, 1)], handler)
    return inbox


def topics(inbox: queue.Queue[Received], seconds: float) -> list[str]:
    """Every topic that arrives within ``seconds``."""
    deadline = time.monotonic() + seconds
    got: list[str] = []
    while time.monotonic() < deadline:
        try:
            got.append(inbox.get(timeout=0.05).topic)
        except queue.Empty:
            pass
    return got


def event_topic(vehicle: str, operator: str = "op-a", root: str = ROOT) -> str:
    return topic_for(operator, vehicle, Channel.EVENT, root)


@pytest.fixture()
def aggregator(secured: SecuredBroker) -> Iterator[queue.Queue[Received]]:
    """What the aggregator user receives on the whole project tree."""
    sub = client(secured.url(Role.AGGREGATOR))
    inbox = inbox_of(sub, f"{ROOT}/v1/#")
    sub.connect()
    try:
        yield inbox
    finally:
        sub.close()


# --- the files, without a broker -----------------------------------------------------------------
def test_passwords_never_show_in_a_repr_or_a_logged_url() -> None:
    access = generate(ROOT, OPERATORS, VEHICLES)
    secrets_ = [u.password for u in access.users]
    text = repr(access) + "".join(redact(url_for(u, "mqtt://127.0.0.1:1883")) for u in access.users)
    assert len(set(secrets_)) == len(secrets_) == 5
    assert not any(secret in text for secret in secrets_)
    assert not any(u.password in repr(BrokerAddress.parse(url_for(u, "mqtt://h:1"))) for u in access.users)


def test_a_url_built_for_a_user_parses_back_to_the_same_name_and_password() -> None:
    user = BrokerUser("aggregator@sz", "p@ss:w/rd %", Role.AGGREGATOR)
    address = BrokerAddress.parse(url_for(user, "mqtts://broker.example:8883"))
    assert (address.username, address.password, address.host, address.port, address.tls) == (
        "aggregator@sz",
        "p@ss:w/rd %",
        "broker.example",
        8883,
        True,
    )


def test_the_acl_gives_each_role_only_its_own_topics() -> None:
    acl = generate("sz", ["op-a"], ["bike-0001"]).acl_file()
    assert "user aggregator@sz\ntopic read sz/v1/#\n" in acl
    # a gateway writes under its operator and reads only its own fence (MqttClient.fence), no vehicle's messages
    assert "user gateway@op-a\ntopic read sz/v1/op-a/_fence/fence\ntopic write sz/v1/op-a/#\n" in acl
    assert acl.rstrip().endswith("pattern write sz/v1/+/%u/+")
    assert "user bike-0001" not in acl  # the pattern serves every vehicle
    assert "readwrite" not in acl and "\ntopic write sz/v1/#" not in acl  # nothing for anonymous clients


def test_an_aggregator_or_gateway_named_like_a_vehicle_is_refused() -> None:
    with pytest.raises(SmartZoneError, match="must not look like a vehicle id"):
        BrokerUser("aggregator", "x", Role.AGGREGATOR)
    with pytest.raises(SmartZoneError, match="vehicle id"):
        BrokerUser("bike*0001", "x", Role.VEHICLE)


def test_the_password_hash_has_the_mosquitto_passwd_layout() -> None:
    line = mosquitto_hash("secret", salt=b"\x00" * 12)
    assert line.startswith("$7$101$AAAAAAAAAAAAAAAA$") and len(line.split("$")[-1]) == 88


# --- Mosquitto enforces them -----------------------------------------------------------------------
def test_an_anonymous_client_is_refused(secured: SecuredBroker) -> None:
    with pytest.raises(BrokerUnavailable, match="Not authorized"):
        client(secured.running.url).connect(timeout=5)


def test_a_wrong_password_is_refused_and_not_shown(secured: SecuredBroker, caplog: pytest.LogCaptureFixture) -> None:
    url = url_for(BrokerUser("bike-0001", "not-the-password", Role.VEHICLE), secured.running.url)
    with caplog.at_level(logging.DEBUG), pytest.raises(BrokerUnavailable) as caught:
        client(url).connect(timeout=5)
    assert "not authorized" in str(caught.value).lower()
    assert "not-the-password" not in str(caught.value) + caplog.text


def test_a_vehicle_publishes_on_its_own_topic_and_the_aggregator_receives_it(
    secured: SecuredBroker, aggregator: queue.Queue[Received], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        vehicle = client(secured.url(Role.VEHICLE, "bike-0001")).connect()
    try:
        vehicle.publish(event_topic("bike-0001"), b"mine", qos=1)
        vehicle.flush()
        assert topics(aggregator, 1.0) == [event_topic("bike-0001")]
        assert vehicle.refused == 0
    finally:
        vehicle.close()
    assert secured.access.find(Role.VEHICLE, "bike-0001").password not in caplog.text


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_vehicle_publishing_under_another_vehicles_topic_is_refused_by_the_broker(
    secured: SecuredBroker, aggregator: queue.Queue[Received], protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    vehicle = client(secured.url(Role.VEHICLE, "bike-0001"), protocol).connect()
    try:
        with caplog.at_level(logging.WARNING, logger="sensors.mqtt"):
            vehicle.publish(event_topic("bike-0002"), b"forged", qos=1)
            vehicle.publish(event_topic("bike-0002", "op-b"), b"forged", qos=1)
            vehicle.publish(event_topic("bike-0001"), b"mine", qos=1)  # after the forged ones, on the same link
            vehicle.flush()
            assert topics(aggregator, 1.5) == [event_topic("bike-0001")]
        assert "lost the broker" not in caplog.text  # refusing a publish does not cost the link
        if protocol == "5":  # PUBACK "Not authorized" (0x87), counted and logged with the topic
            assert vehicle.refused == 2
            assert f"refused a publish on {event_topic('bike-0002')}: Not authorized" in caplog.text
        else:  # MQTT 3.1.1 has no way to say so: the broker drops it silently
            assert vehicle.refused == 0
    finally:
        vehicle.close()


def test_a_gateway_publishes_for_its_operator_but_not_for_another(
    secured: SecuredBroker, aggregator: queue.Queue[Received]
) -> None:
    gateway = client(secured.url(Role.GATEWAY, "op-a")).connect()
    try:
        gateway.publish(event_topic("bike-0002", "op-b"), b"not ours", qos=1)
        gateway.publish(event_topic("bike-0001", "op-a"), b"ours", qos=1)
        gateway.publish(topic_for("op-a", "bike-0777", Channel.TELEMETRY, ROOT), b"ours", qos=1)
        gateway.flush()
        assert topics(aggregator, 1.5) == [
            event_topic("bike-0001", "op-a"),
            topic_for("op-a", "bike-0777", Channel.TELEMETRY, ROOT),
        ]
        assert gateway.refused == 1
    finally:
        gateway.close()


def test_the_aggregator_user_cannot_publish(secured: SecuredBroker, aggregator: queue.Queue[Received]) -> None:
    publisher = client(secured.url(Role.AGGREGATOR)).connect()
    try:
        publisher.publish(event_topic("bike-0001"), b"forged", qos=1)
        publisher.flush()
        assert publisher.refused == 1
        assert topics(aggregator, 1.0) == []
    finally:
        publisher.close()


def test_a_vehicle_receives_nothing_not_even_its_own_messages(secured: SecuredBroker) -> None:
    vehicle = client(secured.url(Role.VEHICLE, "bike-0001"))
    inbox = inbox_of(vehicle, f"{ROOT}/v1/#")  # Mosquitto grants it, then filters every delivery by the ACL
    vehicle.connect()
    try:
        vehicle.publish(event_topic("bike-0001"), b"mine", qos=1)
        vehicle.flush()
        assert topics(inbox, 1.0) == []
    finally:
        vehicle.close()


def test_a_tls_client_with_the_test_ca_round_trips_a_message(secured: SecuredBroker) -> None:
    assert secured.tls is not None and secured.running.tls_url is not None
    ca = secured.tls.cafile
    sub = client(secured.url(Role.AGGREGATOR, tls=True), ca_file=ca)
    inbox = inbox_of(sub, f"{ROOT}/v1/+/+/event")
    sub.connect()
    vehicle = client(secured.url(Role.VEHICLE, "bike-0002", tls=True), ca_file=ca).connect()
    try:
        vehicle.publish(event_topic("bike-0002"), b"over tls", qos=1)
        vehicle.flush()
        got = inbox.get(timeout=5)
        assert (got.topic, got.payload) == (event_topic("bike-0002"), b"over tls")
    finally:
        vehicle.close()
        sub.close()


def test_a_tls_client_without_the_ca_cannot_connect(secured: SecuredBroker) -> None:
    with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client(secured.url(Role.VEHICLE, "bike-0001", tls=True)).connect(timeout=5)


def test_two_subscriptions_with_different_handlers_each_get_only_their_messages(secured: SecuredBroker) -> None:
    sub = client(secured.url(Role.AGGREGATOR)).connect()
    gateway = client(secured.url(Role.GATEWAY, "op-a")).connect()
    try:
        events = inbox_of(sub, f"$share/g-{uuid.uuid4().hex[:6]}/{ROOT}/v1/+/+/event")
        states = inbox_of(sub, f"{ROOT}/v1/+/+/state")
        gateway.publish(event_topic("bike-0001"), b"e", qos=1)
        gateway.publish(topic_for("op-a", "bike-0001", Channel.STATE, ROOT), b"s", qos=1)
        gateway.flush()
        assert topics(events, 1.0) == [event_topic("bike-0001")]
        assert topics(states, 0.2) == [topic_for("op-a", "bike-0001", Channel.STATE, ROOT)]
    finally:
        gateway.close()
        sub.close()


def test_a_demo_broker_lets_anonymous_clients_in_under_the_root_only() -> None:
    binary = services.mosquitto_binary()
    with mosquitto(binary, access=generate(ROOT, ["op-a"], demo=True)) as running:
        anonymous = client(running.url).connect()
        try:
            inbox = inbox_of(anonymous, f"{ROOT}/v1/#")
            anonymous.publish(event_topic("bike-0001"), b"demo", qos=1)
            anonymous.publish("elsewhere/topic", b"no", qos=1)
            anonymous.flush()
            assert topics(inbox, 1.0) == [event_topic("bike-0001")]
            assert anonymous.refused == 1
        finally:
            anonymous.close()


# --- amqtt, the in-process fallback -------------------------------------------------------------------
def test_the_embedded_amqtt_broker_checks_passwords_and_the_acl_too() -> None:
    access = generate(ROOT, ["op-a"], VEHICLES)
    with amqtt_broker(access=access) as running:
        with pytest.raises(BrokerUnavailable):
            client(running.url, "3.1.1").connect(timeout=5)
        wrong = BrokerUser("bike-0001", "wrong", Role.VEHICLE)
        with pytest.raises(BrokerUnavailable):
            client(url_for(wrong, running.url), "3.1.1").connect(timeout=5)
        sub = client(url_for(access.find(Role.AGGREGATOR), running.url), "3.1.1")
        inbox = inbox_of(sub, f"{ROOT}/v1/+/+/event")
        sub.connect(timeout=5)
        vehicle = client(url_for(access.find(Role.VEHICLE, "bike-0001"), running.url), "3.1.1").connect(timeout=5)
        try:
            vehicle.publish(event_topic("bike-0002"), b"forged", qos=1)
            vehicle.publish(event_topic("bike-0001"), b"mine", qos=1)
            vehicle.flush()
            assert topics(inbox, 1.5) == [event_topic("bike-0001")]
            with pytest.raises(SmartZoneError, match="refused a subscription"):
                vehicle.subscribe([(f"{ROOT}/v1/#", 1)], lambda item: None)
        finally:
            vehicle.close()
            sub.close()


def test_an_access_with_no_users_and_no_anonymous_clients_is_refused_before_starting() -> None:
    with pytest.raises(SmartZoneError, match="nobody could connect"), amqtt_broker(access=BrokerAccess(ROOT, ())):
        pass
