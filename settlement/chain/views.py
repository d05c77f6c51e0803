"""Many calls to one contract's views in few round trips: ``eth_call``s in JSON-RPC batches, encoded here.

web3's own batches (``w3.batch_requests()``) build every call through its contract-function, validation and
formatting layers: 2 to 5 ms of CPU a call on this machine, many times what anvil takes to answer it (600 calls in
1 to 4 s, against 0.1 s for the same requests sent as plain batches). So each view's selector and types are looked
up once per read, its arguments and results go through the node's ABI codec, and the requests go out with the
provider's ``make_batch_request``. A provider that cannot batch (the embedded py-evm chain) gets the calls one at a
time through web3, as every other read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_utils import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from web3.contract import Contract
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint

from settlement.chain.sender import Sender
from settlement.errors import ChainError

BATCH_CALLS = 250
"""Calls per JSON-RPC batch: geth takes up to 1,000 in one, anvil more; hosted nodes often fewer."""

Call = tuple[str, tuple[Any, ...]]
"""A view's name and its arguments."""


def read_views(sender: Sender, contract: Contract, calls: Sequence[Call], block: int) -> list[Any]:
    """What each of ``calls`` to ``contract``'s views returns at ``block``, in order: a view of one value gives that
    value, of several their tuple. ``ChainUnavailable`` if the node cannot be reached; ``ChainError`` if it refuses
    a call or a whole batch, or answers what the view's types cannot decode."""
    provider = sender.w3.provider
    if not calls:
        return []
    if not isinstance(provider, JSONBaseProvider):
        with sender.rpc():
            return [contract.functions[name](*args).call(block_identifier=block) for name, args in calls]
    views = {name: _View.of(contract, name) for name in {name for name, _ in calls}}
    at = hex(block)
    requests = [
        (RPCEndpoint("eth_call"), [{"to": contract.address, "data": views[name].encode(sender, args)}, at])
        for name, args in calls
    ]
    answers: list[Any] = []
    with sender.rpc():
        for start in range(0, len(requests), BATCH_CALLS):
            chunk = requests[start : start + BATCH_CALLS]
            answered = provider.make_batch_request(chunk)  # sorted by request id, as sent
            if not isinstance(answered, list) or len(answered) != len(chunk):
                error = answered.get("error") if isinstance(answered, dict) else f"{len(answered)} answers"
                raise ChainError(f"the node at {sender.url} refused a batch of {len(chunk)} calls: {error}")
            answers += answered
    return [views[name].decode(sender, answer) for (name, _), answer in zip(calls, answers, strict=True)]


@dataclass(frozen=True, slots=True)
class _View:
    """One view of a contract: its name, selector and the types of its arguments and results."""

    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, contract: Contract, name: str) -> _View:
        for entry in contract.abi:
            if entry.get("type") == "function" and entry.get("name") == name:
                inputs, outputs = get_abi_input_types(entry), get_abi_output_types(entry)
                selector = function_abi_to_4byte_selector(entry)
                return cls(name, selector, tuple(inputs), tuple(outputs))
        raise ChainError(f"the contract at {contract.address} has no view {name!r}")

    def encode(self, sender: Sender, args: tuple[Any, ...]) -> str:
        return "0x" + (self.selector + sender.w3.codec.encode(self.inputs, args)).hex()

    def decode(self, sender: Sender, answer: dict[str, Any]) -> Any:
        if "result" not in answer:
            raise ChainError(f"the node at {sender.url} refused {self.name}: {answer.get('error')}")
        try:
            values = sender.w3.codec.decode(self.outputs, bytes.fromhex(str(answer["result"]).removeprefix("0x")))
        except (DecodingError, ValueError) as exc:
            raise ChainError(f"{self.name} on {sender.url} answered what is not its result: {exc}") from None
        return values[0] if len(values) == 1 else tuple(values)
