"""Checks that a finished end-to-end run holds together: database, chain and dashboard agree."""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import Principal, Role
from dashboard.routes.api import MAX_LIMIT
from sensors.address import Address
from settlement.clearing import ClearingPort
from settlement.db import Database
from settlement.lifecycle import ON_CHAIN_EPOCH, SETTLED
from settlement.ports import TokenPort
from settlement.queries import SqlReadModel


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def check_settled_run(
    database: Database, chain: ClearingPort, expected_trip_ids: set[str], token: TokenPort | None = None
) -> dict[str, int]:
    """Assert the run's invariants (the money ones with ``check_money``); return its figures."""
    read = SqlReadModel(database)
    trips = read.trips(limit=100_000)
    trip_ids = [t.trip_id for t in trips]
    assert len(trip_ids) == len(set(trip_ids)), "a trip is stored twice"
    assert set(trip_ids) == expected_trip_ids, "stored trips differ from the trips the fleet completed"
    assert all(t.status in SETTLED and t.epoch_id is not None for t in trips), "a trip is not settled"
    assert read.trips(limit=100_000, status="rejected") == [], "a trip of the honest fleet was rejected"
    epochs = read.epochs(limit=100_000)
    assert all(e.status in ON_CHAIN_EPOCH for e in epochs)
    assert sum(e.trip_count for e in epochs) == len(trips), "epochs do not hold each trip exactly once"
    for epoch in epochs:
        assert epoch.trip_count == sum(1 for t in trips if t.epoch_id == epoch.epoch_id)
        assert "0x" + chain.trips_root(epoch.epoch_id).hex() == epoch.trips_root
    fares = sum(t.fare_micro or 0 for t in trips)
    assert chain.last_epoch() == len(epochs)
    check_money(database, chain, fares, token)
    payouts = read.payout_totals()
    assert sum(payouts.values()) == fares - fees_of(database)
    check_dashboard(read, trips=len(trips), epochs=len(epochs), fares=fares - fees_of(database))
    return {
        "trips": len(trips),
        "epochs": len(epochs),
        "fares_micro": fares,
        "gas_total": sum(e.gas_used or 0 for e in epochs),
        "gas_max_epoch": max((e.gas_used or 0 for e in epochs), default=0),
        "gas_min_epoch": min((e.gas_used or 0 for e in epochs), default=0),
    }


def fees_of(database: Database) -> int:
    """The zone's fees over every batched trip."""
    with database.reading() as conn:
        return int(conn.execute(sa.text("SELECT coalesce(sum(fee), 0) FROM trips")).scalar_one())


def check_money(database: Database, chain: ClearingPort, fares: int, token: TokenPort | None = None) -> None:
    """On chain: the riders spent exactly the settled fares, owners and the zone earned exactly that, and (with the
    ``token``) the clearing contract holds the deposits less what was paid out."""
    totals = chain.totals()
    assert totals.spent_total == fares, "the clearing contract's spent total differs from the sum of settled fares"
    with database.reading() as conn:
        last = conn.execute(
            sa.text("SELECT spent_total, earned_total, balances_root FROM epochs ORDER BY epoch_id DESC LIMIT 1")
        ).one_or_none()
        book = conn.execute(sa.text(
            "SELECT coalesce(sum(b.earned), 0), coalesce(sum(b.spent), 0) FROM epoch_balances b WHERE b.epoch_id = "
            "(SELECT max(c.epoch_id) FROM epoch_balances c WHERE c.account = b.account)"
        )).one()  # fmt: skip
    if last is not None:
        assert last.spent_total == last.earned_total == fares, "earned differs from spent"
        assert "0x" + chain.balances_root(chain.last_epoch()).hex() == last.balances_root
    assert (int(book[0]), int(book[1])) == (fares, fares), "the stored balances do not add up to the fares"
    assert totals.spent_total + totals.withdrawn_total <= totals.deposited_total
    if token is not None and chain.address is not None:
        held = token.balance_of(Address.parse(chain.address))
        assert held == totals.deposited_total - totals.claimed_total - totals.withdrawn_total, "deposits not held"


def check_dashboard(read: SqlReadModel, *, trips: int, epochs: int, fares: int) -> None:
    app = create_app(read)
    visitor = TestClient(app)
    page = visitor.get("/")
    assert page.status_code == 200 and visitor.get("/api/v1/trips").status_code == 401  # the public page only
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "operator")
    client = TestClient(app)
    assert len(client.get("/api/v1/trips", params={"limit": 1000}).json()["items"]) == min(trips, 1000)
    assert len(client.get("/api/v1/epochs", params={"limit": 1000}).json()["items"]) == min(epochs, 1000)
    payouts = every_item(client, "/api/v1/payouts")
    assert sum(p["settled_micro"] for p in payouts) == fares
    assert all(p["pending_micro"] == 0 for p in payouts)
    stats = client.get("/api/v1/stats").json()
    assert stats["settled_micro"] == fares and stats["trips"] == trips
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
