"""The chain's health as the settlement page shows it: the port, a fake, and the status built from a node probe."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from sensors.redaction import redact_url
from settlement.views import EpochView, ReadModel

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s,;]+")
SETTLED = ("committed", "final")
WAITING_TRIPS = 1000
"""Priced trips waiting for an epoch are counted up to this many (the page then says "1000+")."""
RECENT_EPOCHS = 200
"""The newest epochs looked at for the last settled one and those still waiting."""


@dataclass(frozen=True, slots=True)
class ChainHealth:
    """What the operator needs to know about settlement on chain.

    ``reachable`` False: the node did not answer and ``reason`` says why (the chain fields are then None).
    ``settler_balance_wei`` is the settler's native coin for gas. The lag: ``epochs_waiting`` closed and not on chain
    yet, ``trips_waiting`` in them or priced and not batched (capped at ``WAITING_TRIPS``; ``trips_capped`` says so),
    ``behind_s`` seconds since the last settlement.
    """

    node: str | None
    reachable: bool
    reason: str | None
    checked_ms: int
    chain_id: int | None = None
    latest_block: int | None = None
    settler: str | None = None
    settler_balance_wei: int | None = None
    contract_last_epoch: int | None = None
    last_settled_epoch: int | None = None
    last_settled_ms: int | None = None
    behind_s: int | None = None
    epochs_waiting: int = 0
    trips_waiting: int = 0
    trips_capped: bool = False


class ChainStatus(Protocol):
    """Where the chain stands; never raises: an unreachable node is a ``ChainHealth`` with ``reachable`` False."""

    def status(self) -> ChainHealth: ...

    def claimed(self, owners: Sequence[str]) -> dict[str, int] | None:
        """What each owner has claimed from the clearing contract so far (micro-euro), read on chain: claims are
        sent by the owners themselves, so no database of ours knows them. None when the chain cannot be read."""
        ...


class FakeChainStatus:
    """A chain status that says what a test sets in ``health``."""

    def __init__(self, health: ChainHealth, claims: dict[str, int] | None = None) -> None:
        self.health = health
        self.claims = claims
        self.calls = 0

    def claimed(self, owners: Sequence[str]) -> dict[str, int] | None:
        return None if self.claims is None else {o: self.claims[o] for o in owners if o in self.claims}

    def status(self) -> ChainHealth:
        self.calls += 1
        return self.health


class NodeFacts(Protocol):
    """What a node probe reads (``settlement.chain.health.NodeReading``)."""

    @property
    def chain_id(self) -> int: ...
    @property
    def latest_block(self) -> int: ...
    @property
    def settler(self) -> str | None: ...
    @property
    def settler_balance_wei(self) -> int | None: ...
    @property
    def contract_last_epoch(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Lag:
    """How far settlement is behind, from the read model."""

    last_settled_epoch: int | None
    last_settled_ms: int | None
    epochs_waiting: int
    trips_waiting: int
    trips_capped: bool


def lag_of(epochs: list[EpochView], priced_trips: int) -> Lag:
    """The last settled of ``epochs`` (newest first) and what waits: closed epochs and their trips, and
    ``priced_trips`` priced and not batched (``WAITING_TRIPS`` + 1 means more than the cap)."""
    settled = next((e for e in epochs if e.status in SETTLED), None)
    closed = [e for e in epochs if e.status not in SETTLED]
    capped = priced_trips > WAITING_TRIPS
    trips = min(priced_trips, WAITING_TRIPS) + sum(e.trip_count for e in closed)
    return Lag(
        settled.epoch_id if settled else None,
        settled.settled_ms if settled else None,
        len(closed),
        trips,
        capped,
    )


CLAIMS_KEPT = 64
"""How many pages of owners' claims ``LiveChainStatus`` keeps at once (then it starts afresh)."""


class LiveChainStatus:
    """The ``ChainStatus`` of a running platform: a node probe (``settlement.chain.health``) and the read model's
    epochs, kept for ``ttl_s`` seconds so that a busy page does not hammer the node."""

    def __init__(
        self,
        probe: Callable[[], NodeFacts],
        model: ReadModel,
        clock: Callable[[], int],
        node: str | None,
        ttl_s: float = 5.0,
    ) -> None:
        self.probe = probe
        self.model = model
        self.clock = clock
        self.node = node
        self.ttl_ms = int(ttl_s * 1000)
        self._lock = threading.Lock()
        self._last: ChainHealth | None = None
        self._claims: dict[tuple[str, ...], tuple[int, dict[str, int] | None]] = {}

    def status(self) -> ChainHealth:
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last.checked_ms < self.ttl_ms:
                return self._last
            self._last = self._read(now)
            return self._last

    def claimed(self, owners: Sequence[str]) -> dict[str, int] | None:
        """Read through the probe and kept ``ttl_s`` like the status (a failure too): a page load is one round of
        calls at most every few seconds, and a node that hangs costs its timeout once, not on every load."""
        read = getattr(self.probe, "claimed", None)
        if read is None or not owners:
            return None if read is None else {}
        key, now = tuple(owners), self.clock()
        with self._lock:
            kept = self._claims.get(key)
            if kept is not None and now - kept[0] < self.ttl_ms:
                return kept[1]
        try:
            found: dict[str, int] | None = read(owners)
        except Exception:  # noqa: BLE001 - the page shows what the database knows, marked as unread
            found = None
        with self._lock:
            if len(self._claims) >= CLAIMS_KEPT:
                self._claims.clear()
            self._claims[key] = (now, found)
        return found

    def _read(self, now: int) -> ChainHealth:
        health = ChainHealth(self.node, True, None, now)
        try:
            facts = self.probe()
            health = replace(
                health,
                chain_id=facts.chain_id,
                latest_block=facts.latest_block,
                settler=facts.settler,
                settler_balance_wei=facts.settler_balance_wei,
                contract_last_epoch=facts.contract_last_epoch,
            )
        except Exception as exc:  # noqa: BLE001 - any failure of the node is shown, never raised
            health = replace(health, reachable=False, reason=_reason(exc))
        try:
            epochs = self.model.epochs(limit=RECENT_EPOCHS)
            priced = len(self.model.trips(limit=WAITING_TRIPS + 1, status="priced"))
        except Exception as exc:  # noqa: BLE001 - the database being away is shown too
            reason = f"read model: {_reason(exc)}"
            return replace(health, reason=reason if health.reason is None else f"{health.reason}; {reason}")
        lag = lag_of(epochs, priced)
        behind = None if lag.last_settled_ms is None else max(0, (now - lag.last_settled_ms) // 1000)
        return replace(
            health,
            last_settled_epoch=lag.last_settled_epoch,
            last_settled_ms=lag.last_settled_ms,
            behind_s=behind,
            epochs_waiting=lag.epochs_waiting,
            trips_waiting=lag.trips_waiting,
            trips_capped=lag.trips_capped,
        )


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, any URL in it without its credentials."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _URL.sub(lambda m: redact_url(m.group(0)), text)[:200]
