"""How values are shown to people, per language: euros from micro-euro, Brussels times, durations, distances.

Money is rounded in integers (half a cent away from zero) before Babel writes it in the language's way
("€ 14,26" in Dutch, "€14.26" in English); times are shown in Europe/Brussels. ``static/js/format.js`` writes the
same values in the browser with ``Intl`` and the same locales, so a row pushed live reads like one rendered here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time
from babel.numbers import format_currency, format_decimal

from dashboard.i18n import DEFAULT, Language

MICRO_PER_EUR = 1_000_000
MICRO_PER_CENT = 10_000
ZONE = ZoneInfo("Europe/Brussels")
NONE = "—"


def cents(micro: int) -> int:
    """Micro-euro rounded to whole cents, half a cent away from zero."""
    rounded = (abs(micro) + MICRO_PER_CENT // 2) // MICRO_PER_CENT
    return -rounded if micro < 0 else rounded


def eur(micro: int | None, lang: Language = DEFAULT) -> str:
    """Micro-euro as euros with two decimals in the language's format: 14_255_000 -> '€ 14,26' (nl)."""
    if micro is None:
        return NONE
    return format_currency(Decimal(cents(micro)).scaleb(-2), "EUR", locale=lang.locale)


def local(ms: int) -> datetime:
    """Milliseconds since the Unix epoch as an aware time in Brussels."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZONE)


def when(ms: int | None, lang: Language = DEFAULT) -> str:
    """A date and time in Brussels, to the minute ('30 nov 2026 05:00' in Dutch)."""
    if ms is None:
        return NONE
    return format_datetime(local(ms), "d MMM y HH:mm", tzinfo=ZONE, locale=lang.locale)


def clock(ms: int | None, lang: Language = DEFAULT) -> str:
    """A time of day in Brussels to the second ('05:00:07')."""
    if ms is None:
        return NONE
    return format_time(local(ms), "HH:mm:ss", tzinfo=ZONE, locale=lang.locale)


def iso_time(ms: int | None) -> str:
    """An exact instant as ISO 8601 with the Brussels offset, for ``<time datetime=…>`` and downloads."""
    if ms is None:
        return NONE
    return local(ms).isoformat(timespec="seconds")


def short(text: str | None, head: int = 6, tail: int = 4) -> str:
    """A long hash or address cut to its head and tail around an ellipsis; short text is left whole."""
    if text is None:
        return NONE
    if len(text) <= head + tail + 1:
        return text
    return f"{text[:head]}…{text[-tail:]}"


def duration(seconds: int | None) -> str:
    """Seconds as '42 s', '12 min 05 s' or '2 h 03 min' (the same in both languages)."""
    if seconds is None:
        return NONE
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def distance(metres: int | None, lang: Language = DEFAULT) -> str:
    """Metres as '850 m' below a kilometre, else kilometres with two decimals, truncated ('1,23 km' in Dutch)."""
    if metres is None:
        return NONE
    if metres < 1000:
        return f"{metres} m"
    return format_decimal(Decimal(metres // 10).scaleb(-2), "0.00", locale=lang.locale) + " km"


def battery(pct: float | None) -> str:
    """A battery level as a whole percentage, halves rounded up as JavaScript does ('—' when none)."""
    return NONE if pct is None else f"{math.floor(pct + 0.5)} %"


def number(value: int | float | None, lang: Language = DEFAULT) -> str:
    """A count with the language's grouping ('10.000' in Dutch, '10,000' in English)."""
    return NONE if value is None else format_decimal(value, locale=lang.locale)
