"""The dashboard's read model on SQLite and PostgreSQL: vehicle filters, sorts and cursors, the fleet, tracks, trip
filters, running trips, KPIs, payouts by owner, rejects, indexed plans and migration 0006 up and down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from sensors.address import Address
from settlement.db import Database
from settlement.queries import (
    SqlReadModel,
    kpis_query,
    received_since_query,
    running_query,
    trips_query,
    vehicles_query,
)
from settlement.schema import EpochRow, OwnerTotalRow, RejectRow, TelemetryRow, TripRow, VehicleRow, table_of
from settlement.views import VEHICLE_SORTS, InvalidCursor, VehicleView, cursor_after
from tests.integration.test_read_model import plan

T0 = 1_790_000_000_000
OWNERS = [str(Address(bytes([n + 1]) * 20)) for n in range(3)]
RIDERS = ["0xRiderA", "0xRiderB"]
NULLS_LAST = float("inf")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


def vehicle_row(n: int) -> dict[str, Any]:
    """Vehicles with repeated and missing batteries and receipt times, so that ties and nulls are paged over."""
    return {
        "vehicle_id": f"{'Bike' if n % 2 else 'car'}-{n:02d}",
        "operator": "op",
        "kind": "bicycle" if n % 2 else "car",
        "owner": OWNERS[n % 3],
        "online": n % 4 != 0,
        "state": ["available", "on_trip", "non_operational"][n % 3],
        "battery_pct": None if n % 5 == 0 else float(n % 4 * 10),
        "lat": 51.2,
        "lon": 4.4,
        "last_seq": 1,
        "last_seen_ms": T0 + n,
        "state_ms": T0,
        "received_ms": None if n % 6 == 0 else T0 + (n % 4) * 1_000,
        "fault_code": "motor" if n % 3 == 2 else None,
    }


def trip_row(n: int, **changes: Any) -> dict[str, Any]:
    end = T0 + 60_000 * (n // 2)  # two trips end at each time: the trip id breaks the tie
    row = {
        "trip_id": f"bike-{n % 4}:{n:03d}",
        "vehicle_id": f"bike-{n % 4}",
        "unlock_seq": n,
        "operator": "op",
        "kind": "bicycle" if n % 3 else "car",
        "status": "priced",
        "owner": OWNERS[n % 3],
        "rider": RIDERS[n % 2],
        "start_ms": end - 600_000,
        "end_ms": end,
        "duration_s": 600 + n,
        "distance_m": 1_000 + n,
        "fare_micro": 1_000_000 + n,
        "charged_micro": 900_000 if n % 5 == 0 else None,
        "epoch_id": 1 if n < 6 else None,
        "voucher": None,
        "reason": None,
    }  # every row has every key: an executemany inserts the first row's columns
    return row | changes


def open_trip(n: int, rider: str) -> dict[str, Any]:
    voucher = json.dumps({"trip_id": f"bike-9:{n}", "cumulative_micro": 250_000 + n})
    return trip_row(n, status="open", end_ms=None, duration_s=None, distance_m=None, fare_micro=None,
                    rider=rider, start_ms=T0 + 10 * n, voucher=voucher, epoch_id=None)  # fmt: skip


@pytest.fixture()
def filled(database: Database) -> SqlReadModel:
    epoch = {"epoch_id": 1, "trip_count": 6, "total_micro": 0, "trips_root": "0x", "registry_root": "0x",
             "status": "committed", "closed_ms": T0}  # fmt: skip
    with database.transaction() as conn:
        conn.execute(sa.insert(table_of(VehicleRow)), [vehicle_row(n) for n in range(30)])
        conn.execute(sa.insert(table_of(EpochRow)), [epoch])
        trips = [trip_row(n) for n in range(40)] + [open_trip(n, RIDERS[n % 2]) for n in range(100, 105)]
        trips.append(trip_row(50, status="rejected", reason="no_lock", end_ms=None))
        conn.execute(sa.insert(table_of(TripRow)), trips)
        conn.execute(
            sa.insert(table_of(OwnerTotalRow)),
            [{"owner": OWNERS[0], "trip_count": 3, "pending_micro": 100, "settled_micro": 7_000_000}],
        )
        telemetry = [
            {"vehicle_id": "bike-1", "seq": s, "timestamp_ms": T0 + 1_000 * s, "lat": 51.0 + s / 1000, "lon": 4.0,
             "speed_mps": float(s), "odometer_m": s, "battery_pct": 90.0 - s}
            for s in range(1, 21)
        ]  # fmt: skip
        conn.execute(sa.insert(table_of(TelemetryRow)), telemetry)
        rejects = [
            {"topic": "t", "payload": b"x", "payload_bytes": 1, "code": code, "reason": "r", "received_ms": at}
            for code, at in [("bad_signature", T0), ("bad_signature", T0 + 5), ("stale_seq", T0 + 9), ("x", T0 - 1)]
        ]
        conn.execute(sa.insert(table_of(RejectRow)), rejects)
    return SqlReadModel(database)


def read_all(model: Any, limit: int, **filters: Any) -> list[VehicleView]:
    sort = filters.get("sort", "vehicle_id")
    seen: list[VehicleView] = []
    cursor = None
    while True:
        page = model.vehicles(limit, cursor, **filters)
        seen += page
        if len(page) < limit:
            return seen
        cursor = cursor_after(page[-1], sort=sort)


def expected_order(views: list[VehicleView], sort: str) -> list[str]:
    def key(v: VehicleView) -> tuple[float, str]:
        value = v.received_ms if sort == "-received_ms" else v.battery_pct
        if sort == "vehicle_id":
            return (0.0, v.vehicle_id)
        if value is None:
            return (NULLS_LAST, v.vehicle_id)
        return (-value if sort.startswith("-") else value, v.vehicle_id)

    return [v.vehicle_id for v in sorted(views, key=key)]


@pytest.mark.parametrize("sort", VEHICLE_SORTS)
def test_every_vehicle_sort_pages_through_ties_and_nulls_in_order_without_loss(filled: SqlReadModel, sort: str) -> None:
    every = filled.fleet()
    for limit in (1, 4, 7):
        ids = [v.vehicle_id for v in read_all(filled, limit, sort=sort)]
        assert ids == expected_order(every, sort)


@pytest.mark.parametrize("sort", VEHICLE_SORTS)
def test_a_sorted_vehicle_list_pages_the_same_under_a_filter(filled: SqlReadModel, sort: str) -> None:
    bikes = [v for v in filled.fleet() if v.kind == "bicycle" and v.online]
    got = read_all(filled, 3, sort=sort, kind="bicycle", online=True)
    assert [v.vehicle_id for v in got] == expected_order(bikes, sort) and len(got) > 3


@pytest.mark.parametrize("made", VEHICLE_SORTS)
@pytest.mark.parametrize("used", VEHICLE_SORTS)
def test_a_cursor_of_one_sort_is_refused_by_another(filled: SqlReadModel, made: str, used: str) -> None:
    cursor = cursor_after(filled.vehicles(3, sort=made)[-1], sort=made)
    if made == used:
        assert filled.vehicles(3, cursor, sort=used)
    else:
        with pytest.raises(InvalidCursor):
            filled.vehicles(3, cursor, sort=used)


@pytest.mark.parametrize("cursor", ["garbage!", "W10", "WyJ4Il0", "WyJiYXR0ZXJ5X3BjdCIsIm5vIiwieCJd", "WzEsMiwzXQ"])
@pytest.mark.parametrize("sort", VEHICLE_SORTS)
def test_a_cursor_no_page_handed_out_is_refused_under_every_sort(filled: SqlReadModel, cursor: str, sort: str) -> None:
    if sort == "vehicle_id" and cursor == "WyJ4Il0":  # ["x"]: a valid id cursor
        assert filled.vehicles(3, cursor, sort=sort) == []
        return
    with pytest.raises(InvalidCursor):
        filled.vehicles(3, cursor, sort=sort)


def test_an_unknown_sort_is_a_value_error(filled: SqlReadModel) -> None:
    with pytest.raises(ValueError, match="unknown sort"):
        filled.vehicles(sort="owner")


def test_vehicles_are_filtered_by_state_kind_owner_online_and_a_part_of_the_id(filled: SqlReadModel) -> None:
    every = filled.fleet()
    assert filled.vehicles(100, state="on_trip") == [v for v in every if v.state == "on_trip"]
    assert filled.vehicles(100, kind="car", online=False) == [v for v in every if v.kind == "car" and not v.online]
    lower = OWNERS[1].lower()  # an owner in any case is the same owner
    assert filled.vehicles(100, owner=lower) == [v for v in every if v.owner == OWNERS[1]] != []
    assert [v.vehicle_id for v in filled.vehicles(100, search="BIKE-1")] == [f"Bike-{n}" for n in (11, 13, 15, 17, 19)]
    assert filled.vehicles(100, search="%") == [] and filled.vehicles(100, search="_") == []


def test_the_fleet_holds_every_vehicle_by_id_with_its_receipt_time_fault_and_state_time(filled: SqlReadModel) -> None:
    fleet = filled.fleet()
    assert [v.vehicle_id for v in fleet] == sorted(vehicle_row(n)["vehicle_id"] for n in range(30))
    bike = next(v for v in fleet if v.vehicle_id == "Bike-05")
    assert (bike.received_ms, bike.fault_code, bike.state_ms, bike.battery_pct) == (T0 + 1_000, "motor", T0, None)
    assert filled.vehicle("Bike-05") == bike and bike.owner == OWNERS[2]


def test_vehicles_received_since_come_by_receipt_time_from_the_bound_on(filled: SqlReadModel) -> None:
    since = filled.vehicles_received_since(T0 + 2_000)
    rows = [vehicle_row(n) for n in range(30)]
    expected = sorted((r["received_ms"], r["vehicle_id"]) for r in rows if (r["received_ms"] or 0) >= T0 + 2_000)
    assert [(v.received_ms, v.vehicle_id) for v in since] == expected
    assert len(filled.vehicles_received_since(T0 + 2_000, limit=2)) == 2
    assert filled.vehicles_received_since(T0 + 10_000) == []


def test_a_track_is_the_newest_points_oldest_first(filled: SqlReadModel) -> None:
    track = filled.track("bike-1", limit=5)
    assert [p.timestamp_ms for p in track] == [T0 + 1_000 * s for s in range(16, 21)]
    assert (track[0].lat, track[0].speed_mps, track[0].battery_pct) == (51.016, 16.0, 74.0)
    assert [p.timestamp_ms for p in filled.track("bike-1", since_ms=T0 + 18_000)] == [
        T0 + 1_000 * s for s in (18, 19, 20)
    ]
    assert filled.track("nobody") == []


def read_trips(model: Any, limit: int, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = model.trips(limit, cursor=cursor, **filters)
        seen += [t.trip_id for t in page]
        if len(page) < limit:
            return seen
        cursor = cursor_after(page[-1])


def newest_first(rows: list[dict[str, Any]]) -> list[str]:
    return [r["trip_id"] for r in sorted(rows, key=lambda r: (r["end_ms"], r["trip_id"]), reverse=True)]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [
        ({"owner": OWNERS[1].lower()}, lambda r: r["owner"] == OWNERS[1]),
        ({"kind": "car"}, lambda r: r["kind"] == "car"),
        ({"epoch_id": 1}, lambda r: r["epoch_id"] == 1),
        ({"from_ms": T0 + 60_000 * 4, "to_ms": T0 + 60_000 * 9}, lambda r: T0 + 240_000 <= r["end_ms"] < T0 + 540_000),
        ({"kind": "bicycle", "rider": RIDERS[0], "from_ms": T0 + 60_000 * 10},
         lambda r: r["kind"] == "bicycle" and r["rider"] == RIDERS[0] and r["end_ms"] >= T0 + 600_000),
    ],
)  # fmt: skip
def test_trips_are_filtered_and_paged_newest_first(filled: SqlReadModel, filters: dict[str, Any], keep: Any) -> None:
    expected = newest_first([r for r in map(trip_row, range(40)) if keep(r)])
    assert expected and read_trips(filled, 3, **filters) == expected


def test_a_time_range_of_trips_without_an_end_is_taken_on_their_start(filled: SqlReadModel) -> None:
    late = filled.trips(10, status="open", from_ms=T0 + 1_020)  # opened at T0 + 10 n, n = 100 … 104
    assert [t.trip_id for t in late] == ["bike-3:103", "bike-2:102", "bike-0:104"]  # no end: by id, descending


def test_an_owner_that_is_not_an_address_is_refused_as_a_value_error(filled: SqlReadModel) -> None:
    with pytest.raises(ValueError):
        filled.trips(owner="not-an-owner")
    with pytest.raises(ValueError):
        filled.payouts(owner="0x12")


def test_running_trips_come_newest_first_with_their_running_cost(filled: SqlReadModel) -> None:
    running = filled.running_trips()
    assert [t.trip_id for t in running] == [f"bike-{n % 4}:{n:03d}" for n in (104, 103, 102, 101, 100)]
    assert [t.signed_micro for t in running] == [250_000 + n for n in (104, 103, 102, 101, 100)]
    assert [t.trip_id for t in filled.running_trips(RIDERS[1], limit=1)] == ["bike-3:103"]
    assert filled.running_trips("0xNobody") == []


def test_kpis_count_the_last_hour_and_the_day_with_what_riders_are_charged(filled: SqlReadModel) -> None:
    now, day_start = T0 + 60_000 * 19, T0 + 60_000 * 10  # trips 20..39 ended today, 0..39 within the hour
    kpis = filled.kpis(now, day_start)
    today = [trip_row(n) for n in range(20, 40)]
    revenue = sum(r["charged_micro"] or r["fare_micro"] for r in today)
    assert (kpis.trips_last_hour, kpis.trips_today, kpis.revenue_today_micro) == (40, 20, revenue)
    assert kpis.avg_fare_micro == round(revenue / 20)
    assert kpis.avg_duration_s == pytest.approx(sum(r["duration_s"] for r in today) / 20)
    assert kpis.avg_distance_m == pytest.approx(sum(r["distance_m"] for r in today) / 20)
    later = T0 + 10 * 3_600_000  # a day that starts after every trip ended
    empty = filled.kpis(later, later)
    assert (empty.trips_today, empty.revenue_today_micro, empty.avg_fare_micro, empty.avg_duration_s) == (
        0,
        0,
        None,
        None,
    )
    # a clock running ahead of ours (a simulation at speed 30) ends trips "after now": they count as recent
    ahead = filled.kpis(T0 - 7_200_000, T0 - 7_200_000)
    assert (ahead.trips_last_hour, ahead.trips_today) == (40, 40)


def test_payouts_of_one_owner_and_what_is_claimable(filled: SqlReadModel) -> None:
    every = filled.payouts(limit=10)
    (mine,) = filled.payouts(owner=OWNERS[0].lower())
    assert mine == next(p for p in every if p.owner == OWNERS[0])
    assert (mine.settled_micro, mine.claimed_micro, mine.claimable_micro) == (7_000_000, 0, 7_000_000)
    assert filled.payouts(owner=str(Address(b"\xee" * 20))) == []
    assert filled.payouts(cursor=cursor_after(mine), owner=OWNERS[0]) == []


def test_rejects_since_count_the_dead_letters_from_the_bound_on(filled: SqlReadModel) -> None:
    assert filled.rejects_since(T0) == {"bad_signature": 2, "stale_seq": 1}
    assert filled.rejects_since(T0 + 6) == {"stale_seq": 1}
    assert filled.rejects_since(T0 + 60_000) == {}


def no_sort(conn: sa.Connection, statement: sa.Select[Any]) -> str:
    text = plan(conn, statement)
    assert "Sort" not in text and "TEMP B-TREE" not in text and ("Index" in text or "INDEX" in text), text
    return text


def test_the_dashboards_lists_are_read_from_indexes_without_a_sort(database: Database, filled: SqlReadModel) -> None:
    some = filled.trips(limit=3)[-1]
    statements = [
        trips_query(20, owner=OWNERS[1]),
        trips_query(20, owner=OWNERS[1], cursor=cursor_after(some)),
        trips_query(20, rider=RIDERS[0], cursor=cursor_after(some)),
        trips_query(20, kind="car"),
        trips_query(20, from_ms=T0, to_ms=T0 + 600_000),
        received_since_query(T0 + 1_000, 100),
        running_query(None, 100),
        kpis_query(T0 + 3_600_000, T0),
        vehicles_query(50, sort="vehicle_id", cursor=cursor_after(filled.fleet()[3])),
    ]
    with database.reading() as conn:
        for statement in statements:
            no_sort(conn, statement)


def test_migration_0006_goes_down_and_up_again(database: Database) -> None:
    def columns(table: str) -> set[str]:
        with database.reading() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns(table)}

    assert {"received_ms", "fault_code"} <= columns("vehicles")
    with database.engine.begin() as conn:
        command.downgrade(database._config(conn), "0005")
    assert database.current_revision() == "0005"
    assert not {"received_ms", "fault_code"} & columns("vehicles")
    with database.reading() as conn:
        assert "alerts" not in sa.inspect(conn).get_table_names()
        trip_indexes = {i["name"] for i in sa.inspect(conn).get_indexes("trips")}
    assert "ix_trips_owner_end_ms_trip_id" not in trip_indexes
    database.upgrade()
    assert {"received_ms", "fault_code"} <= columns("vehicles")
    database.check_revision()


def test_the_aggregator_stamps_vehicle_rows_with_receipt_time_and_fault_code(database: Database) -> None:
    from settlement.aggregator import Aggregator
    from settlement.enrolment import enrol, trust_operator
    from settlement.sql import SqlUnitOfWork
    from tests.money import fake_money
    from tests.signed import OPERATOR, SignedFleet
    from tests.unit.test_dashboard_read_model import WALL_S, Seen, vehicle_story

    fleet = SignedFleet()
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, 0)
    enrol(uow, fleet.registrations(), fleet.domain, 0)
    clock = [WALL_S]
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=3600.0, clock=lambda: clock[0])
    aggregator.attach_contract()
    read = SqlReadModel(database)

    def seen() -> Seen:
        v = read.vehicle("bike-1")
        assert v is not None
        return (v.state, v.fault_code, v.received_ms, v.online)

    vehicle_story(aggregator, fleet, clock, seen)
    assert [v.vehicle_id for v in read.vehicles_received_since(int(WALL_S * 1000) + 25_000)] == ["bike-1"]


def test_the_memory_read_model_answers_as_the_sql_one_on_the_same_data(filled: SqlReadModel) -> None:
    from settlement.memory import MemoryReadModel
    from settlement.views import ReadModel

    both: list[ReadModel] = [filled, MemoryReadModel()]  # each implements the port (checked by mypy)
    assert len(both) == 2
    every_trip = [t for status in ("priced", "open", "rejected") for t in filled.trips(1000, status=status)]
    memory = MemoryReadModel(
        vehicle_views=filled.fleet(),
        trip_views=every_trip,
        payout_views=filled.payouts(1000),
        tracks={"bike-1": filled.track("bike-1", limit=1000)},
        dead_letters=[("bad_signature", T0), ("bad_signature", T0 + 5), ("stale_seq", T0 + 9), ("x", T0 - 1)],
    )
    for sort in VEHICLE_SORTS:
        for filters in ({}, {"kind": "bicycle"}, {"online": False, "search": "car"}, {"owner": OWNERS[2].lower()}):
            assert read_all(memory, 4, sort=sort, **filters) == read_all(filled, 4, sort=sort, **filters)
    for filters in ({}, {"owner": OWNERS[0]}, {"kind": "car", "from_ms": T0 + 300_000}, {"status": "open"}):
        assert read_trips(memory, 3, **filters) == read_trips(filled, 3, **filters)
    assert memory.running_trips(RIDERS[0]) == filled.running_trips(RIDERS[0])
    assert memory.kpis(T0 + 60_000 * 19, T0 + 60_000 * 10) == filled.kpis(T0 + 60_000 * 19, T0 + 60_000 * 10)
    assert memory.payouts(2, owner=OWNERS[0]) == filled.payouts(2, owner=OWNERS[0])
    assert memory.rejects_since(T0) == filled.rejects_since(T0)
    assert memory.track("bike-1", since_ms=T0 + 5_000, limit=4) == filled.track("bike-1", since_ms=T0 + 5_000, limit=4)
    assert memory.vehicles_received_since(T0 + 1_000) == filled.vehicles_received_since(T0 + 1_000)
