"""Signing in and out: the login page, staff passwords, Sign-In with Ethereum, demo rider tokens, ``/api/v1/me``."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboard import auth
from dashboard.config import DashboardConfig, Principal, Role, StaffUser
from dashboard.deps import Clock, Config, Lang, Signed, Who, fingerprint
from dashboard.problems import problem
from dashboard.routes.pages import HOME, render, safe_next
from dashboard.schemas import Me, SiweChallenge, SiweLogin
from sensors.address import InvalidAddress, checksummed

NONCE_TTL_MS = 5 * 60_000
USER_FAILURES, CLIENT_FAILURES, CLIENT_NONCES = 5, 20, 60  # per 15 minutes
NAME_MAX, PASSWORD_MAX, TOKEN_MAX = 128, 1024, 256
STATEMENT = "Sign in to the Smart Zone dashboard."


@dataclass
class AuthState:
    """What signing in remembers between requests, in this process: nonces handed out, failures counted."""

    nonces: auth.NonceStore = field(default_factory=lambda: auth.MemoryNonces(NONCE_TTL_MS))
    by_user: auth.Throttle = field(default_factory=lambda: auth.Throttle(USER_FAILURES))
    by_client: auth.Throttle = field(default_factory=lambda: auth.Throttle(CLIENT_FAILURES))
    nonces_by_client: auth.Throttle = field(default_factory=lambda: auth.Throttle(CLIENT_NONCES))


def auth_state(request: Request) -> AuthState:
    """The app's sign-in state (made on first use; ``create_app`` or a test may set ``app.state.auth``)."""
    state: AuthState | None = getattr(request.app.state, "auth", None)
    if state is None:
        state = request.app.state.auth = AuthState()
    return state


State = Annotated[AuthState, Depends(auth_state)]


def start_session(request: Request, role: Role, subject: str, now_ms: int, **extra: str) -> None:
    """Forget whatever the session held (no fixation) and open a new one, with a new id, for ``subject``."""
    request.session.clear()
    request.session.update({"role": role.value, "sub": subject, "iat": now_ms, "sid": secrets.token_urlsafe(16)})
    request.session.update(extra)


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def origin_of(request: Request, settings: DashboardConfig) -> str:
    """Our origin (scheme://host[:port]): the configured public one, else the one the request was sent to."""
    if settings.public_origin:
        return settings.public_origin.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


router = APIRouter()


def login_page(
    request: Request, lang: Any, settings: DashboardConfig, next_path: str, error: str | None, status: int = 200
) -> HTMLResponse:
    context = {"next": next_path, "demo": settings.demo, "error": error}
    script = {"next": next_path, "home": HOME}
    return render(request, "login.html", context, lang=lang, principal=None, script_config=script, status_code=status)


