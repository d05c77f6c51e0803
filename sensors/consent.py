"""A rider's consent to pay and its vouchers as EIP-712 structs: values, digests, signing and signer recovery.

What the rider's wallet signs, in the domain of ``sensors.signing`` (``{name: "SmartZone", version: "1",
chainId}``); the field order is normative (``TYPES``):

- ``RideConsent``: at unlock, the rider allows ``vehicleId`` to be ridden under the tariff ``tariffId`` (a
  pricing plan's ``plan_id``) for at most ``capMicro`` micro-euro, until ``expiryMs`` (milliseconds since the
  Unix epoch, exclusive); ``nonce`` makes each consent single-use.
- ``Voucher`` (a µRaiden-style balance proof): during the ride, per metering interval, the rider's app signs
  the *cumulative* amount it agrees to pay for the trip ``tripId`` (the trip id of the wire,
  ``<vehicle_id>:<seq of the unlock>``, kept a string so that a wallet shows the rider what is signed);
  ``seq`` counts the trip's vouchers. Only the last voucher matters: it supersedes every earlier one.

On the wire (``to_json``, ``consent_from_json``, ``voucher_from_json``) each is a JSON object of its snake_case
fields (``JSON_FIELDS``), the rider in EIP-55 form, the signature as ``sig``; like every wire integer, the
amounts, times, nonces and seqs carried there are at most 2**53 - 1 (exact in a JSON number), though their
struct types are wider.

Signatures are those of ``sensors.signing``: ``"0x"`` + r + s (low) + v (27/28), lower-case hex. This module
holds the wire contract only; the rules that accept or refuse a consent or a voucher are
``settlement.consent``'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from sensors.address import Address
from sensors.errors import InvalidReading
from sensors.signing import Domain, recover, sign_digest, struct_digest, struct_of, typed_struct
from sensors.wire import MAX_SEQ

__all__ = [
    "JSON_FIELDS",
    "TYPES",
    "RideConsent",
    "Voucher",
    "consent_from_json",
    "digest",
    "sign",
    "signer",
    "to_json",
    "typed_data",
    "voucher_from_json",
]

TYPES: dict[str, tuple[tuple[str, str], ...]] = {
    "RideConsent": (
        ("rider", "address"),
        ("vehicleId", "string"),
        ("tariffId", "string"),
        ("capMicro", "uint256"),
        ("expiryMs", "uint64"),
        ("nonce", "uint256"),
    ),
    "Voucher": (
        ("rider", "address"),
        ("tripId", "string"),
        ("cumulativeMicro", "uint256"),
        ("seq", "uint32"),
    ),
}
"""The typed structs, field order normative: changing it changes every digest."""

_BITS = {"uint256": 256, "uint64": 64, "uint32": 32}
JSON_FIELDS: dict[str, tuple[str, ...]] = {
    "RideConsent": ("rider", "vehicle_id", "tariff_id", "cap_micro", "expiry_ms", "nonce"),
    "Voucher": ("rider", "trip_id", "cumulative_micro", "seq"),
}
"""The wire object's fields of each struct, in struct order (plus ``sig``, optional)."""
MAX_JSON_INT = MAX_SEQ


@dataclass(frozen=True, slots=True)
class RideConsent:
    """The rider's EIP-712 consent, carried by an unlock: ride ``vehicle_id`` under ``tariff_id``.

    ``cap_micro`` bounds what the trip may cost, ``expiry_ms`` when the consent stops allowing payments,
    ``nonce`` is single-use per rider. Raises ``InvalidReading`` (``schema`` or ``out_of_range``) for values
    that are not of their field's type.
    """

    rider: Address
    vehicle_id: str
    tariff_id: str
    cap_micro: int
    expiry_ms: int
    nonce: int
    signature: str | None = None

    def __post_init__(self) -> None:
        _check_fields(self, "RideConsent")


@dataclass(frozen=True, slots=True)
class Voucher:
    """The rider's promise to pay ``cumulative_micro`` in all for the trip ``trip_id`` (``seq``: its order)."""

    rider: Address
    trip_id: str
    cumulative_micro: int
    seq: int
    signature: str | None = None

    def __post_init__(self) -> None:
        _check_fields(self, "Voucher")


Signed = RideConsent | Voucher
S = TypeVar("S", RideConsent, Voucher)


def _check_fields(item: Signed, primary: str) -> None:
    for (name, kind), value in zip(TYPES[primary], _values(item), strict=True):
        if kind == "address" and not isinstance(value, Address):
            raise InvalidReading(f"{primary} {name} must be an Address, not {value!r}", code="schema")
        if kind == "string" and (not isinstance(value, str) or not value):
            raise InvalidReading(f"{primary} {name} must be a non-empty string, not {value!r}", code="schema")
        if kind in _BITS and (type(value) is not int or not 0 <= value < 2 ** _BITS[kind]):
            raise InvalidReading(f"{primary} {name} {value!r} does not fit {kind}", code="out_of_range")


