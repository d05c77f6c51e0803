"""Replay: a recording's messages published again, their recorded gaps scaled, filtered and offset (pure).

The publisher, the clock and the sleeper are given (``sensors.ports.Publisher``; ``time.monotonic`` and
``time.sleep`` by default), so that the pacing is tested with a fake clock and no broker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sensors.ports import Publisher
from simulator.recording import Recorded

SLEEP_SLICE_S = 0.5
"""The longest single sleep: a stop is noticed within this while waiting for a long recorded gap."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT filter ``topic_filter`` (``+`` one level, ``#`` this level and below)."""
    levels, wanted = topic.split("/"), topic_filter.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(levels) == len(wanted)


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and how fast.

    ``speed``: recorded seconds per wall second (0: as fast as possible). ``topic_filter``: an MQTT filter the
    recorded topic must match. ``from_s``/``to_s``: offsets in seconds from the recording's first message (``to_s``
    exclusive). ``root``: (recorded root, new root) to publish under another topic root. ``loop``: start again
    at the end until stopped.
    """

    speed: float = 1.0
    topic_filter: str | None = None
    from_s: float | None = None
    to_s: float | None = None
    root: tuple[str, str] | None = None
    loop: bool = False

    def __post_init__(self) -> None:
        if self.speed < 0 or math.isnan(self.speed):
            raise ValueError("speed must be 0 (as fast as possible) or positive")
        if self.from_s is not None and self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError("the end offset must come after the start offset")

    def topic(self, recorded: str) -> str:
        """The topic a recorded message is published on (under the new root, if any)."""
        if self.root is not None:
            old, new = self.root
            if recorded == old or recorded.startswith(old + "/"):
                return new + recorded[len(old) :]
        return recorded


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay stands: messages published, recorded seconds since the first message, the share of the
    file read (None if unknown) and the pass (from 1)."""

    published: int
    recorded_s: float
    fraction: float | None
    pass_number: int


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did: messages published, passes over the file, messages left out (filter or offsets), wall
    seconds, whether a stop ended it, and where a damaged file stopped it (None: read whole)."""

    published: int
    passes: int
    skipped: int
    wall_seconds: float
    stopped_early: bool
    damage: str | None = None


class _Pacer:
    def __init__(
        self, speed: float, sleep: Callable[[float], None], monotonic: Callable[[], float], stop: Callable[[], bool]
    ) -> None:
        self.speed, self.sleep, self.monotonic, self.stop = speed, sleep, monotonic, stop
        self.base: tuple[int, float] | None = None  # (recorded ms, wall time) of the pass's first message

    def wait_for(self, at_ms: int) -> bool:
        """Sleep until ``at_ms`` is due (never at speed 0); False if stopped meanwhile."""
        if self.speed == 0:
            return not self.stop()
        if self.base is None:
            self.base = (at_ms, self.monotonic())
        due = self.base[1] + max(0, at_ms - self.base[0]) / 1000 / self.speed
        while True:
            if self.stop():
                return False
            left = due - self.monotonic()
            if left <= 0:
                return True
            self.sleep(min(left, SLEEP_SLICE_S))


def replay(
    open_records: Callable[[], Iterable[Recorded]],
    publisher: Publisher,
    options: ReplayOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
    progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 1.0,
    flush_timeout_s: float = 60.0,
) -> ReplaySummary:
    """Publish the messages ``open_records()`` gives (called once per pass), each with its recorded QoS and retain
    flag, paced so that the gaps between them are the recorded gaps divided by ``options.speed``.

    ``progress`` is called about every ``progress_every_s`` wall seconds and once at the end; the publisher is
    flushed at the end (at most ``flush_timeout_s``).
    """
    started = monotonic()
    published = skipped = passes = 0
    stopped, damage = False, None
    last_report = started
    position = ReplayProgress(0, 0.0, None, 1)
    last_offset_s = 0.0
    while not stopped:
        passes += 1
        pacer = _Pacer(options.speed, sleep, monotonic, stop)
        records = open_records()
        first_ms: int | None = None
        selected = 0
        for item in records:
            if first_ms is None:
                first_ms = item.at_ms
            offset_s = (item.at_ms - first_ms) / 1000
            if options.to_s is not None and offset_s >= options.to_s:
                break
            if (options.from_s is not None and offset_s < options.from_s) or (
                options.topic_filter is not None and not topic_matches(options.topic_filter, item.topic)
            ):
                skipped += 1
                continue
            if not pacer.wait_for(item.at_ms):
                stopped = True
                break
            publisher.publish(options.topic(item.topic), item.payload, item.qos, item.retain)
            published += 1
            selected += 1
            last_offset_s = offset_s
            if progress is not None and monotonic() - last_report >= progress_every_s:
                last_report = monotonic()  # the share of the file read is asked only when shown (a tell() each)
                progress(ReplayProgress(published, offset_s, getattr(records, "fraction", None), passes))
        if selected:
            position = ReplayProgress(published, last_offset_s, getattr(records, "fraction", None), passes)
        close = getattr(records, "close", None)
        if close is not None:
            close()
        damage = damage or getattr(records, "stopped", None)
        if not options.loop or selected == 0 or stop():
            stopped = stopped or (options.loop and stop())
            break
    if progress is not None:
        progress(position)
    publisher.flush(flush_timeout_s)
    return ReplaySummary(published, passes, skipped, monotonic() - started, stopped, damage)
