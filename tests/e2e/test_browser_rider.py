"""The rider's pages in headless Chromium, on a phone and a lab screen, in Dutch and English: only the rider's own
trips, the running cost pushed live, the receipt download, and verify against a real committed epoch on the
embedded chain read over the app's /rpc (and FAILED, naming the check, on a tampered receipt or chain answer)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from eth_utils import function_signature_to_4byte_selector
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.routes import rider
from sensors.signing import address_of
from settlement.chain import Web3Clearing
from settlement.chain.rpc import EmbeddedRpc
from settlement.db import Database
from settlement.queries import SqlReadModel
from settlement.views import TrackPoint, TripView
from smartzone.broker import free_port, wait_open
from tests.e2e.browsing import chromium
from tests.integration.test_receipts import settle_rides
from tests.signed import RIDER, rider_key

pytestmark = pytest.mark.services
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
STRANGER = address_of(rider_key(2)).checksum
PHONE, SCREEN = {"width": 390, "height": 844}, {"width": 1440, "height": 900}
VIEWS = [("nl", PHONE), ("en", SCREEN)]
RUNNING = "bike-1:7"
TRIPS_ROOT = "0x" + function_signature_to_4byte_selector("trips_root(uint256)").hex()


@dataclass
class RiderReads:
    """The real read model over the settled database, with a track for bike-2 and one trip in progress: the branch
    this is written on has no ``track``/``running_trips`` yet (helper DATA adds them; then only the fakes remain)."""

    sql: SqlReadModel
    start_ms: int = 0
    end_ms: int = 0
    signed: dict[str, int] = field(default_factory=lambda: {RUNNING: 1_250_000})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sql, name)

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]:
        trip = TripView(RUNNING, "bike-1", "bicycle", None, RIDER, self.end_ms, None, None, None, None, "open", None,
                        signed_micro=self.signed[RUNNING])  # fmt: skip
        return [trip] if rider in (None, RIDER) else []

    def trip(self, trip_id: str) -> TripView | None:
        if trip_id == RUNNING:
            return self.running_trips()[0]
        return self.sql.trip(trip_id)

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[TrackPoint]:
        """bike-2 rides east along the zone every 20 s of the trip."""
        if vehicle_id != "bike-2":
            return []
        steps = range(self.start_ms, self.end_ms + 1, 20_000)
        points = [TrackPoint(ms, 51.2135 + (ms - self.start_ms) * 2e-9, 4.3915 + (ms - self.start_ms) * 8e-9, 3.0, 80.0)
                  for ms in steps]  # fmt: skip
        return [p for p in points if since_ms is None or p.timestamp_ms >= since_ms][-limit:]


@dataclass
class Served:
    url: str
    chain: Web3Clearing
    receipt: dict[str, Any]
    who: list[Principal | None]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database = Database.open(f"sqlite:///{tmp_path_factory.mktemp('rider') / 'rider.db'}")
    database.upgrade()
    chain = Web3Clearing.connect(None)  # the embedded py-evm chain, served at /rpc as `up` serves it
    api = settle_rides(database, chain)
    receipt = api.get("/api/v1/trips/bike-2:1/receipt").json()
    reads = RiderReads(SqlReadModel(database), receipt["trip"]["start_ms"], receipt["trip"]["end_ms"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = DashboardConfig(
        session_secret="s" * 32, public_rpc_url=f"{base}/rpc", contract=chain.address, chain_id=chain.chain_id()
    )
    app = create_app(reads, config, chain_reader=EmbeddedRpc(chain.sender.w3))
    who: list[Principal | None] = [Principal(Role.ACCOUNT, RIDER)]
    app.dependency_overrides[deps.principal] = lambda: who[0]  # TODO(auth): sign in through AUTH's login once merged
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_open(port, 15), "the app did not start"
    yield Served(base, chain, receipt, who)
    server.should_exit = True
    thread.join(timeout=10)
    database.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(offline=False) as launched:  # the tests fail on any request leaving the machine themselves
        yield launched


@pytest.fixture()
def as_rider(served: Served) -> Iterator[Served]:
    served.who[0] = Principal(Role.ACCOUNT, RIDER)
    yield served
    served.who[0] = Principal(Role.ACCOUNT, RIDER)


def context(browser: Browser, lang: str, viewport: dict[str, int]) -> BrowserContext:
    return browser.new_context(locale={"nl": "nl-BE", "en": "en-IE"}[lang], viewport=viewport, accept_downloads=True)  # type: ignore[arg-type]


def local_only(page: Page, base: str) -> list[str]:
    """Refuse every request that leaves the app; the list of those refused other than OpenStreetMap's tiles (the
    map's only outside source, once helper OPS's Leaflet map is served): no CDN, no other chain."""
    refused: list[str] = []

    def route(r: Route) -> None:
        if r.request.url.startswith(base):
            r.fallback()
        else:
            if not r.request.url.startswith("https://tile.openstreetmap.org/"):
                refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return refused


SOMEONE_ELSES = ("/static/vendor/leaflet/", "https://tile.openstreetmap.org/", "'img-src'")


def script_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page (a CSP refusal of a script or a connection is one), except
    about Leaflet and its images: helper OPS vendors Leaflet (until then the page draws its own map) and the CSP's
    img-src for tiles and Leaflet's data: images is the lead's (the tests refuse every outside request anyway)."""
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        where = f"{message.text} {(message.location or {}).get('url', '')}"
        if message.type == "error" and not any(part in where for part in SOMEONE_ELSES):
            errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def shot(page: Page, view: str, lang: str, viewport: dict[str, int]) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of a full-page shot
    page.screenshot(path=str(SHOTS / f"rider-{view}-{lang}-{viewport['width']}.png"), full_page=True)


