"""Dutch and English: the same words in both, the browser's choice honoured, money and times written per language."""

from __future__ import annotations

import json

import pytest

from dashboard import display
from dashboard.i18n import MESSAGES, Language, catalogue, load, negotiate

WINTER_NOON_UTC = 1_795_003_200_000  # 2026-11-18 12:00:00 UTC


def test_every_area_has_the_same_keys_in_dutch_and_english() -> None:
    for path in sorted(MESSAGES.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert set(document) == {"en", "nl"}, path.name
        assert document["en"].keys() == document["nl"].keys(), path.name
        assert all(text.strip() for lang in document.values() for text in lang.values()), path.name


def test_placeholders_agree_between_the_languages() -> None:
    import string

    merged = load(MESSAGES)
    for key, english in merged["en"].items():
        fields = {name for _, name, _, _ in string.Formatter().parse(english) if name}
        dutch = {name for _, name, _, _ in string.Formatter().parse(merged["nl"][key]) if name}
        assert fields == dutch, key


def test_two_files_defining_one_key_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.json").write_text(json.dumps({"en": {"x": "1"}, "nl": {"x": "1"}}))
    (tmp_path / "b.json").write_text(json.dumps({"en": {"x": "2"}, "nl": {"x": "2"}}))
    with pytest.raises(ValueError, match="a.json|b.json"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, Language.EN),
        (None, "nl-BE,nl;q=0.9,en;q=0.8", Language.NL),
        (None, "fr-BE, nl;q=0.5, en;q=0.4", Language.NL),
        (None, "en-GB,en;q=0.9,nl;q=0.8", Language.EN),
        (None, "de-DE", Language.EN),
        (None, "nl;q=0, en;q=0.1", Language.EN),
        (None, "nl;q=abc, en", Language.EN),
        ("nl", "en", Language.NL),
        ("xx", "nl", Language.NL),
        (None, "," * 5000 + "nl", Language.EN),
    ],
)
def test_the_language_is_the_switch_else_the_browsers_best_choice(
    cookie: str | None, header: str | None, expected: Language
) -> None:
    assert negotiate(cookie, header) is expected


def test_a_missing_key_shows_as_itself_and_placeholders_are_filled() -> None:
    words = catalogue(Language.NL)
    assert words("no.such.key") == "no.such.key"
    assert words("ago.seconds", n=5) == "5 s geleden"


@pytest.mark.parametrize(
    ("micro", "lang", "text"),
    [
        (14_255_000, Language.NL, "€\xa014,26"),
        (14_255_000, Language.EN, "€14.26"),
        (1_234_560_000, Language.NL, "€\xa01.234,56"),
        (1_234_560_000, Language.EN, "€1,234.56"),
        (4_999, Language.EN, "€0.00"),
        (5_000, Language.EN, "€0.01"),
        (-5_000, Language.EN, "-€0.01"),
        (None, Language.NL, "—"),
    ],
)
def test_euros_are_rounded_in_integers_and_written_per_language(micro: int | None, lang: Language, text: str) -> None:
    assert display.eur(micro, lang).replace(" ", "\xa0") == text.replace(" ", "\xa0")


def test_times_are_shown_in_brussels_summer_and_winter() -> None:
    winter = WINTER_NOON_UTC
    summer = 1_782_820_800_000  # 2026-06-30 12:00:00 UTC
    assert display.clock(winter) == "13:00:00"  # UTC+1
    assert display.clock(summer) == "14:00:00"  # UTC+2
    assert display.when(winter, Language.NL) == "18 nov 2026 13:00"
    assert display.iso_time(summer) == "2026-06-30T14:00:00+02:00"


def test_distances_and_counts_use_the_languages_separators() -> None:
    assert display.distance(12_345, Language.NL) == "12,34 km"
    assert display.distance(12_345, Language.EN) == "12.34 km"
    assert display.distance(850) == "850 m"
    assert display.number(10_000, Language.NL) == "10.000"
    assert display.number(10_000, Language.EN) == "10,000"


def test_a_signed_in_page_is_never_cached_and_says_its_language() -> None:
    from fastapi.testclient import TestClient

    from dashboard import deps
    from dashboard.app import create_app
    from dashboard.config import Principal, Role
    from settlement.memory import MemoryReadModel

    app = create_app(MemoryReadModel())
    public = TestClient(app).get("/", headers={"accept-language": "nl"})
    assert public.headers["content-language"] == "nl" and "no-store" not in public.headers.get("cache-control", "")
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "op")
    page = TestClient(app).get("/fleet", headers={"accept-language": "en"})
    assert page.status_code == 200 and page.headers["cache-control"] == "private, no-store"
    assert page.headers["content-language"] == "en"
