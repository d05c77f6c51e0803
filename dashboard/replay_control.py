"""Replays for researchers: the port the research page starts, watches and stops a replay through, and a fake."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""A recording's name: a plain file name in the recordings folder, never a path."""
MAX_SPEED = 1000.0
"""The fastest paced replay; 0 is as fast as possible."""


class ReplayError(Exception):
    """A replay that cannot be started as asked."""


class ReplayBusy(ReplayError):
    """A replay is running already: one at a time."""


class UnknownRecording(ReplayError):
    """No recording of that name in the folder (or a name that is not a plain file name)."""


def check_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder, no ``..``); ``UnknownRecording`` else."""
    if not NAME.match(name) or ".." in name:
        raise UnknownRecording(f"not a recording name: {name[:80]!r}")
    return name


def check_speed(speed: float) -> float:
    """``speed`` (recorded seconds per second, 0: as fast as possible) if in range; ``ValueError`` else."""
    if not 0 <= speed <= MAX_SPEED or speed != speed:
        raise ValueError(f"speed must be 0 (as fast as possible) or up to {MAX_SPEED:g}")
    return speed


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """A recording file: its size, and what reading it once told (messages, recorded span, the scenario)."""

    name: str
    size_bytes: int
    messages: int | None
    duration_s: float | None
    started_ms: int | None
    topic_root: str | None = None
    scenario: str | None = None
    seed: int | None = None
    damage: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayStatus:
    """Where the replay stands. ``state``: idle (none yet), running, finished, stopped or failed (``error``).

    ``published`` messages so far, ``recorded_s`` the position in the recording (seconds after its first message),
    ``fraction`` the share of the file read (None: unknown), ``total`` the recording's messages when known.
    """

    state: str
    recording: str | None = None
    speed: float | None = None
    published: int = 0
    recorded_s: float = 0.0
    fraction: float | None = None
    total: int | None = None
    duration_s: float | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


IDLE = ReplayStatus("idle")


class ReplayControl(Protocol):
    """Recordings in a folder and one replay of one of them at a time onto the platform's broker."""

    def recordings(self) -> list[RecordingInfo]:
        """The recordings of the folder, by name."""
        ...

    def start(self, name: str, speed: float) -> ReplayStatus:
        """Start replaying ``name`` at ``speed``; ``ReplayBusy`` if one runs, ``UnknownRecording`` if no such file."""
        ...

    def stop(self) -> ReplayStatus:
        """Stop the running replay (nothing if none runs) and say where it stopped."""
        ...

    def status(self) -> ReplayStatus: ...


class FakeReplayControl:
    """A replay control that replays nothing: ``advance`` moves a started replay on, as a test says."""

    def __init__(self, recordings: list[RecordingInfo], clock_ms: int = 0) -> None:
        self.files = {r.name: r for r in recordings}
        self.clock_ms = clock_ms
        self.current = IDLE
        self.started: list[tuple[str, float]] = []

    def recordings(self) -> list[RecordingInfo]:
        return sorted(self.files.values(), key=lambda r: r.name)

    def start(self, name: str, speed: float) -> ReplayStatus:
        info = self.files.get(check_name(name))
        if info is None:
            raise UnknownRecording(f"no recording {name!r}")
        if self.current.running:
            raise ReplayBusy(f"a replay of {self.current.recording} is running; stop it first")
        self.started.append((name, check_speed(speed)))
        self.current = ReplayStatus(
            "running", name, speed, 0, 0.0, 0.0, info.messages, info.duration_s, started_ms=self.clock_ms
        )
        return self.current

    def advance(self, published: int, recorded_s: float, fraction: float) -> None:
        self.current = replace(self.current, published=published, recorded_s=recorded_s, fraction=fraction)

    def stop(self) -> ReplayStatus:
        if self.current.running:
            self.current = replace(self.current, state="stopped", ended_ms=self.clock_ms)
        return self.current

    def status(self) -> ReplayStatus:
        return self.current
