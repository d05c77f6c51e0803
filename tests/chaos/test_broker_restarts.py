"""The broker stopped and started again three times mid-stream (2-5 s down, same port, same data folder).

Events and states are QoS 1: the broker keeps the aggregator's session and its queued messages across the
restart (persistence), and the publisher holds what it sent while the broker was away until it is back. Telemetry
is QoS 0: what is published while the broker is away, or queued for the aggregator when it stops, may be lost;
it is reported as a figure, not counted as a loss.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from smartzone.broker_access import BrokerAccess, Role, url_for
from tests.chaos.checks import observe, report, settled_in_time
from tests.chaos.harness import AggregatorProcess, RestartableBroker, aggregator_env, running
from tests.chaos.stream import Stream

pytestmark = [pytest.mark.chaos, pytest.mark.services]

RESTARTS = 3
SEED = 3


def test_broker_restarted_three_times_loses_no_event_and_no_trip(
    stream: Stream, access: BrokerAccess, mosquitto_binary: str, database_url: str, anvil_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    downtimes: list[float] = []
    outages: list[str] = []  # messages sent when the broker stopped and when it was back
    with RestartableBroker(mosquitto_binary, access, tmp_path / "broker") as broker:
        env = aggregator_env(
            "broker",
            mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url),
            database_url=database_url,
            chain_url=anvil_url,
            folder=tmp_path,
        )
        aggregator = AggregatorProcess("broker", env, tmp_path)
        with running(aggregator) as parts:
            aggregator.start()
            feed = parts.feed(stream, url_for(access.find(Role.GATEWAY, stream.operator), broker.url), seconds=24)
            for n in range(1, RESTARTS + 1):
                feed.wait_for(n / (RESTARTS + 1))
                broker.stop()
                stopped_at = feed.sent
                downtimes.append(round(rng.uniform(2.0, 5.0), 1))
                time.sleep(downtimes[-1])  # the scripted outage
                broker.start()
                outages.append(f"{stopped_at}-{feed.sent}")
            feed.finish()
            settled_in_time(database_url, stream, 120)
            exit_code = aggregator.stop()
        outcome = observe(database_url, stream, anvil_url)
    report(
        "broker restart x3",
        stream,
        outcome,
        started,
        aggregator_runs=aggregator.starts,
        faults=RESTARTS,
        broker_down_s=downtimes,
        broker_down_while_sent=outages,
        **feed.figures(),
    )
    assert exit_code == 0, aggregator.tail()
    assert outcome.problems() == []