def quiet_live(page: Page, events: str = "") -> None:
    """/api/v1/live (helper LIVE's stream) answered here: ``events`` once, then the stream ends."""
    page.route(
        "**/api/v1/live",
        lambda r: r.fulfill(
            status=200, headers={"Content-Type": "text/event-stream"}, body="retry: 60000\n\n" + events
        ),
    )


@pytest.mark.parametrize(("lang", "viewport"), VIEWS)
def test_a_rider_sees_their_own_trips_and_another_riders_trip_is_a_404(
    as_rider: Served, browser: Browser, lang: str, viewport: dict[str, int]
) -> None:
    with context(browser, lang, viewport) as ctx:
        page = ctx.new_page()
        refused = local_only(page, as_rider.url)
        quiet_live(page)
        page.goto(f"{as_rider.url}/rider")
        rows = page.locator("#trips tbody tr")
        expect(rows).to_have_count(3)
        assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.trip)")) == ["bike-1:1", "bike-2:1", "car-1:10"]
        assert page.locator(f'.trip-card[data-trip="{RUNNING}"] [data-cost]').inner_text().replace("\xa0", " ") == (
            "€ 1,25" if lang == "nl" else "€1.25"
        )
        expect(page.locator("h1#h-trips")).to_have_text({"nl": "Mijn ritten", "en": "My trips"}[lang])
        if viewport is PHONE:  # the phone's cards: nothing runs off the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        shot(page, "trips", lang, viewport)

        as_rider.who[0] = Principal(Role.ACCOUNT, STRANGER)
        response = page.goto(f"{as_rider.url}/rider/trips/bike-2:1")
        assert response is not None and response.status == 404
        expect(page.locator("h1")).to_have_text({"nl": "Rit niet gevonden", "en": "Trip not found"}[lang])
        assert RIDER not in page.content()
        shot(page, "404", lang, viewport)
        page.goto(f"{as_rider.url}/rider")
        expect(page.locator("#trips tbody tr")).to_have_count(0)
        assert refused == []


def verify(page: Page) -> tuple[str, str]:
    page.locator("#verify").click()
    verdict = page.locator("#verdict.ok, #verdict.bad")
    expect(verdict).to_have_count(1, timeout=20_000)
    return verdict.get_attribute("class") or "", verdict.inner_text()


@pytest.mark.parametrize(("lang", "viewport"), VIEWS)
def test_verify_checks_the_receipt_against_the_root_the_chain_holds(
    as_rider: Served, browser: Browser, lang: str, viewport: dict[str, int]
) -> None:
    block = as_rider.chain.sender.w3.eth.block_number
    with context(browser, lang, viewport) as ctx:
        page = ctx.new_page()
        refused = local_only(page, as_rider.url)
        quiet_live(page)
        calls: list[str] = []
        errors = script_errors(page)
        page.on("request", lambda r: calls.append(r.post_data or "") if r.url.endswith("/rpc") else None)
        page.goto(f"{as_rider.url}/rider/trips/bike-2:1")
        expect(page.locator("#route-map")).to_have_attribute("data-points", "61")
        fare = as_rider.receipt["fare"]["charged_micro"]
        assert page.locator('[data-fare="charged"]').inner_text().replace("\xa0", " ") == (
            f"€ {fare // 1_000_000},{fare // 10_000 % 100:02d}" if lang == "nl" else f"€{fare / 1_000_000:.2f}"
        )
        kind, text = verify(page)
        assert "ok" in kind.split(), text
        assert str(block) in text and {"nl": "Gecontroleerd", "en": "Verified"}[lang] in text
        assert any('"eth_call"' in c and as_rider.receipt["contract"].lower()[2:] in c.lower() for c in calls)
        shot(page, "trip-verified", lang, viewport)
        assert refused == [] and errors == []  # no CSP refusal, no script error


def tampered(page: Page, change: Any) -> None:
    """The receipt the page fetches, changed by ``change(receipt)`` on its way."""

    def route(r: Route) -> None:
        response = r.fetch()
        receipt = response.json()
        change(receipt)
        r.fulfill(response=response, body=json.dumps(receipt))

    page.route("**/api/v1/trips/*/receipt", route)


