"""EIP-712 signatures of messages and registrations: typed data, digests, signing and signer recovery.

The domain is ``{name: "SmartZone", version: "1", chainId}``. Each message is signed as one struct whose field
order is normative (``TYPES``), over canonical integer and string values (``canonical``):

- ``latE7``/``lonE7`` = ``round(degrees * 10**7)``; ``speedMmps`` = ``round(speed_mps * 1000)``;
- ``batteryPermille``/``fuelPermille`` = ``round(pct * 10)``, ``-1`` when absent;
- ``rider``/``detail`` = ``""`` when absent; ``tripSeq`` = ``0`` when absent; ``validUntil`` = ``0`` open-ended.

(``round`` is Python's: the IEEE-754 double product rounded half to even.) A signature is ``"0x"`` + r (32 bytes)
+ s (32, low-s) + v (1 byte, 27 or 28), in lower-case hex. Digests are computed by hand with keccak, without
an EIP-712 library on the hot path; ``typed_data`` gives the same content as EIP-712 JSON, for documentation and
for cross-checks with any EIP-712 implementation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, TypeVar

from coincurve import PrivateKey, PublicKey
from eth_hash.auto import keccak

from sensors.address import Address
from sensors.errors import InvalidReading
from sensors.messages import Event, Telemetry, VehicleState
from sensors.registration import Registration
from sensors.wire import SIGNATURE_HEX

DOMAIN_NAME = "SmartZone"
DOMAIN_VERSION = "1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of the secp256k1 group: private keys lie in [1, n-1]."""

Signable = Telemetry | Event | VehicleState | Registration
S = TypeVar("S", bound=Signable)

EIP712_DOMAIN: tuple[tuple[str, str], ...] = (("name", "string"), ("version", "string"), ("chainId", "uint256"))
TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "Telemetry": (
        ("vehicleId", "string"),
        ("operator", "string"),
        ("kind", "string"),
        ("seq", "uint64"),
        ("timestamp", "uint64"),
        ("latE7", "int64"),
        ("lonE7", "int64"),
        ("speedMmps", "uint64"),
        ("odometerM", "uint64"),
        ("batteryPermille", "int32"),
        ("fuelPermille", "int32"),
    ),
    "Event": (
        ("vehicleId", "string"),
        ("operator", "string"),
        ("kind", "string"),
        ("seq", "uint64"),
        ("timestamp", "uint64"),
        ("eventType", "string"),
        ("latE7", "int64"),
        ("lonE7", "int64"),
        ("odometerM", "uint64"),
        ("batteryPermille", "int32"),
        ("rider", "string"),
        ("detail", "string"),
        ("tripSeq", "uint64"),
    ),
    "VehicleState": (
        ("vehicleId", "string"),
        ("operator", "string"),
        ("timestamp", "uint64"),
        ("online", "bool"),
    ),
    "Registration": (
        ("vehicleId", "string"),
        ("operator", "string"),
        ("kind", "string"),
        ("device", "address"),
        ("payee", "address"),
        ("validFrom", "uint64"),
        ("validUntil", "uint64"),
    ),
}
"""The typed structs, field order normative: changing it changes every digest."""


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain: ``SmartZone`` version ``1`` on the settlement chain ``chain_id``."""

    chain_id: int

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or not 0 < self.chain_id < 2**256:
            raise ValueError(f"chain id {self.chain_id!r} is not a positive uint256")


def canonical(item: Signable) -> tuple[str, tuple[Any, ...]]:
    """The primary type of ``item`` and its struct's values in field order (addresses as ``Address``)."""
    if isinstance(item, Event):
        return "Event", (
            item.vehicle_id, item.operator, item.kind.value, item.seq, item.timestamp, item.event_type.value,
            _e7(item.position.lat), _e7(item.position.lon), item.odometer_m, _permille(item.battery_pct),
            item.rider or "", item.detail or "", item.trip_seq or 0,
        )  # fmt: skip
    if isinstance(item, Telemetry):
        return "Telemetry", (
            item.vehicle_id, item.operator, item.kind.value, item.seq, item.timestamp,
            _e7(item.position.lat), _e7(item.position.lon), round(item.speed_mps * 1000), item.odometer_m,
            _permille(item.battery_pct), _permille(item.fuel_pct),
        )  # fmt: skip
    if isinstance(item, VehicleState):
        return "VehicleState", (item.vehicle_id, item.operator, item.timestamp, item.online)
    if isinstance(item, Registration):
        return "Registration", (
            item.vehicle_id, item.operator, item.kind.value, item.device, item.payee,
            item.valid_from_ms, item.valid_until_ms,
        )  # fmt: skip
    raise TypeError(f"cannot sign a {type(item).__name__}")


def typed_data(item: Signable, domain: Domain) -> dict[str, Any]:
    """The full EIP-712 typed data of ``item`` (types with ``EIP712Domain``, primaryType, domain, message)."""
    primary, values = canonical(item)
    return typed_struct(primary, TYPES[primary], values, domain)


def typed_struct(
    primary: str, fields: tuple[tuple[str, str], ...], values: tuple[Any, ...], domain: Domain
) -> dict[str, Any]:
    """EIP-712 typed data of one struct ``primary`` with ``fields`` and ``values`` (addresses as ``Address``)."""
    message = {
        name: str(value) if isinstance(value, Address) else value
        for (name, _), value in zip(fields, values, strict=True)
    }
    return {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in EIP712_DOMAIN],
            primary: [{"name": n, "type": t} for n, t in fields],
        },
        "primaryType": primary,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": domain.chain_id},
        "message": message,
    }


