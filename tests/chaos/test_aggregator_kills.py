"""The aggregator SIGKILLed at seeded random moments, five times, restarted each time: nothing lost or repeated."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from smartzone.broker import mosquitto
from smartzone.broker_access import BrokerAccess, Role, url_for
from tests.chaos.checks import observe, report, settled_in_time
from tests.chaos.harness import AggregatorProcess, aggregator_env, running
from tests.chaos.stream import Stream

pytestmark = [pytest.mark.chaos, pytest.mark.services]

KILLS = 5
SEED = 5


def test_aggregator_sigkilled_five_times_loses_nothing_and_settles_each_trip_once(
    stream: Stream, access: BrokerAccess, mosquitto_binary: str, database_url: str, anvil_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    moments: list[str] = []
    with mosquitto(mosquitto_binary, access=access) as broker:
        env = aggregator_env(
            "kill",
            mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url),
            database_url=database_url,
            chain_url=anvil_url,
            folder=tmp_path,
        )
        aggregator = AggregatorProcess("kill", env, tmp_path)
        with running(aggregator) as parts:
            aggregator.start()
            feed = parts.feed(stream, url_for(access.find(Role.GATEWAY, stream.operator), broker.url), seconds=20)
            for _ in range(KILLS):
                # a random moment of its run: receiving, storing, or settling (it first settles 2 s into its loop)
                time.sleep(rng.uniform(1.0, 6.0))
                aggregator.kill()
                moments.append(f"{feed.sent}/{len(stream.messages)} sent")
                aggregator.start()
            feed.finish()
            settled_in_time(database_url, stream, 120)
            exit_code = aggregator.stop()
        outcome = observe(database_url, stream, anvil_url)
    report(
        "aggregator SIGKILL x5",
        stream,
        outcome,
        started,
        aggregator_runs=aggregator.starts,
        faults=KILLS,
        kill_moments=moments,
        **feed.figures(),
    )
    assert exit_code == 0, aggregator.tail()
    assert outcome.problems() == []
