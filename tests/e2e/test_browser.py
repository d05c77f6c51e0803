"""The dashboard over the real SQL read model in headless Chromium: the public overview, a vehicle's page with its
recorded track, the API docs, all with nothing reachable beyond this machine, and the page's value formats."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request

from dashboard import deps, display
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.i18n import Language
from sensors.messages import VehicleKind
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from settlement.vehicles import latest_updates
from tests.e2e.browsing import chromium, serving
from tests.signed import OPERATOR, SignedFleet
from tests.unit.test_format_js import CASES

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000
WHO: dict[str, Principal | None] = {"who": None}


def vehicle(database: Database, vehicle_id: str, kind: VehicleKind, readings: int = 1) -> None:
    """Register a vehicle and store its readings, as the aggregator would."""
    fleet = SignedFleet(vehicles={vehicle_id: kind})
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    batch = [
        replace(fleet.telemetry(vehicle_id, seq, T0 + seq * 1000), battery_pct=90.0 - seq)
        for seq in range(1, readings + 1)
    ]
    with uow() as work:
        work.readings.add_telemetry(batch)
        work.readings.update_vehicles(latest_updates(batch))
        work.commit()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Database]]:
    store = Database.open(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'browser.db'}")
    store.upgrade()
    app = create_app(SqlReadModel(store), DashboardConfig(session_secret="s" * 32, chain_label="test chain"))
    app.dependency_overrides[deps.principal] = lambda: WHO["who"]
    with serving(app) as url:
        yield url, store


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_page(browser: Browser, url: str, *, width: int = 1440, height: int = 900, lang: str = "en") -> Page:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_cookies([{"name": "lang", "value": lang, "url": url}])
    page = context.new_page()
    page.goto(url)
    return page


def outside(page: Page) -> list[str]:
    """Every request the page makes off this machine from now on."""
    seen: list[str] = []

    def note(request: Request) -> None:
        if urlsplit(request.url).hostname not in (None, "127.0.0.1"):
            seen.append(request.url)

    page.on("request", note)
    return seen


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_public_overview_counts_the_fleet_on_a_phone_in_both_languages(
    served: tuple[str, Database], browser: Browser, lang: str
) -> None:
    base, store = served
    WHO["who"] = None
    vehicle(store, f"bike-{lang}", VehicleKind.BIKE)
    page = open_page(browser, base + "/", width=390, height=844, lang=lang)
    assert page.locator("html").get_attribute("lang") == lang
    assert int(page.locator("[data-stat=vehicles]").inner_text()) >= 1
    heading = {"en": "The Smart Zone fleet today", "nl": "Smart Zone"}[lang]
    assert heading in page.locator("h1").inner_text()
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    page.context.close()


WRITE_ALL = """async (cases) => {
  const format = await import("/static/js/format.js");
  return Object.fromEntries(Object.entries(cases).map(([name, values]) => [name, values.map((v) => format[name](v))]));
}"""


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_chromium_writes_money_times_and_distances_as_the_server_does(
    served: tuple[str, Database], browser: Browser, lang: str
) -> None:
    base, _ = served
    WHO["who"] = None
    page = open_page(browser, base + "/", lang=lang)
    written = page.evaluate(WRITE_ALL, CASES)
    server = {
        name: [getattr(display, name)(value, Language(lang)) for value in values] for name, values in CASES.items()
    }
    assert written == server
    page.context.close()


def test_a_vehicle_page_draws_the_recorded_track_and_battery_from_the_database(
    served: tuple[str, Database], browser: Browser
) -> None:
    base, store = served
    vehicle(store, "ebike-0042", VehicleKind.EBIKE, readings=12)
    WHO["who"] = Principal(Role.OPERATOR, "op")
    page = open_page(browser, base + "/vehicles/ebike-0042")
    page.wait_for_selector("body[data-ready=true]", timeout=15_000)
    points = int(page.locator("#map").get_attribute("data-points") or 0)
    assert points == 12, "the track of the stored readings is on the map"
    assert page.locator("#battery-chart").get_attribute("data-points") == "12"
    assert page.locator("#battery-chart canvas").count() >= 1
    assert page.locator("#map").get_attribute("data-layers") == "streets zone"
    assert "ebike-0042" in page.locator("h1").inner_text()
    page.context.close()
    WHO["who"] = None


def test_the_api_docs_render_every_endpoint_with_no_network(served: tuple[str, Database], browser: Browser) -> None:
    base, _ = served
    page = open_page(browser, base + "/docs", width=1280)
    leaving = outside(page)
    page.reload()
    page.wait_for_selector(".opblock", timeout=15_000)
    paths = {p.strip().replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_inner_texts()}
    assert {"/api/v1/vehicles", "/api/v1/trips", "/api/v1/epochs", "/api/v1/payouts"} <= paths
    assert "/api/v1/vehicles/{vehicle_id}/track" in paths
    assert leaving == []
    page.context.close()
