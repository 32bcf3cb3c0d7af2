"""Tune search to a retriever on posts it did not train on, so fusion never loses to its parts.

``roost train-retriever`` holds out a share of the corpus (:func:`holdout`), trains on
the rest, then runs the unseen-posts protocol (:mod:`roost.search.unseen`) on the
held-out posts through the real index code, and picks:

* the fusion (score or RRF, :mod:`roost.search.ranking`) and the weights of the lexical
  and vector lists, from a grid that includes each list alone, judged on two query sets:
  the hashtags removed from the posts (words the posts lack) and kept in them (words they
  contain). Among the fusions that lose nothing to BM25 where the words are there (a query
  whose words the posts contain must still find them first: with a weak vector list, the
  demo's "pizza" otherwise returned tech posts above the posts that say pizza), the choice
  maximises the worst ratio of hybrid to the better of its parts over both query sets and
  both metrics (NDCG@10, MRR): "fusion never loses to its parts" is the objective itself
  (a sum of metrics let the kept queries, whose figures are five times larger, decide alone);
* the BM25 weight of the expansion terms (0 when they do not help);
* ``min_similarity``, the cosine below which a vector hit is no match when no word of
  the query matches: the highest similarity that nonsense queries (random letter
  strings) reach among the held-out posts, so a query that matches nothing returns
  nothing.
"""

from __future__ import annotations

import random
import string
import tempfile
from dataclasses import asdict, replace

import numpy as np
import xxhash
from tqdm import tqdm

from roost.search.build import build_index
from roost.search.engine import SearchIndex, SearchModel
from roost.search.eval import EvalTask, evaluate
from roost.search.ranking import RankingConfig

# (fusion, w_lexical, w_vector): each list alone, then each fusion over the vector weights worth trying
FUSION_GRID = (
    [("score", 1.0, 0.0), ("score", 0.0, 1.0)]
    + [("score", 1.0, w) for w in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)]
    + [("rrf", 1.0, w) for w in (0.25, 0.5, 1.0, 2.0, 4.0)]
)
EXPANSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
MIN_QUERIES = 10
HOLDOUT_SALT = 0x5EED  # so the held-out share is independent of other splits by a hash of the text (e.g. unseen.py's)


