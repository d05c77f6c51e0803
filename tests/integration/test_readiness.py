"""Readiness against a real database: a database that goes away, and settlement that is stuck."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.health import database_check, settlement_lag_check
from settlement.db import Database
from settlement.queries import SqlReadModel
from settlement.readiness import backlog
from settlement.sql import SqlUnitOfWork
from tests.integration.test_read_model import priced, settle
from tests.unit.test_dashboard_edges import Clock

PASSWORD = "pr0xy-secret"


class Proxy:
    """A TCP relay to PostgreSQL that can be cut: the database "goes away" for whoever connects through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.flowing = threading.Event()
        self.flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def freeze(self) -> None:
        """Keep the connections open but relay nothing: a database that stops answering."""
        self.flowing.clear()

    def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        for s in [self.listener, *self.sockets]:  # a shutdown also wakes the thread blocked in accept
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.flowing.set()


@pytest.mark.services
def test_a_database_that_goes_away_makes_readyz_503_naming_it_without_its_password(postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    with Database.open(postgres_url) as setup:
        setup.upgrade()
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(password=PASSWORD, port=proxy.port).render_as_string(hide_password=False)
    database = Database.open(relayed)  # trust auth: the password is carried, never checked
    try:
        app = create_app(SqlReadModel(database), readiness=[database_check(database)])
        app.state.readiness.cache_s = 0  # no cached answer from before the cut
        client = TestClient(app)
        up = client.get("/readyz")
        assert up.status_code == 200, up.text
        assert up.json()["checks"] == [{"name": "database", "ok": True, "detail": f"{database.url} answers"}]

        proxy.cut()
        down = client.get("/readyz")
        assert down.status_code == 503
        (check,) = down.json()["checks"]
        assert check["name"] == "database" and not check["ok"]
        assert f"cannot reach the database at {database.url}" in check["detail"]
        assert ":***@" in check["detail"] and PASSWORD not in down.text, check["detail"]
        assert client.get("/healthz").status_code == 200  # alive, not ready
        stats = client.get("/api/v1/stats")
        assert stats.status_code == 503 and PASSWORD not in stats.text
    finally:
        proxy.cut()
        database.close()


@pytest.mark.services
def test_a_database_that_stops_answering_makes_readyz_503_at_the_checks_deadline(postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    database = Database.open(url.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        app = create_app(SqlReadModel(database), readiness=[database_check(database)])
        app.state.readiness.cache_s, app.state.readiness.timeout_s = 0, 0.5
        client = TestClient(app)
        assert client.get("/readyz").status_code == 200
        proxy.freeze()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"][0]["detail"].startswith("no answer after")
        assert client.get("/readyz").json()["checks"][0]["detail"].startswith("no answer after")
    finally:
        proxy.cut()
        database.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'test.db'}"
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


def close_epoch_at(database: Database, epoch_id: int, closed_ms: int) -> None:
    with database.transaction() as conn:
        query = sa.text("UPDATE epochs SET closed_ms = :ms WHERE epoch_id = :id")
        conn.execute(query, {"ms": closed_ms, "id": epoch_id})


def test_an_epoch_closed_long_ago_and_never_committed_makes_readyz_503_with_the_lag(database: Database) -> None:
    trips = [priced(n) for n in range(6)]
    with SqlUnitOfWork(database) as uow:
        uow.trips.save(trips)
        uow.commit()
    settle(database, trips[:2], 1, commit=True)
    settle(database, trips[2:4], 2, commit=False)  # closed, never committed
    settle(database, trips[4:], 3, commit=False)
    now = time.time()
    close_epoch_at(database, 2, int((now - 1_000) * 1000))
    close_epoch_at(database, 3, int((now - 10) * 1000))
    assert backlog(database).oldest_epoch == (2, int((now - 1_000) * 1000))

    app = create_app(SqlReadModel(database), readiness=[settlement_lag_check(database, max_lag_s=300)])
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    (check,) = response.json()["checks"]
    assert check["name"] == "settlement" and not check["ok"]
    assert "4 trips wait for settlement" in check["detail"]
    # the check reads the wall clock a moment after the test set the time: a loaded machine may take a second more
    assert re.search(r"epoch 2 was closed 10\d\d s ago and is not on chain", check["detail"]), check["detail"]
    assert "over the limit of 300 s" in check["detail"]


def test_trips_priced_and_never_batched_fail_readiness_once_they_have_waited_past_the_limit(
    database: Database,
) -> None:
    trips = [priced(n) for n in range(3)]
    with SqlUnitOfWork(database) as uow:
        uow.trips.save(trips)
        uow.commit()
    clock = Clock()
    check = settlement_lag_check(database, max_lag_s=300, clock=clock)
    assert check.probe()[0]
    clock.now += 301  # the aggregator never batched them
    ok, detail = check.probe()
    oldest = min(trips, key=lambda t: (t.end.timestamp_ms, t.trip_id)).trip_id  # type: ignore[union-attr]
    assert not ok and f"the oldest ({oldest}) for at least 301 s" in detail


def test_settlement_that_keeps_up_is_ready(database: Database) -> None:
    trips = [priced(n) for n in range(4)]
    with SqlUnitOfWork(database) as uow:
        uow.trips.save(trips)
        uow.commit()
    settle(database, trips, 1, commit=True)
    app = create_app(SqlReadModel(database), readiness=[settlement_lag_check(database, 300), database_check(database)])
    response = TestClient(app).get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"][0]["detail"] == "0 trips wait for settlement; lag below the limit of 300 s"
