"""Secrets never printed: a run on real services with every secret set, and every log line and page grepped."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from smartzone.broker import RunningBroker, mosquitto
from smartzone.broker_access import BrokerAccess, Role, generate, url_for
from tests import services

pytestmark = pytest.mark.services

ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's first account
OPERATOR_KEY = "0x" + "5eca" * 16
CHAIN_PASSWORD = "chain/pass@7"  # needs URL-encoding: both forms must stay hidden
DATABASE_PASSWORD = "db-pass#Secret9"  # PostgreSQL's trust authentication ignores it
DASHBOARD_PASSWORD = "operator-pass-Secret11"
SESSION_SECRET = "session-key-Secret13-0123456789abcdef"
PAGES = (
    "/", "/fleet", "/settlement", "/research", "/api/v1/stats", "/api/v1/vehicles", "/api/v1/chain", "/api/v1/fleet",
    "/metrics", "/openapi.json", "/healthz", "/readyz", "/docs",
)  # fmt: skip
URL_PASSWORD = re.compile(r"://[^\s/:@'\"]+:([^\s@'\"]+)@")


@pytest.fixture()
def access() -> BrokerAccess:
    return generate("smartzone", ["smartzone-demo"])


@pytest.fixture()
def broker(access: BrokerAccess) -> Iterator[RunningBroker]:
    with mosquitto(services.mosquitto_binary(), access=access) as running:
        yield running


def with_password(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def smartzone(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartzone.cli", *args], env=env, text=True, capture_output=True, timeout=timeout
    )


def signed_in(base: str, password: str) -> urllib.request.OpenerDirector:
    """An opener holding the operator's session cookie, signed in through the login form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = urllib.parse.urlencode({"name": "operator", "password": password, "next": "/fleet"}).encode()
    request = urllib.request.Request(f"{base}/login", data=form, headers={"Origin": base})
    with opener.open(request, timeout=10) as response:
        assert response.url.endswith("/fleet"), response.url
    return opener


def fetch(url: str, opener: urllib.request.OpenerDirector | None = None) -> str:
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # a 404 (no /readyz yet) or a 503 still has a body to grep
        return str(exc.read().decode())


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out + err


