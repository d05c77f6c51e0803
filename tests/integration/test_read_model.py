"""The read model at scale on SQLite and PostgreSQL: keyset pages, kept totals, tallies and indexed plans."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sensors.address import Address
from sensors.messages import VehicleKind
from settlement.db import Database
from settlement.epochs import LeafContext
from settlement.fares import Fare
from settlement.lifecycle import SETTLED, UNSETTLED, TripStatus
from settlement.ports import ChainReceipt
from settlement.queries import SqlReadModel, trips_query
from settlement.schema import EventRow, OwnerTotalRow, RejectRow, TelemetryRow, TripRow, table_of
from settlement.sql import SqlUnitOfWork
from settlement.trips import Mark, TripRecord
from settlement.views import InvalidCursor, PayoutView, TripView, cursor_after
from tests.money import closed
from tests.signed import OPERATOR, payee_of

T0 = 1_790_000_000_000
VEHICLES = [f"bike-{n}" for n in range(6)]
RIDERS = ["0xRiderA", "0xRiderB"]

CONTEXT = LeafContext(31337, Address(b"\x5a" * 20))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'test.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


def priced(n: int, end_ms: int | None = None) -> TripRecord:
    vehicle = VEHICLES[n % len(VEHICLES)]
    end = T0 + 60_000 * (n // 3)  # three trips end at each time: the trip id breaks the tie
    return TripRecord(
        f"{vehicle}:{n}", vehicle, OPERATOR, VehicleKind.BIKE, TripStatus.PRICED,
        Mark(n, end - 30_000, 51.2, 4.39, 100), Mark(n + 1, end if end_ms is None else end_ms, 51.21, 4.4, 900),
        RIDERS[n % 2], payee_of(vehicle), None, 800, 30, Fare(500_000 + n, 1_000, 0), None,
    )  # fmt: skip


def rejected(n: int) -> TripRecord:
    vehicle = VEHICLES[n % len(VEHICLES)]
    start = Mark(n, T0 + n, 51.2, 4.39, 100)
    return TripRecord(f"{vehicle}:{n}", vehicle, OPERATOR, VehicleKind.BIKE, TripStatus.REJECTED, start, None,
                      RIDERS[0], payee_of(vehicle), "no_lock")  # fmt: skip


def settle(database: Database, trips: list[TripRecord], epoch_id: int, *, commit: bool) -> None:
    """Batch ``trips`` into an epoch the way the aggregator does, and commit it on chain if ``commit``."""
    with SqlUnitOfWork(database) as uow:
        epoch = closed(epoch_id, trips, CONTEXT, book=uow.epochs.balances())
        uow.epochs.add(epoch, T0)
        uow.trips.batch([t.trip_id for t in trips], epoch_id, epoch.splits)
        uow.commit()
    if commit:
        for _ in range(2):  # committing twice counts once
            with SqlUnitOfWork(database) as uow:
                uow.epochs.mark_committed(epoch_id, ChainReceipt("0x" + "ab" * 32, 7, "0x" + "cd" * 32, 1), T0)
                uow.trips.commit_epoch(epoch_id)
                uow.commit()


@pytest.fixture()
def filled(database: Database) -> list[TripRecord]:
    trips = [priced(n) for n in range(40)]
    with SqlUnitOfWork(database) as uow:
        uow.trips.save(trips + [rejected(n) for n in range(40, 45)])
        uow.commit()
    settle(database, trips[:12], 1, commit=True)
    settle(database, trips[12:20], 2, commit=False)
    return trips


def payouts_over_every_trip(database: Database) -> list[PayoutView]:
    """The reference: what each owner earned, aggregated over every trip (the query the read model replaced)."""
    t = table_of(TripRow)
    settled = sorted(s.value for s in SETTLED)
    in_payouts = settled + sorted(s.value for s in UNSETTLED)
    query = (
        sa.select(
            t.c.owner,
            sa.func.count(),
            sa.func.sum(sa.case((t.c.status.in_(settled), t.c.fare_micro), else_=0)),
            sa.func.sum(sa.case((t.c.status.not_in(settled), t.c.fare_micro), else_=0)),
        )
        .where(t.c.status.in_(in_payouts))
        .group_by(t.c.owner)
    )
    with database.reading() as conn:
        rows = conn.execute(query).all()
    return sorted((PayoutView(str(o), int(n), int(s), int(p), 0, int(s)) for o, n, s, p in rows), key=lambda p: p.owner)


def read_all(read: object, limit: int, **filters: object) -> list[object]:
    """Every item of a list, read ``limit`` at a time through the cursors."""
    seen: list[object] = []
    cursor = None
    while True:
        page = read(limit=limit, cursor=cursor, **filters)  # type: ignore[operator]
        seen += page
        if len(page) < limit:
            return seen
        cursor = cursor_after(page[-1])


def test_payouts_kept_per_epoch_equal_an_aggregate_over_every_trip(
    database: Database, filled: list[TripRecord]
) -> None:
    model = SqlReadModel(database)
    expected = payouts_over_every_trip(database)
    assert read_all(model.payouts, 2) == model.payouts(limit=1000) == expected
    assert sum(p.settled_micro for p in expected) > 0 and sum(p.pending_micro for p in expected) > 0


def test_the_stats_count_trips_and_readings_from_kept_totals(database: Database, filled: list[TripRecord]) -> None:
    with database.transaction() as conn:
        conn.execute(sa.insert(table_of(TelemetryRow)), [
            {"vehicle_id": "bike-1", "seq": s, "timestamp_ms": T0, "lat": 51.2, "lon": 4.39, "speed_mps": 1.0,
             "odometer_m": 1} for s in range(7)
        ])  # fmt: skip
        conn.execute(sa.insert(table_of(EventRow)), [
            {"vehicle_id": "bike-1", "operator": OPERATOR, "kind": "bicycle", "seq": s, "timestamp_ms": T0,
             "event_type": "unlock", "lat": 51.2, "lon": 4.39, "odometer_m": 1} for s in range(3)
        ])  # fmt: skip
        conn.execute(sa.insert(table_of(RejectRow)), [{"topic": "t", "payload": b"x", "code": "schema",
                                                        "reason": "r", "received_ms": T0}])  # fmt: skip
    with database.transaction() as conn:
        conn.execute(sa.delete(table_of(TelemetryRow)).where(table_of(TelemetryRow).c.seq < 2))
    stats = SqlReadModel(database).stats()
    assert (stats.telemetry, stats.events, stats.rejected) == (5, 3, 1)
    assert stats.trips == len(filled)
    assert stats.epochs == 2 and stats.settled_micro == sum(t.fare.total_micro for t in filled[:12])  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "filters",
    [{}, {"rider": RIDERS[1]}, {"vehicle_id": "bike-2"}, {"status": "committed"}, {"status": "rejected"}],
)
def test_keyset_pages_read_each_list_once_in_a_stable_order(
    database: Database, filled: list[TripRecord], filters: dict[str, str]
) -> None:
    model = SqlReadModel(database)
    everything: list[TripView] = model.trips(limit=1000, **filters)  # type: ignore[arg-type]
    assert everything and read_all(model.trips, 4, **filters) == everything
    ended = [t for t in everything if t.end_ms is not None]
    assert ended == sorted(ended, key=lambda t: (t.end_ms, t.trip_id), reverse=True)
    assert everything[: len(ended)] == ended  # trips without an end come last


def test_the_other_lists_page_by_their_unique_keys(database: Database, filled: list[TripRecord]) -> None:
    model = SqlReadModel(database)
    assert read_all(model.epochs, 1) == model.epochs(limit=1000) and len(model.epochs()) == 2
    with database.transaction() as conn:
        conn.execute(sa.text("INSERT INTO vehicles (vehicle_id, operator, kind, online, state, last_seq, state_ms) "
                             "VALUES ('b', 'o', 'bicycle', true, 'unknown', 0, 0), "
                             "('a', 'o', 'bicycle', false, 'unknown', 0, 0)"))  # fmt: skip
    assert [v.vehicle_id for v in read_all(model.vehicles, 1)] == ["a", "b"]
    assert (model.stats().vehicles, model.stats().online) == (2, 1)


def test_a_cursor_from_another_list_is_refused(database: Database) -> None:
    model = SqlReadModel(database)
    trip_cursor = cursor_after(TripView("x:1", "x", "bicycle", None, None, 1, 2, 1, 1, 1, "priced", None))
    with pytest.raises(InvalidCursor):
        model.vehicles(cursor=trip_cursor)
    with pytest.raises(InvalidCursor):
        model.payouts(cursor=cursor_after(PayoutView("not-an-address", 0, 0, 0)))
    assert model.payouts(cursor=cursor_after(PayoutView(str(Address(b"\xff" * 20)), 0, 0, 0))) == []


LIST_QUERIES: dict[str, dict[str, str]] = {
    "newest trips": {},
    "a rider's trips": {"rider": RIDERS[0]},
    "a vehicle's trips": {"vehicle_id": "bike-1"},
    "trips of one status": {"status": "committed"},
}


def plan(conn: sa.Connection, statement: sa.Select[Any]) -> str:
    """The plan of ``statement``; PostgreSQL is told to avoid scans and sorts, so a sort in the plan means that
    no index serves the order (a table this small would be scanned anyway)."""
    sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "postgresql":
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(sa.text(f"SET {setting} = off"))
        return "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + sql)))
    return "\n".join(str(r[-1]) for r in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))


@pytest.mark.parametrize("name", sorted(LIST_QUERIES))
def test_every_list_order_is_read_from_an_index_without_a_sort(
    database: Database, filled: list[TripRecord], name: str
) -> None:
    first = trips_query(21, **LIST_QUERIES[name])
    later = trips_query(21, cursor=cursor_after(SqlReadModel(database).trips(limit=3)[-1]), **LIST_QUERIES[name])
    o = table_of(OwnerTotalRow)
    owners = sa.select(o).order_by(o.c.owner).limit(21)
    with database.reading() as conn:
        for statement in (first, later, owners):
            text = plan(conn, statement)
            assert "Sort" not in text and "TEMP B-TREE" not in text and ("Index" in text or "INDEX" in text), text
