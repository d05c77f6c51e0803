"""Balance proofs as documents: what the API serves and ``smartzone claim``/``withdraw`` send (pure).

A document names the chain, the clearing contract and the epoch, and holds exactly the ``root``, ``leaf_types``,
``leaf_values`` and ``proof`` that OpenZeppelin's ``StandardMerkleTree.verify`` takes; ``proof_of`` turns it back
into a ``BalanceProof`` after checking that the leaf says what the document says and that the proof leads to the
root.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sensors.address import Address, InvalidAddress
from settlement.balances import verify_balance
from settlement.clearing import BALANCE_LEAF_TYPES, BalanceProof, balance_values


class InvalidBalanceProof(ValueError):
    """A document that is not a balance proof, or whose proof does not lead to its root."""


def balance_document(proof: BalanceProof, root: bytes, chain_id: int, contract: str) -> dict[str, Any]:
    """The JSON document of ``proof`` against ``root``, the balances root of ``contract`` on chain ``chain_id``."""
    values = balance_values(chain_id, contract, proof.account, proof.earned, proof.spent)
    return {
        "account": proof.account.checksum,
        "earned_micro": proof.earned,
        "spent_micro": proof.spent,
        "epoch_id": proof.epoch_id,
        "chain_id": chain_id,
        "contract": Address.parse(contract).checksum,
        "root": "0x" + root.hex(),
        "leaf_types": list(BALANCE_LEAF_TYPES),
        "leaf_values": [str(v) for v in values],
        "proof": ["0x" + node.hex() for node in proof.proof],
    }


def proof_of(document: Mapping[str, Any]) -> tuple[BalanceProof, bytes]:
    """The ``BalanceProof`` a document holds and its root; ``InvalidBalanceProof`` naming what is wrong."""
    try:
        account = Address.parse(str(document["account"]))
        proof = BalanceProof(
            int(document["epoch_id"]),
            account,
            int(document["earned_micro"]),
            int(document["spent_micro"]),
            tuple(bytes.fromhex(str(node).removeprefix("0x")) for node in document["proof"]),
        )
        root = bytes.fromhex(str(document["root"]).removeprefix("0x"))
        chain_id, contract = int(document["chain_id"]), str(document["contract"])
    except (KeyError, TypeError, ValueError, InvalidAddress) as exc:
        raise InvalidBalanceProof(f"not a balance proof: {exc}") from None
    if not verify_balance(root, chain_id, contract, proof):
        raise InvalidBalanceProof("the proof does not lead from the balance to the document's root")
    return proof, root