def digest(item: Signable, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest of ``item``: keccak(0x1901 ‖ domain separator ‖ hashStruct(item)).

    Raises ``InvalidReading`` (code ``out_of_range``) when a value does not fit its field's type.
    """
    primary, values = canonical(item)
    return struct_digest(_struct(primary), values, domain)


def struct_digest(
    struct: tuple[bytes, tuple[Callable[[Any], bytes], ...]], values: tuple[Any, ...], domain: Domain
) -> bytes:
    """keccak(0x1901 ‖ domain separator ‖ hashStruct) of ``values`` under ``struct`` (type hash, field encoders)."""
    type_hash, encoders = struct
    encoded = b"".join([type_hash, *(encode(value) for encode, value in zip(encoders, values, strict=True))])
    return keccak(b"\x19\x01" + separator(domain) + keccak(encoded))


def sign(item: S, key: bytes, domain: Domain) -> S:
    """``item`` with ``signature`` set to the EIP-712 signature of ``key`` (32 bytes) over it (deterministic)."""
    return dataclasses.replace(item, signature=sign_digest(digest(item, domain), key))


def sign_digest(digest32: bytes, key: bytes) -> str:
    """The signature of ``key`` (32 bytes) over the 32-byte ``digest32``: ``"0x"`` + r + s (low) + v (27/28)."""
    raw = _private_key(key).sign_recoverable(digest32, hasher=None)
    return "0x" + raw[:64].hex() + f"{raw[64] + 27:02x}"


def signer(item: Signable, domain: Domain) -> Address:
    """The address whose key signed ``item``.

    Raises ``InvalidReading`` with code ``missing_signature`` when ``item`` carries none, and ``bad_signature``
    when it is malformed (not 0x + 130 hex, v not 27/28, r or s out of range, s not low) or recovers no key.
    A signature over other content or by another key recovers another address: compare it with the one
    expected.
    """
    signature = item.signature
    if signature is None:
        raise InvalidReading(f"{type(item).__name__} of {item.vehicle_id} is not signed", code="missing_signature")
    return recover(signature, digest(item, domain))


def recover(signature: object, digest32: bytes) -> Address:
    """The address whose key made ``signature`` over ``digest32``; ``InvalidReading`` (``bad_signature``) when
    the signature is malformed (not 0x + 130 hex, v not 27/28, r or s out of range, s not low) or recovers no key."""
    if not isinstance(signature, str) or not SIGNATURE_HEX.fullmatch(signature):
        raise InvalidReading("signature is not 0x and 130 hex digits", code="bad_signature")
    raw = bytes.fromhex(signature[2:])
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v not in (27, 28) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise InvalidReading("signature has v not 27/28, or r or s out of range (s must be low)", code="bad_signature")
    try:
        public = PublicKey.from_signature_and_message(raw[:64] + bytes((v - 27,)), digest32, hasher=None)
    except ValueError:
        raise InvalidReading("signature recovers no public key", code="bad_signature") from None
    return _address_of_public(public)


def address_of(key: bytes) -> Address:
    """The account address of the private ``key`` (32 bytes)."""
    return _address_of_public(_private_key(key).public_key)


def _address_of_public(public: PublicKey) -> Address:
    return Address(keccak(public.format(compressed=False)[1:])[12:])


@lru_cache(maxsize=4096)
def _private_key(key: bytes) -> PrivateKey:
    """The coincurve key of ``key``, kept: making one computes its public key."""
    return PrivateKey(key)


@cache
def separator(domain: Domain) -> bytes:
    """The domain separator: hashStruct of the EIP712Domain."""
    type_hash = keccak(encode_type("EIP712Domain", EIP712_DOMAIN).encode())
    return keccak(
        type_hash + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode()) + domain.chain_id.to_bytes(32, "big")
    )


def _struct(primary: str) -> tuple[bytes, tuple[Callable[[Any], bytes], ...]]:
    return struct_of(primary, TYPES[primary])


@cache
def struct_of(primary: str, fields: tuple[tuple[str, str], ...]) -> tuple[bytes, tuple[Callable[[Any], bytes], ...]]:
    """The type hash of the struct ``primary`` with ``fields`` and one 32-byte encoder per field."""
    return keccak(encode_type(primary, fields).encode()), tuple(_ENCODERS[t] for _, t in fields)


def encode_type(name: str, fields: tuple[tuple[str, str], ...]) -> str:
    return f"{name}({','.join(f'{t} {n}' for n, t in fields)})"


@lru_cache(maxsize=65536)
def _string(value: str) -> bytes:
    """keccak of the UTF-8 bytes; ids, kinds and event types repeat, so their hashes are kept."""
    return keccak(value.encode())


def _integer(bits: int, signed: bool) -> Callable[[Any], bytes]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    name = f"{'int' if signed else 'uint'}{bits}"

    def encode(value: Any) -> bytes:
        if type(value) is not int or not low <= value < high:
            raise InvalidReading(f"{value!r} does not fit {name}", code="out_of_range")
        return value.to_bytes(32, "big", signed=signed)

    return encode


def _boolean(value: Any) -> bytes:
    return b"\x00" * 31 + (b"\x01" if value else b"\x00")


def _address(value: Any) -> bytes:
    return b"\x00" * 12 + value.raw


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "string": _string,
    "uint256": _integer(256, signed=False),
    "uint64": _integer(64, signed=False),
    "uint32": _integer(32, signed=False),
    "int64": _integer(64, signed=True),
    "int32": _integer(32, signed=True),
    "bool": _boolean,
    "address": _address,
}


def _e7(degrees: float) -> int:
    return round(degrees * 10**7)


def _permille(pct: float | None) -> int:
    return -1 if pct is None else round(pct * 10)
