"""Brand safety against a sample network's ground truth: the served probe on every kept post, whole or per sentence.

The probe is the one ``roost ads train-safety`` trains from the workspace's own
moderation signals (``roost.ads.brand_safety.train_from_signals``: removed,
withheld and sensitive posts against a sample of the rest), with the hashing
embedder. Each kept post is scored whole, and as the server scores a context
text: the maximum over the post and its sentences, each sentence with the
post's embedding (``SafetyProbes.scores``); the table gives, per threshold,
the share of ground-truth unsafe posts above it (recall) and of safe posts
above it (what brand safety costs strict advertisers on safe contexts). Strict
campaigns' thresholds in the sample run from 0.2 to 0.5.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/safety_truth.py --workspace WS --sample WS/sample
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from roost.ads.brand_safety import train_from_signals
from roost.ads.embedder import HashingEmbedder
from roost.ads.retrieval import embed_in_batches
from roost.corpus.schema import read_table
from roost.workspace import Workspace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", required=True, help="an ingested workspace (corpus/ with moderation signals)")
    p.add_argument("--sample", type=Path, required=True, help="the `roost sample` folder with truth/")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.2, 0.35, 0.5])
    args = p.parse_args()
    corpus = Workspace(args.workspace).corpus
    truth = {}
    for line in (args.sample / "truth" / "post_topics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        truth[row["id"]] = bool(row.get("unsafe"))
    embed = HashingEmbedder()
    probes = train_from_signals(corpus, embed, embed.space)
    posts = read_table(corpus, "posts", ["id", "text"])
    texts = posts.column("text").to_pylist()
    unsafe = np.array([truth.get(i, False) for i in posts.column("id").to_pylist()])
    vecs = embed_in_batches(embed, texts)
    scored = {
        "whole post": probes.scores(texts, vecs, sentences=False),
        "post and its sentences (served)": probes.scores(texts, vecs),
    }
    print(f"{len(texts)} kept posts, {int(unsafe.sum())} unsafe by the ground truth; held-out: {probes.metrics}")
    print("| scored | threshold | unsafe recall (truth) | safe posts above |\n|---|---:|---:|---:|")
    for name, s in scored.items():
        for th in args.thresholds:
            print(f"| {name} | {th} | {np.mean(s[unsafe] > th):.3f} | {100 * np.mean(s[~unsafe] > th):.2f}% |")


if __name__ == "__main__":
    main()
