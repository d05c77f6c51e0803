"""The embedded chain's read side as Ethereum JSON-RPC: the methods a verifier, a wallet or a browser reads with.

``EmbeddedRpc`` answers a fixed set of read-only methods (see ``READ_METHODS``) on the embedded py-evm chain the
aggregator settles on, in the standard JSON-RPC encoding (quantities as ``0x`` hex, data as ``0x`` bytes), so that
``smartzone verify``, web3.py, ethers or a wallet can read it over the dashboard's ``/rpc`` endpoint. Nothing here
sends a transaction. Malformed parameters raise ``ValueError``; a reverting ``eth_call`` raises ``CallReverted``
(with the revert data); a call the chain refuses raises ``ChainError``. Requests are served one at a time; they
read committed blocks and states, which the aggregator's thread only ever adds to.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from eth_abi import encode as abi_encode
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3Exception
from web3.types import BlockIdentifier

from settlement.chain.sender import revert_errors
from settlement.errors import ChainError

MAX_LOG_BLOCKS = 2_000
"""Most blocks one ``eth_getLogs`` may span (a longer history is read page by page)."""
MAX_LOGS = 10_000
"""Most logs one ``eth_getLogs`` may return."""
CALL_GAS = 2_000_000
"""Gas of an ``eth_call`` that names none, and the most it may name: views cost far less."""
LOWEST_CONTRACT = 0x10000
"""Calls to addresses below this (the precompiles, and room for new ones) are refused: py-evm runs some of them in
Python (4.9M rounds of blake2f take it 48 s), and no contract of ours lives there."""
UNFUNDED = (
    "insufficient funds for gas: the embedded chain charges calls for gas; leave from out or name a funded account"
)
TAGS = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_BYTES_REPR = re.compile(r"""^b('[^']*'|"[^"]*")$""")
_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
_QUANTITY = re.compile(r"^0x(0|[1-9a-fA-F][0-9a-fA-F]{0,63})$")


class CallReverted(ChainError):
    """An ``eth_call`` reverted; ``data`` is its revert data as ``0x`` hex (``Error(string)`` for a reason)."""

    def __init__(self, reason: str, data: str) -> None:
        super().__init__(f"execution reverted: {reason}" if reason else "execution reverted")
        self.data = data


