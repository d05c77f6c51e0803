"""The hub: per-client filtering, coalescing for slow clients, dropping hopeless ones, replay on reconnect."""

from __future__ import annotations

import json

from dashboard.hub import Event, Hub, Viewer

STAFF = Viewer(staff=True)
RIDER = "0x" + "ab" * 20
OTHER = "0x" + "cd" * 20


def row(vehicle_id: str, battery: float) -> list[object]:
    return [vehicle_id, "scooter", "available", battery, 51.2, 4.39, 1, None]


def trip(trip_id: str, rider: str, signed: int) -> dict[str, object]:
    return {"trip_id": trip_id, "rider": rider, "vehicle_id": "s-1", "signed_micro": signed, "status": "open"}


def test_staff_get_everything_and_a_rider_only_their_own_trips() -> None:
    hub = Hub()
    staff, rider = hub.add(STAFF), hub.add(Viewer(staff=False, rider=RIDER))
    hub.publish_rows([row("s-1", 50)])
    hub.publish("alert", {"alert_id": 1})
    hub.publish("kpis", {"trips_today": 3})
    hub.publish("epoch", {"epoch_id": 4})
    hub.publish("trip", trip("t-1", RIDER.upper().replace("0X", "0x"), 10))
    hub.publish("trip", trip("t-2", OTHER, 20))
    assert sorted(e.name for e in staff.take()) == ["alert", "epoch", "kpis", "trip", "trip", "vehicles"]
    assert [(e.name, e.data["trip_id"]) for e in rider.take()] == [("trip", "t-1")]


def test_a_slow_client_gets_the_latest_row_per_vehicle_and_the_latest_cost_per_trip() -> None:
    hub = Hub()
    client = hub.add(STAFF)
    for battery in (50, 49, 48):
        hub.publish_rows([row("s-1", battery), row("s-2", battery + 10)])
    hub.publish("trip", trip("t-1", RIDER, 10))
    hub.publish("trip", trip("t-1", RIDER, 30))
    events = client.take()
    [vehicles] = [e for e in events if e.name == "vehicles"]
    assert vehicles.data["rows"] == [row("s-1", 48), row("s-2", 58)]
    assert [e.data["signed_micro"] for e in events if e.name == "trip"] == [30]
    assert client.take() == []


def test_events_are_taken_in_sequence_order() -> None:
    hub = Hub()
    client = hub.add(STAFF)
    hub.publish("alert", {"alert_id": 1})
    hub.publish_rows([row("s-1", 50)])
    hub.publish("epoch", {"epoch_id": 1})
    seqs = [e.seq or 0 for e in client.take()]
    assert 0 not in seqs
    assert seqs == sorted(seqs)


def test_a_slow_client_gets_the_latest_state_of_each_alert() -> None:
    hub = Hub()
    client = hub.add(STAFF)
    hub.publish("alert", {"alert_id": 1, "acked_ms": None})
    hub.publish("alert", {"alert_id": 2, "acked_ms": None})
    hub.publish("alert", {"alert_id": 1, "acked_ms": 5})
    assert [e.data for e in client.take()] == [{"alert_id": 2, "acked_ms": None}, {"alert_id": 1, "acked_ms": 5}]


def test_a_client_hopelessly_behind_is_dropped_with_a_last_status_event() -> None:
    hub = Hub(max_keyed=5)
    client = hub.add(STAFF)
    for alert_id in range(6):
        hub.publish("alert", {"alert_id": alert_id})
    hub.publish_rows([row("s-1", 50)])
    assert client.dropped
    assert client.take() == [Event("status", {"ok": False, "reason": "too_slow"})]


def test_clients_hear_when_the_database_is_lost_and_back_and_a_newcomer_hears_it_is_lost() -> None:
    hub = Hub()
    client = hub.add(Viewer(staff=False, rider=RIDER))
    hub.set_ok(False)
    hub.set_ok(False)
    newcomer = hub.add(STAFF)
    hub.set_ok(True)
    assert [e.data for e in client.take()] == [{"ok": False}, {"ok": True}]
    assert [e.data for e in newcomer.take()] == [{"ok": False}, {"ok": True}]


def test_a_reconnecting_client_is_replayed_what_it_missed() -> None:
    hub = Hub()
    hub.publish_rows([row("s-1", 50), row("s-2", 60)])
    seen = hub.publish("alert", {"alert_id": 1})
    hub.publish_rows([row("s-2", 59)])
    hub.publish("alert", {"alert_id": 2})
    assert seen.seq is not None
    client = hub.add(STAFF)
    assert hub.replay(client, hub.event_id(seen.seq))
    events = client.take()
    assert [e.data for e in events if e.name == "alert"] == [{"alert_id": 2}]
    assert [e.data["rows"] for e in events if e.name == "vehicles"] == [[row("s-2", 59)]]


def test_a_rider_is_replayed_only_their_own_trips() -> None:
    hub = Hub()
    hub.publish("trip", trip("t-1", OTHER, 5))
    hub.publish("trip", trip("t-2", RIDER, 5))
    hub.publish_rows([row("s-1", 50)])
    client = hub.add(Viewer(staff=False, rider=RIDER))
    assert hub.replay(client, hub.event_id(0))
    assert [e.data["trip_id"] for e in client.take()] == ["t-2"]


def test_an_id_of_another_boot_a_future_one_or_one_older_than_the_ring_cannot_be_replayed() -> None:
    hub = Hub(ring=2)
    for alert_id in range(4):
        hub.publish("alert", {"alert_id": alert_id})
    client = hub.add(STAFF)
    assert not hub.replay(client, "deadbeef.1")
    assert not hub.replay(client, hub.event_id(99))
    assert not hub.replay(client, hub.event_id(1))
    assert not hub.replay(client, "garbage")
    assert hub.replay(client, hub.event_id(2))
    assert [e.data["alert_id"] for e in client.take()] == [2, 3]


def test_a_removed_client_gets_nothing_more() -> None:
    hub = Hub()
    client = hub.add(STAFF)
    hub.remove(client)
    hub.publish("alert", {"alert_id": 1})
    assert client.take() == []
    assert hub.clients == set()


def test_clients_that_keep_up_share_one_encoding_of_an_event() -> None:
    hub = Hub()
    first, second = hub.add(STAFF), hub.add(STAFF)
    hub.publish_rows([row("s-1", 50)])
    [a], [b] = first.take(), second.take()
    assert a is b
    text = hub.encode(a)
    assert hub.encode(b) is text
    head, name, data, *_ = text.split("\n")
    assert (head, name) == (f"id: {hub.event_id(1)}", "event: vehicles")
    assert json.loads(data.removeprefix("data: ")) == {"rows": [row("s-1", 50)]}
    assert text.endswith("\n\n")
