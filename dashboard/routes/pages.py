"""The pages' common frame: rendering with the language, the menu for the signed-in role, the language switch,
and the public overview at ``/`` (aggregates only; a signed-in person is sent to their own view)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dashboard import display
from dashboard.config import Principal, Role
from dashboard.deps import Config, Lang, Model, Who
from dashboard.i18n import Language, catalogue

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
LANG_COOKIE_S = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What every page shows around its data: the title, the chain, where the source code is."""

    title: str
    chain_label: str | None
    source_url: str


@dataclass(frozen=True, slots=True)
class NavItem:
    key: str
    href: str
    roles: frozenset[Role | None]


NAV = (
    NavItem("nav.home", "/", frozenset({None})),
    NavItem("nav.fleet", "/fleet", frozenset({Role.OPERATOR, Role.RESEARCHER})),
    NavItem("nav.settlement", "/settlement", frozenset({Role.OPERATOR, Role.ACCOUNT})),
    NavItem("nav.research", "/research", frozenset({Role.OPERATOR, Role.RESEARCHER})),
    NavItem("nav.rider", "/rider", frozenset({Role.ACCOUNT})),
)
HOME = {Role.OPERATOR: "/fleet", Role.RESEARCHER: "/research", Role.ACCOUNT: "/rider"}


def templates() -> Jinja2Templates:
    """The page templates, HTML-escaped by default, with the language-free ``display`` formats as filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        short=display.short,
        iso_time=display.iso_time,
        duration=display.duration,
        battery=display.battery,
    )
    return Jinja2Templates(env=env)


class Formats:
    """The language-bound formats a template calls as ``fmt.eur(x)``, ``fmt.when(ms)``, …"""

    def __init__(self, lang: Language) -> None:
        self.lang = lang

    def eur(self, micro: int | None) -> str:
        return display.eur(micro, self.lang)

    def when(self, ms: int | None) -> str:
        return display.when(ms, self.lang)

    def clock(self, ms: int | None) -> str:
        return display.clock(ms, self.lang)

    def distance(self, metres: int | None) -> str:
        return display.distance(metres, self.lang)

    def number(self, value: int | float | None) -> str:
        return display.number(value, self.lang)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    lang: Language,
    principal: Principal | None,
    script_config: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page in ``lang`` for ``principal``: the template gets ``t`` (the words), ``fmt`` (the formats), the menu,
    and ``page_config``, the JSON the page's script reads (language, words, role, and ``script_config``)."""
    words = catalogue(lang)
    role = principal.role if principal else None
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    page_config = {
        "lang": lang.value,
        "locale": lang.bcp47,
        "words": words.texts,
        "role": role.value if role else None,
        "subject": principal.subject if principal else None,
        **(script_config or {}),
    }
    base = {
        "info": request.app.state.page,
        "t": words,
        "fmt": Formats(lang),
        "lang": lang,
        "languages": list(Language),
        "principal": principal,
        "nav": [
            {"key": item.key, "href": item.href, "current": request.url.path == item.href}
            for item in NAV
            if role in item.roles
        ],
        "here": here,
        "page_config": page_config,
    }
    response: HTMLResponse = request.app.state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
    response.headers["Content-Language"] = lang.value
    if principal is not None:  # a signed-in person's page is theirs alone: no shared or back-button cache keeps it
        response.headers["Cache-Control"] = "private, no-store"
    response.headers.setdefault("Vary", "Accept-Language, Cookie")
    return response


def safe_next(target: str | None) -> str:
    """A local path to go back to after a form; anything pointing elsewhere (another host, a scheme) becomes '/'."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse, response_model=None)
def index(request: Request, model: Model, lang: Lang, who: Who) -> Response:
    """The public overview (aggregates only); a signed-in person goes to their own view."""
    if who is not None:
        return RedirectResponse(HOME[who.role], status_code=303)
    return render(request, "public.html", {"stats": model.stats()}, lang=lang, principal=None)


@router.post("/lang")
def switch_language(lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/") -> RedirectResponse:
    """Remember the chosen language in a cookie and go back to the page."""
    chosen = Language(lang) if lang in Language.__members__.values() else Language.EN
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie("lang", chosen.value, max_age=LANG_COOKIE_S, samesite="lax", httponly=True)
    return response


__all__ = ["Config", "PageInfo", "render", "router", "templates"]
