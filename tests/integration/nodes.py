"""The chains the chain tests run against, their funded keys, and a clearing contract with a sample commit."""

from __future__ import annotations

from dataclasses import dataclass

from settlement.chain import Web3Clearing, Web3Token
from settlement.clearing import ClearingCommit

ROOT = bytes.fromhex("ab" * 32)
BALANCES_ROOT = bytes.fromhex("ba" * 32)
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


def deployed_clearing(url: str | None, private_key: str | None = None) -> tuple[Web3Clearing, Web3Token]:
    """A clearing contract over a fresh euro token, both deployed by one account on one sender (as the aggregator
    has them); ``private_key`` None: the node's first unlocked account."""
    clearing = Web3Clearing.connect(url, private_key, timeout=10)
    token = Web3Token(clearing.sender)
    clearing.deploy(token.deploy(), 0, 0)
    return clearing, token


def commit(epoch_id: int, registry_root: bytes = REGISTRY_ROOT) -> ClearingCommit:
    """A commit of epoch ``epoch_id`` that moves no money, so a contract without deposits takes it."""
    return ClearingCommit(epoch_id, ROOT, BALANCES_ROOT, registry_root, 7, 0, 0)
