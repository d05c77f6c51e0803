"""A vehicle's online flag in storage: its offline state is not undone by a reading made before it, on SQL and in
memory alike (a finite run ends with every vehicle offline, whatever order its last messages are stored in)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from sensors.messages import Telemetry, VehicleState
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.memory import MemoryState, MemoryUnitOfWork
from settlement.repositories import UnitOfWork
from settlement.sql import SqlUnitOfWork
from settlement.vehicles import latest_updates
from tests.signed import OPERATOR, SignedFleet

T0 = 1_790_000_000_000


@dataclass
class Store:
    uow: Callable[[], UnitOfWork]
    online: Callable[[str], bool]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        state = MemoryState()
        yield Store(lambda: MemoryUnitOfWork(state), lambda v: state.vehicles[v].online)
        return
    url = f"sqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database.open(str(url))
    database.upgrade()

    def online(vehicle: str) -> bool:
        with database.engine.connect() as conn:
            query = sa.text("SELECT online FROM vehicles WHERE vehicle_id = :v")
            return bool(conn.execute(query, {"v": vehicle}).scalar_one())

    yield Store(lambda: SqlUnitOfWork(database), online)
    database.close()


def stored(store: Store, *batches: Sequence[Telemetry | VehicleState]) -> bool:
    """Whether bike-1 is online after ``batches`` went through storage as the aggregator stores a batch."""
    fleet = SignedFleet()
    trust_operator(store.uow, OPERATOR, fleet.operator_address, T0)
    enrol(store.uow, fleet.registrations(), fleet.domain, T0)
    for batch in batches:
        with store.uow() as work:
            work.readings.apply_states([m for m in batch if isinstance(m, VehicleState)])
            work.readings.update_vehicles(latest_updates([m for m in batch if isinstance(m, Telemetry)]))
            work.commit()
    return store.online("bike-1")


FLEET = SignedFleet()


def test_a_reading_from_before_the_offline_state_in_the_same_batch_leaves_the_vehicle_offline(store: Store) -> None:
    batch = [
        FLEET.state("bike-1", T0),
        FLEET.telemetry("bike-1", 5, T0 + 60_000),
        FLEET.state("bike-1", T0 + 60_000, False),
    ]
    assert not stored(store, batch)


def test_a_reading_stored_after_the_offline_state_but_made_before_it_leaves_the_vehicle_offline(store: Store) -> None:
    assert not stored(store, [FLEET.state("bike-1", T0 + 60_000, False)], [FLEET.telemetry("bike-1", 5, T0 + 59_000)])


def test_a_reading_made_after_the_offline_state_brings_the_vehicle_back_online(store: Store) -> None:
    assert stored(store, [FLEET.state("bike-1", T0 + 60_000, False)], [FLEET.telemetry("bike-1", 5, T0 + 61_000)])
