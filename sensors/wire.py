"""Wire constants in one place: QoS and retain per channel, topic root, id and trip-id rules, MDS vocabulary, limits.

Publishers, subscribers, the simulator and the store read these instead of repeating them, so a change to the
contract is made here and in ``docs/wire-format.md`` only.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from sensors.messages import FLEET_GATEWAY, MDS_EVENT_TYPES, WIRE_VERSION, EventType
from sensors.topics import DEFAULT_ROOT, SHARE_GROUP, TOPIC_VERSION, Channel, check_id

__all__ = [
    "BIGINT_MAX",
    "DEFAULT_ROOT",
    "FLEET_GATEWAY",
    "MAX_ODOMETER_M",
    "MAX_SEQ",
    "MAX_TIMESTAMP_MS",
    "MDS_EVENT_TYPES",
    "QOS",
    "RETAIN",
    "SHARE_GROUP",
    "SIGNATURE_HEX",
    "TOPIC_VERSION",
    "WIRE_VERSION",
    "EventType",
    "VehicleStatus",
    "check_id",
    "trip_id_for",
]

QOS: Final[dict[Channel, int]] = {Channel.TELEMETRY: 0, Channel.EVENT: 1, Channel.STATE: 1, Channel.VOUCHER: 1}
"""MQTT QoS per channel: a lost reading is replaced by the next, an event, a state or a voucher is not."""
RETAIN: Final[dict[Channel, bool]] = {
    Channel.TELEMETRY: False,
    Channel.EVENT: False,
    Channel.STATE: True,
    Channel.VOUCHER: False,
}
"""Whether the broker keeps the last message of a topic: only ``state`` (connectivity, and the last will)."""

BIGINT_MAX: Final = 2**63 - 1
"""The largest value of a database BIGINT column; every integer on the wire stays well below it."""
MAX_SEQ: Final = 2**53 - 1
"""The largest ``seq`` and ``trip_seq``: exact in a JSON number (IEEE double) and in a BIGINT."""
MAX_TIMESTAMP_MS: Final = 32_503_680_000_000
"""The latest timestamp, 3000-01-01T00:00:00Z in milliseconds since the Unix epoch."""
MAX_ODOMETER_M: Final = 2**53 - 1
"""The largest odometer reading in metres (a decode-time limit; plausibility is judged by settlement)."""


class VehicleStatus(enum.StrEnum):
    """The MDS 2.0 vehicle states a vehicle of the Smart Zone can be in."""

    AVAILABLE = "available"
    ON_TRIP = "on_trip"
    NON_OPERATIONAL = "non_operational"
    UNKNOWN = "unknown"


def trip_id_for(vehicle_id: str, unlock_seq: int) -> str:
    """The id of a trip: its vehicle and the ``seq`` of the unlock that starts it (``"<vehicle>:<seq>"``).

    A lock names the same trip through its ``trip_seq``, so either half of a trip gives its id.
    """
    return f"{vehicle_id}:{unlock_seq}"


SIGNATURE_HEX: Final = re.compile(r"0x[0-9a-fA-F]{130}")
"""A 65-byte signature (r, s, v) in hex, matched whole with ``fullmatch`` (the schemas' ``sig`` pattern)."""
