"""The chaos suite's expectation: a seeded fleet's whole run, recorded before any experiment, and a database
prepared to receive it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sensors.codec import decode
from sensors.messages import Event

ROOT = "smartzone"
Message = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


@dataclass(frozen=True)
class Stream:
    """A seeded fleet's whole run, recorded before any experiment, and what it must become."""

    fleet: Any
    entries: list[Any]
    messages: list[Message]
    events: frozenset[tuple[str, int]]  # (vehicle, seq) of every event
    trips: frozenset[str]  # id of every trip the fleet completed
    telemetry: int
    position: dict[tuple[str, int], int]  # each event's place in ``messages``

    @property
    def operator(self) -> str:
        return str(self.fleet.config.operator)

    def per_qos(self) -> dict[str, int]:
        counts = Counter(qos for _, _, qos, _ in self.messages)
        return {f"qos{q}": n for q, n in sorted(counts.items())}


def record_stream(vehicles: int, minutes: float, seed: int) -> Stream:
    """Run the fleet into a recorder (as ``bench.ingest.traffic`` does) and list every event and trip."""
    from bench.ingest import registry_entries, traffic

    fleet, messages = traffic(vehicles, minutes, seed, sign_telemetry=False)
    position = {}
    for n, (topic, payload, *_) in enumerate(messages):
        if topic.endswith("/event"):
            event = decode(topic, payload)
            assert isinstance(event, Event)
            position[(event.vehicle_id, event.seq)] = n
    telemetry = sum(1 for t, *_ in messages if t.endswith("/telemetry"))
    trips = frozenset(trip.trip_id for trip in fleet.completed_trips)
    return Stream(fleet, registry_entries(fleet), messages, frozenset(position), trips, telemetry, position)


def prepare_database(url: str, stream: Stream) -> None:
    """Migrate ``url`` to the head revision, trust the fleet's operator and hold its registrations."""
    from settlement.db import Database
    from settlement.enrolment import trust_operator
    from smartzone.parts import unit_of_work

    database = Database.open(url)
    try:
        database.upgrade()
        uow = unit_of_work(database)
        trust_operator(uow, stream.operator, stream.fleet.operator_address, 0)
        with uow() as work:
            for entry in stream.entries:
                work.registry.add(entry, 0)
            work.commit()
    finally:
        database.close()


def deploy_and_fund(database_url: str, chain_url: str, stream: Stream, key: str, deposit: int = 50_000_000) -> str:
    """Deploy the euro token (with a demo faucet) and the clearing contract from ``key``'s account (the aggregators'
    own: the contract's owner commits), record it in the database, and let every rider of the stream's fleet
    deposit ``deposit``: before any aggregator starts, so that no trip meets a rider without money."""
    from settlement.chain import Web3Clearing, Web3Token
    from settlement.db import Database
    from smartzone.parts import unit_of_work
    from smartzone.riders import fund_riders

    clearing = Web3Clearing.connect(chain_url, key)
    token = Web3Token(clearing.sender)
    address = clearing.deploy(token.deploy(faucet_cap=10**9), 0, 100)
    database = Database.connect(database_url)
    try:
        with unit_of_work(database)() as uow:
            uow.registry.record_deployment(clearing.chain_id(), address, 0)
            uow.commit()
    finally:
        database.close()
    config = stream.fleet.config
    fund_riders(clearing, config.seed, config.riders, deposit)
    return address
