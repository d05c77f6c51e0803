"""The change source on a fake read model, a fake alert store and a fake clock: one ``step`` at a time."""

from __future__ import annotations

import asyncio

import pytest

from dashboard.changes import ChangeSource, Timing, day_start_ms
from dashboard.config import Thresholds
from dashboard.geo import load_zone
from dashboard.hub import Hub, Viewer
from settlement.errors import StoreUnavailable
from tests.unit.test_changes_fakes import (
    FAR_OUTSIDE,
    RIDER,
    T0,
    Clock,
    Epoch,
    FakeAlertStore,
    FakeReads,
    Trip,
    Vehicle,
    names,
    of,
)

LIMITS = Thresholds(low_battery_pct=20.0, offline_after_s=300, rejects_quiet_s=600)


@pytest.fixture()
def reads() -> FakeReads:
    fake = FakeReads()
    fake.put(Vehicle("s-1"), Vehicle("s-2"), Vehicle("s-3", battery_pct=50))
    return fake


@pytest.fixture()
def store() -> FakeAlertStore:
    return FakeAlertStore()


@pytest.fixture()
def clock() -> Clock:
    return Clock(T0 + 1000)


def source(reads: FakeReads, store: FakeAlertStore | None, clock: Clock, **timing: float) -> ChangeSource:
    return ChangeSource(reads, Hub(), clock, LIMITS, store, load_zone(), Timing(**timing))  # type: ignore[arg-type]


def started(reads: FakeReads, store: FakeAlertStore | None, clock: Clock) -> ChangeSource:
    changes = source(reads, store, clock)
    changes.step()
    changes.drain()
    return changes


def rows_of(events: list[tuple[str, dict[str, object]]]) -> dict[str, list[object]]:
    return {str(r[0]): r for data in of(events, "vehicles") for r in data["rows"]}  # type: ignore[attr-defined]


def test_the_first_round_is_a_baseline_without_vehicle_events(reads: FakeReads, clock: Clock) -> None:
    changes = source(reads, None, clock)
    changes.step()
    assert "vehicles" not in names(changes.drain())
    assert changes.status_counts()["available"] == 3


def test_a_changed_vehicle_is_published_once_with_its_row(reads: FakeReads, clock: Clock) -> None:
    changes = started(reads, None, clock)
    reads.change("s-2", battery_pct=12.0, received_ms=clock.advance(250))
    changes.step()
    rows = rows_of(changes.drain())
    assert list(rows) == ["s-2"]
    assert rows["s-2"][2] == "low_battery"
    clock.advance(250)
    changes.step()  # s-2 is read again inside the overlap, but it has not changed
    assert "vehicles" not in names(changes.drain())


def test_a_row_committed_late_with_an_older_stamp_is_not_missed(reads: FakeReads, clock: Clock) -> None:
    changes = started(reads, None, clock)
    reads.change("s-1", lat=51.2155, received_ms=clock.advance(500))
    changes.step()
    changes.drain()
    # stamped before s-1 but committed after the read above
    reads.change("s-3", lat=51.2156, received_ms=clock.now - 300)
    clock.advance(250)
    changes.step()
    assert list(rows_of(changes.drain())) == ["s-3"]
    assert reads.since_calls[-1] <= clock.now - 300


