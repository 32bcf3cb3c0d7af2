"""The unseen-posts protocol: does the model help search on posts it never saw?

A network's model is trained on yesterday's posts and searched over today's. So the
posts are split in two, disjoint by text: the *train* part is everything the
pipeline learns from (tokenizer, language model, retriever, hashtag predictor), the
*eval* part is added live to an empty index through :meth:`SearchIndex.add`, the
call ``POST /admin/posts`` makes. Queries are hashtags of the eval part, written as
words (``#BuildTheWall`` -> "build the wall"); every occurrence of a query's hashtag
is removed from the eval posts, and the relevant posts are those that carried it.
Hashtags may also occur in the train part (as they would on a real network: the
model learns what a tag's posts talk about from older posts).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import xxhash

from roost.errors import UserError
from roost.search.engine import SearchIndex, SearchModel
from roost.search.eval import EvalTask, Query, tag_query_task
from roost.search.text import word_counts

_HASHTAG_RE = re.compile(r"#(\w+)")


@dataclass
class UnseenConfig:
    eval_fraction: float = 0.25  # share of the (deduplicated) posts that the pipeline never sees
    min_posts: int = 3  # a hashtag on at least this many eval posts becomes a query
    max_queries: int = 500
    seed: int = 0


def split_texts(texts: list[str], cfg: UnseenConfig) -> tuple[list[str], list[str]]:
    """Deduplicated texts split in two by a seeded hash of the text: (train, eval)."""
    if not 0 < cfg.eval_fraction < 1:
        raise UserError(f"eval_fraction must be between 0 and 1, got {cfg.eval_fraction}")
    train, held = [], []
    for text in dict.fromkeys(t.strip() for t in texts if t.strip()):
        h = xxhash.xxh64_intdigest(text.encode(), seed=cfg.seed) % 1_000_000
        (held if h < cfg.eval_fraction * 1_000_000 else train).append(text)
    return train, held


def unseen_task(
    eval_texts: list[str], cfg: UnseenConfig, counts: Counter | None = None, keep_tags: bool = False
) -> EvalTask:
    """Queries from the eval posts' hashtags (on >= ``min_posts`` posts), removed from the posts' text
    (left in with ``keep_tags``: the same queries over words the posts contain).

    ``counts`` (word counts, e.g. of the train part) split run-together hashtags into words."""
    counts = counts if counts is not None else word_counts(eval_texts)
    tags_of = [[t.lower() for t in _HASHTAG_RE.findall(text)] for text in eval_texts]
    df = Counter(t for tags in tags_of for t in set(tags))
    query_tags = sorted(
        (t for t, c in df.items() if c >= cfg.min_posts and not t.isdigit()), key=lambda t: (-df[t], t)
    )[: cfg.max_queries]
    return tag_query_task("unseen", eval_texts, tags_of, query_tags, counts, "u", keep_tags)


def write_split(texts: list[str], out: str | Path, cfg: UnseenConfig) -> tuple[Path, Path]:
    """Write ``train.txt`` and ``eval.txt`` (one post a line) into ``out``: train the pipeline on the first."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = split_texts(texts, cfg)
    paths = out / "train.txt", out / "eval.txt"
    for path, part in zip(paths, (train, held)):
        path.write_text("".join(" ".join(t.split()) + "\n" for t in part), encoding="utf-8")
    return paths


def read_post_texts(path: str | Path) -> list[str]:
    """Posts to evaluate on: a text file (one post a line) or a folder of them (``*.txt``)."""
    path = Path(path)
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(f"{path}: no text file of posts (one post a line)")
    return [line for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]


# (row name, mode, ranking overrides, use the query encoder): each row turns one technique off
ABLATIONS = [
    ("lexical (BM25), the peer", "lexical", {"w_expansion": 0.0}, True),
    ("lexical + model's tag expansion", "lexical", {}, True),
    ("semantic, post encoder for queries too", "semantic", {}, False),
    ("semantic, no no-match threshold", "semantic", {"min_similarity": -1.0}, True),
    ("semantic", "semantic", {}, True),
    (
        "hybrid, RRF equal weights, no expansion",
        "hybrid",
        {"fusion": "rrf", "w_lexical": 1.0, "w_vector": 1.0, "w_expansion": 0.0},
        True,
    ),
    ("hybrid, tuned fusion, no expansion", "hybrid", {"w_expansion": 0.0}, True),
    ("hybrid (default)", "hybrid", {}, True),
    ("hybrid + LM query-likelihood re-rank, top 10", "hybrid", {"rerank_top": 10}, True),
]


