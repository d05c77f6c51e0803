"""The clearing contract's port: its values, its rules and revert reasons, and an in-memory fake (pure).

Riders deposit euro tokens into the clearing contract; the aggregator commits each epoch in O(1) (the trips root,
the root of every account's cumulative ``(earned, spent)`` balance, the registry root, the trip count and the
cumulative totals); once an epoch is final, owners and the zone ``claim`` what they earned and riders ``withdraw``
what they did not spend, each with a proof of their balance leaf. ``FakeClearing`` keeps the contract's rules
(``settlement/contracts/clearing.vy``) in memory, with the same revert reasons, paying a ``FakeToken``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sensors.address import Address
from settlement.errors import ChainError
from settlement.merkle import leaf_hash, verify
from settlement.ports import ROOT_BYTES, ChainReceipt, FakeToken, TokenLedger, check_amount

BALANCE_LEAF_TYPES = ("uint256", "address", "address", "uint256", "uint256")
"""chain id, clearing contract, account, cumulative earned micro-EUR, cumulative spent micro-EUR."""
RING = 8
"""How many epochs' balances roots the contract keeps: its ``RING`` (a test keeps the two equal)."""
MAX_PROOF = 32
"""The longest proof the contract takes (a balance tree of up to 2**32 accounts): its ``MAX_PROOF``."""
AMOUNT_LIMIT = 2**72 - 1
"""The most micro-EUR any of the contract's totals holds (they are packed in one slot)."""
MAX_WINDOW = 2**48 - 1
"""The longest challenge window or withdrawal delay, in blocks: the contract's ``MAX_WINDOW``."""
ZERO_ROOT = bytes(ROOT_BYTES)

# The contract's revert reasons, word for word.
WINDOW_TOO_LONG = "clearing: window too long"
ZERO_DEPOSIT = "clearing: zero deposit"
DEPOSITS_ABOVE_LIMIT = "clearing: deposits above the limit"
OUT_OF_SEQUENCE = "clearing: epoch out of sequence"
ZERO_TRIPS_ROOT = "clearing: zero trips root"
ZERO_BALANCES_ROOT = "clearing: zero balances root"
ZERO_TRIPS = "clearing: zero trips"
SPENT_DECREASED = "clearing: spent total decreased"
EARNED_NOT_SPENT = "clearing: earned differs from spent"
TOTALS_ABOVE_DEPOSITS = "clearing: totals above deposits"
RING_FULL = "clearing: ring full until an epoch is final"
NOT_LAST_EPOCH = "clearing: not the last epoch"
EPOCH_FINAL = "clearing: epoch is final"
NOT_COMMITTED = "clearing: epoch not committed"
FORGOTTEN = "clearing: epoch forgotten"
NOT_FINAL = "clearing: epoch not final"
WRONG_PROOF = "clearing: wrong proof"
NOTHING_TO_CLAIM = "clearing: nothing to claim"
PAYOUTS_ABOVE_DEPOSITS = "clearing: payouts above deposits"
ZERO_WITHDRAWAL = "clearing: zero withdrawal"
ABOVE_UNSPENT = "clearing: above unspent deposit"
NOT_READY = "clearing: withdrawal not ready"
ABOVE_REQUESTED = "clearing: above the requested amount"
NOT_LATEST_FINAL = "clearing: not the latest final epoch"
NOT_OWNER = "ownable: caller is not the owner"
NOT_PENDING_OWNER = "ownable_2step: caller is not the new owner"
INSUFFICIENT_ALLOWANCE = "erc20: insufficient allowance"


@dataclass(frozen=True, slots=True)
class ClearingCommit:
    """What one epoch puts on chain, whatever its number of trips and accounts.

    ``balances_root`` is the StandardMerkleTree root of every account's cumulative balance (``BALANCE_LEAF_TYPES``);
    ``spent_total`` is what riders spent since the start (it never decreases) and ``earned_total`` what owners
    and the zone earned, which must equal it.
    """

    epoch_id: int
    trips_root: bytes
    balances_root: bytes
    registry_root: bytes
    trip_count: int
    spent_total: int
    earned_total: int


@dataclass(frozen=True, slots=True)
class BalanceProof:
    """One account's cumulative balance in one epoch's balances tree, with its proof."""

    epoch_id: int
    account: Address
    earned: int
    spent: int
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ClearingTotals:
    """The contract's running totals in micro-EUR."""

    deposited_total: int
    spent_total: int
    claimed_total: int
    withdrawn_total: int


