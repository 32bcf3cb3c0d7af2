"""Search on posts the model never saw: the whole pipeline as a user runs it, then the ablation table.

    .venv/bin/python bench/search_unseen.py --workdir /tmp/unseen [--minutes 12] [--tweets ../shared/data/tweeteval]

1. The tweets are deduplicated and split by a hash of their text: 75% train, 25% eval
   (roost.search.unseen.write_split).
2. On the train part only: ``roost ingest``, ``roost tokenizer --vocab-size 8192``,
   ``roost train --depth 4 --minutes M``, ``roost train-retriever`` (which holds out 10% of
   the train part to tune fusion, expansion and the no-match threshold).
3. ``roost eval search --unseen eval.txt``: an index seeded with 100 corpus posts, the eval
   part added live through the index API after ingest's filters, queries from hashtags on
   >= 3 eval posts, written as words and removed from the posts; every mode and each
   technique turned off in turn, with NDCG@10 and MRR as multiples of lexical (BM25), the peer.

A stage whose output exists in the workdir is skipped, so the retriever can be retrained and
re-evaluated on the same language model (delete ``ws/model/retriever.safetensors``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paths import TWEETEVAL  # noqa: E402  (bench/paths.py: ../shared beside the repository)

TWEETS = TWEETEVAL


def roost(*args: str) -> float:
    """Run one roost command, echoing it; returns its wall seconds."""
    cmd = [sys.executable, "-m", "roost.cli", *args]
    print("+ roost " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def main() -> None:
    from roost.search.eval import read_tweet_texts
    from roost.search.unseen import UnseenConfig, write_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--tweets", type=Path, default=TWEETS)
    p.add_argument("--minutes", type=float, default=12.0, help="language model training budget")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--eval-fraction", type=float, default=0.25)
    p.add_argument("--max-queries", type=int, default=500)
    args = p.parse_args()

    w, ws = args.workdir, str(args.workdir / "ws")
    train_txt, eval_txt = w / "train.txt", w / "eval.txt"
    if not eval_txt.exists():
        write_split(read_tweet_texts(args.tweets), w, UnseenConfig(eval_fraction=args.eval_fraction))
    times = {}
    if not (w / "ws" / "corpus" / "manifest.json").exists():
        times["ingest"] = roost("ingest", "-w", ws, "-q", str(train_txt))
    if not (w / "ws" / "tokens" / "manifest.json").exists():
        times["tokenizer"] = roost("tokenizer", "-w", ws, "--vocab-size", "8192")
    if not (w / "ws" / "model" / "config.json").exists():
        times["train"] = roost("train", "-w", ws, "--depth", str(args.depth), "--minutes", str(args.minutes))
    if not (w / "ws" / "model" / "retriever.safetensors").exists():
        times["train-retriever"] = roost("train-retriever", "-w", ws)
    times["eval"] = roost(
        "eval",
        "search",
        "-w",
        ws,
        "--unseen",
        str(eval_txt),
        "--max-queries",
        str(args.max_queries),
        "--out",
        str(w / "results.json"),
    )
    print("stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
