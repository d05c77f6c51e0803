"""Every view against a live `smartzone up` (demo mode, anvil, Mosquitto), in real headless Chromium.

One run of `up` serves the whole module: the operator's live map and an alert raised by a vehicle that faults,
the settlement page, the research page, and a rider who verifies a settled trip against the chain in the browser.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as publish
import pytest
from playwright.sync_api import Browser, Page

from sensors.codec import encode
from sensors.messages import Event, EventType, Position, VehicleKind
from sensors.signing import Domain, sign
from sensors.topics import Channel, topic_for
from simulator.keys import device_key
from tests import services
from tests.e2e.browsing import chromium
from tests.e2e.running_up import RunningUp, running_up

pytestmark = pytest.mark.services
VEHICLES = 12
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OPERATOR = "smartzone-demo"  # the settings' default operator of the simulated fleet
SEED = 7


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    if shutil.which("chromium") is None:
        services.unavailable("Debian's chromium is not installed")
        pytest.skip("Debian's chromium is not installed")
    env = {"SMARTZONE_DEMO": "1", "SMARTZONE_VEHICLES": str(VEHICLES), "SMARTZONE_SPEED": "30"}
    with running_up(tmp_path_factory.mktemp("up") / "data", env) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def page_of(browser: Browser, width: int, height: int, locale: str) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = context.new_page()
    page.route("https://tile.openstreetmap.org/**", lambda route: route.abort())  # no internet here
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def sign_in(page: Page, up: RunningUp, path: str, name: str, password: str) -> None:
    page.goto(f"{up.url}{path}")
    assert "/login" in page.url, f"{path} opened without a login"
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#staff-form button[type=submit]")
    page.wait_for_url(f"{up.url}{path}")


def chain_id(up: RunningUp) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(f"{up.url}/rpc", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response)["result"], 16)


def broker_port(up: RunningUp) -> int:
    line = next(line for line in up.lines if line.strip().startswith("broker "))
    return int(line.split()[1].rsplit(":", 1)[1])


def fault(up: RunningUp, vehicle_id: str, code: str) -> None:
    """The vehicle's device reports a fault, signed with its key as the simulated fleet's devices sign."""
    event = Event(
        vehicle_id=vehicle_id,
        operator=OPERATOR,
        kind=VehicleKind.BIKE,
        seq=10**13,  # after anything the simulator has sent
        timestamp=int(time.time() * 1000),
        event_type=EventType.FAULT,
        position=Position(51.2155, 4.3925),
        odometer_m=10**6,
        detail=code,
    )
    signed = sign(event, device_key(SEED, OPERATOR, vehicle_id), Domain(chain_id(up)))
    topic = topic_for(OPERATOR, vehicle_id, Channel.EVENT, "smartzone")
    publish.single(topic, encode(signed), qos=1, hostname="127.0.0.1", port=broker_port(up))


def test_the_operator_watches_the_fleet_live_and_acknowledges_a_fault(up: RunningUp, browser: Browser) -> None:
    page = page_of(browser, 1440, 900, "en-GB")
    snapshots: list[str] = []
    page.on("request", lambda request: snapshots.append(request.url) if "/api/v1/fleet" in request.url else None)
    sign_in(page, up, "/fleet", "operator", "demo")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector(f"#map-count[data-total='{VEHICLES}']", timeout=30_000)
    assert int(page.get_attribute("#map-count", "data-drawn") or 0) > 0
    page.wait_for_selector("#live[data-state=on]")
    first = page.eval_on_selector_all("#vehicles time.ago[data-ms]", "nodes => nodes.map(n => Number(n.dataset.ms))")
    # the simulated fleet keeps reporting: the rows follow without a reload
    page.wait_for_function(
        "before => Math.max(...[...document.querySelectorAll('#vehicles time.ago[data-ms]')]"
        ".map(n => Number(n.dataset.ms))) > before",
        arg=max(first),
        timeout=30_000,
    )
    bike = page.eval_on_selector("#vehicles tr[data-vehicle^='bike-']", "tr => tr.dataset.vehicle")
    fault(up, bike, "brakes")
    row = page.wait_for_selector(f"#alerts tr[data-kind=fault]:has-text('{bike}')", timeout=20_000)
    assert "brakes" in row.inner_text()
    page.screenshot(path=str(SHOTS / "up-fleet-en-1440.png"))
    row.query_selector("button[data-ack]").click()  # type: ignore[union-attr]
    page.wait_for_selector(f"#alerts tr.acked[data-kind=fault]:has-text('{bike}')", timeout=10_000)
    assert len(snapshots) == 1, f"the fleet was fetched {len(snapshots)} times: {snapshots}"
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_settlement_page_shows_epochs_on_chain_and_the_chains_health(up: RunningUp, browser: Browser) -> None:
    page = page_of(browser, 1440, 900, "nl-BE")
    sign_in(page, up, "/settlement", "operator", "demo")
    deadline = time.monotonic() + 60
    while not page.query_selector("#epochs tbody tr .mono") and time.monotonic() < deadline:
        time.sleep(2)
        page.reload()
    hashes = page.eval_on_selector_all("#epochs tbody tr .mono", "nodes => nodes.map(n => n.textContent.trim())")
    assert any(len(h) == 66 and h.startswith("0x") for h in hashes), hashes
    page.screenshot(path=str(SHOTS / "up-settlement-nl-1440.png"))
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_research_page_draws_its_charts_for_a_researcher(up: RunningUp, browser: Browser) -> None:
    page = page_of(browser, 1440, 900, "en-GB")
    sign_in(page, up, "/research", "researcher", "demo")
    page.wait_for_function(
        "() => [...document.querySelectorAll('img')].filter(i => i.src.includes('/charts/'))"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    page.screenshot(path=str(SHOTS / "up-research-en-1440.png"))
    assert page.errors == []  # type: ignore[attr-defined]


def rider_with_a_final_trip(page: Page, up: RunningUp, seconds: float = 120) -> list[dict[str, object]]:
    """Sign in with the demo tokens in turn until one rider has a trip whose epoch is final; that rider's trips."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for token in ("rider-1", "rider-2", "rider-3", "rider-4", "rider-5"):
            page.context.clear_cookies()
            page.goto(f"{up.url}/login?next=/rider")
            page.fill("#login-token", token)
            page.click("#token-form button[type=submit]")
            page.wait_for_url(f"{up.url}/rider")
            final: list[dict[str, object]] = page.evaluate(
                "fetch('/api/v1/trips?status=final&limit=5').then(r => r.json()).then(j => j.items)"
            )
            if final:
                return final
        time.sleep(3)
    raise AssertionError(f"no demo rider had a final trip within {seconds:.0f} s")