def balance_values(chain_id: int, contract: str, account: Address, earned: int, spent: int) -> tuple[object, ...]:
    """The values of ``account``'s balance leaf (``BALANCE_LEAF_TYPES``) for the clearing contract ``contract``."""
    return (chain_id, Address.parse(contract).checksum, account.checksum, earned, spent)


def check_commit_encoding(commit: ClearingCommit) -> None:
    """``ChainError`` if ``commit`` could not be sent at all: roots not 32 bytes, a count or total out of range."""
    for name, root in (
        ("trips", commit.trips_root),
        ("balances", commit.balances_root),
        ("registry", commit.registry_root),
    ):
        if len(root) != ROOT_BYTES:
            raise ChainError(f"{name} root must be {ROOT_BYTES} bytes, not {len(root)}")
    for value in (commit.epoch_id, commit.trip_count, commit.spent_total, commit.earned_total):
        check_amount(value)


def check_proof_encoding(proof: BalanceProof) -> None:
    """``ChainError`` if ``proof`` could not be sent at all: nodes not 32 bytes, too long, amounts out of range."""
    if len(proof.proof) > MAX_PROOF:
        raise ChainError(f"a proof of {len(proof.proof)} nodes; the contract takes at most {MAX_PROOF}")
    if any(len(node) != ROOT_BYTES for node in proof.proof):
        raise ChainError(f"every proof node must be {ROOT_BYTES} bytes")
    for value in (proof.epoch_id, proof.earned, proof.spent):
        check_amount(value)


def check_withdrawal_sender(proof: BalanceProof, sender: Address) -> None:
    """``ChainError`` unless ``sender`` is the account of ``proof`` (a withdrawal pays its sender only)."""
    if proof.account != sender:
        raise ChainError(f"a withdrawal is sent by the account it pays ({proof.account}), not {sender}")


class ClearingPort(Protocol):
    """The clearing contract as seen from one account (``account`` sends this port's transactions).

    Refusals raise ``ChainError`` ``"<function> reverted: <reason>"`` with the contract's reason.
    """

    account: Address
    url: str  # the node's (redacted) URL, for messages

    @property
    def address(self) -> str | None: ...

    def chain_id(self) -> int: ...

    def block_number(self) -> int: ...

    def deploy(self, token: str, challenge_blocks: int, withdraw_delay_blocks: int) -> str:
        """Deploy the contract (owned by this account) over the euro token at ``token``, attach, return it."""
        ...

    def attach(self, address: str) -> None: ...

    def token_address(self) -> str:
        """The euro token the contract holds deposits in."""
        ...

    def approve(self, amount: int) -> ChainReceipt:
        """Allow the contract to pull ``amount`` of this account's euro tokens (the token's ``approve``)."""
        ...

    def deposit(self, amount: int) -> ChainReceipt:
        """Move ``amount`` of this account's tokens into its deposit (``approve`` it first)."""
        ...

    def commit(self, commit: ClearingCommit) -> ChainReceipt:
        """Commit an epoch: only the owner may."""
        ...

    def retract(self, epoch_id: int) -> ChainReceipt:
        """Take back the last epoch while it is not final: only the owner may."""
        ...

    def claim(self, proof: BalanceProof) -> ChainReceipt:
        """Pay ``proof.account`` what it earned by the proof's final epoch, less what it claimed before."""
        ...

    def request_withdrawal(self, amount: int) -> ChainReceipt: ...

    def withdraw(self, proof: BalanceProof, amount: int) -> ChainReceipt:
        """Pay this account (``proof.account``) ``amount`` of its unspent deposit by the latest final epoch."""
        ...

    def last_epoch(self) -> int: ...

    def is_final(self, epoch_id: int) -> bool: ...

    def trips_root(self, epoch_id: int) -> bytes: ...

    def balances_root(self, epoch_id: int) -> bytes:
        """Zero before the epoch's commit and once the ring has forgotten it."""
        ...

    def deposited(self, account: Address) -> int: ...

    def claimed(self, account: Address) -> int: ...

    def withdrawn(self, account: Address) -> int: ...

    def requested(self, account: Address) -> tuple[int, int]:
        """What ``account`` asked to withdraw and has not withdrawn yet, and the block from which it may."""
        ...

    def unspent(self, riders: Sequence[Address]) -> dict[Address, int]:
        """Each of ``riders``' deposit less what it withdrew and what it asked back and has not withdrawn yet (what
        an epoch may still charge it, before the trips the book already holds), all read at one block."""
        ...

    def commit_receipt(self, epoch_id: int) -> ChainReceipt:
        """The receipt of the last commit of ``epoch_id``; ``ChainError`` if there is none."""
        ...

    def totals(self) -> ClearingTotals: ...

    # The ``Blocks`` port of ``settlement.chain.finality``: the settler re-checks its receipts through it.

    def head(self) -> int:
        """The number of the latest block."""
        ...

    def block_hash(self, number: int) -> str | None:
        """The 0x hash of the chain's block at ``number``, None above the head."""
        ...

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        """The transaction's receipt as the node holds it now, None while it is in no block."""
        ...


