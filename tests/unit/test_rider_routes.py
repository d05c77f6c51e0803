"""The rider's pages and a trip's route over a fake read model: only the rider's own trips, newest first, paged;
words, euros and statuses in both languages; another rider's trip is a 404."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.routes import rider
from settlement.views import NotCommitted, Stats, TripView, cursor_key

ME = "0x4a62316623ad457F02cDC5D997deD67a383EC569"
OTHER = "0x1111111111111111111111111111111111111111"
T0 = 1_790_000_000_000
MESSAGES = Path(rider.__file__).resolve().parents[1] / "messages" / "rider.json"


@dataclasses.dataclass(frozen=True)
class Point:
    timestamp_ms: int
    lat: float
    lon: float
    speed_mps: float = 3.0
    battery_pct: float | None = 80.0


def trip(n: int, who: str = ME, **change: Any) -> TripView:
    """Trip ``n`` of ``who``: ended at T0 + n minutes, 10 minutes long, €1.23 + n cents, settled in epoch 1."""
    fields: dict[str, Any] = {
        "trip_id": f"bike-{n}:1", "vehicle_id": f"bike-{n}", "kind": "bicycle", "owner": OTHER, "rider": who,
        "start_ms": T0 + n * 60_000 - 600_000, "end_ms": T0 + n * 60_000, "duration_s": 600, "distance_m": 2_500,
        "fare_micro": 1_230_000 + n * 10_000, "status": "committed", "epoch_id": 1,
        "charged_micro": 1_230_000 + n * 10_000, "signed_micro": 1_230_000 + n * 10_000,
    }  # fmt: skip
    fields.update(change)
    return TripView(**fields)


class FakeReads:
    """The read model's rider methods over a list of trips and one vehicle track; records what it was asked."""

    def __init__(self, trips: list[TripView], track: list[Point] | None = None) -> None:
        self.all = trips
        self.points = track or []
        self.asked: list[tuple[str, Any]] = []
        self.receipts: dict[str, dict[str, Any]] = {}

    def trips(self, limit: int = 100, vehicle_id: str | None = None, rider: str | None = None,
              status: str | None = None, cursor: str | None = None) -> list[TripView]:  # fmt: skip
        self.asked.append(("trips", rider))
        rows = sorted((t for t in self.all if t.status != "open" and (rider is None or t.rider == rider)),
                      key=lambda t: (t.end_ms or 0, t.trip_id), reverse=True)  # fmt: skip
        if cursor is not None:
            end_ms, trip_id = cursor_key(cursor, int, str)
            rows = [t for t in rows if ((t.end_ms or 0), t.trip_id) < (end_ms, trip_id)]
        return rows[:limit]

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]:
        self.asked.append(("running", rider))
        return [t for t in self.all if t.status == "open" and (rider is None or t.rider == rider)][:limit]

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[Point]:
        self.asked.append(("track", (vehicle_id, since_ms, limit)))
        return [p for p in self.points if since_ms is None or p.timestamp_ms >= since_ms][-limit:]

    def trip(self, trip_id: str) -> TripView | None:
        return next((t for t in self.all if t.trip_id == trip_id), None)

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None:
        if trip_id in self.receipts:
            return self.receipts[trip_id]
        if self.trip(trip_id) is not None:
            raise NotCommitted(f"trip {trip_id} gets a receipt once its epoch is on chain")
        return None

    def stats(self) -> Stats:
        return Stats(0, 0, 0, 0, 0, len(self.all), 0, 0)


def client_for(model: FakeReads, who: Principal | None, now_ms: int = T0 + 3_600_000, **config: Any) -> TestClient:
    settings = DashboardConfig(session_secret="x" * 32, **config)
    app: FastAPI = create_app(model, settings, clock=lambda: now_ms)  # type: ignore[arg-type]
    app.dependency_overrides[deps.principal] = lambda: who
    return TestClient(app, follow_redirects=False)


def account(subject: str = ME) -> Principal:
    return Principal(Role.ACCOUNT, subject)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-trip="([^"]+)"', html)


@pytest.fixture()
def mine_and_others() -> FakeReads:
    return FakeReads([trip(n) for n in range(1, 26)] + [trip(n, OTHER) for n in range(100, 105)])


