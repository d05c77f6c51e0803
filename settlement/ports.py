"""The chain and token ports: what settlement needs from an EVM chain and the euro token, their values, and fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sensors.address import Address
from settlement.errors import ChainError

MAX_OWNERS_PER_EPOCH = 256
"""The most owners one epoch credits: the contract's ``MAX_OWNERS`` (a test keeps the two equal)."""

ROOT_BYTES = 32

MAX_UINT256 = 2**256 - 1


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

    def trips_root(self, epoch_id: int) -> bytes:
        """The trips root the contract holds for ``epoch_id`` (32 zero bytes before it is settled)."""
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

    def trips_root(self, epoch_id: int) -> bytes:
        found = self.epochs.get(epoch_id)
        return bytes(ROOT_BYTES) if found is None else found.trips_root

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        if epoch_id not in self.receipts:
            raise ChainError(f"no settlement of epoch {epoch_id}")
        return self.receipts[epoch_id]

    def owed(self, owner: Address) -> int:
        return self.credits.get(owner, 0)

    def total_settled(self) -> int:
        return sum(e.total_micro for e in self.epochs.values())


def check_amount(amount: int) -> int:
    """``amount`` if it is a whole number of micro-EUR a contract can hold (0 to 2**256 - 1), else ``ChainError``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ChainError(f"an amount is a whole number of micro-EUR, not {amount!r}")
    if not 0 <= amount <= MAX_UINT256:
        raise ChainError(f"an amount of {amount} micro-EUR is outside 0 .. 2**256 - 1")
    return amount


class TokenPort(Protocol):
    """The euro token (6 decimals: amounts in micro-EUR) as seen from one account.

    Refusals raise ``ChainError`` ``"<call> reverted: <reason>"`` with the contract's reason.
    """

    url: str

    @property
    def account(self) -> Address:
        """The account this port sends from: the caller of ``faucet``, ``transfer`` and ``burn``."""
        ...

    def deploy(self, faucet_cap: int = 0) -> str:
        """Deploy the token owned by this account (its first minter), attach to it and return its address.

        ``faucet_cap`` > 0 (demo mode only) lets anyone mint up to that much to themselves per call; 0: no faucet.
        """
        ...

    def attach(self, address: str) -> None:
        """Use the token at ``address``; ``ChainError`` if there is none."""
        ...

    def decimals(self) -> int: ...

    def faucet_cap(self) -> int: ...

    def total_supply(self) -> int: ...

    def balance_of(self, account: Address) -> int: ...

    def is_minter(self, account: Address) -> bool: ...

    def mint(self, to: Address, amount: int) -> ChainReceipt:
        """Create ``amount`` for ``to``: only a minter may."""
        ...

    def faucet(self, amount: int) -> ChainReceipt:
        """Mint ``amount`` to this account: only with a faucet, and at most ``faucet_cap`` per call."""
        ...

    def transfer(self, to: Address, amount: int) -> ChainReceipt:
        """Move ``amount`` from this account to ``to`` (not the zero address), at most its balance."""
        ...

    def burn(self, amount: int) -> ChainReceipt:
        """Destroy ``amount`` of this account's balance."""
        ...

    def set_minter(self, account: Address, allowed: bool) -> ChainReceipt:
        """Grant or revoke ``account``'s minter role: only the owner may, and not for the zero address or itself."""
        ...


TOKEN_DECIMALS = 6
ZERO_ADDRESS = Address(bytes(20))


@dataclass
class TokenLedger:
    """The state of one fake euro token, shared by every ``FakeToken`` that sends to it."""

    owner: Address
    faucet_cap: int
    balances: dict[Address, int] = field(default_factory=dict)
    minters: set[Address] = field(default_factory=set)
    sent: list[tuple[Address, str, tuple[object, ...]]] = field(default_factory=list)


