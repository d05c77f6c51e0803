"""One account on one node: connection, local signing and nonce, fees, receipts, error translation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import TxReceipt

from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from settlement.ports import (
    ChainReceipt,
)

EMBEDDED_URL = "embedded://py-evm"
DEPLOY_GAS = 3_000_000
# Measured on anvil: the first epoch ever ~186k with one owner; a later one ~128k plus ~23.4k per owner credited
# for the first time (~5.8k per owner credited before), so 256 new owners take ~6.0M; see settle_gas.
SETTLE_BASE_GAS = 200_000
SETTLE_GAS_PER_PAYOUT = 30_000
OWNERSHIP_GAS = 100_000
# Measured on anvil: deploying the euro token ~1.55M; a mint to a new holder ~70.3k, to a holder ~36.1k, a faucet
# call to a new holder ~50.7k, a transfer ~34.1k (~51.2k to a new holder), a burn ~33.5k (test_euro_token.py).
TOKEN_DEPLOY_GAS = 3_000_000
TOKEN_CALL_GAS = 120_000
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")


def settle_gas(payouts: int) -> int:
    """The gas limit sent with a commit of ``payouts`` owners."""
    return SETTLE_BASE_GAS + SETTLE_GAS_PER_PAYOUT * payouts


def short_error(exc: BaseException) -> str:
    """One line about a connection failure, without the urllib3 retry chatter."""
    text = str(exc)
    found = _ERRNO.search(text)
    line = found.group(0).strip() if found else (text.splitlines() or [type(exc).__name__])[0]
    return line[:160]


def revert_errors() -> tuple[type[Exception], ...]:
    """What a reverting ``eth_call`` raises: web3's error, or eth-tester's on the embedded chain."""
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # eth-tester is only needed for the embedded chain
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


class Sender:
    """One account on one node (HTTP JSON-RPC, or an embedded py-evm chain) and the transactions it sends.

    Transactions come from ``private_key``'s account, signed here with a local nonce counter, or, without a key,
    from the node's first unlocked account. Gas and fees are always set explicitly.
    """

    def __init__(self, w3: Web3, url: str, account: str, signer: LocalAccount | None, timeout: float) -> None:
        self.w3 = w3
        self.url = url
        self.account = account
        self.timeout = timeout
        self._signer = signer
        self._nonce: int | None = None

    @classmethod
    def connect(
        cls, url: str | None, private_key: str | None = None, timeout: float = 30, *, read_only: bool = False
    ) -> Sender:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain); ``read_only``: for calls only,
        with no account (a public node has none unlocked).

        Raises ``ChainUnavailable`` naming ``url`` when the node cannot be reached.
        """
        if url is None:
            w3 = Web3(EthereumTesterProvider())
            name = EMBEDDED_URL
        else:
            w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
            name = url
        sender = cls(w3, name, "", None, timeout)
        try:
            with sender.rpc():
                w3.eth.chain_id  # noqa: B018 - the first request proves the node answers
        except ChainError as exc:
            raise ChainUnavailable(name, f"not an Ethereum JSON-RPC node: {exc}") from None
        except (Web3Exception, ValueError) as exc:
            raise ChainUnavailable(name, f"not an Ethereum JSON-RPC node: {short_error(exc)}") from None
        return sender if read_only else sender.with_key(private_key)

    def with_key(self, private_key: str | None) -> Sender:
        """The same node, sending from ``private_key``'s account (``None``: its first unlocked account)."""
        signer: LocalAccount | None = None
        if private_key is not None:
            try:
                signer = Account.from_key(private_key)
            except (ValueError, TypeError) as exc:
                raise ChainError(f"not a private key: {type(exc).__name__}") from None
            account = signer.address
        else:
            with self.rpc():
                accounts = self.w3.eth.accounts
            if not accounts:
                raise ChainError(f"the node at {self.url} has no unlocked account; give a private key")
            account = Web3.to_checksum_address(accounts[0])
        return Sender(self.w3, self.url, account, signer, self.timeout)

    def chain_id(self) -> int:
        with self.rpc():
            return int(self.w3.eth.chain_id)

    def deploy(self, name: str, args: tuple[Any, ...], gas: int) -> tuple[Contract, int]:
        """Deploy contract ``name`` with constructor ``args``; the contract and its deployment block."""
        abi, bytecode = compiled(name)
        factory = self.w3.eth.contract(abi=list(abi), bytecode=bytecode)
        receipt = self.transact(factory.constructor(*args), gas)
        if receipt["status"] != 1 or receipt["contractAddress"] is None:
            raise ChainError(f"deploying the {name} contract failed in {receipt['transactionHash'].to_0x_hex()}")
        address = Web3.to_checksum_address(receipt["contractAddress"])
        return self.w3.eth.contract(address=address, abi=list(abi)), int(receipt["blockNumber"])

    def contract(self, name: str, address: str) -> Contract:
        """Contract ``name`` at ``address``; ``ChainError`` if ``address`` is none or holds no code."""
        if not Web3.is_address(address):
            raise ChainError(f"not an address: {address!r}")
        checksummed = Web3.to_checksum_address(address)
        with self.rpc():
            code = self.w3.eth.get_code(checksummed)
        if not code:
            raise ChainError(f"no {name} contract at {checksummed} on {self.url}")
        return self.w3.eth.contract(address=checksummed, abi=list(compiled(name).abi))

    def send(self, call: ContractFunction, gas: int, what: str) -> ChainReceipt:
        """Send ``call``, wait for it to be mined; ``ChainError`` ``"<what> reverted: <reason>"`` if it reverts."""
        receipt = self.transact(call, gas)
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted: {self.revert_reason(call, receipt['blockNumber'])}")
        return receipt_of(receipt)

    @contextmanager
    def rpc(self) -> Iterator[None]:
        """Translate transport failures into ``ChainUnavailable`` and node refusals into ``ChainError``."""
        try:
            yield
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(self.url, short_error(exc)) from None
        except TimeExhausted as exc:
            raise ChainError(f"not mined within {self.timeout:g}s on {self.url}: {exc}") from None
        except Web3RPCError as exc:
            raise ChainError(f"the node at {self.url} refused: {exc}") from None

    def transact(self, call: ContractFunction | ContractConstructor, gas: int) -> Any:
        """Send ``call`` from this account and wait for its receipt (status 0 included)."""
        with self.rpc():
            params: dict[str, Any] = {"from": self.account, "gas": gas, **self._fees()}
            if self._signer is None:
                tx_hash = call.transact(params)  # type: ignore[arg-type]
            else:
                tx_hash = self._send_signed(call, params)
            return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout)

    def revert_reason(self, call: ContractFunction, block_number: int) -> str:
        """Why ``call`` reverted: replay it on the state it was mined on."""
        try:
            with self.rpc():
                call.call({"from": self.account}, block_identifier=block_number - 1)
        except revert_errors() as exc:
            text = str(exc.args[0] if exc.args else exc)
            return text.removeprefix("execution reverted: ") or "no reason given"
        return "reverted (the replay did not revert; the state has moved on)"

    def top_up(self, to: str, wei: int) -> bool:
        """Send ``to`` enough ether for its own transactions: ``wei`` unless it holds half of that already (a
        demo rider's gas). Whether it sent."""
        with self.rpc():
            if int(self.w3.eth.get_balance(Web3.to_checksum_address(to))) >= wei // 2:
                return False
            params: dict[str, Any] = {"from": self.account, "to": Web3.to_checksum_address(to), "value": wei,
                                      "gas": 21_000, **self._fees()}  # fmt: skip
            if self._signer is None:
                tx_hash = self.w3.eth.send_transaction(params)  # type: ignore[arg-type]
            else:
                if self._nonce is None:
                    self._nonce = int(self.w3.eth.get_transaction_count(self._signer.address, "pending"))
                params.update(nonce=self._nonce, chainId=int(self.w3.eth.chain_id))
                tx_hash = self.w3.eth.send_raw_transaction(self._signer.sign_transaction(params).raw_transaction)
                self._nonce += 1
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout)
        if receipt["status"] != 1:
            raise ChainError(f"sending ether to {to} failed in {receipt['transactionHash'].to_0x_hex()}")
        return True

    def _fees(self) -> dict[str, int]:
        """EIP-1559 fees (max = 2 x base fee + tip) where the chain has a base fee, else a gas price."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        tip = int(self.w3.eth.max_priority_fee)
        return {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}

    def _send_signed(self, call: ContractFunction | ContractConstructor, params: dict[str, Any]) -> Any:
        assert self._signer is not None
        if self._nonce is None:
            self._nonce = int(self.w3.eth.get_transaction_count(self._signer.address, "pending"))
        params.update(nonce=self._nonce, chainId=int(self.w3.eth.chain_id))
        raw = self._signer.sign_transaction(call.build_transaction(params)).raw_transaction  # type: ignore[arg-type]
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except (Web3Exception, OSError):
            self._nonce = None  # re-read from the node next time
            raise
        self._nonce += 1
        return tx_hash


def receipt_of(receipt: TxReceipt) -> ChainReceipt:
    return ChainReceipt(
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        block_hash=receipt["blockHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )
