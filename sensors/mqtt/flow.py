"""The publisher's book of messages handed to paho and not yet gone: back-pressure without "Message queue full"."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as paho

RECEIVE_MAXIMUM_311 = 1_000
"""QoS 1 messages in flight at once under MQTT 3.1.1 (MQTT 5 brokers say how many they take in CONNACK)."""
NO_MATCHING_SUBSCRIBERS = 0x10
"""The MQTT 5 PUBACK reason of a publish the broker took but routed to nobody."""
REDELIVER_PAUSE_S = 1.0
"""Pause before a message routed to nobody is published again."""
MID_WINDOW = 65_535 - 1_024
"""How many message numbers may be handed out after the oldest message still out: paho numbers publishes (and
subscriptions) 1..65535 in turn and refuses one whose number is still in use ("Message queue full"); the
margin covers subscriptions made meanwhile."""


class PublishFlow:
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
