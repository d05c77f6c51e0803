"""How the dashboard shows money, hashes, times and distances to people, in English and in Dutch."""

from __future__ import annotations

import pytest

from dashboard import display
from dashboard.i18n import Language

NBSP = "\xa0"


@pytest.mark.parametrize(
    ("micro", "english", "dutch"),
    [
        (0, "€0.00", "€ 0,00"),
        (1_230_000, "€1.23", "€ 1,23"),
        (1_234_999, "€1.23", "€ 1,23"),
        (1_235_000, "€1.24", "€ 1,24"),
        (4_999, "€0.00", "€ 0,00"),
        (5_000, "€0.01", "€ 0,01"),
        (-1_235_000, "-€1.24", "€ -1,24"),
        (-4_999, "€0.00", "€ 0,00"),
        (14_255_000, "€14.26", "€ 14,26"),
        (1_234_567_890_000, "€1,234,567.89", "€ 1.234.567,89"),
        (10**24 + 5_000, "€1,000,000,000,000,000,000.01", "€ 1.000.000.000.000.000.000,01"),
    ],
)
def test_euros_round_half_a_cent_away_from_zero_in_integers_and_read_as_each_language_writes_them(
    micro: int, english: str, dutch: str
) -> None:
    assert display.eur(micro, Language.EN) == english and display.eur(micro) == english  # English: en_IE
    assert display.eur(micro, Language.NL) == dutch.replace(" ", NBSP)  # Dutch: nl_BE, a no-break space


def test_a_long_hash_is_shortened_around_an_ellipsis_and_a_short_one_kept() -> None:
    assert display.short("0x" + "ab" * 32) == "0xabab…abab"
    assert display.short("0x1234") == "0x1234"
    assert display.short(None) == "—"


def test_exact_times_are_iso_8601_to_the_second_with_the_brussels_offset_of_the_day() -> None:
    assert display.iso_time(1_717_000_000_999) == "2024-05-29T18:26:40+02:00"  # summer time
    assert display.iso_time(1_733_000_000_000) == "2024-11-30T21:53:20+01:00"  # winter time
    assert display.iso_time(None) == "—"


def test_dates_and_times_are_shown_in_brussels_in_each_language() -> None:
    assert display.when(1_717_000_000_999, Language.NL) == "29 mei 2024 18:26"
    assert display.when(1_717_000_000_999, Language.EN) == "29 May 2024 18:26"
    assert display.clock(1_717_000_000_999) == "18:26:40"


@pytest.mark.parametrize(("seconds", "text"), [(42, "42 s"), (725, "12 min 05 s"), (7_380, "2 h 03 min")])
def test_durations_read_in_the_largest_sensible_units(seconds: int, text: str) -> None:
    assert display.duration(seconds) == text


@pytest.mark.parametrize(
    ("metres", "english", "dutch"),
    [(850, "850 m", "850 m"), (1_000, "1.00 km", "1,00 km"), (12_349, "12.34 km", "12,34 km")],
)
def test_distances_read_in_metres_then_kilometres(metres: int, english: str, dutch: str) -> None:
    assert display.distance(metres) == english and display.distance(metres, Language.NL) == dutch


def test_counts_are_grouped_as_each_language_groups_them() -> None:
    assert display.number(10_000) == "10,000" and display.number(10_000, Language.NL) == "10.000"


def test_battery_shows_a_dash_when_unknown() -> None:
    assert display.battery(87.5) == "88 %" and display.battery(None) == "—"
