"""Retrieval quality: NDCG@10, Recall@100 and MRR for the three search modes.

Two tasks, both with relevance known without human labels:

* ``topics``: the sample network's ground truth. The query is a topic's name
  words; the relevant posts are the posts of that topic.
* ``hashtags``: real tweets. Tweets carrying a (held-out) hashtag lose it from
  their text; the query is the hashtag's words (camel case and compounds split),
  and the relevant posts are the tweets that carried it. Hashtags are split in
  two by a hash of their name: held-out ones make the queries, the others stay in
  the text (so :mod:`roost.search.retriever` can mine training pairs from them
  without ever seeing an evaluation query).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from tqdm import tqdm

from roost.errors import UserError
from roost.search.build import build_index
from roost.search.docstore import Post
from roost.search.engine import MAX_K, MODES, EmbedFn, SearchIndex, SearchModel, SearchRequest
from roost.search.text import hashtag_words, word_counts


@dataclass
class Query:
    text: str
    relevant: set[str]  # post ids
    name: str = ""


@dataclass
class EvalTask:
    name: str
    posts: list[Post]
    queries: list[Query] = field(default_factory=list)


# ---- metrics ------------------------------------------------------------------------------
def ndcg_at(ranked: list[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, pid in enumerate(ranked[:k]) if pid in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: list[str], relevant: set[str], k: int = 100) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: list[str], relevant: set[str]) -> float:
    return next((1.0 / (i + 1) for i, pid in enumerate(ranked) if pid in relevant), 0.0)


def evaluate(
    index: SearchIndex, queries: list[Query], modes: tuple[str, ...] = MODES, progress: bool = True
) -> dict[str, dict[str, float]]:
    """Mean metrics per mode over the queries (a progress bar per mode unless ``progress`` is False)."""
    if not queries:
        raise UserError("no queries to evaluate: none of the task's relevant posts are in the index")
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        sums = Counter()
        for q in tqdm(queries, desc=f"eval {mode}", unit="query", leave=False, disable=not progress):
            ranked = [h.post.id for h in index.search(SearchRequest(q=q.text, k=MAX_K, mode=mode))]
            sums["ndcg@10"] += ndcg_at(ranked, q.relevant, 10)
            sums["recall@100"] += recall_at(ranked, q.relevant, 100)
            sums["mrr"] += reciprocal_rank(ranked, q.relevant)
        results[mode] = {m: v / len(queries) for m, v in sums.items()}
    return results


def format_table(name: str, results: dict[str, dict[str, float]], n_queries: int) -> str:
    lines = [f"{name} ({n_queries} queries)", f"{'mode':<10} {'NDCG@10':>8} {'Recall@100':>10} {'MRR':>8}"]
    for mode, r in results.items():
        lines.append(f"{mode:<10} {r['ndcg@10']:>8.4f} {r['recall@100']:>10.4f} {r['mrr']:>8.4f}")
    return "\n".join(lines)


# ---- hashtag task -------------------------------------------------------------------------
_HASHTAG_RE = re.compile(r"#(\w+)")


def is_heldout(tag: str, fraction: float = 0.5) -> bool:
    return xxhash.xxh64_intdigest(tag.lower().encode()) % 1000 < fraction * 1000


def hashtag_task(
    texts: list[str], *, min_posts: int = 5, max_queries: int = 300, heldout_fraction: float = 0.5
) -> EvalTask:
    """The hashtag retrieval task over raw tweet texts (deduplicated here)."""
    texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    tags_of = [[t.lower() for t in _HASHTAG_RE.findall(text)] for text in texts]
    df = Counter(t for tags in tags_of for t in set(tags))
    counts = word_counts(texts)
    eval_tags = sorted(t for t, c in df.items() if c >= min_posts and is_heldout(t, heldout_fraction))
    eval_tags = sorted(eval_tags, key=lambda t: (-df[t], t))[:max_queries]
    return tag_query_task("hashtags", texts, tags_of, eval_tags, counts, "t")


def tag_query_task(
    name: str,
    texts: list[str],
    tags_of: list[list[str]],
    query_tags: list[str],
    counts: Counter,
    id_prefix: str,
    keep_tags: bool = False,
) -> EvalTask:
    """Posts with every ``query_tags`` hashtag removed from their text (left in with ``keep_tags``); a query
    per tag (its words, split by ``counts``) whose relevant posts are those that carried it. ``tags_of``: each
    text's lower-cased tags."""
    held = set(query_tags)
    relevant: dict[str, set[str]] = {t: set() for t in query_tags}
    posts = []
    for i, (text, tags) in enumerate(zip(texts, tags_of)):
        pid = f"{id_prefix}{i}"
        for t in set(tags) & held:
            relevant[t].add(pid)
        if keep_tags:
            posts.append(Post(id=pid, text=text, hashtags=sorted(set(tags))))
            continue
        kept = _HASHTAG_RE.sub(lambda m: "" if m.group(1).lower() in held else m.group(0), text)
        posts.append(Post(id=pid, text=" ".join(kept.split()), hashtags=sorted(set(tags) - held)))
    queries = [Query(" ".join(hashtag_words(t, counts)), relevant[t], name=f"#{t}") for t in query_tags]
    return EvalTask(name, posts, [q for q in queries if q.text.strip()])


