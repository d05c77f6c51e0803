"""The HTTP edges, as pure ASGI middleware: requests the app refuses, HEAD for every GET, security headers.

``RequestGuard`` answers 400 (problem details) to a path or query with a control character (NUL, …) or bytes
that are not UTF-8, before any route or database sees it, and turns an unexpected error into a 500 problem
that says nothing of its cause. ``HeadAsGet`` answers ``HEAD`` wherever ``GET`` is, with the GET's headers
and no body. ``SecurityHeaders`` puts a Content-Security-Policy and its companions on every response; the API
docs pages (Swagger UI, ReDoc) get a policy that allows their own inline script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

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
    (b"referrer-policy", b"no-referrer"),
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
