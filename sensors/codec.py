"""Encoding messages to bytes and decoding bytes into frozen messages, or ``InvalidReading``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from sensors.errors import InvalidReading
from sensors.messages import (
    WIRE_VERSION,
    Event,
    EventType,
    Message,
    Position,
    Telemetry,
    VehicleKind,
    VehicleState,
)
from sensors.topics import Channel, parse_topic

MAX_PAYLOAD_BYTES = 4096
_SCHEMA_FILES = {
    Channel.TELEMETRY: "telemetry.v1.json",
    Channel.EVENT: "event.v1.json",
    Channel.STATE: "state.v1.json",
}


def schema(channel: Channel) -> dict[str, Any]:
    """The JSON Schema of the messages on ``channel``."""
    text = resources.files("sensors").joinpath("schemas", _SCHEMA_FILES[channel]).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(channel: Channel) -> Draft202012Validator:
    return Draft202012Validator(schema(channel))


def encode(message: Message) -> bytes:
    """The v1 JSON bytes of ``message``: compact, keys sorted, absent optionals left out."""
    body: dict[str, Any] = {"v": WIRE_VERSION, "vehicle_id": message.vehicle_id, "operator": message.operator}
    if isinstance(message, VehicleState):
        body.update(timestamp=message.timestamp, online=message.online, kind=message.kind, owner=message.owner)
    else:
        body.update(
            kind=message.kind.value,
            seq=message.seq,
            timestamp=message.timestamp,
            lat=message.position.lat,
            lon=message.position.lon,
            odometer_m=message.odometer_m,
            battery_pct=message.battery_pct,
        )
        if isinstance(message, Telemetry):
            body.update(speed_mps=message.speed_mps, fuel_pct=message.fuel_pct)
        else:
            body.update(
                event_type=message.event_type.value,
                rider=message.rider,
                detail=message.detail,
                sig=message.signature,
            )
    clean = {k: (v.value if isinstance(v, VehicleKind) else v) for k, v in body.items() if v is not None}
    return json.dumps(clean, separators=(",", ":"), sort_keys=True).encode()


def channel_of(message: Message) -> Channel:
    """The channel on which ``message`` travels."""
    if isinstance(message, Telemetry):
        return Channel.TELEMETRY
    if isinstance(message, Event):
        return Channel.EVENT
    return Channel.STATE


def decode(topic: str, payload: bytes) -> Message:
    """Decode ``payload`` received on ``topic`` into a message.

    Raises ``InvalidReading`` with a one-line reason when the topic is not of the v1 layout, the
    payload is too large, not UTF-8 JSON, violates the channel's schema, or names another
    vehicle or operator than its topic.
    """
    parsed = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidReading(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidReading(f"payload is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidReading("payload is not a JSON object")
    error = next(iter(_validator(parsed.channel).iter_errors(body)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidReading(f"{parsed.channel.value} schema violation at {where}: {error.message}")
    if body["vehicle_id"] != parsed.vehicle_id or body["operator"] != parsed.operator:
        raise InvalidReading(f"payload names {body['operator']}/{body['vehicle_id']} but topic is {topic!r}")
    return _build(parsed.channel, body)


def _build(channel: Channel, body: dict[str, Any]) -> Message:
    if channel is Channel.STATE:
        kind = body.get("kind")
        return VehicleState(
            vehicle_id=body["vehicle_id"],
            operator=body["operator"],
            timestamp=body["timestamp"],
            online=body["online"],
            kind=VehicleKind(kind) if kind else None,
            owner=body.get("owner"),
        )
    common: dict[str, Any] = {
        "vehicle_id": body["vehicle_id"],
        "operator": body["operator"],
        "kind": VehicleKind(body["kind"]),
        "seq": body["seq"],
        "timestamp": body["timestamp"],
        "position": Position(float(body["lat"]), float(body["lon"])),
        "odometer_m": body["odometer_m"],
        "battery_pct": body.get("battery_pct"),
    }
    if channel is Channel.TELEMETRY:
        return Telemetry(**common, speed_mps=float(body["speed_mps"]), fuel_pct=body.get("fuel_pct"))
    return Event(
        **common,
        event_type=EventType(body["event_type"]),
        rider=body.get("rider"),
        detail=body.get("detail"),
        signature=body.get("sig"),
    )
