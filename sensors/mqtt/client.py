"""``MqttClient``: connection, subscriptions with manual acknowledgement, and publishing with back-pressure."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sensors.errors import BrokerUnavailable, SmartZoneError
from sensors.mqtt.address import BrokerAddress, Will
from sensors.mqtt.flow import MID_WINDOW, PublishFlow
from sensors.ports import Received
from sensors.redaction import redact_url as redact

log = logging.getLogger("sensors.mqtt")

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
Handler = Callable[[Received], None]
ROUTE_CACHE_TOPICS = 100_000
"""Topics whose handlers are remembered (a fleet of 30,000 vehicles on three channels fits)."""
_OK, _NO_CONN = paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN


def _match_filter(topic_filter: str) -> str:
    """The filter that matches topics: ``$share/<group>/<filter>`` delivers topics matching ``<filter>``."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return topic_filter


def _acknowledger(client: paho.Client, mid: int, qos: int, handlers: int) -> Callable[[], None]:
    """The ``ack`` of one message: confirms it to the broker once ``handlers`` calls have been made."""
    if qos == 0:
        return _nothing
    if handlers <= 1:

        def ack_one() -> None:
            client.ack(mid, qos)

        return ack_one
    left = [handlers]
    lock = threading.Lock()

    def ack() -> None:
        with lock:
            left[0] -= 1
            done = left[0] == 0
        if done:
            client.ack(mid, qos)

    return ack


def _nothing() -> None:
    return None


