"""Operators, the device registry and contract deployments on SQL."""

from __future__ import annotations

import sqlalchemy as sa

from sensors.address import Address
from sensors.messages import VehicleKind
from sensors.registration import Registration
from sensors.wire import VehicleStatus
from settlement.registry import RegistryEntry
from settlement.schema import DeploymentRow, OperatorRow, RegistryRow, VehicleRow, table_of
from settlement.sql.common import insert_ignore, upsert


class SqlRegistry:
    """``RegistryRepository`` in one connection's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._r = table_of(RegistryRow)

    def operators(self) -> dict[str, Address]:
        o = table_of(OperatorRow)
        return {r.operator: r.address for r in self._conn.execute(sa.select(o.c.operator, o.c.address))}

    def add_operator(self, operator: str, address: Address, now_ms: int) -> None:
        upsert(self._conn, table_of(OperatorRow), [{"operator": operator, "address": address, "added_ms": now_ms}])

    def entries(self) -> list[RegistryEntry]:
        rows = self._conn.execute(sa.select(self._r).order_by(self._r.c.vehicle_id, self._r.c.valid_from_ms))
        return [_entry(r) for r in rows]

    def add(self, entry: RegistryEntry, now_ms: int) -> bool:
        reg = entry.registration
        row = {
            "vehicle_id": reg.vehicle_id,
            "operator": reg.operator,
            "kind": reg.kind.value,
            "device": reg.device,
            "payee": reg.payee,
            "valid_from_ms": reg.valid_from_ms,
            "valid_until_ms": reg.valid_until_ms,
            "signature": reg.signature,
            "revoked_ms": entry.revoked_ms,
            "changed_ms": now_ms,
        }
        added = self._conn.execute(insert_ignore(self._conn, self._r).returning(self._r.c.id), [row]).all()
        if added:
            self._upsert_vehicle(reg)
        return bool(added)

    def _upsert_vehicle(self, reg: Registration) -> None:
        """The vehicle's row shows the payee and kind of its latest registration."""
        v = table_of(VehicleRow)
        values = {"operator": reg.operator, "kind": reg.kind.value, "owner": reg.payee}
        if self._conn.execute(sa.update(v).where(v.c.vehicle_id == reg.vehicle_id).values(**values)).rowcount == 0:
            self._conn.execute(
                insert_ignore(self._conn, v),
                [
                    {
                        "vehicle_id": reg.vehicle_id,
                        **values,
                        "online": False,
                        "state": VehicleStatus.UNKNOWN.value,
                        "last_seq": 0,
                        "state_ms": 0,
                    }
                ],
            )

    def revoke(self, vehicle_id: str, now_ms: int) -> int:
        r = self._r
        result = self._conn.execute(
            sa.update(r)
            .where(r.c.vehicle_id == vehicle_id, r.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms, changed_ms=now_ms)
        )
        return int(result.rowcount or 0)

    def version(self) -> tuple[int, ...]:
        r, o = self._r, table_of(OperatorRow)
        query = sa.select(
            sa.select(sa.func.count()).select_from(r).scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.max(r.c.changed_ms), 0)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(o).scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.max(o.c.added_ms), 0)).scalar_subquery(),
        )
        return tuple(int(n) for n in self._conn.execute(query).one())

    def deployment(self, chain_id: int) -> str | None:
        d = table_of(DeploymentRow)
        return self._conn.execute(sa.select(d.c.address).where(d.c.chain_id == chain_id)).scalar_one_or_none()

    def record_deployment(self, chain_id: int, address: str, now_ms: int) -> None:
        upsert(self._conn, table_of(DeploymentRow), [{"chain_id": chain_id, "address": address, "deployed_ms": now_ms}])

    def any_deployment(self) -> tuple[int, str] | None:
        """The chain id and address of the most recent deployment, if any (the database's chain)."""
        d = table_of(DeploymentRow)
        row = self._conn.execute(sa.select(d.c.chain_id, d.c.address).order_by(d.c.deployed_ms.desc())).first()
        return (int(row.chain_id), row.address) if row else None


def _entry(r: sa.Row) -> RegistryEntry:
    registration = Registration(
        vehicle_id=r.vehicle_id,
        operator=r.operator,
        kind=VehicleKind(r.kind),
        device=r.device,
        payee=r.payee,
        valid_from_ms=r.valid_from_ms,
        valid_until_ms=r.valid_until_ms,
        signature=r.signature,
    )
    return RegistryEntry(registration=registration, revoked_ms=r.revoked_ms)