@router.get("/login", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def show_login(request: Request, lang: Lang, config: Config, who: Who, next: str = "/") -> Response:
    """The sign-in page: staff name and password, a wallet, or (in demo mode) a rider token."""
    if who is not None:
        return RedirectResponse(_after(who, next), status_code=303)
    return login_page(request, lang, config, safe_next(next), None)


def _after(who: Principal, next_path: str) -> str:
    target = safe_next(next_path)
    return HOME[who.role] if target == "/" else target


@router.post("/login", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def log_in(
    request: Request,
    lang: Lang,
    config: Config,
    state: State,
    now: Clock,
    name: Annotated[str, Form(max_length=NAME_MAX)],
    password: Annotated[str, Form(max_length=PASSWORD_MAX)],
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """Sign a staff member in with name and password; every failure gets the same answer."""
    at, user_key, client = now(), name.strip().lower(), client_key(request)
    if state.by_user.blocked(user_key, at) or state.by_client.blocked(client, at):
        return login_page(request, lang, config, safe_next(next), "auth.error.throttled", 429)
    user = _check_password(config.users, name, password)
    if user is None:
        state.by_user.fail(user_key, at)
        state.by_client.fail(client, at)
        return login_page(request, lang, config, safe_next(next), "auth.error.wrong", 401)
    state.by_user.clear(user_key)
    start_session(request, user.role, user.name, at, pw=fingerprint(user.password_hash, config.session_secret))
    return RedirectResponse(_after(Principal(user.role, user.name), next), status_code=303)


def _check_password(users: tuple[StaffUser, ...], name: str, password: str) -> StaffUser | None:
    """The staff user ``name`` if ``password`` is theirs; an unknown name costs a hash check all the same."""
    user = next((u for u in users if hmac.compare_digest(u.name.encode(), name.encode())), None)
    stand_in = auth.dummy_hash(users[0].password_hash if users else None)
    matched = auth.verify_password(password, user.password_hash if user else stand_in)
    return user if matched and user is not None and user.role is not Role.ACCOUNT else None


@router.post("/logout", include_in_schema=False)
def log_out(request: Request) -> RedirectResponse:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@router.get("/auth/siwe/nonce", tags=["auth"])
def siwe_nonce(
    request: Request,
    response: Response,
    config: Config,
    state: State,
    now: Clock,
    address: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="The wallet's address.")] = None,
) -> SiweChallenge:
    """A fresh single-use nonce and what the Sign-In with Ethereum message must name: domain, URI, chain, times,
    and the wallet's ``address`` in its EIP-55 form (a browser has no Keccak to write it)."""
    at, origin, client = now(), origin_of(request, config), client_key(request)
    try:
        eip55 = checksummed(address) if address else None
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None
    if state.nonces_by_client.blocked(client, at):  # one client may not crowd everyone's nonces out of the store
        raise HTTPException(429, "too many sign-in attempts from here; try again in a few minutes")
    state.nonces_by_client.fail(client, at)
    response.headers["Cache-Control"] = "no-store"
    return SiweChallenge(
        address=eip55,
        nonce=state.nonces.issue(at),
        domain=origin.split("://", 1)[1],
        uri=f"{origin}/login",
        chain_id=config.chain_id if config.chain_id is not None else 1,
        statement=STATEMENT,
        issued_at=iso(at),
        expiration_time=iso(at + NONCE_TTL_MS),
    )


@router.post("/auth/siwe", tags=["auth"], response_model=None)
def siwe_login(request: Request, body: SiweLogin, config: Config, state: State, now: Clock) -> Response | Me:
    """Sign a wallet in with a signed EIP-4361 message; a refusal is a 401 problem with its ``reason``."""
    origin = origin_of(request, config)
    expect = auth.SiweExpectation(origin.split("://", 1)[1], origin, config.chain_id)
    at = now()
    try:
        message = auth.verify_siwe(body.message, body.signature, expect, state.nonces, at)
    except auth.SiweError as exc:
        return problem(request, 401, exc.detail, headers={"WWW-Authenticate": "Session"}, reason=exc.reason)
    start_session(request, Role.ACCOUNT, message.address, at)
    return me_of(Principal(Role.ACCOUNT, message.address))


@router.post("/auth/token", include_in_schema=False, response_model=None)
def token_login(
    request: Request,
    lang: Lang,
    config: Config,
    state: State,
    now: Clock,
    token: Annotated[str, Form(max_length=TOKEN_MAX)],
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    """Demo mode only: sign in as the rider a demo token stands for."""
    if not config.demo:
        raise HTTPException(404, "rider tokens are only accepted in demo mode")
    at, client = now(), client_key(request)
    if state.by_client.blocked(client, at):
        return login_page(request, lang, config, safe_next(next), "auth.error.throttled", 429)
    address = next_match(config.rider_tokens, token)
    if address is None:
        state.by_client.fail(client, at)
        return login_page(request, lang, config, safe_next(next), "auth.error.token", 401)
    subject = checksummed(address)
    start_session(request, Role.ACCOUNT, subject, at, via="token")
    return RedirectResponse(_after(Principal(Role.ACCOUNT, subject), next), status_code=303)


def next_match(tokens: dict[str, str], token: str) -> str | None:
    """The address of ``token``, comparing with every token in constant time."""
    found = None
    for candidate, address in tokens.items():
        if hmac.compare_digest(candidate.encode(), token.encode()):
            found = address
    return found


def me_of(who: Principal) -> Me:
    return Me(role=who.role.value, subject=who.subject, staff=who.staff, home=HOME[who.role])


@router.get("/api/v1/me", tags=["auth"])
def get_me(who: Signed) -> Me:
    """Who is signed in: role, subject (a staff name or an EIP-55 address) and their home page."""
    return me_of(who)
