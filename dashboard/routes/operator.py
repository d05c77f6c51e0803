"""The operator's views: the live fleet map at ``/fleet``, a vehicle's page, and the vehicle track API (staff only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from dashboard.config import Role, Thresholds
from dashboard.deps import Config, Lang, Model, Staff, Who, login_redirect, require
from dashboard.problems import NOT_FOUND
from dashboard.routes.pages import render
from sensors.messages import VehicleKind

TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
MAX_TRACK = 5000
VEHICLE_ID = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")


class TrackPoint(BaseModel):
    """One telemetry reading of a vehicle's track."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    timestamp_ms: int
    lat: float
    lon: float
    speed_mps: float | None
    battery_pct: float | None


class Track(BaseModel):
    """A vehicle's newest raw telemetry points, oldest first."""

    vehicle_id: str
    points: list[TrackPoint]


class TrackSource(Protocol):
    """The part of the read model the track route needs (``ReadModel.track``)."""

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> Sequence[object]: ...


STAFF_PAGE = require(Role.OPERATOR, Role.RESEARCHER)
"""The operator views' guard for a signed-in visitor: 403 for anyone but staff."""


def map_config(thresholds: Thresholds) -> dict[str, object]:
    """What the map scripts need: the tile URL, the zone's layers and the thresholds of the display status."""
    return {
        "tiles": TILE_URL,
        "geo": {name: f"/static/geo/{name}.geojson" for name in ("zone", "streets", "stations")},
        "thresholds": {
            "low_battery_pct": thresholds.low_battery_pct,
            "offline_after_s": thresholds.offline_after_s,
        },
        "kinds": [kind.value for kind in VehicleKind],
    }


router = APIRouter()


@router.get("/fleet", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def fleet_page(request: Request, response: Response, lang: Lang, who: Who, config: Config) -> Response:
    """The live fleet: map, KPIs, alerts, vehicles and rejected readings."""
    if who is None:
        return login_redirect(request)
    STAFF_PAGE(who, response)
    script = {"map": map_config(config.thresholds), "operator": who.role == Role.OPERATOR}
    return render(request, "fleet.html", {"kinds": list(VehicleKind)}, lang=lang, principal=who, script_config=script)


@router.get("/vehicles/{vehicle_id}", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def vehicle_page(
    request: Request,
    response: Response,
    vehicle_id: Annotated[str, VEHICLE_ID],
    model: Model,
    lang: Lang,
    who: Who,
    config: Config,
) -> Response:
    """One vehicle: its recent track, battery chart, trips and alerts."""
    if who is None:
        return login_redirect(request)
    STAFF_PAGE(who, response)
    view = model.vehicle(vehicle_id)
    if view is None:
        raise HTTPException(404, f"no vehicle with id {vehicle_id!r}")
    script = {"map": map_config(config.thresholds), "vehicle": {"vehicle_id": view.vehicle_id, "kind": view.kind}}
    return render(request, "vehicle.html", {"vehicle": view}, lang=lang, principal=who, script_config=script)


@router.get("/api/v1/vehicles/{vehicle_id}/track", tags=["fleet"], responses=NOT_FOUND)
def get_track(
    vehicle_id: Annotated[str, VEHICLE_ID],
    model: Model,
    _: Staff,
    limit: Annotated[int, Query(ge=1, le=MAX_TRACK, description="At most this many points, the newest.")] = 500,
    since_ms: Annotated[int | None, Query(ge=0, description="Only points at or after this time (ms).")] = None,
) -> Track:
    """The vehicle's recent track (staff only): its newest raw telemetry points, oldest first."""
    if model.vehicle(vehicle_id) is None:
        raise HTTPException(404, f"no vehicle with id {vehicle_id!r}")
    points = cast(TrackSource, model).track(vehicle_id, since_ms=since_ms, limit=limit)
    ordered = sorted((TrackPoint.model_validate(p) for p in points), key=lambda p: p.timestamp_ms)
    return Track(vehicle_id=vehicle_id, points=ordered)
