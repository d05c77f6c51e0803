"""Epochs and payouts on SQL."""

from __future__ import annotations

import sqlalchemy as sa

from settlement.lifecycle import EpochStatus
from settlement.ports import ChainReceipt, EpochCommit
from settlement.schema import EpochRow, PayoutRow, table_of


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
        values: dict[str, object] = {"status": EpochStatus.COMMITTED.value, "settled_ms": now_ms}
        if receipt is not None:
            values.update(
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
            )
        self._conn.execute(sa.update(self._e).where(self._e.c.epoch_id == epoch_id).values(**values))
