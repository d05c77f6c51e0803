"""The paho-mqtt 2.x adapter: the only module that imports paho.

It connects with MQTT v5 where the broker speaks it and falls back to 3.1.1 (amqtt), reconnects
with backoff, re-subscribes after every reconnect, can leave a last will, acknowledges QoS 1
messages only when the handler says they are stored (manual ack), and lets a publisher wait
until everything it sent has left (``flush``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensors.errors import BrokerUnavailable, SmartZoneError
from sensors.ports import Received

log = logging.getLogger(__name__)

PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}
Handler = Callable[[Received], None]


@dataclass(frozen=True, slots=True)
class Will:
    """A last will: published by the broker, retained, when the connection dies uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens, parsed from ``mqtt://[user[:password]@]host[:port]``."""

    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise SmartZoneError(f"MQTT URL {url!r} must look like mqtt://host:port")
        return cls(parts.hostname, parts.port or 1883, parts.username, parts.password)


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
    ) -> None:
        if protocol not in ("auto", *PROTOCOLS):
            raise SmartZoneError(f"MQTT protocol {protocol!r} must be auto, 5 or 3.1.1")
        self.url = url
        self.client_id = client_id
        self._address = BrokerAddress.parse(url)
        self._protocol = protocol
        self._will = will
        self._persistent = persistent_session
        self._max_pending = max_pending
        self._subscriptions: list[tuple[str, int]] = []
        self._handler: Handler | None = None
        self._pending = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._outcome: str | None = None
        self._subacks: dict[int, threading.Event] = {}
        self._refused: list[int] = []
        self._client: paho.Client | None = None
        self.protocol_version: str | None = None

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
            self._refused.append(mid)
        self._subacks.setdefault(mid, threading.Event()).set()

    def _wait_subacks(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for mid, event in list(self._subacks.items()):
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise BrokerUnavailable(self.url, f"no SUBACK within {timeout:.0f} s")
            self._subacks.pop(mid, None)
        if self._refused:
            self._refused.clear()
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
            probe = MqttClient(self.url, f"{self.client_id}-probe"[:64]).connect(timeout)
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
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

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

    def _on_publish(self, _c: paho.Client, _u: Any, _mid: int, _r: Any, _p: Any) -> None:
        with self._cond:
            self._pending -= 1
            if self._pending <= 0 or self._pending < self._max_pending:
                self._cond.notify_all()

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

        Call it before ``connect`` to receive what a persistent session kept while this client was away;
        once connected, it returns only after the broker has confirmed the subscription.

        The handler must call ``Received.ack`` once the message is safely handled; only then does a QoS 1
        message count as delivered.
        """
        self._handler = handler
        self._subscriptions.extend(filters)
        if self._client is not None:
            self._expect_suback(self._client.subscribe(filters)[1])
            self._wait_subacks(10.0)

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        handler = self._handler
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        if handler is None:
            return  # not acknowledged: the broker delivers it again once a handler is there
        try:
            handler(Received(msg.topic, bytes(msg.payload), time.time(), ack))
        except SmartZoneError:
            log.exception("handler failed on %s; message left unacknowledged", msg.topic)

    def _require(self) -> paho.Client:
        if self._client is None:
            raise SmartZoneError(f"MQTT client {self.client_id} is not connected; call connect() first")
        return self._client
