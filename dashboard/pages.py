"""The server-rendered pages: the operators' overview, readable without JavaScript."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from dashboard import display
from dashboard.api import Model, paged

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# The first screen only; the script pages the rest through the API (``next_cursor``).
PAGE_VEHICLES = 50
PAGE_PAYOUTS = 20
PAGE_TRIPS = 20
PAGE_EPOCHS = 20
REFRESH_S = 5


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What every page shows around its data: the title, the chain, where the source code is."""

    title: str
    chain_label: str | None
    source_url: str


def templates() -> Jinja2Templates:
    """The page templates, HTML-escaped by default, with the ``display`` formats as filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        eur=display.eur,
        short=display.short,
        iso_time=display.iso_time,
        duration=display.duration,
        distance=display.distance,
        battery=display.battery,
    )
    env.globals["position"] = display.position
    return Jinja2Templates(env=env)


def overview(model: Model) -> dict[str, Any]:
    """The data of the overview's first screen, read once from the model: each list's first page and the cursor
    of its next page."""
    vehicles, vehicles_next = paged(model.vehicles, PAGE_VEHICLES, None)
    payouts, payouts_next = paged(model.payouts, PAGE_PAYOUTS, None)
    epochs, epochs_next = paged(model.epochs, PAGE_EPOCHS, None)
    trips, trips_next = paged(lambda n, after: model.trips(limit=n, cursor=after), PAGE_TRIPS, None)
    return {
        "stats": model.stats(),
        "vehicles": vehicles,
        "payouts": payouts,
        "epochs": epochs,
        "trips": trips,
        "next": {"vehicles": vehicles_next, "payouts": payouts_next, "epochs": epochs_next, "trips": trips_next},
        "page": {"vehicles": PAGE_VEHICLES, "payouts": PAGE_PAYOUTS, "trips": PAGE_TRIPS, "epochs": PAGE_EPOCHS},
        "refresh_s": REFRESH_S,
    }


router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, model: Model) -> HTMLResponse:
    """The operators' overview: counts, fleet, payouts, epochs and trips."""
    page: PageInfo = request.app.state.page
    context = {"info": page, **overview(model)}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, "index.html", context)
    return response
