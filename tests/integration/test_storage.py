"""The SQL repositories, migrations and read model on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import Pool

from sensors.address import Address
from sensors.messages import EventType, VehicleKind
from settlement.db import Database, SchemaMismatch
from settlement.enrolment import enrol, revoke, trust_operator
from settlement.epochs import LeafContext
from settlement.errors import StoreRefused, StoreUnavailable
from settlement.fares import Fare
from settlement.lifecycle import TripStatus
from settlement.ports import ChainReceipt
from settlement.queries import SqlReadModel
from settlement.records import Reject
from settlement.sql import SqlUnitOfWork
from settlement.trips import Mark, TripRecord
from settlement.vehicles import latest_updates
from tests.money import ZONE, closed
from tests.signed import OPERATOR, SignedFleet, payee_of

T0 = 1_790_000_000_000

CONTEXT = LeafContext(31337, Address(b"\x5a" * 20))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture()
def database(url: str) -> Iterator[Database]:
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


@pytest.fixture()
def fleet(database: Database) -> SignedFleet:
    fleet = SignedFleet()
    trust_operator(lambda: SqlUnitOfWork(database), OPERATOR, fleet.operator_address, T0)
    enrol(lambda: SqlUnitOfWork(database), fleet.registrations(), fleet.domain, T0)
    return fleet


def test_a_new_database_is_refused_until_it_is_upgraded_naming_the_command(url: str) -> None:
    with pytest.raises(SchemaMismatch, match="smartzone db upgrade"):
        Database.connect(url)
    with Database.open(url) as db:
        assert db.upgrade() == (None, db.head_revision())
        Database.connect(url).close()
        assert db.upgrade()[0] == db.head_revision()  # upgrading twice changes nothing


@contextmanager
def driver_connections() -> Iterator[list[int]]:
    """Counts, while open, the driver connections any engine opens (+1) and closes (-1): SQLAlchemy's pool events."""
    seen: list[int] = []

    def opened(*_: object) -> None:
        seen.append(1)

    def closed(*_: object) -> None:
        seen.append(-1)

    sa.event.listen(Pool, "connect", opened)
    sa.event.listen(Pool, "close", closed)
    try:
        yield seen
    finally:
        sa.event.remove(Pool, "connect", opened)
        sa.event.remove(Pool, "close", closed)


def test_a_database_refused_for_its_schema_leaves_no_connection_open(url: str) -> None:
    with driver_connections() as seen, pytest.raises(SchemaMismatch):
        Database.connect(url)
    assert seen.count(1) >= 1 and sum(seen) == 0  # it did connect, and closed what it opened


def test_the_migrations_make_exactly_the_tables_of_the_schema_module(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from settlement.schema import Base

    with database.reading() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_a_database_migrated_by_a_newer_version_is_refused(database: Database, url: str) -> None:
    with database.transaction() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    with pytest.raises(SchemaMismatch, match="newer smartzone"):
        Database.connect(url)


def test_a_database_that_cannot_be_reached_is_named_in_one_line() -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot reach the database at postgresql\+psycopg://x:\*\*\*@127"):
        Database.open("postgresql+psycopg://x:secret@127.0.0.1:1/none?connect_timeout=2")


def test_readings_are_stored_once_and_only_new_events_come_back(database: Database, fleet: SignedFleet) -> None:
    unlock, lock = fleet.trip("bike-1", 1, T0, minutes=5, metres=800)
    with SqlUnitOfWork(database) as uow:
        assert uow.readings.add_events([unlock]) == [unlock]
        assert uow.readings.add_events([unlock, lock]) == [lock]
        assert uow.readings.add_telemetry([fleet.telemetry("bike-1", 3, T0 + 1), fleet.telemetry("bike-1", 3, T0)]) == 1
        uow.readings.update_vehicles(latest_updates([unlock, lock]))
        uow.readings.update_vehicles(latest_updates([unlock]))  # older: ignored
        uow.commit()
    with SqlUnitOfWork(database) as uow:
        marks = uow.readings.vehicle_marks()
        assert marks["bike-1"].last_seq == 2 and uow.readings.watermark_ms() == lock.timestamp
    vehicle = SqlReadModel(database).vehicle("bike-1")
    assert vehicle is not None and vehicle.state == "available" and vehicle.owner == str(payee_of("bike-1"))


def test_a_value_the_database_cannot_hold_is_refused_as_data_not_as_an_outage(
    database: Database, fleet: SignedFleet
) -> None:
    unlock = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    huge = unlock.__class__(**{**{f: getattr(unlock, f) for f in unlock.__slots__}, "odometer_m": 10**19})
    with pytest.raises(StoreRefused, match="refused"), SqlUnitOfWork(database) as uow:
        uow.readings.add_events([huge])
    with SqlUnitOfWork(database) as uow:
        assert uow.readings.add_events([unlock]) == [unlock]  # the connection is usable again


def test_a_trip_goes_from_its_first_half_to_its_epoch(database: Database) -> None:
    start = Mark(1, T0, 51.2, 4.39, 100)
    record = TripRecord("bike-1:1", "bike-1", OPERATOR, VehicleKind.BIKE, TripStatus.OPEN, start, None,
                        "0xRider", None, None, None, None, None, None)  # fmt: skip
    with SqlUnitOfWork(database) as uow:
        uow.trips.save([record])
        uow.commit()
    with SqlUnitOfWork(database) as uow:
        assert uow.trips.get(["bike-1:1"]) == {"bike-1:1": record}
        assert list(uow.trips.unfinished_of(["bike-1"])) == ["bike-1:1"] and len(uow.trips.open()) == 1
        priced = TripRecord("bike-1:1", "bike-1", OPERATOR, VehicleKind.BIKE, TripStatus.PRICED, start,
                            Mark(2, T0 + 60_000, 51.21, 4.4, 900), "0xRider", payee_of("bike-1"), None, 800, 60,
                            Fare(500_000, 50_000, 0), None)  # fmt: skip
        uow.trips.save([priced])
        assert uow.trips.priced_unbatched(10) == [priced]
        epoch = closed(1, [priced], CONTEXT, fee_bps=1_000)
        uow.epochs.add(epoch, T0)
        uow.trips.batch(["bike-1:1"], 1, epoch.splits)
        uow.commit()
    with SqlUnitOfWork(database) as uow:
        [batched] = uow.trips.in_epoch(1)
        assert batched.status is TripStatus.BATCHED and batched.payee == payee_of("bike-1")
        assert (batched.owner_share, batched.fee, batched.rider_account) == (495_000, 55_000, epoch.splits[0].rider)
        uow.trips.commit_epoch(1)
        assert uow.trips.get(["bike-1:1"])["bike-1:1"].status is TripStatus.COMMITTED
        assert uow.trips.priced_unbatched(10) == []
        # no open trip is left; the latest ended one still comes along, for late unlocks
        assert [r.status for r in uow.trips.unfinished_of(["bike-1"]).values()] == [TripStatus.COMMITTED]


def test_without_commit_a_unit_of_work_keeps_nothing(database: Database, fleet: SignedFleet) -> None:
    with SqlUnitOfWork(database) as uow:
        uow.readings.add_events([fleet.event("bike-1", 1, EventType.UNLOCK, T0)])
    with SqlUnitOfWork(database) as uow:
        assert uow.readings.watermark_ms() == 0


def test_the_registry_keeps_entries_revocations_and_a_version_that_changes(
    database: Database, fleet: SignedFleet
) -> None:
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    with uow() as work:
        before = work.registry.version()
        entries = work.registry.entries()
        assert {e.registration.vehicle_id for e in entries} == set(fleet.vehicles)
        assert {str(e.registration.payee) for e in entries} == {str(payee_of(v)) for v in fleet.vehicles}
        assert work.registry.operators() == {OPERATOR: fleet.operator_address}
    assert enrol(uow, fleet.registrations(), fleet.domain, T0 + 1) == (0, 3)  # loading twice changes nothing
    assert revoke(uow, "bike-2", T0 + 2) == 1 and revoke(uow, "bike-2", T0 + 3) == 0
    with uow() as work:
        assert work.registry.version() != before
        revoked = [e for e in work.registry.entries() if e.revoked_ms is not None]
        assert [(e.vehicle_id, e.revoked_ms) for e in revoked] == [("bike-2", T0 + 2)]


def test_dead_letters_are_counted_per_reason_code(database: Database) -> None:
    with SqlUnitOfWork(database) as uow:
        uow.readings.add_rejects(
            [Reject("t", b"x" * 100_000, "bad_signature", "r" * 5000, T0), Reject("t", b"", "schema", "r", T0)]
        )
        uow.commit()
    assert SqlReadModel(database).rejects_by_code() == {"bad_signature": 1, "schema": 1}
    with database.reading() as conn:
        sizes = conn.execute(sa.text("SELECT length(payload), length(reason) FROM rejects ORDER BY id")).all()
    assert sizes[0] == (65536, 2000)


def test_an_epoch_is_recorded_with_its_roots_and_marked_committed(database: Database) -> None:
    trip = TripRecord("bike-1:1", "bike-1", OPERATOR, VehicleKind.BIKE, TripStatus.PRICED, Mark(1, T0, 51.2, 4.39, 100),
                      Mark(2, T0 + 60_000, 51.21, 4.4, 900), "r", payee_of("bike-1"), None, 800, 60,
                      Fare(500_000, 50_000, 0), None)  # fmt: skip
    epoch = closed(1, [trip], CONTEXT, b"\x01" * 32)
    with SqlUnitOfWork(database) as uow:
        uow.epochs.add(epoch, T0)
        uow.commit()
    with SqlUnitOfWork(database) as uow:
        assert uow.epochs.last_id() == 1 and uow.epochs.unsettled() == [epoch.commit]
        assert uow.epochs.commit_of(1) == epoch.commit and uow.epochs.last_committed() == 0
        uow.epochs.mark_committed(1, ChainReceipt("0x" + "ab" * 32, 7, "0x" + "cd" * 32, 90_000), T0 + 1)
        uow.commit()
    with SqlUnitOfWork(database) as uow:
        assert uow.epochs.last_committed() == 1
    [view] = SqlReadModel(database).epochs()
    assert (view.status, view.registry_root, view.gas_used) == ("committed", "0x" + "01" * 32, 90_000)


def test_a_vehicles_registry_proof_verifies_against_the_root(database: Database, fleet: SignedFleet) -> None:
    from settlement.registry import Registry, RegistryEntry, verify_proof

    view = SqlReadModel(database).registry_proof("car-1")
    assert view is not None and view.payee == str(payee_of("car-1"))
    with SqlUnitOfWork(database) as uow:
        registry = Registry(uow.registry.operators(), uow.registry.entries())
    entry: RegistryEntry = registry.latest("car-1")  # type: ignore[assignment]
    assert entry.leaf() == view.leaf and view.root == "0x" + registry.root.hex()
    assert verify_proof(entry, [bytes.fromhex(p[2:]) for p in view.proof], registry.root)
    assert SqlReadModel(database).registry_proof("ghost") is None


def test_cumulative_balances_are_kept_per_epoch_and_read_as_of_any_epoch(database: Database) -> None:
    def trip(n: int, rider: str, fare: int) -> TripRecord:
        return TripRecord(f"bike-1:{n}", "bike-1", OPERATOR, VehicleKind.BIKE, TripStatus.PRICED,
                          Mark(n, T0 + n, 51.2, 4.39, 100), Mark(n + 1, T0 + n + 60_000, 51.21, 4.4, 900), rider,
                          payee_of("bike-1"), None, 800, 60, Fare(fare, 0, 0), None)  # fmt: skip

    with SqlUnitOfWork(database) as uow:
        first = closed(1, [trip(1, "a", 1_000), trip(3, "b", 2_000)], CONTEXT, fee_bps=1_000)
        uow.epochs.add(first, T0)
        second = closed(2, [trip(5, "a", 500)], CONTEXT, fee_bps=1_000, book=uow.epochs.balances())
        uow.epochs.add(second, T0)
        uow.commit()
    rider_a, rider_b = first.splits[0].rider, first.splits[1].rider
    payee = payee_of("bike-1")
    with SqlUnitOfWork(database) as uow:
        assert uow.epochs.balances(upto=1) == first.balances
        everything = uow.epochs.balances()
        assert everything[rider_a] == (0, 1_500) and everything[rider_b] == (0, 2_000)
        assert everything[payee] == (900 + 1_800 + 450, 0)  # owner shares of 1000, 2000 and 500 at a 10 % fee
        assert sum(e for e, _ in everything.values()) == sum(s for _, s in everything.values()) == 3_500
        assert uow.epochs.balances([rider_b, Address(bytes(20))]) == {rider_b: (0, 2_000)}
        assert uow.epochs.balances([]) == {}
        assert set(second.balances) == {rider_a, payee, ZONE}  # only the accounts epoch 2 changed
        assert everything[ZONE] == (100 + 200 + 50, 0)
        assert second.commit.spent_total == second.commit.earned_total == 3_500
