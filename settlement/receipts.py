"""Trip receipts: what a rider keeps to prove a trip was settled on chain, built and checked (pure).

A receipt is JSON. ``trip`` and ``fare`` describe the trip and its fare breakdown (integer micro-EUR: the metered
components and total, and ``charged_micro``, what the rider paid); ``consent`` and ``voucher`` are the rider's
signed consent and last voucher (``sensors.consent`` wire objects, None where the trip has none) in the EIP-712
domain of ``signing_chain_id``; ``epoch_id``, ``chain_id``, ``contract``, ``tx_hash`` and ``status`` say where it
was settled; and ``root``,
``leaf_types``, ``leaf_values`` and ``proof`` are exactly the arguments of OpenZeppelin's
``StandardMerkleTree.verify(root, leaf_types, leaf_values, proof)`` (``@openzeppelin/merkle-tree``): hex strings
``0x…``, addresses in EIP-55 form, integers of the leaf as decimal strings (as OZ's own dumps write uint256).

``verify_receipt`` trusts nothing but the root read from the chain: it hashes the leaf, folds in the proof,
compares with ``root`` and with the chain's root, checks that the receipt's fields say what the leaf says, and
that the consent and the voucher the leaf binds (by their digests) are signed by the trip's rider, name its
vehicle and trip, and allow what was charged (no more than the cap, nor than the voucher).
Written forms are canonical (lowercase hex for hashes, EIP-55 for addresses, no leading zeros), so that a receipt
edited in any byte is refused, not merely one whose meaning changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi.exceptions import EncodingError

from sensors.address import Address, InvalidAddress
from sensors.consent import consent_from_json, digest, signer, to_json, voucher_from_json
from sensors.errors import InvalidReading
from sensors.signing import Domain
from settlement.epochs import LEAF_TYPES, NO_DIGEST, LeafContext, priced, trips_tree
from settlement.merkle import leaf_hash, process_proof
from settlement.trips import TripRecord

RECEIPT_KEYS = (
    "trip",
    "fare",
    "epoch_id",
    "chain_id",
    "contract",
    "tx_hash",
    "status",
    "consent",
    "voucher",
    "signing_chain_id",
    "root",
    "leaf_types",
    "leaf_values",
    "proof",
)
TRIP_KEYS = ("trip_id", "vehicle_id", "owner", "rider", "start_ms", "end_ms", "duration_s", "distance_m")
FARE_KEYS = ("unlock_micro", "time_micro", "distance_micro", "total_micro", "charged_micro")
_HASH = re.compile(r"0x[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def build_receipt(
    trip: TripRecord,
    epoch_trips: Sequence[TripRecord],
    context: LeafContext,
    *,
    tx_hash: str | None,
    status: str,
) -> dict[str, Any]:
    """The receipt of ``trip``, batched in the epoch of ``epoch_trips`` (all of its trips) on ``context``.

    The epoch's tree is rebuilt from ``epoch_trips``. Raises ``ValueError`` for a trip without an epoch or a fare,
    or one that is not among ``epoch_trips``.
    """
    if trip.epoch_id is None or trip.fare is None or trip.start is None or trip.end is None:
        raise ValueError(f"trip {trip.trip_id} is not priced into an epoch")
    if all(t.trip_id != trip.trip_id for t in epoch_trips):
        raise ValueError(f"trip {trip.trip_id} is not among the trips of epoch {trip.epoch_id}")
    domain = context.domain
    tree = trips_tree([priced(t, domain) for t in epoch_trips], context, trip.epoch_id)
    leaf = priced(trip, domain).leaf(context, trip.epoch_id)
    return {
        "trip": {
            "trip_id": trip.trip_id,
            "vehicle_id": trip.vehicle_id,
            "owner": str(trip.payee),
            "rider": trip.rider or "",
            "start_ms": trip.start.timestamp_ms,
            "end_ms": trip.end.timestamp_ms,
            "duration_s": trip.duration_s,
            "distance_m": trip.distance_m or 0,
        },
        "fare": {
            "unlock_micro": trip.fare.unlock_micro,
            "time_micro": trip.fare.time_micro,
            "distance_micro": trip.fare.distance_micro,
            "total_micro": trip.fare.total_micro,
            "charged_micro": trip.charged,
            "limited_by": trip.limited_by or "metered",
        },
        "consent": None if trip.consent is None else to_json(trip.consent),
        "voucher": None if trip.voucher is None else to_json(trip.voucher),
        "signing_chain_id": domain.chain_id,
        "epoch_id": trip.epoch_id,
        "chain_id": context.chain_id,
        "contract": str(context.contract),
        "tx_hash": tx_hash,
        "status": status,
        "root": _hex(tree.root),
        "leaf_types": list(LEAF_TYPES),
        "leaf_values": [_written(v) for v in leaf],
        "proof": [_hex(node) for node in tree.proof(leaf)],
    }


def _written(value: object) -> object:
    """A leaf value as OZ's dumps write it: integers as decimal strings, bytes as 0x-hex."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return _hex(value)
    return value


