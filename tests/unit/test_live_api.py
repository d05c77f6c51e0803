"""The live routes with FastAPI's test client over fakes: fleet snapshot, KPIs, alerts and acks, the live
stream's access rules, and the stream itself driven event by event."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.hub import Hub, Viewer
from dashboard.routes.live import LiveLimits, LiveOptions, stream
from tests.unit.test_changes_fakes import RIDER, T0, Clock, FakeAlertStore, FakeReads, Vehicle

OPERATOR = Principal(Role.OPERATOR, "olivia")
RESEARCHER = Principal(Role.RESEARCHER, "rik")
ACCOUNT = Principal(Role.ACCOUNT, RIDER)


@pytest.fixture()
def store() -> FakeAlertStore:
    return FakeAlertStore()


@pytest.fixture()
def reads() -> FakeReads:
    fake = FakeReads()
    fake.put(Vehicle("s-1"), Vehicle("s-2", battery_pct=5.0), Vehicle("s-3", online=False, battery_pct=None))
    return fake


def client_as(
    who: Principal | None, reads: FakeReads, store: FakeAlertStore | None, limits: LiveLimits | None = None
) -> TestClient:
    config = DashboardConfig(session_secret="x" * 32)
    options = LiveOptions(enabled=False, limits=limits or LiveLimits())
    app = create_app(reads, config, clock=Clock(T0 + 1000), alert_store=store, live_options=options)  # type: ignore[arg-type]
    app.dependency_overrides[deps.principal] = lambda: who
    return TestClient(app)


def test_the_fleet_snapshot_lists_every_vehicle_as_a_compact_row(reads: FakeReads, store: FakeAlertStore) -> None:
    response = client_as(RESEARCHER, reads, store).get("/api/v1/fleet")
    assert response.status_code == 200
    body = response.json()
    assert body["now_ms"] == T0 + 1000
    assert body["columns"] == ["vehicle_id", "kind", "status", "battery_pct", "lat", "lon", "received_ms", "owner"]
    assert [(r[0], r[2]) for r in body["rows"]] == [("s-1", "available"), ("s-2", "low_battery"), ("s-3", "offline")]
    assert body["event_id"].endswith(".0")


@pytest.mark.parametrize("path", ["/api/v1/fleet", "/api/v1/kpis", "/api/v1/alerts", "/api/v1/live"])
def test_an_anonymous_visitor_gets_401_problems(path: str, reads: FakeReads, store: FakeAlertStore) -> None:
    response = client_as(None, reads, store).get(path)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("path", ["/api/v1/fleet", "/api/v1/kpis", "/api/v1/alerts"])
def test_a_rider_may_not_see_the_fleet_kpis_or_alerts(path: str, reads: FakeReads, store: FakeAlertStore) -> None:
    response = client_as(ACCOUNT, reads, store).get(path)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_kpis_carry_the_days_figures_and_the_counts_per_status(reads: FakeReads, store: FakeAlertStore) -> None:
    body = client_as(OPERATOR, reads, store).get("/api/v1/kpis").json()
    assert body["trips_today"] == 12
    assert body["revenue_today_micro"] == 14_260_000
    assert body["status_counts"] == {"available": 1, "on_trip": 0, "low_battery": 1, "offline": 1, "fault": 0}


def test_alerts_are_listed_open_only_unless_asked(reads: FakeReads, store: FakeAlertStore) -> None:
    store.open("fault", "s-1", "E42", T0)
    store.open("battery_low", "s-2", "", T0 + 1, "5.0")
    store.clear("fault", "s-1", "E42", T0 + 2)
    http = client_as(RESEARCHER, reads, store)
    assert [a["kind"] for a in http.get("/api/v1/alerts").json()["items"]] == ["battery_low"]
    everything = http.get("/api/v1/alerts", params={"open_only": "false"}).json()["items"]
    assert [(a["kind"], a["cleared_ms"]) for a in everything] == [("battery_low", None), ("fault", T0 + 2)]
    assert http.get("/api/v1/alerts", params={"limit": 0}).status_code == 422


def test_an_operator_acknowledges_an_alert_once(reads: FakeReads, store: FakeAlertStore) -> None:
    alert = store.open("fault", "s-1", "E42", T0)
    assert alert is not None
    http = client_as(OPERATOR, reads, store)
    response = http.post(f"/api/v1/alerts/{alert.alert_id}/ack")
    assert response.status_code == 200
    assert (response.json()["acked_by"], response.json()["acked_ms"]) == ("olivia", T0 + 1000)
    assert store.items[alert.alert_id].acked_by == "olivia"


def test_acknowledging_needs_an_operator_and_a_known_alert(reads: FakeReads, store: FakeAlertStore) -> None:
    alert = store.open("fault", "s-1", "E42", T0)
    assert alert is not None
    path = f"/api/v1/alerts/{alert.alert_id}/ack"
    assert client_as(None, reads, store).post(path).status_code == 401
    assert client_as(RESEARCHER, reads, store).post(path).status_code == 403
    assert client_as(ACCOUNT, reads, store).post(path).status_code == 403
    assert store.items[alert.alert_id].acked_ms is None
    unknown = client_as(OPERATOR, reads, store).post("/api/v1/alerts/999/ack")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "999" in unknown.json()["detail"]
    assert client_as(OPERATOR, reads, store).post("/api/v1/alerts/abc/ack").status_code == 422
    assert client_as(OPERATOR, reads, None).post(path).status_code == 404  # an app that keeps no alerts


def test_without_an_alert_store_the_list_is_empty(reads: FakeReads) -> None:
    assert client_as(OPERATOR, reads, None).get("/api/v1/alerts").json() == {"items": []}


def test_streams_beyond_the_cap_get_a_503_problem(reads: FakeReads, store: FakeAlertStore) -> None:
    http = client_as(OPERATOR, reads, store, LiveLimits(per_principal=2, total=4))
    hub: Hub = http.app.state.hub  # type: ignore[attr-defined]
    hub.add(Viewer(staff=True, principal="operator:olivia"))
    hub.add(Viewer(staff=True, principal="operator:otto"))
    hub.add(Viewer(staff=True, principal="operator:olivia"))
    mine = http.get("/api/v1/live")
    assert mine.status_code == 503
    assert mine.headers["content-type"] == "application/problem+json"
    assert mine.headers["retry-after"] == "10"
    assert "for you" in mine.json()["detail"]
    hub.remove(next(iter(hub.clients)))
    hub.add(Viewer(staff=True, principal="researcher:rik"))
    hub.add(Viewer(staff=False, rider="0x" + "99" * 20, principal="account:0x" + "99" * 20))
    assert "server" in http.get("/api/v1/live").json()["detail"]


def test_an_overlong_last_event_id_is_refused(reads: FakeReads, store: FakeAlertStore) -> None:
    response = client_as(OPERATOR, reads, store).get("/api/v1/live", headers={"Last-Event-ID": "x" * 100})
    assert response.status_code == 422


def parse(chunk: str) -> dict[str, object]:
    fields: dict[str, object] = {}
    for line in chunk.strip().splitlines():
        name, _, value = line.partition(": ")
        fields[name] = json.loads(value) if name == "data" else value
    return fields


def test_the_stream_sends_a_retry_hint_a_clock_and_then_the_events_with_ids() -> None:
    hub = Hub()

    async def scenario() -> list[dict[str, object]]:
        events = stream(hub, Viewer(staff=True), None, lambda: T0)
        chunks = [await anext(events), await anext(events)]
        hub.publish("alert", {"alert_id": 1})
        chunks.append(await anext(events))
        assert len(hub.clients) == 1
        await events.aclose()
        assert hub.clients == set()
        return [parse(c) for c in chunks]

    retry, clock, alert = asyncio.run(scenario())
    assert retry == {"retry": "3000"}
    assert clock == {"event": "clock", "data": {"now_ms": T0}}
    assert alert == {"id": hub.event_id(1), "event": "alert", "data": {"alert_id": 1}}


def test_a_stream_resumed_from_an_unknown_id_is_told_to_reload() -> None:
    hub = Hub()

    async def scenario() -> dict[str, object]:
        events = stream(hub, Viewer(staff=True), "other.5", lambda: T0)
        await anext(events)
        reset = await anext(events)
        await events.aclose()
        return parse(reset)

    assert asyncio.run(scenario())["event"] == "reset"


def test_a_hopeless_stream_ends_after_its_last_status_event() -> None:
    hub = Hub(max_keyed=1)

    async def scenario() -> list[str]:
        events = stream(hub, Viewer(staff=True), None, lambda: T0)
        await anext(events)
        await anext(events)
        hub.publish("alert", {"alert_id": 1})
        hub.publish("alert", {"alert_id": 2})
        return [chunk async for chunk in events]

    [last] = asyncio.run(scenario())
    assert parse(last) == {"event": "status", "data": {"ok": False, "reason": "too_slow"}}
    assert hub.clients == set()


def test_a_closing_hub_ends_its_streams_with_a_status_event() -> None:
    hub = Hub()

    async def scenario() -> list[str]:
        events = stream(hub, Viewer(staff=True), None, lambda: T0)
        await anext(events)
        await anext(events)
        hub.close()
        return [chunk async for chunk in events]

    [last] = asyncio.run(scenario())
    assert parse(last) == {"event": "status", "data": {"ok": False, "reason": "closing"}}
    assert hub.clients == set()
