"""The SQL read model behind the dashboard (implements ``settlement.views.ReadModel``)."""

from __future__ import annotations

import sqlalchemy as sa

from settlement.db import Database
from settlement.lifecycle import ON_CHAIN_EPOCH, SETTLED, UNSETTLED, TripStatus
from settlement.schema import EpochRow, EventRow, PayoutRow, RejectRow, TelemetryRow, TripRow, VehicleRow, table_of
from settlement.views import EpochView, PayoutView, RegistryProofView, Stats, TripView, VehicleView

PRICED_OR_LATER = sorted(s.value for s in (TripStatus.PRICED, *UNSETTLED, *SETTLED, TripStatus.ADJUSTED))
_SETTLED = sorted(s.value for s in SETTLED)
_UNSETTLED = sorted(s.value for s in UNSETTLED)
_ON_CHAIN = sorted(s.value for s in ON_CHAIN_EPOCH)


class SqlReadModel:
    """Read-only queries over the settlement database."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def vehicles(self) -> list[VehicleView]:
        with self._db.reading() as conn:
            rows = conn.execute(sa.select(table_of(VehicleRow)).order_by(VehicleRow.vehicle_id)).all()
        return [_vehicle(r) for r in rows]

    def vehicle(self, vehicle_id: str) -> VehicleView | None:
        with self._db.reading() as conn:
            row = conn.execute(sa.select(table_of(VehicleRow)).where(VehicleRow.vehicle_id == vehicle_id)).first()
        return _vehicle(row) if row else None

    def trips(
        self,
        limit: int = 100,
        vehicle_id: str | None = None,
        rider: str | None = None,
        status: str | None = None,
    ) -> list[TripView]:
        t = table_of(TripRow)
        query = sa.select(t).order_by(t.c.end_ms.desc(), t.c.trip_id).limit(limit)
        query = query.where(t.c.status == status) if status else query.where(t.c.status.in_(PRICED_OR_LATER))
        if vehicle_id is not None:
            query = query.where(t.c.vehicle_id == vehicle_id)
        if rider is not None:
            query = query.where(t.c.rider == rider)
        with self._db.reading() as conn:
            return [_trip(r) for r in conn.execute(query).all()]

    def trip(self, trip_id: str) -> TripView | None:
        t = table_of(TripRow)
        with self._db.reading() as conn:
            row = conn.execute(sa.select(t).where(t.c.trip_id == trip_id)).first()
        return _trip(row) if row else None

    def epochs(self, limit: int = 100) -> list[EpochView]:
        e = table_of(EpochRow)
        with self._db.reading() as conn:
            rows = conn.execute(sa.select(e).order_by(e.c.epoch_id.desc()).limit(limit)).all()
        return [
            EpochView(
                r.epoch_id,
                r.trip_count,
                r.total_micro,
                r.trips_root,
                r.status,
                r.tx_hash,
                r.block_number,
                r.gas_used,
                r.closed_ms,
                r.settled_ms,
                r.registry_root,
            )
            for r in rows
        ]

    def payouts(self) -> list[PayoutView]:
        t = table_of(TripRow)
        settled = sa.func.coalesce(sa.func.sum(sa.case((t.c.status.in_(_SETTLED), t.c.fare_micro), else_=0)), 0)
        pending = sa.func.coalesce(sa.func.sum(sa.case((t.c.status.in_(_UNSETTLED), t.c.fare_micro), else_=0)), 0)
        query = (
            sa.select(t.c.owner, sa.func.count(), settled, pending)
            .where(t.c.status.in_(_SETTLED + _UNSETTLED))
            .group_by(t.c.owner)
            .order_by(t.c.owner)
        )
        with self._db.reading() as conn:
            return [PayoutView(str(owner), int(n), int(s), int(p)) for owner, n, s, p in conn.execute(query).all()]

    def stats(self) -> Stats:
        def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
            return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()

        v, e, t = table_of(VehicleRow), table_of(EpochRow), table_of(TripRow)
        query = sa.select(
            count(v),
            count(v, v.c.online.is_(True)),
            count(table_of(TelemetryRow)),
            count(table_of(EventRow)),
            count(table_of(RejectRow)),
            count(t, t.c.status.in_(PRICED_OR_LATER)),
            count(e),
            sa.select(sa.func.coalesce(sa.func.sum(e.c.total_micro), 0))
            .where(e.c.status.in_(_ON_CHAIN))
            .scalar_subquery(),
        )
        with self._db.reading() as conn:
            row = conn.execute(query).one()
        return Stats(*(int(x) for x in row))

    def rejects_by_code(self) -> dict[str, int]:
        r = table_of(RejectRow)
        with self._db.reading() as conn:
            rows = conn.execute(sa.select(r.c.code, sa.func.count()).group_by(r.c.code)).all()
        return {code: int(n) for code, n in rows}

    def rejected_trips_by_reason(self) -> dict[str, int]:
        """How many trips are held as rejected, per reason code."""
        t = table_of(TripRow)
        query = (
            sa.select(t.c.reason, sa.func.count())
            .where(t.c.status == TripStatus.REJECTED.value)
            .group_by(t.c.reason)
        )
        with self._db.reading() as conn:
            return {reason: int(n) for reason, n in conn.execute(query).all()}

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        from settlement.registry import Registry
        from settlement.sql.registry import SqlRegistry

        with self._db.reading() as conn:
            repository = SqlRegistry(conn)
            registry = Registry(repository.operators(), repository.entries())
        entry = registry.latest(vehicle_id)
        if entry is None:
            return None
        reg = entry.registration
        return RegistryProofView(
            vehicle_id=reg.vehicle_id,
            operator=reg.operator,
            kind=reg.kind.value,
            device=str(reg.device),
            payee=str(reg.payee),
            valid_from_ms=reg.valid_from_ms,
            valid_until_ms=reg.valid_until_ms,
            revoked_ms=entry.revoked_ms,
            leaf=entry.leaf(),
            proof=["0x" + step.hex() for step in registry.proof(entry)],
            root="0x" + registry.root.hex(),
        )

    def payout_totals(self) -> dict[str, int]:
        """Settled micro-EUR per owner (EIP-55) according to the epochs' payout rows (to compare with the chain)."""
        p, e = table_of(PayoutRow), table_of(EpochRow)
        query = (
            sa.select(p.c.owner, sa.func.sum(p.c.amount_micro))
            .join(e, e.c.epoch_id == p.c.epoch_id)
            .where(e.c.status.in_(_ON_CHAIN))
            .group_by(p.c.owner)
        )
        with self._db.reading() as conn:
            return {str(owner): int(total) for owner, total in conn.execute(query).all()}


def _vehicle(r: sa.Row) -> VehicleView:
    return VehicleView(
        r.vehicle_id,
        r.operator,
        r.kind,
        str(r.owner) if r.owner else None,
        r.state,
        bool(r.online),
        r.battery_pct,
        r.lat,
        r.lon,
        r.last_seen_ms,
    )


def _trip(r: sa.Row) -> TripView:
    return TripView(
        r.trip_id,
        r.vehicle_id,
        r.kind,
        str(r.owner) if r.owner else None,
        r.rider,
        r.start_ms,
        r.end_ms,
        r.duration_s,
        r.distance_m,
        r.fare_micro,
        r.status,
        r.epoch_id,
        r.reason,
    )
