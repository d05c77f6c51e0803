"""The rider's own trips on a phone: the list with the running cost of a trip in progress, one trip with its route,
fare breakdown, settlement and receipt, and the trip's route as JSON for the trip's rider (or staff)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from dashboard.config import Principal, Role
from dashboard.deps import Clock, Config, Lang, Signed, Who, login_redirect
from dashboard.i18n import Catalogue, Language, catalogue
from dashboard.problems import NOT_FOUND
from dashboard.routes.pages import render
from settlement.views import InvalidCursor, NotCommitted, TripView, cursor_after

PAGE_SIZE = 20
TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
GEO = {name: f"/static/geo/{name}.geojson" for name in ("zone", "streets", "stations")}
ROUTE_POINTS = 5000
"""The most track points a route holds (a trip of 2 hours at one reading per 2 s)."""


class Point(Protocol):
    """A track point as the read model gives it (``settlement.views.TrackPoint``)."""

    @property
    def timestamp_ms(self) -> int: ...
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


class RiderReads(Protocol):
    """The read-model methods this view needs (of the data contract: ``trips(rider=)``, ``running_trips``,
    ``track``)."""

    def trips(self, limit: int = 100, vehicle_id: str | None = None, rider: str | None = None,
              status: str | None = None, cursor: str | None = None) -> list[TripView]: ...  # fmt: skip

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]: ...

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> Sequence[Point]: ...

    def trip(self, trip_id: str) -> TripView | None: ...

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None: ...


def rider_model(request: Request) -> RiderReads:
    """The read model ``create_app`` was given, seen through the methods this view uses."""
    return cast(RiderReads, request.app.state.read_model)


Reads = Annotated[RiderReads, Depends(rider_model)]
PageCursor = Annotated[str | None, Query(max_length=512)]


class TripRoute(BaseModel):
    """Where a trip went: the vehicle's track cut to the trip's start and end (its end so far while it runs)."""

    trip_id: str
    vehicle_id: str
    start_ms: int | None
    end_ms: int | None = Field(description="None while the trip runs: the route so far.")
    points: list[tuple[int, float, float]] = Field(description="[timestamp_ms, lat, lon], oldest first.")
    truncated: bool = Field(description=f"True when the trip has more than {ROUTE_POINTS} points: its start is cut.")


def same_account(a: str | None, b: str) -> bool:
    """Whether two addresses are the same account (EIP-55 case aside)."""
    return a is not None and a.lower() == b.lower()


def status_text(words: Catalogue, view: TripView) -> str:
    """A trip's settlement status in words; a rejected trip with its reason."""
    status = words(f"rider.status.{view.status}")
    if view.status == "rejected" and view.reason:
        key = f"rider.reason.{view.reason}"
        reason = words(key) if key in words.texts else view.reason
        return words("rider.status.rejected_because", reason=reason)
    return status


def trip_row(words: Catalogue, view: TripView) -> dict[str, Any]:
    """What the list shows of a trip."""
    charged = view.charged_micro if view.charged_micro is not None else view.fare_micro
    return {
        "view": view,
        "at_ms": view.end_ms if view.end_ms is not None else view.start_ms,
        "charged_micro": charged,
        "status_text": status_text(words, view),
    }


def not_found(request: Request, lang: Language, who: Principal) -> HTMLResponse:
    """The rider's 404 page: no such trip among theirs (whether it is someone else's is not told)."""
    return render(request, "rider.html", {"mode": "missing"}, lang=lang, principal=who, status_code=404)


def staff_page(request: Request, lang: Language, who: Principal) -> HTMLResponse:
    """What staff see at a rider's address: why there is nothing of theirs here."""
    return render(request, "rider.html", {"mode": "staff"}, lang=lang, principal=who)


router = APIRouter()


