"""Text normalization, entity extraction and PII scrubbing for one post.

Order matters: repair the text first (mojibake, HTML entities, NFC, whitespace),
then pull hashtags/mentions/URLs out of the repaired text, then replace spans
(emails before mentions, since an email holds an ``@``; URLs before phone
numbers, since URLs hold digit runs).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

import ftfy

from roost.corpus.schema import PLACEHOLDERS

# ftfy costs ~20 us a post; pure-ASCII text cannot hold mojibake, so it skips ftfy.
_FTFY = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, explain=False)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HSPACE = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")

URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b")
MENTION_RE = re.compile(r"(?<![\w@])@(\w{1,50})")
HASHTAG_RE = re.compile(r"(?<![\w#&])#(\w*[^\W\d_]\w*)")
PHONE_RE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,18}\d(?!\w)")
_PHONE_HINT = re.compile(r"\d[\d ().-]{7,}")  # a cheap first look: PHONE_RE's lookbehind makes it slow to scan
_URL_TRAIL = ".,;:!?)]}'\""


def clean_text(text: str) -> str:
    """Repair and tidy: mojibake (ftfy), HTML entities, NFC, control chars, whitespace; emoji kept."""
    if not text.isascii():
        text = ftfy.fix_text(text, _FTFY)
        text = unicodedata.normalize("NFC", text)
    if "&" in text:
        text = html.unescape(text)
    if text.isprintable():  # the common case: no control characters, tabs or line breaks
        return (_HSPACE.sub(" ", text) if "  " in text else text).strip()
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _HSPACE.sub(" ", text)
    if "\n" in text:
        text = _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.split("\n")))
    return text.strip()


def _phone(m: re.Match) -> str:
    digits = sum(c.isdigit() for c in m.group(0))
    return PLACEHOLDERS["phone"] if 9 <= digits <= 15 else m.group(0)


@dataclass
class Normalized:
    text: str
    hashtags: list[str]
    mentions: list[str]
    urls: list[str]
    pii: int  # emails and phone numbers replaced


def normalize_post(
    text: str, urls_mode: str = "keep", mentions_mode: str = "keep", scrub_pii: bool = True
) -> Normalized:
    text = clean_text(text)
    urls = [u.rstrip(_URL_TRAIL) for u in URL_RE.findall(text)] if ("http" in text or "www." in text) else []
    hashtags = [h.lower() for h in HASHTAG_RE.findall(text)] if "#" in text else []
    pii = 0
    if scrub_pii and "@" in text:
        text, pii = EMAIL_RE.subn(PLACEHOLDERS["email"], text)
    mentions = [m.lower() for m in MENTION_RE.findall(text)] if "@" in text else []
    if urls and urls_mode == "placeholder":
        text = URL_RE.sub(lambda m: PLACEHOLDERS["url"] + m.group(0)[len(m.group(0).rstrip(_URL_TRAIL)) :], text)
    if mentions and mentions_mode == "placeholder":
        text = MENTION_RE.sub(PLACEHOLDERS["mention"], text)
    if scrub_pii and _PHONE_HINT.search(text):
        before = text.count(PLACEHOLDERS["phone"])
        text = _scrub_phones_outside_urls(text)
        pii += text.count(PLACEHOLDERS["phone"]) - before
    return Normalized(text, hashtags, mentions, urls, pii)


def _scrub_phones_outside_urls(text: str) -> str:
    """Phone scrubbing that leaves kept URLs intact (their digit runs are not phone numbers)."""
    out, last = [], 0
    for m in URL_RE.finditer(text):
        out.append(PHONE_RE.sub(_phone, text[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(PHONE_RE.sub(_phone, text[last:]))
    return "".join(out)
