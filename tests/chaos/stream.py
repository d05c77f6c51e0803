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