def training_posts(texts: list[str], heldout_fraction: float = 0.5) -> list[Post]:
    """Tweets (deduplicated) to train a retriever on for the hashtag task: every hashtag that could be held
    out (by :func:`is_heldout`, whatever its count) is removed, so no query's tag is ever seen in training."""
    texts = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    posts = []
    for i, text in enumerate(texts):
        tags = {t.lower() for t in _HASHTAG_RE.findall(text)}
        kept = _HASHTAG_RE.sub(lambda m: "" if is_heldout(m.group(1).lower(), heldout_fraction) else m.group(0), text)
        posts.append(
            Post(
                id=f"t{i}",
                text=" ".join(kept.split()),
                hashtags=sorted(t for t in tags if not is_heldout(t, heldout_fraction)),
            )
        )
    return posts


def read_tweet_texts(path: str | Path) -> list[str]:
    """Tweets from a text file (one per line) or a folder of ``*_text.txt`` files (TweetEval's layout)."""
    path = Path(path)
    files = sorted(path.rglob("*_text.txt")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no *_text.txt files (one tweet per line) found")
    return [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]


def build_task_index(task: EvalTask, out: str | Path, embed: SearchModel | EmbedFn | None) -> SearchIndex:
    """Index a task's posts into ``out`` (a scratch folder) and open it."""
    build_index([task.posts], out, embed, total=len(task.posts))
    return SearchIndex(out, embed)


def topic_queries(truth: str | Path, live_ids: set[str]) -> list[Query]:
    """The sample network's topics as queries (``truth/post_topics.jsonl``); relevant = indexed posts of each topic."""
    truth = Path(truth)
    path = truth / "post_topics.jsonl" if truth.is_dir() else truth
    if truth.is_dir() and not path.exists():
        path = truth / "truth" / "post_topics.jsonl"  # the sample folder itself was given
    if not path.is_file():
        raise FileNotFoundError(f"{truth}: no post_topics.jsonl (the sample network's truth/ folder)")
    by_topic: dict[str, set[str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                pid, topic = str(row["id"]), row.get("topic")
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise UserError(f"{path}:{lineno}: not a post topic line ({e})") from None
            if topic and pid in live_ids:
                by_topic.setdefault(topic, set()).add(pid)
    return [Query(" ".join(re.split(r"[_\s]+", topic)), ids, name=topic) for topic, ids in sorted(by_topic.items())]


@dataclass
class WorkspaceEval:
    """What ``roost eval search`` (and the evaluation suite's search part) measures; ``tasks`` None means
    every task whose data is given."""

    tasks: list[str] | None = None
    truth: Path | None = None  # the sample network's truth/ folder (topics task)
    tweets: Path | None = None  # a text file or folder of *_text.txt (hashtags task)
    unseen: Path | None = None  # posts the pipeline never saw, one a line (unseen task)
    max_queries: int = 300
    vectors: bool = True  # False: lexical mode only, no model needed


def evaluate_workspace(ws, cfg: WorkspaceEval) -> dict[str, dict]:
    """Each task's results: ``{"queries", "metrics"}`` (topics, hashtags) or the unseen task's ablation."""
    import tempfile

    from roost.search.embed import load_search_model

    tasks = cfg.tasks or [
        t for t, given in (("topics", cfg.truth), ("hashtags", cfg.tweets), ("unseen", cfg.unseen)) if given
    ]
    if not tasks:
        raise UserError(
            "nothing to evaluate: pass --truth SAMPLE_DIR/truth (topics task), --tweets PATH (hashtags "
            "task) and/or --unseen FILE (unseen task)"
        )
    modes = MODES if cfg.vectors else ("lexical",)
    embed = load_search_model(ws.model) if cfg.vectors else None
    results: dict[str, dict] = {}
    for task in tasks:
        if task == "unseen":
            if cfg.unseen is None or not cfg.vectors:
                raise UserError("the unseen task needs --unseen FILE and the model (not --no-vectors)")
            from roost.search.unseen import UnseenConfig, evaluate_unseen, read_post_texts

            ws.require("corpus")
            results[task] = evaluate_unseen(
                ws, read_post_texts(cfg.unseen), UnseenConfig(max_queries=cfg.max_queries), embed
            )
            continue
        if task == "topics":
            if cfg.truth is None:
                raise UserError("the topics task needs --truth SAMPLE_DIR/truth")
            ws.require("index")
            index = SearchIndex(ws.index, embed)
            queries = topic_queries(cfg.truth, index.docs.live_ids())
            metrics = evaluate(index, queries, modes)
            index.close()
        else:
            if cfg.tweets is None:
                raise UserError("the hashtags task needs --tweets FILE_OR_FOLDER")
            t = hashtag_task(read_tweet_texts(cfg.tweets), max_queries=cfg.max_queries)
            queries = t.queries
            with tempfile.TemporaryDirectory(prefix="roost-eval-") as tmp:
                index = build_task_index(t, tmp, embed)
                metrics = evaluate(index, queries, modes)
                index.close()
        results[task] = {"queries": len(queries), "metrics": metrics}
    return results
