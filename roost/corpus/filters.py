"""Per-post filters that need no corpus state: spam heuristics and language identification."""

from __future__ import annotations

import functools
import re

from roost.corpus.config import IngestConfig
from roost.corpus.normalize import HASHTAG_RE, MENTION_RE, URL_RE, Normalized

_PLACEHOLDER_RE = re.compile(r"<\|\w+\|>")
_ENTITY_STARTS = ("#", "@", "http://", "https://", "www.", "<|")
# Twitter's own tags that are not languages, and its legacy codes
_TWITTER_LANG = {"in": "id", "iw": "he", "ji": "yi"}


def strip_entities(text: str) -> str:
    """The words of a post without URLs, mentions, hashtags and placeholders."""
    for rx in (URL_RE, _PLACEHOLDER_RE, MENTION_RE, HASHTAG_RE):
        text = rx.sub(" ", text)
    return text


def is_spam(n: Normalized, cfg: IngestConfig) -> bool:
    """Tag or link stuffing, or a post that is nothing but tags, mentions and links."""
    if (len(n.hashtags) > cfg.spam_max_hashtags or len(n.mentions) > cfg.spam_max_mentions
            or len(n.urls) > cfg.spam_max_urls):
        return True
    if n.hashtags or n.mentions or n.urls:
        words = (w for w in n.text.split() if not w.startswith(_ENTITY_STARTS))
        return not any(c.isalpha() for w in words for c in w)
    return False


def source_lang(tag: str | None) -> str | None:
    """A record's own language tag as ISO 639-1 ("und" for Twitter's undetermined and non-language
    tags such as qme, zxx), or None when the record has no tag."""
    if not tag:
        return None
    tag = _TWITTER_LANG.get(tag.lower(), tag.lower())
    return tag if len(tag) == 2 and tag.isalpha() else "und"


@functools.lru_cache(maxsize=4)
def _detector(accuracy: str, candidates: tuple[str, ...] | None):
    """One lingua detector per process and setting: its models load lazily and take seconds to load."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if candidates:  # IngestConfig has checked that lingua knows them
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(IsoCode639_1.from_str(c) for c in candidates))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    return (builder.with_low_accuracy_mode() if accuracy == "low" else builder).build()


def detect_languages(texts: list[str], accuracy: str = "low", candidates: list[str] | None = None) -> list[str]:
    """ISO 639-1 codes from lingua (over ``candidates``, or all its languages); "und" where it cannot tell."""
    if not texts:
        return []
    detector = _detector(accuracy, tuple(candidates) if candidates else None)
    found = detector.detect_languages_in_parallel_of([strip_entities(t) for t in texts])
    return [lang.iso_code_639_1.name.lower() if lang is not None else "und" for lang in found]
