"""``/api/v1/live`` from a real uvicorn server over SQLite: a reading stored as the aggregator stores it reaches a
connected client as a ``vehicles`` event, and its low battery as an ``alert``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from dashboard.app import create_app
from dashboard.auth import hash_password
from dashboard.changes import ChangeSource, Timing
from dashboard.config import DashboardConfig, Role, StaffUser
from dashboard.deps import wall_ms
from dashboard.hub import Hub
from dashboard.routes.live import LiveOptions
from sensors.messages import VehicleKind
from settlement.alerts import SqlAlertStore
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from settlement.vehicles import latest_updates
from tests.e2e.browsing import serving
from tests.signed import OPERATOR, SignedFleet

pytestmark = pytest.mark.services
VEHICLE = "scooter-0001"
PASSWORD = "olivia-secret"


def store_reading(database: Database, fleet: SignedFleet, seq: int, battery_pct: float) -> None:
    """Store a reading and the vehicle's new row, stamped with the wall clock, as the aggregator does."""
    reading = replace(fleet.telemetry(VEHICLE, seq, wall_ms()), battery_pct=battery_pct)
    with SqlUnitOfWork(database) as work:
        work.readings.add_telemetry([reading])
        work.readings.update_vehicles(latest_updates([reading], received_ms=wall_ms()))
        work.commit()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Database, SignedFleet, ChangeSource, Hub]]:
    database = Database.open(f"sqlite:///{tmp_path / 'live.db'}")
    database.upgrade()
    fleet = SignedFleet(vehicles={VEHICLE: VehicleKind.SCOOTER})
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, wall_ms())
    enrol(uow, fleet.registrations(), fleet.domain, wall_ms())
    store_reading(database, fleet, 1, 80.0)
    options = LiveOptions(timing=Timing(poll_s=0.05, sweep_s=0.2))
    olivia = StaffUser("olivia", Role.OPERATOR, hash_password(PASSWORD, n=2**8))  # a cheap hash: a quick test
    app = create_app(
        SqlReadModel(database),
        DashboardConfig(session_secret="s" * 32, users=(olivia,)),
        alert_store=SqlAlertStore(database),
        live_options=options,
    )
    with serving(app) as url:
        yield url, database, fleet, app.state.changes, app.state.hub


def events(lines: Iterator[str]) -> Iterator[tuple[str, object]]:
    """(event name, data) of a text/event-stream, one event at a time."""
    name, data = "message", ""
    for line in lines:
        if line == "":
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]


@contextlib.contextmanager
def signed_in(base: str) -> Iterator[httpx.Client]:
    """A client signed in as the operator through the login form (its session cookie kept)."""
    with httpx.Client(base_url=base, timeout=20) as http:
        login = http.post("/login", data={"name": "olivia", "password": PASSWORD})
        assert login.status_code == 303 and login.headers["location"] == "/fleet"
        yield http


def test_the_stream_refuses_a_visitor_who_has_not_signed_in(
    served: tuple[str, Database, SignedFleet, ChangeSource, Hub],
) -> None:
    with httpx.Client(base_url=served[0], timeout=20) as http:
        response = http.get("/api/v1/live")
        wrong = http.post("/login", data={"name": "olivia", "password": "guessed"})
        after = http.get("/api/v1/live")
    assert response.status_code == after.status_code == 401
    assert wrong.status_code != 303 and "text/event-stream" not in after.headers["content-type"]


def test_a_stored_reading_reaches_a_connected_client_with_its_alert(
    served: tuple[str, Database, SignedFleet, ChangeSource, Hub],
) -> None:
    base, database, fleet, changes, _ = served
    seen: dict[str, object] = {}
    with signed_in(base) as http, http.stream("GET", "/api/v1/live") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response.iter_lines())
        assert next(stream)[0] == "clock"
        deadline = time.monotonic() + 20
        while changes.polls < 1 and time.monotonic() < deadline:  # its baseline taken, the reading is a change
            time.sleep(0.02)
        store_reading(database, fleet, 2, 9.5)
        for name, data in stream:
            if name == "vehicles":
                rows = {r[0]: r for r in data["rows"]}  # type: ignore[index]
                if VEHICLE in rows and rows[VEHICLE][2] == "low_battery":
                    seen["row"] = rows[VEHICLE]
            if name == "alert" and data["kind"] == "battery_low":  # type: ignore[index]
                seen["alert"] = data
            if len(seen) == 2:
                break
        snapshot = http.get("/api/v1/fleet").json()
    assert seen["row"][3] == 9.5  # type: ignore[index]
    assert seen["alert"]["vehicle_id"] == VEHICLE  # type: ignore[index]
    assert seen["alert"]["detail"] == "9.5"  # type: ignore[index]
    assert [r[2] for r in snapshot["rows"] if r[0] == VEHICLE] == ["low_battery"]


def test_a_closing_server_ends_the_open_streams_so_that_it_can_stop(
    served: tuple[str, Database, SignedFleet, ChangeSource, Hub],
) -> None:
    base, _, _, _, hub = served
    with signed_in(base) as http, http.stream("GET", "/api/v1/live") as response:
        stream = events(response.iter_lines())
        assert next(stream)[0] == "clock"
        hub.close()  # what the server's exit handler calls (smartzone wires it)
        *_, last = stream  # the stream ends instead of holding the server's graceful shutdown
    assert last == ("status", {"ok": False, "reason": "closing"})
