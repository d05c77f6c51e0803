"""The nonces of one account: which nonce a transaction takes, gaps, stuck transactions and their replacement.

Pure: the node is reached through the small ``AccountNode`` port (``settlement.chain.sender.Sender`` on a real
node, ``FakeAccountNode`` here for tests); the clock and the sleep are passed in.

The rules, as ``send_until_mined`` applies them to one transaction:

- The nonce comes from the node's pending count at start and after any error (``NonceManager.resync``); between
  two sends the local counter runs on, checked against the node's pending count before each send: a node count
  below ours where one of our transactions is unknown to the node (dropped) is a gap, and the counter falls back to
  the node's count; a node count above ours (another sender on the account) is taken as it is.
- A transaction abandoned (after its timeout or an error) but still in the node's pool is replaced by the next
  transaction, which takes its nonce and outbids its fees, instead of queueing behind it.
- The node refusing a nonce (used, or an underpriced replacement: ``NonceTaken``) re-syncs and retries, at most
  ``SUBMIT_ATTEMPTS`` times.
- A transaction not mined ``stuck_after`` seconds after it was sent is sent again with the same nonce and fees
  raised by 12.5% (both the fee cap and the tip; nodes want at least 10%): a replacement if the node still holds
  it, a re-send if the node dropped it. Only if a transaction not ours used its nonce (another sender on the
  account) does it move to a fresh nonce: it can then never be mined twice.
- The receipt is asked for at once, then after ``poll`` seconds, doubling up to ``max_poll``.
- No send waits longer than ``timeout`` seconds: then ``NotMined``. The transaction is abandoned: it may still be
  mined later, or be replaced by the next transaction sent, so the caller re-checks the chain's state before
  trying again (as the aggregator does with the clearing contract's last epoch).

One sender per ``NonceManager`` at a time (no locking here): share a ``Sender`` between threads only under a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from settlement.errors import ChainError

SUBMIT_ATTEMPTS = 3
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8  # +12.5%: the most the base fee can rise in one block
NODE_MIN_BUMP_PERCENT = 10  # what geth's and anvil's pools want of a replacement


class NonceTaken(ChainError):
    """The node refused a transaction for its nonce: already used, or a replacement that does not outbid."""


class NotMined(ChainError):
    """A transaction was not mined within the timeout; it is abandoned (it may still be mined later, or be replaced
    by the next transaction sent from the account)."""


def bump(value: int) -> int:
    """``value`` raised by at least 12.5% (rounded up) and by at least one."""
    return max(-(-value * BUMP_NUMERATOR // BUMP_DENOMINATOR), value + 1)


@dataclass(frozen=True, slots=True)
class Fees:
    """What a transaction offers per gas, in wei: an EIP-1559 fee cap and tip, or (``priority_fee`` None) a legacy
    gas price in ``max_fee``."""

    max_fee: int
    priority_fee: int | None = None

    def params(self) -> dict[str, int]:
        """The transaction fields."""
        if self.priority_fee is None:
            return {"gasPrice": self.max_fee}
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.priority_fee}

    def bumped(self) -> Fees:
        """Fees that replace these in a node's pool: each raised by 12.5%."""
        return Fees(bump(self.max_fee), None if self.priority_fee is None else bump(self.priority_fee))

    def outbidding(self, old: Fees) -> Fees:
        """These fees (today's market), raised where needed to replace a transaction that offered ``old``."""
        floor = old.bumped()
        if self.priority_fee is None or floor.priority_fee is None:
            return Fees(max(self.max_fee, floor.max_fee), None if self.priority_fee is None else self.priority_fee)
        tip = max(self.priority_fee, floor.priority_fee)
        return Fees(max(self.max_fee, floor.max_fee, tip), tip)


class AccountNode(Protocol):
    """What the nonce rules need from the node, for one account and one prepared transaction at a time."""

    def pending_nonce(self) -> int:
        """The account's transaction count the node knows, its pool included (the next free nonce)."""
        ...

    def mined_nonce(self) -> int:
        """The account's transaction count in the latest block."""
        ...

    def known(self, tx_hash: str) -> bool:
        """Whether the node holds the transaction, in its pool or in a block."""
        ...

    def fees(self) -> Fees:
        """Today's fees for a transaction to be mined soon."""
        ...

    def submit(self, tx: Any, nonce: int, fees: Fees) -> str:
        """Sign and send the prepared ``tx`` with ``nonce`` and ``fees``; its hash. ``NonceTaken`` if refused so."""
        ...

    def mined(self, tx_hash: str) -> Any | None:
        """The receipt of the transaction, or None while it is not in a block."""
        ...


