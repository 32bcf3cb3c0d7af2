"""Shared by the corpus tests: source files in every format, written by the tests themselves."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import zstandard

from roost.corpus import IngestConfig, ingest
from roost.corpus.schema import read_table

# lang_source="auto" with a `lang` on every tweet keeps the language identifier out of tests that do not test it
FAST = {"workers": 1, "batch_size": 64}


def cfg(**kw) -> IngestConfig:
    return IngestConfig(**{**FAST, **kw})


def run(ws, *sources, **kw):
    return ingest([Path(s) for s in sources], ws, cfg(**kw), progress=False)


def posts(ws) -> dict[str, dict]:
    return {r["id"]: r for r in read_table(ws.corpus, "posts").to_pylist()}


def v2(i: int, text: str, **extra) -> dict:
    return {
        "id": str(i),
        "text": text,
        "author_id": "u1",
        "created_at": f"2023-05-0{1 + i % 9}T12:00:00.000Z",
        "lang": "en",
        "conversation_id": str(i),
        **extra,
    }


def archive_entry(i: int, text: str, reply_to: str | None = None) -> dict:
    t = {
        "id_str": str(i),
        "full_text": text,
        "created_at": "Wed Oct 10 20:19:24 +0000 2018",
        "lang": "en",
        "favorite_count": "3",
        "retweet_count": "1",
        "entities": {"hashtags": [], "user_mentions": [], "urls": []},
    }
    if reply_to:
        t["in_reply_to_status_id_str"] = reply_to
    return {"tweet": t}


def tweets_js(entries: list[dict]) -> str:
    return "window.YTD.tweets.part0 = " + json.dumps(entries, indent=2)


ACCOUNT_JS = (
    'window.YTD.account.part0 = [{"account": {"accountId": "42", "username": "ada", '
    '"accountDisplayName": "Ada L", "createdAt": "2009-01-01T00:00:00.000Z"}}]'
)


def write_archive(path: Path, entries: list[dict]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("Your archive.html", "<html></html>")
        z.writestr("data/account.js", ACCOUNT_JS)
        z.writestr("data/tweets.js", tweets_js(entries))
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    data = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    return write_bytes(path, data)


def write_bytes(path: Path, data: bytes) -> Path:
    """Written as is, or gzip/zstd compressed by the path's suffix."""
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def accounting(rep) -> int:
    return rep.kept + sum(rep.dropped.values()) + sum(rep.malformed.values())
