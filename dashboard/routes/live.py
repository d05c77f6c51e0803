"""Live push and the fleet's state now: ``/api/v1/live`` (server-sent events), the fleet snapshot, KPIs, alerts.

The fleet snapshot is answered from the hub's rows, which the change source keeps (``Hub.fleet_snapshot``): no read,
and the rows encoded once per change; the read model answers only while the change source is off or has not read
the fleet yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from dashboard import fleet
from dashboard.alerts import alert_fields
from dashboard.changes import KPI_FIELDS, AlertSink, ChangeSource, LiveReads, Timing, day_start_ms, fields
from dashboard.config import Principal, Thresholds
from dashboard.deps import Clock, Config, Operator, Signed, Staff
from dashboard.hub import Event, Hub, Viewer
from dashboard.problems import INVALID, NOT_FOUND

RETRY_MS = 3000
HEARTBEAT_S = 15.0
TICK_S = 1.0  # how often an idle stream looks whether the server is closing
SNAPSHOT_WAIT_S = 5.0  # how long a fleet request waits for a starting change source's first read of the fleet
PRIVATE = {"Cache-Control": "private, no-store"}


@dataclass(frozen=True, slots=True)
class LiveLimits:
    """How many live streams one principal and the whole app may hold at once."""

    per_principal: int = 20
    total: int = 1000


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """The live push of one app: whether its change source runs, how often it reads, how many streams it holds,
    and whether it judges vehicles against the zone's polygon."""

    enabled: bool = True
    timing: Timing = field(default_factory=Timing)
    limits: LiveLimits = LiveLimits()
    zone: bool = True


def live_reads(request: Request) -> LiveReads:
    """The read model, as the live routes read it."""
    model: LiveReads = request.app.state.read_model
    return model


def hub(request: Request) -> Hub:
    value: Hub = request.app.state.hub
    return value


def alert_store(request: Request) -> AlertSink | None:
    store: AlertSink | None = getattr(request.app.state, "alert_store", None)
    return store


Reads = Annotated[LiveReads, Depends(live_reads)]
TheHub = Annotated[Hub, Depends(hub)]
Alerts = Annotated[AlertSink | None, Depends(alert_store)]


def json_response(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=PRIVATE)


router = APIRouter(prefix="/api/v1")


def encode(event: Event, hub: Hub) -> str:
    """One event in the text/event-stream format (``Hub.encode``)."""
    return hub.encode(event)


def clock_event(now_ms: int) -> Event:
    return Event("clock", {"now_ms": now_ms})


async def stream(hub: Hub, viewer: Viewer, resume: str | None, now: Callable[[], int]) -> AsyncGenerator[str, None]:
    """The events of one client until it disconnects (its task is cancelled) or falls hopelessly behind."""
    client = hub.add(viewer)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if resume is not None and not hub.replay(client, resume):
            yield encode(Event("reset", {}), hub)
        yield encode(clock_event(now()), hub)
        quiet = 0.0
        while not hub.closing:
            for event in client.take():
                yield encode(event, hub)
            if client.dropped:
                return
            try:
                await asyncio.wait_for(client.wake.wait(), TICK_S)
            except TimeoutError:
                quiet += TICK_S
                if quiet >= HEARTBEAT_S:
                    quiet = 0.0
                    yield encode(clock_event(now()), hub)
        yield encode(Event("status", {"ok": False, "reason": "closing"}), hub)
    finally:
        hub.remove(client)


def check_capacity(request: Request, hub: Hub, who: Principal) -> None:
    limits: LiveLimits = getattr(request.app.state, "live_limits", LiveLimits())
    if len(hub.clients) >= limits.total:
        raise HTTPException(503, "too many live streams on this server; try again later", {"Retry-After": "10"})
    me = viewer_of(who).principal
    mine = sum(1 for c in hub.clients if c.viewer.principal == me)
    if mine >= limits.per_principal:
        raise HTTPException(503, "too many live streams for you; close one first", {"Retry-After": "10"})


def viewer_of(who: Principal) -> Viewer:
    return Viewer(who.staff, None if who.staff else who.subject.lower(), f"{who.role.value}:{who.subject.lower()}")


