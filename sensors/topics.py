"""The MQTT topic layout: ``<root>/v1/<operator>/<vehicle_id>/<channel>``."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from sensors.errors import InvalidReading

TOPIC_VERSION = "v1"
DEFAULT_ROOT = "smartzone"
SHARE_GROUP = "smartzone-aggregators"
FENCE_ID, FENCE_LEVEL = "_fence", "fence"
BAD_TOPIC = "bad_topic"
"""The reason code of a topic outside the layout (``settlement.reasons.RejectCode.BAD_TOPIC``)."""
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""An operator or vehicle id, matched whole (``fullmatch``: a trailing newline is no id)."""


class Channel(enum.StrEnum):
    """The last topic level: which kind of message the topic carries."""

    TELEMETRY = "telemetry"
    EVENT = "event"
    STATE = "state"
    VOUCHER = "voucher"


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: who sent it and on which channel."""

    root: str
    operator: str
    vehicle_id: str
    channel: Channel


def check_id(value: str, what: str, code: str = "invalid") -> str:
    """Return ``value`` if it is a valid operator or vehicle id, else raise ``InvalidReading`` with ``code``."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidReading(f"{what} {value!r} must be 1-64 characters of A-Z a-z 0-9 _ . -", code=code)
    return value


def topic_for(operator: str, vehicle_id: str, channel: Channel, root: str = DEFAULT_ROOT) -> str:
    """The topic on which ``vehicle_id`` of ``operator`` publishes ``channel`` messages."""
    check_id(operator, "operator")
    check_id(vehicle_id, "vehicle id")
    return f"{root}/{TOPIC_VERSION}/{operator}/{vehicle_id}/{channel.value}"


@lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> Topic:
    """Parse a topic of the v1 layout, or raise ``InvalidReading`` (code ``bad_topic``) saying what is wrong."""
    parts = topic.split("/")
    if len(parts) != 5:
        raise InvalidReading(
            f"topic {topic!r} does not have 5 levels <root>/v1/<operator>/<vehicle>/<channel>", code=BAD_TOPIC
        )
    root, version, operator, vehicle_id, channel = parts
    if version != TOPIC_VERSION:
        raise InvalidReading(f"topic {topic!r} has version {version!r}, expected {TOPIC_VERSION!r}", code=BAD_TOPIC)
    try:
        kind = Channel(channel)
    except ValueError:
        raise InvalidReading(f"topic {topic!r} has unknown channel {channel!r}", code=BAD_TOPIC) from None
    return Topic(root, check_id(operator, "operator", BAD_TOPIC), check_id(vehicle_id, "vehicle id", BAD_TOPIC), kind)


def subscription(channel: Channel, root: str = DEFAULT_ROOT, operator: str = "+") -> str:
    """The filter for ``channel`` messages of one operator (or all: ``+``)."""
    return f"{root}/{TOPIC_VERSION}/{operator}/+/{channel.value}"


def fence_topic(operator: str, root: str = DEFAULT_ROOT) -> str:
    """Where a publisher of ``operator`` sends itself a marker to learn that the broker has routed all it sent before
    (``MqttClient.fence``). No channel: no aggregator's filter matches it."""
    return f"{root}/{TOPIC_VERSION}/{operator}/{FENCE_ID}/{FENCE_LEVEL}"


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    """The MQTT v5 shared-subscription form of ``topic_filter`` (load shared within ``group``)."""
    return f"$share/{group}/{topic_filter}"
