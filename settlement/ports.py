"""The euro token's port and its fake, and the chain's values: a transaction's receipt and amounts a contract holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sensors.address import Address
from settlement.errors import ChainError

ROOT_BYTES = 32

MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True, slots=True)
class ChainReceipt:
    """Where and at what cost a transaction was mined."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int


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
