"""One account on one node: connection, local signing and nonce, fees, receipts, error translation."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_abi import abi
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import CallTrace, TxReceipt

from settlement.chain.nonces import Fees, NonceManager, NonceTaken, NotMined, SendPolicy, send_until_mined
from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from settlement.ports import (
    ChainReceipt,
)

EMBEDDED_URL = "embedded://py-evm"
OWNERSHIP_GAS = 100_000
# Measured on anvil: deploying the euro token ~1.55M; a mint to a new holder ~70.3k, to a holder ~36.1k, a faucet
# call to a new holder ~50.7k, a transfer ~34.1k (~51.2k to a new holder), a burn ~33.5k (test_euro_token.py).
TOKEN_DEPLOY_GAS = 3_000_000
TOKEN_CALL_GAS = 120_000
POLL_SECONDS, MAX_POLL_SECONDS = 0.05, 1.0  # a send asks for its receipt after 0.05 s, then twice as long up to 1 s
# What nodes say when a nonce is used (geth, anvil, eth-tester) or the very transaction is already in the pool.
_NONCE_TAKEN = ("nonce too low", "replacement transaction underpriced", "nonce too small", "invalid nonce")
_ALREADY_KNOWN = ("already known", "already imported", "known transaction")
_REVERTED = "execution reverted"
_NO_DATA = "b''"  # how eth-tester words a revert without data
_ERROR_STRING = bytes.fromhex("08c379a0")  # the selector of Error(string), which a revert with a reason returns
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")


def short_error(exc: BaseException) -> str:
    """One line about a connection failure, without the urllib3 retry chatter."""
    text = str(exc)
    found = _ERRNO.search(text)
    line = found.group(0).strip() if found else (text.splitlines() or [type(exc).__name__])[0]
    return line[:160]


def failure_text(error: str, output: bytes, reason: str | None = None) -> str:
    """What stopped a call, from a node's ``error`` (e.g. "execution reverted", "out of gas"), its revert data
    ``output`` and the ``reason`` the node decoded, if any: the ``Error(string)`` text, else the node's reason."""
    if output[:4] == _ERROR_STRING:
        try:
            return str(abi.decode(["string"], output[4:])[0]) or "no reason given"
        except DecodingError:
            pass
    if reason:
        return reason
    if output:
        return f"{error} with data 0x{output.hex()}"
    return "no reason given" if error.startswith(_REVERTED) else error


def rpc_message(exc: Web3RPCError) -> str:
    """The node's own message in a JSON-RPC error."""
    response = exc.rpc_response or {}
    error = response.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return short_error(exc)


def revert_errors() -> tuple[type[Exception], ...]:
    """What a reverting ``eth_call`` raises: web3's error, or eth-tester's on the embedded chain."""
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:  # eth-tester is only needed for the embedded chain
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


