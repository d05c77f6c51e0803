"""How settled a recorded transaction is: pending, confirmed by n blocks, final, or reorged away.

Pure: the node is reached through the small ``Blocks`` port (``settlement.chain.sender.Sender`` on a real node,
``FakeBlocks`` here for tests).

Use: record the ``ChainReceipt`` a send returned, then poll ``classify(recorded, blocks, final_after)`` (or
``track(tx_hash, ...)`` before a receipt is recorded) until it says ``FINAL`` or ``REORGED``. ``REORGED`` means the
recorded block is no longer on the node's chain (its height holds another hash or is above the head), or the
transaction has no receipt any more, or it is in another block: the work is back to pending; if
``Finality.receipt`` is set the transaction was mined again there, and that receipt is the one to track. Each check
reads the head first, so a reorg between the reads shows as ``REORGED`` or a lower count, never as more
confirmations than there are. A node behind a load balancer that answers from a lagging replica may report a
recorded block as missing: the caller should treat ``REORGED`` as "send again after checking the contract state",
which stays safe when the first transaction was in fact kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from settlement.ports import ChainReceipt


class Status(Enum):
    """Where a transaction stands against the node's chain."""

    PENDING = "pending"  # sent, in no block yet
    CONFIRMED = "confirmed"  # in a block of the chain, fewer than ``final_after`` confirmations
    FINAL = "final"  # at least ``final_after`` confirmations, its block hash re-checked
    REORGED = "reorged"  # the recorded block left the chain, or the transaction left it


@dataclass(frozen=True, slots=True)
class Finality:
    """A classification: the status, the confirmations counted (the block itself is the first), and the receipt the
    node holds now (None when pending or gone)."""

    status: Status
    confirmations: int = 0
    receipt: ChainReceipt | None = None


class Blocks(Protocol):
    """What finality needs from the node."""

    def head(self) -> int:
        """The number of the latest block."""
        ...

    def block_hash(self, number: int) -> str | None:
        """The 0x hash of the chain's block at ``number``, None above the head."""
        ...

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        """The transaction's receipt, None while it is in no block (pending, dropped, or reorged out)."""
        ...


def classify(recorded: ChainReceipt, blocks: Blocks, final_after: int) -> Finality:
    """How settled the transaction of ``recorded`` is; ``final_after`` (>= 1) confirmations make it ``FINAL``."""
    if final_after < 1:
        raise ValueError(f"final_after must be at least 1, not {final_after}")
    head = blocks.head()
    canonical = blocks.block_hash(recorded.block_number) if recorded.block_number <= head else None
    current = blocks.receipt(recorded.tx_hash)
    if current is None or not _same_block(current, recorded) or not _same_hash(canonical, recorded.block_hash):
        return Finality(Status.REORGED, 0, None if current is None or _same_block(current, recorded) else current)
    confirmations = head - recorded.block_number + 1
    status = Status.FINAL if confirmations >= final_after else Status.CONFIRMED
    return Finality(status, confirmations, current)


def track(tx_hash: str, blocks: Blocks, final_after: int) -> Finality:
    """How settled a sent transaction with no recorded receipt is: ``PENDING`` until the node has a receipt, then as
    ``classify`` of that receipt (its ``Finality.receipt`` is the one to record)."""
    current = blocks.receipt(tx_hash)
    if current is None:
        return Finality(Status.PENDING)
    return classify(current, blocks, final_after)


def _same_block(a: ChainReceipt, b: ChainReceipt) -> bool:
    return a.block_number == b.block_number and _same_hash(a.block_hash, b.block_hash)


def _same_hash(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


@dataclass(slots=True)
class FakeBlocks:
    """A chain in memory: block hashes by height, transactions by block; ``mine``, ``include`` and ``reorg``."""

    hashes: list[str] = field(default_factory=lambda: [_hash("genesis", 0)])
    txs: dict[str, int] = field(default_factory=dict)  # tx hash -> block number
    _fork: int = 0

    def head(self) -> int:
        return len(self.hashes) - 1

    def block_hash(self, number: int) -> str | None:
        return self.hashes[number] if 0 <= number < len(self.hashes) else None

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        number = self.txs.get(tx_hash)
        if number is None:
            return None
        return ChainReceipt(tx_hash, number, self.hashes[number], 21_000)

    def mine(self, count: int = 1, *tx_hashes: str) -> ChainReceipt | None:
        """Mine ``count`` blocks, ``tx_hashes`` in the first; the receipt of the first of them, if any."""
        if tx_hashes and count < 1:
            raise ValueError("transactions need a block")
        for _ in range(count):
            self.hashes.append(_hash(f"fork{self._fork}", len(self.hashes)))
        for tx_hash in tx_hashes:
            self.txs[tx_hash] = len(self.hashes) - count
        return self.receipt(tx_hashes[0]) if tx_hashes else None

    def reorg(self, depth: int) -> None:
        """Drop the last ``depth`` blocks and their transactions (as ``evm_revert``); ``mine`` builds the fork."""
        self._fork += 1
        keep = len(self.hashes) - depth
        del self.hashes[keep:]
        self.txs = {h: n for h, n in self.txs.items() if n < keep}


def _hash(fork: str, number: int) -> str:
    return "0x" + f"{fork}:{number}".encode().hex().ljust(64, "0")[:64]
