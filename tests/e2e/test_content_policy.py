"""The Content-Security-Policy in headless Chromium: the pages, Swagger UI and ReDoc work under it, offline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.e2e.test_browser_auth import browser, offline, serve, watched  # noqa: F401 - fixtures

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    yield from serve()


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/", "#stats dd"), ("/login", "#login-password"), ("/docs", ".opblock"), ("/redoc", "[data-section-id]")],
)
def test_the_pages_work_under_their_content_security_policy(
    base: str,
    browser: Browser,  # noqa: F811
    path: str,
    rendered: str,
) -> None:
    page = browser.new_page()
    try:
        refused = offline(page)
        violations = watched(page)
        page.goto(base + path)
        page.wait_for_selector(rendered, timeout=20_000)
        page.wait_for_load_state("networkidle")
        assert page.locator(rendered).count() > 0
        # ReDoc links its "powered by" logo from its CDN: refused offline, and by the policy (img-src 'self' data:)
        assert [v for v in violations if "cdn.redoc.ly" not in v] == []
        assert [r for r in refused if "cdn.redoc.ly" not in r] == []
    finally:
        page.close()
