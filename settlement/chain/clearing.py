"""The clearing contract's calls (the ``ClearingPort``), sent by a ``Sender``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from web3.contract import Contract
from web3.contract.contract import ContractFunction

from sensors.address import Address
from settlement.chain.sender import OWNERSHIP_GAS, TOKEN_CALL_GAS, Sender, receipt_of
from settlement.chain.views import read_views
from settlement.clearing import (
    BalanceProof,
    ClearingCommit,
    ClearingTotals,
    check_commit_encoding,
    check_proof_encoding,
    check_withdrawal_sender,
)
from settlement.errors import ChainError
from settlement.ports import ChainReceipt, check_amount

# Measured on anvil and py-evm (tests/integration/test_clearing.py, python -m bench.gas): deploying 2.34M (the
# non-zero placeholders included); a commit 65.8k to 65.9k whatever the epoch, trips or accounts; a deposit 56k
# (the contract's very first 91k); a claim with a 14-node proof 72k (106k for a first claim to a new holder);
# a withdrawal request 50k and a first withdrawal 97k.
CLEARING_DEPLOY_GAS = 4_000_000
COMMIT_GAS = 120_000
RETRACT_GAS = 80_000
DEPOSIT_GAS = 150_000
REQUEST_GAS = 100_000
PROOF_BASE_GAS = 150_000
PROOF_GAS_PER_NODE = 2_000


def proof_gas(nodes: int) -> int:
    """The gas limit sent with a claim or withdrawal whose proof has ``nodes`` nodes."""
    return PROOF_BASE_GAS + PROOF_GAS_PER_NODE * nodes


class Web3Clearing:
    """The ``ClearingPort`` on a node: the clearing contract's calls (amounts in micro-EUR), sent by a ``Sender``.

    What could not be encoded (roots or proof nodes of another length, negative amounts) is refused before
    sending; the contract enforces every other rule and its revert reason comes back in the ``ChainError``.
    """

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.url = sender.url
        self.account = Address.parse(sender.account) if sender.account else Address(bytes(20))  # read-only: none
        self._contract: Contract | None = None
        self._from_block = 0  # where to look for the contract's events: its deployment block when known

    @classmethod
    def connect(cls, url: str | None, private_key: str | None = None, timeout: float = 30) -> Web3Clearing:
        """Connect to the node at ``url`` (``None``: a fresh embedded py-evm chain); ``ChainUnavailable`` if none."""
        return cls(Sender.connect(url, private_key, timeout))

    def with_key(self, private_key: str | None) -> Web3Clearing:
        """The same node and contract, sending from ``private_key``'s account (``None``: first unlocked)."""
        clearing = Web3Clearing(self.sender.with_key(private_key))
        clearing._contract = self._contract
        clearing._from_block = self._from_block
        return clearing

    @property
    def address(self) -> str | None:
        """The checksummed address of the attached contract, if any."""
        return None if self._contract is None else str(self._contract.address)

    def chain_id(self) -> int:
        return self.sender.chain_id()

    def block_number(self) -> int:
        with self.sender.rpc():
            return int(self.sender.w3.eth.block_number)

    def deploy(self, token: str, challenge_blocks: int, withdraw_delay_blocks: int) -> str:
        """Deploy the contract (owned by this account) over the euro token at ``token``, attach, return it."""
        args = (Address.parse(token).checksum, check_amount(challenge_blocks), check_amount(withdraw_delay_blocks))
        self._contract, self._from_block = self.sender.deploy("clearing", args, CLEARING_DEPLOY_GAS)
        return str(self._contract.address)

    def attach(self, address: str) -> None:
        """Use the clearing contract at ``address``; ``ChainError`` if there is no code there."""
        self._contract = self.sender.contract("clearing", address)
        self._from_block = 0

    # --- transactions ---------------------------------------------------------------------------------
    def approve(self, amount: int) -> ChainReceipt:
        """Allow the contract to pull ``amount`` of this account's euro tokens (the token's ``approve``)."""
        token = self.sender.contract("euro_token", self._read("token"))
        call = token.functions.approve(self._deployed.address, check_amount(amount))
        return self.sender.send(call, TOKEN_CALL_GAS, "approve")

    def deposit(self, amount: int) -> ChainReceipt:
        return self._send(self._deployed.functions.deposit(check_amount(amount)), DEPOSIT_GAS)

    def commit(self, commit: ClearingCommit) -> ChainReceipt:
        check_commit_encoding(commit)
        call = self._deployed.functions.commit_epoch(
            commit.epoch_id,
            commit.trips_root,
            commit.balances_root,
            commit.registry_root,
            commit.trip_count,
            commit.spent_total,
            commit.earned_total,
        )
        return self._send(call, COMMIT_GAS)

    def retract(self, epoch_id: int) -> ChainReceipt:
        return self._send(self._deployed.functions.retract_epoch(check_amount(epoch_id)), RETRACT_GAS)

    def claim(self, proof: BalanceProof) -> ChainReceipt:
        check_proof_encoding(proof)
        call = self._deployed.functions.claim(
            proof.epoch_id, proof.account.checksum, proof.earned, proof.spent, list(proof.proof)
        )
        return self._send(call, proof_gas(len(proof.proof)))

    def request_withdrawal(self, amount: int) -> ChainReceipt:
        return self._send(self._deployed.functions.request_withdrawal(check_amount(amount)), REQUEST_GAS)

    def withdraw(self, proof: BalanceProof, amount: int) -> ChainReceipt:
        check_proof_encoding(proof)
        check_withdrawal_sender(proof, self.account)
        call = self._deployed.functions.withdraw(
            proof.epoch_id, proof.earned, proof.spent, list(proof.proof), check_amount(amount)
        )
        return self._send(call, proof_gas(len(proof.proof)))

    def transfer_ownership(self, new_owner: Address) -> ChainReceipt:
        """Offer the ownership to ``new_owner``; this account keeps it (and commits) until they accept."""
        return self._send(self._deployed.functions.transfer_ownership(new_owner.checksum), OWNERSHIP_GAS)

    def accept_ownership(self) -> ChainReceipt:
        """Take the ownership offered to this account."""
        return self._send(self._deployed.functions.accept_ownership(), OWNERSHIP_GAS)

    # --- views ----------------------------------------------------------------------------------------
    def owner(self) -> Address:
        return Address.parse(self._read("owner"))

    def token_address(self) -> str:
        """The euro token the contract holds deposits in."""
        return str(self._read("token"))

    def last_epoch(self) -> int:
        return int(self._read("last_epoch"))

    def is_final(self, epoch_id: int) -> bool:
        return bool(self._read("is_final", check_amount(epoch_id)))

    def trips_root(self, epoch_id: int) -> bytes:
        return bytes(self._read("trips_root", check_amount(epoch_id)))

    def balances_root(self, epoch_id: int) -> bytes:
        return bytes(self._read("balances_root", check_amount(epoch_id)))

    def deposited(self, account: Address) -> int:
        return int(self._read("deposited", account.checksum))

    def claimed(self, account: Address) -> int:
        return int(self._read("claimed", account.checksum))

    def withdrawn(self, account: Address) -> int:
        return int(self._read("withdrawn", account.checksum))

    def requested(self, account: Address) -> tuple[int, int]:
        """What ``account`` asked to withdraw and has not withdrawn yet, and the block from which it may."""
        amount, ready = self._read("requested", account.checksum)
        return int(amount), int(ready)

    def unspent(self, riders: Sequence[Address]) -> dict[Address, int]:
        """Each rider's deposit less what it withdrew and what it asked back, all read at the node's head block: one
        call per rider who never deposited, two more per rider who did, sent in JSON-RPC batches (``read_views``)."""
        unique = list(dict.fromkeys(riders))
        if not unique:
            return {}
        block = self.sender.head()
        deposits = read_views(self.sender, self._deployed, [("deposited", (r.checksum,)) for r in unique], block)
        found = {rider: int(deposit) for rider, deposit in zip(unique, deposits, strict=True)}
        paying = [rider for rider in unique if found[rider]]
        calls = [(view, (r.checksum,)) for r in paying for view in ("withdrawn", "requested")]
        taken = read_views(self.sender, self._deployed, calls, block)
        for rider, withdrawn, (requested, _) in zip(paying, taken[::2], taken[1::2], strict=True):
            found[rider] -= int(withdrawn) + int(requested)
        return found

    def commit_receipt(self, epoch_id: int) -> ChainReceipt:
        """The receipt of the last commit of ``epoch_id`` (found by its ``EpochCommitted`` event); ``ChainError``
        if there is none. For the settler after a crash between sending a commit and recording it."""
        with self.sender.rpc():
            logs = list(
                self._deployed.events.EpochCommitted().get_logs(
                    argument_filters={"epoch_id": epoch_id}, from_block=self._from_block
                )
            )
            if not logs:
                raise ChainError(f"no commit of epoch {epoch_id} in the clearing contract's events on {self.url}")
            receipt = self.sender.w3.eth.get_transaction_receipt(logs[-1]["transactionHash"])
        return receipt_of(receipt)

    def totals(self) -> ClearingTotals:
        return ClearingTotals(
            int(self._read("deposited_total")),
            int(self._read("spent_total")),
            int(self._read("claimed_total")),
            int(self._read("withdrawn_total")),
        )

    # The ``Blocks`` port of ``settlement.chain.finality``: the sender's.

    def head(self) -> int:
        return self.sender.head()

    def block_hash(self, number: int) -> str | None:
        return self.sender.block_hash(number)

    def receipt(self, tx_hash: str) -> ChainReceipt | None:
        return self.sender.receipt(tx_hash)

    def _read(self, name: str, *args: Any) -> Any:
        with self.sender.rpc():
            return self._deployed.functions[name](*args).call()

    def _send(self, call: ContractFunction, gas: int) -> ChainReceipt:
        return self.sender.send(call, gas, call.fn_name)

    @property
    def _deployed(self) -> Contract:
        if self._contract is None:
            raise ChainError("no clearing contract: deploy() or attach() first")
        return self._contract
