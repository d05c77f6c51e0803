"""The research downloads and charts over a real SQLite database through ``settlement.analysis``."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.routes.research import AnalysisData
from settlement.db import Database
from settlement.schema import TripRow, table_of
from settlement.views import Stats

T0 = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC


class NoModel:
    def stats(self) -> Stats:
        return Stats(0, 0, 0, 0, 0, 0, 0, 0)


@pytest.fixture()
def database(tmp_path: Path) -> Database:
    store = Database.open(f"sqlite:///{tmp_path / 'research.db'}")
    store.upgrade()
    return store


def add_trips(database: Database, count: int) -> None:
    rows = [
        {"trip_id": f"trip-{i:03}", "vehicle_id": f"bike-{i % 3:04}", "unlock_seq": i, "operator": "op", "kind": "bike",
         "status": "priced", "start_ms": T0 + i * 300_000, "end_ms": T0 + i * 300_000 + 240_000,
         "fare_micro": 1_000_000 + i, "duration_s": 240}
        for i in range(count)
    ]  # fmt: skip
    with database.engine.begin() as conn:
        conn.execute(sa.insert(table_of(TripRow)), rows)


def client_over(database: Database, chunk_rows: int = 2) -> TestClient:
    app = create_app(NoModel(), DashboardConfig(session_secret="s" * 32), clock=lambda: T0)  # type: ignore[arg-type]
    app.state.research_data = AnalysisData(database, chunk_rows=chunk_rows)
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.RESEARCHER, "res")
    return TestClient(app)


def test_a_trips_export_is_read_in_chunks_and_written_as_one_parquet_file(database: Database) -> None:
    add_trips(database, 5)
    response = client_over(database).get("/api/v1/exports/trips.parquet")
    file = pq.ParquetFile(io.BytesIO(response.content))
    assert file.num_row_groups == 3  # 2 + 2 + 1 rows
    table = file.read().to_pandas()
    assert list(table["trip_id"]) == [f"trip-{i:03}" for i in range(5)]
    assert [int(x) for x in table["fare_micro"]] == [1_000_000 + i for i in range(5)]


def test_a_trips_window_selects_by_start_time(database: Database) -> None:
    add_trips(database, 5)
    since, until = T0 + 300_000, T0 + 3 * 300_000
    csv = client_over(database).get(f"/api/v1/exports/trips.csv?from_ms={since}&to_ms={until}").text
    lines = csv.strip().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["trip-001", "trip-002"]


def test_an_empty_database_exports_headers_and_draws_empty_charts(database: Database) -> None:
    client = client_over(database)
    assert client.get("/api/v1/exports/readings.csv").text.startswith("vehicle_id,seq,time")
    assert client.get("/api/v1/exports/trips.csv").text.startswith("trip_id,")
    for chart in ("trips-per-hour", "utilisation"):
        svg = client.get(f"/research/charts/{chart}.svg")
        assert svg.status_code == 200 and "no trips" in svg.text


def test_the_charts_count_the_trips_of_the_database(database: Database) -> None:
    add_trips(database, 5)
    client = client_over(database)
    trips = client.get("/research/charts/trips-per-hour.svg").text
    assert "priced" in trips and "11-18 12:00" in trips
    utilisation = client.get("/research/charts/utilisation.svg").text
    assert "Share of the fleet on a trip per hour" in utilisation and "no trips" not in utilisation
