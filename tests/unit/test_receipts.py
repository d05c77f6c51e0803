"""Trip receipts: built from an epoch's trips, verified against the chain's root, refused when edited."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from sensors.address import Address
from sensors.messages import VehicleKind
from settlement.epochs import LEAF_TYPES, LeafContext, priced, trips_tree
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.receipts import build_receipt, verify_receipt
from settlement.trips import Mark, TripRecord

T0 = 1_790_000_000_000
CONTEXT = LeafContext(31337, Address(b"\x5a" * 20))
OWNERS = [Address(bytes([n] * 20)) for n in (0x11, 0x22, 0x33)]
RIDER = "0x" + "7e" * 20


def trip(n: int, epoch_id: int = 3) -> TripRecord:
    start, end = T0 + 100_000 * n, T0 + 100_000 * n + 61_500
    return TripRecord(
        f"bike-{n}:{10 + n}", f"bike-{n}", "smartzone", VehicleKind.BIKE, TripStatus.COMMITTED,
        Mark(10 + n, start, 51.2, 4.39, 1_000), Mark(11 + n, end, 51.21, 4.4, 1_000 + 250 * n),
        RIDER, OWNERS[n % 3], None, 250 * n, 62, Fare(500_000, 100_000 + n, 0), epoch_id,
    )  # fmt: skip


EPOCH = [trip(n) for n in range(1, 6)]
ROOT = trips_tree([priced(t) for t in EPOCH], CONTEXT, 3).root


def receipt(n: int = 2) -> dict[str, Any]:
    return build_receipt(EPOCH[n - 1], EPOCH, CONTEXT, tx_hash="0x" + "ab" * 32, status="committed")


def oz_verify(root: str, leaf_types: list[str], leaf_values: list[Any], proof: list[str]) -> bool:
    """OpenZeppelin's ``StandardMerkleTree.verify`` written again from its specification, sharing nothing with
    ``settlement.merkle``: the leaf is keccak256(keccak256(abi.encode(types, values))), each step hashes the pair in
    ascending order, and the result must be the root. Values are taken as OZ's JS library takes them: uint as
    decimal strings."""
    values = [int(v) if t.startswith("uint") else v for t, v in zip(leaf_types, leaf_values, strict=True)]
    node = keccak(keccak(encode(leaf_types, values)))
    for sibling_hex in proof:
        sibling = bytes.fromhex(sibling_hex.removeprefix("0x"))
        node = keccak(b"".join(sorted([node, sibling])))
    return "0x" + node.hex() == root


def test_a_receipt_verifies_against_the_root_its_epoch_committed() -> None:
    for n in range(1, 6):
        assert verify_receipt(receipt(n), ROOT) is None


def test_a_receipt_holds_the_trip_its_fare_and_where_it_was_settled() -> None:
    r = receipt(2)

    assert r["trip"] == {
        "trip_id": "bike-2:12", "vehicle_id": "bike-2", "owner": str(OWNERS[2]), "rider": RIDER,
        "start_ms": T0 + 200_000, "end_ms": T0 + 261_500, "duration_s": 62, "distance_m": 500,
    }  # fmt: skip
    assert r["fare"] == {"unlock_micro": 500_000, "time_micro": 100_002, "distance_micro": 0, "total_micro": 600_002}
    assert (r["epoch_id"], r["chain_id"], r["contract"]) == (3, 31337, str(CONTEXT.contract))
    assert (r["tx_hash"], r["status"], r["root"]) == ("0x" + "ab" * 32, "committed", "0x" + ROOT.hex())
    assert r["leaf_types"] == list(LEAF_TYPES)
    assert r["leaf_values"] == [
        "31337", str(CONTEXT.contract), "3", "bike-2:12", str(OWNERS[2]), RIDER,
        str(T0 + 200_000), str(T0 + 261_500), "500", "600002",
    ]  # fmt: skip
    assert json.loads(json.dumps(r)) == r  # plain JSON: strings, integers, lists


def test_an_independent_implementation_of_oz_verify_accepts_the_receipt_as_it_is() -> None:
    for n in range(1, 6):
        r = json.loads(json.dumps(receipt(n)))
        assert oz_verify(r["root"], r["leaf_types"], r["leaf_values"], r["proof"])
    assert not oz_verify(r["root"], r["leaf_types"], [*r["leaf_values"][:-1], "600003"], r["proof"])


def edits(text: str) -> list[str]:
    """Every edit of one character of ``text`` to another of its kind (a hex or decimal digit, a letter)."""
    out = []
    for i, c in enumerate(text):
        if text.startswith("0x") and i < 2:
            continue
        other = {"0": "1", "9": "8", "f": "e", "F": "E", "a": "b", "A": "B"}.get(c)
        if other is None:
            other = "0" if c.isdigit() else ("a" if c != "a" else "b")
        out.append(text[:i] + other + text[i + 1 :])
    return out


def test_every_single_byte_edit_of_the_root_is_refused() -> None:
    for edited in edits(receipt()["root"]):
        r = receipt()
        r["root"] = edited
        assert verify_receipt(r, ROOT) is not None, edited


def test_every_single_byte_edit_of_a_leaf_value_is_refused() -> None:
    for i, value in enumerate(receipt()["leaf_values"]):
        for edited in edits(value):
            r = receipt()
            r["leaf_values"][i] = edited
            reason = verify_receipt(r, ROOT)
            assert reason is not None, (i, edited)


def test_every_single_byte_edit_of_a_proof_element_is_refused() -> None:
    proof = receipt()["proof"]
    assert len(proof) >= 2
    for i, node in enumerate(proof):
        for edited in edits(node):
            r = receipt()
            r["proof"][i] = edited
            assert verify_receipt(r, ROOT) == "the proof does not lead from the leaf to the receipt's root"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("epoch_id", 4, "the receipt's epoch_id 4 is not the leaf's 3"),
        ("epoch_id", 2, "the receipt's epoch_id 2 is not the leaf's 3"),
        ("chain_id", 1, "the receipt's chain_id 1 is not the leaf's 31337"),
        ("contract", "0x" + "5b" * 20, "the receipt's contract"),
    ],
)
def test_a_receipt_that_names_another_epoch_chain_or_contract_than_its_leaf_is_refused(
    field: str, value: object, reason: str
) -> None:
    r = receipt()
    r[field] = value
    assert (verify_receipt(r, ROOT) or "").startswith(reason)


def test_every_single_byte_edit_of_the_contract_is_refused() -> None:
    for edited in edits(receipt()["contract"]):
        r = receipt()
        r["contract"] = edited
        assert verify_receipt(r, ROOT) is not None, edited


@pytest.mark.parametrize(
    ("part", "field", "value"),
    [
        ("trip", "trip_id", "bike-2:13"),
        ("trip", "vehicle_id", "bike-3"),
        ("trip", "owner", str(OWNERS[0])),
        ("trip", "rider", "0x" + "7f" * 20),
        ("trip", "start_ms", T0),
        ("trip", "end_ms", T0 + 261_501),
        ("trip", "duration_s", 61),
        ("trip", "distance_m", 501),
        ("fare", "total_micro", 600_003),
        ("fare", "unlock_micro", 500_001),
    ],
)
def test_a_trip_or_fare_that_says_otherwise_than_the_leaf_is_refused(part: str, field: str, value: object) -> None:
    r = receipt()
    r[part][field] = value
    assert verify_receipt(r, ROOT) is not None


def test_a_receipt_checked_against_another_epochs_root_is_refused() -> None:
    other = trips_tree([priced(trip(n, 4)) for n in range(6, 9)], CONTEXT, 4).root
    same_trips_next_epoch = trips_tree([priced(t) for t in EPOCH], CONTEXT, 4).root

    assert verify_receipt(receipt(), other) == "the receipt's root is not the trips root of epoch 3 on chain"
    assert verify_receipt(receipt(), same_trips_next_epoch) is not None


def test_a_receipt_with_its_leaf_moved_to_another_epoch_does_not_prove_against_that_epochs_root() -> None:
    moved = receipt()
    moved["epoch_id"] = 4
    moved["leaf_values"][2] = "4"
    same_trips_next_epoch = trips_tree([priced(t) for t in EPOCH], CONTEXT, 4).root

    assert verify_receipt(moved, same_trips_next_epoch) is not None


def test_a_malformed_receipt_is_refused_with_its_reason() -> None:
    cases: list[tuple[Any, str]] = [
        ([], "a receipt is a JSON object"),
        ({k: v for k, v in receipt().items() if k != "proof"}, "the receipt lacks proof"),
        ({**receipt(), "leaf_types": ["string"]}, "leaf_types are not those of a trip leaf"),
        ({**receipt(), "leaf_values": receipt()["leaf_values"][:-1]}, "leaf_values must be a list of 10 values"),
        ({**receipt(), "root": receipt()["root"].upper()}, "root is not 0x and 64 lowercase hex digits"),
        ({**receipt(), "proof": "0x"}, "proof is not a list"),
    ]
    padded = receipt()
    padded["leaf_values"][2] = "03"
    cases.append((padded, "leaf_values[2] is not a decimal integer: '03'"))
    lower = receipt()
    lower["leaf_values"][1] = lower["leaf_values"][1].lower()
    cases.append((lower, "leaf_values[1] is not in EIP-55 form"))
    for bad, reason in cases:
        assert (verify_receipt(bad, ROOT) or "").startswith(reason), reason


def test_a_receipt_is_built_only_for_a_trip_of_the_epoch() -> None:
    with pytest.raises(ValueError, match="not among the trips of epoch 3"):
        build_receipt(trip(9), EPOCH, CONTEXT, tx_hash=None, status="committed")
    with pytest.raises(ValueError, match="not priced into an epoch"):
        build_receipt(dataclasses.replace(trip(1), epoch_id=None), EPOCH, CONTEXT, tx_hash=None, status="committed")
