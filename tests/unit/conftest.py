"""Fixtures shared by the unit tests of the aggregator on fakes."""

from __future__ import annotations

import pytest

from settlement.memory import MemoryState
from tests.signed import SignedFleet


@pytest.fixture()
def state() -> MemoryState:
    """An empty in-memory store for the fake units of work."""
    return MemoryState()


@pytest.fixture()
def fleet() -> SignedFleet:
    """The signed test fleet (operator, registrations, device keys)."""
    return SignedFleet()
