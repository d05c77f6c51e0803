"""``/metrics``: Prometheus text that prometheus_client's own parser reads, with the read model's figures."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from dashboard.app import create_app
from dashboard.config import DashboardConfig
from dashboard.hub import Viewer
from dashboard.routes.live import LiveOptions
from tests.unit.test_changes_fakes import T0, Clock, Epoch, FakeReads, Trip, Vehicle


def scrape(reads: FakeReads, clients: int = 0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = create_app(
        reads,  # type: ignore[arg-type]
        DashboardConfig(session_secret="x" * 32),
        clock=Clock(T0 + 60_000),
        live_options=LiveOptions(enabled=False),
    )
    for _ in range(clients):
        app.state.hub.add(Viewer(staff=True))
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def fake() -> FakeReads:
    reads = FakeReads(reject_totals={"bad_signature": 4, "stale": 1})
    reads.put(Vehicle("s-1"), Vehicle("s-2", online=False), Vehicle("s-3", fault_code="E1"))
    reads.running = [Trip("t-1", "s-1", None)]
    reads.epoch_views = [
        Epoch(1, status="final", gas_used=80_000, settled_ms=T0),
        Epoch(2, status="committed", gas_used=81_000),
        Epoch(3, status="closed", closed_ms=T0),
        Epoch(4, status="closed", closed_ms=T0 + 30_000),
    ]
    return reads


def test_the_metrics_carry_ingest_rejects_trips_epochs_gas_lag_and_vehicles() -> None:
    samples = scrape(fake(), clients=2)
    assert samples[("smartzone_telemetry_received_total", ())] == 1000
    assert samples[("smartzone_events_received_total", ())] == 40
    assert samples[("smartzone_rejects_total", (("reason", "bad_signature"),))] == 4
    assert samples[("smartzone_rejects_total", (("reason", "stale"),))] == 1
    assert samples[("smartzone_trips_total", ())] == 12
    assert samples[("smartzone_trips_running", ())] == 1
    assert samples[("smartzone_epochs", (("status", "closed"),))] == 2
    assert samples[("smartzone_epochs", (("status", "final"),))] == 1
    assert samples[("smartzone_gas_used_total", ())] == 161_000
    assert samples[("smartzone_settlement_lag_seconds", ())] == 60.0  # the oldest closed epoch waits a minute
    assert samples[("smartzone_vehicles", (("status", "fault"),))] == 1
    assert samples[("smartzone_vehicles", (("status", "offline"),))] == 1
    assert samples[("smartzone_vehicles", (("status", "available"),))] == 1
    assert samples[("smartzone_live_clients", ())] == 2
    assert samples[("smartzone_live_poll_errors_total", ())] == 0
    assert samples[("smartzone_read_model_up", ())] == 1


def test_without_unsettled_epochs_the_lag_is_zero() -> None:
    reads = fake()
    reads.epoch_views = [Epoch(1, status="final")]
    assert scrape(reads)[("smartzone_settlement_lag_seconds", ())] == 0


def test_a_lost_database_still_answers_with_the_live_metrics_and_up_zero() -> None:
    reads = fake()
    reads.down = True
    samples = scrape(reads, clients=1)
    assert samples[("smartzone_read_model_up", ())] == 0
    assert samples[("smartzone_live_clients", ())] == 1
    assert not any(name == "smartzone_telemetry_received_total" for name, _ in samples)
