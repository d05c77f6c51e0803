"""The storage ports: one repository per thing kept, and the unit of work that commits them together.

The aggregator takes a factory of ``UnitOfWork``; ``settlement.sql`` implements it on SQLAlchemy and
``settlement.memory`` in memory (for unit tests). Everything a batch changes — its readings, its dead letters,
the trips it completes — is committed in one unit of work, so a crash never keeps half of it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from sensors.address import Address
from sensors.messages import Event, Telemetry, VehicleState
from settlement.clearing import ClearingCommit
from settlement.dead_letters import MAX_SAMPLE_BYTES, RejectCount
from settlement.ports import ChainReceipt
from settlement.records import Reject, VehicleMark
from settlement.registry import RegistryEntry
from settlement.retention import StoredTelemetry, Track, TrackKey
from settlement.trips import TripRecord, TripSplit

if TYPE_CHECKING:
    from settlement.epochs import ClosedEpoch
from settlement.vehicles import VehicleUpdate


class ReadingRepository(Protocol):
    """Telemetry, events, vehicle state and dead letters."""

    def add_telemetry(self, readings: Sequence[Telemetry]) -> int:
        """Store readings once per (vehicle, seq); returns how many were new."""
        ...

    def add_events(self, events: Sequence[Event]) -> list[Event]:
        """Store events once per (vehicle, seq); returns those that were new, in the order given."""
        ...

    def update_vehicles(self, updates: Sequence[VehicleUpdate]) -> None:
        """Apply each update to its vehicle unless the vehicle has seen a later seq; a reading brings the vehicle
        online only if it is newer than the vehicle's last state (a late reading never undoes an offline state).
        An update with a state sets the fault code with it; one with ``received_ms`` stamps the row."""
        ...

    def apply_states(self, states: Sequence[VehicleState], *, received_ms: int | None = None) -> None:
        """Set vehicles online or offline (a gateway's state: every vehicle of its operator), stamping the rows it
        changes with ``received_ms`` when given."""
        ...

    def add_rejects(self, rejects: Sequence[Reject], sample_bytes: int = MAX_SAMPLE_BYTES) -> None:
        """Keep each reject as a sample (its payload cut to ``sample_bytes``, its whole size noted) and count it
        per reason code, in this unit of work."""
        ...

    def reject_counts(self) -> dict[str, RejectCount]:
        """How many messages were dead-lettered per reason code, ever."""
        ...

    def prune_rejects(self, older_than_ms: int, keep: int) -> int:
        """Delete the samples received before ``older_than_ms`` and all but the ``keep`` newest; how many went.
        The counts stay."""
        ...

    def cut_samples(self, sample_bytes: int) -> int:
        """Cut samples stored with a longer payload (before a smaller limit) to ``sample_bytes``; how many."""
        ...

    def telemetry_ids(self) -> tuple[int, int] | None:
        """The lowest and the highest row id of raw telemetry (None when there is none)."""
        ...

    def stale_telemetry(self, before_ms: int, seq_window: int, first_id: int, end_id: int) -> list[StoredTelemetry]:
        """The raw readings with a row id from ``first_id`` to before ``end_id``, by id, taken before ``before_ms``
        and with a seq more than ``seq_window`` below their vehicle's last accepted seq (replays of them are
        refused as stale)."""
        ...

    def tracks(self, keys: Collection[TrackKey]) -> dict[TrackKey, Track]:
        """The kept tracks of these (vehicle, minute) keys."""
        ...

    def fold_telemetry(self, tracks: Sequence[Track], row_ids: Sequence[int]) -> int:
        """Save ``tracks`` (replacing those of the same keys) and delete the raw rows folded into them, still counted
        as stored (``tallies``); how many rows went."""
        ...

    def vehicle_marks(self) -> dict[str, VehicleMark]:
        """Last accepted seq and state time of every vehicle (to warm the verifier after a restart)."""
        ...

    def watermark_ms(self) -> int:
        """The latest event time stored (0 when none): the stream's clock for expiring open trips."""
        ...


