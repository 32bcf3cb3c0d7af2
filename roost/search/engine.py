"""The search index as one object: open it, query it, add and delete posts live.

``workspace/index/`` holds ``docs.sqlite`` (the :class:`DocStore`, source of
truth), ``lexical/`` (tantivy) and ``vectors.usearch`` (usearch; absent when the
index was built without a model). Queries run in three modes: ``lexical``
(BM25), ``semantic`` (cosine of model embeddings) and ``hybrid`` (both fused,
:mod:`roost.search.ranking`, then ranking features).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from roost.embedfn import EmbedFn
from roost.search.dfs import TermStats, rescore
from roost.search.docstore import DocStore, Filters, Post
from roost.search.lexical import LexicalIndex
from roost.search.ranking import RankingConfig, Scored, features, final_score, fuse
from roost.search.text import body_text
from roost.search.vector import VectorConfig, VectorIndex

DOCS, LEXICAL, VECTORS = "docs.sqlite", "lexical", "vectors.usearch"
MODES = ("lexical", "semantic", "hybrid")
MAX_QUERY_CHARS = 1000
MAX_K = 100

ExpandFn = Callable[[np.ndarray], list[list[str]]]  # post vectors -> index terms predicted for each post
RerankFn = Callable[[str, list[str]], np.ndarray]  # (query, post texts) -> scores, higher is better


@dataclass
class SearchModel:
    """What search takes from a trained model: a post encoder, a query encoder (default: the same), the
    ranking tuned for them, the index terms it predicts for each post (document expansion), and a
    re-ranker of fused candidates (used when ``RankingConfig.rerank_top`` > 0)."""

    embed: EmbedFn
    embed_queries: EmbedFn | None = None
    ranking: RankingConfig = field(default_factory=RankingConfig)
    expand: ExpandFn | None = None
    rerank: RerankFn | None = None

    @classmethod
    def of(cls, model: SearchModel | EmbedFn | None) -> SearchModel | None:
        return model if model is None or isinstance(model, SearchModel) else cls(model)

    def queries(self, texts: list[str]) -> np.ndarray:
        return (self.embed_queries or self.embed)(texts)

    def expansions(self, vecs: np.ndarray | None, n: int) -> list[list[str]]:
        return self.expand(vecs) if self.expand is not None and vecs is not None else [[] for _ in range(n)]


class QueryError(ValueError):
    """A bad search request; ``param`` names the offending parameter."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


def parse_time(value: str | None, param: str) -> float | None:
    """ISO 8601 date or datetime (naive means UTC) -> epoch seconds."""
    if value is None or value == "":
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            param, f"{value!r} is not an ISO 8601 date or datetime (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


