"""Fixtures of the chaos suite: one recorded fleet stream per session, a prepared scratch database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smartzone.broker_access import BrokerAccess, generate
from tests import services
from tests.chaos.harness import ANVIL_KEY
from tests.chaos.stream import ROOT, Stream, deploy_and_fund, prepare_database, record_stream

VEHICLES = 40
MINUTES = 12.0
SEED = 8


@pytest.fixture(scope="session")
def stream() -> Stream:
    """The seeded fleet's whole run (births, telemetry, events, offline states), recorded once."""
    return record_stream(VEHICLES, MINUTES, SEED)


@pytest.fixture()
def access(stream: Stream) -> BrokerAccess:
    """Fresh broker credentials: the aggregator role and the fleet operator's gateway."""
    return generate(ROOT, [stream.operator])


@pytest.fixture()
def mosquitto_binary() -> str:
    return services.mosquitto_binary()


@pytest.fixture()
def database_url(stream: Stream) -> Iterator[str]:
    """A fresh PostgreSQL schema, migrated, with the fleet's operator trusted and its vehicles registered."""
    with services.postgres_schema() as url:
        prepare_database(url, stream)
        yield url


@pytest.fixture(autouse=True)
def money(request: pytest.FixtureRequest, stream: Stream) -> None:
    """With a database and anvil: the contracts deployed and recorded, and every rider's deposit made."""
    if {"database_url", "anvil_url"} <= set(request.fixturenames):
        database_url, anvil_url = request.getfixturevalue("database_url"), request.getfixturevalue("anvil_url")
        deploy_and_fund(database_url, anvil_url, stream, ANVIL_KEY)
