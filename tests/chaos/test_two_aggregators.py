"""Two aggregators share the stream (MQTT 5 shared subscription, one database, one contract); one of them
leaves mid-stream, and the group must still end with everything, nothing settled twice:

- ``sigterm``: it stops cleanly and for good; the one that stays must take over its share.
- ``sigkill``: it dies and never comes back; the broker must give its share back to the group once its session
  expires (``SMARTZONE_MQTT_SESSION_EXPIRY_S``, 2 s here).
- ``sigkill-then-back``: it dies and is restarted under its id 2 s later, within its session's expiry (30 s here):
  it must get back what the broker kept for it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from smartzone.broker import mosquitto
from smartzone.broker_access import BrokerAccess, Role, url_for
from tests.chaos.checks import observe, report, settled_in_time
from tests.chaos.harness import AggregatorProcess, aggregator_env, running
from tests.chaos.stream import Stream

pytestmark = [pytest.mark.chaos, pytest.mark.services]

SESSION_EXPIRY_S = {"sigterm": 2, "sigkill": 2, "sigkill-then-back": 30}
BACK_AFTER_S = 2.0


@pytest.mark.parametrize("leaving", list(SESSION_EXPIRY_S))
def test_one_of_two_aggregators_leaving_mid_stream_loses_nothing(
    leaving: str,
    stream: Stream,
    access: BrokerAccess,
    mosquitto_binary: str,
    database_url: str,
    anvil_url: str,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    expiry = SESSION_EXPIRY_S[leaving]
    with mosquitto(mosquitto_binary, access=access) as broker:
        aggregators = [
            AggregatorProcess(
                name,
                aggregator_env(
                    name,
                    mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url),
                    database_url=database_url,
                    chain_url=anvil_url,
                    folder=tmp_path,
                    mqtt_session_expiry_s=str(expiry),
                ),
                tmp_path,
            )
            for name in ("stays", "leaves")
        ]
        stays, leaves = aggregators
        with running(*aggregators) as parts:
            stays.start()
            leaves.start()
            feed = parts.feed(stream, url_for(access.find(Role.GATEWAY, stream.operator), broker.url), seconds=16)
            feed.wait_for(0.4)
            left_at = feed.sent
            left_code: int | None = None
            if leaving == "sigterm":
                left_code = leaves.stop()
            else:
                leaves.kill()
                if leaving == "sigkill-then-back":
                    time.sleep(BACK_AFTER_S)  # the scripted absence
                    leaves.start()
            feed.finish()
            settled_in_time(database_url, stream, 120)
            exit_code = stays.stop()
            if leaving == "sigkill-then-back":
                left_code = leaves.stop()
        outcome = observe(database_url, stream, anvil_url)
    report(
        f"two aggregators, one leaves ({leaving})",
        stream,
        outcome,
        started,
        aggregator_runs=stays.starts + leaves.starts,
        faults=1,
        left_after=f"{left_at}/{len(stream.messages)} sent",
        session_expiry_s=expiry,
        **feed.figures(),
    )
    assert exit_code == 0, stays.tail()
    assert left_code in (None, 0), leaves.tail()
    assert outcome.problems() == []