def evaluate_unseen(
    ws,
    texts: list[str],
    cfg: UnseenConfig,
    model: SearchModel | None = None,
    *,
    seed_posts: int = 100,
    batch: int = 1000,
) -> dict:
    """The protocol on ``ws``'s model: an index seeded with a few corpus posts, ``texts`` added live
    through :meth:`SearchIndex.add` after ingest's filters (as ``POST /admin/posts`` does), then every row
    of :data:`ABLATIONS`; then the same queries over the posts with their hashtags kept (words the posts
    contain, where BM25 is strong), in each mode: fusion must not lose to its parts on either kind.
    Returns {"queries", "posts", "ranking", "rows": [{name, mode, metrics}], "kept": {mode: metrics}}."""
    import tempfile

    from roost.corpus import schema
    from roost.search.build import POST_COLUMNS, batch_posts, build_index
    from roost.search.embed import load_search_model
    from roost.search.eval import evaluate
    from roost.search.live import PostPreparer

    if model is None or model.rerank is None:  # the re-ranking row needs it; the others keep rerank_top = 0
        model = load_search_model(ws.model, rerank=True)
    counts = word_counts(schema.read_table(ws.corpus, "posts", columns=["text"]).column("text").to_pylist())
    prepare = PostPreparer.for_workspace(ws)
    seed = next(schema.iter_batches(ws.corpus, "posts", columns=POST_COLUMNS, batch_size=seed_posts), None)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="roost-unseen-") as tmp,
        tempfile.TemporaryDirectory(prefix="roost-unseen-kept-") as tmp_kept,
    ):
        for folder in (tmp, tmp_kept):
            build_index([batch_posts(seed)] if seed is not None else [], folder, model)
        index, kept_index = SearchIndex(tmp, model), SearchIndex(tmp_kept, model)
        queries, posts = _add_live(index, unseen_task(texts, cfg, counts), prepare, batch)
        tuned = index.ranking
        for name, mode, overrides, use_query_encoder in ABLATIONS:
            index.ranking = replace(tuned, **overrides)
            index.model = model if use_query_encoder else replace(model, embed_queries=None)
            rows.append({"name": name, "mode": mode, "metrics": evaluate(index, queries, (mode,))[mode]})
        kept_queries, _ = _add_live(kept_index, unseen_task(texts, cfg, counts, keep_tags=True), prepare, batch)
        kept = evaluate(kept_index, kept_queries, ("lexical", "semantic", "hybrid"))
        index.close()
        kept_index.close()
    return {"queries": len(queries), "posts": posts, "ranking": vars(tuned), "rows": rows, "kept": kept}


def _add_live(index: SearchIndex, task: EvalTask, prepare, batch: int) -> tuple[list[Query], int]:
    """``task``'s posts added to ``index`` in batches through ingest's filters: its queries restricted to the
    posts accepted (a query left with no relevant post is dropped), and how many were accepted."""
    from tqdm import tqdm

    live: set[str] = set()
    for start in tqdm(range(0, len(task.posts), batch), desc="add unseen posts", unit="batch"):
        chunk = task.posts[start : start + batch]
        accepted, _ = prepare([{"id": p.id, "text": p.text} for p in chunk])
        if accepted:
            index.add(accepted)
            live.update(p.id for p in accepted)
    return [Query(q.text, q.relevant & live, q.name) for q in task.queries if q.relevant & live], len(live)


def format_ablation(result: dict) -> str:
    """The ablation as a table, each row's NDCG@10 and MRR also as a multiple of lexical's."""
    peer = result["rows"][0]["metrics"]
    lines = [
        f"unseen posts: {result['posts']} added live, {result['queries']} hashtag queries",
        f"{'row':<44} {'NDCG@10':>8} {'R@100':>7} {'MRR':>7} {'NDCG x':>7} {'MRR x':>6}",
    ]
    for r in result["rows"]:
        m = r["metrics"]
        ratio = [m[k] / peer[k] if peer[k] else float("nan") for k in ("ndcg@10", "mrr")]
        lines.append(
            f"{r['name']:<44} {m['ndcg@10']:>8.4f} {m['recall@100']:>7.4f} {m['mrr']:>7.4f} "
            f"{ratio[0]:>6.2f}x {ratio[1]:>5.2f}x"
        )
    if result.get("kept"):
        lines.append("the same queries, hashtags kept in the posts")
        kept = result["kept"]
        for mode, m in kept.items():
            ratio = [m[k] / kept["lexical"][k] if kept["lexical"][k] else float("nan") for k in ("ndcg@10", "mrr")]
            lines.append(
                f"{mode:<44} {m['ndcg@10']:>8.4f} {m['recall@100']:>7.4f} {m['mrr']:>7.4f} "
                f"{ratio[0]:>6.2f}x {ratio[1]:>5.2f}x"
            )
    return "\n".join(lines)
