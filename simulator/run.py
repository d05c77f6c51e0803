"""The runner: steps a fleet through simulated time and publishes what it reports, paced against a clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sensors.codec import channel_of, encode
from sensors.messages import Message
from sensors.ports import Publisher
from sensors.topics import Channel, topic_for
from sensors.wire import DEFAULT_ROOT, QOS, RETAIN
from simulator.fleet import CompletedTrip

PROGRESS_EVERY_MS = 60_000


class StopFlag(Protocol):
    """Anything with ``is_set()``, such as ``threading.Event``."""

    def is_set(self) -> bool: ...


class Source(Protocol):
    """What the runner steps: a ``simulator.fleet.Fleet``, or anything that reports like one (a recording)."""

    @property
    def completed_trips(self) -> Sequence[CompletedTrip]: ...

    def birth_messages(self, now_ms: int) -> Sequence[Message]: ...

    def step(self, now_ms: int) -> Sequence[Message]: ...

    def finish(self, now_ms: int) -> Sequence[Message]: ...

    def offline_messages(self, now_ms: int) -> Sequence[Message]: ...


Stop = Callable[[], bool] | StopFlag
Progress = Callable[[float, float], None]


@dataclass(frozen=True)
class RunSummary:
    """What a run published (as the fleet handed it over, before any fault on the wire) and how long it took
    (simulated and wall-clock seconds).

    ``dropped_qos0``: telemetry (QoS 0) the publisher dropped while the broker was away; ``unmatched``: QoS 1
    messages routed to no subscriber for good. Both are figures of a run, never its failure. ``faults``: how often
    each of the scenario's faults struck (``simulator.faults``).
    """

    published: dict[Channel, int]
    completed_trips: int
    trip_ids: tuple[str, ...]
    sim_seconds: float
    wall_seconds: float
    stopped_early: bool = False
    dropped_qos0: int = 0
    unmatched: int = 0
    faults: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_published(self) -> int:
        """Messages published on every channel together."""
        return sum(self.published.values())


CHANNELS = tuple(Channel)


@dataclass
class _Outbox:
    """Encodes messages and publishes them on their topics, counting per channel.

    The hot loop of a run at full speed: each (vehicle, operator, kind of message) is routed once — topic,
    QoS, retain and channel — and counted by the channel's position rather than by enum key.
    """

    publisher: Publisher
    root: str
    _routes: dict[tuple[str, str, type], tuple[str, int, bool, int]] = field(default_factory=dict)
    _counts: list[int] = field(default_factory=lambda: [0] * len(CHANNELS))

    @property
    def counts(self) -> dict[Channel, int]:
        return dict(zip(CHANNELS, self._counts, strict=True))

    def send(self, messages: Iterable[Message]) -> None:
        routes, counts, publish = self._routes, self._counts, self.publisher.publish
        for message in messages:
            route = routes.get((message.vehicle_id, message.operator, type(message)))
            if route is None:
                route = self._route(message)
            topic, qos, retain, channel = route
            publish(topic, encode(message), qos, retain)
            counts[channel] += 1

    def _route(self, message: Message) -> tuple[str, int, bool, int]:
        channel = channel_of(message)
        topic = topic_for(message.operator, message.vehicle_id, channel, self.root)
        route = (topic, QOS[channel], RETAIN[channel], CHANNELS.index(channel))
        self._routes[(message.vehicle_id, message.operator, type(message))] = route
        return route


def run_simulation(
    fleet: Source,
    publisher: Publisher,
    *,
    start_ms: int,
    duration_s: float,
    speed: float,
    tick_s: float = 1.0,
    root: str = DEFAULT_ROOT,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
    stop: Stop | None = None,
    flush_timeout_s: float = 30.0,
) -> RunSummary:
    """Run ``fleet`` from ``start_ms`` for ``duration_s`` simulated seconds, publishing on ``publisher``.

    ``speed`` is simulated seconds per wall second (1 = real time); 0 or infinity runs as fast as
    possible and never sleeps. Simulated time advances in whole ticks of ``tick_s`` whatever the
    speed, so the payloads depend only on the fleet's config. Births go out retained first; at the
    end (also after ``stop``) open trips are locked, offline states published and the publisher
    flushed (for at most ``flush_timeout_s``). ``progress(done_s, total_s)`` is called about once per simulated
    minute and at the end.
    """
    if duration_s < 0 or tick_s <= 0 or speed < 0 or math.isnan(speed):
        raise ValueError("need duration_s >= 0, tick_s > 0 and speed >= 0")
    outbox = _Outbox(publisher, root)
    wall_start = monotonic()
    outbox.send(fleet.birth_messages(start_ms))
    tick_ms, total_ms = max(1, round(tick_s * 1000)), round(duration_s * 1000)
    elapsed_ms, stopped = 0, False
    while elapsed_ms < total_ms:
        if _stopped(stop):
            stopped = True
            break
        previous_ms, elapsed_ms = elapsed_ms, min(elapsed_ms + tick_ms, total_ms)
        _pace(wall_start + elapsed_ms / 1000 / speed if 0 < speed < math.inf else None, sleep, monotonic)
        outbox.send(fleet.step(start_ms + elapsed_ms))
        if progress is not None and elapsed_ms // PROGRESS_EVERY_MS > previous_ms // PROGRESS_EVERY_MS:
            progress(elapsed_ms / 1000, total_ms / 1000)
    if progress is not None and elapsed_ms % PROGRESS_EVERY_MS:
        progress(elapsed_ms / 1000, total_ms / 1000)
    end_ms = start_ms + elapsed_ms
    outbox.send(fleet.finish(end_ms))
    outbox.send(fleet.offline_messages(end_ms))
    publisher.flush(flush_timeout_s)
    return RunSummary(
        published=outbox.counts,
        completed_trips=len(fleet.completed_trips),
        trip_ids=tuple(trip.trip_id for trip in fleet.completed_trips),
        sim_seconds=elapsed_ms / 1000,
        wall_seconds=monotonic() - wall_start,
        stopped_early=stopped,
    )


def _pace(due: float | None, sleep: Callable[[float], None], monotonic: Callable[[], float]) -> None:
    """Sleep until the wall clock reaches ``due`` (never when ``due`` is None or already past)."""
    if due is None:
        return
    delay = due - monotonic()
    if delay > 0:
        sleep(delay)


def _stopped(stop: Stop | None) -> bool:
    if stop is None:
        return False
    if callable(stop):
        return bool(stop())
    return stop.is_set()
