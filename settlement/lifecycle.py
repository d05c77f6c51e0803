"""The life cycles of a trip and of an epoch: their states and the transitions allowed between them (pure).

A trip is ``open`` while one of its two halves (unlock, lock) is missing, ``complete`` once both are there,
then ``priced`` (or ``rejected`` by the plausibility bounds, with a reason), ``batched`` into an epoch (or
``rejected`` there when its rider has no account or too small a deposit),
``committed`` when that epoch's transaction is mined and ``final`` with it (back to ``batched`` if a reorg takes
the transaction away). A trip
held as ``rejected`` because a half was missing comes back to life when that half arrives late. ``adjusted``
marks a committed trip whose amount a later adjustment entry corrects. An epoch is ``closed`` (planned,
not yet on chain), ``committed`` (its transaction mined) and then ``final`` (enough confirmations, its block hash
re-checked, and the contract's challenge window over); a committed epoch whose block a reorg took away is
``closed`` again and sent again.

Every module that stores, reads or shows a status uses these names; none spells them as bare strings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from settlement.errors import SettlementError


class TripStatus(enum.StrEnum):
    """Where a trip stands."""

    OPEN = "open"
    COMPLETE = "complete"
    PRICED = "priced"
    BATCHED = "batched"
    COMMITTED = "committed"
    FINAL = "final"
    REJECTED = "rejected"
    ADJUSTED = "adjusted"


class EpochStatus(enum.StrEnum):
    """Where an epoch stands."""

    CLOSED = "closed"
    COMMITTED = "committed"
    FINAL = "final"


TRIP_TRANSITIONS: Mapping[TripStatus, frozenset[TripStatus]] = {
    TripStatus.OPEN: frozenset({TripStatus.COMPLETE, TripStatus.REJECTED}),
    TripStatus.COMPLETE: frozenset({TripStatus.PRICED, TripStatus.REJECTED}),
    TripStatus.PRICED: frozenset({TripStatus.BATCHED, TripStatus.REJECTED}),  # a rider who cannot pay
    TripStatus.BATCHED: frozenset({TripStatus.COMMITTED}),
    TripStatus.COMMITTED: frozenset({TripStatus.FINAL, TripStatus.ADJUSTED, TripStatus.BATCHED}),  # BATCHED: reorg
    TripStatus.FINAL: frozenset({TripStatus.ADJUSTED}),
    # a trip held for a missing half is revived when the half arrives; a bounds rejection is for good
    TripStatus.REJECTED: frozenset({TripStatus.OPEN, TripStatus.COMPLETE}),
    TripStatus.ADJUSTED: frozenset(),
}

EPOCH_TRANSITIONS: Mapping[EpochStatus, frozenset[EpochStatus]] = {
    EpochStatus.CLOSED: frozenset({EpochStatus.COMMITTED}),
    EpochStatus.COMMITTED: frozenset({EpochStatus.FINAL, EpochStatus.CLOSED}),  # CLOSED: a reorg took it away
    EpochStatus.FINAL: frozenset(),
}

UNSETTLED: frozenset[TripStatus] = frozenset({TripStatus.PRICED, TripStatus.BATCHED})
"""Priced trips whose money has not reached the chain yet (pending payouts)."""
SETTLED: frozenset[TripStatus] = frozenset({TripStatus.COMMITTED, TripStatus.FINAL})
"""Trips whose epoch is on chain."""
ON_CHAIN_EPOCH: frozenset[EpochStatus] = frozenset({EpochStatus.COMMITTED, EpochStatus.FINAL})
"""Epochs whose transaction is mined."""
HELD_REASONS: frozenset[str] = frozenset({"no_unlock", "no_lock", "unlock_twice"})
"""Rejection reasons that a late half can undo (a missing half); every other rejection is final."""


class IllegalTransition(SettlementError):
    """A status change the life cycle does not allow."""


def check_trip(current: TripStatus, new: TripStatus, reason: str | None = None) -> TripStatus:
    """``new`` if a trip may go from ``current`` to it, else ``IllegalTransition``.

    Leaving ``rejected`` is allowed only for a held rejection (``reason`` in ``HELD_REASONS``).
    """
    if new not in TRIP_TRANSITIONS[current]:
        raise IllegalTransition(f"a trip cannot go from {current} to {new}")
    if current is TripStatus.REJECTED and reason not in HELD_REASONS:
        raise IllegalTransition(f"a trip rejected for {reason!r} stays rejected")
    return new


def check_epoch(current: EpochStatus, new: EpochStatus) -> EpochStatus:
    """``new`` if an epoch may go from ``current`` to it, else ``IllegalTransition``."""
    if new not in EPOCH_TRANSITIONS[current]:
        raise IllegalTransition(f"an epoch cannot go from {current} to {new}")
    return new
