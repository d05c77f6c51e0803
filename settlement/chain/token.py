"""The euro token's calls (the ``TokenPort``), sent by a ``Sender``."""

from __future__ import annotations

from typing import Any

from web3.contract import Contract

from sensors.address import Address
from settlement.chain.sender import (
    TOKEN_CALL_GAS,
    TOKEN_DEPLOY_GAS,
    Sender,
)
from settlement.errors import ChainError
from settlement.ports import (
    ChainReceipt,
    check_amount,
)


class Web3Token:
    """The ``TokenPort`` on a node: the euro token's calls (amounts in micro-EUR), sent by a ``Sender``.

    Amounts that could not be encoded (negative, or above 2**256 - 1) are refused before sending; the contract
    enforces every other rule and its revert reason comes back in the ``ChainError``.
    """

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.url = sender.url
        self.account = Address.parse(sender.account)  # the caller of faucet, transfer and burn
        self._contract: Contract | None = None

    @classmethod
    def connect(cls, url: str | None, private_key: str | None = None, timeout: float = 30) -> Web3Token:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain); ``ChainUnavailable`` if none."""
        return cls(Sender.connect(url, private_key, timeout))

    def with_key(self, private_key: str | None) -> Web3Token:
        """The same node and token, sending from ``private_key``'s account (``None``: first unlocked)."""
        token = Web3Token(self.sender.with_key(private_key))
        token._contract = self._contract
        return token

    @property
    def address(self) -> str | None:
        """The checksummed address of the attached token, if any."""
        return None if self._contract is None else str(self._contract.address)

    def deploy(self, faucet_cap: int = 0) -> str:
        """Deploy the token (this account its owner and minter; ``faucet_cap`` 0: no faucet), attach, return it."""
        check_amount(faucet_cap)
        self._contract, _ = self.sender.deploy("euro_token", (faucet_cap,), TOKEN_DEPLOY_GAS)
        return str(self._contract.address)

    def attach(self, address: str) -> None:
        """Use the euro token at ``address``; ``ChainError`` if there is no code there."""
        self._contract = self.sender.contract("euro_token", address)

    def decimals(self) -> int:
        return int(self._read("decimals"))

    def faucet_cap(self) -> int:
        """The most one ``faucet`` call mints; 0 when the token has no faucet."""
        return int(self._read("faucet_cap"))

    def total_supply(self) -> int:
        return int(self._read("totalSupply"))

    def balance_of(self, account: Address) -> int:
        return int(self._read("balanceOf", account.checksum))

    def is_minter(self, account: Address) -> bool:
        return bool(self._read("is_minter", account.checksum))

    def mint(self, to: Address, amount: int) -> ChainReceipt:
        """Create ``amount`` for ``to``; only a minter may."""
        return self._send("mint", to.checksum, check_amount(amount))

    def faucet(self, amount: int) -> ChainReceipt:
        """Demo mode only: mint ``amount`` (at most the faucet cap) to this account."""
        return self._send("faucet", check_amount(amount))

    def transfer(self, to: Address, amount: int) -> ChainReceipt:
        """Move ``amount`` from this account to ``to``."""
        return self._send("transfer", to.checksum, check_amount(amount))

    def burn(self, amount: int) -> ChainReceipt:
        """Destroy ``amount`` of this account's tokens."""
        return self._send("burn", check_amount(amount))

    def set_minter(self, account: Address, allowed: bool) -> ChainReceipt:
        """Grant or revoke ``account``'s minter role; only the owner may, and not for itself."""
        return self._send("set_minter", account.checksum, allowed)

    def _read(self, name: str, *args: Any) -> Any:
        with self.sender.rpc():
            return self._deployed.functions[name](*args).call()

    def _send(self, name: str, *args: Any) -> ChainReceipt:
        return self.sender.send(self._deployed.functions[name](*args), TOKEN_CALL_GAS, name)

    @property
    def _deployed(self) -> Contract:
        if self._contract is None:
            raise ChainError("no euro token: deploy() or attach() first")
        return self._contract
