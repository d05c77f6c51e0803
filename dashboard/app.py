"""The dashboard's composition root: ``create_app`` wires a read model into the pages and the JSON API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from dashboard import api, pages, source
from dashboard.problems import add_problem_handlers
from settlement.views import ReadModel

SOURCE_PATH = "/source.tar.gz"

DESCRIPTION = """\
Read-only view of the Smart Zone shared mobility platform in Antwerp's Sint-Andries district:
the fleet, completed trips and their fares, settlement epochs on chain and payouts per vehicle owner.

Money is always an integer number of **micro-euro** (1 EUR = 1,000,000) in fields named `*_micro`;
times are integer milliseconds since the Unix epoch in fields named `*_ms`.
Errors are RFC 9457 problem details (`application/problem+json`).
"""

TAGS = [
    {"name": "fleet", "description": "Vehicles as last seen."},
    {"name": "trips", "description": "Completed trips, their fares and settlement status."},
    {"name": "settlement", "description": "Epochs committed on chain and what owners have earned."},
    {"name": "overview", "description": "Counts for the overview."},
    {"name": "health", "description": "Whether the app is up."},
]


def create_app(
    read_model: ReadModel,
    *,
    title: str = "Smart Zone",
    chain_label: str | None = None,
    source_url: str | None = None,
) -> FastAPI:
    """The dashboard over ``read_model``; ``chain_label`` names the chain in the page header and
    ``source_url`` is where users get the source code, as the AGPL asks (default: the app serves its own).
    """
    # FastAPIOffline serves Swagger UI (/docs) and ReDoc (/redoc) from files in the package, not a CDN:
    # the lab's screen may be offline.
    app = FastAPIOffline(
        title=title,
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        license_info={"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        static_url="/docs-assets",
    )
    app.state.read_model = read_model
    app.state.templates = pages.templates()
    app.state.page = pages.PageInfo(title, chain_label, source_url or SOURCE_PATH)
    add_problem_handlers(app)
    app.include_router(api.router)
    app.include_router(api.health)
    app.include_router(pages.router)
    app.include_router(source.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app
