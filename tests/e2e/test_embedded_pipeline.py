"""The whole path on embedded defaults: amqtt in-process, SQLite, py-evm — what a fresh machine runs."""

from __future__ import annotations

import threading
from pathlib import Path

from sensors.signing import address_of
from sensors.topics import Channel
from settlement.chain import Web3Clearing, Web3Token
from settlement.queries import SqlReadModel
from simulator.keys import rider_key
from smartzone.broker import amqtt_broker
from smartzone.broker_access import Role, generate, url_for
from smartzone.parts import (
    build_aggregator,
    fund_simulated_riders,
    make_fleet,
    open_database,
    register_fleet,
    run_simulator,
)
from smartzone.settings import Settings
from tests.e2e.pipeline_checks import check_settled_run, wait_until


def test_a_seeded_run_on_embedded_defaults_settles_every_trip_once(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        vehicles=20,
        sim_minutes=30,
        speed=600,
        seed=7,
        riders=8,
        rider_deposit_micro=20_000_000,
        epoch_seconds=1.0,
        aggregator_id="e2e-embedded",
    )
    access = generate(settings.topic_root, [settings.operator])
    with amqtt_broker(access=access) as broker:
        database = open_database(settings, migrate=True)
        aggregator_url = url_for(access.find(Role.AGGREGATOR), broker.url)
        part = build_aggregator(settings, database, mqtt_url=aggregator_url, protocol=broker.protocol)
        fleet = make_fleet(settings, part.chain_id)
        assert register_fleet(database, fleet) == (20, 0)
        part.aggregator.refresh_registry(force=True)
        assert fund_simulated_riders(settings, part) == 8  # the embedded chain's token has a faucet
        assert fund_simulated_riders(settings, part) == 0  # funded once
        stop = threading.Event()
        aggregator = threading.Thread(target=part.run, args=(stop,))
        aggregator.start()
        try:
            summary = run_simulator(
                settings,
                fleet,
                mqtt_url=url_for(access.find(Role.GATEWAY, settings.operator), broker.url),
                protocol=broker.protocol,
                stop=threading.Event(),
                start_ms=1_795_000_000_000,
            )
            events = summary.published[Channel.EVENT]
            wait_until(lambda: SqlReadModel(database).stats().events == events, 60, f"{events} events stored")
        finally:
            stop.set()
            aggregator.join(timeout=60)
        assert not aggregator.is_alive()
    assert summary.completed_trips >= 20
    clearing = part.aggregator.clearing
    token = part.aggregator.token
    assert isinstance(clearing, Web3Clearing) and isinstance(token, Web3Token)
    assert token.address == clearing.token_address()
    figures = check_settled_run(database, clearing, set(summary.trip_ids), token)
    riders = {address_of(rider_key(settings.seed, i)) for i in range(settings.riders)}
    assert sum(clearing.deposited(r) for r in riders) == clearing.totals().deposited_total == 8 * 20_000_000
    assert figures["epochs"] >= 2 and figures["gas_total"] > 0
    assert SqlReadModel(database).stats().rejected == 0
