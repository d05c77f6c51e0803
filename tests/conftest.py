"""Fixtures shared by every layer of tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """URL of a real Mosquitto (127.0.0.1:1883 unless SMARTZONE_TEST_MQTT_URL says otherwise)."""
    return services.mosquitto_url()


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """URL of a fresh schema in the real PostgreSQL, dropped after the test."""
    with services.postgres_schema() as url:
        yield url


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """URL of an anvil node started for this test session."""
    with services.anvil() as url:
        yield url
