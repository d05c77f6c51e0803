"""Encoding messages to bytes and decoding bytes into frozen messages, or ``InvalidReading`` with a reason code.

Decoding checks, in order, and rejects with the code in brackets: the topic's layout [``bad_topic``], the size
[``too_large``], UTF-8 JSON object [``malformed``], the channel's JSON Schema [``schema``; an integer below its
minimum or above its maximum, which would not fit its column, ``out_of_range``], the payload's vehicle and
operator against the topic's [``topic_mismatch``], that a lock ends a trip started before it [``bad_pair``], and
the rider's consent or voucher an unlock, a lock or the ``voucher`` channel carries (``sensors.consent``: its
fields [``schema``, ``out_of_range``] and rider [``bad_address``]; its signature is the aggregator's to check).
The schemas (``sensors/schemas/``) are compiled once, on first use, with fastjsonschema.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

from sensors.consent import consent_from_json, to_json, voucher_from_json
from sensors.errors import InvalidReading
from sensors.messages import (
    WIRE_VERSION,
    Event,
    EventType,
    Message,
    Position,
    RiderVoucher,
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
    Channel.VOUCHER: "voucher.v1.json",
}
_RANGE_RULES = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})


def schema(channel: Channel) -> dict[str, Any]:
    """The JSON Schema of the messages on ``channel``."""
    text = resources.files("sensors").joinpath("schemas", _SCHEMA_FILES[channel]).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def validator(channel: Channel) -> Callable[[Any], Any]:
    """The compiled validator of ``channel``'s schema; raises ``fastjsonschema.JsonSchemaValueException``."""
    compiled: Callable[[Any], Any] = fastjsonschema.compile(schema(channel), use_formats=False)
    return compiled


def encode(message: Message) -> bytes:
    """The v1 JSON bytes of ``message``: compact, keys sorted, absent optionals left out."""
    body: dict[str, Any]
    if isinstance(message, VehicleState):
        body = {
            "v": WIRE_VERSION,
            "vehicle_id": message.vehicle_id,
            "operator": message.operator,
            "timestamp": message.timestamp,
            "online": message.online,
            "kind": message.kind.value if message.kind is not None else None,
            "sig": message.signature,
        }
    elif isinstance(message, RiderVoucher):
        body = {
            "v": WIRE_VERSION,
            "vehicle_id": message.vehicle_id,
            "operator": message.operator,
            "timestamp": message.timestamp,
            "voucher": to_json(message.voucher),
        }
    else:
        position = message.position
        body = {
            "v": WIRE_VERSION,
            "vehicle_id": message.vehicle_id,
            "operator": message.operator,
            "kind": message.kind.value,
            "seq": message.seq,
            "timestamp": message.timestamp,
            "lat": position.lat,
            "lon": position.lon,
            "odometer_m": message.odometer_m,
            "battery_pct": message.battery_pct,
            "sig": message.signature,
        }
        if isinstance(message, Telemetry):
            body["speed_mps"] = message.speed_mps
            body["fuel_pct"] = message.fuel_pct
        else:
            body["event_type"] = message.event_type.value
            body["rider"] = message.rider
            body["detail"] = message.detail
            body["trip_seq"] = message.trip_seq
            body["consent"] = None if message.consent is None else to_json(message.consent)
            body["voucher"] = None if message.voucher is None else to_json(message.voucher)
    return _ENCODE({k: v for k, v in body.items() if v is not None}).encode()  # fmt: skip


_ENCODE = json.JSONEncoder(separators=(",", ":"), sort_keys=True, check_circular=False).encode
"""One encoder for every message (``json.dumps`` with options builds a new one on each call)."""


def channel_of(message: Message) -> Channel:
    """The channel on which ``message`` travels."""
    if isinstance(message, Telemetry):
        return Channel.TELEMETRY
    if isinstance(message, Event):
        return Channel.EVENT
    if isinstance(message, RiderVoucher):
        return Channel.VOUCHER
    return Channel.STATE


