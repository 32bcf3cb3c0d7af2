"""Turning units read from a file into raw post records, or saying exactly why not.

One function, :func:`tweet_record`, reads every tweet shape (archive entries,
API v2 objects, v1.1 objects with ``full_text``/``extended_tweet``/``user``),
because they share most fields; CSV/Parquet rows go through the column map and
plain text lines become posts with a synthesized id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson
import xxhash

from roost.corpus.config import IngestConfig
from roost.corpus.sources import Unit

_MONTHS = {
    m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)
}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_ID_CHARS = 64


class Malformed(Exception):
    """A record that cannot be read; ``reason`` is the manifest's counter name."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class RawPost(NamedTuple):
    id: str
    text: str
    author_id: str | None
    created_at: int | None  # microseconds since the epoch, UTC
    lang: str | None  # the platform's own language tag, when the record has one
    reply_to: str | None
    conversation_id: str | None
    is_retweet: bool
    like_count: int | None
    retweet_count: int | None
    reply_count: int | None
    entity_urls: list[str] | None  # expanded URLs from the record's entities
    moderation: str | None = None  # what the platform did to it (removed, withheld, sensitive, ...), if anything


def parse_time(v: Any, field: str = "created_at") -> int | None:
    """Microseconds since the epoch from Twitter's classic format, ISO 8601, or epoch seconds."""
    if v is None or v == "":
        return None
    try:
        if isinstance(v, bool):
            raise TypeError
        if isinstance(v, (int, float)):
            return int(v * 1_000_000)
        if isinstance(v, datetime):
            dt = v
        elif isinstance(v, str):
            if v[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):  # Wed Oct 10 20:19:24 +0000 2018
                _, mon, day, hms, tz, year = v.split()
                h, m, s = hms.split(":")
                dt = datetime(int(year), _MONTHS[mon], int(day), int(h), int(m), int(s), tzinfo=timezone.utc)
                off = int(tz[1:3]) * 3600 + int(tz[3:5]) * 60
                return (dt - _EPOCH) // _US - (off if tz[0] == "+" else -off) * 1_000_000
            if v.lstrip("-").replace(".", "", 1).isdigit():
                return int(float(v) * 1_000_000)
            dt = datetime.fromisoformat(v)
        else:
            raise TypeError
    except (ValueError, KeyError, IndexError, OverflowError) as e:
        raise Malformed("bad_timestamp", f"{field}: cannot read {str(v)[:60]!r} as a time ({e})") from None
    except TypeError:
        raise Malformed("wrong_type", f"{field}: expected a time string or number, got {type(v).__name__}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _US


def _time(v: Any, field: str = "created_at") -> int | None:
    """parse_time, refusing times outside years 1-9999 (they do not fit a timestamp column)."""
    us = parse_time(v, field)
    if us is not None and not _MIN_US <= us <= _MAX_US:
        raise Malformed("bad_timestamp", f"{field}: {str(v)[:60]!r} is outside years 1-9999")
    return us


_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc) - _EPOCH
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_000_000


def _str(
    v: Any, field: str, cfg: IngestConfig, required: bool = False, limit: int | None = None, allow_empty: bool = False
) -> str | None:
    if allow_empty and v == "":  # an empty post is a record, dropped later by the "empty" filter
        return v
    if v is None or v == "":
        if required:
            raise Malformed("missing_field", f"{field} is missing")
        return None
    if not isinstance(v, str) and not (limit == MAX_ID_CHARS and isinstance(v, int) and not isinstance(v, bool)):
        raise Malformed("wrong_type", f"{field}: expected a string, got {type(v).__name__}")
    s = str(v)
    lim = limit or cfg.max_field_chars
    if len(s) > lim:
        raise Malformed("field_too_long", f"{field} has {len(s)} characters (limit {lim})")
    if "\x00" in s:
        raise Malformed("nul_byte", f"{field} contains a NUL character")
    if not s.isascii():
        try:  # lone surrogates: JSON "\udc80" escapes, or CSV bytes kept by surrogateescape
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise Malformed("invalid_utf8", f"{field} is not valid UTF-8 text") from None
    return s


