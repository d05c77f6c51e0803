"""The dependencies routes declare: the ports and the configuration ``create_app`` was given, the language of the
request, the clock. Tests replace any of them with ``app.dependency_overrides``."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from dashboard.config import DashboardConfig, Principal, Role
from dashboard.i18n import Language, negotiate
from sensors.address import Address, InvalidAddress
from settlement.views import ReadModel


def read_model(request: Request) -> ReadModel:
    """The read model ``create_app`` was given."""
    model: ReadModel = request.app.state.read_model
    return model


def config(request: Request) -> DashboardConfig:
    """The dashboard's configuration."""
    value: DashboardConfig = request.app.state.config
    return value


def language(request: Request) -> Language:
    """The page language: the ``lang`` cookie (the switch), else the browser's Accept-Language, else English."""
    return negotiate(request.cookies.get("lang"), request.headers.get("accept-language"))


def clock(request: Request) -> Callable[[], int]:
    """Wall-clock milliseconds since the epoch (a test gives a fixed clock through ``create_app``)."""
    now: Callable[[], int] | None = getattr(request.app.state, "clock", None)
    return now if now is not None else wall_ms


def wall_ms() -> int:
    """The wall clock in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


Model = Annotated[ReadModel, Depends(read_model)]
Config = Annotated[DashboardConfig, Depends(config)]
Lang = Annotated[Language, Depends(language)]
Clock = Annotated[Callable[[], int], Depends(clock)]


SESSION_SKEW_MS = 60_000


def principal(request: Request) -> Principal | None:
    """Who is signed in, from the session cookie; None for an anonymous visitor.

    The session holds the role, the subject, when it was issued and, for staff, a fingerprint of the password hash
    it was opened with: a staff user removed from the configuration, or whose password changed, is anonymous again;
    so is a session older than ``session_max_age_s``, a wallet whose address is not in EIP-55 form, and a demo rider
    token's session once demo mode is off.
    """
    data = request.scope.get("session")
    if not isinstance(data, dict):
        return None
    role, subject, issued = data.get("role"), data.get("sub"), data.get("iat")
    if not isinstance(role, str) or role not in set(Role) or not isinstance(subject, str) or type(issued) is not int:
        return None
    settings = config(request)
    now = clock(request)()
    if not now - settings.session_max_age_s * 1000 <= issued <= now + SESSION_SKEW_MS:
        return None
    if Role(role) is Role.ACCOUNT:
        token_outside_demo = data.get("via") == "token" and not settings.demo
        return Principal(Role.ACCOUNT, subject) if _eip55(subject) and not token_outside_demo else None
    user = next((u for u in settings.users if u.name == subject and u.role == role), None)
    if user is None or data.get("pw") != fingerprint(user.password_hash, settings.session_secret):
        return None
    return Principal(user.role, user.name)


def fingerprint(password_hash: str, key: str) -> str:
    """A short keyed digest of a staff user's password hash, kept in the session to end it when the password
    changes (keyed: the session cookie is signed, not encrypted, and says nothing of the hash)."""
    return hmac.new(key.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:24]


def _eip55(text: str) -> bool:
    try:
        return str(Address.parse(text)) == text
    except InvalidAddress:
        return False


Who = Annotated[Principal | None, Depends(principal)]

UNAUTHENTICATED = {"WWW-Authenticate": "Session"}


def require(*roles: Role) -> Callable[[Principal | None, Response], Principal]:
    """A dependency that returns the signed-in Principal if its role is one of ``roles``; 401 (with
    ``WWW-Authenticate: Session``) for an anonymous visitor, 403 for someone else. What it guards is one person's
    view: no cache keeps it (``Cache-Control: private, no-store``)."""
    allowed = frozenset(roles)

    def signed_in(who: Who, response: Response) -> Principal:
        response.headers["Cache-Control"] = "private, no-store"
        if who is None:
            raise HTTPException(401, "sign in first", headers=UNAUTHENTICATED)
        if who.role not in allowed:
            raise HTTPException(403, f"a {who.role.value} may not see this")
        return who

    return signed_in


Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.RESEARCHER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Signed = Annotated[Principal, Depends(require(Role.OPERATOR, Role.RESEARCHER, Role.ACCOUNT))]


def login_redirect(request: Request) -> RedirectResponse:
    """Send an anonymous visitor of a page to the login page, to come back to this page afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='/')}", status_code=303)


def page_guard(request: Request, who: Principal | None, *roles: Role) -> RedirectResponse | None:
    """For a page only ``roles`` may see: None when ``who`` may; else where to send them instead (the login page
    for an anonymous visitor, the overview, which forwards to their own page, for anyone else)::

        if (away := page_guard(request, who, Role.OPERATOR)) is not None:
            return away
    """
    if who is None:
        return login_redirect(request)
    return None if who.role in roles else RedirectResponse("/", status_code=303)
