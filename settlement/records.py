"""What the ingest path passes around: dead letters and what a batch changed (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from settlement.reasons import RejectCode


@dataclass(frozen=True, slots=True)
class Reject:
    """A message that was turned away: where it came, its bytes (capped), the rule and the reason."""

    topic: str
    payload: bytes
    code: RejectCode | str
    reason: str
    received_ms: int


@dataclass(frozen=True, slots=True)
class VehicleMark:
    """What the verifier must remember of a vehicle: its last accepted seq and state time."""

    last_seq: int
    state_ms: int


@dataclass
class BatchResult:
    """What one batch added."""

    telemetry_new: int = 0
    events_new: int = 0
    duplicates: int = 0
    rejected: int = 0
    trips_changed: int = 0
    rejects_by_code: dict[str, int] = field(default_factory=dict)
