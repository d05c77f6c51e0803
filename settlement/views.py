"""The read side of settlement: what the dashboard may see, as frozen views, and the port that serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
    are None.
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


class ReadModel(Protocol):
    """Queries the dashboard runs; every list is newest or most relevant first and bounded by ``limit``."""

    def vehicles(self) -> list[VehicleView]: ...

    def vehicle(self, vehicle_id: str) -> VehicleView | None: ...

    def trips(
        self,
        limit: int = 100,
        vehicle_id: str | None = None,
        rider: str | None = None,
        status: str | None = None,
    ) -> list[TripView]:
        """Priced trips and later (or only those of ``status``), newest first."""
        ...

    def rejects_by_code(self) -> dict[str, int]:
        """How many messages were dead-lettered, per reason code."""
        ...

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        """The vehicle's latest registry entry with its Merkle proof, or None if it was never registered."""
        ...

    def trip(self, trip_id: str) -> TripView | None: ...

    def epochs(self, limit: int = 100) -> list[EpochView]: ...

    def payouts(self) -> list[PayoutView]: ...

    def stats(self) -> Stats: ...
