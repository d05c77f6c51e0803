"""What each QoS survives against a real Mosquitto: broker restarts, departed group members, secrets in logs.

Each test starts its own Mosquitto with the project's config (``smartzone.broker.mosquitto``) and restarts it on
the same port with the same data folder and logins, as an operator's service manager would.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import quote

import pytest

from sensors.codec import decode, encode
from sensors.errors import BrokerUnavailable, SmartZoneError
from sensors.messages import Event
from sensors.mqtt import BrokerAddress, MqttClient
from sensors.ports import Received
from sensors.topics import Channel, shared, subscription, topic_for
from simulator.run import RunSummary
from smartzone.broker import RunningBroker, mosquitto
from smartzone.broker_access import BrokerAccess, Role, generate, url_for
from smartzone.parts import make_fleet, run_simulator
from smartzone.settings import Settings
from tests import services
from tests.integration.test_mqtt import event

pytestmark = pytest.mark.services


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


class Seen:
    """The distinct event numbers a subscriber acknowledged."""

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.deliveries = 0

    def __call__(self, item: Received) -> None:
        decoded = decode(item.topic, item.payload)
        assert isinstance(decoded, Event)
        self.seqs.add(decoded.seq)
        self.deliveries += 1
        item.ack()


class Site:
    """A root, its logins and a port: what stays the same across restarts of the broker."""

    def __init__(self, tmp_path: Path) -> None:
        self.binary = services.mosquitto_binary()
        self.port = services.free_port()
        self.root = f"sz-durable-{uuid.uuid4().hex[:8]}"
        self.access: BrokerAccess = generate(self.root, ["op"])
        self.data_dir = tmp_path / "mosquitto"
        self.base = f"mqtt://127.0.0.1:{self.port}"
        self.topic = topic_for("op", "bike-0001", Channel.EVENT, self.root)

    def broker(self) -> AbstractContextManager[RunningBroker]:
        return mosquitto(self.binary, self.port, access=self.access, data_dir=self.data_dir)

    def aggregator(
        self, name: str, handler: Callable[[Received], None], expiry_s: int = 600, vouchers: bool = False
    ) -> MqttClient:
        """A persistent member of the aggregators' shared subscription to events (and riders' vouchers), connected."""
        url = url_for(self.access.find(Role.AGGREGATOR), self.base)
        client = MqttClient(url, f"agg-{name}-{self.root}", persistent_session=True, session_expiry_s=expiry_s)
        channels = (Channel.EVENT, Channel.VOUCHER) if vouchers else (Channel.EVENT,)
        client.subscribe([(shared(subscription(c, self.root)), 1) for c in channels], handler)
        return client.connect()

    def gateway(self, redeliver_unmatched_s: float = 0.0) -> MqttClient:
        url = url_for(self.access.find(Role.GATEWAY, "op"), self.base)
        return MqttClient(url, f"gw-{self.root}", redeliver_unmatched_s=redeliver_unmatched_s).connect()

    def publish(self, client: MqttClient, seqs: range, qos: int = 1) -> None:
        for seq in seqs:
            client.publish(self.topic, encode(event(seq)), qos=qos)


def test_qos1_events_survive_a_broker_restart_at_least_once(tmp_path: Path) -> None:
    site = Site(tmp_path)
    seen = Seen()
    gateway = None
    with site.broker():
        aggregator = site.aggregator("a", seen)
        gateway = site.gateway(redeliver_unmatched_s=60)
        site.publish(gateway, range(0, 50))
        gateway.flush()
        assert wait_until(lambda: len(seen.seqs) == 50, 10)
        aggregator.close()  # it goes away; its session keeps its share
        site.publish(gateway, range(50, 100))  # queued for it at the broker
        gateway.flush()
    try:
        assert wait_until(lambda: not gateway.connected, 10)
        site.publish(gateway, range(100, 120))  # while the broker is away: kept by the publisher
        time.sleep(2)
        with site.broker():
            assert wait_until(lambda: gateway.connected, 40)
            site.publish(gateway, range(120, 150))  # before the aggregator is back
            time.sleep(1)
            aggregator = site.aggregator("a", seen)
            gateway.flush(90)
            assert wait_until(lambda: len(seen.seqs) == 150, 30)
            aggregator.close()
            gateway.close()
    finally:
        if gateway.connected:
            gateway.close()
    assert seen.seqs == set(range(150))  # none lost (a message may come twice: at least once)
    assert gateway.unmatched == 0


def test_the_simulator_finishes_through_a_broker_restart_and_every_event_arrives(tmp_path: Path) -> None:
    site = Site(tmp_path)
    settings = Settings(
        data_dir=tmp_path, vehicles=20, sim_minutes=20, speed=200, seed=7, operator="op", topic_root=site.root
    )
    fleet = make_fleet(settings, 31337)
    events: set[tuple[str, int]] = set()

    def store(item: Received) -> None:
        decoded = decode(item.topic, item.payload)
        if isinstance(decoded, Event):
            events.add((decoded.vehicle_id, decoded.seq))
        item.ack()

    summaries: list[RunSummary] = []
    url = url_for(site.access.find(Role.GATEWAY, "op"), site.base)
    options = {"settings": settings, "fleet": fleet, "mqtt_url": url, "protocol": "auto", "stop": threading.Event()}
    simulator = threading.Thread(target=lambda: summaries.append(run_simulator(**options)))  # type: ignore[arg-type]
    with site.broker():
        aggregator = site.aggregator("a", store, vouchers=True)  # the riders' vouchers are QoS 1 too
        simulator.start()
        assert wait_until(lambda: len(events) >= 10, 30)
    time.sleep(2)
    with site.broker():
        simulator.join(timeout=180)
        assert summaries, "the simulator printed no summary"
        published = summaries[0].published[Channel.EVENT]
        assert wait_until(lambda: len(events) == published, 60), f"{len(events)} of {published} events arrived"
        aggregator.close()
    summary = summaries[0]
    assert (summary.sim_seconds, summary.stopped_early, summary.unmatched) == (20 * 60, False, 0)
    assert summary.dropped_qos0 <= summary.published[Channel.TELEMETRY]  # a figure, not a failure


def test_a_departed_members_share_goes_back_to_the_group_after_its_session_expires(tmp_path: Path) -> None:
    site = Site(tmp_path)
    staying, leaving = Seen(), Seen()
    with site.broker():
        remaining = site.aggregator("stays", staying, expiry_s=1)
        departed = site.aggregator("leaves", leaving, expiry_s=1)
        departed.close()  # not a clean session: the broker keeps it for its expiry, 1 s
        time.sleep(3)
        gateway = site.gateway()
        site.publish(gateway, range(200))
        gateway.flush()
        assert wait_until(lambda: len(staying.seqs) == 200, 15), f"{len(staying.seqs)} of 200 reached the live member"
        back = site.aggregator("leaves", leaving, expiry_s=1)  # the session is gone: nothing was queued for it
        time.sleep(1)
        assert leaving.seqs == set()
        for client in (back, remaining, gateway):
            client.close()


def test_a_member_that_unsubscribes_before_leaving_gives_its_share_back_at_once(tmp_path: Path) -> None:
    """With a long session expiry a member that just disconnects keeps getting a share for its session; one that
    unsubscribes from the shared filter first (as ``AggregatorPart.run`` does on stop) leaves nothing behind."""
    site = Site(tmp_path)
    staying, leaving = Seen(), Seen()
    with site.broker():
        remaining = site.aggregator("stays", staying, expiry_s=600)
        departed = site.aggregator("leaves", leaving, expiry_s=600)
        departed.unsubscribe([shared(subscription(Channel.EVENT, site.root))])
        departed.close()
        gateway = site.gateway()
        site.publish(gateway, range(200))
        gateway.flush()
        assert wait_until(lambda: len(staying.seqs) == 200, 15), f"{len(staying.seqs)} of 200 reached the live member"
        for client in (remaining, gateway):
            client.close()


def test_qos0_published_while_the_broker_is_away_is_counted_as_dropped_not_pending(tmp_path: Path) -> None:
    site = Site(tmp_path)
    seen = Seen()
    with site.broker():
        aggregator = site.aggregator("a", seen)
        gateway = site.gateway(redeliver_unmatched_s=60)
        aggregator.close()
    try:
        assert wait_until(lambda: not gateway.connected, 10)
        site.publish(gateway, range(100), qos=0)
        site.publish(gateway, range(100, 105), qos=1)
        assert (gateway.dropped_qos0, gateway.pending) == (100, 5)  # only the QoS 1 ones wait
        with site.broker():
            assert wait_until(lambda: gateway.connected, 40)
            aggregator = site.aggregator("a", seen)
            gateway.flush(90)  # the QoS 1 ones go out after the reconnection; nothing is left pending
            assert gateway.pending == 0
            assert wait_until(lambda: seen.seqs == set(range(100, 105)), 10)
            aggregator.close()
            gateway.close()
    finally:
        if gateway.connected:
            gateway.close()


def test_a_qos1_message_routed_to_nobody_is_published_again_for_a_while_then_counted(tmp_path: Path) -> None:
    site = Site(tmp_path)
    with site.broker():
        gateway = site.gateway(redeliver_unmatched_s=1.5)
        site.publish(gateway, range(3))  # no subscriber at all: "No matching subscribers" each time
        gateway.publish(topic_for("op", "bike-0001", Channel.STATE, site.root), b"{}", qos=1, retain=True)
        gateway.flush(30)
        assert (gateway.pending, gateway.unmatched) == (0, 3)  # a retained state is kept by the broker: not again
        gateway.close()


def test_no_password_reaches_a_log_line_or_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    site = Site(tmp_path)
    user = site.access.find(Role.GATEWAY, "op")
    url = url_for(user, site.base)
    caplog.set_level(logging.DEBUG)
    errors: list[str] = [repr(BrokerAddress.parse(url))]
    with site.broker():
        client = MqttClient(url, f"secret-{site.root}").connect()
        wrong = url.replace(quote(user.password, safe=""), "not-it-either")
        with pytest.raises(BrokerUnavailable) as refused:
            MqttClient(wrong, f"wrong-{site.root}", protocol="5").connect(timeout=5)
        errors.append(str(refused.value))
    assert wait_until(lambda: not client.connected, 10)  # the broker went: a warning names it
    with site.broker():
        assert wait_until(lambda: client.connected, 40)
        client.close()
    with pytest.raises(BrokerUnavailable) as absent:
        MqttClient(url, f"absent-{site.root}", protocol="5").connect(timeout=2)
    errors.append(str(absent.value))
    for unquoted in ("se#cret-word", "se/cret-word", "se?cret-word"):  # a password not URL-quoted
        with pytest.raises(SmartZoneError) as malformed:
            MqttClient(f"mqtt://{user.username}:{unquoted}@127.0.0.1:{site.port}", f"bad-{site.root}")
        errors.append(str(malformed.value))
    text = caplog.text + "\n".join(errors)
    assert "127.0.0.1" in text and "lost the broker" in caplog.text
    assert user.password not in text
    assert "not-it-either" not in text
    assert "cret-word" not in text and "se" + "#" not in text
