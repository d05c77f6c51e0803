"""Dutch and English: which language a request gets, and the words of each page from ``dashboard/messages``.

Each area of the dashboard keeps its words in its own file, ``messages/<area>.json``, as
``{"en": {key: text}, "nl": {key: text}}``; the catalogue of a language is the union of the files. A text may hold
``{name}`` placeholders. Both languages must hold the same keys (a test checks it); a key missing from a catalogue
shows as the key itself, never as an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

MESSAGES = Path(__file__).parent / "messages"


class Language(StrEnum):
    """A language of the dashboard and the locale its numbers, money and dates are written in."""

    EN = "en"
    NL = "nl"

    @property
    def locale(self) -> str:
        """The CLDR locale: Belgian Dutch; English as written in the euro area (Ireland)."""
        return {"en": "en_IE", "nl": "nl_BE"}[self.value]

    @property
    def bcp47(self) -> str:
        """The same locale as a BCP 47 tag, for the browser's ``Intl``."""
        return self.locale.replace("_", "-")


DEFAULT = Language.EN


def negotiate(cookie: str | None, accept_language: str | None) -> Language:
    """The language chosen with the switch (a cookie), else the best of the browser's Accept-Language, else
    English. Malformed headers count as absent."""
    if cookie is not None and cookie in Language.__members__.values():
        return Language(cookie)
    best: tuple[float, int, Language] | None = None
    for index, part in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in ("en", "nl") and quality > 0:
            candidate = (quality, -index, Language(primary))
            best = candidate if best is None or candidate[:2] > best[:2] else best
    return best[2] if best else DEFAULT


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The words of one language."""

    language: Language
    texts: dict[str, str]

    def __call__(self, key: str, **values: object) -> str:
        """The text of ``key`` with its placeholders filled; the key itself when the catalogue lacks it."""
        text = self.texts.get(key, key)
        return text.format(**values) if values else text


@cache
def catalogue(language: Language) -> Catalogue:
    """The union of every area's words in ``language`` (read once per process)."""
    return Catalogue(language, load(MESSAGES)[language.value])


def load(folder: Path) -> dict[str, dict[str, str]]:
    """Every ``*.json`` in ``folder`` merged per language; a key defined by two files is an error."""
    merged: dict[str, dict[str, str]] = {lang.value: {} for lang in Language}
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for lang in Language:
            texts = document.get(lang.value, {})
            clash = merged[lang.value].keys() & texts.keys()
            if clash:
                raise ValueError(f"{path.name} defines keys another file has: {sorted(clash)}")
            merged[lang.value].update(texts)
    return merged
