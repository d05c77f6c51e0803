"""Epochs: a batch of priced trips turned into what goes on chain (pure).

Each trip becomes a leaf of an OpenZeppelin StandardMerkleTree with ``LEAF_TYPES``; the epoch
commits to the tree's root, the trip count, the total, the payout of every vehicle owner and the
root of the device registry that named those owners (``settlement.registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sensors.address import Address
from settlement.merkle import StandardMerkleTree
from settlement.ports import MAX_OWNERS_PER_EPOCH, ROOT_BYTES, EpochCommit

LEAF_TYPES: tuple[str, ...] = ("string", "address", "string", "uint64", "uint64", "uint64", "uint256")
"""trip id, owner, rider, start ms, end ms, distance m, fare micro-EUR."""


@dataclass(frozen=True, slots=True)
class PricedTrip:
    """The part of a priced trip that settlement commits to; ``owner`` is the payee the registry named."""

    trip_id: str
    owner: Address
    rider: str
    start_ms: int
    end_ms: int
    distance_m: int
    fare_micro: int

    def leaf(self) -> list[object]:
        """The trip's row in the trips tree (the owner in its EIP-55 form)."""
        return [
            self.trip_id,
            str(self.owner),
            self.rider,
            self.start_ms,
            self.end_ms,
            self.distance_m,
            self.fare_micro,
        ]


def payouts(trips: Sequence[PricedTrip]) -> tuple[tuple[Address, int], ...]:
    """Sum of fares per owner, one pair per owner's 20 bytes, in ascending order of those bytes."""
    totals: dict[Address, int] = {}
    for trip in trips:
        totals[trip.owner] = totals.get(trip.owner, 0) + trip.fare_micro
    return tuple(sorted(totals.items()))


def trips_tree(trips: Sequence[PricedTrip]) -> StandardMerkleTree:
    """The Merkle tree of an epoch's trips."""
    return StandardMerkleTree.of([t.leaf() for t in trips], list(LEAF_TYPES))


def plan_epoch(epoch_id: int, trips: Sequence[PricedTrip], registry_root: bytes) -> EpochCommit:
    """The commit of epoch ``epoch_id`` holding ``trips``, attributed with the registry of ``registry_root``.

    Raises ``ValueError`` for no trips, more than ``MAX_OWNERS_PER_EPOCH`` owners, or a root that is not 32 bytes.
    """
    if not trips:
        raise ValueError("an epoch holds at least one trip")
    if len(registry_root) != ROOT_BYTES:
        raise ValueError(f"a registry root has {ROOT_BYTES} bytes, not {len(registry_root)}")
    split = payouts(trips)
    if len(split) > MAX_OWNERS_PER_EPOCH:
        raise ValueError(f"{len(split)} owners; an epoch credits at most {MAX_OWNERS_PER_EPOCH}")
    return EpochCommit(
        epoch_id=epoch_id,
        trips_root=trips_tree(trips).root,
        trip_count=len(trips),
        total_micro=sum(amount for _, amount in split),
        payouts=split,
        registry_root=registry_root,
    )


T = TypeVar("T")


def select_for_epoch(
    candidates: Sequence[T], owner_of: Callable[[T], object], max_owners: int = MAX_OWNERS_PER_EPOCH
) -> list[T]:
    """The leading candidates (oldest first) whose owners number at most ``max_owners`` (the contract's cap).

    A trip of a further owner waits for the next epoch; the order of the others is kept.
    """
    owners: set[object] = set()
    kept = []
    for candidate in candidates:
        owner = owner_of(candidate)
        if owner not in owners and len(owners) == max_owners:
            continue
        owners.add(owner)
        kept.append(candidate)
    return kept
