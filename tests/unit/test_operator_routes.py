"""The operator's routes over a fake read model: who may see /fleet, a vehicle's page and its track, and the words."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
OPERATOR = Principal(Role.OPERATOR, "op")
RESEARCHER = Principal(Role.RESEARCHER, "res")
RIDER = Principal(Role.ACCOUNT, "0x" + "11" * 20)
T0 = 1_795_000_000_000


@dataclass(frozen=True)
class Point:
    timestamp_ms: int
    lat: float
    lon: float
    speed_mps: float
    battery_pct: float | None


@dataclass(frozen=True)
class Vehicle:
    vehicle_id: str
    kind: str = "ebike"
    state: str = "available"
    battery_pct: float | None = 64.0
    owner: str | None = None
    last_seen_ms: int | None = T0
    received_ms: int | None = T0 + 5


@dataclass
class FakeModel:
    vehicles: dict[str, Vehicle] = field(default_factory=dict)
    points: dict[str, list[Point]] = field(default_factory=dict)
    asked: list[tuple[str, int | None, int]] = field(default_factory=list)

    def vehicle(self, vehicle_id: str) -> Vehicle | None:
        return self.vehicles.get(vehicle_id)

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[Point]:
        self.asked.append((vehicle_id, since_ms, limit))
        points = [p for p in self.points.get(vehicle_id, []) if since_ms is None or p.timestamp_ms >= since_ms]
        return sorted(points, key=lambda p: p.timestamp_ms)[-limit:]


def app_for(model: FakeModel, who: Principal | None) -> FastAPI:
    app = create_app(model, DashboardConfig(session_secret="s" * 32))  # type: ignore[arg-type]
    app.dependency_overrides[deps.principal] = lambda: who
    return app


def client(who: Principal | None, model: FakeModel | None = None) -> TestClient:
    return TestClient(app_for(model or model_with_track(), who), follow_redirects=False)


def model_with_track() -> FakeModel:
    shuffled = [Point(T0 + i * 1000, 51.215 + i * 1e-4, 4.396, 3.5, 80 - i) for i in (3, 0, 2, 1, 4)]
    return FakeModel(vehicles={"ebike-0001": Vehicle("ebike-0001")}, points={"ebike-0001": shuffled})


def test_staff_read_a_vehicles_track_oldest_first() -> None:
    for who in (OPERATOR, RESEARCHER):
        body = client(who).get("/api/v1/vehicles/ebike-0001/track").json()
        assert body["vehicle_id"] == "ebike-0001"
        assert [p["timestamp_ms"] for p in body["points"]] == [T0 + i * 1000 for i in range(5)]
        assert body["points"][0] == {
            "timestamp_ms": T0,
            "lat": 51.215,
            "lon": 4.396,
            "speed_mps": 3.5,
            "battery_pct": 80,
        }


def test_the_track_passes_its_limit_and_start_to_the_read_model() -> None:
    model = model_with_track()
    body = client(OPERATOR, model).get("/api/v1/vehicles/ebike-0001/track?limit=2&since_ms=" + str(T0 + 1000)).json()
    assert [p["timestamp_ms"] for p in body["points"]] == [T0 + 3000, T0 + 4000]
    assert model.asked == [("ebike-0001", T0 + 1000, 2)]


def test_an_anonymous_visitor_gets_401_and_a_rider_403_for_a_track() -> None:
    anonymous = client(None).get("/api/v1/vehicles/ebike-0001/track")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    rider = client(RIDER).get("/api/v1/vehicles/ebike-0001/track")
    assert rider.status_code == 403
    assert "points" not in rider.json() and "51.215" not in rider.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/vehicles/nobody/track", 404),
        ("/api/v1/vehicles/ebike-0001/track?limit=0", 422),
        ("/api/v1/vehicles/ebike-0001/track?limit=5001", 422),
        ("/api/v1/vehicles/ebike-0001/track?limit=ten", 422),
        ("/api/v1/vehicles/ebike-0001/track?since_ms=-1", 422),
        ("/api/v1/vehicles/ebike%20'0001/track", 422),
        ("/api/v1/vehicles/" + "x" * 200 + "/track", 422),
    ],
)
def test_a_bad_track_request_is_a_clear_problem_never_a_500(path: str, status: int) -> None:
    response = client(OPERATOR).get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "back"),
    [
        ("/fleet", "/fleet"),
        ("/vehicles/ebike-0001", "/vehicles/ebike-0001"),
        ("/fleet?kind=ebike", "/fleet%3Fkind%3Debike"),
    ],
)
def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(path: str, back: str) -> None:
    response = client(None).get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + back


@pytest.mark.parametrize("path", ["/fleet", "/vehicles/ebike-0001"])
def test_a_rider_may_not_open_the_operator_views(path: str) -> None:
    response = client(RIDER).get(path)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "sz-config" not in response.text


def page_config(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="sz-config">(.*?)</script>', html, re.DOTALL)
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def test_the_fleet_page_loads_leaflet_from_the_app_and_hands_its_script_the_map_settings() -> None:
    response = client(OPERATOR).get("/fleet", headers={"accept-language": "nl"})
    assert response.status_code == 200
    html = response.text
    assert '<script src="/static/vendor/leaflet/dist/leaflet.js"></script>' in html
    assert '<script type="module" src="/static/js/fleet.js"></script>' in html
    assert "https://" not in re.sub(r'"tiles": "https://tile\.openstreetmap\.org[^"]*"', "", html.split("<body")[0])
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", html) == []  # no inline script
    config = page_config(html)
    assert config["lang"] == "nl" and config["operator"] is True
    assert config["map"]["tiles"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert config["map"]["geo"]["zone"] == "/static/geo/zone.geojson"
    assert config["map"]["thresholds"] == {"low_battery_pct": 20.0, "offline_after_s": 300}
    assert "De vloot, live" in html


def test_a_researcher_sees_the_fleet_but_is_not_offered_acknowledging() -> None:
    response = client(RESEARCHER).get("/fleet")
    assert response.status_code == 200
    assert page_config(response.text)["operator"] is False


def test_the_vehicle_page_names_the_vehicle_and_an_unknown_one_is_404() -> None:
    page = client(OPERATOR).get("/vehicles/ebike-0001")
    assert page.status_code == 200
    assert "ebike-0001" in page.text and "uPlot.iife.min.js" in page.text
    assert page_config(page.text)["vehicle"] == {"vehicle_id": "ebike-0001", "kind": "ebike"}
    assert client(OPERATOR).get("/vehicles/nobody").status_code == 404


def words() -> dict[str, dict[str, str]]:
    document: dict[str, dict[str, str]] = json.loads((DASHBOARD / "messages" / "fleet.json").read_text("utf-8"))
    return document


def test_the_fleet_words_exist_in_both_languages_under_the_fleet_prefix() -> None:
    document = words()
    assert document["en"].keys() == document["nl"].keys()
    assert all(key.startswith("fleet.") for key in document["en"])
    assert all(text.strip() for lang in ("en", "nl") for text in document[lang].values())


def test_every_word_the_pages_and_scripts_ask_for_exists() -> None:
    sources = [DASHBOARD / "templates" / name for name in ("fleet.html", "vehicle.html")]
    sources += [DASHBOARD / "static" / "js" / name for name in ("fleet.js", "map.js", "vehicle.js")]
    asked = set()
    for path in sources:
        asked |= set(re.findall(r"""\bt\(\s*['"](fleet\.[a-z_.]+)['"]""", path.read_text("utf-8")))
    asked = {key for key in asked if not key.endswith(".")}  # a prefix completed in the template
    asked |= {f"fleet.status.{s}" for s in ("available", "on_trip", "low_battery", "offline", "fault")}
    asked |= {f"fleet.kind.{k}" for k in ("bike", "ebike", "scooter", "car")}
    asked |= {f"fleet.state.{s}" for s in ("available", "on_trip", "non_operational", "unknown")}
    asked |= {f"fleet.alert.{k}" for k in ("battery_low", "offline", "fault", "outside_zone", "rejects")}
    asked |= {f"fleet.live.{s}" for s in ("connecting", "on", "lost")}
    assert len(asked) > 60
    assert asked - words()["en"].keys() == set()
