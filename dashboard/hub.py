"""The live hub: fans the change source's events out to each connected client, bounded and filtered per client.

Every event gets a sequence number; the stream sends it as the SSE ``id`` (with the hub's boot token), so that
a client reconnecting with ``Last-Event-ID`` is sent what it missed: the alerts, epochs and trips kept in a
ring, and the latest row of every vehicle changed since. Those rows, over the fleet the change source read
first (``seed``), are also the fleet snapshot (``fleet_snapshot``): numbered by the same counter, so that a client
that loads it and resumes after its event id misses nothing. A client too slow to read gets its vehicle rows,
trip costs, alerts, epochs and KPIs coalesced, latest per key, instead of growing memory; one that still overflows
its bounds is dropped with a final ``status`` event. Everything runs on the event loop: no locks.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from dashboard.fleet import Row

KEYED = {"trip": "trip_id", "alert": "alert_id", "epoch": "epoch_id"}
"""Events a slow client gets only the latest of, per this key (a fleet going silent opens thousands of alerts)."""
REPLAYED = ("alert", "epoch", "trip")
STAFF_ONLY = ("vehicles", "kpis", "alert", "epoch")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a stream is for: staff see everything; an account sees only its own trips (``rider``, lower case).
    ``principal`` names the signed-in person (streams are capped per person)."""

    staff: bool
    rider: str | None = None
    principal: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event; ``seq`` None for one that is not numbered (status, clock, reset)."""

    name: str
    data: dict[str, object]
    seq: int | None = None

    def visible_to(self, viewer: Viewer) -> bool:
        if viewer.staff:
            return True
        if self.name == "trip":
            rider = self.data.get("rider")
            return isinstance(rider, str) and viewer.rider is not None and rider.lower() == viewer.rider
        return self.name not in STAFF_ONLY


@dataclass(eq=False)
class Client:
    """One connected stream's pending events: vehicle rows, trips, alerts, epochs and KPIs coalesced (the latest
    of each), and a bounded queue of the rest; beyond either bound the client is dropped."""

    viewer: Viewer
    max_queue: int = 1000
    max_keyed: int = 100_000
    queue: deque[Event] = field(default_factory=deque)
    rows: dict[str, Row] = field(default_factory=dict)
    rows_seq: int = 0
    rows_event: Event | None = None  # the one published event the pending rows came from, if only one
    keyed: dict[tuple[str, str], Event] = field(default_factory=dict)
    kpis: Event | None = None
    dropped: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: Event) -> None:
        """Queue ``event`` if this client may see it; drop the client when its queue overflows."""
        if self.dropped or not event.visible_to(self.viewer):
            return
        if event.name == "vehicles":
            self.rows_event = None if self.rows else event
            for r in event.data["rows"]:  # type: ignore[attr-defined]
                self.rows[str(r[0])] = r
            self.rows_seq = event.seq or self.rows_seq
        elif event.name in KEYED:
            if len(self.keyed) >= self.max_keyed:
                self.drop()
                return
            self.keyed[(event.name, str(event.data.get(KEYED[event.name])))] = event
        elif event.name == "kpis":
            self.kpis = event
        elif len(self.queue) >= self.max_queue:
            self.drop()
        else:
            self.queue.append(event)
        self.wake.set()

    def drop(self) -> None:
        """Give up on this client: forget what it has pending, leave it one last event, end its stream."""
        self.dropped = True
        self.queue.clear()
        self.rows.clear()
        self.rows_event = None
        self.keyed.clear()
        self.kpis = None
        self.queue.append(Event("status", {"ok": False, "reason": "too_slow"}))
        self.wake.set()

    def take(self) -> list[Event]:
        """Everything pending, in sequence order (unnumbered events first), and clear it."""
        events = list(self.queue)
        self.queue.clear()
        if self.rows:  # a client keeping up gets the published event itself: encoded once for every client
            merged = self.rows_event or Event("vehicles", {"rows": list(self.rows.values())}, self.rows_seq)
            events.append(merged)
            self.rows = {}
            self.rows_event = None
        events += self.keyed.values()
        self.keyed = {}
        if self.kpis is not None:
            events.append(self.kpis)
            self.kpis = None
        self.wake.clear()
        return sorted(events, key=lambda e: -1 if e.seq is None else e.seq)


class Hub:
    """The clients of one app and what they may be replayed on reconnect."""

    def __init__(self, *, ring: int = 2000, max_queue: int = 1000, max_keyed: int = 100_000) -> None:
        self.boot = secrets.token_hex(4)
        self.clients: set[Client] = set()
        self.ok = True
        self.closing = False
        self._seq = 0
        self._ring: deque[Event] = deque(maxlen=ring)
        self._evicted = 0  # the newest seq the ring no longer holds
        self._rows: dict[str, tuple[int, Row]] = {}  # the latest row of every vehicle, and the seq it came with
        self._seeded = False
        self._rows_version = 0
        self._rows_json: tuple[int, bytes] | None = None
        self._max_queue = max_queue
        self._max_keyed = max_keyed
        self._wire: OrderedDict[int, tuple[Event, str]] = OrderedDict()

    @property
    def seq(self) -> int:
        """The number of the last event published."""
        return self._seq

    def event_id(self, seq: int) -> str:
        return f"{self.boot}.{seq}"

    def encode(self, event: Event) -> str:
        """The event in the text/event-stream format (numbered events carry an ``id``), encoded once however
        many clients send it (the last few events' texts are kept)."""
        kept = self._wire.get(id(event))
        if kept is not None and kept[0] is event:
            return kept[1]
        head = "" if event.seq is None else f"id: {self.event_id(event.seq)}\n"
        text = f"{head}event: {event.name}\ndata: {orjson.dumps(event.data).decode()}\n\n"
        self._wire[id(event)] = (event, text)
        if len(self._wire) > 256:
            self._wire.popitem(last=False)
        return text

    def add(self, viewer: Viewer) -> Client:
        client = Client(viewer, self._max_queue, self._max_keyed)
        self.clients.add(client)
        if not self.ok:
            client.offer(Event("status", {"ok": False}))
        return client

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    def close(self) -> None:
        """Ask every stream to end (the server is stopping): safe from any thread, the streams see it within a
        second. Without it, an open stream holds a server's graceful shutdown until the browser leaves."""
        self.closing = True

    def publish(self, name: str, data: dict[str, object]) -> Event:
        """Number an event, keep it for replay where it is kept, and offer it to every client."""
        self._seq += 1
        event = Event(name, data, self._seq)
        if name == "vehicles":
            for r in data["rows"]:  # type: ignore[attr-defined]
                self._rows[str(r[0])] = (self._seq, r)
            self._rows_version += 1
        elif name in REPLAYED:
            if len(self._ring) == self._ring.maxlen and self._ring[0].seq is not None:
                self._evicted = self._ring[0].seq
            self._ring.append(event)
        for client in list(self.clients):
            client.offer(event)
        return event

    def publish_rows(self, rows: Sequence[Row]) -> None:
        if rows:
            self.publish("vehicles", {"rows": list(rows)})

    def seed(self, rows: Sequence[Row]) -> None:
        """The fleet as the change source first read it, before any ``vehicles`` event: the snapshot's baseline
        (seq 0: never replayed; a row published already is newer and stays)."""
        for r in rows:
            self._rows.setdefault(str(r[0]), (0, r))
        self._seeded = True
        self._rows_version += 1

    @property
    def seeded(self) -> bool:
        """Whether the hub holds the whole fleet (``seed``), so that ``fleet_snapshot`` can answer."""
        return self._seeded

    def fleet_snapshot(self) -> tuple[bytes, str] | None:
        """The latest row of every vehicle as a JSON array (in the order first seen; encoded once per change) and
        the id of the last event it includes: resuming the stream after that id sends every later change. None
        before ``seed``."""
        if not self._seeded:
            return None
        kept = self._rows_json
        if kept is None or kept[0] != self._rows_version:
            kept = (self._rows_version, orjson.dumps([r for _, r in self._rows.values()]))
            self._rows_json = kept
        return kept[1], self.event_id(self._seq)

    def fleet_statuses(self) -> list[str] | None:
        """The display status of every vehicle in the snapshot; None before ``seed``."""
        return [str(r[2]) for _, r in self._rows.values()] if self._seeded else None

    def set_ok(self, ok: bool) -> None:
        """Tell every client when the change source loses or regains the database."""
        if ok != self.ok:
            self.ok = ok
            for client in list(self.clients):
                client.offer(Event("status", {"ok": ok}))

    def replay(self, client: Client, last_event_id: str | None) -> bool:
        """Offer ``client`` what it missed after ``last_event_id``; False when that cannot be done (another boot,
        or older than the ring), so that the client must reload its snapshot."""
        seq = self._parse(last_event_id)
        if seq is None or seq < self._evicted:
            return False
        for event in self._ring:
            if event.seq is not None and event.seq > seq:
                client.offer(event)
        newer = [(s, r) for s, r in self._rows.values() if s > seq]
        if newer:
            client.offer(Event("vehicles", {"rows": [r for _, r in newer]}, max(s for s, _ in newer)))
        return True

    def _parse(self, last_event_id: str | None) -> int | None:
        boot, _, number = (last_event_id or "").partition(".")
        if boot != self.boot or not number.isdigit() or int(number) > self._seq:
            return None
        return int(number)
