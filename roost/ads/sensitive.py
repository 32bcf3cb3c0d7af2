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

from roost.ads.catalog import words

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

_BY_FIRST_WORD: dict[str, list[tuple[tuple[str, ...], str]]] = {}
for _category, _phrases in PHRASES.items():
    for _phrase in _phrases:
        _words = tuple(words(_phrase))
        _BY_FIRST_WORD.setdefault(_words[0], []).append((_words, _category))


@lru_cache(maxsize=16_384)
def sensitive_categories(text: str) -> frozenset[str]:
    """The categories of the sensitive phrases ``text`` contains (word for word, case ignored)."""
    ws = words(text)
    found = set()
    for i, w in enumerate(ws):
        for phrase, category in _BY_FIRST_WORD.get(w, ()):
            if tuple(ws[i : i + len(phrase)]) == phrase:
                found.add(category)
    return frozenset(found)


def sensitive_score(texts: list[str]) -> float:
    """1.0 when any of ``texts`` names a sensitive event, else 0.0 (a brand-safety score, as the probes give)."""
    return 1.0 if any(sensitive_categories(t) for t in texts) else 0.0
