"""Offline replay: a recording fed straight into the aggregator's pipeline (``Aggregator.handle``, the entry the MQTT
inbox feeds), without a broker, into a fresh database, settling on an in-memory clearing contract.

The chain is ``settlement.clearing.FakeClearing`` over a ``FakeToken`` (the contract's rules and revert reasons in
memory, one block per transaction): a what-if study needs the prices and the epochs, not an EVM, and runs at the
pipeline's own speed. Time is the recording's: the aggregator's clock is each message's arrival time, so trips
expire and epochs close as they did (or would have) live. Each rider deposits ``rider_deposit_micro`` (as
``smartzone up`` does for the simulated riders) when its first unlock arrives. The registry comes from signed
registrations (a fleet file), else from the header's scenario (the fleet ``smartzone simulate`` makes from its
seed, vehicles, operator, owners and riders); each operator is trusted with the key that signed its entries.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sensors.address import Address
from sensors.codec import decode
from sensors.errors import InvalidReading, SmartZoneError
from sensors.messages import Event, EventType, VehicleKind
from sensors.ports import Received
from sensors.registration import Registration
from sensors.signing import Domain, signer
from sensors.topics import Channel, subscription
from settlement.aggregator import MAINTAIN_S, Aggregator
from settlement.clearing import FakeClearing
from settlement.db import Database
from settlement.deposits import fund_from_faucet
from settlement.enrolment import enrol, trust_operator
from settlement.epochs import rider_account
from settlement.fares import DEFAULT_PLANS
from settlement.ports import FakeToken
from settlement.pricing import PricingPlan
from settlement.queries import SqlReadModel
from settlement.views import cursor_after
from simulator.recording import RecordingHeader, read_recording
from simulator.replay import topic_matches
from smartzone.parts import bounds_of, make_fleet, money_rules, unit_of_work
from smartzone.settings import Settings

log = logging.getLogger("smartzone")

OFFLINE_CHAIN_ID = 31337
"""The in-memory clearing contract's chain id (anvil's too): devices' signatures are checked under it by default."""
FAUCET_CAP = 10**12
"""The offline token's faucet: any deposit a setting allows."""
FLEET_KNOBS = ("seed", "vehicles", "operator", "owners", "riders")
"""The header's scenario keys the fleet (and so the registry) is rebuilt from."""
Progress = Callable[[int, float], None]


@dataclass(frozen=True)
class TripOutcome:
    """How the pipeline left one trip: its status, metered fare (None if not priced), reason (if rejected) and
    owner."""

    status: str
    fare_micro: int | None
    reason: str | None
    owner: str | None = None


@dataclass(frozen=True)
class OfflineResult:
    """What one offline run made of a recording.

    ``revenue_micro`` sums the metered fares of the trips priced (per owner in ``revenue_by_owner``);
    ``settled_micro`` is what the epochs charged riders (under consent: at most what each signed for).
    ``damage``: where a damaged recording stopped the run (None: read whole); ``skipped``: messages on topics no
    aggregator subscribes to (a publisher's fence marker), left out as the live aggregator never sees them.
    """

    label: str
    consent: bool
    messages: int
    stored: int
    duplicates: int
    rejected: dict[str, int]
    trips_priced: int
    trips_rejected: dict[str, int]
    revenue_micro: int
    revenue_by_owner: dict[str, int]
    settled_micro: int
    epochs: int
    signing_chain_id: int
    damage: str | None = None
    skipped: int = 0
    trips: dict[str, TripOutcome] = field(default_factory=dict, repr=False)