class EmbeddedRpc:
    """Read-only JSON-RPC methods over an embedded chain's ``Web3`` (``Sender.w3`` of ``Sender.connect(None)``)."""

    def __init__(self, w3: Web3, client: str = "SmartZone/embedded-py-evm (read-only)") -> None:
        self.w3 = w3
        self.client = client
        self._lock = threading.Lock()
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "web3_clientVersion": _bare(lambda: self.client),
            "net_version": _bare(lambda: str(self.w3.eth.chain_id)),
            "net_listening": _bare(lambda: True),
            "eth_chainId": _bare(lambda: self.w3.eth.chain_id),
            "eth_syncing": _bare(lambda: False),
            "eth_blockNumber": _bare(lambda: self.w3.eth.block_number),
            "eth_gasPrice": _bare(lambda: self.w3.eth.gas_price),
            "eth_getBalance": self._balance,
            "eth_getCode": self._code,
            "eth_getTransactionCount": self._nonce,
            "eth_call": self._call,
            "eth_getLogs": self._logs,
            "eth_getBlockByNumber": self._block_by_number,
            "eth_getBlockByHash": self._block_by_hash,
            "eth_getTransactionByHash": self._transaction,
            "eth_getTransactionReceipt": self._receipt,
        }

    @property
    def methods(self) -> frozenset[str]:
        """The names of the methods ``request`` answers."""
        return frozenset(self._methods)

    def request(self, method: str, params: list[Any]) -> Any:
        """The JSON result of ``method`` with positional ``params``; ``KeyError`` for a method not offered."""
        handler = self._methods[method]
        with self._lock:
            try:
                return to_json(handler(params))
            except revert_errors() as exc:
                raise _reverted(exc) from None
            except Web3Exception as exc:
                raise ChainError(str(exc)) from None
            except _tester_errors() as exc:  # eth-tester's refusals: an unknown block, a call it will not run
                if "cannot afford" in str(exc):
                    raise ChainError(UNFUNDED) from None
                raise ChainError(str(exc)) from None

    def _balance(self, params: list[Any]) -> int:
        _arity(params, 1, 2)
        return int(self.w3.eth.get_balance(address(params[0]), self._at(params, 1)))

    def _code(self, params: list[Any]) -> bytes:
        _arity(params, 1, 2)
        return bytes(self.w3.eth.get_code(address(params[0]), self._at(params, 1)))

    def _nonce(self, params: list[Any]) -> int:
        _arity(params, 1, 2)
        return int(self.w3.eth.get_transaction_count(address(params[0]), self._at(params, 1)))

    def _call(self, params: list[Any]) -> bytes:
        _arity(params, 1, 2)
        return bytes(self.w3.eth.call(call_object(params[0]), self._at(params, 1)))  # type: ignore[arg-type]

    def _logs(self, params: list[Any]) -> list[Any]:
        _arity(params, 1, 1)
        query = params[0]
        if not isinstance(query, Mapping):
            raise ValueError("the filter must be an object")
        unknown = set(query) - {"fromBlock", "toBlock", "address", "topics", "blockHash"}
        if unknown:
            raise ValueError(f"unknown filter field {sorted(unknown)[0]!r}")
        head = int(self.w3.eth.block_number)
        if "blockHash" in query:
            if "fromBlock" in query or "toBlock" in query:
                raise ValueError("blockHash excludes fromBlock and toBlock")
            found = self._found(lambda: self.w3.eth.get_block(block_hash(query["blockHash"])))
            if found is None:
                raise ValueError("unknown block hash")
            first = last = int(found["number"])
        else:
            first = _number(block_id(query.get("fromBlock", "latest")), head)
            last = min(_number(block_id(query.get("toBlock", "latest")), head), head)
        if first > last:
            return []
        if last - first + 1 > MAX_LOG_BLOCKS:
            raise ValueError(f"the block range spans {last - first + 1} blocks; at most {MAX_LOG_BLOCKS} per request")
        query_params: dict[str, Any] = {"fromBlock": first, "toBlock": last}
        if query.get("address") is not None:
            given = query["address"]
            query_params["address"] = [address(a) for a in given] if isinstance(given, list) else address(given)
        if query.get("topics") is not None:
            query_params["topics"] = topics(query["topics"])
        found_logs = list(self.w3.eth.get_logs(query_params))  # type: ignore[arg-type]
        if len(found_logs) > MAX_LOGS:
            raise ValueError(f"the query matches more than {MAX_LOGS} logs; ask for fewer blocks")
        return found_logs

    def _block_by_number(self, params: list[Any]) -> Any:
        _arity(params, 1, 2)
        full = _flag(params, 1)
        ident = block_id(params[0])
        return self._found(lambda: self.w3.eth.get_block(ident, full))

    def _block_by_hash(self, params: list[Any]) -> Any:
        _arity(params, 1, 2)
        full = _flag(params, 1)
        wanted = block_hash(params[0])
        return self._found(lambda: self.w3.eth.get_block(wanted, full))

    def _transaction(self, params: list[Any]) -> Any:
        _arity(params, 1, 1)
        wanted = block_hash(params[0])
        return self._found(lambda: self.w3.eth.get_transaction(wanted))

    def _receipt(self, params: list[Any]) -> Any:
        _arity(params, 1, 1)
        wanted = block_hash(params[0])
        return self._found(lambda: self.w3.eth.get_transaction_receipt(wanted))

    def _at(self, params: list[Any], index: int) -> BlockIdentifier:
        """The block a state read names (``latest`` when absent), checked to exist."""
        ident: BlockIdentifier = block_id(params[index]) if len(params) > index else "latest"
        if isinstance(ident, int) and ident > int(self.w3.eth.block_number):
            raise ValueError(f"block {ident} is not on the chain yet")
        return ident

    @staticmethod
    def _found(read: Callable[[], Any]) -> Any:
        """``read()``, or None (JSON null) when the block or transaction does not exist."""
        try:
            return read()
        except (BlockNotFound, TransactionNotFound):
            return None
        except _tester_errors():
            return None


def _tester_errors() -> tuple[type[Exception], ...]:
    """eth-tester's "no such block/transaction" and validation errors (eth-tester ships with the embedded chain)."""
    from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
    from eth_tester.exceptions import TransactionNotFound as TesterTransactionNotFound
    from eth_tester.exceptions import ValidationError as TesterValidationError
    from eth_utils.exceptions import ValidationError

    return (TesterBlockNotFound, TesterTransactionNotFound, TesterValidationError, ValidationError)


def _reverted(exc: Exception) -> CallReverted:
    """The revert as JSON-RPC tells it: the reason, and the revert data (eth-tester gives the decoded reason of an
    ``Error(string)``, else the raw bytes' repr)."""
    reason = str(exc.args[0] if exc.args else "").removeprefix("execution reverted: ")
    data = getattr(exc, "data", None)
    if isinstance(data, str) and _HEX.match(data):
        return CallReverted(reason, data)
    if _BYTES_REPR.match(reason):
        raw = ast.literal_eval(reason)
        return CallReverted("", "0x" + bytes(raw).hex())
    return CallReverted(reason, "0x" + (ERROR_SELECTOR + abi_encode(["string"], [reason])).hex() if reason else "0x")