def raise_fare(receipt: dict[str, Any]) -> None:
    receipt["fare"]["charged_micro"] += 10_000
    receipt["fare"]["total_micro"] += 10_000
    receipt["fare"]["time_micro"] += 10_000


def change_proof(receipt: dict[str, Any]) -> None:
    node = receipt["proof"][0]
    receipt["proof"][0] = node[:-1] + ("0" if node[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("change", "check", "words"),
    [
        (raise_fare, "fare", "the fare differs from what was settled"),
        (change_proof, "proof", "the proof does not lead"),
    ],
)
def test_verify_fails_on_a_tampered_receipt_and_names_the_check(
    as_rider: Served, browser: Browser, change: Any, check: str, words: str
) -> None:
    with context(browser, "en", PHONE) as ctx:
        page = ctx.new_page()
        quiet_live(page)
        tampered(page, change)
        page.goto(f"{as_rider.url}/rider/trips/bike-2:1")
        kind, text = verify(page)
        assert "bad" in kind.split() and text.startswith("FAILED") and words in text, text
        assert page.locator("#verdict").get_attribute("data-check") == check
        if check == "fare":
            shot(page, "trip-tampered", "en", PHONE)


def test_verify_trusts_the_chain_not_the_receipt_for_the_root(as_rider: Served, browser: Browser) -> None:
    """A node that answers another trips root fails verify: the root is read from the chain, not taken as given."""
    other_root = "0x" + "ab" * 32

    def node(r: Route) -> None:
        request = json.loads(r.request.post_data or "{}")
        if request.get("method") == "eth_call" and request["params"][0]["data"].startswith(TRIPS_ROOT):
            r.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": other_root}))  # fmt: skip
        else:
            r.fallback()

    with context(browser, "nl", SCREEN) as ctx:
        page = ctx.new_page()
        quiet_live(page)
        page.route("**/rpc", node)
        page.goto(f"{as_rider.url}/rider/trips/bike-2:1")
        kind, text = verify(page)
        assert "bad" in kind.split() and text.startswith("MISLUKT") and "de root op de keten verschilt" in text


def test_the_receipt_downloads_as_the_apis_json(as_rider: Served, browser: Browser) -> None:
    with context(browser, "en", PHONE) as ctx:
        page = ctx.new_page()
        quiet_live(page)
        page.goto(f"{as_rider.url}/rider/trips/bike-2:1")
        with page.expect_download() as download:
            page.locator("#download").click()
        assert download.value.suggested_filename == "receipt-bike-2-1.json"
        assert json.loads(Path(download.value.path()).read_text(encoding="utf-8")) == as_rider.receipt


def test_the_running_cost_follows_the_riders_trip_events_and_ignores_others(as_rider: Served, browser: Browser) -> None:
    mine = {"trip_id": RUNNING, "rider": RIDER, "vehicle_id": "bike-1", "signed_micro": 2_340_000, "status": "open",
            "charged_micro": None}  # fmt: skip
    other = {**mine, "rider": STRANGER, "signed_micro": 9_990_000}
    events = "".join(f"event: trip\ndata: {json.dumps(e)}\n\n" for e in (mine, other))
    with context(browser, "nl", PHONE) as ctx:
        page = ctx.new_page()
        quiet_live(page, events)
        page.goto(f"{as_rider.url}/rider")
        cost = page.locator(f'.trip-card[data-trip="{RUNNING}"] [data-cost]')
        expect(cost).to_have_text("€\xa02,34")
        shot(page, "running", "nl", PHONE)
        page.goto(f"{as_rider.url}/rider/trips/{RUNNING}")
        expect(page.locator("#charged")).to_have_text("€\xa02,34")
        expect(page.locator('[data-fare="signed"]')).to_have_text("€\xa02,34")
        expect(page.locator("#route-note")).to_contain_text("Voor deze rit zijn geen posities opgeslagen")


def test_an_anonymous_visitor_is_sent_to_sign_in(served: Served, browser: Browser) -> None:
    served.who[0] = None
    try:
        with context(browser, "en", PHONE) as ctx:
            page = ctx.new_page()
            page.goto(f"{served.url}/rider")
            assert page.url == f"{served.url}/login?next=/rider"
    finally:
        served.who[0] = Principal(Role.ACCOUNT, RIDER)


def test_more_appends_the_next_page_in_place(
    as_rider: Served, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rider, "PAGE_SIZE", 2)  # the served app reads it per request
    with context(browser, "en", PHONE) as ctx:
        page = ctx.new_page()
        quiet_live(page)
        page.goto(f"{as_rider.url}/rider")
        rows = page.locator("#trips tbody tr")
        expect(rows).to_have_count(2)
        page.locator("#more").click()
        expect(rows).to_have_count(3)
        expect(page.locator("#more")).to_have_count(0)
        assert page.url == f"{as_rider.url}/rider"  # appended, not navigated
        assert rows.evaluate_all("rs => rs.map(r => r.dataset.trip)") == ["car-1:10", "bike-2:1", "bike-1:1"]
