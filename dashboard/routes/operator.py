"""The operator's views: the live fleet map at ``/fleet``, a vehicle's page, and the vehicle track API (staff only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict

from dashboard.config import Principal, Thresholds
from dashboard.deps import Config, Lang, Model, Who
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


def staff_only(who: Who) -> Principal:
    """The signed-in operator or researcher; 401 for an anonymous visitor, 403 for anyone else.

    TODO(auth): replace with ``dashboard.deps.Staff`` once helper AUTH's ``require`` is merged.
    """
    if who is None:
        raise HTTPException(401, "sign in as an operator or researcher")
    if not who.staff:
        raise HTTPException(403, "only operators and researchers see the fleet")
    return who


Staff = Annotated[Principal, Depends(staff_only)]


def page_guard(request: Request, who: Principal | None) -> Response | None:
    """A redirect to the login page for an anonymous visitor, 403 for a signed-in non-staff, else None.

    TODO(auth): replace with ``pages.login_redirect`` once helper AUTH's branch is merged.
    """
    if who is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    if not who.staff:
        raise HTTPException(403, "only operators and researchers see the fleet")
    return None


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
def fleet_page(request: Request, lang: Lang, who: Who, config: Config) -> Response:
    """The live fleet: map, KPIs, alerts, vehicles and rejected readings."""
    redirect = page_guard(request, who)
    if redirect is not None:
        return redirect
    script = {"map": map_config(config.thresholds), "operator": who is not None and who.role.value == "operator"}
    return render(request, "fleet.html", {"kinds": list(VehicleKind)}, lang=lang, principal=who, script_config=script)


@router.get("/vehicles/{vehicle_id}", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def vehicle_page(
    request: Request, vehicle_id: Annotated[str, VEHICLE_ID], model: Model, lang: Lang, who: Who, config: Config
) -> Response:
    """One vehicle: its recent track, battery chart, trips and alerts."""
    redirect = page_guard(request, who)
    if redirect is not None:
        return redirect
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