class _Refused(Exception):
    """Why a receipt does not verify (internal: ``verify_receipt`` returns the reason)."""


def verify_receipt(receipt: Mapping[str, Any], onchain_root: bytes) -> str | None:
    """None if ``receipt`` proves its trip against ``onchain_root`` (the contract's ``trips_root(epoch_id)``),
    else the reason it does not."""
    try:
        _verify(receipt, onchain_root)
    except _Refused as exc:
        return str(exc)
    return None


def _verify(receipt: Mapping[str, Any], onchain_root: bytes) -> None:
    if not isinstance(receipt, Mapping):
        raise _Refused("a receipt is a JSON object")
    missing = [key for key in RECEIPT_KEYS if key not in receipt]
    if missing:
        raise _Refused(f"the receipt lacks {', '.join(missing)}")
    if list(receipt["leaf_types"]) != list(LEAF_TYPES):
        raise _Refused(f"leaf_types are not those of a trip leaf: {list(LEAF_TYPES)}")
    values = _leaf(receipt["leaf_values"])
    root = _hash(receipt["root"], "root")
    proof = receipt["proof"]
    if not isinstance(proof, list):
        raise _Refused("proof is not a list")
    nodes = [_hash(node, f"proof[{i}]") for i, node in enumerate(proof)]
    if process_proof(leaf_hash(LEAF_TYPES, values), nodes) != root:
        raise _Refused("the proof does not lead from the leaf to the receipt's root")
    if root != onchain_root:
        raise _Refused(f"the receipt's root is not the trips root of epoch {receipt['epoch_id']} on chain")
    _same_as_leaf(receipt, values)


def _leaf(raw: object) -> list[Any]:
    """The leaf values in the Python types eth_abi encodes, checked to be written canonically."""
    if not isinstance(raw, list) or len(raw) != len(LEAF_TYPES):
        raise _Refused(f"leaf_values must be a list of {len(LEAF_TYPES)} values")
    values: list[Any] = []
    for i, (kind, value) in enumerate(zip(LEAF_TYPES, raw, strict=True)):
        if not isinstance(value, str):
            raise _Refused(f"leaf_values[{i}] is not a string")
        if kind.startswith("uint"):
            if not _DECIMAL.fullmatch(value):
                raise _Refused(f"leaf_values[{i}] is not a decimal integer: {value!r}")
            values.append(int(value))
        elif kind == "bytes32":
            values.append(_hash(value, f"leaf_values[{i}]"))
        elif kind == "address":
            try:
                canonical = str(Address.parse(value))
            except InvalidAddress as exc:
                raise _Refused(f"leaf_values[{i}]: {exc}") from None
            if canonical != value:
                raise _Refused(f"leaf_values[{i}] is not in EIP-55 form: {value}")
            values.append(value)
        else:
            values.append(value)
    try:
        leaf_hash(LEAF_TYPES, values)
    except (EncodingError, ValueError, OverflowError) as exc:
        raise _Refused(f"leaf_values do not encode as {list(LEAF_TYPES)}: {exc}") from None
    return values


def _same_rider(rider: str, account: Address) -> bool:
    try:
        return Address.parse(rider) == account
    except InvalidAddress:
        return False


