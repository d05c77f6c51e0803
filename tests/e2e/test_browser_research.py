"""The settlement and research pages in headless Chromium: full hashes copied, live epochs, a replay started and
stopped, the charts drawn; screenshots of both pages at the lab's screen and a phone, in both languages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.responses import StreamingResponse
from playwright.sync_api import Browser, Page, expect

from dashboard import deps
from dashboard.app import create_app
from dashboard.chain_status import ChainHealth, FakeChainStatus
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.replay_control import FakeReplayControl, RecordingInfo
from dashboard.routes.live import LiveOptions
from settlement.analysis import TRIP_COLUMNS
from settlement.views import EpochView, PayoutView, Stats
from tests.e2e.browsing import chromium, serving

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OWNER = "0x" + "a1B2" * 10
TX = "0x4f3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e"
PUSHED = EpochView(7, 12, 31_450_000, "0x" + "00" * 32, "committed", "0x" + "77" * 32, 1207, 65_850, T0, T0 + 9_000)


def epoch(epoch_id: int, status: str = "final") -> EpochView:
    settled = status != "closed"
    closed = T0 - (7 - epoch_id) * 600_000
    return EpochView(
        epoch_id, 10 + epoch_id, 14_260_000 + epoch_id * 1_000_000, "0x" + "00" * 32, status,
        TX[:-2] + f"{epoch_id:02x}" if settled else None, 1200 + epoch_id if settled else None,
        65_812 if settled else None, closed, closed + 8_000 if settled else None,
    )  # fmt: skip


class Model:
    """Epochs and payouts for the pages."""

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        return [epoch(6, "closed")] + [epoch(i) for i in range(5, 0, -1)]

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]:
        return [PayoutView(OWNER, 41, 52_310_000, 3_120_000)]

    def stats(self) -> Stats:
        return Stats(0, 0, 0, 0, 0, 0, 0, 0)


class Data:
    """A morning of trips for the charts."""

    def frame(self) -> pd.DataFrame:
        starts = [T0 - h * 3_600_000 - m * 60_000 for h in range(8) for m in range(0, 60, 7 + h)]
        times = pd.Series(pd.to_datetime(starts, unit="ms", utc=True))
        rows = {"trip_id": [f"t{i}" for i in range(len(starts))], "status": ["final"] * len(starts)}
        rows["start_time"] = list(times)
        return pd.DataFrame({n: pd.Series(rows.get(n, [None] * len(starts)), dtype=d) for n, d in TRIP_COLUMNS.items()})

    def trip_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        yield self.frame()

    def reading_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        yield self.frame()

    def trips(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        return self.frame()

    def utilisation(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        hours = [(T0 // 3_600_000 - h) * 3_600_000 for h in range(8)]
        rows = [(v, h, 0.1 * ((i + j) % 6)) for i, h in enumerate(hours) for j, v in enumerate("abcde")]
        frame = pd.DataFrame(rows, columns=["vehicle_id", "period", "utilisation"])
        frame["period"] = pd.to_datetime(frame["period"], unit="ms", utc=True)
        frame["on_trip_min"] = frame["utilisation"] * 60
        return frame


def live_epoch() -> StreamingResponse:
    """The live stream's ``epoch`` event as helper LIVE will send it: one new epoch, then the stream ends."""

    def events() -> Iterator[bytes]:
        yield b"retry: 600000\n\n"
        yield f"event: epoch\ndata: {json.dumps(asdict(PUSHED))}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeReplayControl]]:
    config = DashboardConfig(session_secret="s" * 32, explorer_tx_url="https://explorer.example/tx/{tx}",
                             chain_label="anvil · 127.0.0.1:8545")  # fmt: skip
    app = create_app(Model(), config, live_options=LiveOptions(enabled=False))  # type: ignore[arg-type]
    app.add_api_route("/api/v1/live", live_epoch)
    app.router.routes.insert(0, app.router.routes.pop())  # in front of the app's own live stream
    control = FakeReplayControl(
        [RecordingInfo("weekday-morning.jsonl.gz", 8_421_376, 184_220, 7_200.0, T0, "smartzone", "weekday", 7),
         RecordingInfo("rush-hour.jsonl.gz", 1_215_488, 24_310, 1_800.0, T0, "smartzone", "rush", 11)],
        clock_ms=T0,
    )  # fmt: skip
    app.state.replay_control = control
    app.state.research_data = Data()
    health = ChainHealth(
        "anvil · 127.0.0.1:8545", True, None, T0, 31337, 1207, OWNER, 9_987_654_321_000_000_000_000, 5, 5,
        T0 - 42_000, 42, 1, 16,
    )  # fmt: skip
    app.state.chain_status = FakeChainStatus(health)
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "operator")
    with serving(app) as url:
        yield url, control


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(offline=False) as launched:
        yield launched


