"""One batch of units -> candidate posts with their hashes, plus every drop and reject counted.

This is the part of ingest with no corpus state, so it runs in worker
processes; the main process only deduplicates against the store and writes.
Every record read ends up exactly once in ``kept`` candidates, ``dropped`` or
``malformed``: the accounting invariant starts here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import xxhash

from roost.corpus.config import IngestConfig
from roost.corpus.filters import detect_languages, is_spam, source_lang
from roost.corpus.minhash import MinHasher
from roost.corpus.normalize import normalize_post
from roost.corpus.records import Malformed, RawPost, unit_records
from roost.corpus.schema import POSTS
from roost.corpus.sources import Unit, split_lines
from roost.corpus.spam import post_signals

POST_FIELDS = (
    "id",
    "text",
    "author_id",
    "created_at",
    "lang",
    "reply_to",
    "conversation_id",
    "hashtags",
    "mentions",
    "urls",
    "like_count",
    "retweet_count",
    "reply_count",
    "source",
)


@dataclass
class BatchResult:
    posts: pa.RecordBatch | None = None  # candidates, before dedup against the corpus
    id_hash: np.ndarray | None = None
    text_hash: np.ndarray | None = None
    bands: np.ndarray | None = None
    read: int = 0
    dropped: Counter = field(default_factory=Counter)
    malformed: Counter = field(default_factory=Counter)
    rejects: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    pii_scrubbed: int = 0
    skeletons: np.ndarray | None = None  # per candidate, for the learned spam filter: skeleton keys
    spam_signals: np.ndarray | None = None  # and its per-post features (roost.corpus.spam.post_signals)
    spam: list[dict] = field(default_factory=list)  # posts the spam rules dropped, for corpus/spam.jsonl
    moderation: list[dict] = field(default_factory=list)  # {"id", "label"} of candidates the platform acted on


def _sample(u: Unit) -> str:
    p = u.payload
    if u.kind == "bad":
        p = p[2]
    if isinstance(p, bytes):
        return p[:200].decode("utf-8", errors="replace")
    try:
        return json.dumps(p, default=str, ensure_ascii=False)[:200]
    except (TypeError, ValueError):
        return repr(p)[:200]


def _expand(units: list[Unit], max_line: int) -> Iterator[Unit]:
    for unit in units:
        if unit.kind == "lines":
            yield from split_lines(unit, max_line)
        else:
            yield unit


class BatchProcessor:
    """Holds what is costly to build (MinHash permutations) for the life of a worker."""

    def __init__(self, cfg: IngestConfig):
        self.cfg = cfg
        self.hasher = MinHasher(cfg.num_perm, cfg.near_dup_threshold, cfg.shingle_words, cfg.minhash_seed)

    def _reject(self, r: BatchResult, u: Unit, reason: str, detail: str) -> None:
        r.read += 1
        r.malformed[reason] += 1
        if len(r.rejects) < self.cfg.max_rejects_logged:
            r.rejects.append({"file": u.file, "line": u.line, "reason": reason, "detail": detail, "sample": _sample(u)})

    def __call__(self, units: list[Unit]) -> BatchResult:
        cfg, r = self.cfg, BatchResult()
        posts: list[tuple[RawPost, str, object]] = []  # (raw, source file, normalized)
        for u in _expand(units, cfg.max_line_bytes):
            if u.kind == "bad":
                reason, detail, _ = u.payload
                self._reject(r, u, reason, detail)
                continue
            it = unit_records(u, cfg, r.users)
            while True:
                try:
                    rec = next(it)
                except StopIteration:
                    break
                except Malformed as m:
                    self._reject(r, u, m.reason, m.detail)
                    break
                if isinstance(rec, Malformed):
                    self._reject(r, u, rec.reason, rec.detail)
                    continue
                try:
                    reason = self._filter(rec, r, posts, u.file)
                except Exception as e:  # noqa: BLE001 - a record no rule foresaw: counted and sampled, never a crash
                    self._reject(r, u, "internal_error", f"{type(e).__name__}: {e}")
                    continue
                r.read += 1
                if reason:
                    r.dropped[reason] += 1
        self._hashes(self._columns(posts, r), r)
        return r

    def _filter(self, rec: RawPost, r: BatchResult, posts: list, source: str) -> str | None:
        cfg = self.cfg
        if cfg.drop_retweets and rec.is_retweet:
            return "retweet"
        n = normalize_post(rec.text, cfg.urls, cfg.mentions, cfg.scrub_pii)
        if not n.text:
            return "empty"
        if len(n.text) < cfg.min_chars:
            return "too_short"
        if cfg.drop_spam and is_spam(n, cfg):
            if len(r.spam) < cfg.max_rejects_logged:
                r.spam.append({"id": rec.id, "author_id": rec.author_id, "text": n.text, "by": "rules"})
            return "spam"
        r.pii_scrubbed += n.pii
        posts.append((rec, source, n))
        if rec.moderation:
            r.moderation.append({"id": rec.id, "label": rec.moderation})
        return None

    def _columns(self, posts: list, r: BatchResult) -> dict[str, list]:
        """The candidates as columns, with languages (the record's own tag or the identifier's) checked."""
        cfg = self.cfg
        langs = [source_lang(rec.lang) if cfg.lang_source == "auto" else None for rec, _, _ in posts]
        if cfg.lang_source != "off":
            todo = [i for i, lang in enumerate(langs) if lang is None]
            found = detect_languages(
                [posts[i][2].text for i in todo], cfg.lang_accuracy, cfg.lang_candidates, cfg.lang_model
            )
            for i, lang in zip(todo, found):
                langs[i] = lang
        langs = [lang or "und" for lang in langs]
        if cfg.languages is not None:
            allowed = set(cfg.languages)
            keep = [i for i, lang in enumerate(langs) if lang in allowed]
            r.dropped["language"] += len(posts) - len(keep)
            posts[:] = [posts[i] for i in keep]
            langs = [langs[i] for i in keep]
        rows = [
            (
                rec.id,
                n.text,
                rec.author_id,
                rec.created_at,
                lang,
                rec.reply_to,
                rec.conversation_id,
                n.hashtags,
                n.mentions,
                rec.entity_urls or n.urls,
                rec.like_count,
                rec.retweet_count,
                rec.reply_count,
                source,
            )
            for (rec, source, n), lang in zip(posts, langs)
        ]  # in POST_FIELDS order
        p = {k: list(col) for k, col in zip(POST_FIELDS, zip(*rows))} if rows else {k: [] for k in POST_FIELDS}
        r.posts = pa.RecordBatch.from_pydict(p, schema=POSTS)
        return p

    def _hashes(self, p: dict[str, list], r: BatchResult) -> None:
        """Dedup keys, never 0 (the hash tables' empty slot): both engines compare the same keys."""
        texts, ids = p["text"], p["id"]
        r.id_hash = _keys(np.fromiter((xxhash.xxh3_64_intdigest(i.encode()) for i in ids), np.uint64, len(ids)))
        if self.cfg.dedup_exact:
            r.text_hash = _keys(
                np.fromiter((xxhash.xxh3_64_intdigest(t.encode()) for t in texts), np.uint64, len(texts))
            )
        if self.cfg.dedup_near:
            r.bands = _keys(self.hasher.band_keys(self.hasher.signatures(texts)))
        if self.cfg.drop_spam and self.cfg.spam_learned:
            r.skeletons, r.spam_signals = post_signals(texts, p["urls"], p["hashtags"], p["mentions"], p["reply_to"])


def _keys(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, np.uint64(1))


_worker: BatchProcessor | None = None


def init_worker(cfg: IngestConfig) -> None:
    global _worker
    _worker = BatchProcessor(cfg)


def run_batch(units: list[Unit]) -> BatchResult:
    assert _worker is not None, "init_worker was not called in this process"
    return _worker(units)
