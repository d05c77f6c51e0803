"""OpenZeppelin-compatible Merkle trees (layout, proofs, a published vector) and the epochs built on them."""

from __future__ import annotations

import pytest

from sensors.address import Address
from sensors.messages import VehicleKind
from settlement.epochs import LEAF_TYPES, NO_DIGEST, LeafContext, PricedTrip, priced, trips_tree
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.merkle import EMPTY_ROOT, StandardMerkleTree, leaf_hash, node_hash, process_proof, verify
from settlement.trips import Mark, TripRecord
from tests.money import closed

TYPES = ("address", "uint256")

# From OpenZeppelin/merkle-tree, test/dumps/standard-v1.sorted.1_0_6.json: a tree of the strings
# "a".."f" (leaf encoding ["string"]) dumped by version 1.0.6 of @openzeppelin/merkle-tree.
OZ_VALUES = [[letter] for letter in "abcdef"]
OZ_TREE = [
    "6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
    "52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
    "fd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
    "8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
    "965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
    "eba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
    "c62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
    "9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
    "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
    "9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
    "19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
]
OZ_TREE_INDICES = [8, 10, 7, 5, 9, 6]


def payouts(n: int) -> list[tuple[str, int]]:
    return [(f"0x{i + 1:040x}", 1_000 * (i + 1)) for i in range(n)]


def test_the_tree_matches_the_one_openzeppelin_published() -> None:
    tree = StandardMerkleTree.of(OZ_VALUES, ["string"])

    assert [node.hex() for node in tree.nodes] == OZ_TREE
    assert tree.root == bytes.fromhex(OZ_TREE[0])
    assert [tree.nodes.index(tree.leaf(i)) for i in range(6)] == OZ_TREE_INDICES


def test_a_leaf_is_the_double_keccak_of_its_abi_encoding() -> None:
    assert leaf_hash(["string"], ["a"]) == bytes.fromhex(OZ_TREE[8])


@pytest.mark.parametrize("n", range(1, 10))
def test_every_leaf_of_a_tree_proves_against_its_root(n: int) -> None:
    tree = StandardMerkleTree.of(payouts(n), TYPES)

    for i, value in enumerate(tree.values):
        proof = tree.proof(i)
        assert verify(tree.root, leaf_hash(TYPES, value), proof)
        assert tree.proof(value) == proof


def test_a_tree_of_one_leaf_has_the_leaf_as_root_and_an_empty_proof() -> None:
    tree = StandardMerkleTree.of(payouts(1), TYPES)

    assert tree.root == leaf_hash(TYPES, payouts(1)[0])
    assert tree.proof(0) == []


def test_a_tampered_proof_does_not_verify() -> None:
    tree = StandardMerkleTree.of(payouts(5), TYPES)
    proof = tree.proof(2)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]

    assert not verify(tree.root, tree.leaf(2), tampered)
    assert not verify(tree.root, tree.leaf(2), proof[:-1])
    assert not verify(tree.root, leaf_hash(TYPES, ("0x" + "99" * 20, 1_000)), proof)


def test_a_proof_for_one_leaf_does_not_prove_another() -> None:
    tree = StandardMerkleTree.of(payouts(4), TYPES)

    assert not verify(tree.root, tree.leaf(1), tree.proof(0))


def test_pairs_hash_the_same_in_either_order() -> None:
    a, b = leaf_hash(["string"], ["a"]), leaf_hash(["string"], ["b"])

    assert node_hash(a, b) == node_hash(b, a)
    assert process_proof(a, [b]) == process_proof(b, [a])


def test_the_root_does_not_depend_on_the_order_of_the_values() -> None:
    rows = payouts(7)

    assert StandardMerkleTree.of(rows, TYPES).root == StandardMerkleTree.of(rows[::-1], TYPES).root


