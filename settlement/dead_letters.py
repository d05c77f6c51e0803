"""Dead letters within bounds (pure): counts kept forever, payload samples cut and pruned, log lines rate-limited.

Every dead-lettered message is counted per reason code (``RejectCount``); its row in ``rejects`` is only a sample:
its payload cut to ``SampleLimits.sample_bytes``, at most ``samples_max`` samples kept (the newest), none older
than ``sample_days``. ``RejectLog`` turns a flood of rejects into at most one log line per interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MAX_SAMPLE_BYTES = 65536
"""The most payload bytes a sample ever keeps, whatever the settings."""
MAX_REASON_CHARS = 2000
DAY_MS = 86_400_000
SAMPLE_BYTES, SAMPLES_MAX, SAMPLE_DAYS, LOG_INTERVAL_S = 4096, 10_000, 7.0, 10.0
"""The defaults of the settings ``reject_sample_bytes``, ``reject_samples_max``, ``reject_sample_days`` and
``reject_log_interval_s``."""
PRUNE_EVERY_S = 60.0
"""How often the aggregator prunes samples (sooner when a flood wrote more than ``samples_max`` since)."""


@dataclass(frozen=True, slots=True)
class RejectCount:
    """How many messages were dead-lettered with one reason code, and when the first and the last were."""

    count: int
    first_ms: int
    last_ms: int

    def plus(self, other: RejectCount) -> RejectCount:
        return RejectCount(
            self.count + other.count, min(self.first_ms, other.first_ms), max(self.last_ms, other.last_ms)
        )


@dataclass(frozen=True, slots=True)
class SampleLimits:
    """How much of the dead letters is kept as samples (the settings ``reject_sample_*``)."""

    sample_bytes: int = SAMPLE_BYTES
    samples_max: int = SAMPLES_MAX
    sample_days: float = SAMPLE_DAYS

    def older_than_ms(self, now_ms: int) -> int:
        """Samples received before this time are pruned."""
        return now_ms - int(self.sample_days * DAY_MS)


def cut(payload: bytes, sample_bytes: int) -> bytes:
    """The part of ``payload`` a sample keeps."""
    return payload[: max(0, min(sample_bytes, MAX_SAMPLE_BYTES))]


def counts_of(rejects: list[tuple[str, int]]) -> dict[str, RejectCount]:
    """(code, received ms) pairs summed per code, codes in order (so that concurrent writers lock rows alike)."""
    counts: dict[str, RejectCount] = {}
    for code, ms in rejects:
        one = RejectCount(1, ms, ms)
        counts[code] = counts[code].plus(one) if code in counts else one
    return dict(sorted(counts.items()))


@dataclass
class RejectLog:
    """When to log rejects, and the line: the first at once, then at most one per ``interval_s`` with the counts
    per code since the line before and the total since the start. ``clock`` is in seconds."""

    interval_s: float
    clock: Callable[[], float]
    total: int = 0
    _since: Counter[str] = field(default_factory=Counter)
    _last_line: float | None = None
    _example: str = ""

    def record(self, by_code: Mapping[str, int], example: str = "") -> str | None:
        """Count these rejects (``example``: one of their reasons); the line to log now, or None."""
        n = sum(by_code.values())
        if n == 0:
            return None
        self._since.update(by_code)
        self.total += n
        self._example = example or self._example
        return self.due()

    def due(self) -> str | None:
        """The line for the rejects counted and not yet logged, if the interval has passed since the last line."""
        if not self._since:
            return None
        now = self.clock()
        if self._last_line is not None and now - self._last_line < self.interval_s:
            return None
        n = sum(self._since.values())
        codes = ", ".join(f"{code} {k:,}" for code, k in sorted(self._since.items(), key=lambda kv: (-kv[1], kv[0])))
        window = "" if self._last_line is None else f" in the last {now - self._last_line:.0f} s"
        shown = "".join(c if c.isprintable() else "?" for c in self._example[:200])  # one line, whatever was sent
        example = f"; e.g. {shown}" if shown else ""
        line = f"dead-lettered {n:,} message{'' if n == 1 else 's'}{window} ({codes}); {self.total:,} in all{example}"
        self._since.clear()
        self._last_line = now
        self._example = ""
        return line
