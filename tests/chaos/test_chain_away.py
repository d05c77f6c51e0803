"""The chain node out of reach for 60 s mid-stream (anvil keeps running and keeps its state; a proxy in front
of it cuts every connection and refuses new ones): ingest goes on, settlement waits, and afterwards every trip
is settled exactly once with the chain's total equal to the database's."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from smartzone.broker import mosquitto
from smartzone.broker_access import BrokerAccess, Role, url_for
from tests.chaos.checks import Outcome, observe, report, settled_in_time
from tests.chaos.harness import AggregatorProcess, aggregator_env, running
from tests.chaos.proxy import Proxy, via
from tests.chaos.stream import Stream

pytestmark = [pytest.mark.chaos, pytest.mark.services]

OUTAGE_S = 60.0


def test_chain_away_sixty_seconds_settles_every_trip_once_afterwards(
    stream: Stream, access: BrokerAccess, mosquitto_binary: str, database_url: str, anvil_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    with mosquitto(mosquitto_binary, access=access) as broker, Proxy(urlsplit(anvil_url).port or 8545) as proxy:
        env = aggregator_env(
            "chain",
            mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url),
            database_url=database_url,
            chain_url=via(anvil_url, proxy.port),
            folder=tmp_path,
        )
        aggregator = AggregatorProcess("chain", env, tmp_path)
        with running(aggregator) as parts:
            aggregator.start()
            feed = parts.feed(stream, url_for(access.find(Role.GATEWAY, stream.operator), broker.url), seconds=20)
            feed.wait_for(0.3)
            proxy.down()
            cut = proxy.cut
            time.sleep(2.0)
            before = observe(database_url, stream)
            time.sleep(OUTAGE_S - 2.0)  # the rest of the scripted outage; the rest of the stream arrives meanwhile
            during = observe(database_url, stream)
            proxy.up()
            feed.finish()
            settled_in_time(database_url, stream, 120)
            exit_code = aggregator.stop()
        outcome = observe(database_url, stream, anvil_url)
    report(
        "chain node away 60 s",
        stream,
        outcome,
        started,
        aggregator_runs=aggregator.starts,
        faults=1,
        outage_s=OUTAGE_S,
        connections_cut=cut,
        events_stored_while_chain_away=during.events_stored,
        epochs_committed_during_outage=[committed(before), committed(during)],
        **feed.figures(),
    )
    assert exit_code == 0, aggregator.tail()
    assert during.events_lost == 0, "ingest must go on while the chain is away"
    assert committed(before) == committed(during), "an epoch was committed while the chain was out of reach"
    assert outcome.problems() == []


def committed(outcome: Outcome) -> int:
    return outcome.epochs - outcome.epochs_unsettled
