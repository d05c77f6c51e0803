"""The dashboard page in headless Chromium: rendered on the server, then kept live by its script."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import uvicorn
from playwright.sync_api import Browser, Page, Route, sync_playwright

from dashboard.app import create_app
from sensors.messages import VehicleKind
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.schema import VehicleRow, table_of
from settlement.sql import SqlUnitOfWork
from settlement.vehicles import latest_updates
from tests import services
from tests.signed import OPERATOR, SignedFleet

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000


def vehicle(database: Database, vehicle_id: str, kind: VehicleKind) -> None:
    """Register a vehicle and store its first reading, as the aggregator would."""
    fleet = SignedFleet(vehicles={vehicle_id: kind})
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    reading = fleet.telemetry(vehicle_id, 1, T0)
    with uow() as work:
        work.readings.add_telemetry([reading])
        work.readings.update_vehicles(latest_updates([reading]))
        work.commit()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Database]]:
    store = Database.open(f"sqlite:///{tmp_path / 'browser.db'}")
    store.upgrade()
    app = create_app(SqlReadModel(store), chain_label="test chain")
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert services.wait_for_port("127.0.0.1", port, 15)
    yield f"http://127.0.0.1:{port}/", store
    server.should_exit = True
    thread.join(timeout=10)


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        services.unavailable("no chromium (Debian package chromium)")
        raise AssertionError("unreachable")
    return binary


@pytest.fixture()
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def offline(page: Page) -> list[str]:
    """Refuse every request that leaves this machine; returns the list of refused URLs."""
    refused: list[str] = []

    def route(r: Route) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return refused


def test_the_page_shows_the_fleet_and_picks_up_a_new_vehicle_without_reloading(
    served: tuple[str, Database], browser: Browser, tmp_path: Path
) -> None:
    url, store = served
    vehicle(store, "bike-0001", VehicleKind.BIKE)
    vehicle(store, "car-0002", VehicleKind.CAR)
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a rider's phone
    refused = offline(page)
    page.goto(url)
    rows = page.locator("#vehicles tbody tr")
    assert rows.count() == 2
    assert "bike-0001" in rows.nth(0).inner_text()
    vehicle(store, "ebike-0003", VehicleKind.EBIKE)
    deadline = time.monotonic() + 20
    while rows.count() < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert rows.count() == 3, "the table did not refresh from the API"
    assert "ebike-0003" in page.locator("#vehicles").inner_text()
    assert "updated" in page.locator("#live").inner_text()
    assert refused == []
    page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)


def test_the_page_shows_the_first_screen_and_pages_the_rest_through_the_api(
    served: tuple[str, Database], browser: Browser
) -> None:
    url, store = served
    with store.transaction() as conn:
        conn.execute(
            sa.insert(table_of(VehicleRow)),
            [{"vehicle_id": f"bike-{n:04}", "operator": OPERATOR, "kind": "bicycle"} for n in range(1, 61)],
        )
    page = browser.new_page()
    refused = offline(page)
    page.goto(url)
    rows = page.locator("#vehicles tbody tr")
    assert rows.count() == 50 and "bike-0050" in rows.nth(49).inner_text()
    page.get_by_text("Show more vehicles").click()
    deadline = time.monotonic() + 10
    while rows.count() < 60 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert rows.count() == 60 and "bike-0060" in rows.nth(59).inner_text()
    assert page.locator("a[data-more=vehicles]").count() == 0  # the last page
    assert refused == []


def test_the_api_docs_render_every_endpoint_with_no_network(served: tuple[str, Database], browser: Browser) -> None:
    url, _ = served
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # the lab's screen
    refused = offline(page)
    page.goto(url + "docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    paths = {p.strip() for p in page.locator(".opblock-summary-path").all_inner_texts()}
    assert {"/api/v1/vehicles", "/api/v1/trips", "/api/v1/epochs", "/api/v1/payouts"} <= {
        p.replace("\u200b", "") for p in paths
    }
    assert refused == []