def _primary(item: Signed) -> str:
    if isinstance(item, RideConsent):
        return "RideConsent"
    if isinstance(item, Voucher):
        return "Voucher"
    raise TypeError(f"cannot sign a {type(item).__name__} here")


def _values(item: Signed) -> tuple[Any, ...]:
    if isinstance(item, RideConsent):
        return (item.rider, item.vehicle_id, item.tariff_id, item.cap_micro, item.expiry_ms, item.nonce)
    return (item.rider, item.trip_id, item.cumulative_micro, item.seq)


def typed_data(item: Signed, domain: Domain) -> dict[str, Any]:
    """The full EIP-712 typed data of ``item``, as any EIP-712 library (eth_account, ethers, viem) takes it."""
    primary = _primary(item)
    return typed_struct(primary, TYPES[primary], _values(item), domain)


def digest(item: Signed, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest of ``item``: keccak(0x1901 ‖ domain separator ‖ hashStruct(item)).

    It is also what a trip leaf binds (``consent_digest``, ``voucher_digest``).
    """
    primary = _primary(item)
    return struct_digest(struct_of(primary, TYPES[primary]), _values(item), domain)


def sign(item: S, key: bytes, domain: Domain) -> S:
    """``item`` with ``signature`` set to the EIP-712 signature of ``key`` (32 bytes) over it (deterministic)."""
    return dataclasses.replace(item, signature=sign_digest(digest(item, domain), key))


def signer(item: Signed, domain: Domain) -> Address:
    """The address whose key signed ``item``; compare it with ``item.rider``.

    Raises ``InvalidReading`` with code ``missing_signature`` when ``item`` carries none, and ``bad_signature``
    when it is malformed (not 0x + 130 hex, v not 27/28, r or s out of range, s not low) or recovers no key.
    """
    if item.signature is None:
        raise InvalidReading(f"{_primary(item)} is not signed", code="missing_signature")
    return recover(item.signature, digest(item, domain))


def to_json(item: Signed) -> dict[str, Any]:
    """The wire object of ``item``; ``InvalidReading`` (``out_of_range``) if an integer is above 2**53 - 1."""
    primary = _primary(item)
    obj: dict[str, Any] = {}
    for name, value in zip(JSON_FIELDS[primary], _values(item), strict=True):
        if isinstance(value, int) and value > MAX_JSON_INT:
            raise InvalidReading(f"{primary} {name} {value} is above 2**53 - 1, not exact in JSON", code="out_of_range")
        obj[name] = str(value) if isinstance(value, Address) else value
    if item.signature is not None:
        obj["sig"] = item.signature
    return obj


def consent_from_json(obj: object) -> RideConsent:
    """The consent the wire object ``obj`` holds; ``InvalidReading`` as ``voucher_from_json``."""
    values, sig = _read(obj, "RideConsent")
    rider, vehicle_id, tariff_id, cap_micro, expiry_ms, nonce = values
    return RideConsent(rider, vehicle_id, tariff_id, cap_micro, expiry_ms, nonce, signature=sig)


def voucher_from_json(obj: object) -> Voucher:
    """The voucher the wire object ``obj`` holds.

    Raises ``InvalidReading``: ``schema`` for a missing, unknown or mistyped field (integers must be JSON
    integers, not floats), ``out_of_range`` for an integer out of 0 … 2**53 - 1, ``bad_address`` for a rider
    that is not an address or fails its EIP-55 checksum.
    """
    values, sig = _read(obj, "Voucher")
    rider, trip_id, cumulative_micro, seq = values
    return Voucher(rider, trip_id, cumulative_micro, seq, signature=sig)


def _read(obj: object, primary: str) -> tuple[list[Any], str | None]:
    fields = JSON_FIELDS[primary]
    if not isinstance(obj, dict):
        raise InvalidReading(f"a {primary} is a JSON object", code="schema")
    unknown = sorted(set(obj) - {*fields, "sig"})
    missing = [name for name in fields if name not in obj]
    if unknown or missing:
        raise InvalidReading(f"{primary} has unknown fields {unknown} or lacks {missing}", code="schema")
    sig = obj.get("sig")
    if sig is not None and not isinstance(sig, str):
        raise InvalidReading(f"{primary} sig must be a string", code="schema")
    values: list[Any] = []
    for name, (_, kind) in zip(fields, TYPES[primary], strict=True):
        value = obj[name]
        if kind in _BITS:
            if type(value) is not int:
                raise InvalidReading(f"{primary} {name} must be an integer, not {value!r}", code="schema")
            if not 0 <= value <= MAX_JSON_INT:
                raise InvalidReading(f"{primary} {name} {value} is out of 0 … 2**53 - 1", code="out_of_range")
        elif not isinstance(value, str):
            raise InvalidReading(f"{primary} {name} must be a string, not {value!r}", code="schema")
        values.append(Address.parse(value) if kind == "address" else value)
    return values, sig