@dataclass
class SearchRequest:
    q: str
    k: int = 10
    mode: str = "hybrid"
    filters: Filters = field(default_factory=Filters)

    def validate(self) -> None:
        if not self.q or not self.q.strip():
            raise QueryError("q", "the query is empty; pass some words, e.g. ?q=football")
        if len(self.q) > MAX_QUERY_CHARS:
            raise QueryError("q", f"the query is {len(self.q)} characters long; the limit is {MAX_QUERY_CHARS}")
        if not 1 <= self.k <= MAX_K:
            raise QueryError("k", f"k must be between 1 and {MAX_K}, got {self.k}")
        if self.mode not in MODES:
            raise QueryError("mode", f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        f = self.filters
        if f.since is not None and f.until is not None and f.since >= f.until:
            raise QueryError("since", "since must be earlier than until")


@dataclass
class Hit:
    post: Post
    score: float
    components: dict[str, float]

    def to_dict(self, explain: bool = False) -> dict:
        d = {
            "id": self.post.id,
            "text": self.post.text,
            "author": self.post.author_id,
            "created_at": self.post.created_iso,
            "score": self.score,
        }
        if explain:
            d["explain"] = self.components
        return d


@dataclass
class SearchAnswer:
    hits: list[Hit]
    missing: list[int] = field(default_factory=list)  # partitions with no answer: the hits are partial
    partition_ms: float | None = None  # a partitioned index: the slowest partition's own time for its candidates

    @property
    def partial(self) -> bool:
        return bool(self.missing)


class SearchIndex:
    """An opened ``index/`` folder. Thread-safe: queries run concurrently, writes one at a time."""

    def __init__(
        self,
        path: str | Path,
        model: SearchModel | EmbedFn | None = None,
        *,
        ranking: RankingConfig | None = None,
        vector_config: VectorConfig | None = None,
    ):
        self.path = Path(path)
        self.model = SearchModel.of(model)
        self.ranking = ranking or (self.model.ranking if self.model is not None else RankingConfig())
        self.docs = DocStore(self.path / DOCS)
        self.lexical = LexicalIndex(self.path / LEXICAL)
        vpath = self.path / VECTORS
        self.vectors = VectorIndex.load(vpath, vector_config) if vpath.exists() else None
        self._write_lock = threading.Lock()
        self._catch_up_lexical()
        if self.vectors is not None:
            self._catch_up_vectors()

    def _catch_up_lexical(self) -> None:
        """Index the posts the doc store holds above tantivy's highest key: a crash or a full disk between
        the doc store's write and tantivy's commit leaves them there, never acknowledged but kept."""
        posts = self.docs.get(self.docs.live_keys_above(self.lexical.max_key()))
        if not posts:
            return
        keys, vecs = self.docs.pending_vectors()
        if self.model is not None and vecs is not None:  # their predicted tags, from the vectors kept with them
            row = {k: i for i, k in enumerate(keys)}
            have = [k for k in posts if k in row]
            for k, terms in zip(have, self.model.expansions(vecs[[row[k] for k in have]], len(have))):
                posts[k].expansion = terms
        self.lexical.add(list(posts.values()))
        self.lexical.commit()

    def _catch_up_vectors(self) -> None:
        """Replay what happened since the vector file was saved: posts added live, posts deleted."""
        keys, vecs = self.docs.pending_vectors()
        new = [i for i, k in enumerate(keys) if not self.vectors.contains(k)]
        if new:
            self.vectors.add([keys[i] for i in new], vecs[new])
        self.vectors.remove(self.docs.deleted_keys())

    @property
    def embed(self) -> EmbedFn | None:
        return self.model.embed if self.model is not None else None

    @property
    def semantic_ready(self) -> bool:
        return self.vectors is not None and self.model is not None

    def close(self) -> None:
        self.lexical.close()
        self.docs.close()

    # ---- writes -------------------------------------------------------------------------
    def add(self, posts: list[Post]) -> list[Post]:
        """Add posts (replacing any live post with the same id); searchable when this returns."""
        vecs = None
        if self.vectors is not None:  # embed first: a failure here must not lose the posts being replaced
            if self.model is None:
                raise RuntimeError("this index has vectors but no embedding model is loaded to embed new posts")
            vecs = self.model.embed([p.text for p in posts])
            for p, terms in zip(posts, self.model.expansions(vecs, len(posts))):
                p.expansion = terms
        with self._write_lock:
            for p in posts:
                self._delete_locked(p.id, commit=False)  # a repeated id replaces the old post
            start = self.docs.next_key()
            for i, p in enumerate(posts):
                p.key = start + i
            bodies = [body_text(p.text) for p in posts]  # tokenized once for both
            self.docs.add(posts, vecs, bodies)
            self.lexical.add(posts, bodies)
            self.lexical.commit()
            if vecs is not None:
                self.vectors.add([p.key for p in posts], vecs, threads=1)
        return posts

    def delete(self, post_id: str) -> bool:
        """Remove a post from every mode; False when no live post has this id."""
        with self._write_lock:
            return self._delete_locked(post_id)

    def _delete_locked(self, post_id: str, commit: bool = True) -> bool:
        key = self.docs.delete(post_id)  # from here on the doc store refuses the key in every mode
        if key is None:
            return False
        self.lexical.delete(key)
        if commit:
            self.lexical.commit()
        if self.vectors is not None:
            self.vectors.remove([key])
        return True

    # ---- queries ------------------------------------------------------------------------
    def _semantic(self, qvec: np.ndarray, n: int, filters: Filters) -> list[tuple[int, float]]:
        if not filters:
            return self.vectors.search(qvec, n)
        limit = self.vectors.config.exact_below
        allowed = self.docs.matching_keys(filters, limit + 1)
        if len(allowed) <= limit:
            return self.vectors.search_among(qvec, allowed, n)
        return self.vectors.search(qvec, n * 10)  # many posts pass: over-fetch, the filters run later

    def check_mode(self, mode: str) -> None:
        if mode != "lexical" and not self.semantic_ready:
            why = "it was built without a model" if self.vectors is None else "no embedding model is loaded"
            raise QueryError(
                "mode",
                f"mode={mode} needs the vector index, but {why}; "
                "use mode=lexical or rebuild with `roost index` after training a model",
            )

    def search_partial(self, req: SearchRequest) -> SearchAnswer:
        return SearchAnswer(self.search(req))  # one index is never partial

    def has_author(self, author_id: str) -> bool:
        return self.docs.has_author(author_id)

    def can_add(self) -> bool:
        """False when the index has vectors but no model to embed new posts with."""
        return self.vectors is None or self.model is not None

    def search(self, req: SearchRequest) -> list[Hit]:
        req.validate()
        self.check_mode(req.mode)
        qvec = self.model.queries([req.q])[0] if req.mode != "lexical" else None
        found = self.candidates(req, qvec)
        return rank(req, found, self.ranking, self.model)

    def candidates(
        self, req: SearchRequest, qvec: np.ndarray | None, stats: TermStats | None = None, depth: int | None = None
    ) -> Candidates:
        """This index's lists for ``req`` (``qvec``: the query's vector, for semantic and hybrid), each cut to
        ``depth`` (default: the ranking's candidates) after the filters, with their posts. With ``stats`` (all
        partitions' summed counts) the BM25 scores are those of one index over every partition."""
        cfg = self.ranking
        n = max(cfg.candidates, req.k) if depth is None else depth
        lists: dict[str, list[tuple[int, float]]] = {}
        if req.mode in ("lexical", "hybrid"):
            lists["bm25"] = self.lexical.search(req.q, n, req.filters, cfg.w_expansion, stats)
        if qvec is not None:
            lists["vector"] = self._semantic(qvec, n, req.filters)
        truncated = {name: len(ranked) >= n for name, ranked in lists.items()}  # more may lie past the cut
        keys = list({k for ranked in lists.values() for k, _ in ranked})
        if stats is not None and "bm25" in lists:  # the scores one index over every partition gives
            posts, fields = self.docs.get_indexed(keys)
            weights = {"body": 1.0, "expansion": cfg.w_expansion}
            lists["bm25"] = rescore(lists["bm25"], fields, self.lexical.query_terms(req.q), weights, stats)
        else:
            posts = self.docs.get(keys)
        # deleted posts and posts the filters refuse drop out here, whichever list they came from
        lists = {
            name: [(k, s) for k, s in ranked if k in posts and req.filters.accepts(posts[k])][:n]
            for name, ranked in lists.items()
        }
        if "bm25" in lists:
            matches = bool(lists["bm25"])
        else:
            matches = bool(self.lexical.search(req.q, 1, req.filters, cfg.w_expansion))
        listed = {k: posts[k] for ranked in lists.values() for k, _ in ranked}
        quality = self.docs.author_quality(p.author_id for p in listed.values())
        return Candidates(lists, listed, matches, self.docs.newest(), quality, truncated=truncated)


@dataclass
class Candidates:
    """What one index (or one partition) offers for a query, before fusion and ranking."""

    lists: dict[str, list[tuple[int, float]]]  # "bm25" and/or "vector": (key, score), best first
    posts: dict[int, Post]  # the listed posts, by key
    matches: bool  # whether any post matches the query's words (or predicted tags) under the filters
    newest: float  # the newest post's time, for recency
    quality: dict[str, float]  # the listed posts' authors' quality
    took_ms: float = 0.0  # the partition's own time for them (the front reports the slowest)
    truncated: dict[str, bool] = field(default_factory=dict)  # per list: cut at the depth asked, more may follow


def rank(
    req: SearchRequest,
    found: Candidates,
    cfg: RankingConfig,
    model: SearchModel | None,
) -> list[Hit]:
    """Fuse the candidate lists, add the post features, sort, and re-rank the head when the model can.

    A query that matches no word anywhere, e.g. a string of letters that is no word, gets vector hits only
    above the retriever's calibrated ``min_similarity``, so it returns nothing rather than the nearest posts
    of nothing; a query with word matches keeps every vector hit, ranked."""
    lists = dict(found.lists)
    if "vector" in lists and not found.matches:
        lists["vector"] = [(k, s) for k, s in lists["vector"] if s >= cfg.min_similarity]
    fused = fuse(lists, cfg)
    posts, quality = found.posts, found.quality
    hits = []
    for key, s in fused.items():
        post = posts[key]
        feats = features(post, quality.get(post.author_id, 0.0), found.newest, cfg)
        s.components.update(feats)
        hits.append(Hit(post, _score(req.mode, s, feats, cfg), s.components))
    hits.sort(key=lambda h: (-h.score, h.post.key))
    if req.mode == "hybrid" and cfg.rerank_top > 0 and model is not None and model.rerank is not None:
        hits[: cfg.rerank_top] = _rerank(model.rerank, req.q, hits[: cfg.rerank_top])
    return hits[: req.k]


def _rerank(rerank: RerankFn, q: str, top: list[Hit]) -> list[Hit]:
    """``top`` reordered by the model's re-ranker; the positions keep their scores, so the list stays sorted
    by score, and each hit's ``rerank`` component says what moved it."""
    scores = rerank(q, [h.post.text for h in top])
    slots = [h.score for h in top]
    order = sorted(range(len(top)), key=lambda i: -scores[i])  # stable: ties keep the fused order
    reranked = [top[i] for i in order]
    for h, i, slot in zip(reranked, order, slots):
        h.components["rerank"] = float(scores[i])
        h.score = slot
    return reranked


def _score(mode: str, s: Scored, feats: dict[str, float], cfg: RankingConfig) -> float:
    if mode == "lexical":
        return s.components["bm25"]
    if mode == "semantic":
        return s.components["vector"]
    return final_score(s.components["relevance"], feats, cfg)
