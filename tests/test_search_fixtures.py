"""Shared by the search tests: a tiny generated corpus and a deterministic embedding function."""

from __future__ import annotations

import random
import zlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roost.corpus import schema
from roost.search.text import tokenize
from roost.workspace import Workspace

TOPICS = {
    "football": ("goal striker match derby keeper league penalty stadium", "worldcup", "⚽"),
    "cooking": ("pasta recipe oven garlic sauce dinner bake kitchen", "foodie", "🍝"),
    "ai": ("model neural training gpu transformer dataset inference tokens", "machinelearning", "🤖"),
}
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def make_posts(n: int = 60, seed: int = 0) -> list[dict]:
    """Posts in schema.POSTS shape: topic words, a topic hashtag on some, replies within a topic."""
    rng = random.Random(seed)
    posts: list[dict] = []
    names = sorted(TOPICS)
    for i in range(n):
        topic = names[i % len(names)]
        words, tag, emoji = TOPICS[topic]
        text = " ".join(rng.sample(words.split(), 4))
        tags = [tag] if i % 2 == 0 else []
        if tags:
            text += f" #{tag}"
        if i % 5 == 0:
            text += f" {emoji}"
        parent = posts[i - 3]["id"] if i >= 3 and i % 4 == 0 else None  # i-3 has the same topic
        posts.append(
            {
                "id": f"p{i}",
                "text": text,
                "author_id": f"u{i % 4}",
                "created_at": START + timedelta(days=i),
                "lang": "es" if i % 10 == 9 else "en",
                "reply_to": parent,
                "conversation_id": parent,
                "hashtags": tags,
                "mentions": [],
                "urls": [],
                "like_count": i,
                "retweet_count": 0,
                "reply_count": 0,
                "source": "test",
                "topic": topic,
            }
        )
    return posts


def write_corpus(ws: Workspace, posts: list[dict]) -> None:
    ws.corpus.mkdir(parents=True, exist_ok=True)
    cols = {name: [p[name] for p in posts] for name in schema.POSTS.names}
    pq.write_table(pa.table(cols, schema=schema.POSTS), ws.corpus / "posts-00000.parquet")
    authors = sorted({p["author_id"] for p in posts})
    users = {
        "id": authors,
        "username": authors,
        "name": authors,
        "created_at": [START] * len(authors),
        "followers_count": [10**i for i in range(len(authors))],
    }
    pq.write_table(pa.table(users, schema=schema.USERS), ws.corpus / "users-00000.parquet")
    ws.write_manifest("corpus", counts={"posts": len(posts)})


def bow_embed(texts: list[str], dim: int = 64) -> np.ndarray:
    """Unit bag-of-words vectors (crc32 buckets): similar words, similar vectors, no model needed."""
    out = np.full((len(texts), dim), 1e-3, dtype=np.float32)
    for i, text in enumerate(texts):
        for w in tokenize(text):
            out[i, zlib.crc32(w.lstrip("#").encode()) % dim] += 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)
