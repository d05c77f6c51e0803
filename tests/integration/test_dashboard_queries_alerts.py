"""The alert store's contract, passed alike by the in-memory fake and the SQL store on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from settlement.alerts import SqlAlertStore
from settlement.db import Database
from settlement.memory import MemoryAlertStore
from settlement.views import AlertStore, AlertView

T0 = 1_790_000_000_000

# a factory of stores sharing one set of alerts, as two dashboard instances share the database
Instances = Callable[[], AlertStore]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def instances(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Instances]:
    if request.param == "memory":
        shared = MemoryAlertStore()
        yield lambda: shared
        return
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    opened: list[Database] = []
    first = Database.open(url)
    first.upgrade()
    opened.append(first)

    def another() -> AlertStore:
        database = Database.open(url)
        opened.append(database)
        return SqlAlertStore(database)

    yield another
    for database in opened:
        database.close()


@pytest.fixture()
def store(instances: Instances) -> AlertStore:
    return instances()


def test_an_opened_alert_is_listed_open_with_what_it_was_opened_with(store: AlertStore) -> None:
    alert = store.open("fault", "bike-1", "motor", T0, detail="motor fault")
    assert alert is not None and alert.alert_id > 0
    assert alert == AlertView(alert.alert_id, "fault", "bike-1", "motor", "motor fault", T0, None, None, None)
    assert store.alerts() == [alert]


def test_a_key_already_open_is_not_opened_twice(store: AlertStore) -> None:
    assert store.open("battery_low", "bike-1", "", T0) is not None
    assert store.open("battery_low", "bike-1", "", T0 + 1) is None
    assert len(store.alerts()) == 1
    assert store.open("battery_low", "bike-2", "", T0 + 2) is not None  # another vehicle: another key
    assert store.open("fault", "bike-1", "brake", T0 + 3) is not None
    assert store.open("fault", "bike-1", "motor", T0 + 4) is not None  # another code: another key
    assert store.open("rejects", "", "bad_signature", T0 + 5) is not None  # fleet-wide
    assert len(store.alerts()) == 5


def test_a_cleared_alert_leaves_the_open_list_and_its_key_may_open_again(store: AlertStore) -> None:
    first = store.open("offline", "bike-1", "", T0)
    assert first is not None
    cleared = store.clear("offline", "bike-1", "", T0 + 10)
    assert cleared is not None and cleared.alert_id == first.alert_id and cleared.cleared_ms == T0 + 10
    assert store.alerts() == [] and store.alerts(open_only=False) == [cleared]
    assert store.clear("offline", "bike-1", "", T0 + 11) is None  # nothing open any more
    again = store.open("offline", "bike-1", "", T0 + 20)
    assert again is not None and again.alert_id != first.alert_id
    assert store.alerts(open_only=False) == [again, cleared]  # newest first


def test_clearing_a_key_never_opened_is_none(store: AlertStore) -> None:
    assert store.clear("fault", "bike-9", "motor", T0) is None


def test_an_ack_keeps_the_first_acknowledgement_and_an_unknown_id_is_none(store: AlertStore) -> None:
    alert = store.open("outside_zone", "bike-1", "", T0)
    assert alert is not None
    acked = store.ack(alert.alert_id, "ops@zone", T0 + 5)
    assert acked is not None and (acked.acked_ms, acked.acked_by) == (T0 + 5, "ops@zone")
    again = store.ack(alert.alert_id, "someone-else", T0 + 9)
    assert again == acked
    assert store.ack(alert.alert_id + 1000, "ops@zone", T0) is None
    assert store.alerts() == [acked]  # acked alerts stay open until cleared


def test_alerts_come_newest_first_bounded_by_the_limit(store: AlertStore) -> None:
    for n in range(5):
        store.open("battery_low", f"bike-{n}", "", T0 + n)
    assert [a.vehicle_id for a in store.alerts(limit=3)] == ["bike-4", "bike-3", "bike-2"]


def test_changed_since_gives_alerts_opened_cleared_or_acked_from_then_on(store: AlertStore) -> None:
    a = store.open("fault", "bike-1", "motor", T0)
    b = store.open("fault", "bike-2", "motor", T0 + 10)
    c = store.open("fault", "bike-3", "motor", T0 + 20)
    assert a and b and c
    store.clear("fault", "bike-1", "motor", T0 + 30)
    store.ack(b.alert_id, "ops", T0 + 40)
    changed = store.changed_since(T0 + 20)
    assert [x.alert_id for x in changed] == [c.alert_id, a.alert_id, b.alert_id]  # by time of the last change
    assert changed[1].cleared_ms == T0 + 30 and changed[2].acked_by == "ops"
    assert store.changed_since(T0 + 41) == []
    assert len(store.changed_since(T0)) == 3


def test_an_alert_open_in_one_instance_is_not_opened_by_another(instances: Instances) -> None:
    one, two = instances(), instances()
    opened = one.open("fault", "bike-1", "motor", T0)
    assert opened is not None
    assert two.open("fault", "bike-1", "motor", T0 + 1) is None
    assert two.alerts() == [opened]
    assert two.clear("fault", "bike-1", "motor", T0 + 2) is not None
    assert one.alerts() == []


def test_an_unknown_alert_kind_is_refused(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="unknown alert kind"):
        store.open("bogus", "bike-1", "", T0)


@pytest.mark.parametrize("n", [4])
def test_instances_opening_the_same_alert_at_once_open_it_once(instances: Instances, n: int) -> None:
    stores = [instances() for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[AlertView | None] = [None] * n

    def race(i: int) -> None:
        barrier.wait()
        results[i] = stores[i].open("rejects", "", "bad_signature", T0 + i)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert stores[0].alerts() == winners


def test_a_long_code_is_cut_alike_when_opening_and_clearing(store: AlertStore) -> None:
    code = "sensor-" + "x" * 300
    opened = store.open("fault", "bike-1", code, T0, detail="d" * 1000)
    assert opened is not None and opened.code == code[:64] and opened.detail == "d" * 256
    assert store.open("fault", "bike-1", code, T0 + 1) is None
    cleared = store.clear("fault", "bike-1", code, T0 + 2)
    assert cleared is not None and cleared.alert_id == opened.alert_id
