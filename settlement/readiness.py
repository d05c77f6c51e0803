"""The reads readiness needs: whether the database answers, and what is waiting for settlement.

Cheap on purpose (a probe may ask every second): ``SELECT 1`` under a statement timeout, and indexed
look-ups of the oldest unsettled trip and the oldest epoch closed but not yet on chain.

Times: ``epochs.closed_ms`` is the aggregator's wall clock when it closed the epoch, so its age against the
wall clock is truthful. Trips carry only the readings' own times (simulated time may run ahead of or behind
the wall clock), so a trip's wait is never computed from them: the caller measures how long the same trip
stays the oldest one waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from settlement.db import Database
from settlement.lifecycle import UNSETTLED, EpochStatus
from settlement.schema import EpochRow, TripRow, table_of

WAITING_COUNT_CAP = 10_000
"""Waiting trips are counted up to this many (a count over a large backlog is not cheap)."""
_UNSETTLED = sorted(s.value for s in UNSETTLED)


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for settlement: trips priced or batched but not on chain, and epochs closed but not committed.

    ``waiting`` is capped at ``WAITING_COUNT_CAP``; ``oldest_trip`` is the id of the waiting trip that ended
    first (the one the next epoch takes first); ``oldest_epoch`` is (epoch id, wall-clock ms it was closed) of
    the oldest epoch not yet committed on chain, or None.
    """

    waiting: int
    oldest_trip: str | None
    oldest_epoch: tuple[int, int] | None


def ping(database: Database, timeout_s: float) -> None:
    """Ask the database ``SELECT 1``; on PostgreSQL the statement may take at most ``timeout_s``.

    ``StoreUnavailable`` (naming the redacted URL) when it cannot be reached. Connecting is bounded by the
    driver's connect timeout and by the caller's own deadline.
    """
    with database.reading() as conn:
        if conn.dialect.name == "postgresql":
            # SET LOCAL lasts until the connection's transaction ends, when the pool hands it back
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}"))
        conn.execute(sa.text("SELECT 1"))


def backlog(database: Database) -> Backlog:
    """The settlement backlog, read with three indexed queries."""
    t, e = table_of(TripRow), table_of(EpochRow)
    unsettled = t.c.status.in_(_UNSETTLED)
    waiting = sa.select(sa.func.count()).select_from(
        sa.select(t.c.trip_id).where(unsettled).limit(WAITING_COUNT_CAP).subquery()
    )
    oldest_trip = sa.select(t.c.trip_id).where(unsettled).order_by(t.c.end_ms, t.c.trip_id).limit(1)
    # epochs are committed in order, so the ones not yet on chain are the newest: look back from the last
    # committed one rather than scanning every epoch for its status
    last_on_chain = sa.select(sa.func.max(e.c.epoch_id)).where(e.c.status != EpochStatus.CLOSED.value)
    oldest_epoch = (
        sa.select(e.c.epoch_id, e.c.closed_ms)
        .where(e.c.epoch_id > sa.func.coalesce(last_on_chain.scalar_subquery(), -1))
        .order_by(e.c.epoch_id)
        .limit(1)
    )
    with database.reading() as conn:
        count = conn.execute(waiting).scalar_one()
        trip = conn.execute(oldest_trip).scalar()
        epoch = conn.execute(oldest_epoch).first()
    return Backlog(int(count), trip, (int(epoch[0]), int(epoch[1])) if epoch else None)
