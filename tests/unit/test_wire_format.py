"""The v1 wire contract: topics, encoding, decoding and its errors."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from sensors.codec import MAX_PAYLOAD_BYTES, channel_of, decode, encode, schema
from sensors.errors import InvalidReading
from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from sensors.topics import Channel, parse_topic, shared, subscription, topic_for

OWNER = "0x" + "ab" * 20
TELEMETRY = Telemetry(
    "bike-0001",
    "op",
    VehicleKind.BIKE,
    7,
    1_790_000_000_000,
    Position(51.2151, 4.3966),
    4.2,
    1520,
    battery_pct=None,
)
UNLOCK = Event(
    "ebike-0002",
    "op",
    VehicleKind.EBIKE,
    8,
    1_790_000_001_000,
    EventType.UNLOCK,
    Position(51.2151, 4.3966),
    200,
    battery_pct=81.5,
    rider="rider-1",
)
STATE = VehicleState("car-0003", "op", 1_790_000_000_000, True, VehicleKind.CAR, OWNER)


def topic(message: Telemetry | Event | VehicleState) -> str:
    return topic_for(message.operator, message.vehicle_id, channel_of(message))


def test_topics_follow_the_v1_layout_and_parse_back() -> None:
    t = topic_for("op", "bike-0001", Channel.TELEMETRY)
    assert t == "smartzone/v1/op/bike-0001/telemetry"
    parsed = parse_topic(t)
    assert (parsed.operator, parsed.vehicle_id, parsed.channel) == ("op", "bike-0001", Channel.TELEMETRY)


def test_subscriptions_cover_every_vehicle_and_can_be_shared() -> None:
    assert subscription(Channel.EVENT) == "smartzone/v1/+/+/event"
    assert shared(subscription(Channel.EVENT)) == "$share/smartzone-aggregators/smartzone/v1/+/+/event"


@pytest.mark.parametrize(
    "bad",
    [
        "smartzone/v1/op/bike/telemetry/extra",
        "smartzone/v2/op/bike/telemetry",
        "smartzone/v1/op/bike/gossip",
        "smartzone/v1/op/bi ke/event",
        "smartzone/v1//b/event",
    ],
)
def test_a_topic_outside_the_layout_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidReading):
        parse_topic(bad)


@pytest.mark.parametrize("message", [TELEMETRY, UNLOCK, STATE])
def test_every_message_survives_encoding_and_decoding(message: Telemetry | Event | VehicleState) -> None:
    assert decode(topic(message), encode(message)) == message


@pytest.mark.parametrize("message", [TELEMETRY, UNLOCK, STATE])
def test_encoded_messages_are_valid_against_their_json_schema(
    message: Telemetry | Event | VehicleState,
) -> None:
    Draft202012Validator.check_schema(schema(channel_of(message)))
    errors = list(Draft202012Validator(schema(channel_of(message))).iter_errors(json.loads(encode(message))))
    assert errors == []


def test_encoding_is_deterministic_and_compact() -> None:
    assert encode(TELEMETRY) == encode(TELEMETRY)
    assert b" " not in encode(TELEMETRY)
    assert b"battery_pct" not in encode(TELEMETRY)  # absent optionals are left out


def _mutated(**changes: object) -> bytes:
    body = json.loads(encode(UNLOCK))
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_mutated(seq=-1), "seq"),
        (_mutated(lat=123.0), "lat"),
        (_mutated(event_type="teleport"), "event_type"),
        (_mutated(rider=None), "rider"),
        (_mutated(v=2), "v"),
        (_mutated(extra="x"), "Additional properties"),
        (_mutated(vehicle_id="ebike-9999"), "names op/ebike-9999"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "exceeds"),
    ],
)
def test_a_bad_payload_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidReading) as caught:
        decode(topic(UNLOCK), payload)
    assert reason in caught.value.reason


def test_telemetry_on_the_event_channel_is_rejected() -> None:
    with pytest.raises(InvalidReading, match="event schema violation"):
        decode(topic_for("op", "bike-0001", Channel.EVENT), encode(TELEMETRY))
