"""The chain adapter: the settlement and euro token contracts through web3 (the only module importing web3).

``Sender`` is one account on one node (connection, local signing and nonce, fees, receipts, error translation);
``Web3Chain`` and ``Web3Token`` are the contracts' calls on top of it. A chain and its ``token()`` share one
sender, so one account never runs two nonce counters.
"""

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

from sensors.address import Address
from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from settlement.ports import (
    MAX_OWNERS_PER_EPOCH,
    ROOT_BYTES,
    ChainReceipt,
    EpochCommit,
    OnChainEpoch,
    check_amount,
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


def _short(exc: BaseException) -> str:
    """One line about a connection failure, without the urllib3 retry chatter."""
    text = str(exc)
    found = _ERRNO.search(text)
    line = found.group(0).strip() if found else (text.splitlines() or [type(exc).__name__])[0]
    return line[:160]


def _revert_errors() -> tuple[type[Exception], ...]:
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
    def connect(cls, url: str | None, private_key: str | None = None, timeout: float = 30) -> Sender:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain).

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
            raise ChainUnavailable(name, f"not an Ethereum JSON-RPC node: {_short(exc)}") from None
        return sender.with_key(private_key)

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
        return _receipt(receipt)

    @contextmanager
    def rpc(self) -> Iterator[None]:
        """Translate transport failures into ``ChainUnavailable`` and node refusals into ``ChainError``."""
        try:
            yield
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(self.url, _short(exc)) from None
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
        except _revert_errors() as exc:
            text = str(exc.args[0] if exc.args else exc)
            return text.removeprefix("execution reverted: ") or "no reason given"
        return "reverted (the replay did not revert; the state has moved on)"

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


