"""Readings on SQL: telemetry, events, vehicle rows, dead letters and telemetry tracks."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import cache
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from sensors.messages import Event, Telemetry, VehicleState
from sensors.wire import VehicleStatus
from settlement.dead_letters import MAX_SAMPLE_BYTES, RejectCount
from settlement.records import Reject, VehicleMark
from settlement.retention import StoredTelemetry, Track, TrackKey
from settlement.schema import EventRow, TelemetryRow, VehicleRow, table_of
from settlement.sql import retention
from settlement.sql.common import insert_ignore
from settlement.vehicles import VehicleUpdate, is_gateway

_V = table_of(VehicleRow)
# the platform's receipt time, or the row's own when the caller gives none
_RECEIVED = sa.func.coalesce(sa.bindparam("b_received", type_=sa.BigInteger()), _V.c.received_ms)
_GATEWAY_ONLINE = (
    sa.update(_V)
    .where(_V.c.operator == sa.bindparam("b_operator"))
    .values(online=sa.bindparam("b_online"), received_ms=_RECEIVED)
)
_VEHICLE_ONLINE = (
    sa.update(_V)
    .where(_V.c.vehicle_id == sa.bindparam("b_vehicle"), _V.c.state_ms <= sa.bindparam("b_ts"))
    .values(online=sa.bindparam("b_online"), state_ms=sa.bindparam("b_ts"), received_ms=_RECEIVED)
)


class SqlReadings:
    """``ReadingRepository`` in one connection's transaction."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def add_telemetry(self, readings: Sequence[Telemetry]) -> int:
        if not readings:
            return 0
        if self._conn.dialect.name == "sqlite":
            # the hot path: the driver's own executemany, whose rowcount sums the rows really inserted
            values = [
                (t.vehicle_id, t.seq, t.timestamp, t.position.lat, t.position.lon, t.speed_mps, t.odometer_m,
                 t.battery_pct, t.fuel_pct, t.signature)
                for t in readings
            ]  # fmt: skip
            return int(self._conn.exec_driver_sql(_SQLITE_TELEMETRY, values).rowcount)
        table = table_of(TelemetryRow)
        rows = [
            {
                "vehicle_id": t.vehicle_id,
                "seq": t.seq,
                "timestamp_ms": t.timestamp,
                "lat": t.position.lat,
                "lon": t.position.lon,
                "speed_mps": t.speed_mps,
                "odometer_m": t.odometer_m,
                "battery_pct": t.battery_pct,
                "fuel_pct": t.fuel_pct,
                "signature": t.signature,
            }
            for t in readings
        ]
        # RETURNING counts the rows really inserted on every backend (rowcount is unreliable in executemany)
        return len(_insert_new(self._conn, table, rows, ("id",)).all())

    def add_events(self, events: Sequence[Event]) -> list[Event]:
        if not events:
            return []
        table = table_of(EventRow)
        rows = [
            {
                "vehicle_id": e.vehicle_id,
                "operator": e.operator,
                "kind": e.kind.value,
                "seq": e.seq,
                "timestamp_ms": e.timestamp,
                "event_type": e.event_type.value,
                "lat": e.position.lat,
                "lon": e.position.lon,
                "odometer_m": e.odometer_m,
                "battery_pct": e.battery_pct,
                "rider": e.rider,
                "detail": e.detail,
                "trip_seq": e.trip_seq,
                "signature": e.signature,
            }
            for e in events
        ]
        stored = {(r.vehicle_id, r.seq) for r in _insert_new(self._conn, table, rows, ("vehicle_id", "seq"))}
        new, seen = [], set()
        for e in events:
            key = (e.vehicle_id, e.seq)
            if key in stored and key not in seen:
                seen.add(key)
                new.append(e)
        return new

    def update_vehicles(self, updates: Sequence[VehicleUpdate]) -> None:
        v = table_of(VehicleRow)
        newer = (v.c.vehicle_id == sa.bindparam("b_vehicle")) & (v.c.last_seq < sa.bindparam("b_seq"))
        common = {
            "last_seq": sa.bindparam("b_seq"),
            "last_seen_ms": sa.bindparam("b_ts"),
            "lat": sa.bindparam("b_lat"),
            "lon": sa.bindparam("b_lon"),
            "battery_pct": sa.bindparam("b_battery"),
            "received_ms": _RECEIVED,
            # a reading from before the vehicle's last state (its offline state) does not bring it back online
            "online": sa.case((v.c.state_ms < sa.bindparam("b_ts"), sa.true()), else_=v.c.online),
        }
        with_state = [u for u in updates if u.state is not None]
        without = [u for u in updates if u.state is None]
        if with_state:
            fault = sa.bindparam("b_fault", type_=sa.String())
            statement = sa.update(v).where(newer).values(**common, state=sa.bindparam("b_state"), fault_code=fault)
            params = [_params(u) | {"b_state": str(u.state), "b_fault": u.fault_code} for u in with_state]
            self._conn.execute(statement, params)
        if without:
            keep = sa.case((v.c.state == VehicleStatus.UNKNOWN.value, VehicleStatus.AVAILABLE.value), else_=v.c.state)
            statement = sa.update(v).where(newer).values(**common, state=keep)
            self._conn.execute(statement, [_params(u) for u in without])

    def apply_states(self, states: Sequence[VehicleState], *, received_ms: int | None = None) -> None:
        # In arrival order: each run of gateway or of vehicle states is one executemany (run one after another)
        at = {"b_received": received_ms}
        for gateway, run in groupby(states, key=is_gateway):
            if gateway:
                params = [{"b_operator": s.operator, "b_online": s.online} | at for s in run]
                self._conn.execute(_GATEWAY_ONLINE, params)
            else:
                params = [{"b_vehicle": s.vehicle_id, "b_ts": s.timestamp, "b_online": s.online} | at for s in run]
                self._conn.execute(_VEHICLE_ONLINE, params)

    def add_rejects(self, rejects: Sequence[Reject], sample_bytes: int = MAX_SAMPLE_BYTES) -> None:
        retention.add_rejects(self._conn, rejects, sample_bytes)

    def reject_counts(self) -> dict[str, RejectCount]:
        return retention.reject_counts(self._conn)

    def prune_rejects(self, older_than_ms: int, keep: int) -> int:
        return retention.prune_rejects(self._conn, older_than_ms, keep)

    def cut_samples(self, sample_bytes: int) -> int:
        return retention.cut_samples(self._conn, sample_bytes)

    def telemetry_ids(self) -> tuple[int, int] | None:
        return retention.telemetry_ids(self._conn)

    def stale_telemetry(self, before_ms: int, seq_window: int, first_id: int, end_id: int) -> list[StoredTelemetry]:
        return retention.stale_telemetry(self._conn, before_ms, seq_window, first_id, end_id)

    def tracks(self, keys: Collection[TrackKey]) -> dict[TrackKey, Track]:
        return retention.tracks(self._conn, keys)

    def fold_telemetry(self, tracks: Sequence[Track], row_ids: Sequence[int]) -> int:
        return retention.fold_telemetry(self._conn, tracks, row_ids)

    def vehicle_marks(self) -> dict[str, VehicleMark]:
        v = table_of(VehicleRow)
        rows = self._conn.execute(sa.select(v.c.vehicle_id, v.c.last_seq, v.c.state_ms))
        return {r.vehicle_id: VehicleMark(r.last_seq, r.state_ms) for r in rows}

    def watermark_ms(self) -> int:
        e = table_of(EventRow)
        return int(self._conn.execute(sa.select(sa.func.max(e.c.timestamp_ms))).scalar_one_or_none() or 0)


