"""What the front and the partitions send each other: JSON-ready dicts, encoded with orjson."""

from __future__ import annotations

from dataclasses import asdict

import orjson

from roost.search.docstore import Filters, Post
from roost.search.engine import Candidates, SearchRequest


def post_to_dict(p: Post) -> dict:
    return {  # by hand: dataclasses.asdict deep-copies, and a query sends a hundred posts
        "id": p.id,
        "text": p.text,
        "author_id": p.author_id,
        "created_at": p.created_at,
        "lang": p.lang,
        "hashtags": p.hashtags,
        "engagement": p.engagement,
        "key": p.key,
        "expansion": p.expansion,
    }


def post_from_dict(d: dict) -> Post:
    return Post(**d)


def request_to_dict(req: SearchRequest) -> dict:
    return {"q": req.q, "k": req.k, "mode": req.mode, "filters": asdict(req.filters)}


def request_from_dict(d: dict) -> SearchRequest:
    return SearchRequest(q=d["q"], k=int(d["k"]), mode=d["mode"], filters=Filters(**d.get("filters", {})))


def dumps(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


loads = orjson.loads


def candidates_to_dict(c: Candidates) -> dict:
    """A partition's candidates; each post a row of what the front ranks and answers with (not the expansion
    terms, the longest part of a post and used only inside the partition)."""
    rows = [
        [p.key, p.id, p.text, p.author_id, p.created_at, p.lang, p.hashtags, p.engagement] for p in c.posts.values()
    ]
    return {
        "lists": {name: [[k, s] for k, s in ranked] for name, ranked in c.lists.items()},
        "posts": rows,
        "matches": c.matches,
        "newest": c.newest,
        "quality": c.quality,
        "took_ms": c.took_ms,
        "truncated": c.truncated,
    }


def candidates_from_dict(d: dict) -> Candidates:
    posts = {
        r[0]: Post(
            key=r[0], id=r[1], text=r[2], author_id=r[3], created_at=r[4], lang=r[5], hashtags=r[6], engagement=r[7]
        )
        for r in d["posts"]
    }
    return Candidates(
        lists={name: [(int(k), float(s)) for k, s in ranked] for name, ranked in d["lists"].items()},
        posts=posts,
        matches=bool(d["matches"]),
        newest=float(d["newest"]),
        quality={a: float(q) for a, q in d["quality"].items()},
        took_ms=float(d.get("took_ms", 0.0)),
        truncated={name: bool(t) for name, t in d.get("truncated", {}).items()},
    )
