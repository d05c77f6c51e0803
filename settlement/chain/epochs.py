"""The settlement contract's calls (the ``Chain`` port), sent by a ``Sender``."""

from __future__ import annotations

from web3.contract import Contract
from web3.exceptions import Web3Exception

from sensors.address import Address
from settlement.chain.sender import (
    DEPLOY_GAS,
    OWNERSHIP_GAS,
    Sender,
    receipt_of,
    settle_gas,
)
from settlement.chain.token import Web3Token
from settlement.errors import ChainError
from settlement.ports import (
    MAX_OWNERS_PER_EPOCH,
    ROOT_BYTES,
    ChainReceipt,
    EpochCommit,
    OnChainEpoch,
)


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
    def connect(
        cls, url: str | None, private_key: str | None = None, timeout: float = 30, *, read_only: bool = False
    ) -> Web3Chain:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain); ``read_only``: views only.

        Raises ``ChainUnavailable`` naming ``url`` when the node cannot be reached.
        """
        return cls(Sender.connect(url, private_key, timeout, read_only=read_only))

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

    def trips_root(self, epoch_id: int) -> bytes:
        """The trips root the contract holds for ``epoch_id`` (32 zero bytes before it is settled)."""
        with self.sender.rpc():
            try:
                return bytes(self._deployed.functions.trips_root(epoch_id).call())
            except Web3Exception as exc:  # no such view there: not a settlement contract of this version
                raise ChainError(f"trips_root({epoch_id}) failed at {self._deployed.address}: {exc}") from None

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
        return receipt_of(receipt)

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
