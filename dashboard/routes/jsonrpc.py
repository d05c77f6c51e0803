"""The embedded chain's read-only JSON-RPC 2.0 endpoint, ``POST /rpc``: what a verifier, a wallet or a browser reads.

Mounted only when the app serves an embedded chain (a real node has its own URL). It speaks JSON-RPC 2.0 over
HTTP: one request or a batch of at most ``MAX_BATCH``, a body of at most ``MAX_BODY_BYTES`` nested at most
``MAX_DEPTH`` deep, answers of at most ``MAX_ANSWER_BYTES``. Only the reader's methods are offered; every other
one (``eth_sendRawTransaction`` and all that would sign or send) gets error -32601 "method not found
(read-only)". Every failure is a JSON-RPC error object, never an HTTP 500. Any origin may read it from a browser
(CORS, no credentials): it holds nothing private.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, Protocol

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from settlement.errors import ChainError

log = logging.getLogger(__name__)

PATH = "/rpc"
MAX_BODY_BYTES = 128 * 1024
MAX_BATCH = 50
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 16
WORKERS = 2
"""Threads the endpoint may take at once: a burst of calls waits for them, not for the app's shared thread pool."""
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
REVERTED, SERVER_ERROR, LIMIT_EXCEEDED = 3, -32000, -32005
READ_ONLY = "method not found (read-only)"
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_HEADER_LIST = re.compile(r"^[A-Za-z0-9-]+(\s*,\s*[A-Za-z0-9-]+)*$")


class ChainReader(Protocol):
    """A chain's read-only JSON-RPC methods (``settlement.chain.rpc.EmbeddedRpc`` on the embedded chain).

    ``request`` returns the method's JSON result; it raises ``ValueError`` for parameters it cannot take and
    ``ChainError`` when the chain refuses (with a ``data`` attribute when an ``eth_call`` reverted).
    """

    @property
    def methods(self) -> frozenset[str]: ...

    def request(self, method: str, params: list[Any]) -> Any: ...


def error(code: int, message: str, request_id: Any = None, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error response."""
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": body}


def answer_one(reader: ChainReader, request: Any) -> dict[str, Any] | None:
    """The response to one request object, or None for a notification (a request without an id)."""
    if not isinstance(request, dict):
        return error(INVALID_REQUEST, "invalid request: not an object")
    request_id = request.get("id")
    if not _valid_id(request_id):
        return error(INVALID_REQUEST, "invalid request: id must be a string, a number or null")
    method, params = request.get("method"), request.get("params", [])
    if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return error(INVALID_REQUEST, 'invalid request: needs "jsonrpc": "2.0" and a method name', request_id)
    if method not in reader.methods:
        result = error(METHOD_NOT_FOUND, READ_ONLY, request_id, {"method": method[:80]})
    elif not isinstance(params, list):
        result = error(INVALID_PARAMS, "invalid params: params must be an array", request_id)
    else:
        result = _call(reader, method, params, request_id)
    return result if "id" in request else None


def _call(reader: ChainReader, method: str, params: list[Any], request_id: Any) -> dict[str, Any]:
    try:
        return {"jsonrpc": "2.0", "id": request_id, "result": reader.request(method, params)}
    except ValueError as exc:
        return error(INVALID_PARAMS, f"invalid params: {exc}", request_id)
    except ChainError as exc:
        data = getattr(exc, "data", None)
        if isinstance(data, str):
            return error(REVERTED, str(exc), request_id, data)
        return error(SERVER_ERROR, str(exc), request_id)
    except Exception:  # the edge of the endpoint: a JSON-RPC error, with the cause in the log
        log.exception("JSON-RPC %s failed", method)
        return error(INTERNAL_ERROR, "internal error; it has been logged", request_id)


def nesting(body: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``body`` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


def answer(reader: ChainReader, body: bytes) -> tuple[int, bytes]:
    """The HTTP status and body answering a JSON-RPC ``body``; an empty body when only notifications came."""
    if nesting(body) > MAX_DEPTH:  # py-evm raises Python's recursion limit: a deep body could crash the process
        return 200, _dumps(error(PARSE_ERROR, f"parse error: nested deeper than {MAX_DEPTH}"))
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return 200, _dumps(error(PARSE_ERROR, "parse error: the body is not JSON"))
    if not isinstance(payload, list):
        single = answer_one(reader, payload)
        return (200, _dumps(single)) if single is not None else (204, b"")
    if not payload:
        return 200, _dumps(error(INVALID_REQUEST, "invalid request: an empty batch"))
    if len(payload) > MAX_BATCH:
        return 200, _dumps(error(INVALID_REQUEST, f"invalid request: a batch of {len(payload)}; at most {MAX_BATCH}"))
    parts: list[bytes] = []
    size = 0
    for request in payload:
        response = answer_one(reader, request)
        if response is None:
            continue
        encoded = _dumps(response)
        if size + len(encoded) > MAX_ANSWER_BYTES:
            encoded = _dumps(error(LIMIT_EXCEEDED, "the batch's answer is too large", response["id"]))
        size += len(encoded)
        parts.append(encoded)
    return (200, b"[" + b",".join(parts) + b"]") if parts else (204, b"")


def _valid_id(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or (isinstance(value, (str, int)) and not isinstance(value, bool))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None once it grows beyond ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


def cors_headers(request: Request) -> dict[str, str]:
    """Any origin may read and post, without credentials (no cookies, no auth: the chain is public)."""
    asked = request.headers.get("access-control-request-headers", "")
    return {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": asked if _HEADER_LIST.match(asked) else "Content-Type",
        "access-control-max-age": "600",
    }


def router(reader: ChainReader) -> APIRouter:
    """``POST``, ``GET`` and ``OPTIONS`` on ``/rpc`` over ``reader``."""
    routes = APIRouter(tags=["chain"])
    workers: list[anyio.CapacityLimiter] = []  # made on the first request: it belongs to the server's event loop

    @routes.post(PATH, summary="Read the embedded chain (JSON-RPC 2.0)")
    async def rpc(request: Request) -> Response:
        """Read-only Ethereum JSON-RPC 2.0 over the embedded chain: eth_chainId, eth_call, eth_getLogs, …"""
        body = await _read_body(request)
        if body is None:
            too_large = _dumps(error(INVALID_REQUEST, f"invalid request: the body exceeds {MAX_BODY_BYTES} bytes"))
            return Response(too_large, 413, headers=cors_headers(request), media_type="application/json")
        if not workers:
            workers.append(anyio.CapacityLimiter(WORKERS))
        status, content = await anyio.to_thread.run_sync(answer, reader, body, limiter=workers[0])
        media = "application/json" if content else None
        return Response(content, status, headers=cors_headers(request), media_type=media)

    @routes.get(PATH, summary="What the JSON-RPC endpoint offers")
    def describe(request: Request) -> Response:
        """The endpoint's methods and limits; JSON-RPC requests are POSTed here."""
        about = {
            "jsonrpc": "2.0",
            "read_only": True,
            "methods": sorted(reader.methods),
            "max_batch": MAX_BATCH,
            "max_body_bytes": MAX_BODY_BYTES,
        }
        return Response(_dumps(about), headers=cors_headers(request), media_type="application/json")

    @routes.options(PATH, include_in_schema=False)
    def preflight(request: Request) -> Response:
        return Response(status_code=204, headers=cors_headers(request))

    return routes
