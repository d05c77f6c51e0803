"""PostgreSQL out of reach for 10 s mid-stream (every connection cut, new ones refused, through a proxy):
the aggregator keeps the batch unacknowledged, retries, and ends with every event and trip, each once."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from smartzone.broker import mosquitto
from smartzone.broker_access import BrokerAccess, Role, url_for
from tests.chaos.checks import observe, report, settled_in_time
from tests.chaos.harness import AggregatorProcess, aggregator_env, running
from tests.chaos.proxy import Proxy, via
from tests.chaos.stream import Stream

pytestmark = [pytest.mark.chaos, pytest.mark.services]

OUTAGE_S = 10.0


def test_database_away_ten_seconds_loses_nothing_and_settles_each_trip_once(
    stream: Stream, access: BrokerAccess, mosquitto_binary: str, database_url: str, anvil_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    with mosquitto(mosquitto_binary, access=access) as broker, Proxy(urlsplit(database_url).port or 5432) as proxy:
        env = aggregator_env(
            "database",
            mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url),
            database_url=via(database_url, proxy.port),
            chain_url=anvil_url,
            folder=tmp_path,
        )
        aggregator = AggregatorProcess("database", env, tmp_path)
        with running(aggregator) as parts:
            aggregator.start()
            feed = parts.feed(stream, url_for(access.find(Role.GATEWAY, stream.operator), broker.url), seconds=20)
            feed.wait_for(0.3)
            proxy.down()
            cut = proxy.cut
            time.sleep(1.0)
            stored = [observe(database_url, stream).events_stored]
            time.sleep(OUTAGE_S - 1.0)  # the rest of the scripted outage
            stored.append(observe(database_url, stream).events_stored)
            sent_during = feed.sent
            proxy.up()
            feed.finish()
            settled_in_time(database_url, stream, 120)
            exit_code = aggregator.stop()
        outcome = observe(database_url, stream, anvil_url)
    report(
        "database away 10 s",
        stream,
        outcome,
        started,
        aggregator_runs=aggregator.starts,
        faults=1,
        outage_s=OUTAGE_S,
        connections_cut=cut,
        events_stored_during_outage=stored,
        **feed.figures(),
    )
    assert stored[0] == stored[1] < len(stream.events), f"the outage did not stop storing ({sent_during} sent)"
    assert exit_code == 0, aggregator.tail()
    assert outcome.problems() == []