def replay_offline(
    recording: Path,
    database_url: str,
    *,
    settings: Settings,
    plans: Mapping[VehicleKind, PricingPlan] | None = None,
    progress: Progress | None = None,
    registrations: Sequence[Registration] | None = None,
    require_consent: bool | None = None,
    signing_chain_id: int | None = None,
    label: str = "recorded tariffs",
) -> OfflineResult:
    """Run the recording through a fresh aggregator into ``database_url`` (which must hold no deployment yet).

    ``plans``: the pricing plans per vehicle kind (default: ``DEFAULT_PLANS``, the ones the simulated riders
    consent to). ``require_consent`` (default: only when ``plans`` is None) prices trips under their riders'
    consents; without, at the metered fare: a consent names the tariff it was signed for, so under other plans
    only the metered fare is an honest figure. ``signing_chain_id``: the chain id devices signed under (default:
    ``settings.chain_id``, else the scenario's ``chain_id``, else 31337). ``progress(messages, fraction of the
    file)`` is called about every second.
    """
    header, records = read_recording(recording)
    scenario = header.scenario or {}
    chain_id = signing_chain_id or settings.chain_id or _int(scenario.get("chain_id")) or OFFLINE_CHAIN_ID
    consent = plans is None if require_consent is None else require_consent
    database = _fresh(database_url)
    try:
        regs = list(registrations) if registrations is not None else _fleet_registrations(header, settings, chain_id)
        _register(database, regs, Domain(chain_id))
        clock = [header.started_ms / 1000]
        token = FakeToken()
        token.deploy(faucet_cap=FAUCET_CAP)
        clearing = FakeClearing(token)
        aggregator = Aggregator(
            unit_of_work(database),
            clearing,
            token=token,
            money=replace(money_rules(settings), token_address=token.address, faucet_cap=0),
            epoch_seconds=settings.epoch_seconds,
            epoch_max_trips=settings.epoch_max_trips,
            tariffs=plans if plans is not None else DEFAULT_PLANS,
            bounds=bounds_of(settings),
            sign_telemetry=settings.sign_telemetry,
            require_consent=consent,
            signing_chain_id=chain_id,
            clock=lambda: clock[0],
        )
        aggregator.attach_contract()
        every_ms = int(max(MAINTAIN_S, settings.epoch_seconds) * 1000)
        feed = _Feed(aggregator, clearing, settings.rider_deposit_micro, settings.ingest_batch, clock, every_ms)
        last_report = time.monotonic()
        wanted = [subscription(channel, header.topic_root) for channel in Channel]
        skipped = 0
        for item in records:
            if not any(topic_matches(f, item.topic) for f in wanted):
                skipped += 1  # no aggregator subscribes to it (e.g. a publisher's fence marker)
                continue
            received = Received(item.topic, item.payload, item.at_ms / 1000, qos=item.qos, retain=item.retain)
            feed.add(item.at_ms, received)
            if progress is not None and time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                progress(feed.messages, records.fraction)
        feed.finish()
        if progress is not None:
            progress(feed.messages, 1.0)
        result = _result(database, aggregator, label, consent, feed.messages, chain_id, records.stopped)
        return replace(result, skipped=skipped)
    finally:
        records.close()
        database.close()


class _Feed:
    """Batches in arrival order, cut where maintenance (expiry, epochs) is due: every ``every_ms`` of recorded time.

    Live, an aggregator looks every ``MAINTAIN_S`` whether an epoch is due (every ``epoch_seconds``); offline it
    looks once per epoch period, so that batches are large. Expiring an open trip later changes no outcome (its
    late half revives it); an epoch closes at most one look later than it would live.
    """

    def __init__(
        self,
        aggregator: Aggregator,
        clearing: FakeClearing,
        deposit: int,
        batch: int,
        clock: list[float],
        every_ms: int,
    ) -> None:
        self.aggregator, self.clearing, self.deposit, self.batch_size, self.clock = (
            aggregator, clearing, deposit, batch, clock
        )  # fmt: skip
        self.every_ms = every_ms
        self.batch: list[Received] = []
        self.funded: set[Address] = set()
        self.messages = 0
        self.next_maintain_ms: int | None = None

    def add(self, at_ms: int, item: Received) -> None:
        if self.next_maintain_ms is None:
            self.next_maintain_ms = at_ms + self.every_ms
        if at_ms >= self.next_maintain_ms:
            self.handle()
            self.clock[0] = max(self.clock[0], at_ms / 1000)
            self.maintain(force=False)
            self.next_maintain_ms = at_ms + self.every_ms
        self.clock[0] = max(self.clock[0], at_ms / 1000)
        if item.topic.endswith("/event"):
            self._fund_rider(item)
        self.batch.append(item)
        self.messages += 1
        if len(self.batch) >= self.batch_size:
            self.handle()

    def handle(self) -> None:
        if self.batch:
            self.aggregator.handle(self.batch)
            self.batch = []

    def maintain(self, force: bool) -> None:
        self.aggregator.expire_open()
        self.aggregator.settle_due(force=force)

    def finish(self) -> None:
        self.handle()
        self.maintain(force=True)
        self.clearing.mine()  # the last epoch's confirmation
        self.aggregator.settle_due(force=True)

    def _fund_rider(self, item: Received) -> None:
        """The rider of an unlock deposits (once), as a funded rider would have before riding."""
        try:
            event = decode(item.topic, item.payload)
        except InvalidReading:
            return  # the aggregator dead-letters it
        if not isinstance(event, Event) or event.event_type is not EventType.UNLOCK:
            return
        account = rider_account(event.rider)
        if account is None or account in self.funded:
            return
        self.funded.add(account)
        token = self.clearing.token.as_account(account)
        fund_from_faucet(self.clearing.as_account(account), token, self.deposit)


