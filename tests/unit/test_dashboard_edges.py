"""The dashboard's HTTP edges over fakes: liveness under load, readiness, refused input, HEAD, security headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.health import Check, Readiness, SettlementLag, broker_check
from settlement.errors import StoreUnavailable
from settlement.readiness import Backlog
from settlement.views import Stats
from smartzone.broker import free_port, wait_open
from tests.unit.test_dashboard import FakeReadModel, app_as, config, sample

WORKER_THREADS = 40  # anyio's default number of threads for sync routes


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class BlockingReadModel(FakeReadModel):
    """A read model whose ``stats`` holds every caller until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = 0
        self._lock = threading.Lock()
        self.all_busy = threading.Event()

    def stats(self) -> Stats:
        with self._lock:
            self.entered += 1
            if self.entered >= WORKER_THREADS:
                self.all_busy.set()
        self.release.wait(60)
        return super().stats()


class UntouchedReadModel(FakeReadModel):
    """A read model that fails the test if any route reaches it."""

    def __getattribute__(self, name: str) -> Any:
        if name in {"vehicles", "vehicle", "trips", "trip", "stats", "epochs", "payouts", "registry_proof"}:
            raise AssertionError(f"the read model was asked for {name}")
        return super().__getattribute__(name)


@pytest.fixture()
def client() -> TestClient:
    """An operator's client (the lists of the fleet need a login)."""
    return TestClient(app_as(sample()))


@pytest.fixture()
def anonymous() -> TestClient:
    return TestClient(create_app(sample(), config()))


@contextmanager
def served(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_open(port, 15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- liveness ------------------------------------------------------------------------------------------
def test_healthz_and_readyz_answer_while_every_worker_thread_is_held_by_slow_requests() -> None:
    model = BlockingReadModel()
    app = create_app(model, readiness=[Check("fake", lambda: (True, "fine"))])
    with served(app) as base:
        with ThreadPoolExecutor(WORKER_THREADS + 20) as pool:
            slow = [pool.submit(httpx.get, f"{base}/api/v1/stats", timeout=60) for _ in range(WORKER_THREADS + 20)]
            try:
                assert model.all_busy.wait(30), f"only {model.entered} requests reached the read model"
                health = httpx.get(f"{base}/healthz", timeout=10)
                ready = httpx.get(f"{base}/readyz", timeout=10)
                assert not model.release.is_set() and model.entered >= WORKER_THREADS  # all still held
            finally:
                model.release.set()
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert all(f.result().status_code == 200 for f in slow)


# --- readiness -----------------------------------------------------------------------------------------
def test_readyz_is_ready_with_each_checks_answer_when_all_pass() -> None:
    checks = [Check("database", lambda: (True, "answers")), broker_check(lambda: True, "mqtt://broker:1883")]
    response = TestClient(create_app(FakeReadModel(), readiness=checks)).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": [
            {"name": "database", "ok": True, "detail": "answers"},
            {"name": "broker", "ok": True, "detail": "connected to mqtt://broker:1883"},
        ],
    }
    assert response.headers["cache-control"] == "no-store"


def test_readyz_is_503_naming_the_check_that_fails_and_why() -> None:
    checks = [Check("database", lambda: (True, "answers")), broker_check(lambda: False, "mqtt://broker:1883")]
    response = TestClient(create_app(FakeReadModel(), readiness=checks)).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"][1] == {"name": "broker", "ok": False, "detail": "not connected to mqtt://broker:1883"}


def test_an_unreachable_database_fails_readiness_with_its_redacted_url_and_no_secret() -> None:
    def down() -> tuple[bool, str]:
        raise StoreUnavailable("postgresql://smartzone:***@db:5432/smartzone", "connection refused")

    def leaky() -> tuple[bool, str]:
        raise ValueError("could not parse postgresql://smartzone:hunter22@db/smartzone")

    app = create_app(FakeReadModel(), readiness=[Check("database", down), Check("other", leaky)])
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    database, other = response.json()["checks"]
    assert database["ok"] is False
    assert "cannot reach the database at postgresql://smartzone:***@db" in database["detail"]
    assert other == {"name": "other", "ok": False, "detail": "the check failed: ValueError"}
    assert "hunter22" not in response.text


def test_a_check_that_hangs_fails_after_the_deadline_and_is_not_started_again_while_it_hangs() -> None:
    stuck, calls = threading.Event(), []

    def hanging() -> tuple[bool, str]:
        calls.append(1)
        stuck.wait(30)
        return True, "late"

    readiness = Readiness([Check("database", hanging)], timeout_s=0.05, cache_s=0)
    try:
        first = asyncio.run(readiness.report())
        second = asyncio.run(readiness.report())
    finally:
        stuck.set()
    assert first.status == second.status == "not ready"
    assert first.checks[0].detail.startswith("no answer after")
    assert len(calls) == 1


def test_readiness_answers_are_cached_for_a_moment() -> None:
    clock, calls = Clock(), []

    def counted() -> tuple[bool, str]:
        calls.append(1)
        return True, "ok"

    readiness = Readiness([Check("db", counted)], cache_s=1.0, clock=clock)
    asyncio.run(readiness.report())
    clock.now += 0.5
    asyncio.run(readiness.report())
    assert len(calls) == 1
    clock.now += 1.0
    asyncio.run(readiness.report())
    assert len(calls) == 2


def test_no_checks_means_ready() -> None:
    assert TestClient(create_app(FakeReadModel())).get("/readyz").json() == {"status": "ready", "checks": []}


