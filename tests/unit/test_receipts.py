"""Trip receipts: built from an epoch's trips, verified against the chain's root and the rider's signatures, refused
when edited."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from sensors.address import Address
from sensors.consent import RideConsent, Voucher, digest, sign, to_json
from sensors.messages import VehicleKind
from sensors.signing import address_of
from settlement.epochs import LEAF_TYPES, LeafContext, priced, trips_tree
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.receipts import build_receipt, verify_receipt
from settlement.trips import Mark, TripRecord

T0 = 1_790_000_000_000
CONTEXT = LeafContext(31337, Address(b"\x5a" * 20))
OWNERS = [Address(bytes([n] * 20)) for n in (0x11, 0x22, 0x33)]
RIDER_KEY, OTHER_KEY = b"\x07" * 32, b"\x08" * 32
RIDER_ADDRESS = address_of(RIDER_KEY)
RIDER = str(RIDER_ADDRESS)


def consent(n: int, key: bytes = RIDER_KEY, **change: Any) -> RideConsent:
    fields = {"vehicle_id": f"bike-{n}", "tariff_id": "bike", "cap_micro": 20_000_000, "expiry_ms": T0 + 10**8}
    fields.update(change)
    return sign(RideConsent(address_of(key), nonce=n, **fields), key, CONTEXT.domain)


def voucher(n: int, amount: int, key: bytes = RIDER_KEY, **change: Any) -> Voucher:
    fields: dict[str, Any] = {"trip_id": f"bike-{n}:{10 + n}", "cumulative_micro": amount, "seq": 2}
    fields.update(change)
    return sign(Voucher(address_of(key), **fields), key, CONTEXT.domain)


def trip(n: int, epoch_id: int = 3) -> TripRecord:
    """Trip ``n``, metered at 600,000 + n micro-EUR; the rider signed a voucher for that much (trip 4: 1 less, so
    the voucher sets the charge)."""
    start, end = T0 + 100_000 * n, T0 + 100_000 * n + 61_500
    fare = Fare(500_000, 100_000 + n, 0)
    signed = fare.total_micro - (1 if n == 4 else 0)
    return TripRecord(
        f"bike-{n}:{10 + n}", f"bike-{n}", "smartzone", VehicleKind.BIKE, TripStatus.COMMITTED,
        Mark(10 + n, start, 51.2, 4.39, 1_000), Mark(11 + n, end, 51.21, 4.4, 1_000 + 250 * n),
        RIDER, OWNERS[n % 3], None, 250 * n, 62, fare, epoch_id,
        consent=consent(n), voucher=voucher(n, signed), charged_micro=signed,
        limited_by="voucher" if n == 4 else "metered",
    )  # fmt: skip


def root_of(trips: list[TripRecord], epoch_id: int) -> bytes:
    return trips_tree([priced(t, CONTEXT.domain) for t in trips], CONTEXT, epoch_id).root


EPOCH = [trip(n) for n in range(1, 6)]
ROOT = root_of(EPOCH, 3)


def receipt(n: int = 2) -> dict[str, Any]:
    return build_receipt(EPOCH[n - 1], EPOCH, CONTEXT, tx_hash="0x" + "ab" * 32, status="committed")


def oz_verify(root: str, leaf_types: list[str], leaf_values: list[Any], proof: list[str]) -> bool:
    """OpenZeppelin's ``StandardMerkleTree.verify`` written again from its specification, sharing nothing with
    ``settlement.merkle``: the leaf is keccak256(keccak256(abi.encode(types, values))), each step hashes the pair in
    ascending order, and the result must be the root. Values are taken as OZ's JS library takes them: uint as
    decimal strings."""
    values = [_oz_value(t, v) for t, v in zip(leaf_types, leaf_values, strict=True)]
    node = keccak(keccak(encode(leaf_types, values)))
    for sibling_hex in proof:
        sibling = bytes.fromhex(sibling_hex.removeprefix("0x"))
        node = keccak(b"".join(sorted([node, sibling])))
    return "0x" + node.hex() == root


def _oz_value(kind: str, value: str) -> object:
    if kind.startswith("uint"):
        return int(value)
    if kind.startswith("bytes"):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def test_a_receipt_verifies_against_the_root_its_epoch_committed() -> None:
    for n in range(1, 6):
        assert verify_receipt(receipt(n), ROOT) is None


def test_a_receipt_holds_the_trip_its_fare_and_where_it_was_settled() -> None:
    r = receipt(2)

    assert r["trip"] == {
        "trip_id": "bike-2:12", "vehicle_id": "bike-2", "owner": str(OWNERS[2]), "rider": RIDER,
        "start_ms": T0 + 200_000, "end_ms": T0 + 261_500, "duration_s": 62, "distance_m": 500,
    }  # fmt: skip
    assert r["fare"] == {
        "unlock_micro": 500_000, "time_micro": 100_002, "distance_micro": 0, "total_micro": 600_002,
        "charged_micro": 600_002, "limited_by": "metered",
    }  # fmt: skip
    assert r["consent"] == to_json(consent(2)) and r["voucher"] == to_json(voucher(2, 600_002))
    assert r["signing_chain_id"] == 31337
    assert (r["epoch_id"], r["chain_id"], r["contract"]) == (3, 31337, str(CONTEXT.contract))
    assert (r["tx_hash"], r["status"], r["root"]) == ("0x" + "ab" * 32, "committed", "0x" + ROOT.hex())
    assert r["leaf_types"] == list(LEAF_TYPES)
    assert r["leaf_values"] == [
        "31337", str(CONTEXT.contract), "3", "bike-2:12", str(OWNERS[2]), RIDER,
        str(T0 + 200_000), str(T0 + 261_500), "500", "600002",
        "0x" + digest(consent(2), CONTEXT.domain).hex(), "0x" + digest(voucher(2, 600_002), CONTEXT.domain).hex(),
    ]  # fmt: skip
    assert json.loads(json.dumps(r)) == r  # plain JSON: strings, integers, lists


def test_an_independent_implementation_of_oz_verify_accepts_the_receipt_as_it_is() -> None:
    for n in range(1, 6):
        r = json.loads(json.dumps(receipt(n)))
        assert oz_verify(r["root"], r["leaf_types"], r["leaf_values"], r["proof"])
    fare_edited = [*r["leaf_values"][:9], "600003", *r["leaf_values"][10:]]
    assert not oz_verify(r["root"], r["leaf_types"], fare_edited, r["proof"])


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
        ("fare", "charged_micro", 600_001),
    ],
)
def test_a_trip_or_fare_that_says_otherwise_than_the_leaf_is_refused(part: str, field: str, value: object) -> None:
    r = receipt()
    r[part][field] = value
    assert verify_receipt(r, ROOT) is not None


def test_a_receipt_checked_against_another_epochs_root_is_refused() -> None:
    other = root_of([trip(n, 4) for n in range(6, 9)], 4)
    same_trips_next_epoch = root_of(EPOCH, 4)

    assert verify_receipt(receipt(), other) == "the receipt's root is not the trips root of epoch 3 on chain"
    assert verify_receipt(receipt(), same_trips_next_epoch) is not None


def test_a_receipt_with_its_leaf_moved_to_another_epoch_does_not_prove_against_that_epochs_root() -> None:
    moved = receipt()
    moved["epoch_id"] = 4
    moved["leaf_values"][2] = "4"
    same_trips_next_epoch = root_of(EPOCH, 4)

    assert verify_receipt(moved, same_trips_next_epoch) is not None


def test_a_malformed_receipt_is_refused_with_its_reason() -> None:
    cases: list[tuple[Any, str]] = [
        ([], "a receipt is a JSON object"),
        ({k: v for k, v in receipt().items() if k != "proof"}, "the receipt lacks proof"),
        ({**receipt(), "leaf_types": ["string"]}, "leaf_types are not those of a trip leaf"),
        ({**receipt(), "leaf_values": receipt()["leaf_values"][:-1]}, "leaf_values must be a list of 12 values"),
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


def test_every_single_byte_edit_of_the_consent_or_the_voucher_is_refused() -> None:
    for part in ("consent", "voucher"):
        for field, value in receipt()[part].items():
            for edited in edits(str(value)):
                r = receipt()
                r[part][field] = type(value)(edited) if isinstance(value, int) else edited
                assert verify_receipt(r, ROOT) is not None, (part, field, edited)


def test_the_voucher_sets_the_charge_when_the_rider_signed_less_than_the_meter() -> None:
    r = receipt(4)
    assert (r["fare"]["total_micro"], r["fare"]["charged_micro"], r["fare"]["limited_by"]) == (
        600_004,
        600_003,
        "voucher",
    )
    assert verify_receipt(r, ROOT) is None


def _epoch_with(changed: TripRecord) -> tuple[dict[str, Any], bytes]:
    """A receipt of ``changed`` (trip 2 as an operator could have settled it) in an epoch whose root is on chain."""
    trips = [changed if t.trip_id == changed.trip_id else t for t in EPOCH]
    return build_receipt(changed, trips, CONTEXT, tx_hash=None, status="committed"), root_of(trips, 3)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"charged_micro": 600_003}, "the rider was charged 600003, more than the metered fare 600002"),
        ({"voucher": voucher(2, 500_000)}, "the rider was charged 600002, above the voucher's 500000"),
        ({"consent": consent(2, cap_micro=600_000)}, "the rider was charged 600002, above the consent's cap 600000"),
        ({"voucher": voucher(2, 600_002, key=OTHER_KEY)}, "the voucher is not signed by the consent's rider"),
        ({"consent": consent(2, key=OTHER_KEY)}, "the consent is 0x"),
        ({"consent": consent(2, vehicle_id="bike-3")}, "the consent is for bike-3, not the trip's vehicle"),
        ({"voucher": voucher(2, 600_002, trip_id="bike-2:99")}, "the voucher is for trip bike-2:99, not bike-2:12"),
        ({"voucher": None}, "the rider was charged 600002 without a voucher"),
    ],
)
def test_an_epoch_that_charges_what_the_rider_did_not_sign_for_is_refused_although_its_root_is_on_chain(
    change: dict[str, Any], reason: str
) -> None:
    """The operator commits whatever it likes; the receipt's signatures show the rider what they allowed."""
    r, root = _epoch_with(dataclasses.replace(EPOCH[1], **change))
    assert (verify_receipt(r, root) or "").startswith(reason)


def test_a_consent_swapped_for_another_signed_by_the_rider_is_not_the_one_the_leaf_binds() -> None:
    r = receipt()
    r["consent"] = to_json(consent(2, cap_micro=30_000_000))
    assert verify_receipt(r, ROOT) == "the consent is not the one the leaf binds"
    r = receipt()
    r["signing_chain_id"] = 1
    assert verify_receipt(r, ROOT) == "the consent is not the one the leaf binds"


def test_a_trip_settled_without_consent_has_no_digests_and_a_receipt_cannot_add_one() -> None:
    plain = [dataclasses.replace(t, consent=None, voucher=None, charged_micro=None, limited_by=None) for t in EPOCH]
    root = root_of(plain, 3)
    r = build_receipt(plain[1], plain, CONTEXT, tx_hash=None, status="final")
    assert (r["consent"], r["voucher"], r["fare"]["charged_micro"]) == (None, None, 600_002)
    assert r["leaf_values"][10:] == ["0x" + "00" * 32] * 2
    assert verify_receipt(r, root) is None
    r["consent"] = to_json(consent(2))
    assert verify_receipt(r, root) is not None
