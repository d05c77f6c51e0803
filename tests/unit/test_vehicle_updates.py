"""Vehicle state from a batch of readings: one update per vehicle, from its newest reading, in vehicle order."""

from __future__ import annotations

from sensors.messages import Position, Telemetry, VehicleKind
from settlement.vehicles import latest_updates


def reading(vehicle: str, seq: int) -> Telemetry:
    return Telemetry(vehicle, "op", VehicleKind.BIKE, seq, 1_780_000_000_000 + seq, Position(51.2, 4.39), 1.0, 80)


def test_each_vehicle_gets_one_update_from_its_newest_reading_in_vehicle_order() -> None:
    batch = [
        reading("bike-9", 5),
        reading("bike-2", 7),
        reading("bike-9", 6),
        reading("bike-10", 1),
        reading("bike-2", 3),
    ]
    updates = latest_updates(batch)
    # every writer locks vehicle rows in this one order, so two aggregators wait for each other, never deadlock
    assert [(u.vehicle_id, u.seq) for u in updates] == [("bike-10", 1), ("bike-2", 7), ("bike-9", 6)]