def test_a_vehicle_gone_silent_turns_offline_and_opens_a_silence_alert(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    changes = started(reads, store, clock)
    clock.now = T0 + 300_001
    changes.step()
    events = changes.drain()
    assert {r[2] for r in rows_of(events).values()} == {"offline"}
    assert store.open_keys() == {("offline", v, "silent") for v in ("s-1", "s-2", "s-3")}
    assert {(a["kind"], a["vehicle_id"], a["code"]) for a in of(events, "alert")} == store.open_keys()
    clock.advance(1000)
    changes.step()
    assert "alert" not in names(changes.drain())  # seen already: not sent again
    assert [c for c in store.calls if c[0] == "open"].__len__() == 3  # and not opened again


def test_a_fault_opens_an_alert_with_its_code_and_its_repair_clears_it(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    changes = started(reads, store, clock)
    reads.change("s-1", state="non_operational", fault_code="E42", received_ms=clock.advance(250))
    changes.step()
    events = changes.drain()
    assert rows_of(events)["s-1"][2] == "fault"
    [alert] = of(events, "alert")
    assert (alert["kind"], alert["code"], alert["cleared_ms"]) == ("fault", "E42", None)
    reads.change("s-1", state="available", fault_code=None, received_ms=clock.advance(250))
    changes.step()
    [cleared] = of(changes.drain(), "alert")
    assert cleared["alert_id"] == alert["alert_id"]
    assert cleared["cleared_ms"] == clock.now


def test_a_vehicle_leaving_the_zone_opens_an_outside_zone_alert(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    changes = started(reads, store, clock)
    reads.change("s-2", lat=FAR_OUTSIDE[0], lon=FAR_OUTSIDE[1], received_ms=clock.advance(250))
    changes.step()
    assert store.open_keys() == {("outside_zone", "s-2", "")}


def test_alerts_open_at_start_are_not_opened_twice(reads: FakeReads, store: FakeAlertStore, clock: Clock) -> None:
    reads.change("s-1", online=False)
    store.open("offline", "s-1", "last_will", T0)
    store.calls.clear()
    started(reads, store, clock)
    assert store.calls == []


def test_two_instances_share_the_store_and_both_publish_the_alert(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    first, second = started(reads, store, clock), started(reads, store, clock)
    reads.change("s-3", battery_pct=8.0, received_ms=clock.advance(250))
    first.step()
    second.step()
    assert len(store.items) == 1
    assert [a["kind"] for a in of(first.drain(), "alert")] == ["battery_low"]
    assert [a["kind"] for a in of(second.drain(), "alert")] == ["battery_low"]


def test_an_acknowledgement_made_elsewhere_is_published(reads: FakeReads, store: FakeAlertStore, clock: Clock) -> None:
    changes = started(reads, store, clock)
    alert = store.open("fault", "s-1", "E1", clock.now)
    assert alert is not None
    changes.step()
    changes.drain()
    store.ack(alert.alert_id, "op", clock.advance(250))
    changes.step()
    [acked] = of(changes.drain(), "alert")
    assert (acked["acked_by"], acked["acked_ms"]) == ("op", clock.now)


def test_running_trips_are_published_when_new_or_their_cost_changes_and_once_when_they_end(
    reads: FakeReads, clock: Clock
) -> None:
    reads.running = [Trip("t-old", "s-1", RIDER, signed_micro=100)]
    changes = started(reads, None, clock)
    reads.running = [Trip("t-old", "s-1", RIDER, signed_micro=100), Trip("t-new", "s-2", RIDER, signed_micro=0)]
    clock.advance(1000)
    changes.step()
    assert [t["trip_id"] for t in of(changes.drain(), "trip")] == ["t-new"]
    reads.running = [Trip("t-new", "s-2", RIDER, signed_micro=250_000)]
    reads.ended["t-old"] = Trip("t-old", "s-1", RIDER, status="priced", signed_micro=300, charged_micro=300)
    clock.advance(1000)
    changes.step()
    trips = {t["trip_id"]: t for t in of(changes.drain(), "trip")}
    assert trips["t-new"]["signed_micro"] == 250_000
    assert (trips["t-old"]["status"], trips["t-old"]["charged_micro"]) == ("priced", 300)


def test_new_and_changed_epochs_are_published_and_old_ones_are_not(reads: FakeReads, clock: Clock) -> None:
    reads.epoch_views = [Epoch(1, status="final")]
    changes = started(reads, None, clock)
    reads.epoch_views.append(Epoch(2))
    clock.advance(1000)
    changes.step()
    assert [e["epoch_id"] for e in of(changes.drain(), "epoch")] == [2]
    reads.epoch_views[1] = Epoch(2, status="committed", tx_hash="0x" + "ab" * 32, gas_used=81_000)
    clock.advance(1000)
    changes.step()
    [epoch] = of(changes.drain(), "epoch")
    assert (epoch["status"], epoch["gas_used"]) == ("committed", 81_000)


def test_kpis_come_every_five_seconds_with_the_counts_per_status(reads: FakeReads, clock: Clock) -> None:
    changes = source(reads, None, clock)
    changes.step()
    [kpis] = of(changes.drain(), "kpis")
    assert kpis["revenue_today_micro"] == 14_260_000
    assert kpis["status_counts"] == {"available": 3, "on_trip": 0, "low_battery": 0, "offline": 0, "fault": 0}
    clock.advance(4000)
    changes.step()
    assert "kpis" not in names(changes.drain())
    clock.advance(1000)
    changes.step()
    assert "kpis" in names(changes.drain())


def test_rejected_readings_open_an_alert_per_reason_that_clears_after_a_quiet_window(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    changes = started(reads, store, clock)
    reads.rejects.append((clock.now, "bad_signature"))
    clock.advance(5000)
    changes.step()
    assert store.open_keys() == {("rejects", "", "bad_signature")}
    clock.advance(600_000)
    reads.put(*(Vehicle(v, received_ms=clock.now) for v in ("s-1", "s-2", "s-3")))  # keep them heard from
    changes.step()
    assert store.open_keys() == set()


def test_a_lost_database_fails_the_round_and_the_next_one_resumes_from_the_watermark(
    reads: FakeReads, clock: Clock
) -> None:
    changes = started(reads, None, clock)
    watermark_read = clock.now
    reads.down = True
    clock.advance(250)
    with pytest.raises(StoreUnavailable):
        changes.step()
    reads.change("s-1", battery_pct=10.0, received_ms=clock.advance(250))  # written while we could not read
    reads.down = False
    clock.advance(30_000)
    changes.step()
    assert list(rows_of(changes.drain())) == ["s-1"]
    assert reads.since_calls[-1] <= watermark_read


def test_the_day_starts_at_midnight_in_brussels() -> None:
    summer_noon_utc = 1_781_524_800_000  # 2026-06-15 12:00 UTC, 14:00 in Brussels
    assert day_start_ms(summer_noon_utc) == 1_781_474_400_000  # 2026-06-14 22:00 UTC


def test_the_loop_tells_clients_when_reads_fail_and_when_they_work_again(reads: FakeReads, clock: Clock) -> None:
    changes = source(reads, None, clock, poll_s=0.001, max_backoff_s=0.001)
    client = changes.hub.add(Viewer(staff=True))

    async def scenario() -> list[object]:
        task = asyncio.create_task(changes.run())
        try:
            await until(lambda: changes.polls >= 1)
            reads.down = True
            await until(lambda: not changes.hub.ok)
            reads.down = False
            await until(lambda: changes.hub.ok)
        finally:
            task.cancel()
        return [e.data["ok"] for e in client.take() if e.name == "status"]

    assert asyncio.run(scenario()) == [False, True]
    assert changes.errors >= 1


async def until(condition: object, rounds: int = 2000) -> None:
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the change source did not get there")


def test_a_whole_fleet_going_silent_is_judged_a_budget_of_writes_per_round(
    reads: FakeReads, store: FakeAlertStore, clock: Clock
) -> None:
    reads.put(*(Vehicle(f"x-{n:02}") for n in range(7)))
    changes = source(reads, store, clock, writes=4)
    changes.step()
    changes.drain()
    clock.now = T0 + 400_000
    changes.step()
    assert len(store.open_keys()) == 4
    assert len(rows_of(changes.drain())) == 10  # the map hears of every vehicle at once
    clock.advance(250)
    changes.step()
    assert len(store.open_keys()) == 8
    clock.advance(250)
    changes.step()
    assert len(store.open_keys()) == 10
    assert {k[2] for k in store.open_keys()} == {"silent"}
