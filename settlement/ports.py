"""The chain port: what settlement needs from an EVM chain, the values it trades, and a fake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from settlement.errors import ChainError


@dataclass(frozen=True, slots=True)
class EpochCommit:
    """What one epoch puts on chain.

    ``payouts`` are (owner address, amount in micro-EUR) pairs, sorted by owner; their sum is
    ``total_micro``. ``trips_root`` is the 32-byte StandardMerkleTree root of the epoch's trips.
    """

    epoch_id: int
    trips_root: bytes
    trip_count: int
    total_micro: int
    payouts: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class ChainReceipt:
    """Where and at what cost a transaction was mined."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True, slots=True)
class OnChainEpoch:
    """An epoch as the contract holds it."""

    epoch_id: int
    trips_root: bytes
    trip_count: int
    total_micro: int


class Chain(Protocol):
    """An EVM chain with the settlement contract on it."""

    url: str

    def chain_id(self) -> int: ...

    def deploy(self) -> str:
        """Deploy the settlement contract, attach to it and return its address."""
        ...

    def attach(self, address: str) -> None:
        """Use the settlement contract at ``address``; raise ``ChainError`` if there is no code there."""
        ...

    def last_epoch(self) -> int:
        """The id of the last settled epoch (0 before the first)."""
        ...

    def settle(self, commit: EpochCommit) -> ChainReceipt:
        """Send ``commit``, wait for it to be mined and return its receipt; ``ChainError`` if it reverts."""
        ...

    def epoch(self, epoch_id: int) -> OnChainEpoch: ...

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        """The receipt of the transaction that settled ``epoch_id`` (found by its event); ``ChainError`` if none."""
        ...

    def owed(self, owner: str) -> int:
        """Micro-EUR credited to ``owner`` over all settled epochs."""
        ...

    def total_settled(self) -> int:
        """Micro-EUR settled over all epochs."""
        ...


@dataclass
class FakeChain:
    """An in-memory chain with the contract's rules (strictly sequential epochs, sums that add up)."""

    url: str = "fake://chain"
    address: str | None = None
    epochs: dict[int, OnChainEpoch] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=dict)
    sent: list[EpochCommit] = field(default_factory=list)
    receipts: dict[int, ChainReceipt] = field(default_factory=dict)

    def chain_id(self) -> int:
        return 31337

    def deploy(self) -> str:
        self.address = "0x" + "5a" * 20
        return self.address

    def attach(self, address: str) -> None:
        if address != self.address:
            raise ChainError(f"no settlement contract at {address}")

    def last_epoch(self) -> int:
        return max(self.epochs, default=0)

    def settle(self, commit: EpochCommit) -> ChainReceipt:
        if commit.epoch_id != self.last_epoch() + 1:
            raise ChainError(f"epoch {commit.epoch_id} is out of sequence")
        if sum(amount for _, amount in commit.payouts) != commit.total_micro:
            raise ChainError("payouts do not add up to the total")
        self.sent.append(commit)
        self.epochs[commit.epoch_id] = OnChainEpoch(
            commit.epoch_id, commit.trips_root, commit.trip_count, commit.total_micro
        )
        for owner, amount in commit.payouts:
            self.credits[owner] = self.credits.get(owner, 0) + amount
        n = len(self.sent)
        receipt = ChainReceipt(f"0x{n:064x}", n, f"0x{n + 1000:064x}", 50_000 + 25_000 * len(commit.payouts))
        self.receipts[commit.epoch_id] = receipt
        return receipt

    def epoch(self, epoch_id: int) -> OnChainEpoch:
        return self.epochs[epoch_id]

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        if epoch_id not in self.receipts:
            raise ChainError(f"no settlement of epoch {epoch_id}")
        return self.receipts[epoch_id]

    def owed(self, owner: str) -> int:
        return self.credits.get(owner, 0)

    def total_settled(self) -> int:
        return sum(e.total_micro for e in self.epochs.values())
