"""Epochs: a batch of priced trips turned into what goes on chain (pure).

Each trip becomes a leaf of an OpenZeppelin StandardMerkleTree with ``LEAF_TYPES``; the epoch
commits to the tree's root, the trip count, the total and the payout of every vehicle owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from settlement.merkle import StandardMerkleTree
from settlement.ports import EpochCommit

LEAF_TYPES: tuple[str, ...] = ("string", "address", "string", "uint64", "uint64", "uint64", "uint256")
"""trip id, owner, rider, start ms, end ms, distance m, fare micro-EUR."""


@dataclass(frozen=True, slots=True)
class PricedTrip:
    """The part of a priced trip that settlement commits to."""

    trip_id: str
    owner: str
    rider: str
    start_ms: int
    end_ms: int
    distance_m: int
    fare_micro: int

    def leaf(self) -> list[object]:
        return [
            self.trip_id,
            self.owner,
            self.rider,
            self.start_ms,
            self.end_ms,
            self.distance_m,
            self.fare_micro,
        ]


def payouts(trips: Sequence[PricedTrip]) -> tuple[tuple[str, int], ...]:
    """Sum of fares per owner, sorted by owner address (case-insensitive)."""
    totals: dict[str, int] = {}
    for trip in trips:
        totals[trip.owner] = totals.get(trip.owner, 0) + trip.fare_micro
    return tuple(sorted(totals.items(), key=lambda item: item[0].lower()))


def trips_tree(trips: Sequence[PricedTrip]) -> StandardMerkleTree:
    """The Merkle tree of an epoch's trips."""
    return StandardMerkleTree.of([t.leaf() for t in trips], list(LEAF_TYPES))


def plan_epoch(epoch_id: int, trips: Sequence[PricedTrip]) -> EpochCommit:
    """The commit of epoch ``epoch_id`` holding ``trips`` (at least one)."""
    if not trips:
        raise ValueError("an epoch holds at least one trip")
    split = payouts(trips)
    return EpochCommit(
        epoch_id=epoch_id,
        trips_root=trips_tree(trips).root,
        trip_count=len(trips),
        total_micro=sum(amount for _, amount in split),
        payouts=split,
    )
