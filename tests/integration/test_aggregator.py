"""The aggregator on a real SQLite file with the fake chain: bad input, duplicates, trips and epochs."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from sensors.codec import channel_of, encode
from sensors.messages import Event, EventType, Message, Position, Telemetry, VehicleKind, VehicleState
from sensors.ports import Received
from sensors.topics import topic_for
from settlement.aggregator import Aggregator
from settlement.errors import ChainError
from settlement.ports import FakeChain
from settlement.queries import SqlReadModel
from settlement.store import Store

OWNERS = ["0x" + "aa" * 20, "0x" + "bb" * 20]
T0 = 1_790_000_000_000


class Acks:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def received(message: Message, acks: Acks) -> Received:
    topic = topic_for(message.operator, message.vehicle_id, channel_of(message))
    return Received(topic, encode(message), T0 / 1000, acks)


def ride(vehicle: str, first_seq: int, rider: str) -> list[Message]:
    pos = Position(51.215, 4.396)
    return [
        Event(vehicle, "op", VehicleKind.EBIKE, first_seq, T0, EventType.UNLOCK, pos, 100, 90.0, rider=rider),
        Telemetry(vehicle, "op", VehicleKind.EBIKE, first_seq + 1, T0 + 5000, pos, 5.0, 125, 89.0),
        Event(
            vehicle,
            "op",
            VehicleKind.EBIKE,
            first_seq + 2,
            T0 + 300_000,
            EventType.LOCK,
            pos,
            1600,
            85.0,
            rider=rider,
        ),
    ]


def make(tmp_path: Path, clock: list[float]) -> tuple[Aggregator, FakeChain]:
    chain = FakeChain()
    aggregator = Aggregator(
        Store.connect(f"sqlite:///{tmp_path / 'agg.db'}"), chain, epoch_seconds=10, clock=lambda: clock[0]
    )
    aggregator.attach_contract()
    return aggregator, chain


def births() -> list[Message]:
    return [VehicleState(f"ebike-{i}", "op", T0, True, VehicleKind.EBIKE, OWNERS[i % 2]) for i in range(3)]


def test_malformed_messages_are_dead_lettered_and_acked_while_good_ones_are_stored(tmp_path: Path) -> None:
    aggregator, _ = make(tmp_path, [0.0])
    acks = Acks()
    good = [received(m, acks) for m in [*births(), *ride("ebike-0", 1, "r1")]]
    bad = [
        Received("smartzone/v1/op/ebike-0/event", b"\x00garbage", 0.0, acks),
        Received("smartzone/v1/op/ebike-0/telemetry", b"{}", 0.0, acks),
        Received("not/a/topic", b"{}", 0.0, acks),
        Received("smartzone/v1/op/ebike-0/event", b"{" + b"1" * 100_000 + b"}", 0.0, acks),
    ]
    result = aggregator.handle(good + bad)
    assert (result.rejected, result.events_new, result.telemetry_new) == (4, 2, 1)
    assert acks.count == len(good) + len(bad)
    assert SqlReadModel(aggregator.store).stats().rejected == 4


def test_every_completed_trip_is_priced_once_and_settled_in_exactly_one_epoch(tmp_path: Path) -> None:
    clock = [0.0]
    aggregator, chain = make(tmp_path, clock)
    acks = Acks()
    messages = [*births(), *ride("ebike-0", 1, "r1"), *ride("ebike-1", 1, "r2"), *ride("ebike-2", 10, "r3")]
    aggregator.handle([received(m, acks) for m in reversed(messages)])  # locks before unlocks
    aggregator.handle([received(m, acks) for m in messages])  # and everything again
    assert aggregator.build_trips() == 3
    assert aggregator.build_trips() == 0
    clock[0] = 11.0
    assert aggregator.settle_due() == [1]
    assert aggregator.settle_due() == []
    read = SqlReadModel(aggregator.store)
    trips = read.trips()
    assert len(trips) == 3 and {t.epoch_id for t in trips} == {1} and {t.status for t in trips} == {"settled"}
    assert chain.total_settled() == sum(t.fare_micro for t in trips)
    assert {o: chain.owed(o) for o in OWNERS} == read.payout_totals()


def test_an_epoch_already_on_chain_after_a_crash_is_recorded_not_sent_again(tmp_path: Path) -> None:
    clock = [0.0]
    aggregator, chain = make(tmp_path, clock)
    acks = Acks()
    aggregator.handle([received(m, acks) for m in [*births(), *ride("ebike-0", 1, "r1")]])
    aggregator.build_trips()
    [commit] = [c for c in [aggregator.store.close_epoch(100, T0)] if c]
    sent = chain.settle(commit)  # sent, then the process died before recording it
    clock[0] = 1.0
    assert aggregator.settle_due() == [1]
    assert len(chain.sent) == 1
    [epoch] = SqlReadModel(aggregator.store).epochs()
    assert epoch.status == "settled"
    assert (epoch.tx_hash, epoch.block_number, epoch.gas_used) == (sent.tx_hash, sent.block_number, sent.gas_used)


def test_an_epoch_on_chain_whose_transaction_cannot_be_found_is_recorded_without_it(tmp_path: Path) -> None:
    clock = [0.0]
    aggregator, chain = make(tmp_path, clock)
    acks = Acks()
    aggregator.handle([received(m, acks) for m in [*births(), *ride("ebike-0", 1, "r1"), *ride("ebike-1", 1, "r2")]])
    aggregator.build_trips()
    [commit] = [c for c in [aggregator.store.close_epoch(1, T0)] if c]
    chain.settle(commit)  # sent, then the process died before recording it ...
    chain.receipts.clear()  # ... and the node no longer serves the event (pruned logs)
    clock[0] = 1.0
    assert aggregator.settle_due(force=True) == [1, 2]  # epoch 2 is not held back behind it
    assert len(chain.sent) == 2
    first, second = sorted(SqlReadModel(aggregator.store).epochs(), key=lambda e: e.epoch_id)
    assert (first.status, first.tx_hash) == ("settled", None)
    assert second.status == "settled" and second.tx_hash == chain.receipts[2].tx_hash


def test_the_run_loop_drains_its_inbox_and_settles_everything_when_stopped(tmp_path: Path) -> None:
    aggregator, chain = make(tmp_path, [0.0])
    inbox: queue.Queue[Received] = queue.Queue()
    acks = Acks()
    for m in [*births(), *ride("ebike-0", 1, "r1"), *ride("ebike-1", 1, "r2")]:
        inbox.put(received(m, acks))
    stop = threading.Event()
    stop.set()
    aggregator.run(inbox, stop)
    assert inbox.empty()
    assert chain.last_epoch() == 1
    assert chain.epochs[1].trip_count == 2


def test_while_the_database_is_locked_messages_stay_unacked_and_are_stored_once_it_is_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    Store.connect(url).close()  # create the tables
    store = Store(sa.create_engine(url, connect_args={"timeout": 0.05}), url)
    aggregator = Aggregator(store, FakeChain(), epoch_seconds=3600)
    aggregator.attach_contract()
    blocker = sqlite3.connect(tmp_path / "locked.db")
    blocker.execute("BEGIN EXCLUSIVE")
    inbox: queue.Queue[Received] = queue.Queue()
    acks = Acks()
    messages = [*births(), *ride("ebike-0", 1, "r1")]
    for m in messages:
        inbox.put(received(m, acks))
    stop = threading.Event()
    worker = threading.Thread(target=aggregator.run, args=(inbox, stop), kwargs={"retry_seconds": 0.05})
    worker.start()
    try:
        time.sleep(0.5)
        assert acks.count == 0  # nothing acknowledged while nothing could be stored
        assert worker.is_alive()
        blocker.rollback()
        deadline = time.monotonic() + 10
        while acks.count < len(messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
        blocker.close()
    assert acks.count == len(messages)
    assert SqlReadModel(store).stats().events == 2


def test_a_database_whose_chain_was_reset_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    aggregator, _ = make(tmp_path, [0.0])
    fresh_chain = FakeChain()  # same chain id, but nothing deployed: as after a restart of an embedded chain
    again = Aggregator(aggregator.store, fresh_chain)
    with pytest.raises(ChainError, match="the chain was reset"):
        again.attach_contract()
