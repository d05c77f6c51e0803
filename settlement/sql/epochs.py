"""Epochs, payouts and cumulative balances on SQL; the per-owner totals the read model serves (``owner_totals``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from sensors.address import Address
from settlement.clearing import ZERO_ROOT, ClearingCommit
from settlement.lifecycle import ON_CHAIN_EPOCH, EpochStatus, check_epoch
from settlement.ports import ChainReceipt
from settlement.schema import EpochBalanceRow, EpochRow, OwnerTotalRow, PayoutRow, TripRow, table_of

if TYPE_CHECKING:
    from settlement.epochs import ClosedEpoch

_CHUNK = 500  # accounts per IN (...) list


class SqlEpochs:
    """``EpochRepository`` in one connection's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._e = table_of(EpochRow)

    def last_id(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.max(self._e.c.epoch_id))).scalar_one_or_none() or 0)

    def add(self, epoch: ClosedEpoch, now_ms: int) -> None:
        commit = epoch.commit
        self._conn.execute(
            sa.insert(self._e),
            [
                {
                    "epoch_id": commit.epoch_id,
                    "trip_count": commit.trip_count,
                    "total_micro": epoch.total_micro,
                    "trips_root": _hex(commit.trips_root),
                    "registry_root": _hex(commit.registry_root),
                    "balances_root": _hex(commit.balances_root),
                    "spent_total": commit.spent_total,
                    "earned_total": commit.earned_total,
                    "signing_chain_id": epoch.signing_chain_id,
                    "status": EpochStatus.CLOSED.value,
                    "closed_ms": now_ms,
                }
            ],
        )
        self._conn.execute(
            sa.insert(table_of(PayoutRow)),
            [{"epoch_id": commit.epoch_id, "owner": owner, "amount_micro": amount} for owner, amount in epoch.payouts],
        )
        if epoch.balances:
            self._conn.execute(
                sa.insert(table_of(EpochBalanceRow)),
                [
                    {"epoch_id": commit.epoch_id, "account": account, "earned": earned, "spent": spent}
                    for account, (earned, spent) in epoch.balances.items()
                ],
            )

    def unsettled(self) -> list[ClearingCommit]:
        e = self._e
        query = sa.select(e).where(e.c.status == EpochStatus.CLOSED.value)
        return [_commit_of(r) for r in self._conn.execute(query.order_by(e.c.epoch_id))]

    def commit_of(self, epoch_id: int) -> ClearingCommit | None:
        row = self._conn.execute(sa.select(self._e).where(self._e.c.epoch_id == epoch_id)).one_or_none()
        return None if row is None else _commit_of(row)

    def last_committed(self) -> int:
        e = self._e
        query = sa.select(sa.func.max(e.c.epoch_id)).where(e.c.status.in_([s.value for s in ON_CHAIN_EPOCH]))
        return int(self._conn.execute(query).scalar_one_or_none() or 0)

    def balances(
        self, accounts: Collection[Address] | None = None, upto: int | None = None
    ) -> dict[Address, tuple[int, int]]:
        b = table_of(EpochBalanceRow)
        found: dict[Address, tuple[int, int]] = {}
        wanted = None if accounts is None else sorted(set(accounts))
        chunks: list[list[Address] | None] = [None]
        if wanted is not None:
            chunks = [wanted[i : i + _CHUNK] for i in range(0, len(wanted), _CHUNK)]
        for chunk in chunks:
            latest = sa.select(b.c.account, sa.func.max(b.c.epoch_id).label("epoch_id")).group_by(b.c.account)
            if upto is not None:
                latest = latest.where(b.c.epoch_id <= upto)
            if chunk is not None:
                latest = latest.where(b.c.account.in_(chunk))
            last = latest.subquery()
            query = sa.select(b.c.account, b.c.earned, b.c.spent).join(
                last, (b.c.account == last.c.account) & (b.c.epoch_id == last.c.epoch_id)
            )
            found.update((r.account, (int(r.earned), int(r.spent))) for r in self._conn.execute(query))
        return found

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

    def awaiting_finality(self) -> list[tuple[int, ChainReceipt | None]]:
        e = self._e
        query = sa.select(e).where(e.c.status == EpochStatus.COMMITTED.value).order_by(e.c.epoch_id)
        return [(r.epoch_id, _receipt_of(r)) for r in self._conn.execute(query)]

    def mark_final(self, epoch_id: int) -> None:
        self._move(epoch_id, EpochStatus.FINAL)

    def reopen(self, epoch_id: int) -> None:
        if self._move(epoch_id, EpochStatus.CLOSED, tx_hash=None, block_number=None, block_hash=None, gas_used=None,
                      settled_ms=None):  # fmt: skip
            _add_epoch_totals(self._conn, epoch_id, trips=False, settled=True, undo=True)

    def _move(self, epoch_id: int, new: EpochStatus, **values: object) -> bool:
        """Move committed epoch ``epoch_id`` to ``new`` (with ``values``); whether it was committed."""
        e = self._e
        check_epoch(EpochStatus.COMMITTED, new)
        moved = self._conn.execute(
            sa.update(e)
            .where(e.c.epoch_id == epoch_id, e.c.status == EpochStatus.COMMITTED.value)
            .values(status=new.value, **values)
        ).rowcount
        return bool(moved)


def _receipt_of(r: sa.Row) -> ChainReceipt | None:
    if r.tx_hash is None or r.block_number is None or r.block_hash is None:
        return None
    return ChainReceipt(r.tx_hash, int(r.block_number), r.block_hash, int(r.gas_used or 0))


def _hex(root: bytes) -> str:
    return "0x" + root.hex()


def _commit_of(r: sa.Row) -> ClearingCommit:
    """The clearing commit an epoch row holds (a row from before the clearing contract has a zero balances root)."""
    return ClearingCommit(
        epoch_id=r.epoch_id,
        trips_root=bytes.fromhex(r.trips_root[2:]),
        balances_root=bytes.fromhex(r.balances_root[2:]) if r.balances_root else ZERO_ROOT,
        registry_root=bytes.fromhex(r.registry_root[2:]),
        trip_count=r.trip_count,
        spent_total=int(r.spent_total or 0),
        earned_total=int(r.earned_total or 0),
    )


def tally_batched(conn: sa.Connection, epoch_id: int) -> None:
    """Add the trips just batched into ``epoch_id`` to their owners' totals, as pending (same transaction)."""
    _add_epoch_totals(conn, epoch_id, trips=True, settled=False)


def _add_epoch_totals(conn: sa.Connection, epoch_id: int, *, trips: bool, settled: bool, undo: bool = False) -> None:
    """Per owner of the epoch's trips (one probe of the epoch_id index): count them in (``trips``) and add their
    shares of the fares as pending, or (``settled``) move them from pending to settled (``undo``: back from settled
    to pending, after a reorg). One INSERT … SELECT … ON CONFLICT, so no address travels through Python."""
    t, table = table_of(TripRow), table_of(OwnerTotalRow)
    owed = sa.func.coalesce(sa.func.sum(sa.func.coalesce(t.c.owner_share, t.c.fare_micro)), 0)  # the owner's part
    fares = -owed if undo else owed
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
