"""Does the sample network repeat itself? What ingest drops as duplicates against what the generator injected.

    .venv/bin/python bench/sample_variety.py --posts 50000

Generates the sample network, ingests it with the default config, and prints the
duplicates and near duplicates dropped next to those injected, the spam posts
among the deduplicated, and the organic posts lost to collisions (organic posts
missing from the corpus that no injected copy points at).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from roost.corpus import IngestConfig, ingest
    from roost.corpus.schema import read_table
    from roost.sample.generate import generate
    from roost.workspace import Workspace

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "sample"
        generate(out, posts=args.posts, users=max(200, args.posts // 25), seed=args.seed)
        truth = {r["id"]: r for r in map(json.loads, (out / "truth/post_topics.jsonl").read_text().splitlines())}
        ws = Workspace(Path(d) / "ws")
        rep = ingest([out / "posts.jsonl"], ws, IngestConfig(), progress=False)
        kept = set(read_table(ws.corpus, "posts", ["id"]).column("id").to_pylist())
    kinds = Counter(r["kind"] for r in truth.values())
    copied = {r["copy_of"] for r in truth.values() if r.get("copy_of")}
    lost = Counter(
        r["kind"] for i, r in truth.items() if r["kind"] in ("post", "reply") and i not in kept and i not in copied
    )
    spam_deduped = kinds["spam"] - rep.dropped.get("spam", 0) - rep.dropped.get("spam_learned", 0)
    print("| | duplicates dropped | near duplicates dropped | organic posts lost to collisions |")
    print("|---|---|---|---|")
    print(f"| injected | {kinds['duplicate']:,} | {kinds['near_duplicate']:,} | - |")
    print(
        f"| dropped by ingest | {rep.dropped.get('duplicate', 0):,} | {rep.dropped.get('near_duplicate', 0):,} | "
        f"{sum(lost.values()):,} of {kinds['post'] + kinds['reply']:,} ({dict(lost)}) |"
    )
    print(f"spam posts among the deduplicated: {spam_deduped:,}")


if __name__ == "__main__":
    main()