def _int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _fresh(url: str) -> Database:
    database = Database.open(url)
    database.upgrade()
    with unit_of_work(database)() as uow:
        held = uow.registry.any_deployment()
    if held is not None:
        database.close()
        raise SmartZoneError(f"{database.url} already settled on a chain: offline replay needs a fresh database")
    return database


def _fleet_registrations(header: RecordingHeader, settings: Settings, chain_id: int) -> list[Registration]:
    """The registrations of the fleet the header's scenario names (its seed at least)."""
    from smartzone.parts import fleet_registrations

    scenario = header.scenario or {}
    knobs = {k: scenario[k] for k in FLEET_KNOBS if k in scenario}
    if "seed" not in knobs:
        raise SmartZoneError(
            "the recording's header names no scenario seed to rebuild the fleet's registry from: pass the fleet's "
            "signed registrations with --registrations FILE (`smartzone simulate --registrations FILE` writes them)"
        )
    fleet = make_fleet(settings.model_copy(update=knobs), chain_id, first_seq=1)
    return fleet_registrations(fleet)


def _register(database: Database, registrations: Sequence[Registration], domain: Domain) -> None:
    """Trust each operator with the key that signed its first entry, then enrol every entry."""
    uow = unit_of_work(database)
    now_ms = int(time.time() * 1000)
    trusted: set[str] = set()
    for reg in registrations:
        if reg.operator not in trusted:
            try:
                key = signer(reg, domain)
            except InvalidReading as exc:
                raise SmartZoneError(f"registration of {reg.vehicle_id}: {exc.reason}") from None
            trust_operator(uow, reg.operator, key, now_ms)
            trusted.add(reg.operator)
    enrol(uow, registrations, domain, now_ms)


def _result(
    database: Database,
    aggregator: Aggregator,
    label: str,
    consent: bool,
    messages: int,
    chain_id: int,
    damage: str | None,
) -> OfflineResult:
    read = SqlReadModel(database, chain_id)
    trips = trip_outcomes(read)
    by_owner: Counter[str] = Counter()
    for outcome in trips.values():
        if outcome.status != "rejected" and outcome.fare_micro is not None:
            by_owner[outcome.owner or "(none)"] += outcome.fare_micro
    stats = read.stats()
    c = aggregator.counters
    return OfflineResult(
        label=label,
        consent=consent,
        messages=messages,
        stored=c.stored,
        duplicates=c.duplicates,
        rejected=dict(sorted(read.rejects_by_code().items())),
        trips_priced=sum(1 for t in trips.values() if t.status != "rejected"),
        trips_rejected=dict(sorted(read.rejected_trips_by_reason().items())),
        revenue_micro=sum(by_owner.values()),
        revenue_by_owner=dict(sorted(by_owner.items())),
        settled_micro=stats.settled_micro,
        epochs=stats.epochs,
        signing_chain_id=chain_id,
        damage=damage,
        trips=trips,
    )


def trip_outcomes(read: SqlReadModel) -> dict[str, TripOutcome]:
    """Every trip priced or rejected in a database, by trip id (open and complete ones are left out)."""
    trips: dict[str, TripOutcome] = {}
    for status in (None, "rejected"):  # None: every status from priced on
        cursor = None
        while True:
            page = read.trips(limit=1000, status=status, cursor=cursor)
            for t in page:
                trips[t.trip_id] = TripOutcome(t.status, t.fare_micro, t.reason, t.owner)
            if len(page) < 1000:
                break
            cursor = cursor_after(page[-1])
    return trips
