"""Ingest throughput: generate N posts as Twitter API v2 JSON lines, ingest them end to end.

    .venv/bin/python bench/ingest.py --n 1000000

Prints posts/s and peak RSS (ru_maxrss of this process and of its largest
child), then the peer comparison: near-duplicate detection with datasketch
(MinHash.update_batch + MinHashLSH query/insert per post) against roost's
vectorised MinHash + band index, on the same posts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "it",
    "you",
    "that",
    "for",
    "on",
    "my",
    "this",
    "with",
    "be",
    "at",
    "so",
    "just",
    "have",
    "not",
    "are",
    "was",
    "me",
    "like",
    "but",
    "all",
    "your",
    "out",
    "up",
    "what",
    "love",
    "good",
    "day",
    "get",
    "now",
    "one",
    "time",
    "can",
    "new",
    "today",
    "people",
    "know",
    "see",
    "back",
    "great",
    "game",
    "night",
    "work",
    "happy",
    "got",
    "think",
    "more",
    "best",
    "really",
    "still",
    "first",
    "last",
    "home",
    "going",
    "make",
    "never",
    "coffee",
    "music",
    "team",
    "city",
    "vote",
    "movie",
    "weekend",
    "morning",
    "phone",
    "school",
    "news",
    "rain",
    "summer",
    "friends",
    "watch",
]
LANGS = ["en"] * 8 + ["es", "fr", "de", "pt", "ja", "und"]


def generate(path: Path, n: int, seed: int = 0) -> None:
    """v2 JSON lines: ~5% exact and ~5% near duplicates, replies in threads, a few retweets and junk lines."""
    rng = random.Random(seed)
    texts: list[str] = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            r = rng.random()
            if texts and r < 0.05:
                text = rng.choice(texts)
            elif texts and r < 0.10:
                words = rng.choice(texts).split()
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                text = " ".join(words)
            else:
                text = " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))
                if rng.random() < 0.3:
                    text += f" #{rng.choice(WORDS)}{rng.randint(0, 99)}"
                if rng.random() < 0.2:
                    text = f"@user{rng.randint(0, 9999)} " + text
                if rng.random() < 0.1:
                    text += f" https://t.co/{rng.getrandbits(40):x}"
            if len(texts) < 10_000:
                texts.append(text)
            elif rng.random() < 0.01:
                texts[rng.randrange(len(texts))] = text
            pid = str(10**15 + i)
            tweet = {
                "id": pid,
                "text": text,
                "author_id": str(rng.randint(1, 50_000)),
                "created_at": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z",
                "lang": rng.choice(LANGS),
                "conversation_id": pid,
                "public_metrics": {"like_count": rng.randint(0, 50), "retweet_count": 0, "reply_count": 0},
            }
            if i > 10 and rng.random() < 0.3:
                parent = str(10**15 + i - rng.randint(1, 10))
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
                tweet["conversation_id"] = parent
            if rng.random() < 0.01:
                tweet["referenced_tweets"] = [{"type": "retweeted", "id": str(10**15 + rng.randint(0, i + 1))}]
            line = json.dumps(tweet)
            if rng.random() < 0.001:
                line = line[: len(line) // 2]  # junk: a cut-off line
            f.write(line + "\n")


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def peer(texts: list[str], cfg) -> tuple[float, float]:
    """CPU seconds for datasketch MinHash+MinHashLSH and for roost's batch MinHash + band index."""
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    from roost.corpus.dedup import DedupState
    from roost.corpus.minhash import MinHasher

    k = cfg.shingle_words
    t = time.process_time()
    lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=cfg.num_perm)
    for i, text in enumerate(texts):
        m = MinHash(num_perm=cfg.num_perm, seed=cfg.minhash_seed, scheme="affine32")
        w = text.lower().split()
        m.update_batch([" ".join(w[j : j + k]).encode() for j in range(max(1, len(w) - k + 1))])
        if not lsh.query(m):
            lsh.insert(i, m, check_duplication=False)
    t_ds = time.process_time() - t

    t = time.process_time()
    h, state = MinHasher(cfg.num_perm, cfg.near_dup_threshold, cfg.shingle_words, cfg.minhash_seed), DedupState({})
    for lo in range(0, len(texts), cfg.batch_size):
        part = texts[lo : lo + cfg.batch_size]
        bands = h.band_keys(h.signatures(part))
        state.judge(np.arange(lo, lo + len(part), dtype=np.uint64), None, bands)
    return t_ds, time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="posts to generate (default 100,000)")
    ap.add_argument("--workers", type=int, default=0, help="ingest workers (0: one per core)")
    ap.add_argument("--lang-source", default="auto", choices=["auto", "detect", "off"])
    ap.add_argument("--lang-model", default="fasttext", choices=["fasttext", "lingua"])
    ap.add_argument(
        "--lang-candidates", help="comma-separated ISO 639-1 codes the identifier chooses among (default: all)"
    )
    ap.add_argument("--peer-n", type=int, default=20_000, help="posts for the datasketch comparison (0: skip)")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "roost-bench"))
    args = ap.parse_args()

    from roost.corpus import IngestConfig, ingest
    from roost.workspace import Workspace

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    src = data / f"posts-v2-{args.n}.jsonl"
    if not src.exists():
        t = time.time()
        generate(src.with_suffix(".tmp"), args.n)
        src.with_suffix(".tmp").rename(src)
        print(f"generated {args.n:,} posts in {time.time() - t:.1f}s -> {src} ({src.stat().st_size / 2**20:.0f} MiB)")
    ws = Workspace(data / "workspace")
    shutil.rmtree(ws.root, ignore_errors=True)

    candidates = args.lang_candidates.split(",") if args.lang_candidates else None
    cfg = IngestConfig(
        workers=args.workers, lang_source=args.lang_source, lang_candidates=candidates, lang_model=args.lang_model
    )
    cpu0 = _cpu()
    rep = ingest([src], ws, cfg, progress=True)
    cpu_main, cpu_children = (b - a for a, b in zip(cpu0, _cpu()))
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # what 2 free cores would give: the busier of (main process, half of all CPU time) bounds the wall time
    projected = rep.read / max(cpu_main, (cpu_main + cpu_children) / 2)
    print(rep.summary())
    print()
    print(
        "| posts | workers | lang_source, model | wall s | posts/s | CPU s main + workers | CPU us/post | "
        "posts/s on 2 free cores (from CPU time) | peak RSS main (MiB) | peak RSS largest child (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {rep.read:,} | {args.workers or 'auto'} | {args.lang_source}, {args.lang_model} | {rep.seconds:.1f} | "
        f"{rep.posts_per_s:,.0f} | {cpu_main:.1f} + {cpu_children:.1f} | "
        f"{(cpu_main + cpu_children) / rep.read * 1e6:.1f} | {projected:,.0f} | {rss_self:.0f} | {rss_child:.0f} |"
    )
    print(f"load average during the run (other users of the machine): {os.getloadavg()}")

    if args.peer_n:
        texts = []
        with open(src, encoding="utf-8") as f:
            for line in f:
                try:
                    texts.append(json.loads(line)["text"])
                except ValueError:
                    continue
                if len(texts) >= args.peer_n:
                    break
        t_ds, t_roost = peer(texts, cfg)
        print()
        print("| near-dup detection, one process | posts | CPU seconds | posts/s |")
        print("|---|---|---|---|")
        print(
            f"| datasketch MinHash.update_batch + MinHashLSH | {len(texts):,} | {t_ds:.2f} | {len(texts) / t_ds:,.0f} |"
        )
        print(f"| roost batch MinHash + band index | {len(texts):,} | {t_roost:.2f} | {len(texts) / t_roost:,.0f} |")
        print(f"ratio roost / datasketch: {t_ds / t_roost:.1f}x")


if __name__ == "__main__":
    main()
