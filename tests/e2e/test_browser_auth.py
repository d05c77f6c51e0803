"""Signing in, in headless Chromium: login where it is needed, a wrong password refused, an operator signs in with
the form, a wallet signs in with Sign-In with Ethereum; screenshots of the login page in both languages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from eth_account.messages import encode_defunct
from playwright.sync_api import Browser, Page, Route

from dashboard.app import create_app
from dashboard.auth import hash_password
from dashboard.config import DashboardConfig, Role, StaffUser
from tests.e2e.browsing import chromium, serving
from tests.unit.test_auth import KEY
from tests.unit.test_dashboard import SECRET, sample

pytestmark = pytest.mark.services
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE, SCREEN = {"width": 390, "height": 844}, {"width": 1440, "height": 900}
CONFIG = DashboardConfig(
    session_secret=SECRET,
    chain_label="anvil 31337",
    users=(StaffUser("operator", Role.OPERATOR, hash_password("correct horse", n=2**10)),),
    demo=True,
    rider_tokens={"rider-1": KEY.address},
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(offline=False) as launched:  # the tests watch every request themselves (``offline``)
        yield launched


def serve(config: DashboardConfig = CONFIG) -> Iterator[str]:
    """The app over a fake read model, served by uvicorn on a free port; yields its base URL (no trailing /)."""
    with serving(create_app(sample(), config)) as url:
        yield url


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    yield from serve()


def offline(page: Page) -> list[str]:
    """Refuse every request that leaves this machine; returns the refused URLs."""
    refused: list[str] = []

    def route(r: Route) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return refused


def watched(page: Page) -> list[str]:
    """Collect script errors and Content-Security-Policy violations of the page."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return problems


def test_the_api_needs_a_login_for_positions_and_trips_but_not_for_aggregates(browser: Browser, base: str) -> None:
    context = browser.new_context()
    try:
        request = context.request
        assert request.get(f"{base}/api/v1/stats").status == 200
        for path in ("/api/v1/vehicles", "/api/v1/trips", "/api/v1/payouts", "/api/v1/me"):
            response = request.get(base + path)
            assert response.status == 401 and response.headers["www-authenticate"] == "Session", path
    finally:
        context.close()


def test_a_wrong_password_is_refused_with_one_message_and_no_session(browser: Browser, base: str) -> None:
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    problems, refused = watched(page), offline(page)
    try:
        page.goto(f"{base}/login")
        page.fill("#login-name", "operator")
        page.fill("#login-password", "wrong horse")
        page.click("#staff-form button[type=submit]")
        page.wait_for_selector("#login-error")
        assert "do not match an account" in page.inner_text("#login-error")
        assert context.request.get(f"{base}/api/v1/me").status == 401
        assert problems == [] and refused == []
    finally:
        context.close()


def test_an_operator_signs_in_with_the_form_and_is_taken_to_the_page_they_asked_for(
    browser: Browser, base: str
) -> None:
    context = browser.new_context(locale="nl-BE")
    page = context.new_page()
    problems = watched(page)
    try:
        page.goto(f"{base}/login?next=/api/v1/me")
        assert page.inner_text("h1") == "Aanmelden"
        page.fill("#login-name", "operator")
        page.fill("#login-password", "correct horse")
        page.click("#staff-form button[type=submit]")
        page.wait_for_url(f"{base}/api/v1/me")
        assert json.loads(page.inner_text("body"))["role"] == "operator"
        assert context.request.get(f"{base}/api/v1/vehicles").status == 200
        cookie = next(c for c in context.cookies() if c["name"] == "smartzone_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert problems == []
    finally:
        context.close()


INJECTED_WALLET = """
window.ethereum = {
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts") return [window.__account.toLowerCase()];
    if (method === "personal_sign") {
      window.__asked = params;
      return await window.__sign(params[0]);
    }
    throw new Error("unsupported " + method);
  },
};
"""


def test_a_wallet_signs_in_with_ethereum_from_the_login_page(browser: Browser, base: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = watched(page)

    def sign(hex_message: str) -> str:
        text = bytes.fromhex(hex_message[2:]).decode()
        return "0x" + bytes(KEY.sign_message(encode_defunct(text=text)).signature).hex()

    try:
        page.expose_function("__sign", sign)
        page.add_init_script(f"window.__account = {json.dumps(KEY.address)};" + INJECTED_WALLET)
        page.goto(f"{base}/login?next=/api/v1/me")
        page.wait_for_selector("#siwe:enabled")
        page.click("#siwe")
        page.wait_for_url(f"{base}/api/v1/me")
        assert json.loads(page.inner_text("body")) == {
            "role": "account", "subject": KEY.address, "staff": False, "home": "/rider",
        }  # fmt: skip
        assert context.request.get(f"{base}/api/v1/vehicles").status == 403  # a wallet never sees the fleet
        assert problems == []
    finally:
        context.close()


def test_without_a_wallet_the_button_stays_off_and_says_why(browser: Browser, base: str) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{base}/login")
        assert page.locator("#siwe").is_disabled()
        assert "No wallet" in page.inner_text("#siwe-status")
    finally:
        page.close()


@pytest.mark.parametrize("lang", ["en", "nl"])
@pytest.mark.parametrize(("width", "viewport"), [("390", PHONE), ("1440", SCREEN)])
def test_the_login_page_fits_the_screen_in_each_language(
    browser: Browser, base: str, lang: str, width: str, viewport: Any
) -> None:
    context = browser.new_context(viewport=viewport, locale={"en": "en-IE", "nl": "nl-BE"}[lang])
    page = context.new_page()
    problems, refused = watched(page), offline(page)
    try:
        page.goto(f"{base}/login")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]  # no sideways scrolling
        for field in ("#login-name", "#login-password", "#login-token"):
            box = page.locator(field).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"auth-login-{lang}-{width}.png"), full_page=True)
        assert problems == [] and refused == []
    finally:
        context.close()


def test_outside_demo_mode_there_is_no_rider_token_form(browser: Browser) -> None:
    for base_url in serve(replace(CONFIG, demo=False)):
        page = browser.new_page()
        try:
            page.goto(f"{base_url}/login")
            assert page.locator("#login-token").count() == 0
            assert page.request.post(f"{base_url}/auth/token", form={"token": "rider-1"}).status == 404
        finally:
            page.close()


def test_a_demo_rider_signs_in_with_a_token_on_a_phone(browser: Browser, base: str) -> None:
    context = browser.new_context(viewport=PHONE, locale="nl-BE")
    page = context.new_page()
    problems = watched(page)
    try:
        page.goto(f"{base}/login")
        page.fill("#login-token", "rider-2")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#login-error")
        assert "niet bekend" in page.inner_text("#login-error")  # the page answers in the visitor's language
        page.fill("#login-token", "rider-1")
        page.click("#token-form button[type=submit]")
        page.wait_for_url(f"{base}/rider")
        me = context.request.get(f"{base}/api/v1/me").json()
        assert (me["role"], me["subject"]) == ("account", KEY.address)
        assert problems == []
    finally:
        context.close()
