"""Epochs: a batch of priced trips turned into what goes on chain (pure).

Each trip becomes a leaf of an OpenZeppelin StandardMerkleTree with ``LEAF_TYPES``. Every leaf opens with the
chain id, the settlement contract and the epoch id (``LeafContext``), so that a leaf proved against one
contract's root can never pass for a trip of another chain, contract or epoch.

Closing an epoch (``close``) moves money: each trip's fare is split between the vehicle's payee and the zone
(``settlement.pricing.split``) and spent from its rider's deposit. A trip whose rider is not an address
(``no_rider_account``) or whose rider's unspent deposit cannot cover the fare (``insufficient_deposit``) is turned
away; both rejections are final (a deposit made later does not revive the trip: the rider's app asks for the
deposit before the unlock). The accepted trips are posted to the book of cumulative balances
(``settlement.balances``); the epoch commits to the trips root, the balances root, the registry root that named
the payees (``settlement.registry``), the trip count and the book's cumulative totals (a ``ClearingCommit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sensors.address import Address, InvalidAddress
from sensors.consent import digest
from sensors.signing import Domain
from settlement.balances import BalanceTree, Posting, post
from settlement.clearing import ClearingCommit
from settlement.merkle import StandardMerkleTree
from settlement.ports import ROOT_BYTES
from settlement.pricing import split
from settlement.reasons import RejectCode
from settlement.trips import TripRecord, TripSplit

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
    "bytes32",
    "bytes32",
)
"""chain id, contract, epoch id, trip id, owner, rider, start ms, end ms, distance m, fare micro-EUR charged, the
EIP-712 digest of the rider's consent and of the last voucher (32 zero bytes where there is none)."""
NO_DIGEST = bytes(32)
"""The digest a leaf carries for a consent or voucher the trip does not have."""
CONTEXT_FIELDS = 3
"""How many leading leaf values bind the leaf to its chain, contract and epoch."""


@dataclass(frozen=True, slots=True)
class LeafContext:
    """Where an epoch's trips are committed: the chain's id and the settlement contract's address.

    ``signing_chain_id`` is the chain id of the EIP-712 domain riders sign their consents and vouchers in (None:
    ``chain_id``).
    """

    chain_id: int
    contract: Address
    signing_chain_id: int | None = None

    @property
    def domain(self) -> Domain:
        """The EIP-712 domain of the riders' signatures."""
        return Domain(self.signing_chain_id or self.chain_id)


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
    consent_digest: bytes = NO_DIGEST
    voucher_digest: bytes = NO_DIGEST

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
            self.consent_digest,
            self.voucher_digest,
        ]


def priced(t: TripRecord, domain: Domain) -> PricedTrip:
    """What settlement commits to of a priced trip: what its rider is charged, and the digests (in ``domain``) of
    the consent and the last voucher that allowed it."""
    assert t.payee is not None and t.start is not None and t.end is not None and t.fare is not None
    return PricedTrip(
        t.trip_id,
        t.payee,
        t.rider or "",
        t.start.timestamp_ms,
        t.end.timestamp_ms,
        t.distance_m or 0,
        t.charged,
        NO_DIGEST if t.consent is None else digest(t.consent, domain),
        NO_DIGEST if t.voucher is None else digest(t.voucher, domain),
    )


def trips_tree(trips: Sequence[PricedTrip], context: LeafContext, epoch_id: int) -> StandardMerkleTree:
    """The Merkle tree of epoch ``epoch_id``'s trips under ``context``."""
    return StandardMerkleTree.of([t.leaf(context, epoch_id) for t in trips], list(LEAF_TYPES))


Book = Mapping[Address, tuple[int, int]]
"""Cumulative ``(earned, spent)`` micro-EUR per account."""


@dataclass(frozen=True, slots=True)
class ClosedEpoch:
    """An epoch as closed: its clearing commit, and what is stored with it.

    ``total_micro`` is the sum of its fares; ``payouts`` what each payee earned in it (owner shares, ascending by
    address); ``balances`` the cumulative balances of the accounts it changed; ``splits`` each trip's split in
    the order of its leaves.
    """

    commit: ClearingCommit
    total_micro: int
    payouts: tuple[tuple[Address, int], ...]
    balances: dict[Address, tuple[int, int]]
    splits: tuple[TripSplit, ...]
    signing_chain_id: int | None = None
    """The chain id of the EIP-712 domain the leaves' consent and voucher digests were taken in."""


