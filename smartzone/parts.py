"""Wiring of each part from settings: adapters are built here and passed down, nowhere else."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sensors.codec import encode
from sensors.errors import SmartZoneError
from sensors.messages import VehicleKind
from sensors.mqtt import MqttClient, Will
from sensors.ports import Received
from sensors.redaction import redact_url
from sensors.registration import Registration
from sensors.topics import Channel, fence_topic, shared, subscription, topic_for
from settlement.bounds import DEFAULT_BOUNDS, Bounds
from settlement.db import Database
from settlement.enrolment import enrol, signing_domain, trust_operator
from settlement.sql import SqlUnitOfWork
from simulator.app import Metering
from simulator.faults import FaultyPublisher, fault_rng
from simulator.fleet import Fleet, FleetConfig
from simulator.run import RunSummary, run_simulation
from simulator.scenario import Scenario, ScenarioError
from smartzone.settings import Settings

if TYPE_CHECKING:  # the simulator's start-up need not import the aggregator or the read side
    from settlement.aggregator import Aggregator, MoneyRules
    from settlement.pricing import PricingPlan
    from settlement.queries import SqlReadModel

log = logging.getLogger("smartzone")

REDELIVER_UNMATCHED_S = 60.0
"""How long the simulator publishes again an event or state routed to no subscriber: a restarted broker may route
to nobody until the aggregators have reconnected (paho retries at most every 30 s)."""
DEMO_FAUCET_CAP = 1_000_000_000
"""The most a demo token's faucet mints per call: 1,000 EUR."""
REGISTERED_FROM_MS = 0
"""Where the simulated fleet's registrations start: always, so that a second run finds them already held."""


def open_database(settings: Settings, *, migrate: bool = False) -> Database:
    """The settlement database, migrated to the head revision (``migrate``) or required to be at it."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database.open(settings.db_url())
    try:
        if migrate:
            before, after = database.upgrade()
            if before != after:
                log.info("migrated %s from schema revision %s to %s", database.url, before or "(none)", after)
        else:
            database.check_revision()
    except BaseException:
        database.close()  # refused: no pooled connection left open behind the error
        raise
    return database


def unit_of_work(database: Database) -> Callable[[], SqlUnitOfWork]:
    """A factory of units of work on ``database``."""
    return lambda: SqlUnitOfWork(database)


def chain_label(settings: Settings) -> str:
    """The chain as a person may see it: its URL without credentials."""
    return redact_url(settings.chain_url) if settings.chain_url else "embedded py-evm (in memory)"


def bounds_of(settings: Settings) -> Bounds:
    """The plausibility bounds: the defaults with the settings' overrides."""
    if not settings.bounds:
        return DEFAULT_BOUNDS
    return Bounds.from_mapping(settings.bounds)


@dataclass
class AggregatorPart:
    """An aggregator wired to its broker, database and chain."""

    aggregator: Aggregator
    client: MqttClient
    inbox: queue.Queue[Received]
    contract: str
    chain_id: int
    batch: int = 2000
    wait_s: float = 0.2
    shared: tuple[str, ...] = ()  # the filters this aggregator shares with its group

    def run(self, stop: threading.Event) -> None:
        """Aggregate until ``stop``; then leave the group before settling what is left.

        On ``stop`` it first unsubscribes from the shared filters (the broker stops giving it a share at once,
        rather than queueing one for its session until the session expires: lost to the group), then handles and
        acknowledges what it already received, then settles, then disconnects.
        """
        drained = threading.Event()
        leaving = threading.Thread(target=self._leave, args=(stop, drained), name="aggregator-leave", daemon=True)
        leaving.start()
        try:
            self.aggregator.run(self.inbox, drained, batch_size=self.batch, wait_seconds=self.wait_s)
        finally:
            drained.set()
            self.client.close()

    def _leave(self, stop: threading.Event, drained: threading.Event) -> None:
        while not stop.wait(0.5):
            if drained.is_set():  # the run ended on its own
                return
        try:
            if self.shared:
                self.client.unsubscribe(list(self.shared))
        except SmartZoneError as exc:  # the broker is away: its session keeps our share until it expires
            log.warning("could not leave the shared subscription group: %s", exc)
        finally:
            drained.set()


