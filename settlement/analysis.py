"""The settlement database as pandas DataFrames, for research: trips, utilisation, revenue, epochs, readings.

Read-only queries in SQLAlchemy Core, read in chunks (``stream_results``: a server-side cursor on PostgreSQL) and
typed once: money and other counts are nullable ``Int64`` (int64 with a missing marker: exact, never a float),
times are timezone-aware UTC timestamps, text is ``string``, positions and speeds ``float64``. Addresses come as
their EIP-55 text. Every function takes a ``settlement.db.Database`` and changes nothing in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import sqlalchemy as sa

from settlement.db import Database
from settlement.lifecycle import SETTLED, TripStatus
from settlement.schema import EpochRow, TelemetryRow, TripRow, VehicleRow, table_of

CHUNK_ROWS = 50_000
"""Rows read per chunk: bounds the memory of a read to about this many rows beyond the frame it builds."""

Instant: TypeAlias = datetime | pd.Timestamp | str | int
"""A point in time: a datetime or timestamp (naive means UTC), ISO 8601 text, or milliseconds since the epoch."""

INT, FLOAT, TEXT, TIME = "Int64", "float64", "string", "datetime64[ms, UTC]"

TRIP_COLUMNS: Mapping[str, str] = {
    "trip_id": TEXT, "vehicle_id": TEXT, "unlock_seq": INT, "kind": TEXT, "operator": TEXT, "owner": TEXT,
    "rider": TEXT, "status": TEXT, "reason": TEXT, "start_time": TIME, "end_time": TIME,
    "start_lat": FLOAT, "start_lon": FLOAT, "end_lat": FLOAT, "end_lon": FLOAT, "distance_m": INT,
    "duration_s": INT, "unlock_micro": INT, "time_micro": INT, "distance_micro": INT, "fare_micro": INT,
    "charged_micro": INT, "limited_by": TEXT, "owner_share": INT, "fee": INT, "epoch_id": INT,
}  # fmt: skip
"""The columns of ``trips`` and their dtypes: ``fare_micro`` is the metered fare, ``charged_micro`` what the rider's
consent let be charged (``limited_by`` which bound set it), ``owner_share`` and ``fee`` its split once batched."""

READING_COLUMNS: Mapping[str, str] = {
    "vehicle_id": TEXT, "seq": INT, "time": TIME, "lat": FLOAT, "lon": FLOAT, "speed_mps": FLOAT,
    "odometer_m": INT, "battery_pct": FLOAT, "fuel_pct": FLOAT,
}  # fmt: skip

REVENUE_COLUMNS: Mapping[str, str] = {
    "owner": TEXT, "trips": INT, "earned_micro": INT, "fee_micro": INT, "settled_micro": INT, "pending_micro": INT,
    "unbatched_trips": INT, "unbatched_micro": INT,
}  # fmt: skip
"""Per owner: ``trips`` batched into epochs, the owner's share of their fares (``earned_micro``) and the Smart Zone's
fee, of which ``settled_micro`` is on chain and ``pending_micro`` not yet; ``unbatched_*``: priced trips waiting for
an epoch (what their riders were charged; the split is made when they are batched)."""

EPOCH_COLUMNS: Mapping[str, str] = {
    "epoch_id": INT, "status": TEXT, "trips": INT, "total_micro": INT, "spent_micro": INT, "earned_micro": INT,
    "fee_micro": INT, "closed_time": TIME, "settled_time": TIME, "tx_hash": TEXT, "block_number": INT,
    "gas_used": INT, "trips_root": TEXT, "balances_root": TEXT, "registry_root": TEXT,
}  # fmt: skip

UTILISATION_COLUMNS: Mapping[str, str] = {
    "vehicle_id": TEXT, "period": TIME, "on_trip_min": FLOAT, "utilisation": FLOAT,
}  # fmt: skip


def trips(db: Database, since: Instant | None = None, until: Instant | None = None) -> pd.DataFrame:
    """One row per trip (``TRIP_COLUMNS``), ordered by start (a trip known only by its lock: by its end), then id.

    ``since`` (inclusive) and ``until`` (exclusive) select trips by that same time."""
    return _concat(trip_chunks(db, since, until), TRIP_COLUMNS)


def trip_chunks(
    db: Database, since: Instant | None = None, until: Instant | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """``trips`` as frames of at most ``chunk_rows`` rows, in order: for exports of more than memory holds."""
    t = table_of(TripRow)
    when = sa.func.coalesce(t.c.start_ms, t.c.end_ms)
    query: sa.Select[Any] = sa.select(
        t.c.trip_id, t.c.vehicle_id, t.c.unlock_seq, t.c.kind, t.c.operator, _text(t.c.owner), t.c.rider, t.c.status,
        t.c.reason, t.c.start_ms.label("start_time"), t.c.end_ms.label("end_time"), t.c.start_lat, t.c.start_lon,
        t.c.end_lat, t.c.end_lon, t.c.distance_m, t.c.duration_s, t.c.unlock_micro, t.c.time_micro,
        t.c.distance_micro, t.c.fare_micro, t.c.charged_micro, t.c.limited_by, t.c.owner_share, t.c.fee, t.c.epoch_id,
    )  # fmt: skip
    query = _between(query, when, since, until).order_by(when, t.c.trip_id)
    return _chunks(db, query, TRIP_COLUMNS, chunk_rows)


def readings(
    db: Database,
    since: Instant | None = None,
    until: Instant | None = None,
    vehicle_id: str | None = None,
) -> pd.DataFrame:
    """Raw telemetry (``READING_COLUMNS``) by the readings' own time, then vehicle and seq; what retention folded
    into per-minute tracks is no longer here."""
    return _concat(reading_chunks(db, since, until, vehicle_id), READING_COLUMNS)


def reading_chunks(
    db: Database,
    since: Instant | None = None,
    until: Instant | None = None,
    vehicle_id: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """``readings`` as frames of at most ``chunk_rows`` rows, in order."""
    r = table_of(TelemetryRow)
    query: sa.Select[Any] = sa.select(
        r.c.vehicle_id, r.c.seq, r.c.timestamp_ms.label("time"), r.c.lat, r.c.lon, r.c.speed_mps, r.c.odometer_m,
        r.c.battery_pct, r.c.fuel_pct,
    )  # fmt: skip
    if vehicle_id is not None:
        query = query.where(r.c.vehicle_id == vehicle_id)
    query = _between(query, r.c.timestamp_ms, since, until).order_by(r.c.timestamp_ms, r.c.vehicle_id, r.c.seq)
    return _chunks(db, query, READING_COLUMNS, chunk_rows)


def utilisation(
    db: Database, freq: str = "h", since: Instant | None = None, until: Instant | None = None
) -> pd.DataFrame:
    """Per vehicle and period of ``freq`` (a fixed length: ``"h"``, ``"15min"``, ``"D"``; periods start at whole
    multiples of it in UTC), the minutes it spent on trips and that as a fraction of the period.

    A trip counts from its start to its end whatever its status (a trip the bounds rejected still took the
    vehicle), split across the periods it spans; a trip with a missing half counts nothing. Every vehicle of the
    registry and of the trips gets a row for every period from the first trip's start to the last one's end (or of
    the window ``since`` to ``until``, clipping the trips), 0 where it stood still, so that means over rows are means
    over time. Ordered by vehicle, then period.
    """
    step = _period_ms(freq)
    intervals = _trip_intervals(db, since, until)
    with db.reading() as conn:
        known = [v for (v,) in conn.execute(sa.select(table_of(VehicleRow).c.vehicle_id))]
    vehicles = sorted(set(known) | set(intervals["vehicle_id"]))
    used = _split(intervals, step)
    times = used.index.get_level_values("period")
    first = millis(since) // step * step if since is not None else times.min() if len(used) else None
    last = -(-millis(until) // step) * step - step if until is not None else times.max() if len(used) else None
    if first is None or last is None or last < first or not vehicles:
        return _typed(pd.DataFrame({c: [] for c in UTILISATION_COLUMNS}), UTILISATION_COLUMNS)
    grid = pd.MultiIndex.from_product([vehicles, np.arange(first, last + step, step)], names=["vehicle_id", "period"])
    ms = used.reindex(grid, fill_value=0).reset_index()
    frame = pd.DataFrame(
        {
            "vehicle_id": ms["vehicle_id"],
            "period": pd.to_datetime(ms["period"], unit="ms", utc=True),
            "on_trip_min": ms["ms"] / 60_000,
            "utilisation": ms["ms"] / step,
        }
    )
    return _typed(frame, UTILISATION_COLUMNS)


def _split(intervals: pd.DataFrame, step: int) -> pd.Series:
    """Milliseconds on trips per (vehicle, period start): each interval cut at the multiples of ``step`` it spans."""
    start = intervals["start_ms"].to_numpy(np.int64)
    end = intervals["end_ms"].to_numpy(np.int64)
    first = start // step * step
    count = ((end - 1) // step * step - first) // step + 1  # periods each interval touches (end exclusive)
    row = np.repeat(np.arange(len(start)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    period = first[row] + offset * step
    overlap = np.minimum(end[row], period + step) - np.maximum(start[row], period)
    used = pd.DataFrame({"vehicle_id": intervals["vehicle_id"].to_numpy(object)[row], "period": period, "ms": overlap})
    return used.groupby(["vehicle_id", "period"])["ms"].sum()


def revenue(db: Database) -> pd.DataFrame:
    """Per owner (``REVENUE_COLUMNS``), ordered by what they earned, most first, then by address."""
    t = table_of(TripRow)
    batched = t.c.epoch_id.is_not(None)
    share = sa.func.coalesce(t.c.owner_share, t.c.fare_micro)  # as the owner totals count a trip split before 0004
    settled = t.c.status.in_(sorted(s.value for s in (*SETTLED, TripStatus.ADJUSTED)))
    unbatched = sa.and_(t.c.status == TripStatus.PRICED.value, t.c.epoch_id.is_(None))
    charged = sa.func.coalesce(t.c.charged_micro, t.c.fare_micro)
    query = (
        sa.select(
            _text(t.c.owner),
            _count(batched).label("trips"),
            _sum(sa.case((batched, share))).label("earned_micro"),
            _sum(sa.case((batched, t.c.fee))).label("fee_micro"),
            _sum(sa.case((sa.and_(batched, settled), share))).label("settled_micro"),
            _sum(sa.case((sa.and_(batched, sa.not_(settled)), share))).label("pending_micro"),
            _count(unbatched).label("unbatched_trips"),
            _sum(sa.case((unbatched, charged))).label("unbatched_micro"),
        )
        .where(t.c.owner.is_not(None))
        .group_by(t.c.owner)
        .having(sa.or_(_count(batched) > 0, _count(unbatched) > 0))
    )
    frame = _read(db, query, REVENUE_COLUMNS)
    return frame.sort_values(["earned_micro", "owner"], ascending=[False, True], ignore_index=True)


def epochs(db: Database) -> pd.DataFrame:
    """One row per epoch (``EPOCH_COLUMNS``), by id: its status, trips and totals (what riders spent, owners earned,
    the fees of its trips), and where it went on chain."""
    e, t = table_of(EpochRow), table_of(TripRow)
    fees = (
        sa.select(t.c.epoch_id, _sum(t.c.fee).label("fee_micro"))
        .where(t.c.epoch_id.is_not(None))
        .group_by(t.c.epoch_id)
        .subquery()
    )
    query = (
        sa.select(
            e.c.epoch_id,
            e.c.status,
            e.c.trip_count.label("trips"),
            e.c.total_micro,
            e.c.spent_total.label("spent_micro"),
            e.c.earned_total.label("earned_micro"),
            sa.func.coalesce(fees.c.fee_micro, 0).label("fee_micro"),
            e.c.closed_ms.label("closed_time"),
            e.c.settled_ms.label("settled_time"),
            e.c.tx_hash,
            e.c.block_number,
            e.c.gas_used,
            e.c.trips_root,
            e.c.balances_root,
            e.c.registry_root,
        )  # fmt: skip
        .select_from(e.outerjoin(fees, fees.c.epoch_id == e.c.epoch_id))
        .order_by(e.c.epoch_id)
    )
    return _read(db, query, EPOCH_COLUMNS)


def millis(instant: Instant) -> int:
    """``instant`` in milliseconds since the Unix epoch (a naive datetime or text without an offset is UTC)."""
    if isinstance(instant, int) and not isinstance(instant, bool):
        return instant
    stamp = pd.Timestamp(instant)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


# --- reading -------------------------------------------------------------------------------------------------------
def _text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """An address column as its stored EIP-55 text, without parsing every row into an ``Address``."""
    return sa.type_coerce(column, sa.String).label(column.key or "")


def _sum(value: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """A sum that is 0 over nothing and a BIGINT on PostgreSQL too (not a NUMERIC)."""
    return sa.cast(sa.func.coalesce(sa.func.sum(value), 0), sa.BigInteger)


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return _sum(sa.case((condition, 1), else_=0))


def _between(query: sa.Select[Any], when: Any, since: Instant | None, until: Instant | None) -> sa.Select[Any]:
    if since is not None:
        query = query.where(when >= millis(since))
    if until is not None:
        query = query.where(when < millis(until))
    return query


def _chunks(db: Database, query: sa.Select[Any], columns: Mapping[str, str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    with db.reading() as conn:
        streamed = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
        for chunk in pd.read_sql(
            query, streamed, chunksize=chunk_rows, dtype_backend="numpy_nullable", coerce_float=False
        ):
            yield _typed(chunk, columns)


def _read(db: Database, query: sa.Select[Any], columns: Mapping[str, str]) -> pd.DataFrame:
    with db.reading() as conn:
        frame = pd.read_sql(query, conn, dtype_backend="numpy_nullable", coerce_float=False)
    return _typed(frame, columns)


def _concat(chunks: Iterator[pd.DataFrame], columns: Mapping[str, str]) -> pd.DataFrame:
    frames = list(chunks)
    if not frames:
        return _typed(pd.DataFrame({c: [] for c in columns}), columns)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _typed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with exactly ``columns``' dtypes, whatever a chunk's values let pandas infer (all-null columns)."""
    out = {}
    for name, dtype in columns.items():
        column = frame[name]
        if dtype == TIME and not isinstance(column.dtype, pd.DatetimeTZDtype):
            column = pd.to_datetime(column.astype(INT), unit="ms", utc=True)
        out[name] = column.astype(dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def _trip_intervals(db: Database, since: Instant | None, until: Instant | None) -> pd.DataFrame:
    """Vehicle, start and end (ms) of every trip with both halves that overlaps [since, until), clipped to it."""
    t = table_of(TripRow)
    query = sa.select(t.c.vehicle_id, t.c.start_ms, t.c.end_ms).where(
        t.c.start_ms.is_not(None), t.c.end_ms.is_not(None), t.c.end_ms > t.c.start_ms
    )
    if since is not None:
        query = query.where(t.c.end_ms > millis(since))
    if until is not None:
        query = query.where(t.c.start_ms < millis(until))
    columns = {"vehicle_id": TEXT, "start_ms": INT, "end_ms": INT}
    frame = _concat(_chunks(db, query, columns, CHUNK_ROWS), columns)
    if since is not None:
        frame["start_ms"] = frame["start_ms"].clip(lower=millis(since))
    if until is not None:
        frame["end_ms"] = frame["end_ms"].clip(upper=millis(until))
    return frame


def _period_ms(freq: str) -> int:
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError):
        raise ValueError(f"utilisation needs a fixed period such as 'h', '15min' or 'D', not {freq!r}") from None
    ms = int(step.value // 1_000_000)
    if ms <= 0 or step.value % 1_000_000:
        raise ValueError(f"utilisation needs a period of whole milliseconds, not {freq!r}")
    return ms