@dataclass(frozen=True, slots=True)
class Clearance:
    """Which candidate trips an epoch takes (with their split) and which it turns away (with the reason)."""

    accepted: tuple[tuple[TripRecord, TripSplit], ...]
    rejected: tuple[tuple[TripRecord, RejectCode], ...]


def rider_account(rider: str | None) -> Address | None:
    """The rider's account if the rider is named by an address (any case; mixed case must pass EIP-55)."""
    if not rider:
        return None
    try:
        account = Address.parse(rider)
    except InvalidAddress:
        return None
    return None if account.raw == bytes(20) else account


def riders_of(candidates: Sequence[TripRecord]) -> list[Address]:
    """The distinct rider accounts of ``candidates`` (ascending): whose deposits the epoch needs to know."""
    return sorted({a for a in (rider_account(t.rider) for t in candidates) if a is not None})


def clear(candidates: Sequence[TripRecord], book: Book, unspent: Mapping[Address, int], fee_bps: int) -> Clearance:
    """Take the ``candidates`` (priced, oldest first) whose riders can pay.

    ``unspent`` is each rider's deposit less what was withdrawn or asked back (read from chain); what ``book``
    says the rider spent before, and what the rider's earlier candidates spend, comes off it. A trip that does not
    fit is turned away and the rider's later, cheaper trips may still fit.
    """
    spent = {account: entry[1] for account, entry in book.items()}
    accepted: list[tuple[TripRecord, TripSplit]] = []
    rejected: list[tuple[TripRecord, RejectCode]] = []
    for trip in candidates:
        assert trip.fare is not None, "only priced trips are cleared"
        rider, fare = rider_account(trip.rider), trip.charged
        if rider is None:
            rejected.append((trip, RejectCode.NO_RIDER_ACCOUNT))
            continue
        if spent.get(rider, 0) + fare > unspent.get(rider, 0):
            rejected.append((trip, RejectCode.INSUFFICIENT_DEPOSIT))
            continue
        spent[rider] = spent.get(rider, 0) + fare
        owner_share, fee = split(fare, fee_bps)
        accepted.append((trip, TripSplit(trip.trip_id, rider, owner_share, fee)))
    return Clearance(tuple(accepted), tuple(rejected))


def close(
    epoch_id: int,
    accepted: Sequence[tuple[TripRecord, TripSplit]],
    book: Book,
    zone: Address,
    registry_root: bytes,
    *,
    context: LeafContext,
) -> ClosedEpoch:
    """Epoch ``epoch_id`` of the ``accepted`` trips, on top of ``book`` (every account's balance before it).

    ``ValueError`` for no trips or a registry root that is not 32 bytes.
    """
    if not accepted:
        raise ValueError("an epoch holds at least one trip")
    if len(registry_root) != ROOT_BYTES:
        raise ValueError(f"a registry root has {ROOT_BYTES} bytes, not {len(registry_root)}")
    ordered = sorted(accepted, key=lambda pair: (_end_ms(pair[0]), pair[0].trip_id))  # the order of the leaves
    trips = [priced(t, context.domain) for t, _ in ordered]
    postings = [Posting(s.rider, t.owner, t.fare_micro, s.owner_share, s.fee, t.trip_id) for t, (_, s) in
                zip(trips, ordered, strict=True)]  # fmt: skip
    after = post(book, postings, zone)
    tree = BalanceTree.of(after, context.chain_id, context.contract)
    earned_total, spent_total = tree.totals
    changed = {a for p in postings for a in (p.rider, p.payee)} | {zone}
    earnings: dict[Address, int] = {}
    for p in postings:
        earnings[p.payee] = earnings.get(p.payee, 0) + p.owner_share
    commit = ClearingCommit(
        epoch_id=epoch_id,
        trips_root=trips_tree(trips, context, epoch_id).root,
        balances_root=tree.root,
        registry_root=registry_root,
        trip_count=len(trips),
        spent_total=spent_total,
        earned_total=earned_total,
    )
    return ClosedEpoch(
        commit,
        sum(t.fare_micro for t in trips),
        tuple(sorted(earnings.items())),
        {a: after[a] for a in sorted(changed)},
        tuple(s for _, s in ordered),
        context.domain.chain_id,
    )


def _end_ms(trip: TripRecord) -> int:
    return trip.end.timestamp_ms if trip.end else 0
