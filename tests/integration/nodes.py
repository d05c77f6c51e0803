"""The chains the chain tests run against, their funded keys, and a sample epoch commit."""

from __future__ import annotations

from dataclasses import dataclass

from sensors.address import Address
from settlement.ports import EpochCommit

OWNERS = tuple(Address(bytes([n] * 20)) for n in (0x11, 0x22, 0x33))  # in ascending order
ROOT = bytes.fromhex("ab" * 32)
REGISTRY_ROOT = bytes.fromhex("cd" * 32)


@dataclass(frozen=True)
class Node:
    """A chain to test against and the keys of two funded accounts on it (the first is unlocked too)."""

    url: str | None
    first_key: str
    second_key: str


# eth-tester funds the accounts of the private keys 1, 2, 3, ...
EMBEDDED = Node(None, "0x" + "00" * 31 + "01", "0x" + "00" * 31 + "02")
# anvil's well-known development keys #0 and #1 (mnemonic "test test ... junk"): for tests only.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)


def commit(epoch_id: int, amounts: tuple[int, ...] = (1_500_000, 250_000, 2_000)) -> EpochCommit:
    payouts = tuple(zip(OWNERS, amounts, strict=False))
    return EpochCommit(epoch_id, ROOT, 7, sum(amounts), payouts, REGISTRY_ROOT)