def _id(v: Any, field: str, cfg: IngestConfig, required: bool = False) -> str | None:
    return _str(v, field, cfg, required, MAX_ID_CHARS)


def _count(v: Any, field: str) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise Malformed("wrong_type", f"{field}: expected an integer, got bool")
    if isinstance(v, str) and v.isdigit():  # archives store counts as strings
        v = int(v)
    if isinstance(v, int):
        if not 0 <= v < 1 << 63:
            raise Malformed("wrong_type", f"{field}: {v} is not a count")
        return v
    raise Malformed("wrong_type", f"{field}: expected an integer, got {type(v).__name__}")


_NO_DICT: dict = {}


def _dict(v: Any, field: str) -> dict:
    if v is None:
        return _NO_DICT
    if not isinstance(v, dict):
        raise Malformed("wrong_type", f"{field}: expected an object, got {type(v).__name__}")
    return v


def tweet_record(obj: Any, cfg: IngestConfig) -> RawPost:
    """A tweet in any of the shapes Twitter/X has exported (archive, API v2, API v1.1)."""
    if not isinstance(obj, dict):
        raise Malformed("wrong_type", f"expected a tweet object, got {type(obj).__name__}")
    get = obj.get
    if isinstance(get("tweet"), dict):  # archive entry: {"tweet": {...}}
        obj = obj["tweet"]
        get = obj.get
    ext, note = _dict(get("extended_tweet"), "extended_tweet"), _dict(get("note_tweet"), "note_tweet")
    text = _str(
        note.get("text") or ext.get("full_text") or get("full_text") or get("text"),
        "text",
        cfg,
        required=True,
        allow_empty=True,
    )
    tid = _id(get("id_str") or get("id"), "id", cfg, required=True)
    author = get("author_id")
    if author is None:
        user = _dict(get("user"), "user")
        author = user.get("id_str") or user.get("id") or get("_author_id")
    author = _id(author, "author_id", cfg)
    reply_to = get("in_reply_to_status_id_str") or get("in_reply_to_status_id")
    is_rt = "retweeted_status" in obj or text.startswith("RT @")
    refs = get("referenced_tweets")
    if refs:
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise Malformed("wrong_type", "referenced_tweets: expected a list of objects")
        reply_to = reply_to or next((r.get("id") for r in refs if r.get("type") == "replied_to"), None)
        is_rt = is_rt or any(r.get("type") == "retweeted" for r in refs)
    reply_to = _id(reply_to, "in_reply_to_status_id", cfg)
    metrics = _dict(get("public_metrics"), "public_metrics")
    urls = None
    entities = ext.get("entities") or get("entities")
    if entities:
        ent_urls = _dict(entities, "entities").get("urls")
        if isinstance(ent_urls, list):
            urls = [
                u["expanded_url"] for u in ent_urls if isinstance(u, dict) and isinstance(u.get("expanded_url"), str)
            ]
    lang = get("lang")
    own = get("moderation")  # the network's own export; API v2 has withheld and possibly_sensitive
    return RawPost(
        id=tid,
        text=text,
        author_id=author,
        created_at=_time(get("created_at")),
        lang=lang if isinstance(lang, str) and 0 < len(lang) <= 8 else None,
        reply_to=reply_to,
        conversation_id=_id(get("conversation_id"), "conversation_id", cfg),
        is_retweet=is_rt,
        like_count=_count(metrics.get("like_count", get("favorite_count")), "like_count"),
        retweet_count=_count(metrics.get("retweet_count", get("retweet_count")), "retweet_count"),
        reply_count=_count(metrics.get("reply_count", get("reply_count")), "reply_count"),
        entity_urls=urls or None,
        moderation=moderation_label(own)
        or ("withheld" if get("withheld") else None)
        or ("sensitive" if get("possibly_sensitive") is True else None),
    )


def moderation_label(v: Any) -> str | None:
    """A moderation column's value as a label: a non-empty word, lower-cased; empty, 0, false, no and none are None."""
    if v is None or isinstance(v, bool) or not isinstance(v, (str, int)):
        return "flagged" if v is True else None
    text = str(v).strip().lower()[:40]
    return None if text in ("", "0", "false", "no", "none", "null") else text