def test_the_root_of_no_values_is_32_zero_bytes_and_proves_nothing() -> None:
    tree = StandardMerkleTree.of([], TYPES)

    assert tree.root == EMPTY_ROOT == bytes(32)
    assert len(tree) == 0
    assert not verify(EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(IndexError):
        tree.proof(0)


def test_a_value_not_in_the_tree_has_no_proof() -> None:
    tree = StandardMerkleTree.of(payouts(3), TYPES)

    with pytest.raises(ValueError, match="not in the tree"):
        tree.proof(("0x" + "99" * 20, 1))


# --- epochs -----------------------------------------------------------------------------------
MIXED = "0x52908400098527886E0F7030069857D2E4169EE7"  # an EIP-55 test vector of EIP-55 itself
REGISTRY_ROOT = b"\x07" * 32
CONTEXT = LeafContext(31337, Address(b"\x5a" * 20))


def trip(n: int, owner: Address, fare: int = 1_000) -> PricedTrip:
    return PricedTrip(f"bike-{n}:1", owner, "rider-1", 1_000 * n, 1_000 * n + 500, 300, fare)


def record(n: int, owner: Address, fare: int = 1_000) -> TripRecord:
    """``trip(n, owner, fare)`` as the aggregator holds it, priced."""
    return TripRecord(f"bike-{n}:1", f"bike-{n}", "acme", VehicleKind.BIKE, TripStatus.PRICED,
                      start=Mark(1, 1_000 * n, 51.2, 4.39, 0), end=Mark(2, 1_000 * n + 500, 51.21, 4.4, 300),
                      rider="rider-1", payee=owner, distance_m=300, duration_s=1, fare=Fare(fare, 0, 0))  # fmt: skip


def test_an_owner_written_in_lower_and_in_mixed_case_gets_one_payout() -> None:
    trips = [record(1, Address.parse(MIXED.lower()), 100), record(2, Address.parse(MIXED), 250)]

    assert closed(1, trips, CONTEXT, REGISTRY_ROOT).payouts == ((Address.parse(MIXED), 350),)


def test_payouts_are_in_ascending_order_of_the_owners_bytes() -> None:
    owners = [Address(bytes([b] * 20)) for b in (0xF0, 0x0A, 0xA0, 0x0A)]

    split = closed(1, [record(i, owner) for i, owner in enumerate(owners, 1)], CONTEXT, REGISTRY_ROOT).payouts

    assert [owner.raw[0] for owner, _ in split] == [0x0A, 0xA0, 0xF0]
    assert [amount for _, amount in split] == [2_000, 1_000, 1_000]


def test_a_trips_leaf_holds_its_owner_in_eip55_form() -> None:
    owned = trip(1, Address.parse(MIXED.lower()))

    assert owned.leaf(CONTEXT, 1)[4] == MIXED
    assert trips_tree([owned], CONTEXT, 1).root == leaf_hash(LEAF_TYPES, owned.leaf(CONTEXT, 1))


def test_a_trips_leaf_opens_with_the_chain_the_contract_and_the_epoch() -> None:
    owned = trip(1, Address.parse(MIXED))

    assert owned.leaf(CONTEXT, 9)[:3] == [31337, str(CONTEXT.contract), 9]
    assert owned.leaf(CONTEXT, 9)[3:] == ["bike-1:1", MIXED, "rider-1", 1_000, 1_500, 300, 1_000, NO_DIGEST, NO_DIGEST]
    roots = {
        trips_tree([owned], context, epoch_id).root
        for context, epoch_id in [
            (CONTEXT, 1),
            (CONTEXT, 2),
            (LeafContext(1, CONTEXT.contract), 1),
            (LeafContext(31337, Address(b"\x5b" * 20)), 1),
        ]
    }
    assert len(roots) == 4  # the same trip on another epoch, chain or contract is another leaf


def test_an_epoch_commits_its_trips_root_totals_and_the_registry_root() -> None:
    alice, bob = Address(b"\x0a" * 20), Address(b"\x0b" * 20)
    trips = [record(1, bob, 300), record(2, alice, 200), record(3, bob, 1)]

    epoch = closed(4, trips, CONTEXT, REGISTRY_ROOT)

    commit = epoch.commit
    assert (commit.epoch_id, commit.trip_count, epoch.total_micro) == (4, 3, 501)
    assert epoch.payouts == ((alice, 200), (bob, 301))
    assert commit.trips_root == trips_tree([priced(t, CONTEXT.domain) for t in trips], CONTEXT, 4).root != EMPTY_ROOT
    assert commit.registry_root == REGISTRY_ROOT


def test_an_epoch_needs_trips_and_a_32_byte_registry_root_but_takes_any_number_of_owners() -> None:
    over = [record(i, Address(i.to_bytes(20, "big"))) for i in range(1, 258)]

    with pytest.raises(ValueError, match="at least one trip"):
        closed(1, [], CONTEXT, REGISTRY_ROOT)
    with pytest.raises(ValueError, match="32 bytes"):
        closed(1, over[:1], CONTEXT, b"\x07" * 31)
    assert len(closed(1, over, CONTEXT, REGISTRY_ROOT).payouts) == 257  # the clearing contract has no owner cap