def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(mine_and_others: FakeReads) -> None:
    client = client_for(mine_and_others, None)
    for path, back in (
        ("/rider", "/rider"),
        ("/rider/trips/bike-1:1", "/rider/trips/bike-1%3A1"),
        ("/rider?cursor=abc", "/rider%3Fcursor%3Dabc"),
    ):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=" + back
    assert mine_and_others.asked == []


def test_staff_get_an_explanation_and_no_ones_trips(mine_and_others: FakeReads) -> None:
    client = client_for(mine_and_others, Principal(Role.OPERATOR, "op"))
    for path in ("/rider", "/rider/trips/bike-1:1"):
        response = client.get(path, headers={"Accept-Language": "en"})
        assert response.status_code == 200
        assert "signed in as staff" in response.text and listed(response.text) == []
    assert mine_and_others.asked == []


def test_a_rider_sees_only_their_own_trips_newest_first_in_pages(mine_and_others: FakeReads) -> None:
    client = client_for(mine_and_others, account())
    first = client.get("/rider")
    assert first.status_code == 200
    assert listed(first.text) == [f"bike-{n}:1" for n in range(25, 5, -1)]
    assert ("trips", ME) in mine_and_others.asked and all(r == ME for _, r in mine_and_others.asked)
    more = re.search(r'id="more" data-more href="([^"]+)"', first.text)
    assert more is not None
    second = client.get(more.group(1).replace("&amp;", "&"))
    assert listed(second.text) == [f"bike-{n}:1" for n in range(5, 0, -1)]
    assert 'id="more"' not in second.text and 'href="/rider"' in second.text
    assert not any(f"bike-{n}:1" in first.text + second.text for n in range(100, 105))


def test_a_cursor_no_page_handed_out_is_a_clear_422_page(mine_and_others: FakeReads) -> None:
    response = client_for(mine_and_others, account()).get("/rider?cursor=nonsense", headers={"Accept-Language": "en"})
    assert response.status_code == 422 and "does not exist" in response.text


def test_a_rider_with_no_trips_is_told_so() -> None:
    response = client_for(FakeReads([trip(1, OTHER)]), account()).get("/rider", headers={"Accept-Language": "nl"})
    assert response.status_code == 200 and "Nog geen ritten" in response.text and listed(response.text) == []


@pytest.mark.parametrize(
    ("lang", "euro", "rejected", "date"),
    [
        ("nl", "€\xa01,24", "geweigerd: je waarborg dekte de prijs niet", "21 sep 2026 16:14"),
        ("en", "€1.24", "rejected: your deposit did not cover the fare", "21 Sept 2026 16:14"),
    ],
)
def test_the_list_speaks_the_page_language_with_euros_statuses_and_brussels_dates(
    lang: str, euro: str, rejected: str, date: str
) -> None:
    model = FakeReads([
        trip(1), trip(2, status="rejected", reason="insufficient_deposit", epoch_id=None),
        trip(3, status="rejected", reason="some_new_code"), trip(4, status="priced", epoch_id=None),
    ])  # fmt: skip
    html = client_for(model, account()).get("/rider", headers={"Accept-Language": lang}).text
    assert euro in html and rejected in html and "some_new_code" in html and date in html
    assert {"nl": "geprijsd, wacht op een batch", "en": "priced, waiting for a batch"}[lang] in html
    assert f'<html lang="{lang}">' in html and 'class="cards trips"' in html and 'data-label="' in html


