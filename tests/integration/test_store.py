"""The same storage code on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.messages import Event, EventType, Position, Telemetry, VehicleKind, VehicleState
from settlement.errors import StoreUnavailable
from settlement.fares import DEFAULT_TARIFFS, price
from settlement.ports import ChainReceipt
from settlement.queries import SqlReadModel
from settlement.records import Batch, Reject
from settlement.store import Store
from settlement.trips import build_trip, pair_events

OWNER = "0x" + "22" * 20
T0 = 1_790_000_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    s = Store.connect(url)
    yield s
    s.close()


def telemetry(seq: int, vehicle: str = "bike-0001") -> Telemetry:
    return Telemetry(
        vehicle,
        "op",
        VehicleKind.BIKE,
        seq,
        T0 + seq * 1000,
        Position(51.215, 4.396),
        3.0,
        seq * 10,
        battery_pct=50.0,
    )


def event(seq: int, kind: EventType, vehicle: str = "bike-0001") -> Event:
    return Event(
        vehicle,
        "op",
        VehicleKind.BIKE,
        seq,
        T0 + seq * 1000,
        kind,
        Position(51.215, 4.396),
        seq * 10,
        rider="rider-1",
    )


def birth(vehicle: str = "bike-0001") -> VehicleState:
    return VehicleState(vehicle, "op", T0, True, VehicleKind.BIKE, OWNER)


def test_a_reading_sent_twice_is_stored_once(store: Store) -> None:
    first = store.ingest(Batch(telemetry=[telemetry(1), telemetry(2)], events=[event(3, EventType.UNLOCK)]))
    again = store.ingest(Batch(telemetry=[telemetry(2)], events=[event(3, EventType.UNLOCK)]))
    assert (first.telemetry_new, first.events_new, first.duplicates) == (2, 1, 0)
    assert (again.telemetry_new, again.events_new, again.duplicates) == (0, 0, 2)
    stats = SqlReadModel(store).stats()
    assert (stats.telemetry, stats.events) == (2, 1)


def test_rejected_messages_are_kept_with_their_reason(store: Store) -> None:
    store.ingest(Batch(rejects=[Reject("smartzone/v1/op/x/event", b"\xff", "payload is not UTF-8 JSON", T0)]))
    assert SqlReadModel(store).stats().rejected == 1


def test_the_vehicle_shows_its_newest_state_whatever_the_arrival_order(store: Store) -> None:
    store.ingest(Batch(states=[birth()], events=[event(5, EventType.UNLOCK)]))
    store.ingest(Batch(telemetry=[telemetry(4)]))  # older than the unlock: must not win
    [vehicle] = SqlReadModel(store).vehicles()
    assert (vehicle.state, vehicle.owner, vehicle.online) == ("on_trip", OWNER, True)
    store.ingest(Batch(events=[event(6, EventType.LOCK)]))
    assert SqlReadModel(store).vehicle("bike-0001").state == "available"  # type: ignore[union-attr]


def test_a_trip_is_stored_once_batched_into_one_epoch_and_settled(store: Store) -> None:
    store.ingest(Batch(states=[birth()], events=[event(1, EventType.UNLOCK), event(9, EventType.LOCK)]))
    assert store.unpaired_lock_vehicles() == ["bike-0001"]
    events, owner = store.trip_events("bike-0001")
    [(unlock, lock)] = pair_events(events)
    trip = build_trip(unlock, lock, owner or "")
    fare = price(trip, DEFAULT_TARIFFS[trip.kind])
    assert store.add_trips([(trip, fare)]) == 1
    assert store.add_trips([(trip, fare)]) == 0
    assert store.unpaired_lock_vehicles() == []
    commit = store.close_epoch(max_trips=100, now_ms=T0)
    assert commit is not None and (commit.epoch_id, commit.trip_count) == (1, 1)
    assert commit.payouts == ((OWNER, fare.total_micro),)
    assert store.close_epoch(max_trips=100, now_ms=T0) is None  # nothing left to batch
    assert [c.trips_root for c in store.unsettled_epochs()] == [commit.trips_root]
    store.mark_settled(1, ChainReceipt("0x" + "ab" * 32, 7, "0x" + "cd" * 32, 91_000), T0)
    assert store.unsettled_epochs() == []
    read = SqlReadModel(store)
    assert read.trip(trip.trip_id).status == "settled"  # type: ignore[union-attr]
    [epoch] = read.epochs()
    assert (epoch.status, epoch.gas_used, epoch.total_micro) == ("settled", 91_000, fare.total_micro)
    [payout] = read.payouts()
    assert (payout.settled_micro, payout.pending_micro) == (fare.total_micro, 0)
    assert read.payout_totals() == {OWNER: fare.total_micro}


def test_the_deployment_of_each_chain_is_remembered(store: Store) -> None:
    assert store.deployment(31337) is None
    store.record_deployment(31337, "0x" + "33" * 20, T0)
    assert store.deployment(31337) == "0x" + "33" * 20


def test_an_unreachable_database_gives_one_error_naming_its_url() -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(StoreUnavailable) as caught:
        Store.connect(url)
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "secret" not in message and "\n" not in message


def test_an_epoch_credits_no_more_owners_than_the_contract_allows(store: Store) -> None:
    owners = ["0x" + f"{i:040x}" for i in range(1, 4)]
    births = [VehicleState(f"bike-{i}", "op", T0, True, VehicleKind.BIKE, owners[i]) for i in range(3)]
    events = [
        e for i in range(3) for e in (event(1, EventType.UNLOCK, f"bike-{i}"), event(2, EventType.LOCK, f"bike-{i}"))
    ]
    store.ingest(Batch(states=births, events=events))
    for vehicle in store.unpaired_lock_vehicles():
        found, owner = store.trip_events(vehicle)
        [(unlock, lock)] = pair_events(found)
        trip = build_trip(unlock, lock, owner or "")
        store.add_trips([(trip, price(trip, DEFAULT_TARIFFS[trip.kind]))])
    first = store.close_epoch(max_trips=100, now_ms=T0, max_owners=2)
    second = store.close_epoch(max_trips=100, now_ms=T0, max_owners=2)
    assert first is not None and second is not None
    assert (len(first.payouts), first.trip_count, len(second.payouts), second.trip_count) == (2, 2, 1, 1)
