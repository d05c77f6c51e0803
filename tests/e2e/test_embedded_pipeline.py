"""The whole path on embedded defaults: amqtt in-process, SQLite, py-evm — what a fresh machine runs."""

from __future__ import annotations

import threading
from pathlib import Path

from sensors.topics import Channel
from settlement.queries import SqlReadModel
from smartzone.broker import amqtt_broker
from smartzone.parts import build_aggregator, open_store, run_simulator
from smartzone.settings import Settings
from tests.e2e.pipeline_checks import check_settled_run, wait_until


def test_a_seeded_run_on_embedded_defaults_settles_every_trip_once(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        vehicles=20,
        sim_minutes=30,
        speed=600,
        seed=7,
        epoch_seconds=1.0,
        aggregator_id="e2e-embedded",
    )
    with amqtt_broker() as broker:
        store = open_store(settings)
        part = build_aggregator(settings, store, mqtt_url=broker.url, protocol=broker.protocol)
        stop = threading.Event()
        aggregator = threading.Thread(target=part.run, args=(stop,))
        aggregator.start()
        try:
            summary = run_simulator(
                settings,
                mqtt_url=broker.url,
                protocol=broker.protocol,
                stop=threading.Event(),
                start_ms=1_795_000_000_000,
            )
            events = summary.published[Channel.EVENT]
            wait_until(lambda: SqlReadModel(store).stats().events == events, 60, f"{events} events stored")
        finally:
            stop.set()
            aggregator.join(timeout=60)
        assert not aggregator.is_alive()
    assert summary.completed_trips >= 20
    figures = check_settled_run(store, part.aggregator.chain, set(summary.trip_ids))
    assert figures["epochs"] >= 2 and figures["gas_total"] > 0
    assert SqlReadModel(store).stats().rejected == 0
