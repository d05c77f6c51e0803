"""The device registry: who may register, which entry is in force when, and proofs of a payee against its root."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode
from eth_utils import keccak

from sensors.address import Address
from sensors.messages import VehicleKind
from sensors.registration import Registration
from sensors.signing import Domain, address_of, sign
from settlement.clearing import ClearingCommit, deployed_fake
from settlement.epochs import LeafContext, PricedTrip, trips_tree
from settlement.merkle import EMPTY_ROOT
from settlement.registry import (
    REGISTRY_LEAF_TYPES,
    Registry,
    RegistryEntry,
    RegistryError,
    registry_root,
    registry_tree,
    verify_proof,
)

DOMAIN = Domain(31337)
OPERATOR_KEY, OTHER_OPERATOR_KEY, DEVICE_KEY = (bytes(31) + bytes([n]) for n in (1, 2, 3))
OPERATORS = {"acme": address_of(OPERATOR_KEY), "zoom": address_of(OTHER_OPERATOR_KEY)}
DEVICE = address_of(DEVICE_KEY)
PAYEE = Address.parse("0x" + "ab" * 20)
NEW_PAYEE = Address.parse("0x" + "cd" * 20)
DAY = 86_400_000


def registration(
    vehicle_id: str = "bike-1",
    payee: Address = PAYEE,
    valid_from_ms: int = 1 * DAY,
    valid_until_ms: int = 0,
    operator: str = "acme",
    key: bytes = OPERATOR_KEY,
) -> Registration:
    unsigned = Registration(vehicle_id, operator, VehicleKind.EBIKE, DEVICE, payee, valid_from_ms, valid_until_ms)
    return sign(unsigned, key, DOMAIN)


def entry(**kwargs: object) -> RegistryEntry:
    return RegistryEntry(registration(**kwargs))  # type: ignore[arg-type]


def handover() -> tuple[Registry, RegistryEntry, RegistryEntry]:
    """bike-1 paid to PAYEE for days 1-10, then to NEW_PAYEE from day 10 on; scooter-7 from day 2."""
    first = entry(valid_until_ms=10 * DAY)
    second = entry(payee=NEW_PAYEE, valid_from_ms=10 * DAY)
    return Registry(OPERATORS, [second, entry(vehicle_id="scooter-7", valid_from_ms=2 * DAY), first]), first, second


# --- the tree and its root --------------------------------------------------------------------
def test_an_empty_registry_has_the_root_of_32_zero_bytes() -> None:
    assert registry_root([]) == Registry(OPERATORS).root == EMPTY_ROOT == bytes(32)


def test_a_leaf_is_the_abi_encoding_of_the_registration_and_its_revocation() -> None:
    held = entry(valid_until_ms=9 * DAY).revoke(5 * DAY)
    values = ["bike-1", "acme", "ebike", str(DEVICE), str(PAYEE), DAY, 9 * DAY, True]

    assert REGISTRY_LEAF_TYPES == ("string", "string", "string", "address", "address", "uint64", "uint64", "bool")
    assert held.leaf() == values
    assert registry_tree([held]).root == keccak(keccak(encode(list(REGISTRY_LEAF_TYPES), values)))


def test_the_root_does_not_depend_on_the_order_of_the_entries() -> None:
    registry, first, second = handover()

    assert registry_root([second, first]) == registry_root([first, second])
    assert registry.root == registry_root(reversed(registry.entries))


def test_the_root_changes_with_a_payee_or_a_revocation() -> None:
    held = entry()

    assert registry_root([held]) != registry_root([entry(payee=NEW_PAYEE)])
    assert registry_root([held]) != registry_root([held.revoke(5 * DAY)])


def test_every_entry_proves_its_payee_against_the_root() -> None:
    registry, _, _ = handover()

    for held in registry.entries:
        assert registry.verify_proof(held, registry.proof(held), registry.root)
        assert verify_proof(held, registry.proof(held), registry.root)


def test_a_proof_does_not_hold_for_another_payee_another_root_or_an_unrevoked_copy() -> None:
    registry, first, _ = handover()
    proof = registry.proof(first)
    forged = dataclasses.replace(first, registration=dataclasses.replace(first.registration, payee=NEW_PAYEE))
    revoked = registry.with_entry(first.revoke(5 * DAY))

    assert not verify_proof(forged, proof, registry.root)
    assert not verify_proof(first, proof, Registry(OPERATORS, [first]).root)
    assert not verify_proof(first, revoked.proof(first.revoke(5 * DAY)), revoked.root)
    assert verify_proof(first.revoke(5 * DAY), revoked.proof(first.revoke(5 * DAY)), revoked.root)
    with pytest.raises(ValueError, match="not in the tree"):
        registry.proof(forged)


def test_an_owner_checks_who_was_paid_for_a_vehicle_against_the_root_read_from_the_chain() -> None:
    registry, first, _ = handover()
    trip = PricedTrip("bike-1:3", first.registration.payee, "rider-9", 2 * DAY, 2 * DAY + 60_000, 800, 1_250_000)
    clearing = deployed_fake()
    trips_root = trips_tree([trip], LeafContext(31337, Address.parse(str(clearing.address))), 1).root
    clearing.commit(ClearingCommit(1, trips_root, b"\x0b" * 32, registry.root, 1, 0, 0))

    assert clearing.state is not None
    [on_chain] = [args["registry_root"] for name, args in clearing.state.events if name == "EpochCommitted"]
    assert isinstance(on_chain, bytes)  # the root lives in the commit's event, not in the contract's storage
    paid = registry.entry_at("bike-1", trip.start_ms)

    assert paid is not None and paid.registration.payee == trip.owner
    assert verify_proof(paid, registry.proof(paid), on_chain)


# --- which entry is in force ------------------------------------------------------------------
def test_an_entry_is_in_force_from_its_start_up_to_not_including_its_end() -> None:
    registry, first, second = handover()

    assert registry.entry_at("bike-1", DAY - 1) is None
    assert registry.entry_at("bike-1", DAY) == first
    assert registry.entry_at("bike-1", 10 * DAY - 1) == first
    assert registry.entry_at("bike-1", 10 * DAY) == second
    assert registry.entry_at("bike-1", 10_000 * DAY) == second  # open-ended
    assert registry.entry_at("bike-2", 5 * DAY) is None


def test_the_payee_is_the_one_registered_at_the_time_asked() -> None:
    registry, _, _ = handover()

    assert registry.payee_at("bike-1", 5 * DAY) == PAYEE
    assert registry.payee_at("bike-1", 11 * DAY) == NEW_PAYEE
    assert registry.payee_at("bike-1", 0) is None
    assert registry.payee_at("scooter-7", 3 * DAY) == PAYEE


def test_the_latest_entry_is_the_one_that_starts_last() -> None:
    registry, _, second = handover()

    assert registry.latest("bike-1") == second
    assert registry.latest("bike-2") is None
    assert registry.history("bike-1")[-1] == second and len(registry.history("bike-1")) == 2
    assert len(registry) == 3


def test_a_revoked_entry_answers_until_its_revocation_and_says_it_is_revoked() -> None:
    held = entry()
    registry = Registry(OPERATORS, [held]).with_entry(held.revoke(5 * DAY))

    before = registry.entry_at("bike-1", 5 * DAY - 1)
    assert before is not None and before.revoked and before.revoked_ms == 5 * DAY
    assert registry.entry_at("bike-1", 5 * DAY) is None
    assert registry.payee_at("bike-1", 4 * DAY) == PAYEE
    assert len(registry) == 1


def test_revoking_twice_keeps_the_first_revocation() -> None:
    assert entry().revoke(5 * DAY).revoke(7 * DAY).revoked_ms == 5 * DAY


# --- admitting a registration -----------------------------------------------------------------
def test_a_registration_signed_by_its_operator_is_admitted() -> None:
    registry = Registry(OPERATORS)
    reg = registration()

    admitted = registry.check_registration(reg, DOMAIN)

    assert admitted == RegistryEntry(reg) and not admitted.revoked
    assert registry.with_entry(admitted).payee_at("bike-1", 2 * DAY) == PAYEE


def test_a_registration_of_an_unknown_operator_is_refused() -> None:
    with pytest.raises(RegistryError, match="operator 'acme' is not known") as caught:
        Registry({"zoom": OPERATORS["zoom"]}).check_registration(registration(), DOMAIN)
    assert caught.value.code == "unknown_operator"


@pytest.mark.parametrize(
    "reg",
    [
        pytest.param(registration(key=OTHER_OPERATOR_KEY), id="another-operators-key"),
        pytest.param(registration(key=DEVICE_KEY), id="the-devices-own-key"),
        pytest.param(dataclasses.replace(registration(), payee=NEW_PAYEE), id="payee-changed-after-signing"),
        pytest.param(
            dataclasses.replace(registration(), signature=sign(registration(), OPERATOR_KEY, Domain(1)).signature),
            id="signed-for-another-chain",
        ),
    ],
)
def test_a_registration_not_signed_by_its_operator_over_this_content_is_refused(reg: Registration) -> None:
    with pytest.raises(RegistryError, match="signed by 0x[0-9a-fA-F]{40}, not by operator acme") as caught:
        Registry(OPERATORS).check_registration(reg, DOMAIN)
    assert caught.value.code == "bad_signature"


def test_an_unsigned_or_malformed_signature_is_refused_with_its_code() -> None:
    registry = Registry(OPERATORS)
    unsigned = dataclasses.replace(registration(), signature=None)
    high_v = dataclasses.replace(registration(), signature=registration().signature[:-2] + "1d")  # type: ignore[index]

    with pytest.raises(RegistryError, match="not signed") as missing:
        registry.check_registration(unsigned, DOMAIN)
    with pytest.raises(RegistryError, match="v not 27/28") as malformed:
        registry.check_registration(high_v, DOMAIN)
    assert (missing.value.code, malformed.value.code) == ("missing_signature", "bad_signature")


def test_a_zero_payee_is_refused_since_the_contract_would_revert_the_whole_epoch() -> None:
    with pytest.raises(RegistryError, match="payee of bike-1 is the zero address") as caught:
        Registry(OPERATORS).check_registration(registration(payee=Address(bytes(20))), DOMAIN)
    assert caught.value.code == "bad_address"


@pytest.mark.parametrize(
    ("valid_from_ms", "valid_until_ms"),
    [(5 * DAY, 0), (0, 2 * DAY), (9 * DAY, 11 * DAY), (2 * DAY, 3 * DAY), (0, 0)],
    ids=["open-inside", "ends-inside", "spans-the-handover", "inside", "everything"],
)
def test_a_period_overlapping_another_entry_of_the_vehicle_is_refused(valid_from_ms: int, valid_until_ms: int) -> None:
    registry, _, _ = handover()
    reg = registration(payee=NEW_PAYEE, valid_from_ms=valid_from_ms, valid_until_ms=valid_until_ms)

    with pytest.raises(RegistryError, match="overlaps the entry from") as caught:
        registry.check_registration(reg, DOMAIN)
    assert caught.value.code == "overlapping_period"


def test_periods_that_only_touch_do_not_overlap_and_other_vehicles_do_not_count() -> None:
    registry = Registry(OPERATORS, [entry(valid_from_ms=5 * DAY, valid_until_ms=10 * DAY)])

    before = registry.check_registration(registration(valid_from_ms=DAY, valid_until_ms=5 * DAY), DOMAIN)
    after = registry.check_registration(registration(valid_from_ms=10 * DAY), DOMAIN)
    other = registry.check_registration(registration(vehicle_id="bike-2", valid_from_ms=6 * DAY), DOMAIN)

    assert len(registry.with_entry(before).with_entry(after).with_entry(other)) == 4


def test_a_revoked_device_can_be_replaced_from_its_revocation_on() -> None:
    registry = Registry(OPERATORS, [entry().revoke(5 * DAY)])

    with pytest.raises(RegistryError, match="overlap"):
        registry.check_registration(registration(payee=NEW_PAYEE, valid_from_ms=5 * DAY - 1), DOMAIN)
    replacement = registry.check_registration(registration(payee=NEW_PAYEE, valid_from_ms=5 * DAY), DOMAIN)

    assert registry.with_entry(replacement).payee_at("bike-1", 6 * DAY) == NEW_PAYEE


def test_registering_the_same_signed_entry_again_returns_the_held_one_revocation_included() -> None:
    held = entry().revoke(5 * DAY)
    registry = Registry(OPERATORS, [held])

    assert registry.check_registration(registration(), DOMAIN) == held
    with pytest.raises(RegistryError, match="not by operator acme"):
        registry.check_registration(registration(key=DEVICE_KEY), DOMAIN)


def test_a_snapshot_with_overlapping_entries_is_refused() -> None:
    with pytest.raises(RegistryError, match="overlaps"):
        Registry(OPERATORS, [entry(), entry(payee=NEW_PAYEE, valid_from_ms=3 * DAY)])


def test_the_registry_error_is_a_settlement_error() -> None:
    from settlement.errors import SettlementError

    assert issubclass(RegistryError, SettlementError)
