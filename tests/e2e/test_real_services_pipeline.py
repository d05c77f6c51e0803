"""The whole path as separate processes on real services: Mosquitto, PostgreSQL and anvil."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.mqtt import MqttClient
from sensors.signing import address_of
from settlement.chain import Web3Clearing, Web3Token
from settlement.db import Database
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from simulator.keys import rider_key
from smartzone.broker import RunningBroker, mosquitto
from smartzone.broker_access import BrokerAccess, Role, generate, url_for
from tests import services
from tests.e2e.pipeline_checks import check_settled_run, wait_until

pytestmark = pytest.mark.services


@pytest.fixture()
def access() -> BrokerAccess:
    """Fresh credentials: the aggregator, the demo operator's gateway; anonymous clients refused."""
    return generate("smartzone", ["smartzone-demo"])


@pytest.fixture()
def broker(access: BrokerAccess) -> Iterator[RunningBroker]:
    """A real Mosquitto started with the project's configuration, password file and ACL on a free port."""
    with mosquitto(services.mosquitto_binary(), access=access) as running:
        yield running


def smartzone(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )  # type: ignore[call-overload]


def test_a_seeded_run_across_processes_on_real_services_settles_every_trip_once(
    broker: RunningBroker,
    access: BrokerAccess,
    postgres_url: str,
    anvil_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    gateway_url = url_for(access.find(Role.GATEWAY, "smartzone-demo"), broker.url)
    upgrade = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", "db", "upgrade"],
        env={**os.environ, "SMARTZONE_DATABASE_URL": postgres_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    env = {
        **os.environ,
        "SMARTZONE_MQTT_URL": url_for(access.find(Role.AGGREGATOR), broker.url),
        "SMARTZONE_DATABASE_URL": postgres_url,
        "SMARTZONE_CHAIN_URL": anvil_url,
        "SMARTZONE_EPOCH_SECONDS": "2",
        "SMARTZONE_DATA_DIR": str(tmp_path),
        "SMARTZONE_AGGREGATOR_ID": f"e2e-{tmp_path.name}",
        "SMARTZONE_LOG_LEVEL": "WARNING",
        "SMARTZONE_DEMO": "1",  # the euro token gets a faucet: the riders fund their deposits from it
        "SMARTZONE_RIDERS": "12",
    }
    started = time.monotonic()
    aggregator = smartzone("aggregate", env=env)
    try:
        assert aggregator.stdout is not None
        line = aggregator.stdout.readline()
        assert line.startswith("aggregating from"), line + (aggregator.stderr.read() if aggregator.stderr else "")
        rejected = publish_bad_messages(gateway_url)
        funded = subprocess.run(
            [sys.executable, "-m", "smartzone.cli", "riders", "fund", "--seed", "11", "--amount", "30000000"],
            env=env,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert funded.returncode == 0, funded.stderr
        assert funded.stdout.strip() == "12 of 12 riders of seed 11 deposited 30000000 micro-EUR each"
        sim = subprocess.run(
            [
                sys.executable,
                "-m",
                "smartzone.cli",
                "simulate",
                "--vehicles",
                "20",
                "--minutes",
                "30",
                "--speed",
                "300",
                "--seed",
                "11",
            ],
            env={**env, "SMARTZONE_MQTT_URL": gateway_url},
            text=True,
            capture_output=True,
            timeout=300,
        )
        assert sim.returncode == 0, sim.stderr
        summary = json.loads(sim.stdout.strip().splitlines()[-1])
        database = Database.connect(postgres_url)
        request.addfinalizer(database.close)
        read = SqlReadModel(database)
        events = summary["published"]["event"]
        wait_until(lambda: read.stats().events == events, 120, f"{events} events stored")
        wait_until(lambda: read.stats().rejected == rejected, 30, f"{rejected} bad messages dead-lettered")
        aggregator.send_signal(signal.SIGINT)
        out, err = aggregator.communicate(timeout=120)
        assert aggregator.returncode == 0, err
        wall = time.monotonic() - started
    finally:
        if aggregator.poll() is None:
            aggregator.kill()
    chain = Web3Clearing.connect(anvil_url)
    with SqlUnitOfWork(database) as uow:
        address = uow.registry.deployment(chain.chain_id())
    assert address is not None
    chain.attach(address)
    token = Web3Token(chain.sender)
    token.attach(chain.token_address())
    figures = check_settled_run(database, chain, set(summary["trip_ids"]), token)
    riders = [address_of(rider_key(11, i)) for i in range(12)]
    assert sum(chain.deposited(r) for r in riders) == chain.totals().deposited_total == 12 * 30_000_000
    stats = read.stats()
    assert stats.rejected == rejected
    figures.update(vehicles=stats.vehicles, telemetry=stats.telemetry, events=stats.events, wall_ms=round(wall * 1000))
    check_served_over_http(env, figures)
    print("\nend-to-end on Mosquitto + PostgreSQL + anvil:", json.dumps(figures))


def publish_bad_messages(url: str) -> int:
    """Malformed, oversized and schema-violating messages, sent before the fleet; returns how many."""
    bad = [
        ("smartzone/v1/smartzone-demo/bike-0001/event", b"\x00\xffnot json"),
        ("smartzone/v1/smartzone-demo/bike-0001/telemetry", b'{"v":1}'),
        ("smartzone/v1/smartzone-demo/bike-0001/event", b'{"v":1,"pad":"' + b"x" * 5000 + b'"}'),
        ("smartzone/v1/smartzone-demo/bike-0001/telemetry", b"[]"),
    ]
    client = MqttClient(url, "e2e-bad-publisher").connect()  # the gateway's login: it may publish, badly
    try:
        for topic, payload in bad:
            client.publish(topic, payload, qos=1)
    finally:
        client.close()
    return len(bad)


def check_served_over_http(env: dict[str, str], figures: dict[str, int]) -> None:
    """`smartzone serve` as its own process shows the same trips and payouts."""
    port = services.free_port()
    server = smartzone("serve", "--port", str(port), env=env)
    try:
        assert services.wait_for_port("127.0.0.1", port, 30), "the dashboard did not start"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/stats", timeout=10) as response:
            stats = json.load(response)
        assert stats["trips"] == figures["trips"] and stats["settled_micro"] == figures["fares_micro"]
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
