"""Scenario runs against a real Mosquitto: two simulators share one broker (each run its own client id), and a
run with faults on the wire delivers what its faults leave."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import replace

import pytest

from sensors.codec import decode
from sensors.messages import VehicleState
from sensors.mqtt import MqttClient
from sensors.ports import Received
from sensors.topics import Channel, subscription
from simulator.run import RunSummary
from simulator.scenario import FaultRates, load_scenario, shipped_scenario
from smartzone.parts import make_fleet, run_simulator
from smartzone.settings import Settings

pytestmark = pytest.mark.services


def collect(client: MqttClient, filters: list[tuple[str, int]]) -> queue.Queue[Received]:
    inbox: queue.Queue[Received] = queue.Queue()

    def handler(item: Received) -> None:
        inbox.put(item)
        item.ack()

    client.subscribe(filters, handler)
    return inbox


def drain(inbox: queue.Queue[Received], quiet_s: float = 1.5, limit_s: float = 60) -> list[Received]:
    """What arrives until nothing has come for ``quiet_s``."""
    got: list[Received] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            got.append(inbox.get(timeout=quiet_s))
        except queue.Empty:
            break
    return got


def test_two_simulators_of_one_operator_share_a_broker_and_every_event_and_state_arrives(mqtt_url: str) -> None:
    root = f"sz-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(mqtt_url=mqtt_url, topic_root=root, operator="op", chain_id=31337)
    sub = MqttClient(mqtt_url, f"sub-{root}")
    inbox = collect(sub, [(subscription(c, root), 1) for c in Channel])
    sub.connect()
    summaries: list[RunSummary] = []
    runs = []
    try:
        for seed in (1, 2):
            scenario = load_scenario(shipped_scenario("tiny")).overridden(seed=seed)
            fleet = make_fleet(settings, 31337, scenario=scenario)
            options = {"mqtt_url": mqtt_url, "protocol": "auto", "stop": threading.Event(), "scenario": scenario}
            runs.append(
                threading.Thread(target=lambda f=fleet, o=options: summaries.append(run_simulator(settings, f, **o)))
            )
        for run in runs:
            run.start()
        for run in runs:
            run.join(120)
        got = drain(inbox)
    finally:
        sub.close()
    assert len(summaries) == 2 and not any(s.stopped_early for s in summaries)
    expected = sum(s.published[Channel.EVENT] + s.published[Channel.STATE] for s in summaries)
    events_and_states = {(r.topic, r.payload) for r in got if "/telemetry" not in r.topic and "/voucher" not in r.topic}
    assert len(events_and_states) == expected  # each once at least, none lost to a takeover
    offline = [decode(r.topic, r.payload) for r in got]
    assert sum(isinstance(m, VehicleState) and not m.online for m in offline) >= 2 * 6


def test_a_run_that_drops_every_message_delivers_nothing(mqtt_url: str) -> None:
    root = f"sz-test-{uuid.uuid4().hex[:10]}"
    settings = Settings(mqtt_url=mqtt_url, topic_root=root, operator="op", chain_id=31337)
    sub = MqttClient(mqtt_url, f"sub-{root}")
    inbox = collect(sub, [(subscription(c, root), 1) for c in Channel])
    sub.connect()
    scenario = replace(load_scenario(shipped_scenario("tiny")), faults=FaultRates(drop=1))
    try:
        summary = run_simulator(
            settings,
            make_fleet(settings, 31337, scenario=scenario),
            mqtt_url=mqtt_url,
            protocol="auto",
            stop=threading.Event(),
            scenario=scenario,
        )
        got = drain(inbox)
    finally:
        sub.close()
    assert summary.faults["dropped"] == summary.total_published > 0
    assert got == []
