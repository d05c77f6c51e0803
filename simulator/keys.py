"""Private keys of the simulated world, derived from the fleet's seed: devices, operators, owners and riders.

Each key is keccak-256 of a domain-separated label (``smartzone-sim/v1/<role>/<seed>/...``; ids never contain
``/``) reduced into [1, n-1] of secp256k1, so a seed gives the same keys on every machine. Anyone who knows the
seed knows the keys: they are for simulations and tests, never for real funds.
"""

from __future__ import annotations

from eth_hash.auto import keccak

from sensors.signing import SECP256K1_N
from sensors.topics import check_id

LABEL_PREFIX = "smartzone-sim/v1"


def device_key(seed: int, operator: str, vehicle_id: str) -> bytes:
    """The device key of ``vehicle_id`` of ``operator``: it signs the vehicle's events and states."""
    return _derive("device", seed, check_id(operator, "operator"), check_id(vehicle_id, "vehicle id"))


def operator_key(seed: int, operator: str) -> bytes:
    """The key of ``operator``: it signs the fleet's registrations and its gateway's state."""
    return _derive("operator", seed, check_id(operator, "operator"))


def owner_key(seed: int, index: int) -> bytes:
    """The key of owner ``index`` (0-based), whose address is paid for the trips of its vehicles."""
    return _derive("owner", seed, str(_index(index)))


def rider_key(seed: int, index: int) -> bytes:
    """The key of rider ``index`` (0-based); the rider's id on the wire is its address."""
    return _derive("rider", seed, str(_index(index)))


def zone_key(seed: int) -> bytes:
    """The key of the demo's Smart Zone fee account (the fees of a simulated run are earned there)."""
    return _derive("zone", seed)


def _derive(role: str, seed: int, *parts: str) -> bytes:
    label = "/".join((LABEL_PREFIX, role, str(int(seed)), *parts))
    scalar = int.from_bytes(keccak(label.encode()), "big") % (SECP256K1_N - 1) + 1
    return scalar.to_bytes(32, "big")


def _index(index: int) -> int:
    if index < 0:
        raise ValueError(f"index {index} must not be negative")
    return index
