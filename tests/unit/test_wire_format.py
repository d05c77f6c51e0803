"""The v1 wire contract: topics, constants, encoding, decoding and its reason codes, registrations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import pytest
from jsonschema import Draft202012Validator

from sensors.address import Address
from sensors.codec import MAX_PAYLOAD_BYTES, channel_of, decode, encode, schema, validator
from sensors.errors import InvalidReading
from sensors.messages import MDS_EVENT_TYPES, Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from sensors.ports import FakePublisher
from sensors.registration import Registration, from_json, to_json, valid_at
from sensors.topics import Channel, parse_topic, shared, subscription, topic_for
from sensors.wire import (
    BIGINT_MAX,
    MAX_ODOMETER_M,
    MAX_SEQ,
    MAX_TIMESTAMP_MS,
    QOS,
    RETAIN,
    VehicleStatus,
    trip_id_for,
)
from sensors.wire import MDS_EVENT_TYPES as WIRE_MDS_EVENT_TYPES
from simulator.fleet import Fleet, FleetConfig
from simulator.run import run_simulation

SIG = "0x" + "ab" * 64 + "1b"
DEVICE = Address(b"\x11" * 20)
PAYEE = Address.parse("0x4a62316623ad457F02cDC5D997deD67a383EC569")
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
LOCK = dataclasses.replace(UNLOCK, seq=12, event_type=EventType.LOCK, trip_seq=8, signature=SIG)
FAULT = dataclasses.replace(UNLOCK, seq=13, event_type=EventType.FAULT, rider=None, detail="brakes", battery_pct=None)
STATE = VehicleState("car-0003", "op", 1_790_000_000_000, True, VehicleKind.CAR, signature=SIG)
SIGNED_TELEMETRY = dataclasses.replace(TELEMETRY, fuel_pct=55.5, signature=SIG)
MESSAGES: list[Telemetry | Event | VehicleState] = [TELEMETRY, SIGNED_TELEMETRY, UNLOCK, LOCK, FAULT, STATE]


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


def test_a_topic_outside_the_layout_is_rejected_as_a_bad_topic_even_with_a_trailing_newline() -> None:
    for bad in ("smartzone/v1/op/bike/gossip", "smartzone/v1/op/bike-0001\n/event", "a/b"):
        with pytest.raises(InvalidReading) as caught:
            decode(bad, encode(UNLOCK))
        assert caught.value.code == "bad_topic"


@pytest.mark.parametrize("message", MESSAGES)
def test_every_message_survives_encoding_and_decoding(message: Telemetry | Event | VehicleState) -> None:
    assert decode(topic(message), encode(message)) == message


def test_a_lock_carries_its_trip_seq_and_every_channel_its_sig_on_the_wire() -> None:
    assert json.loads(encode(LOCK))["trip_seq"] == 8
    for message in (LOCK, STATE, SIGNED_TELEMETRY):
        assert json.loads(encode(message))["sig"] == SIG
    assert "sig" not in json.loads(encode(TELEMETRY)) and "trip_seq" not in json.loads(encode(UNLOCK))


@pytest.mark.parametrize("message", MESSAGES)
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


def _mutated(base: Telemetry | Event | VehicleState = UNLOCK, **changes: object) -> bytes:
    body = json.loads(encode(base))
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
        (_mutated(extra="x"), "must not contain {'extra'}"),
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


@pytest.mark.parametrize(
    ("message", "payload", "code"),
    [
        (UNLOCK, b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "too_large"),
        (UNLOCK, b"{not json", "malformed"),
        (UNLOCK, b"\xff\xfe", "malformed"),
        (UNLOCK, b"[1, 2]", "malformed"),
        (UNLOCK, b"[" * 3000, "malformed"),
        (UNLOCK, encode(UNLOCK).replace(b'"lat":51.2151', b'"lat":NaN'), "malformed"),
        (TELEMETRY, encode(TELEMETRY).replace(b'"speed_mps":4.2', b'"speed_mps":Infinity'), "malformed"),
        (UNLOCK, _mutated(extra="x"), "schema"),
        (UNLOCK, _mutated(lat=123.0), "schema"),
        (UNLOCK, _mutated(seq="8"), "schema"),
        (UNLOCK, _mutated(seq=True), "schema"),
        (UNLOCK, _mutated(detail=""), "schema"),
        (UNLOCK, _mutated(sig="0x1234"), "schema"),
        (UNLOCK, _mutated(trip_seq=3), "schema"),  # only a lock names a trip
        (LOCK, _mutated(LOCK, trip_seq=None), "schema"),  # a lock must name its trip
        (STATE, _mutated(STATE, owner="0x" + "ab" * 20), "schema"),  # the forged-owner attack
        (UNLOCK, _mutated(odometer_m=10**19), "out_of_range"),
        (UNLOCK, _mutated(odometer_m=MAX_ODOMETER_M + 1), "out_of_range"),
        (UNLOCK, _mutated(seq=-1), "out_of_range"),
        (UNLOCK, _mutated(seq=2**63), "out_of_range"),
        (UNLOCK, _mutated(timestamp=MAX_TIMESTAMP_MS + 1), "out_of_range"),
        (LOCK, _mutated(LOCK, trip_seq=2**64), "out_of_range"),
        (TELEMETRY, _mutated(TELEMETRY, odometer_m=10**19), "out_of_range"),
        (UNLOCK, _mutated(vehicle_id="ebike-9999"), "topic_mismatch"),
        (UNLOCK, _mutated(operator="other"), "topic_mismatch"),
        (LOCK, _mutated(LOCK, trip_seq=12), "bad_pair"),
        (LOCK, _mutated(LOCK, trip_seq=13), "bad_pair"),
    ],
)
def test_every_rejection_carries_its_reason_code(
    message: Telemetry | Event | VehicleState, payload: bytes, code: str
) -> None:
    with pytest.raises(InvalidReading) as caught:
        decode(topic(message), payload)
    assert caught.value.code == code, caught.value.reason


def test_the_largest_integers_fit_a_bigint_and_are_accepted() -> None:
    biggest = dataclasses.replace(LOCK, seq=MAX_SEQ, trip_seq=MAX_SEQ - 1, odometer_m=MAX_ODOMETER_M,
                                  timestamp=MAX_TIMESTAMP_MS)  # fmt: skip
    assert decode(topic(biggest), encode(biggest)) == biggest
    assert max(MAX_SEQ, MAX_ODOMETER_M, MAX_TIMESTAMP_MS) < BIGINT_MAX


def test_every_integer_in_the_schemas_has_a_maximum_that_fits_a_bigint() -> None:
    def integers(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("type") == "integer":
                yield node
            for value in node.values():
                yield from integers(value)
        elif isinstance(node, list):
            for value in node:
                yield from integers(value)

    found = [node for channel in Channel for node in integers(schema(channel))]
    assert len(found) >= 7
    assert all(0 <= node["minimum"] and node["maximum"] <= MAX_SEQ for node in found)


def test_an_integer_written_as_a_float_decodes_to_an_int() -> None:
    message = decode(topic(LOCK), _mutated(LOCK, seq=12.0, trip_seq=8.0, odometer_m=200.0))
    assert isinstance(message, Event) and message == LOCK
    assert all(type(v) is int for v in (message.seq, message.trip_seq, message.odometer_m, message.timestamp))


def _corpus() -> list[tuple[Channel, Any]]:
    """Valid payloads of a signed simulator run and of every message above, and mutations of each kind."""
    publisher = FakePublisher()
    fleet = Fleet(FleetConfig(vehicles=6, seed=3, mean_idle_s=60.0, sign_telemetry=True))
    run_simulation(fleet, publisher, start_ms=1_790_000_000_000, duration_s=600, speed=0)
    valid = [(parse_topic(t).channel, json.loads(p)) for t, p, _, _ in publisher.sent[::7]]
    valid += [(channel_of(m), json.loads(encode(m))) for m in MESSAGES]
    mutations: list[dict[str, Any]] = [
        {"extra": 1}, {"v": 2}, {"v": True}, {"seq": -1}, {"seq": 1.5}, {"seq": 2**53}, {"seq": "1"},
        {"seq": None}, {"timestamp": 10**19}, {"odometer_m": 10**19}, {"odometer_m": 1.0}, {"lat": 90.5},
        {"lon": -181}, {"lat": "51"}, {"kind": "tram"}, {"vehicle_id": ""}, {"vehicle_id": "a b"},
        {"vehicle_id": "x" * 65}, {"operator": 7}, {"sig": "0x12"}, {"sig": "0x" + "g" * 130}, {"sig": SIG},
        {"event_type": "lock"}, {"event_type": "unlock"}, {"event_type": "teleport"}, {"rider": None},
        {"rider": ""}, {"rider": "r" * 129}, {"detail": ""}, {"detail": "d" * 257}, {"trip_seq": 1},
        {"trip_seq": None}, {"trip_seq": -1}, {"battery_pct": 100.5}, {"battery_pct": None}, {"fuel_pct": -1},
        {"speed_mps": 101}, {"speed_mps": None}, {"online": 1}, {"online": None}, {"owner": "0x" + "ab" * 20},
    ]  # fmt: skip
    invalid: list[tuple[Channel, Any]] = []
    for channel, body in valid[-len(MESSAGES) :]:
        for mutation in mutations:
            changed = {**body, **mutation}
            invalid.append((channel, {k: v for k, v in changed.items() if v is not None}))
    invalid += [(Channel.EVENT, []), (Channel.STATE, "x"), (Channel.TELEMETRY, {})]
    return valid + invalid


def test_the_compiled_validators_agree_with_jsonschema_on_valid_and_invalid_payloads() -> None:
    corpus = _corpus()
    verdicts = []
    for channel, body in corpus:
        reference = Draft202012Validator(schema(channel)).is_valid(body)
        try:
            validator(channel)(body)
            compiled = True
        except fastjsonschema.JsonSchemaValueException:
            compiled = False
        assert compiled == reference, (channel, body)
        verdicts.append(compiled)
    assert verdicts.count(True) > 50 and verdicts.count(False) > 150


def test_the_wire_constants_name_qos_and_retain_per_channel() -> None:
    assert QOS == {Channel.TELEMETRY: 0, Channel.EVENT: 1, Channel.STATE: 1, Channel.VOUCHER: 1}
    assert RETAIN == {Channel.TELEMETRY: False, Channel.EVENT: False, Channel.STATE: True, Channel.VOUCHER: False}


def test_a_trip_is_named_by_its_vehicle_and_the_seq_of_its_unlock() -> None:
    assert trip_id_for("ebike-0002", 8) == "ebike-0002:8"
    assert trip_id_for(LOCK.vehicle_id, LOCK.trip_seq or 0) == trip_id_for(UNLOCK.vehicle_id, UNLOCK.seq)


def test_the_mds_vocabulary_is_that_of_mds_2() -> None:
    assert [s.value for s in VehicleStatus] == ["available", "on_trip", "non_operational", "unknown"]
    assert WIRE_MDS_EVENT_TYPES is MDS_EVENT_TYPES
    assert MDS_EVENT_TYPES[EventType.UNLOCK] == "trip_start" and MDS_EVENT_TYPES[EventType.LOCK] == "trip_end"


REGISTRATION = Registration("ebike-0002", "op", VehicleKind.EBIKE, DEVICE, PAYEE, 1_000, 2_000, SIG)


def test_a_registration_survives_its_fleet_file_form_with_checksummed_addresses() -> None:
    line = json.dumps(to_json(REGISTRATION))
    assert str(PAYEE) in line and str(DEVICE) in line
    assert from_json(json.loads(line)) == REGISTRATION
    open_ended = dataclasses.replace(REGISTRATION, valid_until_ms=0, signature=None)
    obj = to_json(open_ended)
    assert "sig" not in obj and obj["valid_until_ms"] == 0
    del obj["valid_until_ms"]
    assert from_json(obj) == open_ended


def test_a_registration_is_valid_from_its_start_up_to_not_including_its_end() -> None:
    assert [valid_at(REGISTRATION, t) for t in (999, 1_000, 1_999, 2_000)] == [False, True, True, False]
    forever = dataclasses.replace(REGISTRATION, valid_until_ms=0)
    assert valid_at(forever, 10**13) and not valid_at(forever, 999)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"vehicle_id": "no/slash"}, "schema"),
        ({"operator": ""}, "schema"),
        ({"kind": "tram"}, "schema"),
        ({"payee": "0x4A62316623ad457F02cDC5D997deD67a383EC569"}, "bad_address"),  # fails EIP-55
        ({"device": "0x1234"}, "bad_address"),
        ({"device": 7}, "schema"),
        ({"valid_from_ms": -1}, "out_of_range"),
        ({"valid_from_ms": "1000"}, "schema"),
        ({"valid_from_ms": 1.5}, "schema"),
        ({"valid_until_ms": 1_000}, "out_of_range"),
        ({"valid_until_ms": MAX_TIMESTAMP_MS + 1}, "out_of_range"),
        ({"sig": "0x12"}, "schema"),
        ({"owner": str(PAYEE)}, "schema"),
        ({"vehicle_id": None}, "schema"),
    ],
)
def test_a_bad_fleet_file_line_is_refused_with_a_reason(change: dict[str, Any], code: str) -> None:
    obj = {**to_json(REGISTRATION), **change}
    with pytest.raises(InvalidReading) as caught:
        from_json({k: v for k, v in obj.items() if v is not None})
    assert caught.value.code == code, caught.value.reason


def test_a_fleet_file_line_must_be_an_object() -> None:
    with pytest.raises(InvalidReading, match="JSON object"):
        from_json([1])
