"""The dependencies routes declare: the ports and the configuration ``create_app`` was given, the language of the
request, the clock. Tests replace any of them with ``app.dependency_overrides``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from dashboard.config import DashboardConfig, Principal
from dashboard.i18n import Language, negotiate
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


def principal(request: Request) -> Principal | None:
    """Who is signed in, from the session cookie; None for an anonymous visitor.

    Placeholder until ``dashboard.auth`` reads the session: everyone is anonymous.
    """
    return None


Who = Annotated[Principal | None, Depends(principal)]
