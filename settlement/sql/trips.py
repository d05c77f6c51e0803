"""Trips on SQL: one row per trip id, from its first half to its epoch."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa

from sensors.address import Address
from sensors.consent import consent_from_json, to_json, voucher_from_json
from sensors.messages import VehicleKind
from settlement.fares import Fare
from settlement.lifecycle import HELD_REASONS, TripStatus, check_trip
from settlement.schema import TripRow, table_of
from settlement.sql.common import upsert
from settlement.sql.epochs import tally_batched
from settlement.trips import Mark, TripRecord, TripSplit

_CHUNK = 500  # ids per IN (...) list
_LATEST_CHUNK = 500  # per-vehicle probes per statement


class SqlTrips:
    """``TripRepository`` in one connection's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._t = table_of(TripRow)

    def get(self, trip_ids: Collection[str]) -> dict[str, TripRecord]:
        found: dict[str, TripRecord] = {}
        ids = sorted(set(trip_ids))
        for i in range(0, len(ids), _CHUNK):
            query = sa.select(self._t).where(self._t.c.trip_id.in_(ids[i : i + _CHUNK]))
            found.update((r.trip_id, record_of(r)) for r in self._conn.execute(query))
        return found

    def unfinished_of(self, vehicle_ids: Collection[str]) -> dict[str, TripRecord]:
        t = self._t
        found: dict[str, TripRecord] = {}
        ids = sorted(set(vehicle_ids))
        unfinished = (t.c.status == TripStatus.OPEN.value) | (
            (t.c.status == TripStatus.REJECTED.value) & t.c.reason.in_(sorted(HELD_REASONS))
        )
        for i in range(0, len(ids), _CHUNK):
            # (status, vehicle_id) is indexed: open trips are few whatever the history
            query = sa.select(t).where(t.c.vehicle_id.in_(ids[i : i + _CHUNK]), unfinished)
            found.update((r.trip_id, record_of(r)) for r in self._conn.execute(query))
        for i in range(0, len(ids), _LATEST_CHUNK):
            found.update((r.trip_id, record_of(r)) for r in self._latest_ended(ids[i : i + _LATEST_CHUNK]))
        return found

    def _latest_ended(self, vehicle_ids: list[str]) -> list[sa.Row]:
        """Per vehicle, the ended trip with the highest unlock seq: one index probe each (vehicle, unlock_seq)."""
        if not vehicle_ids:
            return []
        return list(self._conn.execute(_latest_ended_query(self._conn.dialect.name), {"ids": vehicle_ids}))

    def used_nonces(self, riders: Collection[Address]) -> dict[Address, set[int]]:
        t, found = self._t, {}  # type: ignore[var-annotated]
        wanted = sorted(set(riders), key=lambda a: a.raw)
        for i in range(0, len(wanted), _CHUNK):
            query = sa.select(t.c.consent_rider, t.c.consent_nonce).where(t.c.consent_rider.in_(wanted[i : i + _CHUNK]))
            for rider, nonce in self._conn.execute(query):
                found.setdefault(rider, set()).add(nonce)
        return found

    def open(self) -> list[TripRecord]:
        query = sa.select(self._t).where(self._t.c.status == TripStatus.OPEN.value)
        return [record_of(r) for r in self._conn.execute(query)]

    def save(self, records: Sequence[TripRecord]) -> None:
        upsert(self._conn, self._t, [row_of(r) for r in records])

    def priced_unbatched(self, limit: int) -> list[TripRecord]:
        t = self._t
        query = (
            sa.select(t)
            .where(t.c.status == TripStatus.PRICED.value, t.c.epoch_id.is_(None))
            .order_by(t.c.end_ms, t.c.trip_id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [record_of(r) for r in self._conn.execute(query)]

    def batch(self, trip_ids: Collection[str], epoch_id: int, splits: Sequence[TripSplit] = ()) -> int:
        ids = sorted(set(trip_ids))
        moved = 0
        for i in range(0, len(ids), _CHUNK):
            moved += self._conn.execute(
                sa.update(self._t)
                .where(self._t.c.trip_id.in_(ids[i : i + _CHUNK]), self._t.c.status == TripStatus.PRICED.value)
                .values(epoch_id=epoch_id, status=TripStatus.BATCHED.value)
            ).rowcount
        if splits:
            t = self._t
            self._conn.execute(
                sa.update(t)
                .where(t.c.trip_id == sa.bindparam("b_trip_id"), t.c.epoch_id == epoch_id)
                .values(
                    owner_share=sa.bindparam("b_owner_share"),
                    fee=sa.bindparam("b_fee"),
                    rider_account=sa.bindparam("b_rider_account", type_=t.c.rider_account.type),
                ),
                [
                    {"b_trip_id": s.trip_id, "b_owner_share": s.owner_share, "b_fee": s.fee, "b_rider_account": s.rider}
                    for s in splits
                ],
            )
        if moved:  # a repeated call moves nothing and must not count the epoch's trips twice
            tally_batched(self._conn, epoch_id)  # the read model's per-owner totals, in the same transaction
        return moved

    def in_epoch(self, epoch_id: int) -> list[TripRecord]:
        t = self._t
        query = sa.select(t).where(t.c.epoch_id == epoch_id).order_by(t.c.end_ms, t.c.trip_id)
        return [record_of(r) for r in self._conn.execute(query)]

    def commit_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.BATCHED, TripStatus.COMMITTED)

    def finalise_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.COMMITTED, TripStatus.FINAL)

    def reopen_epoch(self, epoch_id: int) -> None:
        self._move(epoch_id, TripStatus.COMMITTED, TripStatus.BATCHED)

    def _move(self, epoch_id: int, was: TripStatus, now: TripStatus) -> None:
        check_trip(was, now)
        self._conn.execute(
            sa.update(self._t)
            .where(self._t.c.epoch_id == epoch_id, self._t.c.status == was.value)
            .values(status=now.value)
        )


