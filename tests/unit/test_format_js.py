"""The browser's value formats (static/js/format.js) run in Node against what dashboard/display.py writes for the
same values in English and Dutch: a row pushed live reads like one rendered on the server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard import display
from dashboard.i18n import Language
from tests.node_tests import run_node_test


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> int:
    """A UTC time as ms since the epoch."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


TIMES = [
    None,
    0,
    ms(2026, 11, 18, 11, 6, 7),
    ms(2026, 11, 17, 23, 0, 30),  # midnight in Brussels
    ms(2026, 9, 18, 11, 6),  # "Sept" in Irish English
    ms(2026, 5, 1, 21, 59, 59),  # summer time: 23:59:59
    ms(2026, 3, 29, 0, 59),  # the last minute before summer time
    ms(2026, 3, 29, 1, 0),  # the first minute of it
    ms(2026, 10, 25, 0, 30),  # 02:30 summer time
    ms(2026, 10, 25, 1, 30),  # 02:30 winter time
    ms(2026, 12, 31, 23, 30),  # next year in Brussels
    *(ms(2026, month, 3, 8, 5) for month in range(1, 13)),
]
CASES: dict[str, list[Any]] = {
    "eur": [None, 0, 4_999, 5_000, -5_000, 14_255_000, -1_234_567_890, 999_995_000, 123_456_789_012_345],
    "when": TIMES,
    "clock": TIMES,
    "distance": [None, 0, 7, 999, 1_000, 1_005, 1_009, 12_345, 999_999, 12_345_678, 100_000_000],
    "number": [None, 0, 7, -42, 999, 1_234, 10_000, 1_234_567, 1_234.5, 0.25, 3.125],
}


def expectations() -> dict[str, dict[str, Any]]:
    """Per language: its BCP 47 tag and, per format, [input, the server's text]."""
    formats = {
        "eur": display.eur,
        "when": display.when,
        "clock": display.clock,
        "distance": display.distance,
        "number": display.number,
    }
    return {
        lang.value: {
            "tag": lang.bcp47,
            **{name: [[value, write(value, lang)] for value in CASES[name]] for name, write in formats.items()},
        }
        for lang in Language
    }


def test_the_server_writes_dates_without_a_comma_and_dutch_with_its_own_words() -> None:
    both = expectations()
    assert dict(both["en"]["when"])[ms(2026, 11, 18, 11, 6, 7)] == "18 Nov 2026 12:06"
    assert dict(both["nl"]["when"])[ms(2026, 11, 18, 11, 6, 7)] == "18 nov 2026 12:06"
    assert dict(both["nl"]["eur"])[14_255_000].replace("\xa0", " ") == "€ 14,26"


def test_the_browsers_formats_write_what_the_server_writes_in_both_languages(tmp_path: Path) -> None:
    output = run_node_test("format.test.mjs", "SZ_FORMATS", expectations(), tmp_path)
    assert "# pass 5" in output, output[-2000:]