def test_a_trip_in_progress_shows_its_cost_so_far_and_is_named_to_the_script() -> None:
    running = trip(7, status="open", end_ms=None, duration_s=None, fare_micro=None, charged_micro=None,
                   signed_micro=450_000, epoch_id=None)  # fmt: skip
    model = FakeReads([trip(1), running, trip(8, OTHER, status="open", end_ms=None)])
    html = client_for(model, account()).get("/rider", headers={"Accept-Language": "en"}).text
    card = re.search(r'<li class="trip-card live" data-trip="bike-7:1">(.*?)</li>', html, re.DOTALL)
    assert card is not None and "€0.45" in card.group(1) and "Cost so far" in card.group(1)
    assert "bike-8:1" not in html
    config = json.loads(re.search(r'id="sz-config">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert config["rider"] == ME and config["running"] == ["bike-7:1"] and config["subject"] == ME


def test_a_rider_is_matched_to_their_trips_whatever_the_case_of_the_address() -> None:
    model = FakeReads([trip(1, ME.lower())])
    response = client_for(model, account()).get("/rider/trips/bike-1:1")
    assert response.status_code == 200


def receipt_for(view: TripView) -> dict[str, Any]:
    return {
        "trip": {"trip_id": view.trip_id}, "epoch_id": 1, "chain_id": 31337, "contract": OTHER,
        "tx_hash": "0x" + "ab" * 32, "status": "committed",
        "fare": {"unlock_micro": 500_000, "time_micro": 700_000, "distance_micro": 40_000, "total_micro": 1_240_000,
                 "charged_micro": 1_200_000, "limited_by": "voucher"},
        "consent": {"cap_micro": 20_000_000}, "voucher": {"cumulative_micro": 1_200_000},
    }  # fmt: skip


def test_a_trip_page_shows_the_fare_breakdown_settlement_receipt_and_verify() -> None:
    model = FakeReads([trip(1)])
    model.receipts["bike-1:1"] = receipt_for(trip(1))
    client = client_for(model, account(), public_rpc_url="http://127.0.0.1:8545", contract=OTHER, chain_id=31337)
    html = client.get("/rider/trips/bike-1:1", headers={"Accept-Language": "nl"}).text
    fare = dict(re.findall(r'data-fare="(\w+)">([^<]+)<', html))
    assert fare == {"metered": "€\xa01,24", "signed": "€\xa01,20", "cap": "€\xa020,00", "charged": "€\xa01,20"}
    assert "wat je laatste voucher ondertekende" in html
    assert "0x" + "ab" * 32 in html and "afgerekend op de keten" in html
    assert 'download="receipt-bike-1-1.json"' in html and 'href="/api/v1/trips/bike-1%3A1/receipt"' in html
    assert 'id="verify"' in html and 'id="verify" disabled' not in html
    config = json.loads(re.search(r'id="sz-config">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert (config["rpc_url"], config["contract"], config["chain_id"], config["trip_id"]) == (
        "http://127.0.0.1:8545", OTHER, 31337, "bike-1:1")  # fmt: skip


def test_a_trip_not_yet_on_chain_has_no_receipt_or_verify_yet() -> None:
    model = FakeReads([trip(1, status="batched")])
    html = client_for(model, account()).get("/rider/trips/bike-1:1", headers={"Accept-Language": "en"}).text
    assert "batch is on chain" in html and 'id="verify"' not in html and 'id="download"' not in html


def test_another_riders_trip_and_an_unknown_trip_are_the_same_404_page(mine_and_others: FakeReads) -> None:
    client = client_for(mine_and_others, account())
    other = client.get("/rider/trips/bike-100:1", headers={"Accept-Language": "en"})
    unknown = client.get("/rider/trips/bike-999:1", headers={"Accept-Language": "en"})
    assert other.status_code == unknown.status_code == 404
    assert "Trip not found" in other.text and OTHER not in other.text
    assert re.sub(r"bike-\d+", "", other.text) == re.sub(r"bike-\d+", "", unknown.text)


def track_model(view: TripView) -> FakeReads:
    """A vehicle track a minute before the trip, every 10 s during it and a minute after."""
    assert view.start_ms is not None
    end = view.end_ms if view.end_ms is not None else view.start_ms + 600_000
    points = [
        Point(ms, 51.21 + (ms - view.start_ms) / 1e9, 4.39)
        for ms in range(view.start_ms - 60_000, end + 60_001, 10_000)
    ]
    return FakeReads([view, trip(50, OTHER)], points)


def test_the_route_is_the_vehicles_track_cut_to_the_trip() -> None:
    view = trip(1)
    model = track_model(view)
    body = client_for(model, account()).get("/api/v1/trips/bike-1:1/route").json()
    times = [p[0] for p in body["points"]]
    assert times[0] == view.start_ms and times[-1] == view.end_ms and len(times) == 61
    assert body["truncated"] is False and body["vehicle_id"] == "bike-1"
    assert ("track", ("bike-1", view.start_ms, rider.ROUTE_POINTS)) in model.asked


def test_the_route_of_a_trip_in_progress_runs_to_now() -> None:
    view = trip(1, status="open", end_ms=None)
    assert view.start_ms is not None
    body = (
        client_for(track_model(view), account(), now_ms=view.start_ms + 300_000)
        .get("/api/v1/trips/bike-1:1/route")
        .json()
    )
    assert body["end_ms"] is None and body["points"][-1][0] == view.start_ms + 300_000


def test_a_route_longer_than_the_limit_says_its_start_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rider, "ROUTE_POINTS", 10)
    body = client_for(track_model(trip(1)), account()).get("/api/v1/trips/bike-1:1/route").json()
    assert body["truncated"] is True and len(body["points"]) <= 10


@pytest.mark.parametrize(
    ("who", "status"),
    [
        (None, 401),
        (account(OTHER.lower().replace("1", "2")), 404),
        (account(OTHER), 404),
        (Principal(Role.OPERATOR, "op"), 200),
        (Principal(Role.RESEARCHER, "re"), 200),
    ],
)
def test_only_the_trips_rider_and_staff_read_its_route(who: Principal | None, status: int) -> None:
    response = client_for(track_model(trip(1)), who).get("/api/v1/trips/bike-1:1/route")
    assert response.status_code == status
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"
        assert "points" not in response.text
    else:
        assert response.headers["cache-control"] == "private, no-store"


def test_an_unknown_trips_route_is_404_even_for_staff() -> None:
    response = client_for(FakeReads([]), Principal(Role.OPERATOR, "op")).get("/api/v1/trips/nope:1/route")
    assert response.status_code == 404 and response.json()["status"] == 404


def test_the_rider_words_exist_in_both_languages_under_the_rider_prefix() -> None:
    words: dict[str, dict[str, str]] = json.loads(MESSAGES.read_text(encoding="utf-8"))
    assert words["en"].keys() == words["nl"].keys()
    assert all(key.startswith("rider.") for key in words["en"])
    for lang in ("en", "nl"):
        for key in ("open", "priced", "batched", "committed", "final", "rejected"):
            assert words[lang][f"rider.status.{key}"]
    checks = set(re.findall(r'new Refused\("(\w+)"', (MESSAGES.parents[1] / "static/js/verify.js").read_text()))
    assert checks and all(f"rider.check.{c}" in words["en"] for c in checks | {"rpc", "error", "receipt"})


def test_a_trip_in_progress_has_its_own_page_with_the_cost_so_far_and_no_receipt_yet() -> None:
    running = trip(7, status="open", end_ms=None, duration_s=None, fare_micro=None, charged_micro=None,
                   signed_micro=450_000, epoch_id=None)  # fmt: skip
    html = client_for(FakeReads([running]), account()).get("/rider/trips/bike-7:1", headers={"Accept-Language": "en"})
    assert html.status_code == 200
    assert re.search(r'id="charged">€0.45<', html.text) and 'data-fare="signed">€0.45<' in html.text
    assert "in progress" in html.text and 'id="verify"' not in html.text
    config = json.loads(re.search(r'id="sz-config">(.*?)</script>', html.text, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert config["running"] is True and config["committed"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/trips/" + "x" * 2000 + "/route",
        "/api/v1/trips/%00%ff'\"<script>/route",
        "/rider/trips/%00%ff'\"<script>",
        "/rider?cursor=" + "A" * 600,
        "/rider?cursor=%ff%00",
    ],
)
def test_malformed_input_is_a_clear_4xx_never_a_500(mine_and_others: FakeReads, path: str) -> None:
    response = client_for(mine_and_others, account()).get(path)
    assert 400 <= response.status_code < 500
    assert "<script>" not in response.text


def test_head_answers_the_pages_without_a_body(mine_and_others: FakeReads) -> None:
    client = client_for(mine_and_others, account())
    for path in ("/rider", "/rider/trips/bike-1:1"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""
