"""The chain node as the dashboard's health panel reads it: head block, the settler's gas money, the last epoch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from web3 import Web3

from sensors.address import Address
from settlement.chain.clearing import Web3Clearing
from settlement.chain.sender import Sender
from settlement.errors import ChainError


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One look at the node: its chain id and latest block, the settler's balance in wei of the native coin (for
    gas; None without a settler) and the last epoch the clearing contract holds (None without a contract)."""

    chain_id: int
    latest_block: int
    settler: str | None
    settler_balance_wei: int | None
    contract_last_epoch: int | None


class NodeProbe:
    """Reads a ``NodeReading`` over the project's chain adapter (a read-only ``Sender``), connecting on first use
    and again after a failure. Calling it raises ``ChainUnavailable`` when the node is away and ``ChainError`` when it
    refuses; ``dashboard.chain_status.LiveChainStatus`` turns those into an unreachable status."""

    def __init__(
        self,
        url: str | None,
        settler: str | None = None,
        contract: str | None = None,
        timeout: float = 5.0,
        *,
        sender: Sender | None = None,
    ) -> None:
        if settler is not None and not Web3.is_address(settler):
            raise ChainError(f"not an address: {settler!r}")
        self.url = url
        self.settler = Web3.to_checksum_address(settler) if settler else None
        self.contract = contract
        self.timeout = timeout
        self._sender = sender
        self._clearing: Web3Clearing | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, sender: Sender, settler: str | None = None, contract: str | None = None) -> NodeProbe:
        """A probe on an existing connection (the embedded chain's ``Sender``, shared with the aggregator)."""
        return cls(sender.url, settler, contract, sender.timeout, sender=sender)

    def __call__(self) -> NodeReading:
        with self._lock:
            sender = self._connect()
            try:
                return self._read(sender)
            except Exception:
                if self.url is not None and sender is self._sender:
                    self._sender, self._clearing = None, None  # connect afresh next time
                raise

    def _connect(self) -> Sender:
        if self._sender is None:
            self._sender = Sender.connect(self.url, timeout=self.timeout, read_only=True)
        return self._sender

    def _read(self, sender: Sender) -> NodeReading:
        with sender.rpc():
            chain_id = int(sender.w3.eth.chain_id)
            head = int(sender.w3.eth.block_number)
            balance = int(sender.w3.eth.get_balance(self.settler)) if self.settler else None
        last = self._last_epoch(sender)
        return NodeReading(chain_id, head, self.settler, balance, last)

    def claimed(self, owners: Sequence[str]) -> dict[str, int]:
        """What each owner has claimed so far, from the clearing contract's ``claimed(account)``; {} without one."""
        with self._lock:
            sender = self._connect()
            clearing = self._clearing_of(sender)
            if clearing is None:
                return {}
            return {owner: clearing.claimed(Address.parse(owner)) for owner in owners}

    def _last_epoch(self, sender: Sender) -> int | None:
        clearing = self._clearing_of(sender)
        return None if clearing is None else clearing.last_epoch()

    def _clearing_of(self, sender: Sender) -> Web3Clearing | None:
        if not self.contract:
            return None
        if self._clearing is None:
            clearing = Web3Clearing(sender)
            clearing.attach(self.contract)
            self._clearing = clearing
        return self._clearing
