"""The Content-Security-Policy in headless Chromium: the page, Swagger UI and ReDoc work under it, offline."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from sensors.messages import VehicleKind
from settlement.db import Database
from tests.e2e.test_browser import browser, offline, served, vehicle  # noqa: F401 - fixtures

pytestmark = pytest.mark.services


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("", "#vehicles tbody tr"), ("docs", ".opblock"), ("redoc", "[data-section-id]")],
)
def test_the_pages_work_under_their_content_security_policy(
    served: tuple[str, Database],  # noqa: F811
    browser: Browser,  # noqa: F811
    path: str,
    rendered: str,
) -> None:
    url, store = served
    vehicle(store, "bike-0001", VehicleKind.BIKE)
    page = browser.new_page()
    refused = offline(page)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(str(e)))
    page.goto(url + path)
    page.wait_for_selector(rendered, timeout=20_000)
    page.wait_for_timeout(500)
    assert page.locator(rendered).count() > 0
    # ReDoc links its "powered by" logo from its CDN: refused offline, and by the policy (img-src 'self' data:)
    assert [v for v in violations if "cdn.redoc.ly" not in v] == []
    assert [r for r in refused if "cdn.redoc.ly" not in r] == []