@dataclass
class _Place:
    """One place of the ring, as the contract keeps it (epoch 0: free, and what it held was final)."""

    epoch_id: int = 0
    balances_root: bytes = ZERO_ROOT
    previous_spent: int = 0
    block: int = 0


@dataclass
class FakeBlocksOf:
    """The fake chain's blocks: each one's hash, the block of each transaction, and snapshots to go back to (as
    anvil's ``evm_snapshot``/``evm_revert``); blocks mined after a revert get other hashes (a new fork)."""

    hashes: dict[int, str] = field(default_factory=lambda: {0: _block_hash(0, 0)})
    txs: dict[str, int] = field(default_factory=dict)
    fork: int = 0
    snapshots: dict[int, tuple[int, ClearingState | None, TokenLedger | None]] = field(default_factory=dict)


def _block_hash(fork: int, number: int) -> str:
    return f"0x{fork:08x}{number + 1000:056x}"


@dataclass
class ClearingState:
    """The state of one fake clearing contract, shared by every ``FakeClearing`` that sends to it."""

    owner: Address
    token: FakeToken
    address: Address
    challenge_blocks: int
    withdraw_delay_blocks: int
    pending_owner: Address | None = None
    last_epoch: int = 0
    spent_total: int = 0
    deposited_total: int = 0
    withdrawn_total: int = 0
    claimed_total: int = 0
    trips_roots: dict[int, bytes] = field(default_factory=dict)
    ring: list[_Place] = field(default_factory=lambda: [_Place() for _ in range(RING)])
    deposited: dict[Address, int] = field(default_factory=dict)
    claimed: dict[Address, int] = field(default_factory=dict)
    withdrawn: dict[Address, int] = field(default_factory=dict)
    requests: dict[Address, tuple[int, int]] = field(default_factory=dict)  # (amount, ready block)
    allowances: dict[Address, int] = field(default_factory=dict)
    commits: dict[int, ChainReceipt] = field(default_factory=dict)  # the last commit of each epoch
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)


