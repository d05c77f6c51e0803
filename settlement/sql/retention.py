"""Bounded storage on SQL: dead-letter samples and their counts, telemetry folded into tracks (for ``SqlReadings``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from settlement.dead_letters import MAX_REASON_CHARS, RejectCount, counts_of, cut
from settlement.records import Reject
from settlement.retention import StoredTelemetry, Track, TrackKey
from settlement.schema import RejectCountRow, RejectRow, TallyRow, TelemetryRow, TrackRow, VehicleRow, table_of
from settlement.sql.common import upsert

_R, _N, _T = table_of(RejectRow), table_of(RejectCountRow), table_of(TelemetryRow)
IDS_PER_STATEMENT = 1000


def add_rejects(conn: sa.Connection, rejects: Sequence[Reject], sample_bytes: int) -> None:
    """Insert the samples and add them to ``reject_counts`` (one upsert per code, in code order)."""
    if not rejects:
        return
    rows = [
        {
            "topic": r.topic[:1024],
            "payload": cut(r.payload, sample_bytes),
            "payload_bytes": len(r.payload),
            "code": str(r.code),
            "reason": r.reason[:MAX_REASON_CHARS],
            "received_ms": r.received_ms,
        }
        for r in rejects
    ]
    conn.execute(sa.insert(_R), rows)
    counts = counts_of([(str(r.code), r.received_ms) for r in rejects])
    statement = _insert(conn, _N)
    new = statement.excluded
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[_N.c.code],
            set_={
                "count": _N.c["count"] + new["count"],
                "first_ms": sa.case((new.first_ms < _N.c.first_ms, new.first_ms), else_=_N.c.first_ms),
                "last_ms": sa.case((new.last_ms > _N.c.last_ms, new.last_ms), else_=_N.c.last_ms),
            },
        ),
        [{"code": code, **asdict(c)} for code, c in counts.items()],
    )


def reject_counts(conn: sa.Connection) -> dict[str, RejectCount]:
    rows = conn.execute(sa.select(_N.c.code, _N.c["count"], _N.c.first_ms, _N.c.last_ms)).all()
    return {code: RejectCount(int(n), int(first), int(last)) for code, n, first, last in rows}


def prune_rejects(conn: sa.Connection, older_than_ms: int, keep: int) -> int:
    """Delete samples by age (the ``received_ms`` index) and by number (the ids above the ``keep``-th newest)."""
    deleted = conn.execute(sa.delete(_R).where(_R.c.received_ms < older_than_ms)).rowcount
    oldest_kept = sa.select(_R.c.id).order_by(_R.c.id.desc()).limit(1).offset(keep).scalar_subquery()
    boundary = conn.execute(sa.select(oldest_kept)).scalar()
    if boundary is not None:
        deleted += conn.execute(sa.delete(_R).where(_R.c.id <= boundary)).rowcount
    add_to_tally(conn, "rejects", deleted)
    return int(deleted)


def cut_samples(conn: sa.Connection, sample_bytes: int) -> int:
    size = max(0, sample_bytes)
    shorter = sa.func.substr(_R.c.payload, 1, size)
    longer = (_R.c.payload_bytes > size) & (sa.func.length(_R.c.payload) > size)
    statement = sa.update(_R).where(longer).values(payload=shorter)
    return int(conn.execute(statement).rowcount)


def telemetry_ids(conn: sa.Connection) -> tuple[int, int] | None:
    low, high = conn.execute(sa.select(sa.func.min(_T.c.id), sa.func.max(_T.c.id))).one()
    return None if low is None else (int(low), int(high))


def stale_telemetry(
    conn: sa.Connection, before_ms: int, seq_window: int, first_id: int, end_id: int
) -> list[StoredTelemetry]:
    """A window of row ids (a range scan of the primary key, whatever the planner thinks of the filters)."""
    v = table_of(VehicleRow)
    query = (
        sa.select(_T.c.id.label("row_id"), _T.c.vehicle_id, _T.c.seq, _T.c.timestamp_ms, _T.c.lat, _T.c.lon,
                  _T.c.speed_mps, _T.c.odometer_m, _T.c.battery_pct, _T.c.fuel_pct)
        .join(v, v.c.vehicle_id == _T.c.vehicle_id)
        .where(_T.c.id >= first_id, _T.c.id < end_id)
        .where(_T.c.timestamp_ms < before_ms, _T.c.seq <= v.c.last_seq - seq_window)
        .order_by(_T.c.id)
    )  # fmt: skip
    return [StoredTelemetry(**row._asdict()) for row in conn.execute(query)]


def tracks(conn: sa.Connection, keys: Collection[TrackKey]) -> dict[TrackKey, Track]:
    if not keys:
        return {}
    t = table_of(TrackRow)
    found: dict[TrackKey, Track] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), IDS_PER_STATEMENT):
        wanted = ordered[start : start + IDS_PER_STATEMENT]
        columns = (t.c[f.name] for f in fields(Track))
        query = sa.select(*columns).where(sa.tuple_(t.c.vehicle_id, t.c.minute_ms).in_(wanted))
        for row in conn.execute(query):
            track = Track(*row)
            found[track.key] = track
    return found


def fold_telemetry(conn: sa.Connection, folded: Sequence[Track], row_ids: Sequence[int]) -> int:
    names = [f.name for f in fields(Track)]
    rows = [{name: getattr(t, name) for name in names} for t in sorted(folded, key=lambda t: t.key)]
    upsert(conn, table_of(TrackRow), rows)
    if conn.dialect.name == "postgresql":  # one statement over one array, whatever the number of rows
        ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger()))
        deleted = conn.execute(sa.delete(_T).where(_T.c.id == sa.any_(ids)), {"ids": list(row_ids)}).rowcount
    else:
        deleted = 0
        for start in range(0, len(row_ids), IDS_PER_STATEMENT):
            chunk = row_ids[start : start + IDS_PER_STATEMENT]
            deleted += conn.execute(sa.delete(_T).where(_T.c.id.in_(chunk))).rowcount
    add_to_tally(conn, "telemetry", deleted)
    return int(deleted)


def add_to_tally(conn: sa.Connection, name: str, n: int) -> None:
    """Add back to a tally the rows retention deleted: tallies count rows ever stored."""
    if n:
        tally = table_of(TallyRow)
        statement = _insert(conn, tally)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[tally.c.name, tally.c.shard], set_={"n": tally.c.n + statement.excluded.n}
            ),
            {"name": name, "shard": 0, "n": n},
        )


def _insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
