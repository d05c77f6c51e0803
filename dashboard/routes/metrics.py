"""Prometheus metrics at ``/metrics``, read from the read model on each scrape (no counters kept in the process).

Ingest rate: ``rate(smartzone_telemetry_received_total[1m])``; rejects by reason; trips; epochs by status (of
the newest ``EPOCHS_SEEN``), the gas they used, and settlement lag (how long the oldest epoch not yet committed
has waited); vehicles by display status; live clients and the change source's failed rounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dashboard import fleet
from dashboard.changes import ChangeSource
from dashboard.config import Thresholds
from dashboard.deps import wall_ms
from dashboard.hub import Hub
from sensors.errors import ServiceUnavailable

EPOCHS_SEEN = 1000
"""The newest epochs the epoch metrics count: the read model lists epochs, it does not count them by status."""
P = "smartzone_"


class ReadModelCollector:
    """A custom collector: one scrape, one set of reads."""

    def __init__(
        self,
        reads: Any,
        clock: Callable[[], int],
        thresholds: Thresholds,
        hub: Hub | None = None,
        changes: ChangeSource | None = None,
    ) -> None:
        self._reads = reads
        self._clock = clock
        self._thresholds = thresholds
        self._hub = hub
        self._changes = changes

    def collect(self) -> Iterator[Metric]:
        yield from self._live()
        try:
            metrics = list(self._read())
        except ServiceUnavailable:
            yield GaugeMetricFamily(P + "read_model_up", "Whether the read model answered this scrape.", value=0)
            return
        yield GaugeMetricFamily(P + "read_model_up", "Whether the read model answered this scrape.", value=1)
        yield from metrics

    def _live(self) -> Iterator[Metric]:
        clients = len(self._hub.clients) if self._hub is not None else 0
        yield GaugeMetricFamily(P + "live_clients", "Live (server-sent events) streams connected.", value=clients)
        errors = self._changes.errors if self._changes is not None else 0
        yield CounterMetricFamily(P + "live_poll_errors", "Change-source rounds that failed to read.", value=errors)

    def _read(self) -> Iterator[Metric]:
        stats = self._reads.stats()
        yield CounterMetricFamily(P + "telemetry_received", "Telemetry readings stored.", value=stats.telemetry)
        yield CounterMetricFamily(P + "events_received", "Vehicle events stored.", value=stats.events)
        rejects = CounterMetricFamily(P + "rejects", "Messages dead-lettered, by reason.", labels=["reason"])
        for reason, n in sorted(self._reads.rejects_by_code().items()):
            rejects.add_metric([reason], n)
        yield rejects
        yield CounterMetricFamily(P + "trips", "Trips priced and later (settled or waiting).", value=stats.trips)
        running = len(self._reads.running_trips(limit=100_000))
        yield GaugeMetricFamily(P + "trips_running", "Trips in progress.", value=running)
        yield from self._epochs()
        yield from self._vehicles()

    def _epochs(self) -> Iterator[Metric]:
        epochs = self._reads.epochs(limit=EPOCHS_SEEN)
        by_status = GaugeMetricFamily(
            P + "epochs", f"Epochs by status (of the newest {EPOCHS_SEEN}).", labels=["status"]
        )
        for status, n in sorted(Counter(e.status for e in epochs).items()):
            by_status.add_metric([status], n)
        yield by_status
        gas = sum(e.gas_used or 0 for e in epochs)
        yield CounterMetricFamily(P + "gas_used", f"Gas used by the newest {EPOCHS_SEEN} epochs.", value=gas)
        waiting = [e.closed_ms for e in epochs if e.status == "closed"]
        lag = max(0.0, (self._clock() - min(waiting)) / 1000) if waiting else 0.0
        yield GaugeMetricFamily(
            P + "settlement_lag_seconds", "How long the oldest epoch not yet on chain has waited.", value=lag
        )

    def _vehicles(self) -> Iterator[Metric]:
        views = self._reads.fleet()
        counts = fleet.counts_of(views, self._clock(), self._thresholds)
        family = GaugeMetricFamily(P + "vehicles", "Vehicles by display status.", labels=["status"])
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family


router = APIRouter()


@router.get("/metrics", tags=["health"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    state = request.app.state
    clock: Callable[[], int] = getattr(state, "clock", None) or wall_ms
    registry = CollectorRegistry(auto_describe=False)
    collector = ReadModelCollector(
        state.read_model,
        clock,
        state.config.thresholds,
        getattr(state, "hub", None),
        getattr(state, "changes", None),
    )
    registry.register(collector)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
