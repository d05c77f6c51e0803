"""A device registration: which device key speaks for a vehicle and who is paid for it, signed by its operator.

The registry (kept by settlement) is a set of these. A fleet file holds one JSON object per line, written by
``to_json`` and read back by ``from_json``; the signature is the operator's EIP-712 signature over the
``Registration`` typed data (``sensors.signing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sensors.address import Address
from sensors.errors import InvalidReading
from sensors.messages import VehicleKind
from sensors.topics import check_id
from sensors.wire import MAX_TIMESTAMP_MS, SIGNATURE_HEX

_FIELDS = ("vehicle_id", "operator", "kind", "device", "payee", "valid_from_ms", "valid_until_ms", "sig")
_REQUIRED = ("vehicle_id", "operator", "kind", "device", "payee", "valid_from_ms")


@dataclass(frozen=True, slots=True)
class Registration:
    """``device`` speaks for ``vehicle_id`` of ``operator`` and ``payee`` is paid for its trips.

    Valid from ``valid_from_ms`` (inclusive) until ``valid_until_ms`` (exclusive; 0 = open-ended), both
    milliseconds since the Unix epoch. Raises ``InvalidReading`` (code ``schema`` or ``out_of_range``) when a
    field breaks the rules.
    """

    vehicle_id: str
    operator: str
    kind: VehicleKind
    device: Address
    payee: Address
    valid_from_ms: int
    valid_until_ms: int = 0
    signature: str | None = None

    def __post_init__(self) -> None:
        check_id(self.vehicle_id, "vehicle id", code="schema")
        check_id(self.operator, "operator", code="schema")
        if not isinstance(self.kind, VehicleKind):
            raise InvalidReading(f"kind {self.kind!r} is not a VehicleKind", code="schema")
        if not isinstance(self.device, Address) or not isinstance(self.payee, Address):
            raise InvalidReading("device and payee must be addresses", code="schema")
        for name in ("valid_from_ms", "valid_until_ms"):
            value = getattr(self, name)
            if type(value) is not int:
                raise InvalidReading(f"{name} must be an integer, not {value!r}", code="schema")
            if not 0 <= value <= MAX_TIMESTAMP_MS:
                raise InvalidReading(f"{name} {value} is outside 0..{MAX_TIMESTAMP_MS}", code="out_of_range")
        if self.valid_until_ms != 0 and self.valid_until_ms <= self.valid_from_ms:
            raise InvalidReading(
                f"valid_until_ms {self.valid_until_ms} must be 0 (open-ended) or after valid_from_ms "
                f"{self.valid_from_ms}",
                code="out_of_range",
            )
        if self.signature is not None and not (
            isinstance(self.signature, str) and SIGNATURE_HEX.fullmatch(self.signature)
        ):
            raise InvalidReading("signature must be 0x and 130 hex digits", code="schema")


def valid_at(reg: Registration, at_ms: int) -> bool:
    """Whether ``reg`` is in force at ``at_ms``: from ``valid_from_ms`` up to, not including, ``valid_until_ms``."""
    return reg.valid_from_ms <= at_ms and (reg.valid_until_ms == 0 or at_ms < reg.valid_until_ms)


def to_json(reg: Registration) -> dict[str, Any]:
    """The fleet-file object of ``reg``: addresses in EIP-55 form, the signature as ``sig`` when there is one."""
    obj: dict[str, Any] = {
        "vehicle_id": reg.vehicle_id,
        "operator": reg.operator,
        "kind": reg.kind.value,
        "device": str(reg.device),
        "payee": str(reg.payee),
        "valid_from_ms": reg.valid_from_ms,
        "valid_until_ms": reg.valid_until_ms,
    }
    if reg.signature is not None:
        obj["sig"] = reg.signature
    return obj


def from_json(obj: object) -> Registration:
    """Read a fleet-file object back, or raise ``InvalidReading`` saying which field is wrong.

    Unknown fields are refused; ``valid_until_ms`` and ``sig`` may be left out; mixed-case addresses must pass
    their EIP-55 checksum (code ``bad_address``).
    """
    if not isinstance(obj, dict):
        raise InvalidReading("a registration is a JSON object", code="schema")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise InvalidReading(f"registration has unknown fields {unknown}", code="schema")
    missing = [name for name in _REQUIRED if name not in obj]
    if missing:
        raise InvalidReading(f"registration lacks {missing}", code="schema")
    for name in ("vehicle_id", "operator", "kind", "device", "payee"):
        if not isinstance(obj[name], str):
            raise InvalidReading(f"registration {name} must be a string", code="schema")
    try:
        kind = VehicleKind(obj["kind"])
    except ValueError:
        raise InvalidReading(
            f"registration kind {obj['kind']!r} is not one of {[k.value for k in VehicleKind]}", code="schema"
        ) from None
    return Registration(
        vehicle_id=obj["vehicle_id"],
        operator=obj["operator"],
        kind=kind,
        device=Address.parse(obj["device"]),
        payee=Address.parse(obj["payee"]),
        valid_from_ms=obj["valid_from_ms"],
        valid_until_ms=obj.get("valid_until_ms", 0),
        signature=obj.get("sig"),
    )
