"""Fusion and ranking: the lexical and vector lists fused into one relevance in [0, 1], then
post-level features (recency, engagement, author quality) with tunable weights.

Two fusions, chosen per retriever on held-out posts (``roost train-retriever``, :mod:`roost.search.tune`):

* ``score`` (CombSUM of normalised scores, Fox & Shaw 1994): each list's scores scaled to [0, 1] over its
  first ``candidates`` hits (BM25 divided by the list's best, cosine min-max), then a weighted sum. It keeps
  how far ahead a hit is, so a vector list that is sure of itself can outvote BM25 hits that only share a
  common word, and exact matches that BM25 is sure of stay on top. On unseen tweets it beat both its parts
  on both query kinds, where RRF lost to the vector list on queries whose words the posts lack.
* ``rrf`` (reciprocal rank fusion, Cormack et al. 2009): each list contributes ``weight / (k + rank)``;
  needs no score calibration. The ablation keeps it as the reference.

Either way the fused relevance is divided by its maximum (first, or best, in every list), so the feature
weights below read as fractions of a perfect relevance score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from roost.search.docstore import Post, saturate


@dataclass
class RankingConfig:
    fusion: str = "score"  # "score" (CombSUM of normalised scores) or "rrf"
    rrf_k: int = 60
    candidates: int = 50  # how many each retriever contributes to the fusion (at least k)
    w_lexical: float = 1.0  # fusion weight of the BM25 list
    w_vector: float = 1.0  # fusion weight of the vector list
    min_similarity: float = -1.0  # when no word matches, vector hits below this cosine are none (-1: keep all)
    w_expansion: float = 0.0  # BM25 weight of the terms the model predicted for a post (0: off)
    rerank_top: int = 0  # hybrid: re-rank this many fused candidates by the model (0: off; rerank.py)
    w_relevance: float = 1.0
    w_recency: float = 0.05
    w_engagement: float = 0.05
    w_author: float = 0.02
    recency_half_life_days: float = 30.0
    engagement_half: float = 20.0  # an engagement of this many counts scores 0.5


@dataclass
class Scored:
    """A candidate post with its score and the parts it was made of (for ``explain``)."""

    key: int
    score: float = 0.0
    components: dict[str, float] = field(default_factory=dict)


FUSIONS = ("score", "rrf")


def fuse(lists: dict[str, list[tuple[int, float]]], cfg: RankingConfig) -> dict[int, Scored]:
    """The lists fused as ``cfg.fusion`` says, with weights ``w_lexical`` (list "bm25") and ``w_vector``
    (list "vector"); each candidate's ``relevance`` component in [0, 1]."""
    if cfg.fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {cfg.fusion!r}")
    weights = {"bm25": cfg.w_lexical, "vector": cfg.w_vector}
    if cfg.fusion == "rrf":
        return rrf(lists, cfg.rrf_k, weights)
    return score_fusion(lists, cfg.candidates, weights)


def normalised(ranked: list[tuple[int, float]], depth: int, min_max: bool) -> list[float]:
    """Scores scaled to [0, 1] by the list's first ``depth`` hits: divided by the best (``min_max`` False,
    for BM25, whose zero means no match) or min-max (for cosine); hits past the depth clamp at 0."""
    if not ranked:
        return []
    head = [s for _, s in ranked[:depth]]
    top, floor = max(head), (min(head) if min_max else 0.0)
    if top <= floor:
        return [1.0 if s >= top else 0.0 for _, s in ranked]
    return [min(max((s - floor) / (top - floor), 0.0), 1.0) for _, s in ranked]


def score_fusion(
    lists: dict[str, list[tuple[int, float]]], depth: int, weights: dict[str, float] | None = None
) -> dict[int, Scored]:
    """Weighted CombSUM of normalised scores (:func:`normalised`; cosine lists, named "vector", min-max)."""
    weights = {name: (weights or {}).get(name, 1.0) for name in lists}
    fused: dict[int, Scored] = {}
    for name, ranked in lists.items():
        for (key, score), norm in zip(ranked, normalised(ranked, depth, min_max=name == "vector")):
            s = fused.setdefault(key, Scored(key))
            s.components[name] = score
            s.components[f"norm_{name}"] = norm
    total = max(sum(weights.values()), 1e-9)
    for s in fused.values():
        s.components["relevance"] = sum(weights[n] * s.components.get(f"norm_{n}", 0.0) for n in lists) / total
    return fused


def rrf(
    lists: dict[str, list[tuple[int, float]]], k: int = 60, weights: dict[str, float] | None = None
) -> dict[int, Scored]:
    """Weighted reciprocal rank fusion of named ranked lists of (key, score); a list's weight defaults to 1."""
    weights = {name: (weights or {}).get(name, 1.0) for name in lists}
    fused: dict[int, Scored] = {}
    for name, ranked in lists.items():
        for rank, (key, score) in enumerate(ranked, start=1):
            s = fused.setdefault(key, Scored(key))
            s.components[name] = score
            s.components[f"rrf_{name}"] = weights[name] / (k + rank)
    top = max(sum(weights.values()), 1e-9) / (k + 1)
    for s in fused.values():
        s.components["relevance"] = sum(v for n, v in s.components.items() if n.startswith("rrf_")) / top
    return fused


def features(post: Post, author_quality: float, newest: float, cfg: RankingConfig) -> dict[str, float]:
    """Query-independent signals of a post, each in [0, 1]."""
    age_days = max(newest - post.created_at, 0.0) / 86400.0
    return {
        "recency": math.exp(-math.log(2) * age_days / cfg.recency_half_life_days),
        "engagement": saturate(post.engagement, cfg.engagement_half),
        "author_quality": author_quality,
    }


def final_score(relevance: float, feats: dict[str, float], cfg: RankingConfig) -> float:
    return (
        cfg.w_relevance * relevance
        + cfg.w_recency * feats["recency"]
        + cfg.w_engagement * feats["engagement"]
        + cfg.w_author * feats["author_quality"]
    )