def test_no_secret_shows_in_any_log_error_or_page_of_a_run(
    broker: RunningBroker, access: BrokerAccess, postgres_url: str, anvil_url: str, tmp_path: Path
) -> None:
    aggregator_url = url_for(access.find(Role.AGGREGATOR), broker.url)
    gateway_url = url_for(access.find(Role.GATEWAY, "smartzone-demo"), broker.url)
    database_url = with_password(postgres_url, "postgres", DATABASE_PASSWORD)
    chain_url = with_password(anvil_url, "user", CHAIN_PASSWORD)
    env = {
        **os.environ,
        "SMARTZONE_MQTT_URL": aggregator_url,
        "SMARTZONE_DATABASE_URL": database_url,
        "SMARTZONE_CHAIN_URL": chain_url,
        "SMARTZONE_CHAIN_PRIVATE_KEY": ANVIL_KEY,
        "SMARTZONE_OPERATOR_KEY": OPERATOR_KEY,
        "SMARTZONE_LOG_LEVEL": "DEBUG",
        "SMARTZONE_EPOCH_SECONDS": "2",
        "SMARTZONE_DATA_DIR": str(tmp_path),
        "SMARTZONE_AGGREGATOR_ID": f"secrets-{tmp_path.name}",
        "SMARTZONE_OPERATOR_PASSWORD": DASHBOARD_PASSWORD,
        "SMARTZONE_SESSION_SECRET": SESSION_SECRET,
    }
    secrets = [
        ANVIL_KEY,
        OPERATOR_KEY,
        CHAIN_PASSWORD,
        DATABASE_PASSWORD,
        DASHBOARD_PASSWORD,
        SESSION_SECRET,
        *(
            access.find(role, name).password
            for role, name in ((Role.AGGREGATOR, None), (Role.GATEWAY, "smartzone-demo"))
        ),
    ]
    captured: dict[str, str] = {}

    upgraded = run("db", "upgrade", env=env)
    captured["db upgrade"] = upgraded.stdout + upgraded.stderr
    assert upgraded.returncode == 0, upgraded.stderr
    aggregator = smartzone("aggregate", env=env)
    port = services.free_port()
    server = smartzone("serve", "--port", str(port), env=env)
    try:
        assert aggregator.stdout is not None
        first = aggregator.stdout.readline()
        captured["aggregate: first line"] = first
        assert first.startswith("aggregating from"), first + stop(aggregator)
        sim = run(
            "simulate",
            "--vehicles",
            "5",
            "--minutes",
            "10",
            "--speed",
            "600",
            env={**env, "SMARTZONE_MQTT_URL": gateway_url},
        )
        captured["simulate"] = sim.stdout + sim.stderr
        assert sim.returncode == 0, sim.stderr
        assert services.wait_for_port("127.0.0.1", port, 30), "the dashboard did not start"
        operator = signed_in(f"http://127.0.0.1:{port}", DASHBOARD_PASSWORD)
        for page in PAGES:
            captured[f"GET {page}"] = fetch(f"http://127.0.0.1:{port}{page}", operator)
        assert "vehicle_id" in captured["GET /api/v1/vehicles"]
    finally:
        captured["aggregate"] = stop(aggregator)
        captured["serve"] = stop(server)
    assert aggregator.returncode == 0 and server.returncode == 0, captured["aggregate"][-2000:]

    # `smartzone up` on the same database and chain, with its own broker and generated passwords: banner and pages
    up_port = services.free_port()
    up_env = {k: v for k, v in env.items() if k != "SMARTZONE_MQTT_URL"} | {"SMARTZONE_EMBEDDED_BROKER": "mosquitto"}
    up = smartzone("up", "--port", str(up_port), "--vehicles", "5", env=up_env)
    try:
        assert services.wait_for_port("127.0.0.1", up_port, 60), stop(up)[-3000:]
        for page in ("/", "/api/v1/stats", "/healthz", "/readyz"):
            captured[f"up: GET {page}"] = fetch(f"http://127.0.0.1:{up_port}{page}")
    finally:
        captured["up"] = stop(up)
    assert up.returncode == 0 and "Smart Zone is up." in captured["up"], captured["up"][-3000:]

    # error paths: each service unreachable at a URL carrying credentials gives one line naming the URL
    unreachable = {
        "chain": ("aggregate", {"SMARTZONE_CHAIN_URL": with_password("http://127.0.0.1:1", "user", CHAIN_PASSWORD)}),
        "database": ("aggregate", {"SMARTZONE_DATABASE_URL": with_password(
            "postgresql+psycopg://postgres@127.0.0.1:1/test", "postgres", DATABASE_PASSWORD)}),
        "broker": ("aggregate", {"SMARTZONE_MQTT_URL": re.sub(r":\d+$", ":1", aggregator_url)}),
    }  # fmt: skip
    for what, (command, extra) in unreachable.items():
        failed = run(command, env={**env, **extra})
        captured[f"{what} unreachable"] = failed.stdout + failed.stderr
        assert failed.returncode == 2, failed.stderr[-2000:]
        assert "127.0.0.1:1" in failed.stderr.splitlines()[-1], failed.stderr[-2000:]

    for where, text in captured.items():
        for secret in secrets:
            for form in {secret, quote(secret, safe=""), secret.removeprefix("0x")}:
                assert form not in text, f"a secret shows in {where}: …{text[max(0, text.find(form) - 80) :][:200]}…"
        shown = {password for password in URL_PASSWORD.findall(text) if password != "***"}
        assert not shown, f"a URL password shows in {where}: {shown}"
    assert any("***" in text for text in captured.values())  # the URLs were shown, masked