def page_at(browser: Browser, width: int, height: int, lang: str, base: str) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    context.add_cookies([{"name": "lang", "value": lang, "url": base}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    phone = size is not None and size["width"] < 600
    page.screenshot(path=str(SCREENSHOTS / name), full_page=phone)  # a phone's page scrolls: the whole of it


def test_the_settlement_page_shows_full_hashes_copies_one_and_adds_a_pushed_epoch(
    served: tuple[str, Any], browser: Browser
) -> None:
    base, _ = served
    page = page_at(browser, 1440, 900, "en", base)
    page.goto(f"{base}/settlement")
    first = page.locator('tr[data-epoch="5"] code[data-tx]')
    expect(first).to_have_text(TX[:-2] + "05")
    link = page.locator('tr[data-epoch="5"] a.explorer')
    expect(link).to_have_attribute("href", f"https://explorer.example/tx/{TX[:-2]}05")
    page.locator('tr[data-epoch="5"] button.copy').click()
    expect(page.locator('tr[data-epoch="5"] button.copy')).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == TX[:-2] + "05"
    pushed = page.locator('tr[data-epoch="7"]')  # the live stream's epoch, on top of the table
    expect(pushed.locator("code[data-tx]")).to_have_text(PUSHED.tx_hash or "")
    assert page.locator("#epochs tbody tr").first.get_attribute("data-epoch") == "7"
    expect(pushed.locator("a.explorer")).to_have_count(1)
    expect(page.locator('[data-chain="latest_block"]')).to_have_text("1,207")
    expect(page.locator("tr[data-epoch='6'] code[data-tx]")).to_have_count(0)  # waiting: no hash yet
    shoot(page, "settlement-operator-en-1440.png")
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


@pytest.mark.parametrize(("lang", "width", "height"), [("nl", 1440, 900), ("en", 390, 844), ("nl", 390, 844)])
def test_the_settlement_page_fits_the_screen_in_each_language(
    served: tuple[str, Any], browser: Browser, lang: str, width: int, height: int
) -> None:
    base, _ = served
    page = page_at(browser, width, height, lang, base)
    page.goto(f"{base}/settlement")
    expect(page.locator('tr[data-epoch="7"]')).to_have_count(1)
    hash_box = page.locator('tr[data-epoch="5"] code[data-tx]').bounding_box()
    assert hash_box is not None and hash_box["x"] + hash_box["width"] <= width  # the hash wraps, never off-screen
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if lang == "nl":
        expect(page.locator("h1")).to_have_text("Afrekening en uitbetalingen")
    shoot(page, f"settlement-operator-{lang}-{width}.png")
    page.context.close()


def test_the_research_page_starts_and_stops_a_replay_and_draws_the_charts(
    served: tuple[str, FakeReplayControl], browser: Browser
) -> None:
    base, control = served
    page = page_at(browser, 1440, 900, "en", base)
    page.goto(f"{base}/research")
    expect(page.locator('tr[data-recording="weekday-morning.jsonl.gz"]')).to_have_count(1)
    page.select_option("#replay-recording", "weekday-morning.jsonl.gz")
    page.locator('input[name="speed"][value="60.0"]').check()
    page.locator("#replay-start").click()
    expect(page.locator("#replay-badge")).to_have_text("running")
    assert control.started[-1] == ("weekday-morning.jsonl.gz", 60.0)
    control.advance(46_055, 1_800.0, 0.25)
    expect(page.locator("#replay-published")).to_have_text("46,055")
    expect(page.locator("#replay-speed")).to_have_text("60×")
    for chart in ("#chart-trips", "#chart-utilisation"):
        page.wait_for_function(f"document.querySelector('{chart}').complete")
        assert page.evaluate(f"document.querySelector('{chart}').naturalWidth") > 0
    shoot(page, "research-operator-en-1440.png")
    page.locator("#replay-stop").click()
    expect(page.locator("#replay-badge")).to_have_text("stopped")
    assert control.status().state == "stopped"
    expect(page.locator("#replay-start")).to_be_enabled()
    assert page.errors == []  # type: ignore[attr-defined]
    page.context.close()


@pytest.mark.parametrize(("lang", "width", "height"), [("nl", 1440, 900), ("en", 390, 844), ("nl", 390, 844)])
def test_the_research_page_fits_the_screen_in_each_language(
    served: tuple[str, Any], browser: Browser, lang: str, width: int, height: int
) -> None:
    base, _ = served
    page = page_at(browser, width, height, lang, base)
    page.goto(f"{base}/research")
    page.wait_for_function("document.querySelector('#chart-trips').complete")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    if lang == "nl":
        expect(page.locator("#replay-start")).to_have_text("Herhaling starten")
    shoot(page, f"research-operator-{lang}-{width}.png")
    page.context.close()


def test_downloads_follow_the_chosen_window(served: tuple[str, Any], browser: Browser) -> None:
    base, _ = served
    page = page_at(browser, 1440, 900, "en", base)
    page.goto(f"{base}/research")
    page.fill("#export-from", "2026-11-18T08:00")
    page.locator("#export-from").dispatch_event("change")
    href = page.locator('a[href^="/api/v1/exports/trips.csv"]').get_attribute("href") or ""
    assert "from_ms=" in href
    with page.expect_download() as download:
        page.locator('a[href^="/api/v1/exports/trips.csv"]').click()
    assert download.value.suggested_filename == "trips.csv"
    page.context.close()