def build_aggregator(
    settings: Settings, database: Database, *, mqtt_url: str, protocol: str, ca_file: str | None = None
) -> AggregatorPart:
    """Connect the chain and the broker and subscribe; nothing is processed until ``run``.

    It returns once the broker has confirmed every subscription (SUBACK), so that a producer started afterwards
    publishes nothing this aggregator misses. Its session outlives a disconnection by
    ``mqtt_session_expiry_s``: a departed aggregator's share of the group goes back to the others after that.
    """
    from settlement.aggregator import Aggregator
    from settlement.chain import Web3Clearing, Web3Token  # web3 takes a second to import; only aggregators need it
    from settlement.sql.settler import settler_lock

    clearing = Web3Clearing.connect(settings.chain_url, settings.private_key())
    skew = None if settings.max_clock_skew_s is None else int(settings.max_clock_skew_s * 1000)
    aggregator = Aggregator(
        unit_of_work(database),
        clearing,
        token=Web3Token(clearing.sender),  # one sender: one nonce counter for the aggregator's account
        money=money_rules(settings),
        epoch_seconds=settings.epoch_seconds,
        epoch_max_trips=settings.epoch_max_trips,
        confirmations=settings.final_after(),
        settler=settler_lock(database),
        bounds=bounds_of(settings),
        sign_telemetry=settings.sign_telemetry,
        max_clock_skew_ms=skew,
        signing_chain_id=settings.chain_id,
        reject_sample_bytes=settings.reject_sample_bytes,
        reject_samples_max=settings.reject_samples_max,
        reject_sample_days=settings.reject_sample_days,
        reject_log_interval_s=settings.reject_log_interval_s,
    )
    contract = aggregator.attach_contract(settings.contract_address)
    inbox: queue.Queue[Received] = queue.Queue()
    client = MqttClient(
        mqtt_url,
        f"smartzone-{settings.aggregator_id}",
        protocol=protocol,
        persistent_session=True,
        session_expiry_s=settings.mqtt_session_expiry_s,
        ca_file=ca_file,
    )
    root = settings.topic_root
    load = [subscription(Channel.TELEMETRY, root)]
    if protocol == "5" or (protocol == "auto" and client.probe_protocol() == "5"):
        load = [shared(f) for f in load]  # several aggregators share the telemetry
    # Every aggregator takes every event and state, stored once by (vehicle, seq): an event queued for a member
    # that died is in the others' queues too (a shared share dies with its session), and retained states are
    # not delivered to shared subscriptions at all. Events are a few per trip; telemetry is the volume.
    whole = [subscription(c, root) for c in (Channel.EVENT, Channel.STATE, Channel.VOUCHER)]
    client.subscribe([(f, 1) for f in load], inbox.put)
    client.subscribe([(f, 1) for f in whole], inbox.put)
    client.connect()  # returns after the SUBACKs
    log.info("aggregator subscribed to %s", ", ".join([*load, *whole]))
    return AggregatorPart(
        aggregator,
        client,
        inbox,
        contract,
        aggregator.verifier.domain.chain_id,
        settings.ingest_batch,
        settings.ingest_wait_s,
        tuple(f for f in load if f.startswith("$share/")),
    )


def money_rules(settings: Settings) -> MoneyRules:
    """How the aggregator moves money, from the settings (``smartzone.money`` for the riders' side)."""
    from settlement.aggregator import MoneyRules

    return MoneyRules(
        fee_bps=settings.fee_bps,
        zone=settings.zone() if settings.zone_account or settings.demo else None,
        challenge_blocks=settings.challenge_blocks,
        withdraw_delay_blocks=settings.withdraw_delay_blocks,
        token_address=settings.token_address,
        faucet_cap=DEMO_FAUCET_CAP if settings.faucet() else 0,
    )


