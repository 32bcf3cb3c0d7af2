"""Tokenization shared by the lexical index and its queries.

Tantivy's own analyzers drop ``#``, ``@`` and emoji, which are what people search
posts by. So we split text ourselves into lower-cased words, ``#hashtags``,
``@mentions`` and single emoji, and index the result in a whitespace-tokenized
field; queries go through the same function, so both sides always agree.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from roost.corpus.schema import PLACEHOLDERS

_PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS.values()))
# a #tag or @mention or word (letters/digits/_ with inner apostrophes), or one non-space symbol
_TOKEN_RE = re.compile(r"[#@]?\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_HASHTAG_RE = re.compile(r"#\w+")
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def is_emoji(ch: str) -> bool:
    """True for pictographic symbols (So category above the Latin blocks) such as 😀, ❤ or 🔥."""
    return len(ch) == 1 and ord(ch) >= 0x2190 and unicodedata.category(ch) == "So"


def split_hashtag(tag: str) -> list[str]:
    """Words of a hashtag: ``#WorldCup2026`` -> ``["world", "cup", "2026"]``, ``#game_day`` -> ``["game", "day"]``."""
    tag = tag.lstrip("#")
    words = [w for part in re.split(r"[_\W]+", tag) for w in (_CAMEL_RE.findall(part) or [part])]
    return [w.lower() for w in words if w]


def tokenize(text: str) -> list[str]:
    """Index/query terms of a post: words, ``#tag`` (plus ``tag`` and its camel-case words), ``@user``, emoji."""
    terms: list[str] = []
    for tok in _TOKEN_RE.findall(_PLACEHOLDER_RE.sub(" ", text)):
        if tok[0] == "#" and len(tok) > 1:
            terms.append(tok.lower())
            parts = split_hashtag(tok)
            bare = tok[1:].lower()
            terms.extend([bare] if parts == [bare] else [bare, *parts])
        elif tok[0] == "@" and len(tok) > 1 or tok[0].isalnum() or tok[0] == "_":
            terms.append(tok.lower())
        elif is_emoji(tok):
            terms.append(tok)
    return terms


def body_text(text: str) -> str:
    """A post's text as the lexical index holds it (and the doc store keeps, for re-scoring): its tokens,
    space-separated."""
    return " ".join(tokenize(text))


def word_counts(texts: Iterable[str]) -> Counter:
    """Counts of the alphabetic words of texts (hashtags left out): the vocabulary :func:`segment` splits with."""
    return Counter(w for text in texts for w in tokenize(_HASHTAG_RE.sub(" ", text)) if w.isalpha())


def segment(word: str, counts: Counter) -> list[str]:
    """Split a run-together word into likely words (``gameofthrones`` -> game of thrones), by unigram counts."""
    total = max(sum(counts.values()), 1)
    n = len(word)
    best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * n
    for end in range(1, n + 1):
        for start in range(max(0, end - 20), end):
            c = counts.get(word[start:end], 0)
            # an unknown piece costs more than a few known words, and little more with its
            # length: known words are used where they cover the tag, unknown runs stay whole
            cost = -math.log(c / total) if c else 40.0 + 0.5 * (end - start)
            if best[start][0] + cost < best[end][0]:
                best[end] = (best[start][0] + cost, start)
    words, end = [], n
    while end > 0:
        start = best[end][1]
        words.append(word[start:end])
        end = start
    return words[::-1]


def hashtag_words(tag: str, counts: Counter) -> list[str]:
    """A hashtag as query words: camel case split, then run-together lower-case words segmented."""
    return [w for part in split_hashtag(tag) for w in (segment(part, counts) if part.isalpha() else [part])]
