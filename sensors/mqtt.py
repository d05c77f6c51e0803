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
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
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
        tls = parts.scheme in ("mqtts", "ssl")
        if not (tls or parts.scheme in ("mqtt", "tcp")) or not parts.hostname:
            raise SmartZoneError(f"MQTT URL {redact(url)!r} must look like mqtt://host:port or mqtts://host:port")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), username, password, tls)


def redact(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what logs and errors may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostport}").geturl()


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
        max_pending: int = 20_000,
        ca_file: str | None = None,
    ) -> None:
        """``ca_file``: the PEM CA that signed the broker's certificate, for ``mqtts://`` (else the system's CAs)."""
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
        self._max_pending = max_pending
        self._ca_file = ca_file
        self._subscriptions: list[tuple[str, int]] = []
        self._routes: list[tuple[str, Handler]] = []  # (filter without $share/<group>/, handler)
        self._matcher = MQTTMatcher()  # filter -> its handlers; rebuilt by each subscribe
        self._route_cache: dict[str, list[Handler]] = {}  # topic -> its handlers (a trie walk per message is dear)
        self._pending = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._outcome: str | None = None
        self._subacks: dict[int, threading.Event] = {}
        self._refused_subs: list[int] = []
        self._track = threading.Lock()
        self._sent: dict[int, str] = {}  # mid -> topic of a publish not yet confirmed
        self._early: dict[int, Any] = {}  # mid -> reason code of a confirmation that came before its mid was kept
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
            props.SessionExpiryInterval = 3600
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
        client.max_inflight_messages_set(100)
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

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self._outcome = f"broker refused the connection: {reason}"
            return
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

    def close(self, timeout: float = 10.0) -> None:
        """Disconnect cleanly (no last will) after the queued messages have left."""
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
        """Queue ``payload`` on ``topic``; blocks while ``max_pending`` messages have not yet left."""
        client = self._require()
        with self._cond:
            while self._pending >= self._max_pending:
                self._cond.wait(1.0)
            self._pending += 1
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            with self._cond:
                self._pending -= 1
            raise SmartZoneError(f"publish on {topic!r} failed: {paho.error_string(info.rc)}")
        if self.protocol_version == "5":  # to name the topic of a refusal; the confirmation may come first
            with self._track:
                early = self._early.pop(info.mid, None)
                if early is None:
                    self._sent[info.mid] = topic
            if early is not None:
                self._confirmed(topic, early)

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if self.protocol_version == "5":  # only MQTT 5 confirmations carry a reason
            with self._track:
                topic = self._sent.pop(mid, None)
                if topic is None:
                    self._early[mid] = reason
            if topic is not None:
                self._confirmed(topic, reason)
        with self._cond:
            self._pending -= 1
            if self._pending <= 0 or self._pending < self._max_pending:
                self._cond.notify_all()

    def _confirmed(self, topic: str, reason: Any) -> None:
        if not getattr(reason, "is_failure", False):
            return
        with self._track:
            self.refused += 1
            first = topic not in self._warned
            self._warned.add(topic)
        log.log(logging.WARNING if first else logging.DEBUG, "the broker refused a publish on %s: %s", topic, reason)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every message published so far has been sent (QoS 0) or acknowledged (QoS 1)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrokerUnavailable(self.url, f"{self._pending} messages still unacknowledged")
                self._cond.wait(min(left, 0.5))

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