def make_fleet(
    settings: Settings, chain_id: int, first_seq: int | None = None, scenario: Scenario | None = None
) -> Fleet:
    """The seeded fleet, signing under ``chain_id``: the settings' fleet, or ``scenario``'s.

    Its vehicles number their messages from ``first_seq`` (default: the scenario's fixed start in ms, else now in
    ms), so that a second run of the same seed against the same database is not taken for a replay of the first;
    a scenario with a fixed start makes the same payloads every run (a second run is then all duplicates).
    """
    config = fleet_config(settings, chain_id, scenario)
    start_ms = scenario.start_ms if scenario is not None else None
    seq = first_seq if first_seq is not None else start_ms if start_ms is not None else int(time.time() * 1000)
    metering = rider_metering(scenario_plans(scenario))
    try:
        stations = scenario.fleet.station_positions if scenario is not None else None
        return Fleet(replace(config, first_seq=seq), metering=metering, stations=stations)
    except ValueError as exc:
        if scenario is None:
            raise
        raise ScenarioError(f"fleet: {exc}") from None


def fleet_config(settings: Settings, chain_id: int, scenario: Scenario | None = None) -> FleetConfig:
    """The fleet of ``scenario`` (its operator and signing from the settings), or of the settings alone."""
    operator, signed = settings.operator, settings.sign_telemetry
    if scenario is None:
        return FleetConfig(
            vehicles=settings.vehicles,
            operator=operator,
            seed=settings.seed,
            owners=settings.owners,
            riders=settings.riders,
            chain_id=chain_id,
            sign_telemetry=signed,
        )
    offset = (scenario.start or datetime.now().astimezone()).utcoffset()
    return FleetConfig(
        vehicles=scenario.fleet.vehicles,
        operator=operator,
        seed=scenario.seed,
        mix=scenario.fleet.mix,
        owners=scenario.fleet.owners,
        riders=scenario.demand.riders if scenario.demand is not None else settings.riders,
        chain_id=chain_id,
        sign_telemetry=signed,
        demand=scenario.demand,
        utc_offset_s=int(offset.total_seconds()) if offset is not None else 0,
        docked_share=scenario.fleet.docked_share,
        faults=scenario.faults,
    )


