"""The worked example of docs/research.md: a small settlement database built the same way every time.

Five signed vehicles, eight trips and three readings on the morning of 30 November 2026, fed through the aggregator
(the same ``Aggregator.handle`` MQTT feeds) on a SQLite file and settled on the fake clearing contract with a 10%
fee: five trips in epoch 1, one rejected by the plausibility bounds, one still open, one priced after the epoch
closed. ``python -m tests.research_example example.db`` writes it; tests/integration/test_research_guide.py checks
the figures the guide prints from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sensors.messages import Event, EventType, Message, Position, Telemetry, VehicleKind
from sensors.signing import address_of
from settlement.aggregator import Aggregator
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.sql import SqlUnitOfWork
from tests.money import ZONE, fake_money, fund_fake
from tests.signed import OPERATOR, SignedFleet, rider_key

T0 = 1_796_022_000_000
"""2026-11-30T07:00:00Z."""
MINUTE = 60_000
FEE_BPS = 1_000
RIDERS = (address_of(rider_key(1)).checksum, address_of(rider_key(2)).checksum)

# junctions of the zone's streets (simulator/data/streets.geojson), as (lat, lon)
NATIONALE_KRONENBURG = Position(51.212071, 4.39724)
NATIONALE_LEPEL = Position(51.213238, 4.397774)
NATIONALE_PREKERS = Position(51.21386, 4.39806)
NATIONALE_AALMOEZENIER = Position(51.21452, 4.39839)
NATIONALE_SINT_ANDRIES = Position(51.2158, 4.39905)
KLOOSTER_SINT_MICHIEL = Position(51.21614, 4.39505)
KLOOSTER_MUNT = Position(51.217422, 4.396011)
KLOOSTER_SCHELDE = Position(51.21223, 4.39365)
PLANTIN_SINT_MICHIELS = Position(51.2164, 4.39375)

TRIPS = (
    # vehicle, unlock seq, rider, start (minutes after 07:00), minutes (None: no lock yet), metres, from, to
    ("bike-1", 1, 0, 50, 20, 2_400, NATIONALE_KRONENBURG, KLOOSTER_SINT_MICHIEL),
    ("bike-2", 1, 1, 65, 15, 1_800, NATIONALE_AALMOEZENIER, PLANTIN_SINT_MICHIELS),
    ("car-1", 1, 0, 90, 45, 9_000, NATIONALE_LEPEL, KLOOSTER_MUNT),
    ("ebike-1", 1, 1, 100, 18, 3_500, NATIONALE_PREKERS, KLOOSTER_SCHELDE),
    ("bike-1", 3, 1, 120, 12, 1_500, KLOOSTER_SINT_MICHIEL, NATIONALE_SINT_ANDRIES),
    ("bike-2", 3, 0, 150, 2, 5_000, PLANTIN_SINT_MICHIELS, NATIONALE_KRONENBURG),  # 150 km/h: rejected
    ("car-1", 6, 1, 160, None, 0, KLOOSTER_MUNT, KLOOSTER_MUNT),  # unlocked, not locked yet
)
PARKED_READINGS = (("car-1", 3, 140), ("car-1", 4, 145), ("car-1", 5, 150))
"""Telemetry of car-1 parked after its first trip: vehicle, seq, minutes after 07:00."""
LATE_TRIP = ("ebike-1", 3, 0, 170, 15, 2_000, KLOOSTER_SCHELDE, NATIONALE_LEPEL)
"""Priced after epoch 1 closed (at 09:45): waits for the next epoch."""
SETTLED_AT_MIN = 165


def example_fleet() -> SignedFleet:
    return SignedFleet(
        vehicles={
            "bike-1": VehicleKind.BIKE,
            "bike-2": VehicleKind.BIKE,
            "ebike-1": VehicleKind.EBIKE,
            "car-1": VehicleKind.CAR,
            "scooter-1": VehicleKind.SCOOTER,
        }
    )


def build(url: str) -> Database:
    """The example in the (empty) database at ``url``, migrated; returns it open."""
    database = Database.open(url)
    database.upgrade()
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    fleet = example_fleet()
    trust_operator(uow, OPERATOR, fleet.operator_address, T0)
    enrol(uow, fleet.registrations(), fleet.domain, T0)
    chain, money = fake_money(FEE_BPS, ZONE)
    clock = [T0 / 1000]
    aggregator = Aggregator(uow, chain, money=money, epoch_seconds=10**9, clock=lambda: clock[0])
    aggregator.attach_contract()
    fund_fake(chain, RIDERS)
    messages: list[Message] = [m for trip in TRIPS for m in _events(fleet, *trip)]
    for vehicle, seq, minute in PARKED_READINGS:
        kind = fleet.vehicles[vehicle]
        messages.append(Telemetry(vehicle, OPERATOR, kind, seq, T0 + minute * MINUTE, KLOOSTER_MUNT, 0.0, 19_000))
    for message in sorted(messages, key=lambda m: m.timestamp):  # as they would arrive: one at a time, in time
        clock[0] = message.timestamp / 1000
        aggregator.handle([fleet.received(message)])
    clock[0] = (T0 + SETTLED_AT_MIN * MINUTE) / 1000
    aggregator.settle_due(force=True)
    aggregator.handle([fleet.received(m) for m in _events(fleet, *LATE_TRIP)])
    return database


def _events(
    fleet: SignedFleet,
    vehicle: str,
    seq: int,
    rider: int,
    start_min: int,
    minutes: int | None,
    metres: int,
    origin: Position,
    destination: Position,
) -> list[Event]:
    start, odometer = T0 + start_min * MINUTE, 10_000 * seq
    unlock = fleet.event(vehicle, seq, EventType.UNLOCK, start, odometer, rider=RIDERS[rider], position=origin)
    if minutes is None:
        return [unlock]
    end = start + minutes * MINUTE
    lock = fleet.event(
        vehicle,
        seq + 1,
        EventType.LOCK,
        end,
        odometer + metres,
        trip_seq=seq,
        rider=RIDERS[rider],
        position=destination,
    )
    return [unlock, lock]


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        sys.exit("usage: python -m tests.research_example NEW.db (a file that does not exist yet)")
    build(f"sqlite:///{Path(sys.argv[1]).resolve()}").close()
    print(f"wrote {sys.argv[1]}")