@cache
def _latest_ended_query(dialect: str) -> sa.Select[Any]:
    """Trips whose id is, for some vehicle of the JSON array ``:ids``, that of its ended trip with the highest
    unlock seq: a correlated probe of the (vehicle_id, unlock_seq) index from the top, per vehicle.

    One statement whatever the number of vehicles, so it is built and compiled once per dialect.
    """
    t = table_of(TripRow)
    probe = t.alias("probe")
    elements = sa.func.json_array_elements_text if dialect == "postgresql" else sa.func.json_each
    ids = elements(sa.bindparam("ids", type_=sa.JSON)).table_valued("value")
    latest = (
        sa.select(probe.c.trip_id)
        .where(probe.c.vehicle_id == ids.c.value, probe.c.end_seq.is_not(None))
        .order_by(probe.c.unlock_seq.desc())
        .limit(1)
        .correlate(ids)
        .scalar_subquery()
    )
    return sa.select(t).where(t.c.trip_id.in_(sa.select(latest).select_from(ids)))


def row_of(r: TripRecord) -> dict[str, object]:
    """The row of a trip record."""
    row: dict[str, object] = {
        "trip_id": r.trip_id,
        "vehicle_id": r.vehicle_id,
        "unlock_seq": r.unlock_seq,
        "operator": r.operator,
        "kind": r.kind.value,
        "status": r.status.value,
        "reason": r.reason,
        "owner": r.payee,
        "rider": r.rider,
        "distance_m": r.distance_m,
        "duration_s": r.duration_s,
        "unlock_micro": r.fare.unlock_micro if r.fare else None,
        "time_micro": r.fare.time_micro if r.fare else None,
        "distance_micro": r.fare.distance_micro if r.fare else None,
        "fare_micro": r.fare.total_micro if r.fare else None,
        "epoch_id": r.epoch_id,
        "owner_share": r.owner_share,
        "fee": r.fee,
        "rider_account": r.rider_account,
        "consent": None if r.consent is None else _JSON(to_json(r.consent)),
        "voucher": None if r.voucher is None else _JSON(to_json(r.voucher)),
        "consent_rider": r.consent.rider if r.consent is not None and r.charged_micro is not None else None,
        "consent_nonce": r.consent.nonce if r.consent is not None and r.charged_micro is not None else None,
        "charged_micro": r.charged_micro,
        "limited_by": r.limited_by,
    }
    for prefix, mark in (("start", r.start), ("end", r.end)):
        row[f"{prefix}_seq"] = mark.seq if mark else None
        row[f"{prefix}_ms"] = mark.timestamp_ms if mark else None
        row[f"{prefix}_lat"] = mark.lat if mark else None
        row[f"{prefix}_lon"] = mark.lon if mark else None
        row[f"{prefix}_odometer_m"] = mark.odometer_m if mark else None
    return row


def _mark(r: sa.Row, prefix: str) -> Mark | None:
    seq = getattr(r, f"{prefix}_seq")
    if seq is None:
        return None
    return Mark(
        seq=seq,
        timestamp_ms=getattr(r, f"{prefix}_ms"),
        lat=getattr(r, f"{prefix}_lat"),
        lon=getattr(r, f"{prefix}_lon"),
        odometer_m=getattr(r, f"{prefix}_odometer_m"),
    )


def record_of(r: sa.Row) -> TripRecord:
    """The trip record of a row."""
    fare = None
    if r.fare_micro is not None:
        fare = Fare(r.unlock_micro, r.time_micro, r.distance_micro)
    return TripRecord(
        trip_id=r.trip_id,
        vehicle_id=r.vehicle_id,
        operator=r.operator,
        kind=VehicleKind(r.kind),
        status=TripStatus(r.status),
        start=_mark(r, "start"),
        end=_mark(r, "end"),
        rider=r.rider,
        payee=r.owner,
        reason=r.reason,
        distance_m=r.distance_m,
        duration_s=r.duration_s,
        fare=fare,
        epoch_id=r.epoch_id,
        owner_share=r.owner_share,
        fee=r.fee,
        rider_account=r.rider_account,
        consent=None if r.consent is None else consent_from_json(json.loads(r.consent)),
        voucher=None if r.voucher is None else voucher_from_json(json.loads(r.voucher)),
        charged_micro=r.charged_micro,
        limited_by=r.limited_by,
    )


_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
