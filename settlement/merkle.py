"""Merkle trees in OpenZeppelin's StandardMerkleTree format, so proofs verify with OZ's ``MerkleProof``.

The format (``@openzeppelin/merkle-tree``, "standard-v1"):

* a leaf is ``keccak256(keccak256(abi.encode(types, values)))`` (hashed twice so that no leaf can
  be mistaken for an internal node);
* an internal node is ``keccak256`` of its two children concatenated in ascending byte order, so a
  proof needs no left/right flags;
* leaves are sorted by hash and the tree is a complete binary tree kept in an array: node ``i`` has
  children ``2i + 1`` and ``2i + 2``, the root is node 0 and the leaves fill the end of the array in
  reverse order (the smallest hash last).

OZ refuses to build a tree of no leaves. Here the root of an empty tree (an epoch of zero trips) is
defined as 32 zero bytes, ``EMPTY_ROOT``; no leaf and proof verify against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eth_abi import encode
from eth_utils import keccak

EMPTY_ROOT = bytes(32)


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """The leaf of ``values`` ABI-encoded as ``types``: ``keccak256(keccak256(abi.encode(...)))``."""
    return keccak(keccak(encode(list(types), list(values))))


def node_hash(a: bytes, b: bytes) -> bytes:
    """The parent of two nodes: ``keccak256`` of the pair in ascending order (commutative)."""
    return keccak(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    """The root that ``leaf`` and ``proof`` lead to."""
    node = leaf
    for sibling in proof:
        node = node_hash(node, sibling)
    return node


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` proves ``leaf`` is in the tree of ``root`` (never for ``EMPTY_ROOT``)."""
    if root == EMPTY_ROOT or len(leaf) != 32 or any(len(node) != 32 for node in proof):
        return False
    return process_proof(leaf, proof) == root


class StandardMerkleTree:
    """A tree of ABI-encoded ``values``, built, laid out and proved the way OpenZeppelin does it."""

    def __init__(
        self,
        values: Sequence[tuple[Any, ...]],
        types: Sequence[str],
        nodes: Sequence[bytes],
        slots: Sequence[int],
    ) -> None:
        self.values = tuple(values)
        self.types = tuple(types)
        self.nodes = tuple(nodes)  # the array form: root first, leaves at the end
        self._slots = tuple(slots)  # slots[i]: where values[i]'s leaf sits in ``nodes``

    @classmethod
    def of(cls, values: Iterable[Sequence[Any]], types: Sequence[str]) -> StandardMerkleTree:
        """Build the tree of ``values`` (each a row encoded as ``types``); the order of rows is kept."""
        rows = [tuple(row) for row in values]
        hashes = [leaf_hash(types, row) for row in rows]
        order = sorted(range(len(rows)), key=lambda i: hashes[i])
        size = 2 * len(rows) - 1
        nodes: list[bytes] = [b""] * max(size, 0)
        slots = [0] * len(rows)
        for rank, index in enumerate(order):
            slots[index] = size - 1 - rank
            nodes[size - 1 - rank] = hashes[index]
        for i in range(size - 1 - len(rows), -1, -1):
            nodes[i] = node_hash(nodes[2 * i + 1], nodes[2 * i + 2])
        return cls(rows, types, nodes, slots)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def root(self) -> bytes:
        """The 32-byte root; ``EMPTY_ROOT`` for a tree of no values."""
        return self.nodes[0] if self.nodes else EMPTY_ROOT

    def leaf(self, index_or_value: int | Sequence[Any]) -> bytes:
        """The leaf hash of ``values[index]``, or of a value in the tree."""
        return self.nodes[self._slot(index_or_value)]

    def proof(self, index_or_value: int | Sequence[Any]) -> list[bytes]:
        """The sibling hashes from a leaf up to the root, for ``values[index]`` or a value in the tree.

        Raises ``IndexError`` for an index out of range and ``ValueError`` for a value not in the tree.
        """
        slot = self._slot(index_or_value)
        path = []
        while slot > 0:
            path.append(self.nodes[slot + 1 if slot % 2 else slot - 1])
            slot = (slot - 1) // 2
        return path

    def _slot(self, index_or_value: int | Sequence[Any]) -> int:
        if isinstance(index_or_value, int):
            if not 0 <= index_or_value < len(self.values):
                raise IndexError(f"no value {index_or_value} in a tree of {len(self.values)}")
            return self._slots[index_or_value]
        wanted = leaf_hash(self.types, index_or_value)
        for slot in self._slots:
            if self.nodes[slot] == wanted:
                return slot
        raise ValueError(f"{tuple(index_or_value)!r} is not in the tree")