@dataclass(slots=True)
class InFlight:
    """One of our nonces sent and not yet seen mined: its transaction's hashes (the last one current), its fees."""

    nonce: int
    hashes: list[str]
    fees: Fees
    sent_at: float
    abandoned: bool = False


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How long one send may take: ``timeout`` in all, replacing the transaction every ``stuck_after`` seconds, and
    asking for its receipt after ``poll`` seconds, then twice as long each time up to ``max_poll``."""

    timeout: float = 30.0
    stuck_after: float = 10.0
    poll: float = 0.1
    max_poll: float = 1.0


@dataclass(slots=True)
class NonceManager:
    """The local nonce counter of one account and its transactions in flight (see the module's rules)."""

    next_nonce: int | None = None  # None: ask the node
    in_flight: dict[int, InFlight] = field(default_factory=dict)

    def reserve(self, node: AccountNode) -> tuple[int, Fees | None]:
        """The nonce for the next transaction, and the fees it must outbid when it replaces an abandoned one."""
        pending = node.pending_nonce()
        if self.in_flight:
            mined = node.mined_nonce()
            for nonce in [n for n in self.in_flight if n < mined]:
                del self.in_flight[nonce]
            for flight in sorted(self.in_flight.values(), key=lambda f: f.nonce):
                if flight.abandoned and flight.nonce < pending and node.known(flight.hashes[-1]):
                    return flight.nonce, flight.fees
        if self.next_nonce is None or pending > self.next_nonce or self._gap(node, pending):
            self.next_nonce = pending
            for nonce in [n for n in self.in_flight if n >= pending]:
                del self.in_flight[nonce]
        return self.next_nonce, None

    def _gap(self, node: AccountNode, pending: int) -> bool:
        """Whether a nonce between the node's count and ours holds no transaction the node knows."""
        assert self.next_nonce is not None
        for nonce in range(pending, self.next_nonce):
            flight = self.in_flight.get(nonce)
            if flight is None or not node.known(flight.hashes[-1]):
                return True
        return False

    def sent(self, nonce: int, tx_hash: str, fees: Fees, now: float) -> None:
        """A new transaction was accepted with ``nonce`` (replacing any abandoned one there)."""
        self.in_flight[nonce] = InFlight(nonce, [tx_hash], fees, now)
        self.next_nonce = max(self.next_nonce or 0, nonce + 1)

    def replaced(self, nonce: int, tx_hash: str, fees: Fees, now: float) -> None:
        """The transaction at ``nonce`` was sent again as ``tx_hash`` with higher ``fees``."""
        flight = self.in_flight[nonce]
        flight.hashes.append(tx_hash)
        flight.fees, flight.sent_at = fees, now

    def mined(self, nonce: int) -> None:
        """The transaction at ``nonce`` is in a block: it and every lower nonce are done."""
        for done in [n for n in self.in_flight if n <= nonce]:
            del self.in_flight[done]

    def abandon(self, nonce: int) -> None:
        """The transaction at ``nonce`` timed out; the next transaction may replace it."""
        if nonce in self.in_flight:
            self.in_flight[nonce].abandoned = True
        self.resync()

    def taken(self, nonce: int) -> None:
        """The node refused ``nonce`` as used: forget what we had there and ask the node again."""
        self.in_flight.pop(nonce, None)
        self.resync()

    def resync(self) -> None:
        """After any error: the next nonce comes from the node's pending count."""
        self.next_nonce = None


def send_until_mined(
    node: AccountNode,
    nonces: NonceManager,
    tx: Any,
    policy: SendPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Send ``tx`` under the module's rules and return its receipt (``node.mined``'s, whatever its status).

    Raises ``NotMined`` after ``policy.timeout`` seconds, ``ChainError`` if the nonce is refused
    ``SUBMIT_ATTEMPTS`` times in a row. After any error the transaction sent, if any, is abandoned and the next
    send re-syncs with the node.
    """
    deadline = clock() + policy.timeout
    wait = policy.poll
    nonce: int | None = None
    try:
        nonce = _submit_new(node, nonces, tx, clock)
        while True:
            flight = nonces.in_flight[nonce]
            receipt = _receipt(node, flight)
            if receipt is not None:
                nonces.mined(nonce)
                return receipt
            now = clock()
            if now >= deadline:
                raise NotMined(
                    f"not mined within {policy.timeout:g}s: {flight.hashes[-1]} (nonce {nonce}, "
                    f"{len(flight.hashes) - 1} replacements)"
                )
            if now - flight.sent_at >= policy.stuck_after:
                nonce = _unstick(node, nonces, tx, flight, clock)
            sleep(max(0.0, min(wait, deadline - now)))
            wait = min(2 * wait, max(policy.poll, policy.max_poll))
    except BaseException:  # timed out, node away, interrupted: the next send re-syncs and may replace this one
        if nonce is None:
            nonces.resync()
        else:
            nonces.abandon(nonce)
        raise


def _submit_new(node: AccountNode, nonces: NonceManager, tx: Any, clock: Callable[[], float]) -> int:
    """Send ``tx`` at the nonce ``nonces`` reserves, re-syncing when the node refuses it; the nonce used."""
    for _ in range(SUBMIT_ATTEMPTS):
        nonce, outbid = nonces.reserve(node)
        fees = node.fees() if outbid is None else node.fees().outbidding(outbid)
        try:
            tx_hash = node.submit(tx, nonce, fees)
        except NonceTaken:
            nonces.taken(nonce)
            continue
        nonces.sent(nonce, tx_hash, fees, clock())
        return nonce
    raise ChainError(f"the node refused {SUBMIT_ATTEMPTS} nonces in a row: is another sender using the account?")


def _receipt(node: AccountNode, flight: InFlight) -> Any | None:
    """The receipt of whichever of the transactions sent at ``flight``'s nonce was mined, if any."""
    for tx_hash in reversed(flight.hashes):
        receipt = node.mined(tx_hash)
        if receipt is not None:
            return receipt
    return None


def _unstick(node: AccountNode, nonces: NonceManager, tx: Any, flight: InFlight, clock: Callable[[], float]) -> int:
    """Send a stuck transaction again: at its nonce with higher fees (a replacement, or a re-send if the node
    dropped it), or at a fresh nonce if a transaction not ours used that nonce (ours can then never be mined)."""
    if node.mined_nonce() > flight.nonce:
        if _receipt(node, flight) is not None:  # ours, mined just now: the caller's next look finds it
            return flight.nonce
        nonces.taken(flight.nonce)
        return _submit_new(node, nonces, tx, clock)
    fees = node.fees().outbidding(flight.fees)
    try:
        tx_hash = node.submit(tx, flight.nonce, fees)
    except NonceTaken:  # mined or outbid meanwhile: the next tick tells which
        flight.sent_at = clock()
        return flight.nonce
    nonces.replaced(flight.nonce, tx_hash, fees, clock())
    return flight.nonce


@dataclass(slots=True)
class FakeAccountNode:
    """One account's view of a node in memory: a pool, blocks mined on ``mine()`` or at once with ``automine``.

    ``drop`` forgets a pooled transaction (as ``anvil_dropTransaction``), ``take`` mines another sender's
    transaction at the next nonce. A receipt is ``{"transactionHash", "nonce", "tx", "fees"}``.
    """

    automine: bool = True
    market: Fees = field(default_factory=lambda: Fees(2_000, 1_000))
    blocks: list[dict[str, Any]] = field(default_factory=list)  # mined transactions, in nonce order
    pool: dict[int, dict[str, Any]] = field(default_factory=dict)
    submitted: list[tuple[int, Fees]] = field(default_factory=list)
    _count: int = 0

    def pending_nonce(self) -> int:
        nonce = len(self.blocks)
        while nonce in self.pool:
            nonce += 1
        return nonce

    def mined_nonce(self) -> int:
        return len(self.blocks)

    def known(self, tx_hash: str) -> bool:
        return any(t["transactionHash"] == tx_hash for t in [*self.blocks, *self.pool.values()])

    def fees(self) -> Fees:
        return self.market

    def submit(self, tx: Any, nonce: int, fees: Fees) -> str:
        if nonce < len(self.blocks):
            raise NonceTaken("nonce too low")
        old = self.pool.get(nonce)
        if old is not None and not _outbids(fees, old["fees"]):
            raise NonceTaken("replacement transaction underpriced")
        self._count += 1
        tx_hash = f"0x{self._count:064x}"
        self.pool[nonce] = {"transactionHash": tx_hash, "nonce": nonce, "tx": tx, "fees": fees}
        self.submitted.append((nonce, fees))
        if self.automine:
            self.mine()
        return tx_hash

    def mined(self, tx_hash: str) -> dict[str, Any] | None:
        return next((t for t in self.blocks if t["transactionHash"] == tx_hash), None)

    def mine(self) -> None:
        """Mine every pooled transaction that no gap holds back."""
        while len(self.blocks) in self.pool:
            self.blocks.append(self.pool.pop(len(self.blocks)))

    def drop(self, tx_hash: str) -> None:
        self.pool = {n: t for n, t in self.pool.items() if t["transactionHash"] != tx_hash}

    def take(self) -> None:
        """Another sender's transaction on this account takes the next nonce and is mined."""
        nonce = len(self.blocks)
        self.pool.pop(nonce, None)
        self._count += 1
        self.blocks.append({"transactionHash": f"0x{self._count:064x}", "nonce": nonce, "tx": None, "fees": None})
        self.mine()


def _outbids(new: Fees, old: Fees) -> bool:
    """Whether a pool takes ``new`` in place of ``old``: every fee raised by ``NODE_MIN_BUMP_PERCENT``."""
    pairs = [(new.max_fee, old.max_fee)]
    if new.priority_fee is not None and old.priority_fee is not None:
        pairs.append((new.priority_fee, old.priority_fee))
    return all(n * 100 >= o * (100 + NODE_MIN_BUMP_PERCENT) and n > o for n, o in pairs)
