"""EIP-712 signing of messages and registrations, cross-checked with eth_account, and the documented example."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak

from sensors.address import Address
from sensors.codec import decode, encode
from sensors.errors import InvalidReading
from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from sensors.registration import Registration, from_json
from sensors.signing import (
    SECP256K1_N,
    Domain,
    Signable,
    address_of,
    canonical,
    digest,
    sign,
    signer,
    typed_data,
)

DOMAIN = Domain(31337)
KEY = bytes.fromhex("11" * 32)
OTHER_KEY = bytes.fromhex("22" * 32)
RIDER = "0x4a62316623ad457F02cDC5D997deD67a383EC569"
DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

ITEMS: dict[str, Signable] = {
    "telemetry": Telemetry(
        "ebike-0002", "op", VehicleKind.EBIKE, 7, 1_790_000_000_000, Position(51.2151, 4.3966), 5.83, 15230, 81.5, None
    ),
    "telemetry of a car south-west of Greenwich": Telemetry(
        "car-0003", "op", VehicleKind.CAR, 2**53 - 1, 0, Position(-33.8688, -70.6693), 0.0, 0, None, 42.25
    ),
    "unlock": Event(
        "ebike-0002",
        "op",
        VehicleKind.EBIKE,
        8,
        1_790_000_001_000,
        EventType.UNLOCK,
        Position(51.2151, 4.3966),
        200,
        battery_pct=81.5,
        rider=RIDER,
    ),
    "lock": Event(
        "ebike-0002",
        "op",
        VehicleKind.EBIKE,
        12,
        1_790_000_301_000,
        EventType.LOCK,
        Position(-0.0000001, -179.9999999),
        1200,
        battery_pct=80.0,
        rider=RIDER,
        trip_seq=8,
    ),
    "fault without battery or rider": Event(
        "bike-0001",
        "op-2",
        VehicleKind.BIKE,
        3,
        1_790_000_000_000,
        EventType.FAULT,
        Position(51.0, 4.0),
        0,
        detail="lock_sensor",
    ),
    "state online": VehicleState("car-0003", "op", 1_790_000_000_000, True, VehicleKind.CAR),
    "gateway state offline": VehicleState("_fleet", "op", 1_790_000_000_000, False),
    "open-ended registration": Registration(
        "ebike-0002", "op", VehicleKind.EBIKE, address_of(KEY), Address.parse(RIDER), 1_790_000_000_000
    ),
    "bounded registration": Registration(
        "scooter-0004", "op", VehicleKind.SCOOTER, address_of(OTHER_KEY), Address(bytes(20)), 0, 1_790_000_000_000
    ),
}


def eth_signable(item: Signable, domain: Domain = DOMAIN) -> SignableMessage:
    return encode_typed_data(full_message=typed_data(item, domain))


def eth_digest(signable: SignableMessage) -> bytes:
    """The EIP-191 digest of a version-1 (EIP-712) signable message."""
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def hex_of(signature: Any) -> str:
    text = bytes(signature).hex()
    return "0x" + text


@pytest.mark.parametrize("name", ITEMS)
def test_the_digest_equals_eth_accounts_eip712_digest_of_the_typed_data(name: str) -> None:
    item = ITEMS[name]
    assert digest(item, DOMAIN) == eth_digest(eth_signable(item))


@pytest.mark.parametrize("name", ITEMS)
def test_a_signature_is_the_one_eth_account_makes_and_recovers_to_the_signing_key(name: str) -> None:
    item = ITEMS[name]
    signed = sign(item, KEY, DOMAIN)
    theirs = Account.sign_message(eth_signable(item), KEY)
    assert signed.signature == hex_of(theirs.signature)
    assert Account.recover_message(eth_signable(item), signature=signed.signature) == str(address_of(KEY))
    assert signer(signed, DOMAIN) == address_of(KEY) == Address.parse(Account.from_key(KEY).address)
    assert dataclasses.replace(signed, signature=None) == item


@pytest.mark.parametrize("name", ITEMS)
def test_a_tampered_field_no_longer_recovers_to_the_signer(name: str) -> None:
    signed = sign(ITEMS[name], KEY, DOMAIN)
    tampered: Signable
    if isinstance(signed, VehicleState):
        tampered = dataclasses.replace(signed, online=not signed.online)
    elif isinstance(signed, Registration):
        tampered = dataclasses.replace(signed, payee=Address(b"\x66" * 20))
    else:
        tampered = dataclasses.replace(signed, odometer_m=signed.odometer_m + 1)
    assert signer(tampered, DOMAIN) != address_of(KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"position": Position(51.2151001, 4.3966)},
        {"rider": None},
        {"detail": "x"},
        {"trip_seq": 9},
        {"event_type": EventType.FAULT},
        {"battery_pct": 81.4},
        {"battery_pct": None},
        {"vehicle_id": "ebike-0003"},
    ],
)
def test_every_signed_field_of_an_event_is_covered_by_its_signature(change: dict[str, Any]) -> None:
    signed = sign(ITEMS["lock"], KEY, DOMAIN)
    assert signer(dataclasses.replace(signed, **change), DOMAIN) != address_of(KEY)


def test_a_signature_by_another_key_recovers_another_address() -> None:
    signed = sign(ITEMS["unlock"], OTHER_KEY, DOMAIN)
    assert signer(signed, DOMAIN) == address_of(OTHER_KEY) != address_of(KEY)


def test_a_signature_for_another_chain_recovers_another_address() -> None:
    signed = sign(ITEMS["unlock"], KEY, Domain(1))
    assert digest(ITEMS["unlock"], Domain(1)) != digest(ITEMS["unlock"], DOMAIN)
    assert signer(signed, DOMAIN) != address_of(KEY)


def test_a_message_without_a_signature_has_no_signer() -> None:
    with pytest.raises(InvalidReading) as caught:
        signer(ITEMS["unlock"], DOMAIN)
    assert caught.value.code == "missing_signature"


def _high_s_twin(signature: str) -> str:
    raw = bytes.fromhex(signature[2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    return "0x" + raw[:32].hex() + s.to_bytes(32, "big").hex() + f"{55 - raw[64]:02x}"


GOOD = sign(ITEMS["unlock"], KEY, DOMAIN).signature or ""


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "0x",
        GOOD[:-2],
        GOOD + "00",
        GOOD + "\n",
        "0x" + "zz" * 65,
        GOOD[:-2] + "1d",  # v = 29
        GOOD[:-2] + "00",  # v = 0: recovery ids are written 27/28
        "0x" + "00" * 32 + GOOD[66:],  # r = 0
        GOOD[:66] + "00" * 32 + GOOD[-2:],  # s = 0
        GOOD[:66] + "ff" * 32 + GOOD[-2:],  # s above the curve order
        _high_s_twin(GOOD),  # the malleable twin of a valid signature
        "0x" + "00" * 31 + "05" + GOOD[66:],  # r = 5 is no point's x: nothing to recover
    ],
)
def test_a_malformed_or_unrecoverable_signature_is_a_bad_signature(signature: str) -> None:
    with pytest.raises(InvalidReading) as caught:
        signer(dataclasses.replace(ITEMS["unlock"], signature=signature), DOMAIN)
    assert caught.value.code == "bad_signature"


def test_the_struct_types_are_the_normative_ones() -> None:
    types = {name: typed_data(item, DOMAIN)["types"] for name, item in ITEMS.items()}
    encoded = {
        primary: primary + "(" + ",".join(field["type"] + " " + field["name"] for field in fields) + ")"
        for t in types.values()
        for primary, fields in t.items()
    }
    assert encoded == {
        "EIP712Domain": "EIP712Domain(string name,string version,uint256 chainId)",
        "Telemetry": "Telemetry(string vehicleId,string operator,string kind,uint64 seq,uint64 timestamp,"
        "int64 latE7,int64 lonE7,uint64 speedMmps,uint64 odometerM,int32 batteryPermille,int32 fuelPermille)",
        "Event": "Event(string vehicleId,string operator,string kind,uint64 seq,uint64 timestamp,string eventType,"
        "int64 latE7,int64 lonE7,uint64 odometerM,int32 batteryPermille,string rider,string detail,uint64 tripSeq)",
        "VehicleState": "VehicleState(string vehicleId,string operator,uint64 timestamp,bool online)",
        "Registration": "Registration(string vehicleId,string operator,string kind,address device,address payee,"
        "uint64 validFrom,uint64 validUntil)",
    }


def test_canonical_values_follow_the_documented_rules() -> None:
    assert typed_data(ITEMS["telemetry"], DOMAIN)["message"] == {
        "vehicleId": "ebike-0002", "operator": "op", "kind": "ebike", "seq": 7, "timestamp": 1_790_000_000_000,
        "latE7": 512151000, "lonE7": 43966000, "speedMmps": 5830, "odometerM": 15230,
        "batteryPermille": 815, "fuelPermille": -1,
    }  # fmt: skip
    _, lock = canonical(ITEMS["lock"])
    assert lock[6:13] == (-1, -1799999999, 1200, 800, RIDER, "", 8)
    _, fault = canonical(ITEMS["fault without battery or rider"])
    assert fault[9:13] == (-1, "", "lock_sensor", 0)
    message = typed_data(ITEMS["bounded registration"], DOMAIN)["message"]
    assert (message["payee"], message["validFrom"], message["validUntil"]) == ("0x" + "00" * 20, 0, 1_790_000_000_000)


def test_a_value_that_does_not_fit_its_struct_field_cannot_be_signed() -> None:
    lock = ITEMS["lock"]
    assert isinstance(lock, Event)
    too_far = dataclasses.replace(lock, odometer_m=2**64)
    with pytest.raises(InvalidReading) as caught:
        digest(too_far, DOMAIN)
    assert caught.value.code == "out_of_range"


def test_a_domain_needs_a_positive_chain_id() -> None:
    with pytest.raises(ValueError):
        Domain(0)


def _doc_blocks() -> dict[str, str]:
    text = DOC.read_text("utf-8")
    return dict(re.findall(r"<!-- example:([\w-]+) -->\s*```\w*\n(.*?)```", text, flags=re.DOTALL))


def test_the_worked_example_in_the_wire_format_doc_is_reproduced_by_eth_account() -> None:
    blocks = _doc_blocks()
    key = bytes.fromhex(blocks["key"].strip()[2:])
    payload = blocks["payload"].strip().encode()
    documented = json.loads(blocks["typed-data"])
    event = decode("smartzone/v1/smartzone-demo/ebike-0002/event", payload)
    assert isinstance(event, Event) and encode(event) == payload
    domain = Domain(documented["domain"]["chainId"])
    unsigned = dataclasses.replace(event, signature=None)
    assert typed_data(unsigned, domain) == documented
    signable = encode_typed_data(full_message=documented)
    assert "0x" + eth_digest(signable).hex() == blocks["digest"].strip() == "0x" + digest(event, domain).hex()
    theirs = Account.sign_message(signable, key)
    assert hex_of(theirs.signature) == blocks["signature"].strip() == event.signature
    assert sign(unsigned, key, domain) == event
    device = blocks["device"].strip()
    assert Account.recover_message(signable, signature=event.signature) == device == str(signer(event, domain))


def test_the_fleet_file_line_in_the_wire_format_doc_is_signed_by_the_documented_operator() -> None:
    blocks = _doc_blocks()
    registration = from_json(json.loads(blocks["registration"]))
    assert str(registration.device) == blocks["device"].strip()
    assert str(signer(registration, DOMAIN)) == blocks["operator"].strip()
    assert str(address_of(bytes.fromhex("43" * 32))) == blocks["operator"].strip()
