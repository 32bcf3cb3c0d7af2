"""Search benchmarks: build rate, query latency per mode, memory; and retrieval quality on real tweets.

    # latency: synthetic posts (words drawn from TweetEval's vocabulary by frequency),
    # random unit vectors standing in for post embeddings (embedding 1M posts with a
    # transformer on 2 cores would take hours); queries in a fresh process for a clean RSS
    .venv/bin/python bench/search.py latency --posts 1000000 [--model workspace/model]

    # quality: the hashtag task on TweetEval; the retriever is trained on the tweets
    # themselves (held-out hashtags never seen), compared with its untrained start (the LM's
    # input-token table), the LM's mean-pooled hidden states, and lexical
    .venv/bin/python bench/search.py quality --model workspace/model

Prints tables; the peer is lexical (BM25) search in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paths import TWEETEVAL  # noqa: E402  (bench/paths.py: ../shared beside the repository)

TWEETS = TWEETEVAL


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


class RandomEmbed:
    """Seeded random unit vectors: the vector index's cost without a model's."""

    def __init__(self, dim: int, seed: int, clusters: int = 0):
        self.dim, self.rng = dim, np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((clusters, dim), dtype=np.float32) if clusters else None

    def __call__(self, texts: list[str]) -> np.ndarray:
        x = self.rng.standard_normal((len(texts), self.dim), dtype=np.float32)
        if self.centres is not None:  # around random topic centres, as real embeddings cluster
            x = self.centres[self.rng.integers(len(self.centres), size=len(texts))] + 0.8 * x
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def vocabulary(seed: int):
    """(words, probabilities, hashtags, their probabilities) from the tweets."""
    from collections import Counter

    from roost.search.eval import read_tweet_texts
    from roost.search.text import word_counts

    texts = read_tweet_texts(TWEETS)
    words = word_counts(texts).most_common(30_000)
    tags = Counter(t.lower() for text in texts for t in text.split() if t.startswith("#") and t[1:].isalnum())
    tags = tags.most_common(5_000)
    w, wc = zip(*words)
    t, tc = zip(*tags)
    return list(w), np.array(wc) / sum(wc), list(t), np.array(tc) / sum(tc)


def synthetic_posts(n: int, seed: int, batch: int = 10_000):
    """Batches of posts: 6-24 words by tweet word frequency, a hashtag on a third, 20k authors, 180 days."""
    from roost.search.docstore import Post

    words, wp, tags, tp = vocabulary(seed)
    rng = np.random.default_rng(seed)
    start = 1_704_067_200.0
    for s in range(0, n, batch):
        m = min(batch, n - s)
        lens = rng.integers(6, 25, m)
        flat = rng.choice(len(words), int(lens.sum()), p=wp)
        has_tag = rng.random(m) < 0.33
        tag_ids = rng.choice(len(tags), m, p=tp)
        out, pos = [], 0
        for i in range(m):
            text = " ".join(words[j] for j in flat[pos : pos + lens[i]])
            pos += lens[i]
            hashtags = []
            if has_tag[i]:
                text += " " + tags[tag_ids[i]]
                hashtags = [tags[tag_ids[i]][1:]]
            out.append(
                Post(
                    id=f"s{s + i}",
                    text=text,
                    author_id=f"u{rng.integers(20_000)}",
                    created_at=start + float(rng.random()) * 180 * 86400,
                    lang="en",
                    hashtags=hashtags,
                    engagement=float(rng.integers(0, 50)),
                )
            )
        yield out


def queries(n: int, seed: int) -> list[str]:
    """1-3 words of middling frequency, and some hashtags: what people type."""
    words, _, tags, _ = vocabulary(seed)
    rng = np.random.default_rng(seed + 1)
    mid = words[50:5000]
    qs = [" ".join(rng.choice(mid, int(rng.integers(1, 4)), replace=False)) for _ in range(n)]
    for i in range(0, n, 5):
        qs[i] = str(rng.choice(tags[:1000]))
    return qs


def cmd_latency(args) -> None:
    from roost.search.build import BuildConfig, build_index
    from roost.search.vector import VectorConfig

    out = Path(args.workdir or tempfile.mkdtemp(prefix="roost-bench-search-"))
    index_dir = out / f"index-{args.posts}"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    t0 = time.perf_counter()
    vcfg = VectorConfig(dtype=args.vector_dtype, connectivity=args.connectivity, expansion_add=args.expansion_add)
    if args.model:  # the trained retriever embeds and expands the posts, as `roost index` does
        from roost.search.embed import load_search_model

        embed, what = load_search_model(args.model), f"post vectors and tag expansion by {args.model}'s retriever"
    else:
        embed, what = RandomEmbed(args.dim, args.seed, args.clusters), f"random {args.dim}-d vectors"
    counts = build_index(
        synthetic_posts(args.posts, args.seed),
        index_dir,
        embed,
        total=args.posts,
        config=BuildConfig(threads=args.threads),
        vector_config=vcfg,
    )
    build_s = time.perf_counter() - t0
    print(
        f"built {counts['posts']:,} posts in {build_s:.1f}s: {counts['posts'] / build_s:,.0f} posts/s "
        f"(synthetic text, {what}, usearch {vcfg}, {args.threads} threads); index on disk "
        f"{dir_mib(index_dir):,.0f} MiB",
        flush=True,
    )
    cmd = [
        sys.executable,
        __file__,
        "_query",
        "--index",
        str(index_dir),
        "--dim",
        str(args.dim),
        "--queries",
        str(args.queries),
        "--seed",
        str(args.seed),
    ]
    if args.model:
        cmd += ["--model", str(args.model)]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    how = (
        "the model's query encoder inside each search, as the server runs it" if args.model else "random query vectors"
    )
    print(f"\nquery latency, {args.posts:,} posts, {args.queries} queries, k=10, 1 thread ({how})")
    print(f"{'mode':<10} {'p50 ms':>8} {'p99 ms':>8} {'CPU p50 ms':>11} {'CPU p99 ms':>11}")
    for mode, r in res["latency"].items():
        print(f"{mode:<10} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['cpu_p50']:>11.2f} {r['cpu_p99']:>11.2f}")
    print(f"(wall time includes waiting for a core: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if "embed" in res:
        e = res["embed"]
        print(f"of which query embedding ({args.model}'s query encoder): p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms")
    f = res["fresh"]
    print(
        f"post -> found by a lexical query (add + commit + search, one post at a time, 30 posts): "
        f"p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, max {f['max']:.1f} ms"
    )
    print(
        f"RSS: {res['rss_open_mib']:,.0f} MiB after opening the index (process baseline "
        f"{res['rss_base_mib']:,.0f} MiB), {res['rss_end_mib']:,.0f} MiB after the queries"
    )
    if not args.keep:
        shutil.rmtree(index_dir)


def cmd_query(args) -> None:
    import torch

    from roost.search.engine import SearchIndex, SearchRequest

    torch.set_num_threads(1)
    base = rss_mib()
    qs = queries(args.queries, args.seed)
    if args.model:
        from roost.search.embed import load_search_model

        model = load_search_model(args.model)
    else:
        random_embed = RandomEmbed(args.dim, args.seed + 7)
        qvec = dict(zip(qs, random_embed(qs)))
        model = lambda texts: np.stack([qvec[t] if t in qvec else random_embed([t])[0] for t in texts])  # noqa: E731
    index = SearchIndex(args.index, model)
    opened = rss_mib()
    latency = {}
    for mode in ("lexical", "semantic", "hybrid"):
        for q in qs[:20]:  # warm up
            index.search(SearchRequest(q=q, k=10, mode=mode))
        times, cpu = [], []
        for q in qs:
            t0, c0 = time.perf_counter(), time.process_time()
            index.search(SearchRequest(q=q, k=10, mode=mode))
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        latency[mode] = {
            "p50": float(np.percentile(times, 50)),
            "p99": float(np.percentile(times, 99)),
            "cpu_p50": float(np.percentile(cpu, 50)),
            "cpu_p99": float(np.percentile(cpu, 99)),
        }
    res = {
        "latency": latency,
        "rss_base_mib": base,
        "rss_open_mib": opened,
        "rss_end_mib": rss_mib(),
        "fresh": freshness(index),
    }
    if args.model:
        times = []
        for q in qs[:100]:
            t0 = time.perf_counter()
            model.queries([q])
            times.append((time.perf_counter() - t0) * 1000)
        res["embed"] = {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}
    print(json.dumps(res))


def freshness(index, posts: int = 30) -> dict:
    """Milliseconds from adding one post (``SearchIndex.add``, what ``POST /admin/posts`` calls) until a lexical
    query returns it, one post at a time on the built index: p50, p99 and max."""
    from roost.search.docstore import Post
    from roost.search.engine import SearchRequest

    times = []
    for i in range(posts):
        word = f"freshword{i}x"
        t0 = time.perf_counter()
        index.add([Post(id=f"fresh-{i}", text=f"{word} just posted", created_at=time.time())])
        hits = index.search(SearchRequest(q=word, k=1, mode="lexical"))
        times.append((time.perf_counter() - t0) * 1000)
        if not hits or hits[0].post.id != f"fresh-{i}":
            raise SystemExit(f"post fresh-{i} was not found right after it was added")
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99)), "max": max(times)}


def cmd_quality(args) -> None:
    import torch

    from roost.embeddings import TextEmbedder
    from roost.search import eval as ev
    from roost.search.embed import Retriever, TokenBagEncoder
    from roost.search.retriever import (
        RetrieverConfig,
        mine_pairs,
        model_token_table,
        train_retriever,
    )
    from roost.tokenizer import load_tokenizer

    torch.set_num_threads(args.threads)
    all_texts = ev.read_tweet_texts(args.tweets)
    texts = all_texts
    if args.limit and args.limit < len(texts):  # a random subset: embedding every tweet on 2 cores takes long
        texts = random.Random(0).sample(texts, args.limit)
    task = ev.hashtag_task(texts, max_queries=args.max_queries)
    posts = task.posts
    print(
        f"hashtag task: {len(posts):,} tweets, {len(task.queries)} held-out hashtag queries, "
        f"{sum(len(q.relevant) for q in task.queries) / len(task.queries):.1f} relevant each",
        flush=True,
    )
    # pairs mined as `roost train-retriever` mines them from a corpus (tweets have no replies): from the indexed
    # tweets, or from every tweet with every tag that could be held out removed (ev.training_posts)
    train_posts = posts if args.train_on == "indexed" else ev.training_posts(all_texts)
    given = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "temperature", "max_pairs")}
    cfg = RetrieverConfig(**{k: v for k, v in given.items() if v is not None})
    pairs = mine_pairs(
        [p.id for p in train_posts],
        [p.text for p in train_posts],
        [None] * len(train_posts),
        [p.hashtags for p in train_posts],
        cfg,
    )
    print(f"mined pairs from {len(train_posts):,} {args.train_on} tweets: {pairs.kinds}", flush=True)

    tokenizer, table = load_tokenizer(args.model), model_token_table(args.model)
    t0 = time.perf_counter()
    retriever, report = train_retriever(table, tokenizer.encode_batch(pairs.texts), pairs, cfg)
    print(
        f"retriever: {time.perf_counter() - t0:.0f}s, loss {report['first_loss']:.3f} -> {report['last_loss']:.3f}, "
        f"held-out pair recall@1 {report['val_recall@1_before']:.3f} -> {report['val_recall@1_after']:.3f}",
        flush=True,
    )

    embedders = {
        "retriever": Retriever(tokenizer, retriever),
        "token table, untrained": Retriever(tokenizer, TokenBagEncoder(table, cfg.max_len)),
    }
    if not args.skip_hidden:
        embedders["LM hidden states"] = TextEmbedder.from_dir(args.model, batch_size=64, max_len=args.max_len).embed
    results = {}
    with tempfile.TemporaryDirectory(prefix="roost-bench-quality-") as work:
        for i, (name, embed) in enumerate(embedders.items()):
            t0 = time.perf_counter()
            index = ev.build_task_index(task, Path(work) / str(i), embed)
            modes = ("lexical", "semantic", "hybrid") if i == 0 else ("semantic", "hybrid")
            results[name] = ev.evaluate(index, task.queries, modes)
            index.close()
            print(f"{name}: indexed and evaluated in {time.perf_counter() - t0:.0f}s", flush=True)
    lexical = results["retriever"]["lexical"]
    print(f"\nhashtag retrieval on TweetEval ({len(task.queries)} queries), model {args.model}")
    print(f"{'mode':<34} {'NDCG@10':>8} {'Recall@100':>10} {'MRR':>8} {'NDCG vs lexical':>16}")
    rows = [("lexical (BM25)", lexical)] + [
        (f"{m} ({name})", results[name][m]) for name in reversed(results) for m in ("semantic", "hybrid")
    ]
    for label, r in rows:
        print(
            f"{label:<34} {r['ndcg@10']:>8.4f} {r['recall@100']:>10.4f} {r['mrr']:>8.4f} "
            f"{r['ndcg@10'] / max(lexical['ndcg@10'], 1e-9):>15.2f}x"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--posts", type=int, default=100_000)
    lat.add_argument("--dim", type=int, default=256)
    lat.add_argument("--queries", type=int, default=500)
    lat.add_argument("--threads", type=int, default=2)
    lat.add_argument("--clusters", type=int, default=1000, help="random vectors around this many centres (0: none)")
    lat.add_argument("--vector-dtype", default="f16")
    lat.add_argument("--connectivity", type=int, default=16)
    lat.add_argument("--expansion-add", type=int, default=64)
    lat.add_argument(
        "--model",
        type=Path,
        help="embed, expand and query with this model folder's retriever (default: random vectors)",
    )
    lat.add_argument("--workdir", type=Path)
    lat.add_argument("--keep", action="store_true")
    lat.add_argument("--seed", type=int, default=0)
    lat.set_defaults(func=cmd_latency)
    q = sub.add_parser("_query")
    q.add_argument("--index", type=Path, required=True)
    q.add_argument("--dim", type=int, required=True)
    q.add_argument("--queries", type=int, default=500)
    q.add_argument("--model", type=Path)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_query)
    qual = sub.add_parser("quality")
    qual.add_argument("--model", type=Path, required=True)
    qual.add_argument("--tweets", type=Path, default=TWEETS)
    qual.add_argument("--max-queries", type=int, default=300)
    for flag, kind in (
        ("--steps", int),
        ("--batch-size", int),
        ("--lr", float),
        ("--temperature", float),
        ("--max-pairs", int),
    ):
        qual.add_argument(flag, type=kind, default=None, help="default: RetrieverConfig's")
    qual.add_argument(
        "--train-on",
        choices=("indexed", "all"),
        default="indexed",
        help="mine training pairs from the indexed tweets or from all tweets (held-out tags removed)",
    )
    qual.add_argument("--max-len", type=int, default=64, help="tokens per tweet for the LM hidden-state baseline")
    qual.add_argument("--skip-hidden", action="store_true", help="leave out the (slow) LM hidden-state baseline")
    qual.add_argument(
        "--threads", type=int, default=1, help="torch threads (more than the free cores makes every call slow)"
    )
    qual.add_argument("--limit", type=int, default=0, help="use a random subset of this many tweets (0: all)")
    qual.set_defaults(func=cmd_quality)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