def user_record(obj: Any) -> dict | None:
    """A users-table row from a v2 user, a v1.1 ``user`` or an archive account (None if unusable)."""
    if not isinstance(obj, dict):
        return None
    uid = obj.get("id_str") or obj.get("id")
    if not isinstance(uid, (str, int)) or isinstance(uid, bool):
        return None
    followers = _dict(obj.get("public_metrics"), "public_metrics").get("followers_count", obj.get("followers_count"))
    try:
        created = _time(obj.get("created_at"))
    except Malformed:
        created = None
    return {
        "id": str(uid)[:MAX_ID_CHARS],
        "username": str(obj.get("username") or obj.get("screen_name") or "")[:200] or None,
        "name": str(obj.get("name") or "")[:200] or None,
        "created_at": created,
        "followers_count": followers if isinstance(followers, int) and not isinstance(followers, bool) else None,
    }


def row_record(row: dict, cfg: IngestConfig) -> RawPost:
    c = cfg.columns
    text = _str(row.get(c.text), c.text, cfg, required=True, allow_empty=True)
    tid = _id(row.get(c.id), c.id, cfg, required=True)
    return RawPost(
        tid,
        text,
        _id(row.get(c.author), c.author, cfg),
        _time(row.get(c.created_at), c.created_at),
        None,
        _id(row.get(c.reply_to), c.reply_to, cfg),
        _id(row.get(c.conversation), c.conversation, cfg),
        False,
        None,
        None,
        None,
        None,
        moderation_label(row.get(c.moderation)),
    )


def text_record(line: bytes, file: str, lineno: int, cfg: IngestConfig) -> RawPost:
    text = _str(decode(line).rstrip("\r\n"), "line", cfg)
    # a stable id: the same line of the same file is the same post on re-ingest
    where = file if "://" in file else os.path.abspath(file)  # a URL names the same file on every machine
    tid = "t" + xxhash.xxh3_64_hexdigest(f"{where}:{lineno}".encode())
    return RawPost(tid, text or "", None, None, None, None, None, False, None, None, None, None)


def decode(b: bytes) -> str:
    if b"\x00" in b:
        raise Malformed("nul_byte", "the record contains a NUL byte")
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed("invalid_utf8", f"invalid UTF-8 at byte {e.start}") from None


def unit_records(u: Unit, cfg: IngestConfig, users: list[dict]) -> Iterator[RawPost | Malformed]:
    """The records in one unit (a v2 response line holds many). Users found are appended to ``users``."""
    kind, p = u.kind, u.payload
    if kind == "text":
        yield text_record(p, u.file, u.line, cfg)
        return
    if kind == "row":
        yield row_record(p, cfg)
        return
    if kind == "user":
        if (r := user_record(p)) is not None:
            users.append(r)
        return
    if kind == "json":
        if b"\x00" in p:
            raise Malformed("nul_byte", "the record contains a NUL byte")
        try:
            p = orjson.loads(p)
        except orjson.JSONDecodeError as e:
            reason = "invalid_utf8" if ("UTF-8" in e.msg or "surrogate" in e.msg) else "bad_json"
            raise Malformed(reason, f"{e.msg} at column {e.colno}") from None
    if isinstance(p, dict) and "data" in p and not any(k in p for k in ("text", "full_text", "tweet")):
        data = p["data"]
        includes = _dict(p.get("includes"), "includes")
        for usr in includes.get("users") or []:
            if (r := user_record(usr)) is not None:
                users.append(r)
        data = [data] if isinstance(data, dict) else data
        if not isinstance(data, list):
            raise Malformed("wrong_type", f"data: expected a list of tweets, got {type(data).__name__}")
        for t in data:
            try:
                yield tweet_record(t, cfg)
            except Malformed as m:
                yield m
        return
    if isinstance(p, list):
        for t in p:
            try:
                yield tweet_record(t, cfg)
            except Malformed as m:
                yield m
        return
    if isinstance(p, dict) and isinstance(p.get("user"), dict) and (r := user_record(p["user"])) is not None:
        users.append(r)
    yield tweet_record(p, cfg)
