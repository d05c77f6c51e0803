"""The research page: recordings and their replay, downloads of trips and readings, charts of trips and utilisation."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any, Protocol

import pandas as pd
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from dashboard.config import Role
from dashboard.deps import Clock, Lang, Who, login_redirect, require
from dashboard.i18n import Language, catalogue
from dashboard.replay_control import (
    MAX_SPEED,
    ReplayBusy,
    ReplayControl,
    ReplayStatus,
    UnknownRecording,
    check_name,
)
from dashboard.routes import pages
from settlement.exports import csv_stream, parquet_stream

STAFF = require(Role.OPERATOR, Role.RESEARCHER)
"""Researchers and operators only: 401 for nobody, 403 for an account."""
ZONE = "Europe/Brussels"
CHART_TTL_MS = 10_000
CHART_WINDOW_MS = 24 * 3600 * 1000
SPEEDS = (1.0, 10.0, 60.0, 0.0)
"""The speeds the page offers: real time, 10×, 60× and as fast as possible."""
MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


class ResearchData(Protocol):
    """The research frames of ``settlement.analysis`` over the platform's database, windowed by ms since the epoch."""

    def trip_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        """Trips by start, in chunks; at least one (empty) frame when there are none."""
        ...

    def reading_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        """Raw telemetry by time, in chunks; at least one (empty) frame when there is none."""
        ...

    def trips(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame: ...

    def utilisation(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        """Per vehicle and hour, the share of the hour on trips."""
        ...


class AnalysisData:
    """``ResearchData`` over a ``settlement.db.Database`` with ``settlement.analysis``, exports read ``chunk_rows``
    rows at a time (default ``analysis.CHUNK_ROWS``)."""

    def __init__(self, db: Any, chunk_rows: int | None = None) -> None:
        self.db = db
        self.chunk_rows = chunk_rows

    def trip_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        from settlement import analysis

        rows = self.chunk_rows or analysis.CHUNK_ROWS
        return _at_least_one(analysis.trip_chunks(self.db, from_ms, to_ms, rows), analysis.TRIP_COLUMNS)

    def reading_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        from settlement import analysis

        rows = self.chunk_rows or analysis.CHUNK_ROWS
        chunks = analysis.reading_chunks(self.db, from_ms, to_ms, chunk_rows=rows)
        return _at_least_one(chunks, analysis.READING_COLUMNS)

    def trips(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        from settlement import analysis

        return analysis.trips(self.db, from_ms, to_ms)

    def utilisation(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        from settlement import analysis

        return analysis.utilisation(self.db, "h", from_ms, to_ms)


def _at_least_one(chunks: Iterator[pd.DataFrame], columns: dict[str, str] | Any) -> Iterator[pd.DataFrame]:
    """``chunks``, or one empty frame of ``columns`` (name: dtype) when there are none."""
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        yield pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


class ChartCache:
    """Charts kept for a few seconds per (name, language): drawing one takes a tenth of a second or more."""

    def __init__(self, ttl_ms: int = CHART_TTL_MS) -> None:
        self.ttl_ms = ttl_ms
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], tuple[int, bytes]] = {}

    def get(self, key: tuple[str, str], now_ms: int, draw: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._kept.get(key)
            if found is not None and now_ms - found[0] < self.ttl_ms:
                return found[1]
            svg = draw()
            self._kept[key] = (now_ms, svg)
            return svg


def replay_control(request: Request) -> ReplayControl:
    """The ``ReplayControl`` ``create_app`` was given (``app.state.replay_control``); 503 without one."""
    found: ReplayControl | None = getattr(request.app.state, "replay_control", None)
    if found is None:
        raise HTTPException(503, "replays are not configured on this server")
    return found


def research_data(request: Request) -> ResearchData:
    """The ``ResearchData`` ``create_app`` was given (``app.state.research_data``); 503 without one."""
    found: ResearchData | None = getattr(request.app.state, "research_data", None)
    if found is None:
        raise HTTPException(503, "research data is not configured on this server")
    return found


def chart_cache(request: Request) -> ChartCache:
    state = request.app.state
    if getattr(state, "chart_cache", None) is None:
        state.chart_cache = ChartCache()
    cache: ChartCache = state.chart_cache
    return cache


Control = Annotated[ReplayControl, Depends(replay_control)]
Data = Annotated[ResearchData, Depends(research_data)]
Charts = Annotated[ChartCache, Depends(chart_cache)]
FromMs = Annotated[int | None, Query(ge=0, le=10**15, description="From this time (ms since the epoch, inclusive).")]
ToMs = Annotated[int | None, Query(ge=0, le=10**15, description="Until this time (ms since the epoch, exclusive).")]


class ReplayRequest(BaseModel):
    """Which recording to replay and how fast."""

    recording: str = Field(min_length=1, max_length=200, description="A recording's name, as listed.")
    speed: float = Field(ge=0, le=MAX_SPEED, description="Recorded seconds per second; 0: as fast as possible.")


router = APIRouter()
api = APIRouter(prefix="/api/v1", tags=["research"], dependencies=[Depends(STAFF)])


@api.get("/recordings")
def list_recordings(control: Control) -> dict[str, Any]:
    """The recordings a replay can be started from: name, size, messages, recorded span and scenario."""
    return {"items": [asdict(r) for r in control.recordings()]}


@api.post("/replays", status_code=201)
def start_replay(control: Control, body: Annotated[ReplayRequest, Body()]) -> dict[str, Any]:
    """Start replaying a recording onto the platform's broker at a speed; 409 while another replay runs."""
    try:
        status = control.start(check_name(body.recording), body.speed)
    except UnknownRecording as exc:
        raise HTTPException(404 if _plain(body.recording) else 422, str(exc)) from None
    except ReplayBusy as exc:
        raise HTTPException(409, str(exc)) from None
    return status.as_json()


def _plain(name: str) -> bool:
    try:
        check_name(name)
    except UnknownRecording:
        return False
    return True


@api.get("/replays/current")
def current_replay(control: Control) -> dict[str, Any]:
    """The replay running or last run: messages published, position in the recording, share of the file read."""
    return control.status().as_json()


@api.delete("/replays/current")
def stop_replay(control: Control) -> dict[str, Any]:
    """Stop the running replay (nothing happens when none runs)."""
    return control.stop().as_json()


def _export(chunks: Iterator[pd.DataFrame], name: str, fmt: str) -> StreamingResponse:
    stream = csv_stream(chunks) if fmt == "csv" else parquet_stream(chunks)
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"', "Cache-Control": "no-store"}
    return StreamingResponse(stream, media_type=MEDIA[fmt], headers=headers)


class Table(StrEnum):
    TRIPS = "trips"
    READINGS = "readings"


class Format(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


@api.get("/exports/{table}.{fmt}", response_class=StreamingResponse)
def export(table: Table, fmt: Format, data: Data, from_ms: FromMs = None, to_ms: ToMs = None) -> StreamingResponse:
    """Trips (by start time) or raw telemetry readings (by their time) in a window, as CSV or Parquet, streamed a
    chunk at a time: `trips.csv`, `trips.parquet`, `readings.csv`, `readings.parquet`. Money in micro-euro, UTC."""
    read = data.trip_chunks if table == Table.TRIPS else data.reading_chunks
    return _export(read(from_ms, to_ms), table.value, fmt.value)


def _svg(draw: Callable[[io.BytesIO], object]) -> bytes:
    buffer = io.BytesIO()
    draw(buffer)
    return buffer.getvalue()


CHART_TEXTS = {"trips": ("title", "ylabel", "legend", "empty"), "utilisation": ("title", "ylabel", "empty")}
"""The texts each chart draws (the utilisation chart has a single line: no legend)."""


def chart_words(lang: Language, name: str) -> dict[str, str]:
    t = catalogue(lang)
    return {key: t(f"research.chart.{name}.{key}") for key in CHART_TEXTS[name]}


def _window(now_ms: int, from_ms: int | None, to_ms: int | None) -> tuple[int | None, int | None]:
    """The charts' window: as asked, else the last day (and whatever simulated time runs ahead of the clock)."""
    return (from_ms if from_ms is not None else now_ms - CHART_WINDOW_MS), to_ms


def _chart_response(svg: bytes) -> Response:
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=10"})


@router.get("/research/charts/trips-per-hour.svg", dependencies=[Depends(STAFF)], include_in_schema=False)
def trips_chart(
    data: Data, lang: Lang, clock: Clock, cache: Charts, from_ms: FromMs = None, to_ms: ToMs = None
) -> Response:
    """Trips started per hour by status, Brussels hours."""
    now = clock()
    since, until = _window(now, from_ms, to_ms)
    words = chart_words(lang, "trips")

    def draw() -> bytes:
        from settlement import charts

        frame = data.trips(since, until)
        return _svg(lambda out: charts.trips_per_hour(frame, out, tz=ZONE, words=words, fmt="svg"))

    return _chart_response(cache.get((f"trips:{from_ms}:{to_ms}", lang.value), now, draw))


@router.get("/research/charts/utilisation.svg", dependencies=[Depends(STAFF)], include_in_schema=False)
def utilisation_chart(
    data: Data, lang: Lang, clock: Clock, cache: Charts, from_ms: FromMs = None, to_ms: ToMs = None
) -> Response:
    """The share of the fleet on trips per hour, Brussels hours."""
    now = clock()
    since, until = _window(now, from_ms, to_ms)
    words = chart_words(lang, "utilisation")

    def draw() -> bytes:
        from settlement import charts

        frame = data.utilisation(since, until)
        return _svg(lambda out: charts.fleet_utilisation(frame, out, tz=ZONE, words=words, fmt="svg"))

    return _chart_response(cache.get((f"util:{from_ms}:{to_ms}", lang.value), now, draw))


@router.get("/research", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def research_page(request: Request, response: Response, lang: Lang, who: Who) -> Response:
    """Recordings and replay, downloads and charts."""
    if who is None:
        return login_redirect(request)
    allowed = STAFF(who, response)
    control: ReplayControl | None = getattr(request.app.state, "replay_control", None)
    recordings = control.recordings() if control is not None else []
    status = control.status() if control is not None else None
    context = {
        "recordings": recordings,
        "replay": status,
        "replays_configured": control is not None,
        "speeds": SPEEDS,
    }
    script = {"replay": status.as_json() if status is not None else None}
    return pages.render(request, "research.html", context, lang=lang, principal=allowed, script_config=script)


router.include_router(api)

__all__ = ["AnalysisData", "ReplayStatus", "ResearchData", "router"]