@router.get("/rider", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def rider_home(request: Request, model: Reads, lang: Lang, who: Who, cursor: PageCursor = None) -> Response:
    """The signed-in rider's trips, newest first, a page at a time, with the cost so far of any trip in progress."""
    if who is None:
        return login_redirect(request)
    if who.role != Role.ACCOUNT:
        return staff_page(request, lang, who)
    words = catalogue(lang)
    try:
        views = model.trips(limit=PAGE_SIZE + 1, rider=who.subject, cursor=cursor)
    except InvalidCursor:
        bad: dict[str, Any] = {
            "mode": "list",
            "rows": [],
            "running": [],
            "next_cursor": None,
            "paged": True,
            "bad_cursor": True,
        }
        return render(request, "rider.html", bad, lang=lang, principal=who, status_code=422)
    next_cursor = cursor_after(views[PAGE_SIZE - 1]) if len(views) > PAGE_SIZE else None
    running = model.running_trips(rider=who.subject, limit=20) if cursor is None else []
    own = [v for v in running if same_account(v.rider, who.subject)]
    context: dict[str, Any] = {
        "mode": "list",
        "rows": [trip_row(words, v) for v in views[:PAGE_SIZE]],
        "running": own,
        "next_cursor": next_cursor,
        "paged": cursor is not None,
        "bad_cursor": False,
    }
    script = {"rider": who.subject, "running": [v.trip_id for v in own]}
    return render(request, "rider.html", context, lang=lang, principal=who, script_config=script)


def receipt_of(model: RiderReads, trip_id: str) -> dict[str, Any] | None:
    """The trip's receipt, or None while its epoch is not on chain."""
    try:
        return model.trip_receipt(trip_id)
    except NotCommitted:
        return None


def breakdown(view: TripView, receipt: dict[str, Any] | None) -> dict[str, Any]:
    """The fare as the rider should understand it: metered, what the voucher signed, the consent's cap, charged."""
    fare = (receipt or {}).get("fare") or {}
    consent = (receipt or {}).get("consent") or {}
    voucher = (receipt or {}).get("voucher") or {}
    return {
        "unlock_micro": fare.get("unlock_micro"),
        "time_micro": fare.get("time_micro"),
        "distance_micro": fare.get("distance_micro"),
        "metered_micro": fare.get("total_micro", view.fare_micro),
        "signed_micro": voucher.get("cumulative_micro", view.signed_micro),
        "cap_micro": consent.get("cap_micro"),
        "charged_micro": fare.get("charged_micro", view.charged_micro),
        "limited_by": fare.get("limited_by"),
    }


@router.get("/rider/trips/{trip_id}", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def rider_trip(trip_id: str, request: Request, model: Reads, lang: Lang, who: Who, config: Config) -> Response:
    """One of the rider's trips: route, duration, distance, fare breakdown, settlement, receipt and verify."""
    if who is None:
        return login_redirect(request)
    if who.role != Role.ACCOUNT:
        return staff_page(request, lang, who)
    view = model.trip(trip_id)
    if view is None or not same_account(view.rider, who.subject):
        return not_found(request, lang, who)
    receipt = receipt_of(model, trip_id)
    words = catalogue(lang)
    context = {
        "mode": "trip",
        "trip": view,
        "row": trip_row(words, view),
        "fare": breakdown(view, receipt),
        "receipt": receipt,
        "receipt_name": "receipt-" + trip_id.replace(":", "-") + ".json",
        "rpc_url": config.public_rpc_url,
    }
    script = {
        "trip_id": trip_id,
        "running": view.status == "open",
        "committed": receipt is not None,
        "rpc_url": config.public_rpc_url,
        "contract": config.contract,
        "chain_id": config.chain_id,
        "map": {"tiles": TILE_URL, "geo": GEO},
    }
    return render(request, "rider_trip.html", context, lang=lang, principal=who, script_config=script)


@router.get("/api/v1/trips/{trip_id}/route", tags=["trips"], responses=NOT_FOUND)
def trip_route(trip_id: str, model: Reads, who: Signed, clock: Clock) -> TripRoute:
    """The trip's route from its vehicle's track, for the trip's rider and for staff (to anyone else: 404)."""
    view = model.trip(trip_id)
    if view is None or not (who.staff or same_account(view.rider, who.subject)):
        raise HTTPException(404, f"no trip with id {trip_id!r}")
    if view.start_ms is None:
        return TripRoute(trip_id=trip_id, vehicle_id=view.vehicle_id, start_ms=None, end_ms=view.end_ms, points=[],
                         truncated=False)  # fmt: skip
    end = view.end_ms if view.end_ms is not None else clock()
    track = model.track(view.vehicle_id, since_ms=view.start_ms, limit=ROUTE_POINTS)
    points = [(p.timestamp_ms, p.lat, p.lon) for p in track if view.start_ms <= p.timestamp_ms <= end]
    truncated = len(track) >= ROUTE_POINTS and bool(track) and track[0].timestamp_ms > view.start_ms
    return TripRoute(
        trip_id=trip_id, vehicle_id=view.vehicle_id, start_ms=view.start_ms, end_ms=view.end_ms, points=points,
        truncated=truncated,
    )  # fmt: skip
