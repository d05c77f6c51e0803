"""How values are shown to people: euros from micro-euro, short hashes, times, durations and distances.

Integer arithmetic only; ``static/dashboard.js`` mirrors these rules so a refreshed row reads the same.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

MICRO_PER_EUR = 1_000_000
MICRO_PER_CENT = 10_000


def eur(micro: int) -> str:
    """Micro-euro as euros with two decimals, half a cent rounded away from zero: 1_235_000 -> '€ 1.24'."""
    cents = (abs(micro) + MICRO_PER_CENT // 2) // MICRO_PER_CENT
    whole, rest = divmod(cents, 100)
    sign = "-" if micro < 0 and cents else ""
    return f"{sign}€ {whole:,}.{rest:02d}"


def short(text: str | None, head: int = 6, tail: int = 4) -> str:
    """A long hash or address cut to its head and tail around an ellipsis; short text is left whole."""
    if text is None:
        return "—"
    if len(text) <= head + tail + 1:
        return text
    return f"{text[:head]}…{text[-tail:]}"


def iso_time(ms: int | None) -> str:
    """Milliseconds since the Unix epoch as an ISO 8601 UTC time to the second ('—' when unknown)."""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: int) -> str:
    """Seconds as '42 s', '12 min 05 s' or '2 h 03 min'."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def distance(metres: int) -> str:
    """Metres as '850 m' below a kilometre, else kilometres with two decimals ('1.23 km', truncated)."""
    if metres < 1000:
        return f"{metres} m"
    km, rest = divmod(metres, 1000)
    return f"{km}.{rest // 10:02d} km"


def battery(pct: float | None) -> str:
    """A battery level as a whole percentage, halves rounded up as JavaScript does ('—' when none)."""
    return "—" if pct is None else f"{math.floor(pct + 0.5)} %"


def position(lat: float | None, lon: float | None) -> str:
    """A WGS 84 position to five decimals (about a metre), '—' when unknown."""
    if lat is None or lon is None:
        return "—"
    return f"{lat:.5f}, {lon:.5f}"
