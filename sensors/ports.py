"""The broker port: what the rest of the project needs from MQTT, and a fake that records it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Received:
    """One message as it came off the broker, before decoding.

    ``ack`` confirms it to the broker (QoS 1); call it once the message is safely stored. ``qos`` and ``retain``
    are as delivered (a recorder keeps them).
    """

    topic: str
    payload: bytes
    received_at: float
    ack: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)
    qos: int = field(default=0, compare=False)
    retain: bool = field(default=False, compare=False)


class Publisher(Protocol):
    """Publishes bytes on a topic."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every QoS>0 message published so far is acknowledged by the broker."""
        ...


@dataclass
class FakePublisher:
    """A publisher that keeps what it was given, for unit tests."""

    sent: list[tuple[str, bytes, int, bool]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))

    def flush(self, timeout: float = 30.0) -> None:
        return None
