"""Sensitive events: the phrases next to which no brand-safe ad is served, whatever the probes say.

The probes (:mod:`roost.ads.brand_safety`) learn from what the network
moderates, and networks moderate abuse (threats, hate, insults), not the news.
A post about a mass shooting or a terror attack is neither removed nor
withheld, so no signal teaches it, yet it is the context advertisers most want
to stay away from (the "floor" categories of the industry's brand-safety
frameworks: death and injury, violent crime, terrorism, war, abuse, self-harm).
So a short built-in list of phrases flags it. Phrases, not single words, so
that the everyday senses stay safe: "people killed" but not "this workout
killed me", "mass shooting" but not "shooting hoops", "murder victim" but not
"this level is murder". A match scores 1.0, above every threshold but 1.0 (an
advertiser who opts out of brand safety); ``AdsConfig.sensitive_phrases`` turns
the list off.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from roost.ads.catalog import words
from roost.errors import UserError

PHRASES: dict[str, tuple[str, ...]] = {
    "death and injury": (
        "people killed",
        "people were killed",
        "were killed",
        "killed at least",
        "death toll",
        "found dead",
        "bodies found",
        "dead bodies",
        "fatal crash",
        "fatally injured",
        "civilians killed",
        "dozens dead",
        "hundreds dead",
        "leaves dead",
        "left dead",
    ),
    "violent crime": (
        "mass shooting",
        "school shooting",
        "shooting victims",
        "shot dead",
        "shot and killed",
        "gunman",
        "gunmen",
        "murder victim",
        "was murdered",
        "were murdered",
        "murder suspect",
        "homicide",
        "fatal stabbing",
        "stabbing victim",
        "stabbed to death",
        "kidnapped",
        "hostages",
        "taken hostage",
        "sexual assault",
        "raped",
        "rape",
    ),
    "terrorism": (
        "terror attack",
        "terrorist attack",
        "terrorists",
        "suicide bombing",
        "suicide bomber",
        "car bomb",
        "bombing",
        "massacre of",
        "beheaded",
        "were executed",
    ),
    "war": ("airstrike", "air strike", "missile strike", "war crimes", "genocide", "ethnic cleansing"),
    "abuse": ("child abuse", "sexual abuse", "abused children", "child pornography", "human trafficking"),
    "self-harm": ("suicide", "self harm", "killed himself", "killed herself", "overdosed"),
}


class SensitivePhrases:
    """Finds the phrases of a phrase list (category -> phrases) in texts, word for word, case ignored."""

    def __init__(self, phrases: dict[str, tuple[str, ...] | list[str]] = PHRASES):
        self.by_first_word: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for category, listed in phrases.items():
            for phrase in listed:
                if ws := tuple(words(phrase)):
                    self.by_first_word.setdefault(ws[0], []).append((ws, category))
        self.categories = lru_cache(maxsize=16_384)(self._categories)

    @classmethod
    def with_file(cls, path: Path) -> SensitivePhrases:
        """The built-in list plus ``path``'s phrases, if the file exists.

        One ``category: phrase`` a line (a network's own events, its other
        languages); blank lines and lines starting with ``#`` are skipped.
        """
        phrases = {k: list(v) for k, v in PHRASES.items()}
        if path.is_file():
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                category, sep, phrase = line.partition(":")
                if not sep or not category.strip() or not words(phrase):
                    raise UserError(f"{path}:{n}: expected 'category: phrase', got {line!r}")
                phrases.setdefault(category.strip(), []).append(phrase)
        return cls(phrases)

    def _categories(self, text: str) -> frozenset[str]:
        ws = words(text)
        return frozenset(
            category
            for i, w in enumerate(ws)
            for phrase, category in self.by_first_word.get(w, ())
            if tuple(ws[i : i + len(phrase)]) == phrase
        )

    def score(self, texts: list[str]) -> float:
        """1.0 when any of ``texts`` names a sensitive event, else 0.0 (a brand-safety score, as the probes give)."""
        return 1.0 if any(self.categories(t) for t in texts) else 0.0