class Web3Chain:
    """The ``Chain`` port on a node: the settlement contract's calls, sent by a ``Sender``."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.url = sender.url
        self.account = sender.account  # the checksummed address transactions are sent from
        self.timeout = sender.timeout
        self._contract: Contract | None = None
        self._from_block = 0  # where to look for the contract's events: its deployment block when known

    @classmethod
    def connect(cls, url: str | None, private_key: str | None = None, timeout: float = 30) -> Web3Chain:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain).

        Raises ``ChainUnavailable`` naming ``url`` when the node cannot be reached.
        """
        return cls(Sender.connect(url, private_key, timeout))

    def with_key(self, private_key: str | None) -> Web3Chain:
        """The same node and contract, sending from ``private_key``'s account (``None``: first unlocked)."""
        chain = Web3Chain(self.sender.with_key(private_key))
        chain._contract = self._contract
        chain._from_block = self._from_block
        return chain

    def token(self) -> Web3Token:
        """The euro token's calls from this chain's account, sharing its nonce counter (deploy or attach it)."""
        return Web3Token(self.sender)

    @property
    def address(self) -> str | None:
        """The checksummed address of the attached contract, if any."""
        return None if self._contract is None else str(self._contract.address)

    def chain_id(self) -> int:
        return self.sender.chain_id()

    def deploy(self) -> str:
        """Deploy the settlement contract (owned by this account), attach to it and return its address."""
        self._contract, self._from_block = self.sender.deploy("settlement", (), DEPLOY_GAS)
        return str(self._contract.address)

    def attach(self, address: str) -> None:
        """Use the settlement contract at ``address``; ``ChainError`` if there is no code there."""
        self._contract = self.sender.contract("settlement", address)
        self._from_block = 0

    def last_epoch(self) -> int:
        with self.sender.rpc():
            return int(self._deployed.functions.last_epoch().call())

    def settle(self, commit: EpochCommit) -> ChainReceipt:
        """Send ``commit``, wait for it to be mined and return its receipt; ``ChainError`` if it reverts.

        Only what could not be encoded (roots of another length, too many owners, a negative amount) and an epoch
        out of sequence are refused before sending; the contract enforces its other rules (``check_commit``).
        """
        for name, root in (("trips", commit.trips_root), ("registry", commit.registry_root)):
            if len(root) != ROOT_BYTES:
                raise ChainError(f"{name} root must be {ROOT_BYTES} bytes, not {len(root)}")
        if len(commit.payouts) > MAX_OWNERS_PER_EPOCH:
            raise ChainError(f"{len(commit.payouts)} payouts; the contract takes at most {MAX_OWNERS_PER_EPOCH}")
        if any(amount < 0 for _, amount in commit.payouts):
            raise ChainError(f"epoch {commit.epoch_id} has a negative payout")
        last = self.last_epoch()
        if commit.epoch_id != last + 1:
            raise ChainError(f"epoch {commit.epoch_id} is out of sequence: the chain is at epoch {last}")
        owners = [owner.checksum for owner, _ in commit.payouts]
        amounts = [amount for _, amount in commit.payouts]
        call = self._deployed.functions.settle_epoch(
            commit.epoch_id,
            commit.trips_root,
            commit.registry_root,
            commit.trip_count,
            commit.total_micro,
            owners,
            amounts,
        )
        return self.sender.send(call, settle_gas(len(owners)), f"epoch {commit.epoch_id}")

    def epoch(self, epoch_id: int) -> OnChainEpoch:
        """Epoch ``epoch_id`` as the contract holds it, registry root included; ``ChainError`` if not settled yet."""
        if not 1 <= epoch_id <= self.last_epoch():
            raise ChainError(f"epoch {epoch_id} is not settled on {self.url}")
        with self.sender.rpc():
            trips_root, registry_root, trip_count, total = self._deployed.functions.epochs(epoch_id).call()
        return OnChainEpoch(epoch_id, bytes(trips_root), int(trip_count), int(total), bytes(registry_root))

    def settlement_receipt(self, epoch_id: int) -> ChainReceipt:
        """The receipt of the transaction that settled ``epoch_id``, found by its ``EpochSettled`` event.

        Used after a crash between sending an epoch and recording it. ``ChainError`` if no such event exists.
        """
        with self.sender.rpc():
            logs = list(
                self._deployed.events.EpochSettled().get_logs(
                    argument_filters={"epoch_id": epoch_id}, from_block=self._from_block
                )
            )
            if not logs:
                raise ChainError(f"no settlement of epoch {epoch_id} in the contract's events on {self.url}")
            receipt = self.sender.w3.eth.get_transaction_receipt(logs[-1]["transactionHash"])
        return _receipt(receipt)

    def owed(self, owner: Address) -> int:
        """Micro-EUR credited to ``owner`` over all settled epochs."""
        with self.sender.rpc():
            return int(self._deployed.functions.owed(owner.checksum).call())

    def total_settled(self) -> int:
        """Micro-EUR settled over all epochs."""
        with self.sender.rpc():
            return int(self._deployed.functions.total_settled().call())

    def owner(self) -> Address:
        """The account that settles."""
        with self.sender.rpc():
            return Address.parse(self._deployed.functions.owner().call())

    def transfer_ownership(self, new_owner: Address) -> ChainReceipt:
        """Offer the ownership to ``new_owner``; this account keeps it (and settles) until they accept."""
        call = self._deployed.functions.transfer_ownership(new_owner.checksum)
        return self.sender.send(call, OWNERSHIP_GAS, "transfer_ownership")

    def accept_ownership(self) -> ChainReceipt:
        """Take the ownership offered to this account."""
        return self.sender.send(self._deployed.functions.accept_ownership(), OWNERSHIP_GAS, "accept_ownership")

    @property
    def _deployed(self) -> Contract:
        if self._contract is None:
            raise ChainError("no settlement contract: deploy() or attach() first")
        return self._contract


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


def _receipt(receipt: TxReceipt) -> ChainReceipt:
    return ChainReceipt(
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        block_hash=receipt["blockHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )
