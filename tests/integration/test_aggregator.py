"""The aggregator on a real database (SQLite file, PostgreSQL) with the fake chain."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sensors.messages import EventType
from sensors.ports import Received
from settlement.aggregator import Aggregator
from settlement.clearing import FakeClearing
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.errors import ChainError
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from tests.money import ZONE, committed, fake_money, fund_fake
from tests.signed import OPERATOR, RIDER, SignedFleet

T0 = 1_790_000_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'agg.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


def uow_of(database: Database) -> Callable[[], SqlUnitOfWork]:
    return lambda: SqlUnitOfWork(database)


def make(
    database: Database, clock: list[float], chain: FakeClearing | None = None, fee_bps: int = 0
) -> tuple[Aggregator, FakeClearing]:
    """An aggregator on ``database`` and a fake chain (a new one, its rider funded, unless ``chain`` is given)."""
    fresh, money = fake_money(fee_bps, ZONE)
    aggregator = Aggregator(uow_of(database), chain or fresh, money=money, epoch_seconds=10, clock=lambda: clock[0])
    aggregator.attach_contract()
    if chain is None:
        fund_fake(fresh, [RIDER])
    return aggregator, chain or fresh


@pytest.fixture()
def fleet(database: Database) -> SignedFleet:
    fleet = SignedFleet()
    trust_operator(uow_of(database), OPERATOR, fleet.operator_address, T0)
    enrol(uow_of(database), fleet.registrations(), fleet.domain, T0)
    return fleet


def rides(fleet: SignedFleet) -> list[Received]:
    messages = [
        *fleet.trip("bike-1", 1, T0, minutes=10, metres=2500),
        fleet.telemetry("bike-1", 3, T0 + 700_000, odometer=3500),
        *fleet.trip("bike-2", 1, T0 + 1000, minutes=20, metres=4000),
        *fleet.trip("car-1", 10, T0 + 2000, minutes=30, metres=9000),
    ]
    return [fleet.received(m) for m in messages]


def test_malformed_and_untrusted_messages_are_dead_lettered_and_acked_while_good_ones_are_stored(
    database: Database, fleet: SignedFleet
) -> None:
    aggregator, _ = make(database, [0.0])
    good = rides(fleet)
    bad = [
        Received("smartzone/v1/op-test/bike-1/event", b"\x00garbage", 0.0, fleet.acks),
        Received("smartzone/v1/op-test/bike-1/telemetry", b"{}", 0.0, fleet.acks),
        Received("not/a/topic", b"{}", 0.0, fleet.acks),
        Received("smartzone/v1/op-test/bike-1/event", b"{" + b"1" * 100_000 + b"}", 0.0, fleet.acks),
    ]
    result = aggregator.handle(good + bad)
    assert (result.rejected, result.events_new, result.telemetry_new) == (4, 6, 1)
    assert fleet.acks.count == len(good) + len(bad)
    assert SqlReadModel(database).rejects_by_code() == {"malformed": 1, "schema": 1, "bad_topic": 1, "too_large": 1}


def test_every_trip_is_priced_once_and_settled_in_one_epoch_whatever_the_order(
    database: Database, fleet: SignedFleet
) -> None:
    clock = [0.0]
    aggregator, chain = make(database, clock)
    batch = rides(fleet)
    aggregator.handle(list(reversed(batch)))  # locks before unlocks
    aggregator.handle(batch)  # and everything again
    clock[0] = 11.0
    assert aggregator.settle_due() == [1]
    assert aggregator.settle_due() == []
    read = SqlReadModel(database)
    trips = read.trips()
    assert {t.trip_id for t in trips} == {"bike-1:1", "bike-2:1", "car-1:10"}
    assert {t.epoch_id for t in trips} == {1} and {t.status for t in trips} == {"final"}  # 1 confirmation later
    assert chain.totals().spent_total == sum(t.fare_micro or 0 for t in trips)
    with SqlUnitOfWork(database) as uow:
        earned = {str(o): e for o, (e, _) in uow.epochs.balances().items() if e and o != ZONE}
        stored = uow.epochs.commit_of(1)
    assert earned == read.payout_totals()
    assert stored is not None and stored.registry_root == aggregator.registry_root
    assert chain.trips_root(1) == stored.trips_root and chain.balances_root(1) == stored.balances_root


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(
    database: Database, fleet: SignedFleet
) -> None:
    with database.transaction() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE events ADD CONSTRAINT test_refuses_seq_7 CHECK (seq <> 7)"))
        else:
            conn.execute(sa.text(
                "CREATE TRIGGER test_refuses_seq_7 BEFORE INSERT ON events WHEN NEW.seq = 7 "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ))  # fmt: skip
    aggregator, _ = make(database, [0.0])
    poison = fleet.received(fleet.event("bike-2", 7, EventType.FAULT, T0))
    aggregator.handle([*rides(fleet), poison])
    aggregator.handle([poison])  # redelivered: refused again, never a crash
    assert SqlReadModel(database).rejects_by_code() == {"store_error": 2}
    assert {t.trip_id for t in SqlReadModel(database).trips()} == {"bike-1:1", "bike-2:1", "car-1:10"}
    assert fleet.acks.count == len(rides(fleet)) + 2


def test_after_a_restart_the_aggregator_still_refuses_old_replays(database: Database, fleet: SignedFleet) -> None:
    aggregator, chain = make(database, [0.0])
    unlock = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    aggregator.handle([fleet.received(unlock), fleet.received(fleet.telemetry("bike-1", 9000, T0 + 1))])
    again, _ = make(database, [0.0], chain)
    again.handle([fleet.received(unlock)])
    assert SqlReadModel(database).rejects_by_code() == {"stale_seq": 1}


def test_an_epoch_already_on_chain_after_a_crash_is_recorded_not_sent_again(
    database: Database, fleet: SignedFleet
) -> None:
    clock = [0.0]
    aggregator, chain = make(database, clock)
    aggregator.handle(rides(fleet))
    epoch_id = aggregator.close_epoch()
    assert epoch_id == 1
    with SqlUnitOfWork(database) as uow:
        [commit] = uow.epochs.unsettled()
    sent = chain.commit(commit)  # sent, then the process died before recording it
    restarted, _ = make(database, clock, chain)
    assert restarted.settle_due() == [1]
    assert committed(chain) == [1]
    [epoch] = SqlReadModel(database).epochs()
    assert epoch.status == "committed"
    assert (epoch.tx_hash, epoch.block_number, epoch.gas_used) == (sent.tx_hash, sent.block_number, sent.gas_used)


def test_the_run_loop_drains_its_inbox_and_settles_everything_when_stopped(
    database: Database, fleet: SignedFleet
) -> None:
    aggregator, chain = make(database, [0.0])
    inbox: queue.Queue[Received] = queue.Queue()
    for item in rides(fleet):
        inbox.put(item)
    stop = threading.Event()
    stop.set()
    aggregator.run(inbox, stop)
    assert inbox.empty()
    with SqlUnitOfWork(database) as uow:
        assert uow.epochs.last_committed() == chain.last_epoch() == 1
    assert chain.totals().spent_total == sum(t.fare_micro or 0 for t in SqlReadModel(database).trips()) > 0


def test_while_the_database_is_locked_messages_stay_unacked_and_are_stored_once_it_is_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    setup = Database.open(url)
    setup.upgrade()
    fleet = SignedFleet()
    trust_operator(uow_of(setup), OPERATOR, fleet.operator_address, T0)
    enrol(uow_of(setup), fleet.registrations(), fleet.domain, T0)
    database = Database(sa.create_engine(url, connect_args={"timeout": 0.05}), url)
    chain, money = fake_money()
    aggregator = Aggregator(uow_of(database), chain, money=money, epoch_seconds=3600)
    aggregator.attach_contract()
    blocker = sqlite3.connect(tmp_path / "locked.db")
    blocker.execute("BEGIN EXCLUSIVE")
    inbox: queue.Queue[Received] = queue.Queue()
    items = rides(fleet)
    for item in items:
        inbox.put(item)
    stop = threading.Event()
    worker = threading.Thread(target=aggregator.run, args=(inbox, stop), kwargs={"retry_seconds": 0.05})
    worker.start()
    try:
        time.sleep(0.5)
        assert fleet.acks.count == 0  # nothing acknowledged while nothing could be stored
        assert worker.is_alive()
        blocker.rollback()
        deadline = time.monotonic() + 10
        while fleet.acks.count < len(items) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
        blocker.close()
    assert fleet.acks.count == len(items)
    assert SqlReadModel(database).stats().events == 6


def test_a_database_whose_chain_was_reset_is_refused_with_a_clear_reason(database: Database) -> None:
    make(database, [0.0])
    again = Aggregator(uow_of(database), fake_money()[0])  # same chain id, nothing deployed: a restarted chain
    with pytest.raises(ChainError, match="the chain was reset"):
        again.attach_contract()
