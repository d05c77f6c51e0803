"""Errors as RFC 9457 problem details: every HTTP error of the app leaves as ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dashboard.schemas import Problem
from sensors.errors import ServiceUnavailable

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    """A JSON response with the problem-details media type."""

    media_type = PROBLEM_JSON


def problem(
    request: Request,
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem-details response; its title is the status phrase, as RFC 9457 asks for type about:blank.

    ``instance`` defaults to the request's path.
    """
    body = Problem(
        title=_phrase(status),
        status=status,
        detail=detail,
        instance=request.url.path if instance is None else instance,
        **extensions,
    )
    return ProblemResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    return problem(request, exc.status_code, detail, headers=exc.headers)


def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for it only
        raise exc
    errors = [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in exc.errors()]
    detail = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors)
    return problem(request, 422, detail, errors=jsonable_encoder(errors))


def _service_unavailable(request: Request, exc: Exception) -> ProblemResponse:
    # The service's name only: its URL may carry credentials.
    service = exc.service if isinstance(exc, ServiceUnavailable) else "a service"
    return problem(request, 503, f"the {service} cannot be reached; try again later")


def add_problem_handlers(app: FastAPI) -> None:
    """Turn HTTP errors, invalid requests and unreachable services into problem details."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceUnavailable, _service_unavailable)


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}}}


INVALID: dict[int | str, dict[str, Any]] = {422: _documented("Invalid parameters (problem details)")}
"""OpenAPI entry for a route whose parameters can be invalid."""

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _documented("No such item (problem details)"), **INVALID}
"""OpenAPI entries for a route that looks one item up."""

NOT_COMMITTED: dict[int | str, dict[str, Any]] = {409: _documented("Not on chain yet (problem details)")}
"""OpenAPI entry for a route about something that exists only once its epoch is on chain."""

SIGNED: dict[int | str, dict[str, Any]] = {
    401: _documented("Not signed in (problem details; WWW-Authenticate: Session)")
}
"""OpenAPI entry for a route that needs a login."""

FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: _documented("Signed in, but not allowed to see this (problem details)")
}
"""OpenAPI entry for a route some roles may not use."""
