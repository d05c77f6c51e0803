"""The chain port: what settlement needs from an EVM chain, the values it trades, and a fake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sensors.address import Address
from settlement.errors import ChainError

MAX_OWNERS_PER_EPOCH = 256
"""The most owners one epoch credits: the contract's ``MAX_OWNERS`` (a test keeps the two equal)."""

ROOT_BYTES = 32


@dataclass(frozen=True, slots=True)
class EpochCommit:
    """What one epoch puts on chain.

    ``trips_root`` is the 32-byte StandardMerkleTree root of the epoch's trips and ``registry_root`` that of the
    device registry the trips were attributed with. ``payouts`` are (owner, amount in micro-EUR) pairs in
    strictly ascending order of the owner's 20 bytes (so no owner appears twice); their sum is ``total_micro``.
    """

    epoch_id: int
    trips_root: bytes
    trip_count: int
    total_micro: int
    payouts: tuple[tuple[Address, int], ...]
    registry_root: bytes


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
    registry_root: bytes


def check_commit(commit: EpochCommit, last_epoch: int) -> None:
    """Raise ``ChainError`` naming the first of the contract's rules that ``commit`` breaks after ``last_epoch``.

    The rules: the next epoch in sequence, 32-byte roots with a nonzero trips root, at least one trip, at most
    ``MAX_OWNERS_PER_EPOCH`` owners, none of them the zero address, owners strictly ascending, no negative
    amount, and amounts that add up to the total.
    """
    if commit.epoch_id != last_epoch + 1:
        raise ChainError(f"epoch {commit.epoch_id} is out of sequence: the chain is at epoch {last_epoch}")
    for name, root in (("trips", commit.trips_root), ("registry", commit.registry_root)):
        if len(root) != ROOT_BYTES:
            raise ChainError(f"{name} root must be {ROOT_BYTES} bytes, not {len(root)}")
    if commit.trips_root == bytes(ROOT_BYTES):
        raise ChainError(f"epoch {commit.epoch_id} has a zero trips root")
    if commit.trip_count <= 0:
        raise ChainError(f"epoch {commit.epoch_id} has zero trips")
    if len(commit.payouts) > MAX_OWNERS_PER_EPOCH:
        raise ChainError(f"{len(commit.payouts)} payouts; the contract takes at most {MAX_OWNERS_PER_EPOCH}")
    previous = bytes(20)
    for owner, amount in commit.payouts:
        if owner.raw == bytes(20):
            raise ChainError("a payout to the zero owner address")
        if owner.raw <= previous:
            raise ChainError(f"owners not strictly ascending at {owner}")
        if amount < 0:
            raise ChainError(f"a negative payout to {owner}")
        previous = owner.raw
    if sum(amount for _, amount in commit.payouts) != commit.total_micro:
        raise ChainError(f"payouts of epoch {commit.epoch_id} do not add up to the total")


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

    def epoch(self, epoch_id: int) -> OnChainEpoch:
        """Epoch ``epoch_id`` as the contract holds it, its registry root included; ``ChainError`` if not settled."""
        ...

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        """The receipt of the transaction that settled ``epoch_id`` (found by its event); ``ChainError`` if none."""
        ...

    def owed(self, owner: Address) -> int:
        """Micro-EUR credited to ``owner`` over all settled epochs."""
        ...

    def total_settled(self) -> int:
        """Micro-EUR settled over all epochs."""
        ...


@dataclass
class FakeChain:
    """An in-memory chain with the contract's rules (``check_commit``), crediting owners by their 20 bytes."""

    url: str = "fake://chain"
    address: str | None = None
    epochs: dict[int, OnChainEpoch] = field(default_factory=dict)
    credits: dict[Address, int] = field(default_factory=dict)
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
        check_commit(commit, self.last_epoch())
        self.sent.append(commit)
        self.epochs[commit.epoch_id] = OnChainEpoch(
            commit.epoch_id, commit.trips_root, commit.trip_count, commit.total_micro, commit.registry_root
        )
        for owner, amount in commit.payouts:
            self.credits[owner] = self.credits.get(owner, 0) + amount
        n = len(self.sent)
        receipt = ChainReceipt(f"0x{n:064x}", n, f"0x{n + 1000:064x}", 50_000 + 25_000 * len(commit.payouts))
        self.receipts[commit.epoch_id] = receipt
        return receipt

    def epoch(self, epoch_id: int) -> OnChainEpoch:
        if epoch_id not in self.epochs:
            raise ChainError(f"epoch {epoch_id} is not settled on {self.url}")
        return self.epochs[epoch_id]

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        if epoch_id not in self.receipts:
            raise ChainError(f"no settlement of epoch {epoch_id}")
        return self.receipts[epoch_id]

    def owed(self, owner: Address) -> int:
        return self.credits.get(owner, 0)

    def total_settled(self) -> int:
        return sum(e.total_micro for e in self.epochs.values())
