"""The fleet snapshot from memory: seeded by the change source's first read, kept by the hub's rows, consistent with
the live stream (a change before the snapshot is in it, a change after it is delivered on resuming after its id),
and ``GET /api/v1/fleet`` answering from it without reading the fleet again."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.changes import ChangeSource, Timing
from dashboard.config import DashboardConfig, Principal, Role, Thresholds
from dashboard.hub import Event, Hub, Viewer
from dashboard.routes.live import LiveOptions
from tests.unit.test_changes_fakes import T0, Clock, FakeReads, Vehicle

LIMITS = Thresholds(low_battery_pct=20.0, offline_after_s=300, rejects_quiet_s=600)
STAFF = Viewer(staff=True)


class CountingReads(FakeReads):
    """The fake read model, counting how often the whole fleet is read."""

    fleet_reads: int = 0

    def fleet(self) -> list[Vehicle]:
        self.fleet_reads += 1
        return super().fleet()


@pytest.fixture()
def reads() -> CountingReads:
    fake = CountingReads()
    fake.put(Vehicle("s-1"), Vehicle("s-2", battery_pct=5.0), Vehicle("s-3", online=False))
    return fake


@pytest.fixture()
def clock() -> Clock:
    return Clock(T0 + 1000)


def round_of(changes: ChangeSource, clock: Clock, ms: int = 250) -> None:
    """One round of the change source, its events handed to the hub, then the clock moves on."""
    changes.step()
    changes.publish()
    clock.advance(ms)


def snapshot(hub: Hub) -> tuple[dict[str, list[object]], str]:
    taken = hub.fleet_snapshot()
    assert taken is not None
    rows, event_id = taken
    return {str(r[0]): r for r in orjson.loads(rows)}, event_id


def resumed(hub: Hub, event_id: str) -> dict[str, list[object]]:
    """The vehicle rows a client resuming after ``event_id`` is sent."""
    client = hub.add(STAFF)
    assert hub.replay(client, event_id)
    return {str(r[0]): r for e in client.take() if e.name == "vehicles" for r in e.data["rows"]}  # type: ignore[attr-defined]


def started(reads: FakeReads, clock: Clock) -> tuple[ChangeSource, Hub]:
    hub = Hub()
    changes = ChangeSource(reads, hub, clock, LIMITS, timing=Timing())
    round_of(changes, clock)
    return changes, hub


def test_there_is_no_snapshot_before_the_change_source_has_read_the_fleet(reads: FakeReads, clock: Clock) -> None:
    hub = Hub()
    changes = ChangeSource(reads, hub, clock, LIMITS)
    assert hub.fleet_snapshot() is None
    changes.step()
    assert hub.fleet_snapshot() is None  # read, but not yet handed over on the event loop
    changes.publish()
    rows, event_id = snapshot(hub)
    assert [(vid, r[2]) for vid, r in rows.items()] == [
        ("s-1", "available"),
        ("s-2", "low_battery"),
        ("s-3", "offline"),
    ]
    assert event_id == hub.event_id(hub.seq)  # the first round's KPIs are numbered too


def test_a_change_before_the_snapshot_is_in_it_and_not_sent_again_on_resuming(reads: FakeReads, clock: Clock) -> None:
    changes, hub = started(reads, clock)
    reads.change("s-1", battery_pct=42.0, received_ms=clock.now)
    round_of(changes, clock)
    rows, event_id = snapshot(hub)
    assert rows["s-1"][3] == 42.0
    assert event_id == hub.event_id(hub.seq)
    assert resumed(hub, event_id) == {}


def test_a_change_after_the_snapshot_reaches_a_client_resuming_after_its_event_id(
    reads: FakeReads, clock: Clock
) -> None:
    changes, hub = started(reads, clock)
    reads.change("s-1", battery_pct=42.0, received_ms=clock.now)
    round_of(changes, clock)
    _, event_id = snapshot(hub)
    reads.change("s-2", battery_pct=61.0, received_ms=clock.now)
    round_of(changes, clock)
    reads.change("s-3", online=True, received_ms=clock.now)
    round_of(changes, clock)
    sent = resumed(hub, event_id)
    assert sorted(sent) == ["s-2", "s-3"]
    assert (sent["s-2"][2], sent["s-2"][3], sent["s-3"][2]) == ("available", 61.0, "available")
    rows, _ = snapshot(hub)
    assert (rows["s-1"][3], rows["s-2"][3], rows["s-3"][2]) == (42.0, 61.0, "available")


def test_a_vehicle_gone_silent_turns_offline_in_the_snapshot_and_on_the_stream(reads: FakeReads, clock: Clock) -> None:
    changes, hub = started(reads, clock)
    _, event_id = snapshot(hub)
    clock.advance(LIMITS.offline_after_s * 1000)
    round_of(changes, clock)
    rows, _ = snapshot(hub)
    assert {r[2] for r in rows.values()} == {"offline"}
    assert {r[2] for r in resumed(hub, event_id).values()} == {"offline"}


def test_a_vehicle_first_seen_after_the_baseline_joins_the_snapshot(reads: FakeReads, clock: Clock) -> None:
    changes, hub = started(reads, clock)
    reads.put(Vehicle("s-9", received_ms=clock.now))
    round_of(changes, clock)
    rows, _ = snapshot(hub)
    assert list(rows) == ["s-1", "s-2", "s-3", "s-9"]


def test_rows_published_before_the_seed_are_newer_and_stay(clock: Clock) -> None:
    hub = Hub()
    hub.publish_rows([["s-1", "scooter", "fault", 10.0, 51.2, 4.39, T0, None]])
    hub.seed([["s-1", "scooter", "available", 80.0, 51.2, 4.39, T0 - 1, None]])
    rows, _ = snapshot(hub)
    assert rows["s-1"][2] == "fault"


def test_the_snapshot_is_encoded_once_per_change(reads: FakeReads, clock: Clock) -> None:
    changes, hub = started(reads, clock)
    first = hub.fleet_snapshot()
    assert first is not None
    hub.publish("alert", {"alert_id": 1})  # not a vehicle: same rows, a newer event id
    second = hub.fleet_snapshot()
    assert second is not None
    assert second[0] is first[0]
    assert second[1] == hub.event_id(hub.seq) != first[1]
    reads.change("s-2", battery_pct=70.0, received_ms=clock.now)
    round_of(changes, clock)
    third = hub.fleet_snapshot()
    assert third is not None
    assert third[0] is not first[0]
    assert orjson.loads(third[0])[1][3] == 70.0


def test_seed_rows_are_never_replayed_as_changes(reads: FakeReads, clock: Clock) -> None:
    _, hub = started(reads, clock)
    assert resumed(hub, hub.event_id(0)) == {}


def live_app(reads: FakeReads, clock: Clock, *, enabled: bool) -> TestClient:
    options = LiveOptions(enabled=enabled, timing=Timing(poll_s=0.01), zone=False)
    config = DashboardConfig(session_secret="x" * 32)
    app = create_app(reads, config, clock=clock, live_options=options)  # type: ignore[arg-type]
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "olivia")
    return TestClient(app)


def test_the_fleet_route_answers_from_the_snapshot_without_reading_the_fleet_again(
    reads: CountingReads, clock: Clock
) -> None:
    with live_app(reads, clock, enabled=True) as http:
        bodies = [http.get("/api/v1/fleet") for _ in range(3)]
        hub: Hub = http.app.state.hub  # type: ignore[attr-defined]
    assert reads.fleet_reads == 1  # the change source's first read, none per request
    for response in bodies:
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-store"
        body = response.json()
        assert body["now_ms"] == clock.now
        assert body["columns"][0] == "vehicle_id"
        assert [(r[0], r[2]) for r in body["rows"]] == [
            ("s-1", "available"),
            ("s-2", "low_battery"),
            ("s-3", "offline"),
        ]
        assert body["event_id"].startswith(hub.boot + ".")


def test_without_a_running_change_source_the_route_reads_the_read_model(reads: CountingReads, clock: Clock) -> None:
    http = live_app(reads, clock, enabled=True)  # no lifespan: the change source never runs
    body = http.get("/api/v1/fleet").json()
    assert reads.fleet_reads == 1
    assert [r[0] for r in body["rows"]] == ["s-1", "s-2", "s-3"]
    hub: Hub = http.app.state.hub  # type: ignore[attr-defined]
    assert body["event_id"] == hub.event_id(0)
    assert not hub.seeded


def test_a_client_that_loads_the_route_snapshot_then_resumes_the_stream_misses_nothing(
    reads: CountingReads, clock: Clock
) -> None:
    http = live_app(reads, clock, enabled=False)
    hub: Hub = http.app.state.hub  # type: ignore[attr-defined]
    hub.seed([["s-1", "scooter", "available", 80.0, 51.2, 4.39, T0, None]])
    hub.publish_rows([["s-1", "scooter", "available", 79.0, 51.2, 4.39, T0 + 1, None]])
    body = http.get("/api/v1/fleet").json()
    assert reads.fleet_reads == 0  # seeded: answered from memory even with the change source off
    assert body["rows"] == [["s-1", "scooter", "available", 79.0, 51.2, 4.39, T0 + 1, None]]
    hub.publish_rows([["s-1", "scooter", "on_trip", 78.0, 51.2, 4.39, T0 + 2, None]])
    client = hub.add(STAFF)
    assert hub.replay(client, body["event_id"])
    assert [e.data["rows"] for e in client.take() if isinstance(e, Event)] == [
        [["s-1", "scooter", "on_trip", 78.0, 51.2, 4.39, T0 + 2, None]]
    ]


def test_kpis_count_statuses_from_the_snapshot_once_there_is_one(reads: CountingReads, clock: Clock) -> None:
    http = live_app(reads, clock, enabled=False)
    before = http.get("/api/v1/kpis").json()["status_counts"]
    assert (before["available"], before["low_battery"], before["offline"], reads.fleet_reads) == (1, 1, 1, 1)
    hub: Hub = http.app.state.hub  # type: ignore[attr-defined]
    hub.seed([[f"s-{n}", "scooter", "fault", 80.0, 51.2, 4.39, T0, None] for n in range(4)])
    after = http.get("/api/v1/kpis").json()["status_counts"]
    assert (after["fault"], after["available"], reads.fleet_reads) == (4, 0, 1)
