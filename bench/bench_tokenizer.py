"""Tokenizer benchmark: roost's BPE against plain GPT-2-style byte-level BPE on real tweets.

Both are trained with the same trainer, vocabulary size and training posts
(TweetEval train texts, the held-out posts chosen by roost's id-hash split);
only the pre-tokenizer differs. Prints compression (bytes per token) on the
held-out posts, how often a hashtag/mention is one token, and throughput of
`roost tokenizer`'s shard writing.

    .venv/bin/python bench/bench_tokenizer.py --vocab-size 8192
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from paths import TWEETEVAL  # noqa: E402  (bench/paths.py: ../shared beside the repository)
from tokenizers import pre_tokenizers

from roost.corpus import schema
from roost.tokenizer import (
    RoostTokenizer,
    TokenizerConfig,
    ValSplit,
    bytes_per_token,
    iter_split_texts,
    load_tokenizer,
    train_bpe,
    train_tokenizer_stage,
)
from roost.tokens import tokenize_corpus
from roost.workspace import Workspace

DATA = TWEETEVAL
TAG = re.compile(r"(?<![\w#@])[#@]\w+")


def write_tweeteval_corpus(ws: Workspace, limit: int | None) -> int:
    texts = [line.rstrip("\n") for f in sorted(DATA.glob("**/train_text.txt")) for line in f.open(encoding="utf-8")]
    texts = texts[:limit]
    cols = {name: [None] * len(texts) for name in schema.POSTS.names}
    cols.update(id=[f"tweeteval-{i}" for i in range(len(texts))], text=texts)
    ws.corpus.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols, schema=schema.POSTS), ws.corpus / "posts-00000.parquet")
    ws.write_manifest("corpus", counts={"posts": len(texts)})
    return len(texts)


def whole_tag_rate(tok: RoostTokenizer, texts: list[str]) -> float:
    tags = [" " + m.group() for t in texts for m in TAG.finditer(t)]
    return sum(len(ids) == 1 for ids in tok.encode_batch(tags)) / max(len(tags), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N tweets")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "workspace")
        n = write_tweeteval_corpus(ws, args.limit)
        cfg = TokenizerConfig(vocab_size=args.vocab_size, val_fraction=args.val_fraction)

        t0 = time.perf_counter()
        m = train_tokenizer_stage(ws, cfg)
        t_train = time.perf_counter() - t0
        ours = load_tokenizer(ws.tokenizer)
        split = ValSplit(m["val_threshold"])
        val = list(iter_split_texts(ws.corpus, split, want_val=True))

        t0 = time.perf_counter()
        # The peer: identical training, but ByteLevel's own GPT-2 regex as the pre-tokenizer.
        gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        peer = RoostTokenizer(train_bpe(iter_split_texts(ws.corpus, split, want_val=False), cfg, pre_tokenizer=gpt2))
        t_peer = time.perf_counter() - t0

        t0 = time.perf_counter()
        km = tokenize_corpus(ws)
        t_tok = time.perf_counter() - t0
        total = km["counts"]["train_tokens"] + km["counts"]["val_tokens"]

    rows = []
    for name, tok, t in (("roost (tags+emoji split)", ours, t_train), ("GPT-2 style byte-level", peer, t_peer)):
        b, k = bytes_per_token(tok, val)
        exact = sum(tok.decode(ids) == t for ids, t in zip(tok.encode_batch(val), val)) / len(val)
        rows.append((name, tok.vocab_size, b / k, whole_tag_rate(tok, val), exact, t))
    print(f"\n{n:,} TweetEval train tweets, {len(val):,} held out, vocab {args.vocab_size}\n")
    print("| tokenizer | vocab | bytes/token (held out) | #tag/@mention = 1 token | exact round trip | train s |")
    print("|---|---|---|---|---|---|")
    for name, v, bpt, tags, exact, t in rows:
        print(f"| {name} | {v} | {bpt:.3f} | {tags:.1%} | {exact:.1%} | {t:.1f} |")
    print("(roost's train s is the whole stage: split pass, training, held-out evaluation, saving)")
    print(f"\nratio roost/peer bytes per token: {rows[0][2] / rows[1][2]:.3f} (higher is better compression)")
    print(f"roost tokenizer shards: {total:,} tokens in {t_tok:.2f} s = {total / t_tok / 1e6:.2f} M tokens/s")


if __name__ == "__main__":
    main()