def test_a_rider_on_a_phone_sees_only_their_trips_and_verifies_one_on_chain(up: RunningUp, browser: Browser) -> None:
    page = page_of(browser, 390, 844, "nl-BE")
    final = rider_with_a_final_trip(page, up)
    me = page.evaluate("fetch('/api/v1/me').then(r => r.json())")
    mine = page.evaluate("fetch('/api/v1/trips?limit=1000').then(r => r.json()).then(j => j.items)")
    assert mine and {str(trip["rider"]).lower() for trip in mine} == {me["subject"].lower()}
    assert page.evaluate("fetch('/api/v1/vehicles').then(r => r.status)") == 403
    assert page.evaluate("fetch('/api/v1/fleet').then(r => r.status)") == 403
    page.goto(f"{up.url}/rider/trips/{final[0]['trip_id']}")
    page.wait_for_selector("#verify:not([disabled])")
    page.click("#verify")
    verdict = page.wait_for_selector("#verdict.ok", timeout=30_000)
    assert "31337" in verdict.inner_text()  # read from anvil's chain, through the dashboard's /rpc
    page.evaluate("window.scrollTo(0, 0)")  # else the sticky header is drawn where the page was scrolled to
    page.screenshot(path=str(SHOTS / "up-rider-verified-nl-390.png"), full_page=True)
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("width", "height", "locale"), [(390, 844, "nl-BE"), (1440, 900, "en-GB")])
def test_a_visitor_without_a_login_sees_only_the_fleets_aggregates(
    up: RunningUp, browser: Browser, width: int, height: int, locale: str
) -> None:
    page = page_of(browser, width, height, locale)
    page.goto(f"{up.url}/")
    page.wait_for_selector("#stats [data-stat=vehicles]")
    assert page.inner_text("#stats [data-stat=vehicles]").strip() == str(VEHICLES)
    text = page.inner_text("main")
    assert "bike-0" not in text and "0x" not in text  # no vehicle, no wallet
    assert page.evaluate("fetch('/api/v1/fleet').then(r => r.status)") == 401
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    page.screenshot(path=str(SHOTS / f"public-{locale[:2]}-{width}.png"), full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