@router.get(
    "/live",
    tags=["live"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
async def live(
    request: Request,
    who: Signed,
    the_hub: TheHub,
    now: Clock,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Server-sent events: `vehicles`, `kpis`, `alert`, `epoch` (staff), `trip` (staff, and a rider's own),
    `clock` every 15 s, `status` when the server loses or regains its database, `reset` when what was missed
    cannot be replayed (reload the snapshot). Resumes after `Last-Event-ID` (or `after`, the `event_id` of
    `/api/v1/fleet`)."""
    check_capacity(request, the_hub, who)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    body = stream(the_hub, viewer_of(who), last_event_id or after, now)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get("/fleet", tags=["live"])
async def get_fleet(
    request: Request, who: Staff, reads: Reads, the_hub: TheHub, config: Config, now: Clock
) -> Response:
    """Every vehicle as a compact row (`columns` name them) with its display status: the live map's snapshot.
    Then follow `/api/v1/live?after=<event_id>` for the changes."""
    snapshot = await held_snapshot(request, the_hub)
    at = now()
    if snapshot is not None:
        rows, event_id = snapshot
    else:
        event_id = the_hub.event_id(the_hub.seq)  # taken before the read: a change after it is sent again, not lost
        rows = await asyncio.to_thread(read_rows, reads, at, config.thresholds)
    return fleet_response(at, event_id, rows)


async def held_snapshot(request: Request, hub: Hub) -> tuple[bytes, str] | None:
    """The hub's fleet snapshot; while a change source that has not failed is starting, wait for its first read
    (a snapshot read here before it would lose the changes between the two reads)."""
    source: ChangeSource | None = getattr(request.app.state, "changes", None)
    waited = 0.0
    while waited < SNAPSHOT_WAIT_S and not hub.seeded and source is not None and source.running and not source.errors:
        await asyncio.sleep(0.05)
        waited += 0.05
    return hub.fleet_snapshot()


def read_rows(reads: LiveReads, now_ms: int, thresholds: Thresholds) -> bytes:
    """The fleet's rows from the read model, as a JSON array."""
    return orjson.dumps(fleet.rows(reads.fleet(), now_ms, thresholds))


def fleet_response(now_ms: int, event_id: str, rows: bytes) -> Response:
    """``{"now_ms", "event_id", "columns", "rows"}`` around rows already encoded."""
    head = orjson.dumps({"now_ms": now_ms, "event_id": event_id, "columns": fleet.COLUMNS})
    return Response(head[:-1] + b',"rows":' + rows + b"}", media_type="application/json", headers=PRIVATE)


@router.get("/kpis", tags=["live"])
async def get_kpis(who: Staff, reads: Reads, the_hub: TheHub, config: Config, now: Clock) -> Response:
    """Trips in the last hour and today, today's revenue and averages (days in Europe/Brussels), and how many
    vehicles have each display status."""
    at = now()
    statuses = the_hub.fleet_statuses()  # the snapshot's, when the change source keeps one: no fleet read
    body = fields(await asyncio.to_thread(reads.kpis, at, day_start_ms(at)), KPI_FIELDS)
    if statuses is not None:
        body["status_counts"] = fleet.status_counts(statuses)
    else:
        body["status_counts"] = await asyncio.to_thread(lambda: fleet.counts_of(reads.fleet(), at, config.thresholds))
    body["now_ms"] = at
    return json_response(body)


@router.get("/alerts", tags=["live"], responses=INVALID)
def get_alerts(
    who: Staff,
    store: Alerts,
    open_only: Annotated[bool, Query(description="Only alerts not cleared yet.")] = True,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 200,
) -> Response:
    """Alerts newest first: battery low, offline, fault, outside the zone, rejected readings."""
    views = [] if store is None else store.alerts(open_only=open_only, limit=limit)
    return json_response({"items": [alert_fields(a) for a in views]})


@router.post("/alerts/{alert_id}/ack", tags=["live"], responses=NOT_FOUND)
def ack_alert(alert_id: int, who: Operator, store: Alerts, now: Clock) -> Response:
    """Acknowledge an alert (the first acknowledgement stays)."""
    view = None if store is None else store.ack(alert_id, who.subject, now())
    if view is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    return json_response(alert_fields(view))