def holdout(texts: list[str], fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask of posts held out from training, by a seeded hash of the text (repeats go together)."""
    cut = fraction * 1_000_000
    return np.array(
        [xxhash.xxh64_intdigest(t.encode(), seed=seed + HOLDOUT_SALT) % 1_000_000 < cut for t in texts], dtype=bool
    )


def nonsense_queries(n: int, seed: int = 0) -> list[str]:
    """Random lower-case letter strings of 8-16 characters: queries no post should match."""
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(8, 16))) for _ in range(n)]


def calibrate_min_similarity(model: SearchModel, post_vecs: np.ndarray, n: int = 200) -> float:
    """The highest cosine any nonsense query reaches among ``post_vecs`` [N, dim]."""
    sims = model.queries(nonsense_queries(n)) @ post_vecs.T
    return float(sims.max()) if sims.size else -1.0


def semantic_quality(models: dict[str, SearchModel], task: EvalTask) -> dict[str, dict[str, float]]:
    """Semantic-mode metrics of each model (same post encoder, different query encoders) on ``task``'s posts."""
    first = next(iter(models.values()))
    with tempfile.TemporaryDirectory(prefix="roost-tune-") as tmp:
        build_index([task.posts], tmp, replace(first, expand=None), total=len(task.posts))
        index = SearchIndex(tmp, first)
        try:
            out = {}
            for name, model in models.items():
                index.model = model
                out[name] = evaluate(index, task.queries, ("semantic",), progress=False)["semantic"]
        finally:
            index.close()
    return out


TUNED = ("fusion", "w_lexical", "w_vector", "w_expansion", "min_similarity")  # what a retriever file keeps
METRICS = ("ndcg@10", "mrr")


def _objective(m: dict[str, float]) -> float:
    return sum(m[k] for k in METRICS)


def worst_ratio(hybrid: list[dict[str, float]], parts: list[dict[str, dict[str, float]]]) -> float:
    """The smallest ratio of ``hybrid``'s metric to the better part's (lexical or semantic), over the query
    sets and :data:`METRICS`: at least 1 when the fusion never loses to its parts."""
    return min(h[k] / max(p["lexical"][k], p["semantic"][k], 1e-9) for h, p in zip(hybrid, parts) for k in METRICS)


def keeps_exact_matches(hybrid: list[dict[str, float]], parts: list[dict[str, dict[str, float]]]) -> bool:
    """Whether ``hybrid`` is at least lexical's on the query set with the words kept (the last; True without it)."""
    if len(hybrid) < 2:
        return True
    return all(hybrid[-1][k] >= parts[-1]["lexical"][k] for k in METRICS)


def choose(results: list[tuple[list[dict[str, float]], RankingConfig]], parts: list[dict]) -> tuple:
    """The (per-query-set metrics, config) that :func:`keeps_exact_matches` with the best :func:`worst_ratio`
    (ties: the larger NDCG@10 + MRR summed over the query sets)."""
    return max(
        results,
        key=lambda r: (keeps_exact_matches(r[0], parts), worst_ratio(r[0], parts), sum(_objective(m) for m in r[0])),
    )


def tune_ranking(
    model: SearchModel, task: EvalTask, calibration_texts: list[str], kept: EvalTask | None = None
) -> tuple[RankingConfig, dict]:
    """The ranking for ``model``, tuned on ``task`` (held-out posts and their hashtag queries); with a report.

    ``kept`` is the same task with the hashtags left in the posts: queries whose words the posts do contain,
    where BM25 is strong. Among the fusions that :func:`keeps_exact_matches` (lexical alone always does), the
    one with the best :func:`worst_ratio` over both wins (ties: NDCG@10 + MRR): a weak vector list cannot bury
    exact word matches to win the queries whose words were removed, nor BM25's common-word hits bury what only
    the vector list finds. The no-match threshold is
    calibrated on ``calibration_texts`` (posts) whatever the task's size; the weights only when the task
    has at least :data:`MIN_QUERIES` queries (else the defaults stay)."""
    min_sim = calibrate_min_similarity(model, model.embed(calibration_texts))
    base = RankingConfig(min_similarity=min_sim)
    if len(task.queries) < MIN_QUERIES:
        return base, {
            "chosen": {"min_similarity": min_sim},
            "skipped": f"{len(task.queries)} held-out queries (fewer than {MIN_QUERIES}): default weights",
        }
    with (
        tempfile.TemporaryDirectory(prefix="roost-tune-") as tmp,
        tempfile.TemporaryDirectory(prefix="roost-tune-kept-") as tmp_kept,
    ):
        build_index([task.posts], tmp, model, total=len(task.posts))
        index = SearchIndex(tmp, model, ranking=base)
        tasks = [(index, task.queries)]
        if kept is not None:
            build_index([kept.posts], tmp_kept, model, total=len(kept.posts))
            tasks.append((SearchIndex(tmp_kept, model, ranking=base), kept.queries))
        try:
            lexical = evaluate(index, task.queries, ("lexical",), progress=False)["lexical"]
            semantic = evaluate(index, task.queries, ("semantic",), progress=False)["semantic"]
            best_exp, best_lex = 0.0, lexical
            for w in EXPANSION_WEIGHTS[1:]:
                index.ranking = replace(base, w_expansion=w)
                r = evaluate(index, task.queries, ("lexical",), progress=False)["lexical"]
                if r["ndcg@10"] > best_lex["ndcg@10"]:
                    best_exp, best_lex = w, r
            parts = [{"lexical": best_lex, "semantic": semantic}]  # the hybrid's parts, per query set
            for ix, queries in tasks[1:]:
                ix.ranking = replace(base, w_expansion=best_exp)
                parts.append(evaluate(ix, queries, ("lexical", "semantic"), progress=False))
            results = []
            # one bar for the whole grid: a bar an evaluation printed dozens of lines into a piped log
            for fusion, w_lex, w_vec in tqdm(FUSION_GRID, desc="tune ranking", unit="setting", leave=False):
                cfg = replace(base, w_expansion=best_exp, fusion=fusion, w_lexical=w_lex, w_vector=w_vec)
                per_task = []
                for ix, queries in tasks:
                    ix.ranking = cfg
                    per_task.append(evaluate(ix, queries, ("hybrid",), progress=False)["hybrid"])
                results.append((per_task, cfg))
        finally:
            for ix, _ in tasks:
                ix.close()
    per_task, cfg = choose(results, parts)
    report = {
        "queries": len(task.queries),
        "posts": len(task.posts),
        "lexical": lexical,
        "lexical_expanded": best_lex,
        "semantic": semantic,
        "hybrid": per_task[0],
        "hybrid_tags_kept": per_task[1] if kept is not None else None,
        "parts_tags_kept": parts[1] if kept is not None else None,
        "worst_ratio_to_parts": worst_ratio(per_task, parts),
        "grid": [
            {
                "fusion": c.fusion,
                "w_lexical": c.w_lexical,
                "w_vector": c.w_vector,
                "removed": r[0],
                "kept": r[1] if kept is not None else None,
                "worst_ratio": worst_ratio(r, parts),
                "keeps_exact_matches": keeps_exact_matches(r, parts),
            }
            for r, c in results
        ],
        "chosen": {k: v for k, v in asdict(cfg).items() if k in TUNED},
    }
    return cfg, report