class FakeClearing:
    """The clearing contract in memory: the same rules and revert reasons, paying a ``FakeToken``.

    Every transaction is mined in a block of its own (a refused one too, as on a node); ``mine(n)`` adds ``n``
    empty blocks. ``as_account`` sends as another account to the same contract. The euro token's allowance for
    the contract is kept here (``approve``), since ``FakeToken`` has no ``transferFrom``. It is its own ``Blocks``
    port (``head``, ``block_hash``, ``receipt``) and goes back to a ``snapshot`` with ``revert`` (a reorg).
    """

    def __init__(self, token: FakeToken, account: Address | None = None) -> None:
        self.token = token  # a deployed FakeToken: its ledger holds the balances
        self.url = token.url
        self.account = token.account if account is None else account
        self.chain: list[int] = [0]  # the current block number, shared with as_account's ports
        self.blocks = FakeBlocksOf()  # shared with as_account's ports too
        self.state: ClearingState | None = None

    def as_account(self, account: Address) -> FakeClearing:
        other = FakeClearing(self.token, account)
        other.chain, other.state, other.blocks = self.chain, self.state, self.blocks
        return other

    @property
    def address(self) -> str | None:
        return None if self.state is None else self.state.address.checksum

    def chain_id(self) -> int:
        return 31337

    def block_number(self) -> int:
        return self.chain[0]

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.chain[0] += 1
            self.blocks.hashes[self.chain[0]] = _block_hash(self.blocks.fork, self.chain[0])

    # --- blocks (the ``Blocks`` port) and reorgs ----------------------------------------------------------
    def head(self) -> int:
        return self.chain[0]

    def block_hash(self, number: int) -> str | None:
        return self.blocks.hashes.get(number) if number <= self.chain[0] else None

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        number = self.blocks.txs.get(tx_hash)
        return None if number is None else ChainReceipt(tx_hash, number, self.blocks.hashes[number], 50_000)

    def snapshot(self) -> int:
        """Remember the chain as it is now (contract and token state included); the id ``revert`` takes."""
        ledger = copy.deepcopy(self.token.ledger)
        state = None if self.state is None else copy.deepcopy(self.state, {id(self.state.token): self.state.token})
        key = len(self.blocks.snapshots) + 1
        self.blocks.snapshots[key] = (self.chain[0], state, ledger)
        return key

    def revert(self, snapshot: int) -> None:
        """Go back to ``snapshot``: the blocks after it and their transactions are gone; what is mined next is on
        another fork (other block hashes), as after ``evm_revert`` on anvil."""
        height, state, ledger = self.blocks.snapshots.pop(snapshot)
        self.chain[0] = height
        b = self.blocks
        b.fork += 1
        b.hashes = {n: h for n, h in b.hashes.items() if n <= height}
        b.txs = {t: n for t, n in b.txs.items() if n <= height}
        _restore(self.token.ledger, ledger)
        _restore(self.state, state)

    def deploy(self, token: str, challenge_blocks: int, withdraw_delay_blocks: int) -> str:
        if token != self.token.address:
            raise ChainError(f"no euro token at {token}")
        self._mined()
        if max(check_amount(challenge_blocks), check_amount(withdraw_delay_blocks)) > MAX_WINDOW:
            raise ChainError(f"deploying the clearing contract failed: {WINDOW_TOO_LONG}")
        address = Address(bytes([0xC1] * 20))
        self.state = ClearingState(
            self.account, self.token, address, check_amount(challenge_blocks), check_amount(withdraw_delay_blocks)
        )
        return address.checksum

    def attach(self, address: str) -> None:
        if self.state is None or Address.parse(address) != self.state.address:
            raise ChainError(f"no clearing contract at {address}")

    def token_address(self) -> str:
        return str(self._state().token.address)

    def approve(self, amount: int) -> ChainReceipt:
        """Allow the contract to pull ``amount`` of this account's tokens (the euro token's ``approve``)."""
        self._state().allowances[self.account] = check_amount(amount)
        return self._mined()

    # --- transactions ---------------------------------------------------------------------------------
    def deposit(self, amount: int) -> ChainReceipt:
        s, call = self._state(), "deposit"
        check_amount(amount)
        block = self._mined()
        _require(amount > 0, call, ZERO_DEPOSIT)
        _require(amount <= AMOUNT_LIMIT - s.deposited_total, call, DEPOSITS_ABOVE_LIMIT)
        allowance = s.allowances.get(self.account, 0)
        _require(allowance >= amount, call, INSUFFICIENT_ALLOWANCE)
        try:
            self.token.as_account(self.account).transfer(s.address, amount)
        except ChainError as exc:
            raise ChainError(f"{call} reverted: {str(exc).split('reverted: ', 1)[-1]}") from None
        s.allowances[self.account] = allowance - amount
        s.deposited_total += amount
        s.deposited[self.account] = total = s.deposited.get(self.account, 0) + amount
        self._log("Deposited", account=self.account, amount=amount, deposited=total)
        return block

    def commit(self, commit: ClearingCommit) -> ChainReceipt:
        s, call = self._state(), "commit_epoch"
        check_commit_encoding(commit)
        block = self._mined()
        _require(self.account == s.owner, call, NOT_OWNER)
        _require(commit.epoch_id == s.last_epoch + 1, call, OUT_OF_SEQUENCE)
        _require(commit.trips_root != ZERO_ROOT, call, ZERO_TRIPS_ROOT)
        _require(commit.balances_root != ZERO_ROOT, call, ZERO_BALANCES_ROOT)
        _require(commit.trip_count > 0, call, ZERO_TRIPS)
        _require(commit.spent_total >= s.spent_total, call, SPENT_DECREASED)
        _require(commit.earned_total == commit.spent_total, call, EARNED_NOT_SPENT)
        _require(commit.spent_total <= s.deposited_total - s.withdrawn_total, call, TOTALS_ABOVE_DEPOSITS)
        place = s.ring[commit.epoch_id % RING]
        pushed_out = place.block
        _require(pushed_out == 0 or pushed_out + s.challenge_blocks <= block.block_number, call, RING_FULL)
        s.ring[commit.epoch_id % RING] = _Place(
            commit.epoch_id, commit.balances_root, s.spent_total, block.block_number
        )
        s.trips_roots[commit.epoch_id] = commit.trips_root
        s.last_epoch, s.spent_total = commit.epoch_id, commit.spent_total
        s.commits[commit.epoch_id] = block
        self._log("EpochCommitted", epoch_id=commit.epoch_id, trips_root=commit.trips_root,
                  balances_root=commit.balances_root, registry_root=commit.registry_root,
                  trip_count=commit.trip_count, spent_total=commit.spent_total)  # fmt: skip
        return block

    def retract(self, epoch_id: int) -> ChainReceipt:
        s, call = self._state(), "retract_epoch"
        check_amount(epoch_id)
        block = self._mined()
        _require(self.account == s.owner, call, NOT_OWNER)
        _require(epoch_id == s.last_epoch and epoch_id != 0, call, NOT_LAST_EPOCH)
        place = s.ring[epoch_id % RING]
        _require(place.block + s.challenge_blocks > block.block_number, call, EPOCH_FINAL)
        s.ring[epoch_id % RING] = _Place()
        s.trips_roots.pop(epoch_id, None)
        s.last_epoch, s.spent_total = epoch_id - 1, place.previous_spent
        self._log("EpochRetracted", epoch_id=epoch_id, spent_total=place.previous_spent)
        return block

    def claim(self, proof: BalanceProof) -> ChainReceipt:
        s, call = self._state(), "claim"
        check_proof_encoding(proof)
        block = self._mined()
        self._check_leaf(proof, call, block.block_number)
        already = s.claimed.get(proof.account, 0)
        _require(proof.earned > already, call, NOTHING_TO_CLAIM)
        amount = proof.earned - already
        self._pay(proof.account, amount, call)
        s.claimed[proof.account] = proof.earned
        s.claimed_total += amount
        self._log("Claimed", account=proof.account, epoch_id=proof.epoch_id, amount=amount, claimed=proof.earned)
        return block

    def request_withdrawal(self, amount: int) -> ChainReceipt:
        s, call = self._state(), "request_withdrawal"
        check_amount(amount)
        block = self._mined()
        _require(amount > 0, call, ZERO_WITHDRAWAL)
        unspent = s.deposited.get(self.account, 0) - s.withdrawn.get(self.account, 0)
        _require(amount <= unspent, call, ABOVE_UNSPENT)
        ready = block.block_number + s.withdraw_delay_blocks
        s.requests[self.account] = (amount, ready)
        self._log("WithdrawalRequested", account=self.account, amount=amount, ready_block=ready)
        return block

    def withdraw(self, proof: BalanceProof, amount: int) -> ChainReceipt:
        s, call = self._state(), "withdraw"
        check_proof_encoding(proof)
        check_withdrawal_sender(proof, self.account)
        check_amount(amount)
        block = self._mined()
        now = block.block_number
        requested, ready = s.requests.get(self.account, (0, 0))
        _require(amount > 0, call, ZERO_WITHDRAWAL)
        _require((requested, ready) != (0, 0) and ready <= now, call, NOT_READY)
        _require(amount <= requested, call, ABOVE_REQUESTED)
        self._check_leaf(proof, call, now)
        latest = proof.epoch_id == s.last_epoch or not self._final(proof.epoch_id + 1, now)
        _require(latest, call, NOT_LATEST_FINAL)
        already = s.withdrawn.get(self.account, 0)
        unspent = s.deposited.get(self.account, 0) - already
        _require(amount <= unspent and proof.spent <= unspent - amount, call, ABOVE_UNSPENT)
        self._pay(self.account, amount, call)
        s.requests[self.account] = (requested - amount, ready)
        s.withdrawn[self.account] = already + amount
        s.withdrawn_total += amount
        self._log("Withdrawn", account=self.account, epoch_id=proof.epoch_id, amount=amount, withdrawn=already + amount)
        return block

    def transfer_ownership(self, new_owner: Address) -> ChainReceipt:
        s = self._state()
        block = self._mined()
        _require(self.account == s.owner, "transfer_ownership", NOT_OWNER)
        s.pending_owner = new_owner
        return block

    def accept_ownership(self) -> ChainReceipt:
        s = self._state()
        block = self._mined()
        _require(self.account == s.pending_owner, "accept_ownership", NOT_PENDING_OWNER)
        s.owner, s.pending_owner = self.account, None
        return block

    # --- views ----------------------------------------------------------------------------------------
    def owner(self) -> Address:
        return self._state().owner

    def last_epoch(self) -> int:
        return self._state().last_epoch

    def is_final(self, epoch_id: int) -> bool:
        s = self._state()
        if not 1 <= epoch_id <= s.last_epoch:
            return False
        return not self._in_ring(epoch_id) or self._final(epoch_id, self.block_number())

    def trips_root(self, epoch_id: int) -> bytes:
        return self._state().trips_roots.get(epoch_id, ZERO_ROOT)

    def balances_root(self, epoch_id: int) -> bytes:
        s = self._state()
        if not 1 <= epoch_id <= s.last_epoch or not self._in_ring(epoch_id):
            return ZERO_ROOT
        return s.ring[epoch_id % RING].balances_root

    def deposited(self, account: Address) -> int:
        return self._state().deposited.get(account, 0)

    def claimed(self, account: Address) -> int:
        return self._state().claimed.get(account, 0)

    def withdrawn(self, account: Address) -> int:
        return self._state().withdrawn.get(account, 0)

    def requested(self, account: Address) -> tuple[int, int]:
        return self._state().requests.get(account, (0, 0))

    def unspent(self, riders: Sequence[Address]) -> dict[Address, int]:
        s = self._state()
        return {r: s.deposited.get(r, 0) - s.withdrawn.get(r, 0) - s.requests.get(r, (0, 0))[0] for r in riders}

    def commit_receipt(self, epoch_id: int) -> ChainReceipt:
        found = self._state().commits.get(epoch_id)
        if found is None:
            raise ChainError(f"no commit of epoch {epoch_id}")
        return found

    def totals(self) -> ClearingTotals:
        s = self._state()
        return ClearingTotals(s.deposited_total, s.spent_total, s.claimed_total, s.withdrawn_total)

    # --- the rules they share -------------------------------------------------------------------------
    def _check_leaf(self, proof: BalanceProof, call: str, now: int) -> None:
        s = self._state()
        _require(1 <= proof.epoch_id <= s.last_epoch, call, NOT_COMMITTED)
        _require(self._in_ring(proof.epoch_id), call, FORGOTTEN)
        _require(self._final(proof.epoch_id, now), call, NOT_FINAL)
        values = balance_values(self.chain_id(), s.address.checksum, proof.account, proof.earned, proof.spent)
        leaf = leaf_hash(BALANCE_LEAF_TYPES, values)
        _require(verify(s.ring[proof.epoch_id % RING].balances_root, leaf, proof.proof), call, WRONG_PROOF)

    def _pay(self, to: Address, amount: int, call: str) -> None:
        s = self._state()
        _require(amount <= s.deposited_total - s.withdrawn_total - s.claimed_total, call, PAYOUTS_ABOVE_DEPOSITS)
        self.token.as_account(s.address).transfer(to, amount)

    def _in_ring(self, epoch_id: int) -> bool:
        return self._state().ring[epoch_id % RING].epoch_id == epoch_id

    def _final(self, epoch_id: int, now: int) -> bool:
        return self._state().ring[epoch_id % RING].block + self._state().challenge_blocks <= now

    def _mined(self) -> ChainReceipt:
        self.chain[0] += 1
        n, b = self.chain[0], self.blocks
        b.hashes[n] = _block_hash(b.fork, n)
        tx_hash = f"0x{b.fork:08x}{n:056x}"
        b.txs[tx_hash] = n
        return ChainReceipt(tx_hash, n, b.hashes[n], 50_000)

    def _log(self, event: str, **args: object) -> None:
        self._state().events.append((event, args))

    def _state(self) -> ClearingState:
        if self.state is None:
            raise ChainError("no clearing contract: deploy() or attach() first")
        return self.state


def deployed_fake(challenge_blocks: int = 0, withdraw_delay_blocks: int = 100, faucet_cap: int = 0) -> FakeClearing:
    """A fake clearing contract over a fresh fake token, deployed (always at the same address, so that every fake
    made this way is the contract a database recorded)."""
    token = FakeToken()
    token.deploy(faucet_cap)
    clearing = FakeClearing(token)
    clearing.deploy(str(token.address), challenge_blocks, withdraw_delay_blocks)
    return clearing


def _restore(target: object, saved: object) -> None:
    """Put ``saved``'s fields back into ``target`` in place (every port shares ``target``)."""
    if target is not None and saved is not None:
        for name in vars(saved):
            setattr(target, name, getattr(saved, name))


def _require(condition: bool, call: str, reason: str) -> None:
    if not condition:
        raise ChainError(f"{call} reverted: {reason}")