_SQLITE_TELEMETRY = (
    "INSERT INTO telemetry (vehicle_id, seq, timestamp_ms, lat, lon, speed_mps, odometer_m, battery_pct, fuel_pct, "
    "signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def _insert_new(
    conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], returning: tuple[str, ...]
) -> sa.CursorResult[Any]:
    """INSERT ``rows`` ON CONFLICT DO NOTHING, RETURNING ``returning`` of the rows really inserted.

    On PostgreSQL one statement over one array per column (``unnest``): its text and plan are the same whatever
    the number of rows, where executemany with RETURNING sends a VALUES list of every row (several times slower).
    """
    if conn.dialect.name != "postgresql":
        return conn.execute(insert_ignore(conn, table).returning(*(table.c[n] for n in returning)), rows)
    columns = tuple(rows[0])
    return conn.execute(_unnest_insert(table, columns, returning), {c: [r[c] for r in rows] for c in columns})


@cache
def _unnest_insert(table: sa.Table, columns: tuple[str, ...], returning: tuple[str, ...]) -> sa.Executable:
    arrays = sa.select(*(sa.func.unnest(sa.bindparam(c, type_=postgresql.ARRAY(table.c[c].type))) for c in columns))
    return (
        postgresql.insert(table)
        .from_select(list(columns), arrays)
        .on_conflict_do_nothing()
        .returning(*(table.c[n] for n in returning))
    )


def _params(u: VehicleUpdate) -> dict[str, object]:
    return {
        "b_vehicle": u.vehicle_id,
        "b_seq": u.seq,
        "b_ts": u.timestamp_ms,
        "b_lat": u.lat,
        "b_lon": u.lon,
        "b_battery": u.battery_pct,
        "b_received": u.received_ms,
    }