class MqttClient:
    """One connection to a broker, usable as a publisher and a subscriber."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        protocol: str = "auto",
        will: Will | None = None,
        persistent_session: bool = False,
        session_expiry_s: int = 3600,
        max_pending: int = 20_000,
        ca_file: str | None = None,
        redeliver_unmatched_s: float = 0.0,
        retain_as_published: bool = False,
    ) -> None:
        """``ca_file``: the PEM CA that signed the broker's certificate, for ``mqtts://`` (else the system's CAs).

        ``session_expiry_s``: how long the broker keeps a ``persistent_session`` after the connection ends (MQTT 5).
        ``redeliver_unmatched_s``: how long to keep publishing again a QoS 1 message routed to no subscriber
        (0: never; retained messages never are). ``retain_as_published``: messages arrive with the retain flag
        their publisher set (MQTT 5; else only messages retained before the subscription arrive flagged).
        """
        if protocol not in ("auto", *PROTOCOLS):
            raise SmartZoneError(f"MQTT protocol {protocol!r} must be auto, 5 or 3.1.1")
        self._address = BrokerAddress.parse(url)
        if ca_file is not None and not self._address.tls:
            raise SmartZoneError(f"a CA file is for mqtts:// URLs, not {redact(url)}")
        self._secret_url = url
        self.url = redact(url)
        self.client_id = client_id
        self._protocol = protocol
        self._will = will
        self._persistent = persistent_session
        if session_expiry_s < 0 or redeliver_unmatched_s < 0:
            raise SmartZoneError("session_expiry_s and redeliver_unmatched_s must not be negative")
        self._session_expiry_s = session_expiry_s
        self._ca_file = ca_file
        self._retain_as_published = retain_as_published
        self._subscriptions: list[tuple[str, int]] = []
        self._routes: list[tuple[str, Handler]] = []  # (filter without $share/<group>/, handler)
        self._matcher = MQTTMatcher()  # filter -> its handlers; rebuilt by each subscribe
        self._route_cache: dict[str, list[Handler]] = {}  # topic -> its handlers (a trie walk per message is dear)
        if max_pending < 1:
            raise SmartZoneError(f"max_pending must be at least 1, not {max_pending}")
        self._flow = PublishFlow(min(max_pending, MID_WINDOW), redeliver_unmatched_s)
        self._connected = threading.Event()
        self._outcome: str | None = None
        self._subacks: dict[int, threading.Event] = {}
        self._refused_subs: list[int] = []
        self._warned: set[str] = set()
        self._unrouted_logged = False
        self._client: paho.Client | None = None
        self.protocol_version: str | None = None
        self.refused = 0  # publishes the broker refused (MQTT 5: PUBACK with a failure reason)
        self.unrouted = 0  # messages no subscription's filter matched: acknowledged and dropped

    # --- connection -------------------------------------------------------------------------
    def connect(self, timeout: float = 10.0) -> MqttClient:
        """Connect (v5 first when ``auto``), start the network thread; ``BrokerUnavailable`` if it fails."""
        versions = ["5", "3.1.1"] if self._protocol == "auto" else [self._protocol]
        failure = ""
        for version in versions:
            failure = self._try(version, timeout)
            if not failure:
                self._wait_subacks(timeout)
                self.protocol_version = version
                log.info("connected to %s as %s with MQTT %s", self.url, self.client_id, version)
                return self
        raise BrokerUnavailable(self.url, failure)

    def _try(self, version: str, timeout: float) -> str:
        client = self._make_client(version)
        self._connected.clear()
        self._outcome = None
        a = self._address
        props = None
        if version == "5" and self._persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
        try:
            if version == "5":
                client.connect(a.host, a.port, 30, clean_start=not self._persistent, properties=props)
            else:
                client.connect(a.host, a.port, 30)
        except OSError as exc:
            return exc.strerror or str(exc)
        client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._outcome is None:
            time.sleep(0.01)
        if self._outcome == "ok":
            self._client = client
            return ""
        client.loop_stop()
        client.disconnect()
        return self._outcome or f"no CONNACK within {timeout:.0f} s"

    def _make_client(self, version: str) -> paho.Client:
        v5 = version == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=PROTOCOLS[version],
            clean_session=None if v5 else not self._persistent,
            manual_ack=True,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        if self._address.tls:
            context = ssl.create_default_context(cafile=self._ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            client.tls_set_context(context)
        client.max_queued_messages_set(0)
        client.max_inflight_messages_set(0)  # no queue in paho: the adapter keeps to the broker's receive maximum
        if self._address.username:
            client.username_pw_set(self._address.username, self._address.password)
        if self._will is not None:
            w = self._will
            client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, props: Any = None) -> None:
        if reason.is_failure:
            self._outcome = f"broker refused the connection: {reason}"
            return
        with self._flow.lock:
            self._flow.forget_lost(every_qos0=False)  # queued just as the last connection went
            if client.protocol == paho.MQTTv5:  # 65,535 where the broker does not say
                self._flow.receive_maximum = getattr(props, "ReceiveMaximum", 65_535)
        if self._subscriptions:
            self._expect_suback(client.subscribe(self._options(client, self._subscriptions))[1])
        self._connected.set()
        self._outcome = "ok"

    def _expect_suback(self, mid: int | None) -> None:
        if mid is not None:
            self._subacks.setdefault(mid, threading.Event())

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, codes: Any, _p: Any = None) -> None:
        if any(getattr(code, "is_failure", False) or code == 0x80 for code in codes):
            self._refused_subs.append(mid)
        self._subacks.setdefault(mid, threading.Event()).set()

    def _on_unsubscribe(self, _c: paho.Client, _u: Any, mid: int, *_rest: Any) -> None:
        self._subacks.setdefault(mid, threading.Event()).set()  # an UNSUBACK is waited for like a SUBACK

    def _wait_subacks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for mid, event in list(self._subacks.items()):
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise BrokerUnavailable(self.url, f"no SUBACK within {timeout:.0f} s")
            self._subacks.pop(mid, None)
        if self._refused_subs:
            self._refused_subs.clear()
            raise SmartZoneError(f"the broker at {self.url} refused a subscription to {self._subscriptions}")

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self._connected.clear()
        with self._flow.lock:  # the socket is closed: paho drops the QoS 0 packets not yet written
            self._flow.forget_lost(every_qos0=True)
        if self._outcome is None:
            self._outcome = f"connection closed before CONNACK ({reason})"
        elif self._client is not None and reason != 0:
            log.warning("lost the broker at %s (%s); reconnecting with backoff", self.url, reason)

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        if self._outcome is None:
            self._outcome = "connection failed"

    def probe_protocol(self, timeout: float = 10.0) -> str:
        """Find (with a short, clean connection) which protocol the broker speaks, and keep to it."""
        if self._protocol == "auto":
            probe = MqttClient(self._secret_url, f"{self.client_id}-probe"[:64], ca_file=self._ca_file)
            probe.connect(timeout)
            probe.close()
            self._protocol = probe.protocol_version or "3.1.1"
        return self._protocol

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages published and not yet written (QoS 0) or acknowledged (QoS 1)."""
        return self._flow.pending

    @property
    def lost(self) -> int:
        """QoS 0 messages dropped because the broker was away when they were published or written."""
        return self._flow.lost

    @property
    def dropped_qos0(self) -> int:
        """The same as ``lost``: QoS 0 messages dropped while the broker was away (a figure, not a failure)."""
        return self._flow.lost

    @property
    def unmatched(self) -> int:
        """QoS 1 messages still routed to no subscriber ``redeliver_unmatched_s`` after their first publish."""
        return self._flow.unmatched

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect cleanly (no last will) after the queued messages have left (see ``fence`` for brokers that
        drop what they have acknowledged but not yet routed)."""
        if self._client is None:
            return
        try:
            self.flush(timeout)
        finally:
            client, self._client = self._client, None  # a disconnect asked for is not a lost broker
            client.disconnect()
            client.loop_stop()

    # --- publishing ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Hand ``payload`` on ``topic`` to the network thread; never fails for flow control.

        It blocks (back-pressure) while ``max_pending`` messages have not yet left, while the broker's Receive
        Maximum of QoS 1 messages are unacknowledged (for a QoS 1 message), and while the oldest of them is so old
        that paho's 16-bit message number would come round to it again: a run of any length waits for
        acknowledgements instead of failing with "Message queue full". While the broker
        is away, QoS 1 messages wait in paho for the reconnection (and count as pending); QoS 0 messages
        are dropped by paho and counted in ``lost``.
        """
        if self._flow.held:
            self._redeliver()
        self._send(topic, payload, qos, retain)

    def _redeliver(self) -> None:
        """Publish again the messages routed to nobody whose pause is over (on the caller's thread)."""
        if self._client is None:
            return  # closed: ``publish`` says so
        with self._flow.lock:
            due = self._flow.take_due(time.monotonic())
        for topic, payload, first in due:
            self._send(topic, payload, 1, False, first, again=True)

    def _send(
        self, topic: str, payload: bytes, qos: int, retain: bool, first: float = 0.0, again: bool = False
    ) -> None:
        client, flow = self._client, self._flow
        if client is None:
            client = self._require()
        kept = payload if qos and not retain and flow.redeliver_s else None
        if kept is not None and not again:
            first = time.monotonic()
        while True:
            with flow.lock:
                if not flow.has_room(qos):
                    flow.wait_for_room(qos)
                index = flow.issued
                flow.issued = index + 1
                flow.reserved += 1
                if again:
                    flow.resending -= 1
                    again = False
            info = client.publish(topic, payload, qos, retain)
            rc = info.rc
            with flow.lock:
                if rc == _OK or (rc == _NO_CONN and qos > 0):
                    early = flow.track(info.mid, index, topic, None if qos else info, kept, first)
                    break
                flow.reserved -= 1
                flow.changed()
                if rc == _NO_CONN:  # QoS 0 while the broker is away: paho keeps nothing
                    flow.lost += 1
                    return
                if rc != paho.MQTT_ERR_QUEUE_SIZE:
                    raise SmartZoneError(f"publish on {topic!r} failed: {paho.error_string(rc)}")
                flow.crowded = True  # a number still in use after all: wait for a confirmation, try again
        if early is not None and early.is_failure:
            self._refused(topic, early)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        flow = self._flow
        with flow.lock:
            refused = flow.settle(mid, reason)
        if refused is not None:
            self._refused(refused, reason)

    def _refused(self, topic: str, reason: Any) -> None:
        with self._flow.lock:
            self.refused += 1
            first = topic not in self._warned
            self._warned.add(topic)
        log.log(logging.WARNING if first else logging.DEBUG, "the broker refused a publish on %s: %s", topic, reason)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every message published so far has been sent (QoS 0) or acknowledged (QoS 1).

        QoS 0 messages lost with a connection count in ``lost``, not here; messages routed to nobody are published
        again meanwhile (``redeliver_unmatched_s``).
        """
        deadline = time.monotonic() + timeout
        flow = self._flow
        while True:
            if flow.held:
                self._redeliver()
            with flow.lock:
                if not flow.pending:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerUnavailable(self.url, f"{flow.pending} messages still unacknowledged")
                flow.flushing += 1
                try:
                    flow.empty.wait(min(left, 0.5))
                finally:
                    flow.flushing -= 1

    # --- subscribing --------------------------------------------------------------------------
    def subscribe(self, filters: list[tuple[str, int]], handler: Handler) -> None:
        """Deliver messages matching ``filters`` to ``handler`` (on the network thread); kept across reconnects.

        Each call adds a subscription with its own handler; a message goes to every handler (once each)
        whose filters match its topic. Call it before ``connect`` to receive what a persistent session
        kept while this client was away; once connected, it returns only after the broker has confirmed.

        The handler must call ``Received.ack`` once the message is safely handled; only then does a QoS 1
        message count as delivered (with several handlers: once every one of them has acknowledged).
        A broker may deliver a message once per matching subscription: avoid overlapping filters.
        """
        self._set_routes([*self._routes, *((_match_filter(f), handler) for f, _ in filters)])
        self._subscriptions.extend(filters)
        if self._client is not None:
            self._expect_suback(self._client.subscribe(self._options(self._client, filters))[1])
            self._wait_subacks(10.0)

    def _options(self, client: paho.Client, filters: list[tuple[str, int]]) -> list[tuple[str, Any]]:
        """The filters as paho subscribes them: with MQTT 5 subscription options where retain is kept as published."""
        if not self._retain_as_published or client.protocol != paho.MQTTv5:
            return list(filters)
        return [(f, SubscribeOptions(qos=qos, retainAsPublished=True)) for f, qos in filters]

    def _set_routes(self, routes: list[tuple[str, Handler]]) -> None:
        matcher = MQTTMatcher()
        for topic_filter, each in routes:
            try:
                matcher[topic_filter].append(each)
            except KeyError:
                matcher[topic_filter] = [each]
        # replaced whole: the network thread reads them unlocked
        self._routes, self._matcher, self._route_cache = routes, matcher, {}

    def fence(self, topic: str, timeout: float = 30.0) -> bool:
        """Return once the broker has routed everything this client published before: it subscribes to ``topic``,
        publishes a unique marker there at QoS 1 and waits for it to come back (a broker routes one client's
        messages in order). False if it did not come back within ``timeout``.

        Some brokers acknowledge a QoS 1 message before routing it and drop what is still unrouted when its
        publisher disconnects (amqtt 0.12): a publisher about to disconnect fences first.
        """
        marker = f"fence {self.client_id} {time.monotonic_ns()}".encode()
        back = threading.Event()

        def arrived(item: Received) -> None:
            if item.payload == marker:
                back.set()
            item.ack()

        self.subscribe([(topic, 1)], arrived)
        try:
            self.publish(topic, marker, qos=1)
            return back.wait(timeout)
        finally:
            self.unsubscribe([topic])
            self._set_routes([(f, h) for f, h in self._routes if h is not arrived])

    def unsubscribe(self, filters: list[str], timeout: float = 10.0) -> None:
        """Stop receiving on ``filters`` (as given to ``subscribe``); once connected, returns after the UNSUBACK.

        A member of a shared subscription that leaves should unsubscribe before it disconnects: the broker then
        stops giving it a share at once, instead of queueing one for its session until the session expires.
        Messages already delivered still reach their handlers and must still be acknowledged.
        """
        gone = set(filters)
        self._subscriptions = [(f, q) for f, q in self._subscriptions if f not in gone]
        if self._client is not None and self._connected.is_set():
            self._expect_suback(self._client.unsubscribe(list(filters))[1])
            self._wait_subacks(timeout)

    def _handlers_for(self, topic: str) -> list[Handler]:
        cache = self._route_cache
        found = cache.get(topic)
        if found is not None:
            return found
        found = []
        for handlers in self._matcher.iter_match(topic):
            found += [h for h in handlers if h not in found]
        if len(cache) >= ROUTE_CACHE_TOPICS:
            cache.clear()  # bounded whatever topics a publisher invents
        cache[topic] = found
        return found

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        handlers = self._handlers_for(msg.topic)
        ack = _acknowledger(client, msg.mid, msg.qos, len(handlers))
        if not handlers:
            ack()  # a filter this client no longer has (e.g. kept by a persistent session): drop it
            self.unrouted += 1
            if not self._unrouted_logged:
                self._unrouted_logged = True
                log.warning(
                    "no subscription of %s matches %s; dropped (counted in unrouted)", self.client_id, msg.topic
                )
            return
        received = Received(msg.topic, bytes(msg.payload), time.time(), ack, msg.qos, bool(msg.retain))
        for handler in handlers:
            try:
                handler(received)
            except SmartZoneError:
                log.exception("handler failed on %s; message left unacknowledged", msg.topic)

    def _require(self) -> paho.Client:
        if self._client is None:
            raise SmartZoneError(f"MQTT client {self.client_id} is not connected; call connect() first")
        return self._client