class Sender:
    """One account on one node (HTTP JSON-RPC, or an embedded py-evm chain) and the transactions it sends.

    Transactions come from ``private_key``'s account, signed here, or, without a key, from the node's first
    unlocked account; either way with this sender's nonce counter (``settlement.chain.nonces``, shared by every
    binding on this sender and by ``with_key`` of the same account). Gas and fees are always set explicitly.
    The sender is also the ``Blocks`` port of ``settlement.chain.finality`` (``head``, ``block_hash``, ``receipt``).
    """

    def __init__(
        self,
        w3: Web3,
        url: str,
        account: str,
        signer: LocalAccount | None,
        timeout: float,
        *,
        nonces: NonceManager | None = None,
        stuck_after: float | None = None,
    ) -> None:
        self.w3 = w3
        self.url = url
        self.account = account
        self.timeout = timeout
        self.nonces = NonceManager() if nonces is None else nonces  # this account's nonce counter, shared
        # a transaction not mined after this many seconds goes again with higher fees (default: a third of timeout)
        self.stuck_after = timeout / 3 if stuck_after is None else stuck_after
        self.clock: Callable[[], float] = time.monotonic  # tests may put a fake clock and sleep here
        self.sleep: Callable[[float], None] = time.sleep
        self._signer = signer
        self._chain_id: int | None = None

    @classmethod
    def connect(
        cls,
        url: str | None,
        private_key: str | None = None,
        timeout: float = 30,
        *,
        read_only: bool = False,
        stuck_after: float | None = None,
    ) -> Sender:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain); ``read_only``: for calls only,
        with no account (a public node has none unlocked). A send waits at most ``timeout`` seconds for its
        receipt (each request too), sending its transaction again with higher fees every ``stuck_after`` seconds
        (default: a third of ``timeout``).

        Raises ``ChainUnavailable`` naming ``url`` when the node cannot be reached.
        """
        if url is None:
            w3 = Web3(EthereumTesterProvider())
            name = EMBEDDED_URL
        else:
            w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
            name = url
        sender = cls(w3, name, "", None, timeout, stuck_after=stuck_after)
        try:
            with sender.rpc():
                w3.eth.chain_id  # noqa: B018 - the first request proves the node answers
        except ChainError as exc:
            raise ChainUnavailable(name, f"not an Ethereum JSON-RPC node: {exc}") from None
        except (Web3Exception, ValueError) as exc:
            raise ChainUnavailable(name, f"not an Ethereum JSON-RPC node: {short_error(exc)}") from None
        return sender if read_only else sender.with_key(private_key)

    def with_key(self, private_key: str | None) -> Sender:
        """The same node, sending from ``private_key``'s account (``None``: its first unlocked account); the same
        nonce counter if that is this sender's account."""
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
        shared = self.nonces if account == self.account else None  # one account, one counter
        return Sender(self.w3, self.url, account, signer, self.timeout, nonces=shared, stuck_after=self.stuck_after)

    def chain_id(self) -> int:
        if self._chain_id is None:
            with self.rpc():
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

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
            raise ChainError(f"{what} reverted: {self.revert_reason(receipt['transactionHash'].to_0x_hex())}")
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
        """Send ``call`` from this account and wait for its receipt (status 0 included).

        The nonce and fee rules are ``settlement.chain.nonces``': a dropped transaction or a nonce taken by another
        sender re-syncs with the node, a stuck one is replaced with higher fees, and no call waits longer than
        ``timeout`` (then ``ChainError`` "not mined within").
        """
        policy = SendPolicy(self.timeout, self.stuck_after, POLL_SECONDS, MAX_POLL_SECONDS)
        try:
            with self.rpc():
                return send_until_mined(self, self.nonces, _Call(call, gas), policy, self.clock, self.sleep)
        except NotMined as exc:
            raise NotMined(f"{exc} on {self.url}") from None

    def revert_reason(self, tx_hash: str) -> str:
        """Why the mined transaction ``tx_hash`` reverted: its revert reason, or what else stopped it.

        Where the node traces transactions (anvil; geth with its ``debug`` API), the very transaction's own
        outcome, from its trace. Elsewhere (py-evm has no tracer, public nodes seldom offer one) the transaction
        is replayed with ``eth_call`` on the state its block ends with, so with that block's number and time: a
        reverted transaction changes nothing but its sender's nonce and ether, so the replay is exact when the
        transaction is the last one of its block, as on a chain that mines each transaction in a block of its
        own (the embedded py-evm chain, anvil by default); otherwise the replay sees the block's later
        transactions too, and may give another reason or none.
        """
        with self.rpc():
            traced = self._traced_reason(tx_hash)
            return self._replayed_reason(tx_hash) if traced is None else traced

    def _traced_reason(self, tx_hash: str) -> str | None:
        """The reason in the node's call trace of ``tx_hash``; None if the node traces nothing or its trace shows
        no failure (the transaction is no longer in that block)."""
        try:
            found = self.w3.geth.debug.trace_transaction(tx_hash, {"tracer": "callTracer"})
        except Web3RPCError:  # no debug API (py-evm, most public nodes), or the node cannot trace that far back
            return None
        trace = cast(CallTrace, found)  # the call tracer's form
        error = trace.get("error")
        if not error:
            return None
        return failure_text(error, bytes(trace.get("output") or b""), trace.get("revertReason"))

    def _replayed_reason(self, tx_hash: str) -> str:
        """The reason ``eth_call`` gives for the transaction ``tx_hash`` replayed at the end of its block."""
        tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        replay: dict[str, Any] = {"from": tx["from"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
        if tx.get("to") is not None:
            replay["to"] = tx["to"]
        try:
            self.w3.eth.call(replay, block_identifier=tx["blockNumber"])  # type: ignore[arg-type]
        except revert_errors() as exc:
            text = str(exc.args[0] if exc.args else exc)
            reason = text.removeprefix(_REVERTED).removeprefix(":").strip()
            data = getattr(exc, "data", None)  # web3's error carries the revert data, eth-tester's does not
            output = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
            return failure_text(text, output, None if reason == _NO_DATA else reason)
        except Web3RPCError as exc:  # anvil refuses an out-of-gas call, for one
            return f"unknown (the replay failed: {rpc_message(exc)})"
        return "reverted (its replay at the end of its block did not revert)"

    def top_up(self, to: str, wei: int) -> bool:
        """Send ``to`` enough ether for its own transactions: ``wei`` unless it holds half of that already (a
        demo rider's gas); with this sender's nonce counter. Whether it sent."""
        address = Web3.to_checksum_address(to)
        with self.rpc():
            if int(self.w3.eth.get_balance(address)) >= wei // 2:
                return False
        policy = SendPolicy(self.timeout, self.stuck_after, POLL_SECONDS, MAX_POLL_SECONDS)
        try:
            with self.rpc():
                receipt = send_until_mined(self, self.nonces, _Transfer(address, wei), policy, self.clock, self.sleep)
        except NotMined as exc:
            raise NotMined(f"{exc} on {self.url}") from None
        if receipt["status"] != 1:
            raise ChainError(f"sending ether to {to} failed in {receipt['transactionHash'].to_0x_hex()}")
        return True

    # The ``AccountNode`` port of ``settlement.chain.nonces`` (called inside ``rpc()``).

    def pending_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.account, "pending"))  # type: ignore[arg-type]

    def mined_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.account, "latest"))  # type: ignore[arg-type]

    def known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def fees(self) -> Fees:
        """EIP-1559 fees (max = 2 x base fee + tip) where the chain has a base fee, else a gas price."""
        base = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base is None:
            return Fees(int(self.w3.eth.gas_price))
        tip = int(self.w3.eth.max_priority_fee)
        return Fees(2 * int(base) + tip, tip)

    def submit(self, tx: Any, nonce: int, fees: Fees) -> str:
        """Sign (or have the node sign, without a key) and send ``tx``; ``NonceTaken`` if the node refuses the
        nonce."""
        assert isinstance(tx, _Call | _Transfer)
        params: dict[str, Any] = {"from": self.account, "gas": tx.gas, "nonce": nonce, **fees.params()}
        if isinstance(tx, _Transfer):
            params.update(to=tx.to, value=tx.wei)
        signed = None
        try:
            if self._signer is None:
                if isinstance(tx, _Transfer):
                    return str(self.w3.eth.send_transaction(params).to_0x_hex())  # type: ignore[arg-type]
                return str(tx.call.transact(params).to_0x_hex())  # type: ignore[arg-type]
            params["chainId"] = self.chain_id()
            built = params if isinstance(tx, _Transfer) else tx.call.build_transaction(params)  # type: ignore[arg-type]
            signed = self._signer.sign_transaction(built)  # type: ignore[arg-type]
            return str(self.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex())
        except (Web3RPCError, ValueError) as exc:
            text = str(exc).lower()
            if signed is not None and any(known in text for known in _ALREADY_KNOWN):
                return str(signed.hash.to_0x_hex())  # the very same transaction: it is in the pool
            if any(taken in text for taken in _NONCE_TAKEN + _ALREADY_KNOWN):
                raise NonceTaken(f"the node at {self.url} refused nonce {nonce}: {short_error(exc)}") from None
            raise

    def mined(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    # The ``Blocks`` port of ``settlement.chain.finality``.

    def head(self) -> int:
        """The number of the node's latest block."""
        with self.rpc():
            return int(self.w3.eth.block_number)

    def block_hash(self, number: int) -> str | None:
        """The 0x hash of the node's block at ``number``, None above its head."""
        with self.rpc():
            try:
                return self.w3.eth.get_block(number)["hash"].to_0x_hex()
            except BlockNotFound:
                return None

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        """The transaction's receipt as the node holds it now, None while it is in no block."""
        with self.rpc():
            found = self.mined(tx_hash)
        return None if found is None else receipt_of(found)


@dataclass(frozen=True, slots=True)
class _Call:
    """A transaction prepared for ``submit``: the call and its gas limit; nonce and fees come at each try."""

    call: ContractFunction | ContractConstructor
    gas: int


@dataclass(frozen=True, slots=True)
class _Transfer:
    """Ether sent to an account (a demo rider's gas money), for ``submit``."""

    to: str
    wei: int
    gas: int = 21_000


def receipt_of(receipt: TxReceipt) -> ChainReceipt:
    return ChainReceipt(
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        block_hash=receipt["blockHash"].to_0x_hex(),
        gas_used=int(receipt["gasUsed"]),
    )
