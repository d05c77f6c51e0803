"""How the dashboard shows money, hashes, times and distances to people."""

from __future__ import annotations

import pytest

from dashboard import display


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "€ 0.00"),
        (1_230_000, "€ 1.23"),
        (1_234_999, "€ 1.23"),
        (1_235_000, "€ 1.24"),
        (4_999, "€ 0.00"),
        (5_000, "€ 0.01"),
        (-1_235_000, "-€ 1.24"),
        (-4_999, "€ 0.00"),
        (1_234_567_890_000, "€ 1,234,567.89"),
        (10**24 + 5_000, "€ 1,000,000,000,000,000,000.01"),
    ],
)
def test_euros_round_half_a_cent_away_from_zero_in_integers(micro: int, text: str) -> None:
    assert display.eur(micro) == text


def test_a_long_hash_is_shortened_around_an_ellipsis_and_a_short_one_kept() -> None:
    assert display.short("0x" + "ab" * 32) == "0xabab…abab"
    assert display.short("0x1234") == "0x1234"
    assert display.short(None) == "—"


def test_times_are_iso_utc_to_the_second() -> None:
    assert display.iso_time(1_717_000_000_999) == "2024-05-29T16:26:40Z"
    assert display.iso_time(None) == "—"


@pytest.mark.parametrize(("seconds", "text"), [(42, "42 s"), (725, "12 min 05 s"), (7_380, "2 h 03 min")])
def test_durations_read_in_the_largest_sensible_units(seconds: int, text: str) -> None:
    assert display.duration(seconds) == text


@pytest.mark.parametrize(("metres", "text"), [(850, "850 m"), (1_000, "1.00 km"), (12_349, "12.34 km")])
def test_distances_read_in_metres_then_kilometres(metres: int, text: str) -> None:
    assert display.distance(metres) == text


def test_battery_and_position_show_a_dash_when_unknown() -> None:
    assert display.battery(87.5) == "88 %" and display.battery(None) == "—"
    assert display.position(51.2, 4.39) == "51.20000, 4.39000" and display.position(None, 4.39) == "—"