@dataclass
class FakeToken:
    """An in-memory euro token with the contract's rules and revert reasons; ``as_account`` sends as another."""

    account: Address = Address(bytes([0xDE] * 20))
    url: str = "fake://chain"
    address: str | None = None
    ledger: TokenLedger | None = None

    def as_account(self, account: Address) -> FakeToken:
        """The same token, sending from ``account``."""
        return FakeToken(account, self.url, self.address, self.ledger)

    def deploy(self, faucet_cap: int = 0) -> str:
        self.ledger = TokenLedger(self.account, check_amount(faucet_cap), minters={self.account})
        self.address = "0x" + "e0" * 20
        return self.address

    def attach(self, address: str) -> None:
        if address != self.address:
            raise ChainError(f"no euro_token contract at {address}")

    def decimals(self) -> int:
        self._state()
        return TOKEN_DECIMALS

    def faucet_cap(self) -> int:
        return self._state().faucet_cap

    def total_supply(self) -> int:
        return sum(self._state().balances.values())

    def balance_of(self, account: Address) -> int:
        return self._state().balances.get(account, 0)

    def is_minter(self, account: Address) -> bool:
        return account in self._state().minters

    def mint(self, to: Address, amount: int) -> ChainReceipt:
        state = self._state()
        check_amount(amount)
        self._require(self.account in state.minters, "mint", "erc20: access is denied")
        self._require(to != ZERO_ADDRESS, "mint", "erc20: mint to the zero address")
        self._require(self.total_supply() + amount <= MAX_UINT256, "mint", "total supply overflow")
        return self._credit("mint", to, amount, (to, amount))

    def faucet(self, amount: int) -> ChainReceipt:
        state = self._state()
        check_amount(amount)
        self._require(state.faucet_cap != 0, "faucet", "euro: no faucet")
        self._require(amount <= state.faucet_cap, "faucet", "euro: above the faucet cap")
        self._require(self.total_supply() + amount <= MAX_UINT256, "faucet", "total supply overflow")
        return self._credit("faucet", self.account, amount, (amount,))

    def transfer(self, to: Address, amount: int) -> ChainReceipt:
        state = self._state()
        check_amount(amount)
        self._require(to != ZERO_ADDRESS, "transfer", "erc20: transfer to the zero address")
        balance = state.balances.get(self.account, 0)
        self._require(balance >= amount, "transfer", "erc20: transfer amount exceeds balance")
        state.balances[self.account] = balance - amount
        return self._credit("transfer", to, amount, (to, amount))

    def burn(self, amount: int) -> ChainReceipt:
        state = self._state()
        check_amount(amount)
        balance = state.balances.get(self.account, 0)
        self._require(balance >= amount, "burn", "erc20: burn amount exceeds balance")
        state.balances[self.account] = balance - amount
        return self._credit("burn", self.account, 0, (amount,))

    def set_minter(self, account: Address, allowed: bool) -> ChainReceipt:
        state = self._state()
        self._require(self.account == state.owner, "set_minter", "ownable: caller is not the owner")
        self._require(account != ZERO_ADDRESS, "set_minter", "erc20: minter is the zero address")
        self._require(account != self.account, "set_minter", "erc20: minter is owner address")
        (state.minters.add if allowed else state.minters.discard)(account)
        return self._credit("set_minter", account, 0, (account, allowed))

    def _state(self) -> TokenLedger:
        if self.ledger is None:
            raise ChainError("no euro token: deploy() or attach() first")
        return self.ledger

    @staticmethod
    def _require(condition: bool, call: str, reason: str) -> None:
        if not condition:
            raise ChainError(f"{call} reverted: {reason}")

    def _credit(self, call: str, to: Address, amount: int, args: tuple[object, ...]) -> ChainReceipt:
        """Add ``amount`` to ``to``'s balance, record the call and return its receipt."""
        state = self._state()
        state.balances[to] = state.balances.get(to, 0) + amount
        state.sent.append((self.account, call, args))
        n = len(state.sent)
        return ChainReceipt(f"0x{n:064x}", n, f"0x{n + 1000:064x}", 50_000)