def decode(topic: str, payload: bytes) -> Message:
    """Decode ``payload`` received on ``topic`` into a message.

    Raises ``InvalidReading`` with a one-line reason and its code (``settlement.reasons.RejectCode`` values):
    ``bad_topic``, ``too_large``, ``malformed``, ``schema``, ``out_of_range``, ``topic_mismatch`` or ``bad_pair``.
    The signature is carried, not checked: that needs the registry (``sensors.signing.signer``).
    """
    parsed = parse_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidReading(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", code="too_large")
    try:
        body = _JSON.decode(payload.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidReading(f"payload is not UTF-8 JSON: {exc}", code="malformed") from None
    except RecursionError:
        raise InvalidReading("payload nests too deeply", code="malformed") from None
    if not isinstance(body, dict):
        raise InvalidReading("payload is not a JSON object", code="malformed")
    try:
        validator(parsed.channel)(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _violation(parsed.channel, exc) from None
    if body["vehicle_id"] != parsed.vehicle_id or body["operator"] != parsed.operator:
        raise InvalidReading(
            f"payload names {body['operator']}/{body['vehicle_id']} but topic is {topic!r}", code="topic_mismatch"
        )
    message = _build(parsed.channel, body)
    if isinstance(message, Event) and message.trip_seq is not None and message.trip_seq >= message.seq:
        raise InvalidReading(
            f"lock {message.seq} names trip_seq {message.trip_seq}: a lock ends a trip unlocked before it",
            code="bad_pair",
        )
    return message


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


_JSON = json.JSONDecoder(parse_constant=_no_constant)
"""One decoder for every payload: ``json.loads`` with a hook builds a new decoder on each call."""


def _violation(channel: Channel, exc: fastjsonschema.JsonSchemaValueException) -> InvalidReading:
    """The ``InvalidReading`` of a schema violation: ``out_of_range`` for an integer outside its bounds."""
    where = (exc.name or "data").removeprefix("data").lstrip(".") or "(root)"
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    in_range = exc.rule in _RANGE_RULES and definition.get("type") == "integer"
    code = "out_of_range" if in_range else "schema"
    return InvalidReading(f"{channel.value} schema violation at {where}: {exc.message}", code=code)


def _build(channel: Channel, body: dict[str, Any]) -> Message:
    """The message of a valid ``body``; integers written as 1.0 (valid JSON Schema integers) become ints."""
    if channel is Channel.STATE:
        kind = body.get("kind")
        return VehicleState(
            vehicle_id=body["vehicle_id"],
            operator=body["operator"],
            timestamp=int(body["timestamp"]),
            online=body["online"],
            kind=VehicleKind(kind) if kind else None,
            signature=body.get("sig"),
        )
    if channel is Channel.VOUCHER:
        return RiderVoucher(
            vehicle_id=body["vehicle_id"],
            operator=body["operator"],
            timestamp=int(body["timestamp"]),
            voucher=voucher_from_json(body["voucher"]),
        )
    common: dict[str, Any] = {
        "vehicle_id": body["vehicle_id"],
        "operator": body["operator"],
        "kind": VehicleKind(body["kind"]),
        "seq": int(body["seq"]),
        "timestamp": int(body["timestamp"]),
        "position": Position(float(body["lat"]), float(body["lon"])),
        "odometer_m": int(body["odometer_m"]),
        "battery_pct": body.get("battery_pct"),
        "signature": body.get("sig"),
    }
    if channel is Channel.TELEMETRY:
        return Telemetry(**common, speed_mps=float(body["speed_mps"]), fuel_pct=body.get("fuel_pct"))
    trip_seq, consent, voucher = body.get("trip_seq"), body.get("consent"), body.get("voucher")
    return Event(
        **common,
        event_type=EventType(body["event_type"]),
        rider=body.get("rider"),
        detail=body.get("detail"),
        trip_seq=None if trip_seq is None else int(trip_seq),
        consent=None if consent is None else consent_from_json(consent),
        voucher=None if voucher is None else voucher_from_json(voucher),
    )
