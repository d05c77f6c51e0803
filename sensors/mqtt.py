"""The paho-mqtt 2.x adapter: the only module that imports paho.

It connects with MQTT v5 where the broker speaks it and falls back to 3.1.1 (amqtt), over TLS for
``mqtts://`` URLs (TLS 1.2+, verified against a CA file), reconnects with backoff, re-subscribes after
every reconnect, can leave a last will, acknowledges QoS 1 messages only when the handler says they are
stored (manual ack), and lets a publisher wait until everything it sent has left (``flush``).

Each ``subscribe`` call keeps its own handler: a message goes to every handler whose filters match its
topic (``$share/<group>/`` removed before matching); a message no filter matches is acknowledged and
dropped. A QoS 1 publish the broker refuses (MQTT 5 PUBACK with a failure reason, e.g. "Not authorized"
outside the ACL) is counted in ``refused`` and logged; under 3.1.1 a broker drops it without telling.
Passwords never reach a log line or an error message: ``url`` is the address with the password masked.

A client with ``persistent_session`` keeps its session (subscriptions and queued QoS 1 messages) at the broker
for ``session_expiry_s`` after it goes away (MQTT 5; under 3.1.1 the broker's own expiry applies); a member
of a shared subscription that stays away longer gives its share back to the group.

Publishing never fails for flow control: ``publish`` waits (back-pressure) while ``max_pending`` messages are
out, while the broker's Receive Maximum of QoS 1 messages are unacknowledged (paho itself queues nothing),
or while paho's 16-bit message number would come round to one still unacknowledged. QoS 1 messages published
while the broker is away wait in paho for the reconnection; QoS 0 ones are dropped and counted in ``lost``
(never left pending). With ``redeliver_unmatched_s``, a QoS 1 message the broker acknowledged with "No matching
subscribers" (MQTT 5; e.g. Mosquitto 2.0 just restarted, before the members of a shared subscription have come
back) is published again each second for that long after its first publish, then counted in ``unmatched``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensors.errors import BrokerUnavailable, SmartZoneError
from sensors.ports import Received
from sensors.redaction import redact_url as redact

log = logging.getLogger(__name__)

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
Handler = Callable[[Received], None]
ROUTE_CACHE_TOPICS = 100_000
"""Topics whose handlers are remembered (a fleet of 30,000 vehicles on three channels fits)."""


@dataclass(frozen=True, slots=True)
class Will:
    """A last will: published by the broker, retained, when the connection dies uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens, parsed from ``mqtt[s]://[user[:password]@]host[:port]`` (user and password
    URL-quoted); ``mqtts`` (or ``ssl``) means TLS, on port 8883 unless given."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if "@" in parts.path + parts.query + parts.fragment:  # a "/", "?" or "#" in the password, not quoted
            raise SmartZoneError(f"MQTT URL {masked(url)!r}: URL-quote its user and password (%2F for /, %23 for #)")
        try:
            port = parts.port
        except ValueError:
            raise SmartZoneError(f"MQTT URL {masked(url)!r} has a port that is not a number") from None
        tls = parts.scheme in ("mqtts", "ssl")
        if not (tls or parts.scheme in ("mqtt", "tcp")) or not parts.hostname:
            raise SmartZoneError(f"MQTT URL {masked(url)!r} must look like mqtt://host:port or mqtts://host:port")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port or (8883 if tls else 1883), username, password, tls)