# --- settlement lag ------------------------------------------------------------------------------------
def test_settlement_lag_fails_when_an_epoch_waits_for_the_chain_longer_than_the_limit() -> None:
    clock = Clock(2_000_000.0)
    closed_ms = int((clock.now - 301) * 1000)
    lag = SettlementLag(lambda: Backlog(3, "bike-1:4", (7, closed_ms)), max_lag_s=300, clock=clock)
    ok, detail = lag()
    assert not ok
    assert "epoch 7 was closed 301 s ago and is not on chain" in detail and "over the limit of 300 s" in detail


def test_settlement_lag_fails_when_the_same_trip_stays_the_oldest_waiting_longer_than_the_limit() -> None:
    clock, backlog = Clock(), Backlog(2, "bike-1:4", None)
    lag = SettlementLag(lambda: backlog, max_lag_s=300, clock=clock)
    assert lag()[0]
    clock.now += 299
    assert lag()[0]
    clock.now += 2
    ok, detail = lag()
    assert not ok and "the oldest (bike-1:4) for at least 301 s" in detail


def test_settlement_lag_restarts_when_settlement_moves_on() -> None:
    clock, backlogs = Clock(), iter([Backlog(2, "a:1", None), Backlog(2, "a:2", None), Backlog(0, None, None)])
    lag = SettlementLag(lambda: next(backlogs), max_lag_s=300, clock=clock)
    lag()
    clock.now += 400
    ok, detail = lag()  # a:1 was settled: a:2 is the oldest now, first seen now
    assert ok and "for at least 0 s" in detail
    clock.now += 400
    ok, detail = lag()
    assert ok and detail == "0 trips wait for settlement; lag below the limit of 300 s"


# --- refused input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/vehicles/%00",
        "/api/v1/trips?rider=%00",
        "/api/v1/trips/bike%0A1",
        "/api/v1/trips?vehicle_id=a%1Fb",
        "/api/v1/vehicles/%7F",
        "/api/v1/vehicles/%FF",
        "/api/v1/trips?rider=%C0%80",
    ],
)
def test_control_characters_and_bad_utf8_are_a_400_problem_before_the_read_model_is_asked(url: str) -> None:
    response = TestClient(create_app(UntouchedReadModel())).get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400 and body["title"] == "Bad Request"
    assert "control character" in body["detail"] or "UTF-8" in body["detail"]
    assert "\x00" not in response.text


def test_ordinary_unicode_in_a_path_and_query_is_accepted(client: TestClient) -> None:
    assert client.get("/api/v1/vehicles/v%C3%A9lo").status_code == 404
    assert client.get("/api/v1/trips?vehicle_id=J%C3%BCrgen+M").status_code == 200


def test_an_unexpected_error_is_a_500_problem_that_says_nothing_of_its_cause() -> None:
    class Broken(FakeReadModel):
        def stats(self) -> Stats:
            raise ValueError("postgresql://smartzone:hunter22@db: A string literal cannot contain NUL")

    response = TestClient(create_app(Broken())).get("/api/v1/stats")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "hunter22" not in response.text and "NUL" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


# --- HEAD ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/", "/login", "/api/v1/stats", "/api/v1/vehicles", "/healthz", "/readyz", "/static/css/base.css", "/docs"]
)
def test_head_answers_wherever_get_does_with_its_headers_and_no_body(
    client: TestClient, anonymous: TestClient, path: str
) -> None:
    visitor = anonymous if path in ("/", "/login") else client  # staff are sent on from those pages
    get, head = visitor.get(path), visitor.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "content-security-policy", "x-frame-options"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_of_an_unknown_item_is_a_404(client: TestClient) -> None:
    response = client.head("/api/v1/vehicles/nobody")
    assert response.status_code == 404 and response.content == b""


# --- security headers ----------------------------------------------------------------------------------
def directives(policy: str) -> dict[str, str]:
    return {d.strip().split(" ", 1)[0]: d.strip().partition(" ")[2] for d in policy.split(";") if d.strip()}


@pytest.mark.parametrize(
    "path",
    [
        "/", "/login", "/api/v1/stats", "/api/v1/vehicles/nobody", "/api/v1/vehicles/%00", "/healthz",
        "/static/js/login.js", "/api/v1/trips",
    ],
)  # fmt: skip
def test_every_response_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-frame-options"] == "DENY"
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert "script-src" not in policy and "style-src" not in policy  # the page needs nothing inline


@pytest.mark.parametrize("path", ["/", "/login"])
def test_the_pages_have_no_inline_script_or_style_the_policy_would_block(anonymous: TestClient, path: str) -> None:
    page = anonymous.get(path).text
    # a JSON data block is not run, so the policy has no say over it; every script is a file
    assert not re.search(r'<script(?![^>]*\b(?:src=|type="application/json"))[^>]*>', page)
    assert "<style" not in page and not re.search(r"\s(style|on[a-z]+)=", page)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_pages_allow_exactly_their_own_inline_script(client: TestClient, path: str) -> None:
    response = client.get(path)
    policy = directives(response.headers["content-security-policy"])
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", response.text, re.DOTALL)
    assert inline or path == "/redoc"  # Swagger UI starts with an inline script; ReDoc has none
    allowed = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline}
    assert set(policy["script-src"].split()) == {"'self'", *allowed}
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]


# --- secrets -------------------------------------------------------------------------------------------
def test_a_chain_url_with_credentials_is_shown_without_them() -> None:
    label = "https://user:pa55word@node.example/v3/0123456789abcdef0123456789abcdef"
    page = TestClient(create_app(sample(), config(chain_label=label))).get("/").text
    assert "pa55word" not in page and "0123456789abcdef0123456789abcdef" not in page
    assert "https://user:***@node.example/v3/***" in page
