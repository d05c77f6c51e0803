"""The dashboard page in headless Chromium: rendered on the server, then kept live by its script."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from dashboard.app import create_app
from sensors.messages import Position, Telemetry, VehicleKind, VehicleState
from settlement.queries import SqlReadModel
from settlement.records import Batch
from settlement.store import Store
from tests import services

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000
OWNER = "0x" + "ab" * 20


def vehicle(store: Store, vehicle_id: str, kind: VehicleKind) -> None:
    store.ingest(
        Batch(
            states=[VehicleState(vehicle_id, "op", T0, True, kind, OWNER)],
            telemetry=[Telemetry(vehicle_id, "op", kind, 1, T0, Position(51.215, 4.397), 0.0, 0, battery_pct=77.0)],
        )
    )


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    store = Store.connect(f"sqlite:///{tmp_path / 'browser.db'}")
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


def test_the_page_shows_the_fleet_and_picks_up_a_new_vehicle_without_reloading(
    served: tuple[str, Store], tmp_path: Path
) -> None:
    url, store = served
    vehicle(store, "bike-0001", VehicleKind.BIKE)
    vehicle(store, "car-0002", VehicleKind.CAR)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
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
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a rider's phone
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
            page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)
        finally:
            browser.close()