def _hash(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise _Refused(f"{name} is not 0x and 64 lowercase hex digits")
    return bytes.fromhex(value[2:])


def _same_as_leaf(receipt: Mapping[str, Any], values: Sequence[Any]) -> None:
    """Refuse a receipt whose fields say something else than the proved leaf."""
    chain_id, contract, epoch_id, trip_id, owner, rider, start_ms, end_ms, distance_m, fare, _, _ = values
    for name, leaf_value in (("chain_id", chain_id), ("contract", contract), ("epoch_id", epoch_id)):
        if receipt[name] != leaf_value or isinstance(receipt[name], bool):
            raise _Refused(f"the receipt's {name} {receipt[name]!r} is not the leaf's {leaf_value!r}")
    trip, money = receipt["trip"], receipt["fare"]
    if not isinstance(trip, Mapping) or not isinstance(money, Mapping):
        raise _Refused("trip and fare must be JSON objects")
    missing = [f"trip.{k}" for k in TRIP_KEYS if k not in trip] + [f"fare.{k}" for k in FARE_KEYS if k not in money]
    if missing:
        raise _Refused(f"the receipt lacks {', '.join(missing)}")
    said = {
        "trip_id": trip_id,
        "owner": owner,
        "rider": rider,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "distance_m": distance_m,
        "duration_s": -(-(end_ms - start_ms) // 1000),  # started seconds, as the trip was priced
    }
    for name, leaf_value in said.items():
        if trip[name] != leaf_value or isinstance(trip[name], bool):
            raise _Refused(f"the trip's {name} {trip[name]!r} is not the leaf's {leaf_value!r}")
    if trip_id.rpartition(":")[0] != trip["vehicle_id"]:
        raise _Refused(f"the trip's vehicle_id {trip['vehicle_id']!r} is not the one trip id {trip_id!r} names")
    parts = [money[k] for k in FARE_KEYS]
    if any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in parts):
        raise _Refused("fare components must be non-negative integers of micro-EUR")
    if money["charged_micro"] != fare:
        raise _Refused(f"the fare's charged_micro {money['charged_micro']} is not the leaf's {fare}")
    if sum(parts[:3]) != money["total_micro"]:
        raise _Refused(f"the fare's components do not add up to its total {money['total_micro']}")
    if fare > money["total_micro"]:
        raise _Refused(f"the rider was charged {fare}, more than the metered fare {money['total_micro']}")
    _consented(receipt, values)


def _consented(receipt: Mapping[str, Any], values: Sequence[Any]) -> None:
    """Refuse a receipt whose consent or voucher is not what the leaf binds, not the rider's, or allows less than
    was charged."""
    trip_id, rider, fare, consent_digest, voucher_digest = values[3], values[5], values[9], values[10], values[11]
    raw_consent, raw_voucher, chain = receipt["consent"], receipt["voucher"], receipt["signing_chain_id"]
    if not isinstance(chain, int) or isinstance(chain, bool) or not 0 < chain < 2**256:
        raise _Refused(f"signing_chain_id {chain!r} is not a chain id")
    domain = Domain(chain)
    if raw_consent is None:
        if consent_digest != NO_DIGEST or voucher_digest != NO_DIGEST or raw_voucher is not None:
            raise _Refused("the receipt has no consent, but its leaf binds one")
        return  # a trip settled where consent was not required (the leaf says so)
    try:
        consent = consent_from_json(raw_consent)
        voucher = None if raw_voucher is None else voucher_from_json(raw_voucher)
        if digest(consent, domain) != consent_digest:
            raise _Refused("the consent is not the one the leaf binds")
        if signer(consent, domain) != consent.rider:
            raise _Refused(f"the consent is not signed by its rider {consent.rider}")
        if not _same_rider(rider, consent.rider):
            raise _Refused(f"the consent is {consent.rider}'s, the trip's rider is {rider}")
        if voucher is not None and digest(voucher, domain) != voucher_digest:
            raise _Refused("the voucher is not the one the leaf binds")
        if voucher is not None and signer(voucher, domain) != consent.rider:
            raise _Refused(f"the voucher is not signed by the consent's rider {consent.rider}")
    except InvalidReading as exc:
        raise _Refused(f"the rider's signature does not hold: {exc.reason}") from None
    if consent.vehicle_id != trip_id.rpartition(":")[0]:
        raise _Refused(f"the consent is for {consent.vehicle_id}, not the trip's vehicle")
    if fare > consent.cap_micro:
        raise _Refused(f"the rider was charged {fare}, above the consent's cap {consent.cap_micro}")
    if voucher is None:
        if voucher_digest != NO_DIGEST or fare:
            raise _Refused(f"the rider was charged {fare} without a voucher")
        return
    if voucher.trip_id != trip_id:
        raise _Refused(f"the voucher is for trip {voucher.trip_id}, not {trip_id}")
    if fare > voucher.cumulative_micro:
        raise _Refused(f"the rider was charged {fare}, above the voucher's {voucher.cumulative_micro}")
