"""Checks that a finished end-to-end run holds together: database, chain and dashboard agree."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from dashboard import pages
from dashboard.api import MAX_LIMIT
from dashboard.app import create_app
from sensors.address import Address
from settlement.db import Database
from settlement.ports import Chain
from settlement.queries import SqlReadModel


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def check_settled_run(database: Database, chain: Chain, expected_trip_ids: set[str]) -> dict[str, int]:
    """Assert the run's invariants; return its figures."""
    read = SqlReadModel(database)
    trips = read.trips(limit=100_000)
    trip_ids = [t.trip_id for t in trips]
    assert len(trip_ids) == len(set(trip_ids)), "a trip is stored twice"
    assert set(trip_ids) == expected_trip_ids, "stored trips differ from the trips the fleet completed"
    assert all(t.status == "committed" and t.epoch_id is not None for t in trips), "a trip is not settled"
    assert read.trips(limit=100_000, status="rejected") == [], "a trip of the honest fleet was rejected"
    epochs = read.epochs(limit=100_000)
    assert all(e.status == "committed" for e in epochs)
    assert sum(e.trip_count for e in epochs) == len(trips), "epochs do not hold each trip exactly once"
    for epoch in epochs:
        assert epoch.trip_count == sum(1 for t in trips if t.epoch_id == epoch.epoch_id)
        on_chain = chain.epoch(epoch.epoch_id)
        assert (on_chain.trip_count, on_chain.total_micro) == (epoch.trip_count, epoch.total_micro)
        assert "0x" + on_chain.trips_root.hex() == epoch.trips_root
        assert "0x" + on_chain.registry_root.hex() == epoch.registry_root
    fares = sum(t.fare_micro or 0 for t in trips)
    assert chain.last_epoch() == len(epochs)
    assert chain.total_settled() == fares, "on-chain total differs from the sum of fares"
    payouts = read.payout_totals()
    assert sum(payouts.values()) == fares
    assert {owner: chain.owed(Address.parse(owner)) for owner in payouts} == payouts
    check_dashboard(read, trips=len(trips), epochs=len(epochs), fares=fares)
    return {
        "trips": len(trips),
        "epochs": len(epochs),
        "fares_micro": fares,
        "gas_total": sum(e.gas_used or 0 for e in epochs),
        "gas_max_epoch": max((e.gas_used or 0 for e in epochs), default=0),
        "gas_min_epoch": min((e.gas_used or 0 for e in epochs), default=0),
    }


def check_dashboard(read: SqlReadModel, *, trips: int, epochs: int, fares: int) -> None:
    client = TestClient(create_app(read))
    assert len(client.get("/api/v1/trips", params={"limit": 1000}).json()["items"]) == min(trips, 1000)
    assert len(client.get("/api/v1/epochs", params={"limit": 1000}).json()["items"]) == min(epochs, 1000)
    payouts = every_item(client, "/api/v1/payouts")
    assert sum(p["settled_micro"] for p in payouts) == fares
    assert all(p["pending_micro"] == 0 for p in payouts)
    stats = client.get("/api/v1/stats").json()
    assert stats["settled_micro"] == fares and stats["trips"] == trips
    page = client.get("/")
    assert page.status_code == 200
    assert all(v.vehicle_id in page.text for v in read.vehicles(limit=pages.PAGE_VEHICLES))
    assert len(every_item(client, "/api/v1/vehicles")) == len(read.vehicles(limit=MAX_LIMIT))


def every_item(client: TestClient, path: str) -> list[dict[str, object]]:
    """Every item of a list endpoint, following its cursors."""
    items: list[dict[str, object]] = []
    params: dict[str, object] = {"limit": 100}
    while True:
        body = client.get(path, params=params).json()
        items += body["items"]
        if body["next_cursor"] is None:
            return items
        params["cursor"] = body["next_cursor"]
