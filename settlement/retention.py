"""Retention of raw telemetry: old readings folded into per-minute tracks, then deleted (pure rules + procedure).

A raw reading may go once it is older than the retention period *and* its seq is more than the verifier's
``SEQ_WINDOW`` below its vehicle's last accepted seq: a replay of it is then refused as ``stale_seq`` whether or not
the row is still there, so deleting it cannot make a replay look new (a row inside the window stays raw, and its
replay stays a duplicate). Each chunk is folded and deleted in one transaction: an interruption loses nothing, and a
second run finds nothing more to fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from settlement.dead_letters import DAY_MS, SampleLimits
from settlement.verification import SEQ_WINDOW

if TYPE_CHECKING:
    from settlement.repositories import UnitOfWork

MINUTE_MS = 60_000
CHUNK = 5000
"""Row ids of raw telemetry looked at, and folded and deleted, per transaction."""

TrackKey = tuple[str, int]
"""(vehicle id, minute start in ms)."""


@dataclass(frozen=True, slots=True)
class StoredTelemetry:
    """A raw telemetry row as stored, with its row id."""

    row_id: int
    vehicle_id: str
    seq: int
    timestamp_ms: int
    lat: float
    lon: float
    speed_mps: float
    odometer_m: int
    battery_pct: float | None = None
    fuel_pct: float | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """What is kept of a vehicle's raw telemetry over one minute: how many readings, the first and the last (by
    time, then seq), the highest speed and the lowest battery and fuel levels."""

    vehicle_id: str
    minute_ms: int
    readings: int
    first_seq: int
    last_seq: int
    first_ms: int
    last_ms: int
    first_lat: float
    first_lon: float
    last_lat: float
    last_lon: float
    first_odometer_m: int
    last_odometer_m: int
    max_speed_mps: float
    min_battery_pct: float | None
    min_fuel_pct: float | None

    @property
    def key(self) -> TrackKey:
        return (self.vehicle_id, self.minute_ms)

    @classmethod
    def of(cls, r: StoredTelemetry) -> Track:
        return cls(
            r.vehicle_id, minute_of(r.timestamp_ms), 1, r.seq, r.seq, r.timestamp_ms, r.timestamp_ms, r.lat, r.lon,
            r.lat, r.lon, r.odometer_m, r.odometer_m, r.speed_mps, r.battery_pct, r.fuel_pct,
        )  # fmt: skip

    def plus(self, other: Track) -> Track:
        """The track of both sets of readings (of the same vehicle and minute)."""
        assert self.key == other.key, "tracks of one vehicle and minute"
        first = self if (self.first_ms, self.first_seq) <= (other.first_ms, other.first_seq) else other
        last = self if (self.last_ms, self.last_seq) >= (other.last_ms, other.last_seq) else other
        return Track(
            self.vehicle_id, self.minute_ms, self.readings + other.readings,
            first.first_seq, last.last_seq, first.first_ms, last.last_ms,
            first.first_lat, first.first_lon, last.last_lat, last.last_lon,
            first.first_odometer_m, last.last_odometer_m,
            max(self.max_speed_mps, other.max_speed_mps),
            _least(self.min_battery_pct, other.min_battery_pct), _least(self.min_fuel_pct, other.min_fuel_pct),
        )  # fmt: skip


def minute_of(timestamp_ms: int) -> int:
    return timestamp_ms - timestamp_ms % MINUTE_MS


def fold(readings: Iterable[StoredTelemetry], into: Mapping[TrackKey, Track] | None = None) -> dict[TrackKey, Track]:
    """The tracks of ``readings``, each merged with the track already kept for its vehicle and minute (``into``)."""
    tracks: dict[TrackKey, Track] = {}
    for r in readings:
        one = Track.of(r)
        tracks[one.key] = tracks[one.key].plus(one) if one.key in tracks else one
    kept = into or {}
    return {k: kept[k].plus(t) if k in kept else t for k, t in tracks.items()}


def _least(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


@dataclass
class RetentionReport:
    """What a retention run did (or, dry, would do)."""

    cutoff_ms: int
    readings: int = 0
    tracks: int = 0
    chunks: int = 0
    samples_pruned: int = 0
    samples_cut: int = 0
    dry_run: bool = False
    vehicles: set[str] = field(default_factory=set)

    def summary(self) -> str:
        verb = "would fold" if self.dry_run else "folded"
        cutoff = datetime.fromtimestamp(self.cutoff_ms / 1000, UTC).isoformat(timespec="seconds")
        return (
            f"{verb} {self.readings:,} raw readings of {len(self.vehicles):,} vehicles from before {cutoff} "
            f"into {self.tracks:,} track rows; {self.samples_pruned:,} dead-letter samples pruned, "
            f"{self.samples_cut:,} cut to size" + (" (dry run: nothing changed)" if self.dry_run else "")
        )


def retain(
    unit_of_work: Callable[[], UnitOfWork],
    *,
    now_ms: int,
    raw_days: float,
    limits: SampleLimits,
    dry_run: bool = False,
    chunk: int = CHUNK,
    seq_window: int = SEQ_WINDOW,
    progress: Callable[[RetentionReport], None] | None = None,
) -> RetentionReport:
    """Fold raw telemetry older than ``raw_days`` into tracks and delete it, ``chunk`` row ids at a time (each in
    one transaction, one pass over the table), then prune and cut the dead-letter samples; a dry run does the same
    work and commits none of it."""
    report = RetentionReport(now_ms - int(raw_days * DAY_MS), dry_run=dry_run)
    with unit_of_work() as uow:
        ids = uow.readings.telemetry_ids()
    low, high = ids or (1, 0)
    for first_id in range(low, high + 1, chunk):
        with unit_of_work() as uow:
            raw = uow.readings.stale_telemetry(report.cutoff_ms, seq_window, first_id, first_id + chunk)
            keys = {(r.vehicle_id, minute_of(r.timestamp_ms)) for r in raw}
            tracks = fold(raw, uow.readings.tracks(keys)) if raw else {}
            if raw:
                uow.readings.fold_telemetry(list(tracks.values()), [r.row_id for r in raw])
                if not dry_run:
                    uow.commit()
        report.readings += len(raw)
        report.tracks += len(tracks)
        report.chunks += 1
        report.vehicles.update(r.vehicle_id for r in raw)
        if progress is not None:
            progress(report)
    with unit_of_work() as uow:
        report.samples_pruned = uow.readings.prune_rejects(limits.older_than_ms(now_ms), limits.samples_max)
        report.samples_cut = uow.readings.cut_samples(limits.sample_bytes)
        if not dry_run:
            uow.commit()
    return report
