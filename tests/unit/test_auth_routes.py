"""Signing in and out through the app: the login page, passwords, wallets, demo tokens, sessions, CSRF."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from fastapi import Request, Response
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from dashboard.app import SESSION_COOKIE, create_app
from dashboard.auth import hash_password
from dashboard.config import DashboardConfig, Role, StaffUser
from dashboard.deps import Who, page_guard
from tests.unit.test_auth import KEY, OTHER
from tests.unit.test_dashboard import RIDER_1, SECRET, assert_problem, sample

CHEAP = {"n": 2**8}  # the stored hash carries its cost: cheap ones keep these tests quick
USERS = (
    StaffUser("ops", Role.OPERATOR, hash_password("op-secret", **CHEAP)),
    StaffUser("res", Role.RESEARCHER, hash_password("re-secret", **CHEAP)),
)


class Clock:
    def __init__(self, now: int = 1_780_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def settings(**changes: Any) -> DashboardConfig:
    base = DashboardConfig(session_secret=SECRET, users=USERS, rider_tokens={"rider-1": RIDER_1.lower()})
    return replace(base, **changes)


def client_of(config: DashboardConfig | None = None, clock: Clock | None = None) -> TestClient:
    return TestClient(create_app(sample(), config or settings(), clock=clock or Clock()))


@pytest.fixture()
def client() -> TestClient:
    return client_of()


def log_in(client: TestClient, name: str = "ops", password: str = "op-secret", **extra: str) -> Any:
    return client.post("/login", data={"name": name, "password": password, **extra}, follow_redirects=False)


def session_of(client: TestClient) -> dict[str, Any]:
    """The session the cookie carries (Starlette signs it; its payload is base64 JSON)."""
    payload = client.cookies[SESSION_COOKIE].split(".")[0]
    return dict(json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))))


# --- the page --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("lang", "words"), [("en", ["Sign in", "Password"]), ("nl", ["Aanmelden", "Wachtwoord"])])
def test_the_login_page_offers_a_password_form_and_a_wallet_in_the_visitors_language(
    client: TestClient, lang: str, words: list[str]
) -> None:
    page = client.get("/login", headers={"accept-language": lang})
    assert page.status_code == 200
    assert all(word in page.text for word in words)
    assert 'action="/login"' in page.text and 'id="siwe"' in page.text
    assert 'src="/static/js/login.js"' in page.text
    assert 'action="/auth/token"' not in page.text  # no rider tokens outside demo mode


def test_the_login_page_offers_a_rider_token_only_in_demo_mode() -> None:
    assert 'action="/auth/token"' in client_of(settings(demo=True)).get("/login").text


def test_a_signed_in_visitor_of_the_login_page_goes_to_their_page(client: TestClient) -> None:
    log_in(client)
    response = client.get("/login", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/fleet")


# --- passwords -------------------------------------------------------------------------------------------------
def test_an_operator_signs_in_with_the_right_password_and_lands_on_the_fleet(client: TestClient) -> None:
    assert client.get("/api/v1/me").status_code == 401
    response = log_in(client)
    assert (response.status_code, response.headers["location"]) == (303, "/fleet")
    assert client.get("/api/v1/me").json() == {"role": "operator", "subject": "ops", "staff": True, "home": "/fleet"}
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=43200" in cookie


def test_the_session_cookie_is_secure_when_https_only_is_set() -> None:
    response = log_in(client_of(settings(https_only=True)))
    assert "secure" in response.headers["set-cookie"].lower()


def test_after_signing_in_the_visitor_returns_to_the_page_they_asked_for_but_never_to_another_site(
    client: TestClient,
) -> None:
    assert log_in(client, next="/vehicles/bike-0001?x=1").headers["location"] == "/vehicles/bike-0001?x=1"
    for hostile in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        other = client_of()
        assert log_in(other, next=hostile).headers["location"] == "/fleet"


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_and_no_session(client: TestClient) -> None:
    wrong, unknown = log_in(client, password="op-secreT"), log_in(client, name="nobody")
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an account" in wrong.text and "do not match an account" in unknown.text
    assert wrong.text.replace("op-secreT", "") == unknown.text.replace("nobody", "")
    assert client.get("/api/v1/me").status_code == 401


def test_a_researcher_cannot_sign_in_as_the_operator_with_their_own_password(client: TestClient) -> None:
    assert log_in(client, name="ops", password="re-secret").status_code == 401
    assert log_in(client, name="res", password="re-secret").headers["location"] == "/research"


def test_too_many_failures_for_one_name_block_even_the_right_password_for_a_while() -> None:
    clock = Clock()
    client = client_of(clock=clock)
    for _ in range(5):
        assert log_in(client, password="guess").status_code == 401
    blocked = log_in(client)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.text
    assert client.get("/api/v1/me").status_code == 401
    clock.now += 15 * 60_000
    assert log_in(client).status_code == 303


def test_too_many_failures_from_one_client_block_it_whatever_the_name() -> None:
    client = client_of()
    for i in range(20):
        assert log_in(client, name=f"guess-{i}", password="x").status_code == 401
    assert log_in(client).status_code == 429


def test_a_login_opens_a_new_session_rather_than_keeping_the_one_before(client: TestClient) -> None:
    log_in(client)
    before = session_of(client)
    log_in(client, name="res", password="re-secret")
    after = session_of(client)
    assert before["sid"] != after["sid"] and after["sub"] == "res" and after["role"] == "researcher"


def test_signing_out_ends_the_session(client: TestClient) -> None:
    log_in(client)
    response = client.post("/logout", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert client.get("/api/v1/me").status_code == 401


def test_a_staff_session_ends_when_the_user_is_removed_or_their_password_changes() -> None:
    first = client_of()
    log_in(first)
    cookie = first.cookies[SESSION_COOKIE]
    assert first.get("/api/v1/me").status_code == 200
    removed = client_of(settings(users=USERS[1:]))
    changed = client_of(settings(users=(StaffUser("ops", Role.OPERATOR, hash_password("new", **CHEAP)), *USERS[1:])))
    for other in (removed, changed):
        other.cookies.set(SESSION_COOKIE, cookie)
        assert other.get("/api/v1/me").status_code == 401


def test_a_session_older_than_its_maximum_age_or_with_a_forged_cookie_is_anonymous() -> None:
    clock = Clock()
    client = client_of(clock=clock)
    log_in(client)
    clock.now += 12 * 3600 * 1000 + 1
    assert client.get("/api/v1/me").status_code == 401
    forged = client_of()
    payload = base64.b64encode(json.dumps({"role": "operator", "sub": "ops", "iat": Clock().now}).encode()).decode()
    forged.cookies.set(SESSION_COOKIE, f"{payload}.AAAA.BBBB")
    assert forged.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(("name", "password"), [("x" * 129, "p"), ("ops", "p" * 1025)])
def test_an_oversized_name_or_password_is_refused_without_hashing(client: TestClient, name: str, password: str) -> None:
    assert_problem(log_in(client, name=name, password=password), 422)


# --- demo rider tokens -----------------------------------------------------------------------------------------
def test_a_demo_rider_token_signs_in_as_its_wallet_only_in_demo_mode() -> None:
    demo = client_of(settings(demo=True))
    response = demo.post("/auth/token", data={"token": "rider-1"}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/rider")
    assert demo.get("/api/v1/me").json()["subject"] == RIDER_1  # EIP-55, though configured in lowercase
    assert demo.post("/auth/token", data={"token": "rider-2"}).status_code == 401
    assert_problem(client_of().post("/auth/token", data={"token": "rider-1"}), 404)


# --- Sign-In with Ethereum -------------------------------------------------------------------------------------
def siwe(client: TestClient, account: Any = KEY, edit: Any = None, signer: Any = None) -> Any:
    challenge = client.get("/auth/siwe/nonce", params={"address": account.address.lower()}).json()
    text = "\n".join(
        [
            f"{challenge['domain']} wants you to sign in with your Ethereum account:",
            challenge["address"],
            "",
            challenge["statement"],
            "",
            f"URI: {challenge['uri']}",
            "Version: 1",
            f"Chain ID: {challenge['chain_id']}",
            f"Nonce: {challenge['nonce']}",
            f"Issued At: {challenge['issued_at']}",
            f"Expiration Time: {challenge['expiration_time']}",
        ]
    )
    text = edit(text) if edit else text
    signature = "0x" + bytes((signer or account).sign_message(encode_defunct(text=text)).signature).hex()
    return client.post("/auth/siwe", json={"message": text, "signature": signature}), text, signature


def test_a_wallet_signs_in_with_a_signed_message_built_from_the_challenge() -> None:
    client = client_of()
    challenge = client.get("/auth/siwe/nonce").json()
    assert challenge["domain"] == "testserver" and challenge["uri"] == "http://testserver/login"
    assert challenge["expiration_time"] > challenge["issued_at"] and len(challenge["nonce"]) >= 8
    response, _, _ = siwe(client)
    assert response.status_code == 200
    assert response.json() == {"role": "account", "subject": KEY.address, "staff": False, "home": "/rider"}
    assert client.get("/api/v1/me").json()["subject"] == KEY.address


def test_a_replayed_signed_message_is_refused_with_its_reason() -> None:
    client = client_of()
    first, text, signature = siwe(client)
    again = client_of().post("/auth/siwe", json={"message": text, "signature": signature})
    body = assert_problem(again, 401)
    assert first.status_code == 200 and body["reason"] == "nonce"
    assert again.headers["www-authenticate"] == "Session"


@pytest.mark.parametrize(
    ("edit", "signer", "reason"),
    [
        (lambda t: t.replace("testserver wants", "evil.example wants"), None, "domain"),
        (lambda t: t.replace("URI: http://testserver", "URI: http://evil.example"), None, "uri"),
        (lambda t: t.replace("Chain ID: 31337", "Chain ID: 1"), None, "chain_id"),
        (lambda t: t.replace("Version: 1", "Version: 9"), None, "malformed"),
        (None, OTHER, "signer"),
    ],
)
def test_a_wallet_message_for_another_site_chain_or_signer_is_refused(edit: Any, signer: Any, reason: str) -> None:
    client = client_of(settings(chain_id=31337))
    response, _, _ = siwe(client, edit=edit, signer=signer)
    assert assert_problem(response, 401)["reason"] == reason
    assert client.get("/api/v1/me").status_code == 401


def test_a_wallet_message_past_its_expiry_is_refused() -> None:
    clock = Clock()
    client = client_of(clock=clock)
    challenge = client.get("/auth/siwe/nonce", params={"address": KEY.address}).json()
    clock.now += 5 * 60_000
    text = (
        f"testserver wants you to sign in with your Ethereum account:\n{KEY.address}\n\n\nURI: http://testserver/\n"
        f"Version: 1\nChain ID: 1\nNonce: {challenge['nonce']}\nIssued At: {challenge['issued_at']}\n"
        f"Expiration Time: {challenge['expiration_time']}"
    )
    signature = "0x" + bytes(KEY.sign_message(encode_defunct(text=text)).signature).hex()
    response = client.post("/auth/siwe", json={"message": text, "signature": signature})
    assert assert_problem(response, 401)["reason"] == "expired"


@pytest.mark.parametrize(
    "body", [{}, {"message": "x"}, {"message": "x" * 5000, "signature": "0x"}, {"message": 1, "signature": 2}]
)
def test_a_malformed_wallet_sign_in_is_a_422_problem(client: TestClient, body: dict[str, Any]) -> None:
    assert_problem(client.post("/auth/siwe", json=body), 422)


def test_the_challenge_writes_a_wallets_address_in_its_checksum_form_or_refuses_a_bad_one(client: TestClient) -> None:
    assert client.get("/auth/siwe/nonce", params={"address": KEY.address.lower()}).json()["address"] == KEY.address
    assert_problem(client.get("/auth/siwe/nonce", params={"address": KEY.address.swapcase()}), 422)
    assert_problem(client.get("/auth/siwe/nonce", params={"address": "0x12"}), 422)


def test_the_configured_public_origin_is_the_one_messages_must_name() -> None:
    client = client_of(settings(public_origin="https://zone.example"))
    challenge = client.get("/auth/siwe/nonce").json()
    assert (challenge["domain"], challenge["uri"]) == ("zone.example", "https://zone.example/login")


# --- cross-site requests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://testserver.evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"origin": "http://testserver", "sec-fetch-site": "cross-site"},
    ],
)
@pytest.mark.parametrize("path", ["/login", "/logout", "/auth/siwe", "/lang"])
def test_a_state_changing_request_from_another_site_is_a_403_problem(path: str, headers: dict[str, str]) -> None:
    client = client_of()
    log_in(client)
    response = client.post(path, data={"name": "ops", "password": "op-secret", "lang": "nl"}, headers=headers)
    body = assert_problem(response, 403)
    assert "another" in body["detail"]
    assert client.get("/api/v1/me").status_code == 200  # the logout did not happen


@pytest.mark.parametrize(
    "headers",
    [{}, {"origin": "http://testserver"}, {"sec-fetch-site": "same-origin"}, {"sec-fetch-site": "none"}],
)
def test_a_request_from_our_own_pages_or_without_browser_headers_is_let_through(headers: dict[str, str]) -> None:
    client = client_of()
    response = client.post(
        "/login", data={"name": "ops", "password": "op-secret"}, headers=headers, follow_redirects=False
    )
    assert response.status_code == 303


def test_the_configured_public_origin_may_post_though_the_host_differs_behind_a_proxy() -> None:
    client = client_of(settings(public_origin="https://zone.example"))
    response = client.post(
        "/login", data={"name": "ops", "password": "op-secret"}, headers={"origin": "https://zone.example"},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303


def test_one_client_asking_for_nonces_without_end_is_told_to_wait() -> None:
    client = client_of()
    for _ in range(60):
        assert client.get("/auth/siwe/nonce").status_code == 200
    assert_problem(client.get("/auth/siwe/nonce"), 429)


def test_a_demo_rider_tokens_session_ends_when_demo_mode_is_turned_off() -> None:
    demo = client_of(settings(demo=True))
    demo.post("/auth/token", data={"token": "rider-1"})
    cookie = demo.cookies[SESSION_COOKIE]
    production = client_of(settings(demo=False))
    production.cookies.set(SESSION_COOKIE, cookie)
    assert demo.get("/api/v1/me").status_code == 200 and production.get("/api/v1/me").status_code == 401


# --- guarding pages ------------------------------------------------------------------------------------------
def guarded_client() -> TestClient:
    """The app with a page only operators may see, guarded as the page routes guard theirs."""
    app = create_app(sample(), settings(demo=True), clock=Clock())

    @app.get("/operators-only")
    def operators_only(request: Request, who: Who) -> Response:
        away = page_guard(request, who, Role.OPERATOR)
        return away if away is not None else PlainTextResponse("welcome")

    return TestClient(app)


def test_a_guarded_page_sends_an_anonymous_visitor_to_log_in_and_back() -> None:
    client = guarded_client()
    away = client.get("/operators-only?tab=alerts&x=a b", follow_redirects=False)
    assert (
        away.status_code == 303
        and away.headers["location"] == "/login?next=/operators-only%3Ftab%3Dalerts%26x%3Da%2520b"
    )
    back = log_in(client, next="/operators-only?tab=alerts")
    assert back.headers["location"] == "/operators-only?tab=alerts"
    assert client.get("/operators-only").text == "welcome"


def test_a_guarded_page_sends_someone_of_another_role_to_the_overview() -> None:
    client = guarded_client()
    client.post("/auth/token", data={"token": "rider-1"})
    away = client.get("/operators-only", follow_redirects=False)
    assert (away.status_code, away.headers["location"]) == (303, "/")
