"""Epochs and payouts on SQL, and the per-owner totals the read model serves (``owner_totals``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from settlement.lifecycle import EpochStatus, check_epoch
from settlement.ports import ChainReceipt, EpochCommit
from settlement.schema import EpochRow, OwnerTotalRow, PayoutRow, TripRow, table_of


class SqlEpochs:
    """``EpochRepository`` in one connection's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._e = table_of(EpochRow)

    def last_id(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.max(self._e.c.epoch_id))).scalar_one_or_none() or 0)

    def add(self, commit: EpochCommit, now_ms: int) -> None:
        self._conn.execute(
            sa.insert(self._e),
            [
                {
                    "epoch_id": commit.epoch_id,
                    "trip_count": commit.trip_count,
                    "total_micro": commit.total_micro,
                    "trips_root": "0x" + commit.trips_root.hex(),
                    "registry_root": "0x" + commit.registry_root.hex(),
                    "status": EpochStatus.CLOSED.value,
                    "closed_ms": now_ms,
                }
            ],
        )
        self._conn.execute(
            sa.insert(table_of(PayoutRow)),
            [{"epoch_id": commit.epoch_id, "owner": owner, "amount_micro": amount} for owner, amount in commit.payouts],
        )

    def unsettled(self) -> list[tuple[int, bytes]]:
        e = self._e
        query = sa.select(e.c.epoch_id, e.c.registry_root).where(e.c.status == EpochStatus.CLOSED.value)
        rows = self._conn.execute(query.order_by(e.c.epoch_id)).all()
        return [(r.epoch_id, bytes.fromhex(r.registry_root[2:])) for r in rows]

    def mark_committed(self, epoch_id: int, receipt: ChainReceipt | None, now_ms: int) -> None:
        e = self._e
        was = self._conn.execute(sa.select(e.c.status).where(e.c.epoch_id == epoch_id)).scalar_one_or_none()
        if was is not None and was != EpochStatus.COMMITTED.value:
            check_epoch(EpochStatus(was), EpochStatus.COMMITTED)
        if was == EpochStatus.CLOSED.value:
            _add_epoch_totals(self._conn, epoch_id, trips=False, settled=True)
        values: dict[str, object] = {"status": EpochStatus.COMMITTED.value, "settled_ms": now_ms}
        if receipt is not None:
            values.update(
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
            )
        self._conn.execute(sa.update(self._e).where(self._e.c.epoch_id == epoch_id).values(**values))


def tally_batched(conn: sa.Connection, epoch_id: int) -> None:
    """Add the trips just batched into ``epoch_id`` to their owners' totals, as pending (same transaction)."""
    _add_epoch_totals(conn, epoch_id, trips=True, settled=False)


def _add_epoch_totals(conn: sa.Connection, epoch_id: int, *, trips: bool, settled: bool) -> None:
    """Per owner of the epoch's trips (one probe of the epoch_id index): count them in (``trips``) and add their
    fares as pending, or (``settled``) move them from pending to settled. One INSERT … SELECT … ON CONFLICT, so
    no address travels through Python."""
    t, table = table_of(TripRow), table_of(OwnerTotalRow)
    fares = sa.func.coalesce(sa.func.sum(t.c.fare_micro), 0)
    zero = sa.literal(0, sa.BigInteger)
    counted = sa.func.count() if trips else zero
    select = (
        sa.select(t.c.owner, counted, -fares if settled else fares, fares if settled else zero)
        .where(t.c.epoch_id == epoch_id, t.c.owner.is_not(None))
        .group_by(t.c.owner)
    )
    statement: postgresql.Insert | sqlite.Insert
    statement = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    names = ("trip_count", "pending_micro", "settled_micro")
    added = {name: table.c[name] + statement.excluded[name] for name in names}
    insert = statement.from_select(["owner", *names], select)
    conn.execute(insert.on_conflict_do_update(index_elements=["owner"], set_=added))
