"""The read side of settlement: what the dashboard may see, as frozen views, and the port that serves them.

Every list is read in keyset pages: a list's order ends in a unique key, and a page's opaque ``cursor`` (made by
``cursor_after`` from the last view of the page before) names where the next page starts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

from sensors.address import Address
from settlement.errors import SettlementError


class InvalidCursor(SettlementError, ValueError):
    """A cursor that no page of this list handed out."""


class NotCommitted(SettlementError):
    """A trip whose epoch is not on chain yet, so it has no receipt."""


@dataclass(frozen=True, slots=True)
class VehicleView:
    """A vehicle as last seen. ``state`` is its MDS 2.0 vehicle state."""

    vehicle_id: str
    operator: str
    kind: str
    owner: str | None
    state: str  # available | on_trip | non_operational | unknown
    online: bool
    battery_pct: float | None
    lat: float | None
    lon: float | None
    last_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class TripView:
    """A trip with its fare and where it stands in its life cycle (``settlement.lifecycle.TripStatus``).

    A rejected trip has ``reason`` (a ``RejectCode``) and may miss a half: then its times, distance and fare
    are None. ``fare_micro`` is the metered fare, ``charged_micro`` what the rider pays under consent
    (``min(metered, last voucher, cap)``), ``signed_micro`` what the rider's last voucher signed for so far: the
    running cost of a trip in progress.
    """

    trip_id: str
    vehicle_id: str
    kind: str
    owner: str | None
    rider: str | None
    start_ms: int | None
    end_ms: int | None
    duration_s: int | None
    distance_m: int | None
    fare_micro: int | None
    status: str
    epoch_id: int | None
    reason: str | None = None
    charged_micro: int | None = None
    signed_micro: int | None = None


@dataclass(frozen=True, slots=True)
class EpochView:
    """A batch of trips and its settlement transaction."""

    epoch_id: int
    trip_count: int
    total_micro: int
    trips_root: str
    status: str  # settlement.lifecycle.EpochStatus
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    closed_ms: int
    settled_ms: int | None
    registry_root: str | None = None


@dataclass(frozen=True, slots=True)
class PayoutView:
    """What one vehicle owner has earned: settled on chain and still pending."""

    owner: str
    trip_count: int
    settled_micro: int
    pending_micro: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts for the overview."""

    vehicles: int
    online: int
    telemetry: int
    events: int
    rejected: int
    trips: int
    epochs: int
    settled_micro: int


@dataclass(frozen=True, slots=True)
class RegistryProofView:
    """A vehicle's registry entry, its leaf and Merkle proof, and the registry root they prove against.

    Anyone can hash ``leaf`` (OpenZeppelin StandardMerkleTree, ``settlement.registry.REGISTRY_LEAF_TYPES``),
    fold in ``proof`` and compare with ``root`` — and with the registry root an epoch committed on chain.
    """

    vehicle_id: str
    operator: str
    kind: str
    device: str
    payee: str
    valid_from_ms: int
    valid_until_ms: int
    revoked_ms: int | None
    leaf: list[object]
    proof: list[str]
    root: str


Listed = VehicleView | TripView | EpochView | PayoutView


def cursor_after(view: Listed) -> str:
    """The opaque cursor of the page that starts after ``view`` in its list."""
    key: list[object]
    if isinstance(view, TripView):
        key = [view.end_ms, view.trip_id]
    elif isinstance(view, VehicleView):
        key = [view.vehicle_id]
    elif isinstance(view, EpochView):
        key = [view.epoch_id]
    else:
        key = [view.owner]
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def cursor_key(cursor: str, *types: type) -> list[object]:
    """The key a cursor names, checked against the list's key ``types`` (None allowed); ``InvalidCursor`` else."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}") from None
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(k is None or (isinstance(k, t) and not isinstance(k, bool)) for k, t in zip(key, types, strict=True))
    ):
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}")
    return key


class ReadModel(Protocol):
    """Queries the dashboard runs; every list is newest or most relevant first, bounded by ``limit``, and starts
    after ``cursor`` (``cursor_after`` of the last view of the page before); a bad cursor raises ``InvalidCursor``.
    """

    def vehicles(self, limit: int = 100, cursor: str | None = None) -> list[VehicleView]:
        """Vehicles by id."""
        ...

    def vehicle(self, vehicle_id: str) -> VehicleView | None: ...

    def trips(
        self,
        limit: int = 100,
        vehicle_id: str | None = None,
        rider: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
    ) -> list[TripView]:
        """Priced trips and later (or only those of ``status``), newest first (end time, then trip id, both
        descending; trips without an end come last)."""
        ...

    def rejects_by_code(self) -> dict[str, int]:
        """How many messages were dead-lettered, per reason code."""
        ...

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        """The vehicle's latest registry entry with its Merkle proof, or None if it was never registered."""
        ...

    def trip(self, trip_id: str) -> TripView | None: ...

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None:
        """The receipt of a committed trip (``settlement.receipts.build_receipt``), with its proof rebuilt from its
        epoch's trips; None for no such trip, ``NotCommitted`` for a trip whose epoch is not on chain yet."""
        ...

    def balance_proof(self, account: Address) -> dict[str, Any] | None:
        """``account``'s cumulative balance in the last epoch on chain with its proof
        (``settlement.claims.balance_document``); None when no epoch on chain holds the account."""
        ...

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        """Epochs, newest first."""
        ...

    def payouts(self, limit: int = 100, cursor: str | None = None) -> list[PayoutView]:
        """Earnings per owner, by owner address."""
        ...

    def stats(self) -> Stats: ...
