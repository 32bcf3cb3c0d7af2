"""Fusion and ranking: weighted reciprocal rank fusion of the lexical and vector lists,
then post-level features (recency, engagement, author quality) with tunable weights.

RRF (Cormack et al. 2009) needs no score calibration between BM25 and cosine:
each list contributes ``weight / (k + rank)``. The weights, and the similarity
below which a vector hit is no match at all, are tuned per retriever on held-out
posts of the training corpus (``roost train-retriever``). The fused score is
scaled to [0, 1] (dividing by its maximum, a first place in every list) so the
feature weights below read as fractions of a perfect relevance score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from roost.search.docstore import Post, saturate


@dataclass
class RankingConfig:
    rrf_k: int = 60
    candidates: int = 50             # how many each retriever contributes to the fusion (at least k)
    w_lexical: float = 1.0           # RRF weight of the BM25 list
    w_vector: float = 1.0            # RRF weight of the vector list
    min_similarity: float = -1.0     # when no word matches, vector hits below this cosine are none (-1: keep all)
    w_expansion: float = 0.0         # BM25 weight of the terms the model predicted for a post (0: off)
    rerank_top: int = 0              # hybrid: re-rank this many fused candidates by the model (0: off; rerank.py)
    w_relevance: float = 1.0
    w_recency: float = 0.05
    w_engagement: float = 0.05
    w_author: float = 0.02
    recency_half_life_days: float = 30.0
    engagement_half: float = 20.0    # an engagement of this many counts scores 0.5


@dataclass
class Scored:
    """A candidate post with its score and the parts it was made of (for ``explain``)."""

    key: int
    score: float = 0.0
    components: dict[str, float] = field(default_factory=dict)


def rrf(lists: dict[str, list[tuple[int, float]]], k: int = 60,
        weights: dict[str, float] | None = None) -> dict[int, Scored]:
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
        s.components["rrf"] = sum(v for n, v in s.components.items() if n.startswith("rrf_")) / top
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
    return (cfg.w_relevance * relevance + cfg.w_recency * feats["recency"]
            + cfg.w_engagement * feats["engagement"] + cfg.w_author * feats["author_quality"])
