"""The HTTP edges, as pure ASGI middleware: requests the app refuses, HEAD for every GET, security headers.

``RequestGuard`` answers 400 (problem details) to a path or query with a control character (NUL, …) or bytes
that are not UTF-8, before any route or database sees it, and turns an unexpected error into a 500 problem
that says nothing of its cause. ``SameOriginWrites`` refuses (403) a state-changing request another site's page
sent: an ``Origin`` that is not ours, or ``Sec-Fetch-Site: cross-site`` (the CSRF defence; the session cookie is
also SameSite=Lax). ``HeadAsGet`` answers ``HEAD`` wherever ``GET`` is, with the GET's headers
and no body. ``SecurityHeaders`` puts a Content-Security-Policy and its companions on every response; the API
docs pages (Swagger UI, ReDoc) get a policy that allows their own inline script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.problems import problem

log = logging.getLogger(__name__)

BASE_POLICY = "base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"
PAGE_POLICY = f"default-src 'self'; {BASE_POLICY}"
# Swagger UI and ReDoc: their inline start-up script (by hash), inline styles (ReDoc's styled components
# write <style> elements), data: images (Swagger UI's icons) and a blob: worker (ReDoc's search)
DOCS_POLICY = (
    "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    f"worker-src 'self' blob:; {BASE_POLICY}"
)
HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with our own form posts, which
    # the same-origin check must then refuse; nothing is sent to other sites either way
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def refusal(raw: bytes) -> str | None:
    """Why a percent-encoded path or query is refused (not UTF-8, or a control character), or None."""
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    found = CONTROL.search(text)
    return f"holds the control character U+{ord(found.group()):04X}" if found else None


class RequestGuard:
    """Refuses unreadable paths and queries with 400; an unexpected error becomes a bare 500 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        query = scope.get("query_string", b"").replace(b"+", b" ")
        for part, raw in (("path", raw_path), ("query", query)):
            reason = refusal(raw)
            if reason is not None:
                safe = raw_path.decode("ascii", "backslashreplace")
                response = problem(Request(scope), 400, f"the request's {part} {reason}", instance=safe)
                await response(scope, receive, send)
                return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            await problem(Request(scope), 500, "unexpected error; it has been logged")(scope, receive, send)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def cross_origin(scope: Scope, allowed_origins: Iterable[str] = ()) -> str | None:
    """Why a state-changing request comes from another site, or None when it is ours: its ``Origin`` (when sent)
    must name our own host (the ``Host`` it was sent to) or one of ``allowed_origins``; ``Sec-Fetch-Site`` (when
    sent) must not say cross-site."""
    origin = _header(scope, b"origin")
    if origin is not None:
        allowed = {o.rstrip("/").lower() for o in allowed_origins}
        host = (_header(scope, b"host") or "").lower()
        parts = urlsplit(origin.lower())
        ours = origin.lower() in allowed or (bool(host) and parts.scheme in ("http", "https") and parts.netloc == host)
        if not ours:
            return f"the request comes from another origin ({origin[:100]})"
    if (_header(scope, b"sec-fetch-site") or "").lower() == "cross-site":
        return "the request comes from another site"
    return None


class SameOriginWrites:
    """POST, PUT, PATCH and DELETE only from our own pages: another origin gets a 403 problem (``exempt`` paths,
    such as the public read-only JSON-RPC, are left alone)."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = (), exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed_origins = tuple(allowed_origins)
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITES and scope["path"] not in self.exempt:
            reason = cross_origin(scope, self.allowed_origins)
            if reason is not None:
                await problem(Request(scope), 403, reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class HeadAsGet:
    """``HEAD`` runs the ``GET`` and sends its status and headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class SecurityHeaders:
    """A Content-Security-Policy, nosniff, no referrer and no framing on every HTTP response."""

    def __init__(self, app: ASGIApp, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in self.docs_paths:
            await self.app(scope, receive, _HashingInlineScripts(send))
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with(message, PAGE_POLICY.encode())
            await send(message)

        await self.app(scope, receive, with_headers)


class _HashingInlineScripts:
    """Holds a docs page until its body is complete, then allows exactly its inline scripts by hash."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.start: Message | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if message.get("more_body", False):
            return
        scripts = " ".join(
            ["'self'"]
            + [
                "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
                for script in INLINE_SCRIPT.findall(bytes(self.body))
            ]
        )
        await self.send(_with(self.start, DOCS_POLICY.format(scripts=scripts).encode()))
        await self.send({"type": "http.response.body", "body": bytes(self.body), "more_body": False})


def _with(start: Message, policy: bytes) -> Message:
    """The response start with the security headers added (those the app set itself are kept)."""
    headers = list(start.get("headers", []))
    present = {name.lower() for name, _ in headers}
    headers += [(k, v) for k, v in ((b"content-security-policy", policy), *HEADERS) if k not in present]
    return {**start, "headers": headers}
