"""The document store: one SQLite file, the index's source of truth.

It maps the integer keys the lexical and vector indexes use to posts (text,
author, time, engagement), answers the metadata filters, remembers deletions
(so a deleted post is never returned, whatever an index still holds) and keeps
the vectors of posts added after the build, so the vector index can catch up
after a restart without being rewritten on every post.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from roost.search.text import body_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    author_id TEXT,
    created_at REAL NOT NULL,          -- seconds since the epoch, UTC
    lang TEXT,
    hashtags TEXT NOT NULL DEFAULT '',   -- space-separated (tags are single words)
    engagement REAL NOT NULL DEFAULT 0, -- likes + 2 * retweets + replies
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL DEFAULT '',      -- the indexed tokens, space-separated (a partition re-scores with them)
    expansion TEXT NOT NULL DEFAULT ''  -- the index terms the model predicted, likewise
);
CREATE INDEX IF NOT EXISTS posts_author ON posts(author_id);
CREATE INDEX IF NOT EXISTS posts_time ON posts(created_at);
CREATE INDEX IF NOT EXISTS posts_lang ON posts(lang);
CREATE TABLE IF NOT EXISTS post_tags (key INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS post_tags_tag ON post_tags(tag, key);
CREATE TABLE IF NOT EXISTS authors (author_id TEXT PRIMARY KEY, quality REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending_vectors (key INTEGER PRIMARY KEY, vec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Post:
    """One searchable post, as the index stores and returns it."""

    id: str
    text: str
    author_id: str | None = None
    created_at: float = 0.0  # epoch seconds, UTC
    lang: str | None = None
    hashtags: list[str] = field(default_factory=list)
    engagement: float = 0.0
    key: int = -1
    expansion: list[str] = field(default_factory=list)  # index terms the model predicts for the post

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Filters:
    """Metadata restrictions a query may carry; None means no restriction."""

    author: str | None = None
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    hashtag: str | None = None  # lower-cased, without '#'
    lang: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.author, self.since, self.until, self.hashtag, self.lang))

    def accepts(self, p: Post) -> bool:
        return (
            (self.author is None or p.author_id == self.author)
            and (self.since is None or p.created_at >= self.since)
            and (self.until is None or p.created_at < self.until)
            and (self.hashtag is None or self.hashtag in p.hashtags)
            and (self.lang is None or p.lang == self.lang)
        )


_COLS = "key, id, text, author_id, created_at, lang, hashtags, engagement"


def _row_post(r) -> Post:
    return Post(
        key=r[0],
        id=r[1],
        text=r[2],
        author_id=r[3],
        created_at=r[4],
        lang=r[5],
        hashtags=r[6].split(),
        engagement=r[7],
    )


class DocStore:
    """SQLite-backed posts by key. Thread-safe: one connection, one lock (queries are short)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged live post survives a power cut
        # reads through a memory map (up to SQLite's 2 GiB cap), not a read() call per page: a query reads a few
        # hundred posts at random, and this cut that read by about a third
        self._db.execute("PRAGMA mmap_size=2147418112").fetchall()
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(posts)")}
        for name in ("body", "expansion"):  # a doc store from before the columns: rebuild it to partition it
            if name not in columns:
                self._db.execute(f"ALTER TABLE posts ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # ---- writes -------------------------------------------------------------------------
    def next_key(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(key), -1) + 1 FROM posts").fetchone()[0]

    def add(self, posts: Iterable[Post], vectors: np.ndarray | None = None, bodies: list[str] | None = None) -> None:
        """Insert posts (their ``key`` already set; ``bodies``: their :func:`body_text`, when already made); with
        ``vectors``, keep them as pending for the vector index."""
        posts = list(posts)
        bodies = bodies if bodies is not None else [body_text(p.text) for p in posts]
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                f"INSERT INTO posts ({_COLS}, body, expansion) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.key,
                        p.id,
                        p.text,
                        p.author_id,
                        p.created_at,
                        p.lang,
                        " ".join(p.hashtags),
                        p.engagement,
                        body,
                        " ".join(p.expansion),
                    )
                    for p, body in zip(posts, bodies)
                ],
            )
            self._db.executemany(
                "INSERT INTO post_tags VALUES (?,?)", [(p.key, t) for p in posts for t in set(p.hashtags)]
            )
            if vectors is not None:
                self._db.executemany(
                    "INSERT INTO pending_vectors VALUES (?,?)",
                    [(p.key, v.astype(np.float32).tobytes()) for p, v in zip(posts, vectors)],
                )
            newest = max((p.created_at for p in posts), default=None)
            if newest is not None:
                self._db.execute(
                    "INSERT INTO meta VALUES ('newest', ?) ON CONFLICT(name) DO UPDATE "
                    "SET value = MAX(CAST(value AS REAL), excluded.value)",
                    (newest,),
                )

    def delete(self, post_id: str) -> int | None:
        """Mark a post deleted; returns its key, or None when there is no such live post."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute("SELECT key FROM posts WHERE id = ? AND deleted = 0", (post_id,)).fetchone()
            if row is None:
                return None
            # keep the row (marked) so a restart can tell the vector index to drop the key;
            # rename the id so the same id can be posted again later
            self._db.execute("UPDATE posts SET deleted = 1, id = id || ':deleted:' || key WHERE key = ?", (row[0],))
            self._db.execute("DELETE FROM post_tags WHERE key = ?", (row[0],))
            self._db.execute("DELETE FROM pending_vectors WHERE key = ?", (row[0],))
            return row[0]

    def set_author_quality(self, qualities: dict[str, float]) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO authors VALUES (?,?)", list(qualities.items()))

    def clear_pending_vectors(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pending_vectors")

    # ---- reads --------------------------------------------------------------------------
    def get(self, keys: list[int]) -> dict[int, Post]:
        """Live posts by key (deleted and unknown keys are left out)."""
        return {r[0]: _row_post(r) for r in self._live_rows(keys, _COLS)}

    def get_indexed(self, keys: list[int]) -> tuple[dict[int, Post], dict[int, dict[str, list[str]]]]:
        """Live posts by key, and the tokens each was indexed with (as :meth:`indexed`), in one read."""
        posts, fields = {}, {}
        for r in self._live_rows(keys, _COLS + ", body, expansion"):
            posts[r[0]] = _row_post(r)
            fields[r[0]] = {"body": r[8].split(), "expansion": r[9].split()}
        return posts, fields

    def _live_rows(self, keys: list[int], cols: str) -> list[tuple]:
        rows: list[tuple] = []
        with self._lock:
            for i in range(0, len(keys), 900):  # SQLite's bound-parameter limit
                chunk = keys[i : i + 900]
                q = f"SELECT {cols} FROM posts WHERE deleted = 0 AND key IN ({','.join('?' * len(chunk))})"
                rows += self._db.execute(q, chunk).fetchall()
        return rows

    def indexed(self, keys: list[int]) -> dict[int, dict[str, list[str]]]:
        """The tokens each post was indexed with, per field (``body``, ``expansion``), by key."""
        out: dict[int, dict[str, list[str]]] = {}
        with self._lock:
            for i in range(0, len(keys), 900):
                chunk = keys[i : i + 900]
                q = f"SELECT key, body, expansion FROM posts WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(
                    (r[0], {"body": r[1].split(), "expansion": r[2].split()}) for r in self._db.execute(q, chunk)
                )
        return out

    def key_of(self, post_id: str) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT key FROM posts WHERE id = ? AND deleted = 0", (post_id,)).fetchone()
        return None if row is None else row[0]

    def live_keys_above(self, key: int) -> list[int]:
        with self._lock:
            return [
                r[0]
                for r in self._db.execute("SELECT key FROM posts WHERE deleted = 0 AND key > ? ORDER BY key", (key,))
            ]

    def has_author(self, author_id: str) -> bool:
        with self._lock:
            return (
                self._db.execute(
                    "SELECT 1 FROM posts WHERE author_id = ? AND deleted = 0 LIMIT 1", (author_id,)
                ).fetchone()
                is not None
            )

    def matching_keys(self, f: Filters, limit: int) -> list[int]:
        """Keys of live posts passing the filters, at most ``limit`` of them."""
        where, args = ["p.deleted = 0"], []
        for col, val in (
            ("p.author_id = ?", f.author),
            ("p.created_at >= ?", f.since),
            ("p.created_at < ?", f.until),
            ("p.lang = ?", f.lang),
        ):
            if val is not None:
                where.append(col)
                args.append(val)
        join = ""
        if f.hashtag is not None:
            join = "JOIN post_tags t ON t.key = p.key AND t.tag = ?"
            args.insert(0, f.hashtag)
        q = f"SELECT p.key FROM posts p {join} WHERE {' AND '.join(where)} LIMIT ?"
        with self._lock:
            return [r[0] for r in self._db.execute(q, [*args, limit])]

    def author_quality(self, author_ids: Iterable[str | None]) -> dict[str, float]:
        ids = sorted({a for a in author_ids if a is not None})
        if not ids:
            return {}
        with self._lock:
            rows = self._db.execute(
                f"SELECT author_id, quality FROM authors WHERE author_id IN ({','.join('?' * len(ids))})", ids
            )
            return dict(rows.fetchall())

    def deleted_keys(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT key FROM posts WHERE deleted = 1")]

    def pending_vectors(self) -> tuple[list[int], np.ndarray | None]:
        with self._lock:
            rows = self._db.execute("SELECT key, vec FROM pending_vectors ORDER BY key").fetchall()
        if not rows:
            return [], None
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def newest(self) -> float:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'newest'").fetchone()
        return float(row[0]) if row else 0.0

    def meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def live_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM posts WHERE deleted = 0")}

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM posts WHERE deleted = 0").fetchone()[0]


def saturate(x: float, half: float) -> float:
    """Map a count in [0, inf) to [0, 1): log1p(x) / (log1p(x) + log1p(half)); ``half`` maps to 0.5."""
    lx = math.log1p(max(x, 0.0))
    return lx / (lx + math.log1p(half))
