"""The in-memory chain keeps the contract's rules, so unit tests that use it meet them too."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sensors.address import Address
from settlement.contract import SOURCE
from settlement.errors import ChainError
from settlement.ports import MAX_OWNERS_PER_EPOCH, EpochCommit, FakeChain

ALICE, BOB = Address(bytes.fromhex("a1" * 20)), Address(bytes.fromhex("b0" * 20))
TRIPS_ROOT, REGISTRY_ROOT = b"\x01" * 32, b"\x02" * 32


def commit(epoch_id: int, total: int = 300) -> EpochCommit:
    return EpochCommit(epoch_id, TRIPS_ROOT, 2, total, ((ALICE, 100), (BOB, 200)), REGISTRY_ROOT)


def test_the_fake_chain_settles_sequential_epochs_and_credits_owners() -> None:
    chain = FakeChain()

    chain.settle(commit(1))
    receipt = chain.settle(commit(2))

    assert chain.last_epoch() == 2
    assert (chain.owed(ALICE), chain.owed(BOB), chain.total_settled()) == (200, 400, 600)
    assert receipt.gas_used > 0 and len(chain.sent) == 2


def test_the_fake_chain_keeps_each_epochs_registry_root() -> None:
    chain = FakeChain()
    chain.settle(commit(1))

    assert chain.epoch(1).registry_root == REGISTRY_ROOT
    assert chain.epoch(1).trips_root == TRIPS_ROOT
    with pytest.raises(ChainError, match="not settled"):
        chain.epoch(2)


def test_the_fake_chain_credits_an_owner_by_its_20_bytes_whatever_the_case_it_was_written_in() -> None:
    chain = FakeChain()
    chain.settle(commit(1))

    assert chain.owed(Address.parse("0x" + "A1" * 20)) == chain.owed(Address.parse(str(ALICE))) == 100


@pytest.mark.parametrize("epoch_id", [1, 3])
def test_the_fake_chain_rejects_an_epoch_out_of_sequence(epoch_id: int) -> None:
    chain = FakeChain()
    chain.settle(commit(1))

    with pytest.raises(ChainError, match="out of sequence"):
        chain.settle(commit(epoch_id))
    assert chain.last_epoch() == 1 and chain.owed(ALICE) == 100


ZERO = Address(bytes(20))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total_micro": 301}, "do not add up"),
        ({"trips_root": bytes(32)}, "zero trips root"),
        ({"trip_count": 0}, "zero trips"),
        ({"trips_root": b"\x01" * 31}, "trips root must be 32 bytes"),
        ({"registry_root": b"\x02" * 33}, "registry root must be 32 bytes"),
        ({"payouts": ((BOB, 200), (ALICE, 100))}, "not strictly ascending"),
        ({"payouts": ((ALICE, 100), (ALICE, 200))}, "not strictly ascending"),
        ({"payouts": ((ZERO, 100), (BOB, 200))}, "zero owner address"),
        ({"payouts": ((ALICE, -100), (BOB, 400))}, "negative"),
    ],
    ids=["sum", "zero-root", "zero-trips", "short-root", "long-registry-root", "descending", "twice", "zero", "neg"],
)
def test_the_fake_chain_rejects_what_the_contract_rejects(change: dict[str, object], message: str) -> None:
    chain = FakeChain()

    with pytest.raises(ChainError, match=message):
        chain.settle(dataclasses.replace(commit(1), **change))  # type: ignore[arg-type]
    assert chain.last_epoch() == 0 and chain.sent == [] and chain.credits == {}


def test_the_fake_chain_takes_at_most_the_contracts_number_of_owners() -> None:
    owners = [Address((i + 1).to_bytes(20, "big")) for i in range(MAX_OWNERS_PER_EPOCH + 1)]
    full = EpochCommit(1, TRIPS_ROOT, 1, MAX_OWNERS_PER_EPOCH, tuple((o, 1) for o in owners[:-1]), REGISTRY_ROOT)
    over = dataclasses.replace(full, total_micro=full.total_micro + 1, payouts=tuple((o, 1) for o in owners))
    chain = FakeChain()

    with pytest.raises(ChainError, match=f"at most {MAX_OWNERS_PER_EPOCH}"):
        chain.settle(over)
    chain.settle(full)
    assert len(chain.credits) == MAX_OWNERS_PER_EPOCH


def test_the_owner_cap_is_the_one_the_contract_declares() -> None:
    source = SOURCE.read_text(encoding="utf-8")
    [declared] = re.findall(r"^MAX_OWNERS: constant\(uint256\) = (\d+)$", source, re.MULTILINE)

    assert int(declared) == MAX_OWNERS_PER_EPOCH
    assert "owners: DynArray[address, MAX_OWNERS]" in source
    assert "amounts: DynArray[uint256, MAX_OWNERS]" in source