def masked(url: str) -> str:
    """``url`` for an error about its form: everything between ``//`` and its last ``@`` masked (a password with
    an unquoted ``/``, ``?`` or ``#`` would escape ``redact``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else redact(url)


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


RECEIVE_MAXIMUM_311 = 1_000
"""QoS 1 messages in flight at once under MQTT 3.1.1 (MQTT 5 brokers say how many they take in CONNACK)."""
_OK, _NO_CONN = paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN
NO_MATCHING_SUBSCRIBERS = 0x10
"""The MQTT 5 PUBACK reason of a publish the broker took but routed to nobody."""
REDELIVER_PAUSE_S = 1.0
"""Pause before a message routed to nobody is published again."""
MID_WINDOW = 65_535 - 1_024
"""How many message numbers may be handed out after the oldest message still out: paho numbers publishes (and
subscriptions) 1..65535 in turn and refuses one whose number is still in use ("Message queue full"); the
margin covers subscriptions made meanwhile."""


class _Flow:
    """The book of messages handed to paho and not yet gone, for back-pressure; guarded by ``lock``.

    A message is kept from its publish until paho reports it written (QoS 0) or acknowledged (QoS 1), under its
    message number: a QoS 0 one with paho's info (to see whether it was lost with a connection), a QoS 1 one with
    its place in the order of publishing (``issued``), its topic (to name a refusal) and, when it may be published
    again if routed to nobody (``redeliver_s``), its payload and first publish time; such a message then waits in
    ``held`` (still pending) until a publisher thread sends it again. Only QoS 1 messages can
    grow old while others leave (paho writes in order; acknowledgements come later): ``order`` keeps them oldest
    first, to stop before paho's numbers come round to one of them.
    """

    def __init__(self, max_pending: int, redeliver_s: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # publishers waiting for room
        self.empty = threading.Condition(self.lock)  # flushes waiting for nothing to be left
        self.max_pending = max_pending
        self.low_water = max_pending - max(1, max_pending // 8)  # wake a blocked publisher below this
        self.issued = 0  # publishes handed to paho so far
        self.reserved = 0  # publishes being handed over right now (their number not yet known)
        self.qos0: dict[int, paho.MQTTMessageInfo] = {}
        self.qos1: dict[int, tuple[int, str, bytes | None, float]] = {}  # mid -> (issued, topic, payload, first)
        self.order: deque[tuple[int, int]] = deque()  # (issued, mid) of QoS 1 messages; settled ones dropped lazily
        self.early: dict[int, Any] = {}  # mid -> reason of a confirmation that came before its publish returned
        self.receive_maximum = RECEIVE_MAXIMUM_311  # QoS 1 messages out at once (the broker's Receive Maximum)
        self.blocked = 0  # publishers waiting on ``room``
        self.flushing = 0  # callers waiting on ``empty``
        self.crowded = False  # paho refused a number still in use: wait for the next settlement
        self.lost = 0
        self.redeliver_s = redeliver_s
        self.held: deque[tuple[float, str, bytes, float]] = deque()  # (due, topic, payload, first) routed to nobody
        self.resending = 0  # held messages taken by a publisher thread, not yet handed to paho again
        self.unmatched = 0  # messages still routed to nobody ``redeliver_s`` after their first publish

    @property
    def pending(self) -> int:
        return len(self.qos0) + len(self.qos1) + self.reserved + len(self.held) + self.resending

    def has_room(self, qos: int) -> bool:
        if self.crowded or len(self.qos0) + len(self.qos1) + self.reserved >= self.max_pending:
            return False
        if qos and len(self.qos1) + self.reserved >= self.receive_maximum:
            return False
        order, qos1 = self.order, self.qos1
        while order and self.issued - order[0][0] >= MID_WINDOW:
            index, mid = order[0]
            kept = qos1.get(mid)
            if kept is not None and kept[0] == index:
                return False  # the next numbers would come round to this one, still out
            order.popleft()
        return True

    def wait_for_room(self, qos: int) -> None:
        self.blocked += 1
        try:
            while not self.has_room(qos):
                if not self.room.wait(1.0):
                    self.crowded = False  # retry a refused number at least once a second
        finally:
            self.blocked -= 1

    def track(
        self, mid: int, index: int, topic: str, info: paho.MQTTMessageInfo | None, kept: bytes | None, first: float
    ) -> Any:
        """Keep a message paho took (``info`` for QoS 0 only; ``kept``: the payload of one that may be published
        again); the reason if its confirmation came first."""
        self.reserved -= 1
        if self.early:
            reason = self.early.pop(mid, None)
            if reason is not None:
                if kept is not None and reason == NO_MATCHING_SUBSCRIBERS:
                    self.hold(topic, kept, first)
                self.changed()
                return reason
        if info is not None:
            self.qos0[mid] = info
        else:
            self.qos1[mid] = (index, topic, kept, first)
            self.order.append((index, mid))
        return None

    def hold(self, topic: str, payload: bytes, first: float) -> None:
        """Keep a message the broker routed to nobody, to publish it again; count it once its time is up."""
        now = time.monotonic()
        if now - first < self.redeliver_s:
            self.held.append((now + REDELIVER_PAUSE_S, topic, payload, first))
        else:
            self.unmatched += 1

    def take_due(self, now: float) -> list[tuple[str, bytes, float]]:
        """The held messages whose pause is over, counted in ``resending`` until handed to paho again."""
        due = []
        while self.held and self.held[0][0] <= now:
            _, topic, payload, first = self.held.popleft()
            due.append((topic, payload, first))
        self.resending += len(due)
        return due

    def settle(self, mid: int, reason: Any) -> str | None:
        """Forget a message that has gone; its topic if the broker refused it."""
        if self.qos0.pop(mid, None) is not None:
            refused = None
        else:
            kept = self.qos1.pop(mid, None)
            if kept is None:
                if self.reserved:  # its publish has not returned yet
                    self.early[mid] = reason
                return None
            refused = kept[1] if reason.is_failure else None
            if kept[2] is not None and reason == NO_MATCHING_SUBSCRIBERS:
                self.hold(kept[1], kept[2], kept[3])
            if self.blocked and (
                self.crowded or self.issued - kept[0] >= MID_WINDOW or len(self.qos1) <= self.receive_maximum * 7 // 8
            ):
                self.crowded = False
                self.room.notify_all()
        if self.blocked and len(self.qos0) + len(self.qos1) <= self.low_water:
            self.room.notify_all()
        if self.flushing and not self.pending:
            self.empty.notify_all()
        return refused

    def forget_lost(self, every_qos0: bool) -> None:
        """Drop QoS 0 messages that will never be written: all of them when the connection has just gone,
        else those paho has marked lost."""
        gone = [mid for mid, info in self.qos0.items() if every_qos0 or info.rc == paho.MQTT_ERR_CONN_LOST]
        for mid in gone:
            del self.qos0[mid]
        self.lost += len(gone)
        if gone:
            self.changed()

    def changed(self) -> None:
        """Wake whoever waits: something left without a confirmation, or was never kept."""
        self.crowded = False
        if self.blocked:
            self.room.notify_all()
        if self.flushing:
            self.empty.notify_all()


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
    ) -> None:
        """``ca_file``: the PEM CA that signed the broker's certificate, for ``mqtts://`` (else the system's CAs).

        ``session_expiry_s``: how long the broker keeps a ``persistent_session`` after the connection ends (MQTT 5).
        ``redeliver_unmatched_s``: how long to keep publishing again a QoS 1 message routed to no subscriber
        (0: never; retained messages never are).
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
        self._subscriptions: list[tuple[str, int]] = []
        self._routes: list[tuple[str, Handler]] = []  # (filter without $share/<group>/, handler)
        self._matcher = MQTTMatcher()  # filter -> its handlers; rebuilt by each subscribe
        self._route_cache: dict[str, list[Handler]] = {}  # topic -> its handlers (a trie walk per message is dear)
        if max_pending < 1:
            raise SmartZoneError(f"max_pending must be at least 1, not {max_pending}")
        self._flow = _Flow(min(max_pending, MID_WINDOW), redeliver_unmatched_s)
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
            self._expect_suback(client.subscribe(self._subscriptions)[1])
        self._connected.set()
        self._outcome = "ok"

    def _expect_suback(self, mid: int | None) -> None:
        if mid is not None:
            self._subacks.setdefault(mid, threading.Event())

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, codes: Any, _p: Any = None) -> None:
        if any(getattr(code, "is_failure", False) or code == 0x80 for code in codes):
            self._refused_subs.append(mid)
        self._subacks.setdefault(mid, threading.Event()).set()

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

    def close(self, timeout: float = 10.0, linger_s: float = 0.0) -> None:
        """Disconnect cleanly (no last will) after the queued messages have left.

        ``linger_s``: stay connected that long after the last acknowledgement, for brokers that acknowledge a
        message before routing it and drop what is still unrouted when its publisher disconnects (amqtt 0.12).
        """
        if self._client is None:
            return
        try:
            self.flush(timeout)
            if linger_s > 0:
                time.sleep(linger_s)
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
        routes = [*self._routes, *((_match_filter(f), handler) for f, _ in filters)]
        matcher = MQTTMatcher()
        for topic_filter, each in routes:
            try:
                matcher[topic_filter].append(each)
            except KeyError:
                matcher[topic_filter] = [each]
        # replaced whole: the network thread reads them unlocked
        self._routes, self._matcher, self._route_cache = routes, matcher, {}
        self._subscriptions.extend(filters)
        if self._client is not None:
            self._expect_suback(self._client.subscribe(filters)[1])
            self._wait_subacks(10.0)

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
        received = Received(msg.topic, bytes(msg.payload), time.time(), ack)
        for handler in handlers:
            try:
                handler(received)
            except SmartZoneError:
                log.exception("handler failed on %s; message left unacknowledged", msg.topic)

    def _require(self) -> paho.Client:
        if self._client is None:
            raise SmartZoneError(f"MQTT client {self.client_id} is not connected; call connect() first")
        return self._client
