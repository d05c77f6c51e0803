"""Liveness and readiness: ``/healthz`` says the process answers, ``/readyz`` whether it can do its work.

``/healthz`` is an ``async`` route that touches nothing: it runs on the event loop, so page load filling the
worker threads cannot delay it. ``/readyz`` runs the composition root's checks (database reachable,
settlement not stuck, broker connected) each in its own daemon thread with a deadline, at most one run of a
check at a time, and caches the answers for ``CACHE_S`` so that a load of probes does not load the database.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dashboard.schemas import Health, ReadyCheck, ReadyReport
from sensors.errors import SmartZoneError
from settlement import readiness
from settlement.db import Database

TIMEOUT_S = 2.0
CACHE_S = 1.0

Probe = Callable[[], tuple[bool, str]]
"""A check's body: (ok, detail). It may block; it should say what it saw, never a secret."""


@dataclass(frozen=True, slots=True)
class Check:
    """A named readiness check."""

    name: str
    probe: Probe


class Readiness:
    """Runs the checks with a deadline and caches their answers for ``cache_s``."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        timeout_s: float = TIMEOUT_S,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = tuple(checks)
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, tuple[float, Future[tuple[bool, str]]]] = {}
        self._cached: tuple[float, list[ReadyCheck]] | None = None

    async def report(self) -> ReadyReport:
        """Every check's answer (cached for ``cache_s``); ready when all are ok."""
        now = self._clock()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self.cache_s:
                results = self._cached[1]
            else:
                results = []
        if not results and self.checks:
            results = list(await asyncio.gather(*(self._answer(check) for check in self.checks)))
            with self._lock:
                self._cached = (self._clock(), results)
        ready = all(r.ok for r in results)
        return ReadyReport(status="ready" if ready else "not ready", checks=results)

    async def _answer(self, check: Check) -> ReadyCheck:
        started, future = self._start(check)
        try:
            ok, detail = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self.timeout_s)
        except TimeoutError:
            waited = self._clock() - started
            return ReadyCheck(name=check.name, ok=False, detail=f"no answer after {waited:.1f} s")
        except SmartZoneError as exc:  # our errors name services by their redacted URLs
            return ReadyCheck(name=check.name, ok=False, detail=str(exc))
        except Exception as exc:  # a driver's own text may quote what it was given: name the error only
            return ReadyCheck(name=check.name, ok=False, detail=f"the check failed: {type(exc).__name__}")
        return ReadyCheck(name=check.name, ok=ok, detail=detail)

    def _start(self, check: Check) -> tuple[float, Future[tuple[bool, str]]]:
        """The check's run in progress (one that hangs is not started again), or a new one in a daemon thread."""
        with self._lock:
            running = self._running.get(check.name)
            if running is not None and not running[1].done():
                return running
            future: Future[tuple[bool, str]] = Future()
            self._running[check.name] = started = (self._clock(), future)

        def run() -> None:
            try:
                future.set_result(check.probe())
            except BaseException as exc:  # handed to the waiting request
                future.set_exception(exc)

        # a daemon thread, not a pool: a check stuck in a connect must not hold the process open at exit
        threading.Thread(target=run, name=f"readyz-{check.name}", daemon=True).start()
        return started


# --- the checks the composition root passes -----------------------------------------------------------
def database_check(database: Database, timeout_s: float = TIMEOUT_S / 2) -> Check:
    """The database answers ``SELECT 1`` (within ``timeout_s`` on PostgreSQL)."""

    def probe() -> tuple[bool, str]:
        readiness.ping(database, timeout_s)
        return True, f"{database.url} answers"

    return Check("database", probe)


class SettlementLag:
    """Settlement is moving: no epoch has waited ``max_lag_s`` for the chain and no trip ``max_lag_s`` for an epoch.

    An epoch's wait is measured from ``closed_ms`` (the aggregator's wall clock). A trip has no wall-clock
    time of its own (its times are the readings', which may be simulated), so its wait is how long the same
    trip has been seen as the oldest one waiting: a lower bound that starts when this server first looks and
    grows only while settlement does not move.
    """

    def __init__(
        self, read: Callable[[], readiness.Backlog], max_lag_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.read = read
        self.max_lag_s = max_lag_s
        self._clock = clock
        self._oldest: tuple[str, float] | None = None  # the oldest waiting trip and when it was first seen

    def __call__(self) -> tuple[bool, str]:
        backlog = self.read()
        now = self._clock()
        if backlog.oldest_trip is None:
            self._oldest = None
        elif self._oldest is None or self._oldest[0] != backlog.oldest_trip:
            self._oldest = (backlog.oldest_trip, now)
        trip_wait = now - self._oldest[1] if self._oldest else 0.0
        epoch_wait = max(0.0, now - backlog.oldest_epoch[1] / 1000) if backlog.oldest_epoch else 0.0
        more = "+" if backlog.waiting >= readiness.WAITING_COUNT_CAP else ""
        parts = [f"{backlog.waiting}{more} trips wait for settlement"]
        if self._oldest is not None:
            parts.append(f"the oldest ({self._oldest[0]}) for at least {trip_wait:.0f} s")
        if backlog.oldest_epoch is not None:
            parts.append(f"epoch {backlog.oldest_epoch[0]} was closed {epoch_wait:.0f} s ago and is not on chain")
        ok = max(trip_wait, epoch_wait) < self.max_lag_s
        parts.append(f"lag {'below' if ok else 'over'} the limit of {self.max_lag_s:g} s")
        return ok, "; ".join(parts)


def settlement_lag_check(database: Database, max_lag_s: float, clock: Callable[[], float] = time.time) -> Check:
    """Settlement lag below ``max_lag_s`` (``SettlementLag`` over the database's backlog)."""
    return Check("settlement", SettlementLag(lambda: readiness.backlog(database), max_lag_s, clock))


def broker_check(connected: Callable[[], bool], url: str) -> Check:
    """The MQTT client is connected to its broker; ``url`` is shown, so pass it redacted."""

    def probe() -> tuple[bool, str]:
        if connected():
            return True, f"connected to {url}"
        return False, f"not connected to {url}"

    return Check("broker", probe)


# --- routes ---------------------------------------------------------------------------------------------
router = APIRouter(tags=["health"])

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ReadyReport, "description": "Not ready: the failing checks say why"}
}


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up and answering (liveness); it touches no database."""
    return Health()


@router.get("/readyz", response_model=ReadyReport, responses=NOT_READY)
async def readyz(request: Request) -> JSONResponse:
    """Whether the service can do its work (readiness): each check with what it saw; 503 when one fails."""
    checks: Readiness = request.app.state.readiness
    report = await checks.report()
    status = 200 if report.status == "ready" else 503
    return JSONResponse(report.model_dump(), status_code=status, headers={"Cache-Control": "no-store"})