class TripRepository(Protocol):
    """Trips from their first half to their epoch."""

    def get(self, trip_ids: Collection[str]) -> dict[str, TripRecord]: ...

    def unfinished_of(self, vehicle_ids: Collection[str]) -> dict[str, TripRecord]:
        """Open and held-rejected trips of these vehicles (a late half may still complete them), and per vehicle
        the ended trip with the highest unlock seq (so that ``derive`` judges a late unlock the same in any order)."""
        ...

    def open(self) -> list[TripRecord]:
        """Every open trip (candidates for expiry)."""
        ...

    def save(self, records: Sequence[TripRecord]) -> None:
        """Insert or replace each record by its trip id."""
        ...

    def used_nonces(self, riders: Collection[Address]) -> dict[Address, set[int]]:
        """The consent nonces of ``riders`` that trips priced under consent have used (single use per rider)."""
        ...

    def priced_unbatched(self, limit: int) -> list[TripRecord]:
        """Priced trips in no epoch yet, oldest end first."""
        ...

    def batch(self, trip_ids: Collection[str], epoch_id: int, splits: Sequence[TripSplit] = ()) -> int:
        """Move those of ``trip_ids`` that are still priced into ``epoch_id`` (recording each one's split from
        ``splits``); how many moved."""
        ...

    def in_epoch(self, epoch_id: int) -> list[TripRecord]:
        """The trips of ``epoch_id`` in the order of its Merkle leaves (end time, then id)."""
        ...

    def commit_epoch(self, epoch_id: int) -> None:
        """Mark the trips of ``epoch_id`` committed (its transaction is mined)."""
        ...

    def finalise_epoch(self, epoch_id: int) -> None:
        """Mark the committed trips of ``epoch_id`` final (their epoch is)."""
        ...

    def reopen_epoch(self, epoch_id: int) -> None:
        """Move the committed trips of ``epoch_id`` back to batched (a reorg took its transaction away)."""
        ...


class EpochRepository(Protocol):
    """Epochs, their payouts and the cumulative balances of the accounts each one changed."""

    def last_id(self) -> int: ...

    def add(self, epoch: ClosedEpoch, now_ms: int) -> None:
        """Record a closed epoch with its payouts and the balances it changed."""
        ...

    def unsettled(self) -> list[ClearingCommit]:
        """The commits of closed epochs not yet on chain, oldest first."""
        ...

    def commit_of(self, epoch_id: int) -> ClearingCommit | None:
        """What epoch ``epoch_id`` commits (None for no such epoch)."""
        ...

    def last_committed(self) -> int:
        """The id of the last epoch on chain (0 before the first)."""
        ...

    def balances(
        self, accounts: Collection[Address] | None = None, upto: int | None = None
    ) -> dict[Address, tuple[int, int]]:
        """Cumulative ``(earned, spent)`` of ``accounts`` (None: every account) after epoch ``upto`` (None: the last
        closed); an account no epoch changed is absent."""
        ...

    def mark_committed(self, epoch_id: int, receipt: ChainReceipt | None, now_ms: int) -> None:
        """Record that ``epoch_id`` is on chain (a committed epoch gets the new receipt: mined again elsewhere)."""
        ...

    def awaiting_finality(self) -> list[tuple[int, ChainReceipt | None]]:
        """The committed epochs not yet final, oldest first, with the receipt recorded (None: recorded without)."""
        ...

    def mark_final(self, epoch_id: int) -> None:
        """Record that committed epoch ``epoch_id`` is final."""
        ...

    def reopen(self, epoch_id: int) -> None:
        """Take committed epoch ``epoch_id`` back to closed, its receipt forgotten (a reorg took it away)."""
        ...


class RegistryRepository(Protocol):
    """Operators, the device registry and where the contract is deployed."""

    def operators(self) -> dict[str, Address]: ...

    def add_operator(self, operator: str, address: Address, now_ms: int) -> None: ...

    def entries(self) -> list[RegistryEntry]: ...

    def add(self, entry: RegistryEntry, now_ms: int) -> bool:
        """Add an entry; False when the same (vehicle, valid_from) is already there."""
        ...

    def revoke(self, vehicle_id: str, now_ms: int) -> int:
        """Revoke the vehicle's unrevoked entries; returns how many."""
        ...

    def version(self) -> tuple[int, ...]:
        """Changes whenever an operator or an entry is added or revoked (cheap to poll)."""
        ...

    def deployment(self, chain_id: int) -> str | None: ...

    def record_deployment(self, chain_id: int, address: str, now_ms: int) -> None: ...

    def any_deployment(self) -> tuple[int, str] | None:
        """The chain id and address of the latest deployment, if any (the database's chain)."""
        ...


class UnitOfWork(Protocol):
    """Repositories sharing one transaction: ``with uow: ...; uow.commit()``; leaving without commit rolls back."""

    @property
    def url(self) -> str: ...

    @property
    def readings(self) -> ReadingRepository: ...

    @property
    def trips(self) -> TripRepository: ...

    @property
    def epochs(self) -> EpochRepository: ...

    @property
    def registry(self) -> RegistryRepository: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> None: ...
