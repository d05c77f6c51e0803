"""Wiring of each part from settings: adapters are built here and passed down, nowhere else."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sensors.codec import encode
from sensors.messages import FLEET_GATEWAY, VehicleState
from sensors.mqtt import MqttClient, Will
from sensors.ports import Received
from sensors.topics import Channel, shared, subscription, topic_for
from settlement.aggregator import Aggregator
from settlement.chain import Web3Chain
from settlement.queries import SqlReadModel
from settlement.store import Store
from simulator.fleet import Fleet, FleetConfig
from simulator.run import RunSummary, run_simulation
from smartzone.settings import Settings

log = logging.getLogger("smartzone")


def open_store(settings: Settings) -> Store:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Store.connect(settings.db_url())


def chain_label(settings: Settings) -> str:
    return settings.chain_url or "embedded py-evm (in memory)"


@dataclass
class AggregatorPart:
    """An aggregator wired to its broker, database and chain."""

    aggregator: Aggregator
    client: MqttClient
    inbox: queue.Queue[Received]
    contract: str

    def run(self, stop: threading.Event) -> None:
        try:
            self.aggregator.run(self.inbox, stop)
        finally:
            self.client.close()


def build_aggregator(settings: Settings, store: Store, *, mqtt_url: str, protocol: str) -> AggregatorPart:
    """Connect the chain and the broker and subscribe; nothing is processed until ``run``."""
    chain = Web3Chain.connect(settings.chain_url, settings.private_key())
    aggregator = Aggregator(
        store, chain, epoch_seconds=settings.epoch_seconds, epoch_max_trips=settings.epoch_max_trips
    )
    contract = aggregator.attach_contract(settings.contract_address)
    inbox: queue.Queue[Received] = queue.Queue()
    client = MqttClient(mqtt_url, f"smartzone-{settings.aggregator_id}", protocol=protocol, persistent_session=True)
    root = settings.topic_root
    load = [subscription(Channel.TELEMETRY, root), subscription(Channel.EVENT, root)]
    if protocol == "5" or (protocol == "auto" and client.probe_protocol() == "5"):
        load = [shared(f) for f in load]  # several aggregators share the load
    # Retained states are not delivered to shared subscriptions: every aggregator takes them all.
    filters = [(f, 1) for f in load] + [(subscription(Channel.STATE, root), 1)]
    client.subscribe(filters, inbox.put)
    client.connect()
    log.info("aggregator subscribed to %s", ", ".join(f for f, _ in filters))
    return AggregatorPart(aggregator, client, inbox, contract)


def run_simulator(
    settings: Settings,
    *,
    mqtt_url: str,
    protocol: str,
    stop: threading.Event,
    progress: Callable[[float, float], None] | None = None,
    start_ms: int | None = None,
) -> RunSummary:
    """Run the seeded fleet against the broker until its simulated time is up or ``stop`` is set."""
    fleet = Fleet(FleetConfig(vehicles=settings.vehicles, operator=settings.operator, seed=settings.seed))
    start = start_ms if start_ms is not None else int(time.time()) * 1000
    will_state = VehicleState(FLEET_GATEWAY, settings.operator, start, online=False)
    will = Will(topic_for(settings.operator, FLEET_GATEWAY, Channel.STATE, settings.topic_root), encode(will_state))
    client = MqttClient(mqtt_url, f"smartzone-sim-{settings.operator}", protocol=protocol, will=will).connect()
    minutes = settings.sim_minutes or 60 * 24 * 365
    try:
        return run_simulation(
            fleet,
            client,
            start_ms=start,
            duration_s=minutes * 60,
            speed=settings.speed,
            root=settings.topic_root,
            stop=stop,
            progress=progress,
        )
    finally:
        client.close()


def read_model(store: Store) -> SqlReadModel:
    return SqlReadModel(store)
