"""Render the sample as Twitter API v2 objects, so ingest reads it like a real export.

Ids are snowflakes (creation time in the high bits) as on the real platform, so
sorting by id sorts by time. Entities (hashtags, mentions, urls) are found in the
final text, so their character offsets hold even for dirty text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

TWITTER_EPOCH_MS = 1288834974657
PAGE_SIZE = 100

HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
MENTION = re.compile(r"(?<![\w.])@(\w{1,15})")
URL = re.compile(r"https?://\S+")


def snowflake(ms: int, seq: int) -> int:
    """A time-ordered id; times before the platform's epoch get the epoch (ids stay positive)."""
    return (max(ms - TWITTER_EPOCH_MS, 0) << 22) | (seq & 0x3FFFFF)


def iso(ms: int) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as the API writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def entities(text: str, user_ids: dict[str, str], expanded: dict[str, str]) -> dict[str, list[dict]]:
    """``user_ids``: username -> id (mentions of unknown names are left out); ``expanded``: t.co -> target."""
    out: dict[str, list[dict]] = {}
    tags = [{"start": m.start(), "end": m.end(), "tag": m.group(1)} for m in HASHTAG.finditer(text)]
    mentions = [
        {"start": m.start(), "end": m.end(), "username": m.group(1), "id": user_ids[m.group(1)]}
        for m in MENTION.finditer(text)
        if m.group(1) in user_ids
    ]
    urls = []
    for m in URL.finditer(text):
        target = expanded.get(m.group(0), m.group(0))
        display = re.sub(r"^https?://(www\.)?", "", target)
        urls.append(
            {
                "start": m.start(),
                "end": m.end(),
                "url": m.group(0),
                "expanded_url": target,
                "display_url": display if len(display) <= 26 else display[:25] + "…",
            }
        )
    for key, found in (("hashtags", tags), ("mentions", mentions), ("urls", urls)):
        if found:
            out[key] = found
    return out


def pages(tweets: list[dict[str, Any]], users_by_id: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """API response pages of up to PAGE_SIZE tweets, each with its authors expanded in ``includes``."""
    for i in range(0, len(tweets), PAGE_SIZE):
        data = tweets[i : i + PAGE_SIZE]
        authors = list(dict.fromkeys(t["author_id"] for t in data))
        yield {
            "data": data,
            "includes": {"users": [users_by_id[a] for a in authors]},
            "meta": {"result_count": len(data)},
        }