def scenario_plans(scenario: Scenario | None) -> dict[VehicleKind, PricingPlan]:
    """The pricing plan of each kind: the defaults, with the scenario's tariffs (GBFS plans) over them."""
    from settlement.fares import DEFAULT_PLANS
    from settlement.pricing import plan_from_gbfs

    plans = dict(DEFAULT_PLANS)
    for kind, data in (scenario.tariffs if scenario is not None else {}).items():
        try:
            plans[kind] = plan_from_gbfs(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise ScenarioError(f"tariffs.{kind.value}: {exc}") from None
    return plans


def rider_metering(plans: Mapping[VehicleKind, PricingPlan] | None = None) -> Metering:
    """How the simulated riders' app meters rides: under the plans the aggregator prices with (default: the
    default plans), so that the last voucher of a ride is its whole fare (up to the consent's cap)."""
    from settlement.fares import DEFAULT_PLANS
    from settlement.pricing import price

    table = DEFAULT_PLANS if plans is None else plans

    def fare_of(kind: VehicleKind, distance_m: int, duration_ms: int) -> int:
        return price(table[kind], max(distance_m, 0), -(-max(duration_ms, 0) // 1000)).total_micro

    return Metering(tariff_of=lambda kind: table[kind].plan_id, fare_of=fare_of)


def fleet_registrations(fleet: Fleet) -> list[Registration]:
    return fleet.registrations(REGISTERED_FROM_MS)


def register_fleet(database: Database, fleet: Fleet) -> tuple[int, int]:
    """Trust the fleet's operator key and add its signed registrations; (added, already held)."""
    uow = unit_of_work(database)
    now_ms = int(time.time() * 1000)
    trust_operator(uow, fleet.config.operator, fleet.operator_address, now_ms)
    return enrol(uow, fleet_registrations(fleet), fleet.domain, now_ms)


def fleet_chain_id(settings: Settings, database: Database | None) -> int:
    """The chain id the fleet signs under: the setting, else the one of the database's contract."""
    if settings.chain_id is not None:
        return settings.chain_id
    if database is None:
        raise SmartZoneError("without a database to register in, set SMARTZONE_CHAIN_ID (the settlement chain's id)")
    return signing_domain(unit_of_work(database), None).chain_id


def run_simulator(
    settings: Settings,
    fleet: Fleet,
    *,
    mqtt_url: str,
    protocol: str,
    stop: threading.Event,
    progress: Callable[[float, float], None] | None = None,
    start_ms: int | None = None,
    ca_file: str | None = None,
    scenario: Scenario | None = None,
) -> RunSummary:
    """Run the seeded fleet against the broker until its simulated time is up or ``stop`` is set.

    With ``scenario``, its start (if fixed), minutes, speed and faults on the wire replace the settings'. Each run
    connects under a client id of its own, so that two simulators share a broker.
    """
    fixed = scenario.start_ms if scenario is not None else None
    start = start_ms if start_ms is not None else fixed if fixed is not None else int(time.time()) * 1000
    minutes = (scenario.minutes if scenario is not None else settings.sim_minutes) or 60 * 24 * 365
    speed = scenario.speed if scenario is not None else settings.speed
    will_state = fleet.gateway_state(start, online=False)
    will = Will(
        topic_for(settings.operator, will_state.vehicle_id, Channel.STATE, settings.topic_root), encode(will_state)
    )
    client = MqttClient(
        mqtt_url,
        f"smartzone-sim-{settings.operator}-{secrets.token_hex(4)}",
        protocol=protocol,
        will=will,
        ca_file=ca_file,
        redeliver_unmatched_s=REDELIVER_UNMATCHED_S,
    ).connect()
    wire = None
    if scenario is not None and scenario.faults.on_the_wire:
        wire = FaultyPublisher(client, scenario.faults, fault_rng(scenario.seed, "wire"))
    try:
        summary = run_simulation(
            fleet,
            client if wire is None else wire,
            start_ms=start,
            duration_s=minutes * 60,
            speed=speed,
            root=settings.topic_root,
            stop=stop,
            progress=progress,
            flush_timeout_s=REDELIVER_UNMATCHED_S + 30,
        )
        faults = fleet.fault_counts + (wire.counts if wire is not None else Counter())
        return replace(summary, dropped_qos0=client.dropped_qos0, unmatched=client.unmatched, faults=dict(faults))
    finally:
        # amqtt (the embedded broker) acknowledges a QoS 1 message before it routes it and drops whatever is still
        # unrouted when the publisher disconnects: the end of a run waits until the broker has routed everything
        if client.connected and not client.fence(fence_topic(settings.operator, settings.topic_root)):
            log.warning("the broker did not confirm routing the end of the run within 30 s")
        client.close()


def read_model(database: Database, signing_chain_id: int | None = None) -> SqlReadModel:
    from settlement.queries import SqlReadModel

    return SqlReadModel(database, signing_chain_id)


def fund_simulated_riders(settings: Settings, part: AggregatorPart) -> int:
    """In demo mode (a token with a faucet), every simulated rider deposits ``rider_deposit_micro``; how many did."""
    from settlement.chain import Web3Clearing
    from smartzone.riders import fund_riders

    clearing = part.aggregator.clearing
    if not settings.faucet() or not isinstance(clearing, Web3Clearing):
        log.info("riders not funded: no demo faucet; each rider deposits with its own wallet")
        return 0
    funded = fund_riders(clearing, settings.seed, settings.riders, settings.rider_deposit_micro)
    log.info("%d simulated riders deposited %d micro-EUR each", funded, settings.rider_deposit_micro)
    return funded
