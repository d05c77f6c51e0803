"""The dashboard's composition root: ``create_app`` wires a read model into the pages and the JSON API."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.middleware.sessions import SessionMiddleware

from dashboard import health
from dashboard.chain_status import ChainStatus
from dashboard.changes import AlertSink, ChangeSource
from dashboard.config import DashboardConfig
from dashboard.deps import wall_ms
from dashboard.geo import load_zone
from dashboard.health import Check, Readiness
from dashboard.hub import Hub
from dashboard.problems import add_problem_handlers
from dashboard.replay_control import ReplayControl
from dashboard.routes import api, auth, jsonrpc, live, metrics, operator, pages, research, rider, settlement, source
from dashboard.security import HeadAsGet, RequestGuard, SameOriginWrites, SecurityHeaders, page_policy
from sensors.redaction import redact_url
from settlement.views import ReadModel

SOURCE_PATH = "/source.tar.gz"
SESSION_COOKIE = "smartzone_session"
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")  # FastAPIOffline's pages, with inline scripts

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
    {"name": "health", "description": "Whether the app is up (/healthz) and can do its work (/readyz)."},
]


def create_app(
    read_model: ReadModel,
    config: DashboardConfig | None = None,
    *,
    readiness: Sequence[Check] = (),
    chain_reader: jsonrpc.ChainReader | None = None,
    clock: Callable[[], int] | None = None,
    alert_store: AlertSink | None = None,
    live_options: live.LiveOptions | None = None,
    chain_status: ChainStatus | None = None,
    replay_control: ReplayControl | None = None,
    research_data: research.ResearchData | None = None,
) -> FastAPI:
    """The dashboard over ``read_model`` as ``config`` says (None: nobody can sign in, a session key of this
    process only). ``config.chain_label`` names the chain in the page footer (credentials in it are masked),
    ``config.source_url`` is where users get the source code, as the AGPL asks (default: the app serves its own),
    and ``readiness`` are the checks ``/readyz`` runs (``dashboard.health``). With a ``chain_reader`` (the embedded
    chain's) it serves a read-only JSON-RPC endpoint at ``/rpc``. ``clock`` gives wall-clock ms (tests fix it).
    ``alert_store`` keeps the alerts the change source opens (None: no alerts are judged); ``live_options`` set
    the live push (``dashboard.routes.live``), whose change source runs while the app does (its lifespan).
    ``chain_status`` is the chain's health on the settlement page, ``replay_control`` starts and stops the research
    view's replays (stopped with the app), ``research_data`` feeds its downloads and charts; without one, what needs
    it says it is not configured.
    """
    config = config or DashboardConfig(session_secret=secrets.token_urlsafe(32))
    title = config.title
    # FastAPIOffline serves Swagger UI (/docs) and ReDoc (/redoc) from files in the package, not a CDN:
    # the lab's screen may be offline.
    app = FastAPIOffline(
        title=title,
        version="1",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        license_info={"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        static_url="/docs-assets",
        lifespan=_live_lifespan,
    )
    app.state.read_model = read_model
    app.state.config = config
    app.state.clock = clock
    app.state.chain_status = chain_status
    app.state.replay_control = replay_control
    app.state.research_data = research_data
    app.state.templates = pages.templates()
    app.state.readiness = Readiness(readiness)
    label = redact_url(config.chain_label) if config.chain_label else None
    app.state.page = pages.PageInfo(title, label, config.source_url or SOURCE_PATH)
    _wire_live(app, read_model, config, clock, alert_store, live_options or live.LiveOptions())
    add_problem_handlers(app)
    # the last added runs first: HEAD is answered from the full GET, which carries the security headers
    app.add_middleware(
        SessionMiddleware,
        secret_key=config.session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=config.session_max_age_s,
        same_site="lax",
        https_only=config.https_only,
    )
    app.add_middleware(RequestGuard)
    allowed = (config.public_origin,) if config.public_origin else ()
    app.add_middleware(SameOriginWrites, allowed_origins=allowed, exempt=(jsonrpc.PATH,))
    app.add_middleware(SecurityHeaders, docs_paths=DOCS_PATHS, policy=page_policy(_rpc_origin(config)))
    app.add_middleware(HeadAsGet)
    app.include_router(api.router)
    app.include_router(auth.router)
    app.include_router(live.router)
    app.include_router(metrics.router)
    app.include_router(operator.router)
    app.include_router(rider.router)
    app.include_router(settlement.router)
    app.include_router(research.router)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(source.router)
    if chain_reader is not None:
        app.include_router(jsonrpc.router(chain_reader))
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


def _rpc_origin(config: DashboardConfig) -> tuple[str, ...]:
    """The origin of the chain's JSON-RPC that browsers read, when it is not the app's own /rpc."""
    url = urlsplit(config.public_rpc_url or "")
    return (f"{url.scheme}://{url.netloc}",) if url.scheme in ("http", "https") and url.netloc else ()


def _wire_live(
    app: FastAPI,
    read_model: ReadModel,
    config: DashboardConfig,
    clock: Callable[[], int] | None,
    alert_store: AlertSink | None,
    options: live.LiveOptions,
) -> None:
    """The hub of live clients and the change source that feeds it (started by the lifespan)."""
    app.state.hub = Hub()
    app.state.alert_store = alert_store
    app.state.live_limits = options.limits
    app.state.changes = None
    if options.enabled:
        app.state.changes = ChangeSource(
            read_model,
            app.state.hub,
            clock or wall_ms,
            config.thresholds,
            alert_store,
            load_zone() if options.zone else None,
            options.timing,
        )


@contextlib.asynccontextmanager
async def _live_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the change source while the app serves."""
    source: ChangeSource | None = getattr(app.state, "changes", None)
    task = asyncio.create_task(source.run(), name="live-changes") if source is not None else None
    try:
        yield
    finally:
        replays: ReplayControl | None = getattr(app.state, "replay_control", None)
        if replays is not None:
            await asyncio.to_thread(replays.stop)  # a replay does not outlive the app
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
