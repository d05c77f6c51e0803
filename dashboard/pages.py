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
from dashboard.api import Model

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

PAGE_TRIPS = 50
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
    """The data of the overview page, read once from the model."""
    return {
        "stats": model.stats(),
        "vehicles": model.vehicles(),
        "payouts": model.payouts(),
        "epochs": model.epochs(limit=PAGE_EPOCHS),
        "trips": model.trips(limit=PAGE_TRIPS),
        "page_trips": PAGE_TRIPS,
        "page_epochs": PAGE_EPOCHS,
        "refresh_s": REFRESH_S,
    }


router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, model: Model) -> HTMLResponse:
    """The operators' overview: counts, fleet, payouts, epochs and trips."""
    page: PageInfo = request.app.state.page
    context = {"page": page, **overview(model)}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, "index.html", context)
    return response