def to_json(value: Any) -> Any:
    """``value`` in JSON-RPC's encoding: integers as hex quantities, bytes as ``0x`` hex, the rest as it is."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    raise TypeError(f"no JSON-RPC encoding for {type(value).__name__}")


def _bare(read: Callable[[], Any]) -> Callable[[list[Any]], Any]:
    """A handler of a method without parameters."""

    def handle(params: list[Any]) -> Any:
        _arity(params, 0, 0)
        return read()

    return handle


def _arity(params: list[Any], least: int, most: int) -> None:
    if not least <= len(params) <= most:
        wanted = f"{least}" if least == most else f"{least} to {most}"
        raise ValueError(f"expects {wanted} parameters, got {len(params)}")


def _flag(params: list[Any], index: int) -> bool:
    if len(params) <= index:
        return False
    if not isinstance(params[index], bool):
        raise ValueError("the second parameter must be true or false")
    return bool(params[index])


def _number(ident: BlockIdentifier, head: int) -> int:
    if isinstance(ident, int):
        return ident
    if ident == "earliest":
        return 0
    if isinstance(ident, str):
        return head
    raise ValueError("a block range needs numbers or tags")


def quantity(value: Any, what: str = "quantity") -> int:
    """A JSON-RPC quantity (``0x`` hex without leading zeros, below 2**256) as an integer."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"{what} must be a hex quantity such as 0x1a, got {_shown(value)}")
    return int(value, 16)


def data_bytes(value: Any, what: str = "data") -> bytes:
    if not isinstance(value, str) or not _HEX.match(value) or len(value) % 2:
        raise ValueError(f"{what} must be 0x-prefixed hex bytes, got {_shown(value)}")
    return bytes.fromhex(value[2:])


def address(value: Any) -> ChecksumAddress:
    """A 20-byte address (any case) as its checksummed form."""
    raw = data_bytes(value, "an address")
    if len(raw) != 20:
        raise ValueError(f"an address has 20 bytes, got {len(raw)}")
    return Web3.to_checksum_address(raw)


def block_hash(value: Any) -> HexBytes:
    raw = data_bytes(value, "a hash")
    if len(raw) != 32:
        raise ValueError(f"a hash has 32 bytes, got {len(raw)}")
    return HexBytes(raw)


def block_id(value: Any) -> BlockIdentifier:
    """A block parameter: a tag, a number, or an EIP-1898 object naming a number or a hash."""
    if isinstance(value, str) and value in TAGS:
        return cast(BlockIdentifier, value)
    if isinstance(value, Mapping):
        if set(value) == {"blockNumber"}:
            return quantity(value["blockNumber"], "blockNumber")
        if set(value) - {"requireCanonical"} == {"blockHash"}:
            return block_hash(value["blockHash"])
        raise ValueError("a block object names blockNumber or blockHash")
    return quantity(value, "a block number")


def topics(value: Any) -> list[Any]:
    if not isinstance(value, list) or len(value) > 4:
        raise ValueError("topics must be a list of at most 4 entries")
    parsed: list[Any] = []
    for entry in value:
        if entry is None:
            parsed.append(None)
        elif isinstance(entry, list):
            if len(entry) > 16:
                raise ValueError("at most 16 alternatives per topic")
            parsed.append([block_hash(t).to_0x_hex() for t in entry])
        else:
            parsed.append(block_hash(entry).to_0x_hex())
    return parsed


def call_object(value: Any) -> dict[str, Any]:
    """The transaction an ``eth_call`` runs: ``to`` required (no contract creation), gas at most ``CALL_GAS``."""
    if not isinstance(value, Mapping):
        raise ValueError("the call must be an object")
    if value.get("to") is None:
        raise ValueError("the call needs a to address (creating contracts is not offered)")
    if "data" in value and "input" in value and value["data"] != value["input"]:
        raise ValueError("data and input differ")
    call: dict[str, Any] = {"to": address(value["to"]), "gas": CALL_GAS}
    if int(call["to"], 16) < LOWEST_CONTRACT:
        raise ValueError("calls to precompiles are not offered")
    if value.get("from") is not None:
        call["from"] = address(value["from"])
    payload = value.get("input", value.get("data"))
    if payload is not None:
        call["data"] = "0x" + data_bytes(payload).hex()
    if value.get("gas") is not None:
        call["gas"] = min(quantity(value["gas"], "gas"), CALL_GAS)
    for name in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "value"):
        if value.get(name) is not None:
            call[name] = quantity(value[name], name)
    return call


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
