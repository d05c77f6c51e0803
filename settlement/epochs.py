"""Epochs: a batch of priced trips turned into what goes on chain (pure).

Each trip becomes a leaf of an OpenZeppelin StandardMerkleTree with ``LEAF_TYPES``. Every leaf opens with the
chain id, the settlement contract and the epoch id (``LeafContext``), so that a leaf proved against one
contract's root can never pass for a trip of another chain, contract or epoch. The epoch commits to the tree's
root, the trip count, the total, the payout of every vehicle owner and the root of the device registry that
named those owners (``settlement.registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sensors.address import Address
from settlement.merkle import StandardMerkleTree
from settlement.ports import MAX_OWNERS_PER_EPOCH, ROOT_BYTES, EpochCommit
from settlement.trips import TripRecord

LEAF_TYPES: tuple[str, ...] = (
    "uint256",
    "address",
    "uint256",
    "string",
    "address",
    "string",
    "uint64",
    "uint64",
    "uint64",
    "uint256",
)
"""chain id, contract, epoch id, trip id, owner, rider, start ms, end ms, distance m, fare micro-EUR."""
CONTEXT_FIELDS = 3
"""How many leading leaf values bind the leaf to its chain, contract and epoch."""


@dataclass(frozen=True, slots=True)
class LeafContext:
    """Where an epoch's trips are committed: the chain's id and the settlement contract's address."""

    chain_id: int
    contract: Address


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

    def leaf(self, context: LeafContext, epoch_id: int) -> list[object]:
        """The trip's row in the trips tree of epoch ``epoch_id`` under ``context`` (addresses in EIP-55 form)."""
        return [
            context.chain_id,
            str(context.contract),
            epoch_id,
            self.trip_id,
            str(self.owner),
            self.rider,
            self.start_ms,
            self.end_ms,
            self.distance_m,
            self.fare_micro,
        ]


def priced(t: TripRecord) -> PricedTrip:
    """What settlement commits to of a priced trip."""
    assert t.payee is not None and t.start is not None and t.end is not None and t.fare is not None
    return PricedTrip(
        t.trip_id,
        t.payee,
        t.rider or "",
        t.start.timestamp_ms,
        t.end.timestamp_ms,
        t.distance_m or 0,
        t.fare.total_micro,
    )


def payouts(trips: Sequence[PricedTrip]) -> tuple[tuple[Address, int], ...]:
    """Sum of fares per owner, one pair per owner's 20 bytes, in ascending order of those bytes."""
    totals: dict[Address, int] = {}
    for trip in trips:
        totals[trip.owner] = totals.get(trip.owner, 0) + trip.fare_micro
    return tuple(sorted(totals.items()))


def trips_tree(trips: Sequence[PricedTrip], context: LeafContext, epoch_id: int) -> StandardMerkleTree:
    """The Merkle tree of epoch ``epoch_id``'s trips under ``context``."""
    return StandardMerkleTree.of([t.leaf(context, epoch_id) for t in trips], list(LEAF_TYPES))


def plan_epoch(
    epoch_id: int, trips: Sequence[PricedTrip], registry_root: bytes, *, context: LeafContext
) -> EpochCommit:
    """The commit of epoch ``epoch_id`` holding ``trips`` on ``context``'s contract, attributed with the registry
    of ``registry_root``.

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
        trips_root=trips_tree(trips, context, epoch_id).root,
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
