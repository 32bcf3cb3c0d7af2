"""Fusion and ranking: reciprocal rank fusion of the lexical and vector lists, then
post-level features (recency, engagement, author quality) with tunable weights.

RRF (Cormack et al. 2009) needs no score calibration between BM25 and cosine:
each list contributes ``1 / (k + rank)``. The fused score is scaled to [0, 1]
(dividing by its maximum, a first place in both lists) so the feature weights
below read as fractions of a perfect relevance score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from roost.search.docstore import Post, saturate


@dataclass
class RankingConfig:
    rrf_k: int = 60
    candidates: int = 50             # how many each retriever contributes to the fusion (at least k)
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


def rrf(lists: dict[str, list[tuple[int, float]]], k: int = 60) -> dict[int, Scored]:
    """Reciprocal rank fusion of named ranked lists of (key, score)."""
    fused: dict[int, Scored] = {}
    for name, ranked in lists.items():
        for rank, (key, score) in enumerate(ranked, start=1):
            s = fused.setdefault(key, Scored(key))
            s.components[name] = score
            s.components[f"rrf_{name}"] = 1.0 / (k + rank)
    top = len(lists) / (k + 1)
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
