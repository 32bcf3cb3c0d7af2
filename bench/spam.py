"""The learned spam filter: train it on one sample network, measure it on another, list what it drops on real tweets.

    .venv/bin/python bench/spam.py --write                       # retrain roost/corpus/spam_model.json
    .venv/bin/python bench/spam.py --tweeteval ../shared/data/tweeteval --listing /tmp/spam.jsonl

Training: the sample network of ``--train-seed`` is ingested with every spam
filter and dedup off (so each post's "same text from N accounts" counts every
copy, as ingest counts them before dedup), and a logistic regression is fit on
the features of roost.corpus.spam with the sample's ground truth as labels.
Evaluation: the sample network of ``--eval-seed`` (seed 0 is the demo's) is
ingested as a user would, once with the rules alone and once with rules + the
model; spam recall and good posts dropped are read against its ground truth.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from roost.corpus import (  # noqa: E402
    IngestConfig,
    ingest,
    spam,  # noqa: E402
)
from roost.corpus.schema import read_table  # noqa: E402
from roost.sample.generate import generate  # noqa: E402
from roost.workspace import Workspace  # noqa: E402

GOOD = ("post", "reply")  # organic posts; duplicates, retweets and empty posts are neither good nor spam here


def _sample(root: Path, seed: int, posts: int) -> tuple[Path, dict[str, str]]:
    out = root / f"sample-{seed}"
    generate(out, posts=posts, users=max(200, posts // 25), seed=seed)
    truth = {r["id"]: r["kind"] for r in map(json.loads, (out / "truth/post_topics.jsonl").read_text().splitlines())}
    return out / "posts.jsonl", truth


def train(root: Path, seed: int, posts: int) -> spam.SpamModel:
    src, truth = _sample(root, seed, posts)
    ws = Workspace(root / f"train-{seed}")
    ingest([src], ws, IngestConfig(drop_spam=False, dedup_exact=False, dedup_near=False), progress=False)
    table = read_table(ws.corpus, "posts")
    texts, ids, authors = (table.column(c).to_pylist() for c in ("text", "id", "author_id"))
    keys = np.fromiter(map(spam.skeleton_key, texts), np.uint64, len(texts))
    copies = spam.accounts_per_skeleton(keys, spam.author_keys(authors, ids))
    x = spam.table_features(table, spam.accounts(read_table(ws.corpus, "users")), copies)
    y = np.array([truth[i] == "spam" for i in ids], dtype=int)
    model = spam.SpamModel.fit(x, y, trained_on=f"sample network seed {seed}, {posts:,} posts ({int(y.sum())} spam)")
    print(f"trained on {len(y):,} posts ({int(y.sum())} spam)")
    for head in ("accounts", "text"):
        h = getattr(model, head)
        print(
            f"  {head} head, threshold {h.threshold:.3f}: "
            + ", ".join(f"{n} {w:+.2f}" for n, w in sorted(zip(h.features, h.coef), key=lambda t: -abs(t[1])))
        )
    return model


def evaluate(root: Path, seed: int, posts: int, model_path: Path) -> None:
    src, truth = _sample(root, seed, posts)
    good = {i for i, k in truth.items() if k in GOOD}
    spam_ids = {i for i, k in truth.items() if k == "spam"}
    print(f"\nsample seed {seed}: {len(truth):,} posts, {len(spam_ids):,} spam, {len(good):,} good (organic)")
    print("| filter | spam dropped (any reason) | spam dropped as spam | good posts dropped as spam | seconds |")
    print("|---|---|---|---|---|")
    bare = src.with_name("posts-no-users.jsonl")  # the same posts with no account data: the text head alone
    with open(src, encoding="utf-8") as f, open(bare, "w", encoding="utf-8") as out:
        out.writelines(json.dumps({"data": json.loads(line)["data"]}) + "\n" for line in f)
    runs = (
        ("rules only (before)", src, False),
        ("rules + learned model", src, True),
        ("rules + learned model, posts without account data", bare, True),
    )
    for k, (name, path, learned) in enumerate(runs):
        ws = Workspace(root / f"eval-{seed}-{k}")
        t = time.time()
        ingest([path], ws, IngestConfig(spam_learned=learned, spam_model=str(model_path)), progress=False)
        kept = set(read_table(ws.corpus, "posts", ["id"]).column("id").to_pylist())
        log = ws.corpus / "spam.jsonl"
        as_spam = {json.loads(line)["id"] for line in log.read_text().splitlines()} if log.exists() else set()
        print(
            f"| {name} | {len(spam_ids - kept) / len(spam_ids):.1%} | {len(spam_ids & as_spam) / len(spam_ids):.1%} "
            f"| {len(good & as_spam)} ({len(good & as_spam) / len(good):.2%}) | {time.time() - t:.1f} |"
        )


def tweeteval(root: Path, data: Path, model_path: Path, listing: Path, read: int) -> None:
    files = sorted(data.glob("**/*_text.txt"))
    ws = Workspace(root / "tweeteval")
    rep = ingest(files, ws, IngestConfig(spam_model=str(model_path)), progress=False)
    rows = (
        [json.loads(line) for line in (ws.corpus / "spam.jsonl").read_text().splitlines()]
        if (ws.corpus / "spam.jsonl").exists()
        else []
    )
    listing.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    by = {b: sum(r["by"] == b for r in rows) for b in ("rules", "model")}
    print(
        f"\ntweeteval: {rep.read:,} tweets read, dropped as spam: {by['rules']} by rules, {by['model']} by the model "
        f"(all listed in {listing})"
    )
    for r in random.Random(0).sample(rows, min(read, len(rows))):
        score = f" {r['score']:.2f}" if "score" in r else ""
        print(f"  [{r['by']}{score}] {r['text'][:150]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=50_000, help="posts per sample network (default 50,000)")
    ap.add_argument("--train-seed", type=int, default=7)
    ap.add_argument("--eval-seed", type=int, default=0)
    ap.add_argument("--write", action="store_true", help=f"write the trained model to {spam.DEFAULT_MODEL}")
    ap.add_argument("--model", type=Path, help="evaluate this model instead of training one")
    ap.add_argument("--tweeteval", type=Path, help="also ingest these real tweets (*_text.txt) and list the spam")
    ap.add_argument("--listing", type=Path, default=Path(tempfile.gettempdir()) / "roost-tweeteval-spam.jsonl")
    ap.add_argument("--read", type=int, default=50, help="dropped tweets to print at random (default 50)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        model_path = args.model
        if model_path is None:
            model = train(root, args.train_seed, args.posts)
            model_path = spam.DEFAULT_MODEL if args.write else root / "spam_model.json"
            model.save(model_path)
        evaluate(root, args.eval_seed, args.posts, model_path)
        if args.tweeteval:
            tweeteval(root, args.tweeteval, model_path, args.listing, args.read)


if __name__ == "__main__":
    main()
